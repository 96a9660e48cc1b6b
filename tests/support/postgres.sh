#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, from Debian's packages:
#   postgres.sh start DIR   initialises DIR (once) and starts the server on a
#                           free loopback port; prints its URL
#   postgres.sh restart DIR restarts it (same port)
#   postgres.sh stop DIR    stops it
# Trust authentication, listening on 127.0.0.1 only; run as the `postgres`
# user when called as root (the server refuses to run as root). Extra
# server settings come from PG_OPTS (e.g. "-c fsync=off").
set -euo pipefail
cmd=$1
dir=$(realpath -m "$2")
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case $cmd in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
      chown postgres "$dir"
      chmod a+x "$(dirname "$dir")" # a private temporary directory: let the server in
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$dir/data" -U topdog -A trust -E UTF8 --no-sync >"$dir/initdb.log"
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=800 ${PG_OPTS:-}" start >/dev/null
    echo "postgres://topdog@127.0.0.1:$port/postgres"
    ;;
  restart)
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -m fast restart >/dev/null
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -w -t 60 -m fast stop >/dev/null
    ;;
  *)
    echo "usage: $0 start|restart|stop DIR" >&2
    exit 2
    ;;
esac
