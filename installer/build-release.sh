#!/usr/bin/env bash
# Builds the release binary (no development license key) and packs
# dist/topdog-VERSION-x86_64-linux.tar.gz with the binary, install.sh, the
# systemd unit, the example configuration and the README.
#
#   build-release.sh [--profile NAME]   (default: release; the package test
#                                        uses dev to reuse the test build)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
case "${1:-}" in
  --profile) profile=${2:?--profile needs a name} ;;
  "") ;;
  *) echo "build-release.sh: unknown option $1" >&2; exit 2 ;;
esac
out_dir=$profile
[ "$profile" = dev ] && out_dir=debug

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
name="topdog-$version-x86_64-linux"
cargo build --profile "$profile" --locked --bin topdog
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/$name"
cp "$target_dir/$out_dir/topdog" installer/install.sh systemd/topdog.service systemd/acme-ports.conf topdog.example.toml README.md "$stage/$name/"
chmod 0755 "$stage/$name/topdog" "$stage/$name/install.sh"
mkdir -p dist
tar -C "$stage" --owner=0 --group=0 -czf "dist/$name.tar.gz" "$name"
(cd dist && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "dist/$name.tar.gz"
