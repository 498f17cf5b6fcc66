#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL server for the tests (Debian's postgresql
# package: initdb + pg_ctl), on a free loopback port, data in a new folder under /tmp.
# Run as root, the server runs as the unprivileged `postgres` user (initdb refuses
# root). Trust authentication on loopback only; superuser `reelfarm`.
#
#   pg_server.sh start STATE_DIR   → STATE_DIR/url  (postgres://reelfarm@127.0.0.1:PORT/postgres)
#                                    STATE_DIR/datadir, STATE_DIR/port
#   pg_server.sh stop STATE_DIR    → stops it (fast) and removes its data folder
#   pg_server.sh pause STATE_DIR   → stops it, keeps the data (the "database went away" case)
#   pg_server.sh resume STATE_DIR  → starts it again on the same port
set -euo pipefail
cmd=${1:?usage: pg_server.sh start|stop|pause|resume STATE_DIR}
state=${2:?usage: pg_server.sh start|stop|pause|resume STATE_DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "pg_server.sh: no PostgreSQL server found under /usr/lib/postgresql; run scripts/setup-deps.sh" >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_ctl_start() {
  local data=$1 port=$2
  as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200" \
    start >/dev/null
}

case "$cmd" in
  start)
    mkdir -p "$state"
    data=$(mktemp -d /tmp/reelfarm-pg.XXXXXX)
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$data"; fi
    chmod 700 "$data"
    as_owner "$bin/initdb" -D "$data" -U reelfarm --auth=trust -E UTF8 --locale=C.UTF-8 \
      >"$data.initdb.log" 2>&1 || { cat "$data.initdb.log" >&2; exit 1; }
    rm -f "$data.initdb.log"
    for attempt in 1 2 3 4 5; do
      port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
      if pg_ctl_start "$data" "$port"; then break; fi
      [ "$attempt" -eq 5 ] && { cat "$data/server.log" >&2; exit 1; }
    done
    echo "$data" >"$state/datadir"
    echo "$port" >"$state/port"
    echo "postgres://reelfarm@127.0.0.1:$port/postgres" >"$state/url.tmp"
    mv "$state/url.tmp" "$state/url"
    ;;
  pause)
    as_owner "$bin/pg_ctl" -D "$(cat "$state/datadir")" -m fast -w stop >/dev/null
    ;;
  resume)
    pg_ctl_start "$(cat "$state/datadir")" "$(cat "$state/port")"
    ;;
  stop)
    [ -f "$state/datadir" ] || exit 0
    data=$(cat "$state/datadir")
    as_owner "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$data"
    rm -f "$state/datadir" "$state/port" "$state/url"
    ;;
  *) echo "pg_server.sh: unknown command '$cmd'" >&2; exit 2 ;;
esac
