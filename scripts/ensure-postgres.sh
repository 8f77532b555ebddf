#!/usr/bin/env bash
# Make sure a PostgreSQL for the tests answers and print its admin URL on the last stdout line (messages go to stderr).
# Order: $TEST_POSTGRES_URL when set (printed unchanged); else the machine's server on 127.0.0.1:5432 when it lets
# user postgres in without a password; else a throwaway server of our own: initdb (trust auth) into
# $ENSURE_POSTGRES_DIR/data (default var/postgres/data), run as the `postgres` OS user when we are root, listening only
# on 127.0.0.1 on a free port (saved in $ENSURE_POSTGRES_DIR/port) with its unix socket in the data dir. Later runs
# reuse it while it answers, restart it when it stopped, and re-create it when it cannot start.
#   ENSURE_POSTGRES_FORCE_LOCAL=1   skip $TEST_POSTGRES_URL and 5432 and use the throwaway server (to exercise that path)
#   bash scripts/ensure-postgres.sh stop   stops the throwaway server (before `make clean` removes var/)
# The server binaries come from Debian's postgresql package (scripts/system-deps.sh test installs it).
set -euo pipefail
state="${ENSURE_POSTGRES_DIR:-var/postgres}"
case "$state" in /*) ;; *) state="$PWD/$state" ;; esac  # absolute: the server and its socket must not depend on cwd
data="$state/data"

bindir=""
for dir in "$(pg_config --bindir 2>/dev/null || true)" $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then bindir="$dir"; break; fi
done
psql="$(command -v psql || true)"
[ -n "$psql" ] || { [ -n "$bindir" ] && psql="$bindir/psql"; } || true

# pg_isready alone is not enough: a stock Debian cluster answers on 5432 but asks for a password.
answers() {  # answers PORT
  [ -n "$psql" ] && [ "$(PGCONNECT_TIMEOUT=2 "$psql" -w -X -q -h 127.0.0.1 -p "$1" -U postgres -d postgres \
    -Atc 'select 1' </dev/null 2>/dev/null)" = 1 ]
}
url() { echo "postgresql+psycopg://postgres@127.0.0.1:$1/postgres"; }

# As root the server runs as `postgres` (PostgreSQL refuses to run as root); otherwise as ourselves.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

stop_local() {
  if [ -n "$bindir" ] && [ -f "$data/postmaster.pid" ]; then
    as_pg "$bindir/pg_ctl" -D "$data" -s -m fast -w -t 30 stop >&2 || true
  fi
}

if [ "${1:-}" = "stop" ]; then stop_local; exit 0; fi

if [ "${ENSURE_POSTGRES_FORCE_LOCAL:-0}" != "1" ]; then
  if [ -n "${TEST_POSTGRES_URL:-}" ]; then echo "$TEST_POSTGRES_URL"; exit 0; fi
  if answers 5432; then url 5432; exit 0; fi
fi

# One run at a time sets up the throwaway server (parallel `make test`s would both initdb).
mkdir -p "$state"
exec 9>"$state/lock"
flock -w 300 9 || { echo "another run holds $state/lock" >&2; exit 1; }

port="$(cat "$state/port" 2>/dev/null || true)"
if [ -n "$port" ] && answers "$port"; then url "$port"; exit 0; fi

if [ -z "$bindir" ]; then
  echo "no PostgreSQL server binaries (pg_ctl, initdb): run 'bash scripts/system-deps.sh test'" >&2
  exit 1
fi
[ -n "$psql" ] || psql="$bindir/psql"
if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$state"; then
  echo "user postgres cannot reach $state: set ENSURE_POSTGRES_DIR to a directory it can reach" >&2
  exit 1
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

init_data() {
  rm -rf "$data"
  mkdir -m 700 "$data"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$data"
  as_pg "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-sync --no-instructions >/dev/null
  # Test data only: durability is not worth the time; the socket stays in the data dir, away from /run/postgresql.
  cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
fsync = off
full_page_writes = off
synchronous_commit = off
shared_buffers = 32MB
max_connections = 200
EOF
}

start_local() {  # start_local PORT
  touch "$state/postgres.log"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$state/postgres.log"
  # 9>&-: the server must not inherit the lock, or it would hold it for as long as it runs.
  as_pg "$bindir/pg_ctl" -s -D "$data" -l "$state/postgres.log" -w -t 60 -o "-p $1" start >&2 9>&-
}

stop_local  # a server of ours that no longer answers (wedged, or its port taken) is of no use
port="$(free_port)"
if [ ! -f "$data/PG_VERSION" ] || ! start_local "$port"; then
  echo "initialising a throwaway PostgreSQL in $data" >&2
  init_data
  start_local "$port" || { echo "PostgreSQL did not start; see $state/postgres.log" >&2; exit 1; }
fi
echo "$port" >"$state/port"
for _ in $(seq 1 50); do
  if answers "$port"; then url "$port"; exit 0; fi
  sleep 0.1
done
echo "PostgreSQL on 127.0.0.1:$port does not answer; see $state/postgres.log" >&2
exit 1
