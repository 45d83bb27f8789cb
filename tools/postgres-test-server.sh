#!/usr/bin/env bash
# A throw-away PostgreSQL cluster on loopback for the test suites (Debian's `postgresql`
# package). PostgreSQL refuses to run as root, so the cluster belongs to the unprivileged
# `postgres` user when this runs as root (CI), and to the caller otherwise.
#
#   source tools/postgres-test-server.sh   defines the functions below
#   postgres_available                     whether initdb is installed (says so if not)
#   postgres_start [DIR]                   initdb + pg_ctl start in DIR (default: a new
#                                          temporary folder) on a free loopback port, creates
#                                          the database `sluice`, and exports
#                                          SLUICE_TEST_POSTGRES_URL (a connection string) and
#                                          the POSTGRES_TEST_* variables the others need
#   postgres_restart                       kills the server (SIGKILL) and starts it again on the
#                                          same data and port
#   postgres_stop                          stops it and removes its data
#
# The cluster is made with the C locale and UTF-8, so text sorts by code point as SQLite
# sorts it; sluice's schema asks for the "C" collation on its own too.

postgres_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

postgres_available() {
  postgres_bin >/dev/null && return 0
  echo "SKIPPED the PostgreSQL suites: initdb is not installed (apt-get install postgresql)" >&2
  return 1
}

# Runs a command as the cluster's owner.
postgres_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$POSTGRES_TEST_OWNER" -- "$@"
  else
    "$@"
  fi
}

postgres_start() {
  local bin
  bin=$(postgres_bin) || { echo "initdb is not installed" >&2; return 1; }
  POSTGRES_TEST_BIN=$bin
  POSTGRES_TEST_DIR=${1:-$(mktemp -d /tmp/postgres-test.XXXXXX)}
  POSTGRES_TEST_OWNER=$([ "$(id -u)" = 0 ] && echo postgres || id -un)
  POSTGRES_TEST_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export POSTGRES_TEST_BIN POSTGRES_TEST_DIR POSTGRES_TEST_OWNER POSTGRES_TEST_PORT
  mkdir -p "$POSTGRES_TEST_DIR"
  chmod 700 "$POSTGRES_TEST_DIR"
  [ "$(id -u)" = 0 ] && chown "$POSTGRES_TEST_OWNER" "$POSTGRES_TEST_DIR"
  # Trust on loopback only: the cluster listens on 127.0.0.1 and a socket in its own folder.
  postgres_as_owner "$bin/initdb" -D "$POSTGRES_TEST_DIR/data" -U sluice -A trust \
    --locale=C --encoding=UTF8 >"$POSTGRES_TEST_DIR/initdb.log" 2>&1 || {
    cat "$POSTGRES_TEST_DIR/initdb.log" >&2
    return 1
  }
  export SLUICE_TEST_POSTGRES_URL="postgresql://sluice@127.0.0.1:$POSTGRES_TEST_PORT/sluice"
  postgres_launch || return 1
  postgres_as_owner "$bin/createdb" -h 127.0.0.1 -p "$POSTGRES_TEST_PORT" -U sluice sluice
}

postgres_launch() {
  postgres_as_owner "$POSTGRES_TEST_BIN/pg_ctl" -D "$POSTGRES_TEST_DIR/data" -l "$POSTGRES_TEST_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $POSTGRES_TEST_PORT -k $POSTGRES_TEST_DIR -c max_connections=200 -c fsync=on" \
    start >/dev/null || {
    echo "postgres did not start; its log:" >&2
    tail -n 50 "$POSTGRES_TEST_DIR/server.log" >&2
    return 1
  }
}

postgres_restart() {
  local pid
  pid=$(head -n 1 "$POSTGRES_TEST_DIR/data/postmaster.pid")
  kill -9 "$pid" 2>/dev/null
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  postgres_launch
}

postgres_stop() {
  [ -n "${POSTGRES_TEST_DIR:-}" ] || return 0
  postgres_as_owner "$POSTGRES_TEST_BIN/pg_ctl" -D "$POSTGRES_TEST_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$POSTGRES_TEST_DIR"
}
