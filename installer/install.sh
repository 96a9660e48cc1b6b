#!/bin/sh
# Installs the Top Dog appliance from an unpacked release archive: the
# `topdog` system user, /usr/local/bin/topdog, /etc/topdog/topdog.toml (kept
# when present), /var/lib/topdog (0700) and the systemd service, which it
# enables and starts when systemd is running. Idempotent; needs no network.
#
#   sh install.sh                      install or upgrade
#   sh install.sh --uninstall          remove the service and binary, keep data
#   sh install.sh --uninstall --purge  also remove data, configuration and user
#
# DESTDIR=/path installs into a staging root instead (no user, no systemctl).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=${DESTDIR:-}
bin_dir=$root/usr/local/bin
unit_dir=$root/etc/systemd/system
conf_dir=$root/etc/topdog
data_dir=$root/var/lib/topdog
doc_dir=$root/usr/local/share/doc/topdog

mode=install
purge=no
for arg in "$@"; do
  case $arg in
    --uninstall) mode=uninstall ;;
    --purge) purge=yes ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf '%s\n' "$*"; }
systemd_running() { [ -z "$root" ] && [ -d /run/systemd/system ]; }
real_system() { [ -z "$root" ]; }

if real_system && [ "$(id -u)" -ne 0 ]; then
  say "install.sh: run as root (or set DESTDIR to stage into a directory)" >&2
  exit 1
fi

if [ "$mode" = uninstall ]; then
  if systemd_running; then
    systemctl disable --now topdog.service 2>/dev/null || true
  fi
  rm -f "$unit_dir/topdog.service" "$bin_dir/topdog"
  rm -rf "$doc_dir"
  if systemd_running; then systemctl daemon-reload; fi
  if [ "$purge" = yes ]; then
    rm -rf "$data_dir" "$conf_dir"
    if real_system && getent passwd topdog >/dev/null 2>&1; then userdel topdog 2>/dev/null || true; fi
    say "Top Dog removed, with its data and configuration."
  else
    say "Top Dog removed. Data kept in $data_dir and configuration in $conf_dir (--purge removes them)."
  fi
  exit 0
fi

if real_system && ! getent passwd topdog >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/topdog --shell /usr/sbin/nologin topdog
  say "created system user topdog"
fi

install -d -m 0755 "$bin_dir" "$unit_dir" "$doc_dir"
install -d -m 0750 "$conf_dir"
install -m 0755 "$here/topdog" "$bin_dir/topdog"
install -m 0644 "$here/topdog.service" "$unit_dir/topdog.service"
install -m 0644 "$here/README.md" "$doc_dir/README.md"
if [ -f "$conf_dir/topdog.toml" ]; then
  say "kept existing $conf_dir/topdog.toml"
else
  install -m 0640 "$here/topdog.example.toml" "$conf_dir/topdog.toml"
  say "wrote $conf_dir/topdog.toml"
fi
install -d -m 0700 "$data_dir"

if real_system; then
  chown topdog:topdog "$data_dir"
  chgrp topdog "$conf_dir" "$conf_dir/topdog.toml"
  init_output=$(runuser -u topdog -- "$bin_dir/topdog" init --data-dir "$data_dir")
else
  init_output=$("$bin_dir/topdog" init --data-dir "$data_dir")
fi
say "$init_output"

if systemd_running; then
  systemctl daemon-reload
  systemctl enable --now topdog.service
  say "topdog.service is enabled and running (journalctl -u topdog for its log)."
else
  say "systemd is not running here, so nothing was started. Start the appliance with:"
  say "  runuser -u topdog -- /usr/local/bin/topdog serve --config /etc/topdog/topdog.toml"
fi
host=$(hostname 2>/dev/null || echo localhost)
say ""
say "Top Dog: https://$host:8443  (CA certificate: /var/lib/topdog/ca.pem)"
say "Admin commands on this machine: sudo -u topdog topdog status --data-dir /var/lib/topdog"
