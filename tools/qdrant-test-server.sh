#!/usr/bin/env bash
# A throw-away Qdrant server on loopback for the test suites, built from the source bundled in
# ../shared/vendor/qdrant-server (cached outside the clone; see its README).
#
#   source tools/qdrant-test-server.sh     defines the functions below
#   qdrant_start [DIR]                     builds or reuses the server (cargo profile
#                                          $QDRANT_PROFILE: ci, the default, or perf), starts it
#                                          with its storage in DIR (default: a new temporary
#                                          folder), waits until it
#                                          is ready, and exports SLUICE_TEST_QDRANT_URL (gRPC),
#                                          SLUICE_TEST_QDRANT_REST and the QDRANT_TEST_* variables
#                                          the other two need (a test process may call them too)
#   qdrant_restart                         kills it (SIGKILL) and starts it again on the same
#                                          storage and ports
#   qdrant_stop                            stops it and removes its storage
# The running server's pid is in $QDRANT_TEST_DIR/pid.
#
#   qdrant_available                       whether the vendored source is here (says so if not)
# qdrant_start fails (and under `set -e` stops the caller) if the server cannot be built or
# started: only an absent source is a reason to skip.

QDRANT_VENDOR=${QDRANT_VENDOR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/../shared/vendor/qdrant-server}

qdrant_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

qdrant_launch() {
  # The server writes a marker file into its working directory.
  pushd "$QDRANT_TEST_DIR" >/dev/null
  QDRANT__SERVICE__HOST=127.0.0.1 \
  QDRANT__SERVICE__HTTP_PORT=$QDRANT_TEST_HTTP_PORT \
  QDRANT__SERVICE__GRPC_PORT=$QDRANT_TEST_GRPC_PORT \
  QDRANT__STORAGE__STORAGE_PATH=$QDRANT_TEST_DIR/storage \
  QDRANT__STORAGE__SNAPSHOTS_PATH=$QDRANT_TEST_DIR/snapshots \
  QDRANT__TELEMETRY_DISABLED=true \
  QDRANT__LOG_LEVEL=WARN \
    setsid "$QDRANT_TEST_BIN" >>"$QDRANT_TEST_DIR/server.log" 2>&1 </dev/null &
  local pid=$!
  # Not this shell's job: a test may kill it, and the shell should not report that.
  disown "$pid" 2>/dev/null || true
  popd >/dev/null
  echo "$pid" >"$QDRANT_TEST_DIR/pid"
  for _ in $(seq 1 600); do
    if curl -sf "$SLUICE_TEST_QDRANT_REST/readyz" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "qdrant did not start; its log:" >&2
  tail -n 50 "$QDRANT_TEST_DIR/server.log" >&2
  return 1
}

qdrant_available() {
  [ -f "$QDRANT_VENDOR/build.sh" ] && return 0
  echo "SKIPPED the Qdrant server suites: $QDRANT_VENDOR is absent" >&2
  return 1
}

qdrant_start() {
  QDRANT_TEST_BIN=$(bash "$QDRANT_VENDOR/build.sh" "${QDRANT_PROFILE:-ci}" | tail -n 1)
  [ -x "$QDRANT_TEST_BIN" ] || { echo "building the Qdrant server failed" >&2; return 1; }
  QDRANT_TEST_DIR=${1:-$(mktemp -d /tmp/qdrant-test.XXXXXX)}
  mkdir -p "$QDRANT_TEST_DIR"
  QDRANT_TEST_HTTP_PORT=$(qdrant_free_port)
  QDRANT_TEST_GRPC_PORT=$(qdrant_free_port)
  export QDRANT_TEST_BIN QDRANT_TEST_DIR QDRANT_TEST_HTTP_PORT QDRANT_TEST_GRPC_PORT
  export SLUICE_TEST_QDRANT_URL=http://127.0.0.1:$QDRANT_TEST_GRPC_PORT
  export SLUICE_TEST_QDRANT_REST=http://127.0.0.1:$QDRANT_TEST_HTTP_PORT
  qdrant_launch
}

# Waits until the process `$1` is gone (it may not be this shell's child).
qdrant_wait_gone() {
  for _ in $(seq 1 300); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
}

qdrant_restart() {
  local pid
  pid=$(cat "$QDRANT_TEST_DIR/pid")
  kill -9 "$pid" 2>/dev/null
  qdrant_wait_gone "$pid"
  qdrant_launch
}

qdrant_stop() {
  local pid
  pid=$(cat "$QDRANT_TEST_DIR/pid" 2>/dev/null)
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && qdrant_wait_gone "$pid"
  rm -rf "$QDRANT_TEST_DIR"
  unset SLUICE_TEST_QDRANT_URL SLUICE_TEST_QDRANT_REST
}
