#!/usr/bin/env bash
# Every test suite, as CI runs it (`.ci/run` calls this; the README's test command):
#  1. the whole workspace on the embedded default, Qdrant Edge;
#  2. the suites that touch the vector store (vector index, pipeline runs, versions, governance,
#     gate, model changes, end to end, crash) again against a real Qdrant server on loopback, built from
#     ../shared/vendor/qdrant-server and cached outside the clone, with the Python
#     qdrant-client check of the README's "Query the collection directly";
#  3. the crash suite once more, killing and restarting the Qdrant server at random moments;
#  4. the cluster configuration: the catalog in PostgreSQL (a throw-away cluster on loopback,
#     from Debian's `postgresql`, installed here if missing) with the Qdrant server: the two
#     catalog engines compared, then the suites that write, govern and crash versions.
# Where ../shared/vendor is absent (a plain clone elsewhere), 2 to 4 are skipped, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo_args=(--release --features sluice/failpoints)

cargo test "${cargo_args[@]}" --workspace

# shellcheck source=tools/qdrant-test-server.sh
source tools/qdrant-test-server.sh
qdrant_available || exit 0
qdrant_start
trap qdrant_stop EXIT
echo "Qdrant server for the tests: $SLUICE_TEST_QDRANT_URL (log: $QDRANT_TEST_DIR/server.log)"

# The Python client retrieval services use, at the version the server speaks.
venv=${SLUICE_PYTHON_VENV:-$HOME/.cache/sluice-python}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check 'qdrant-client==1.16.2'
export SLUICE_TEST_PYTHON=$venv/bin/python

# The same feature set as the first run (`--workspace`), so nothing is compiled again.
server_suites=(--test vector_index --test runs --test versions --test filters --test near_duplicates --test context --test governance --test gate --test models --test e2e --test crash)
cargo test "${cargo_args[@]}" --workspace "${server_suites[@]}"
SLUICE_CRASH_RESTART_QDRANT=1 cargo test "${cargo_args[@]}" --workspace --test crash

# shellcheck source=tools/postgres-test-server.sh
source tools/postgres-test-server.sh
if ! postgres_bin >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
fi
postgres_available || exit 0
postgres_start
trap 'qdrant_stop; postgres_stop' EXIT
echo "PostgreSQL for the tests: $SLUICE_TEST_POSTGRES_URL (log: $POSTGRES_TEST_DIR/server.log)"
cluster_suites=(--test catalog_engines --test cluster --test versions --test filters --test near_duplicates --test governance --test e2e --test crash)
cargo test "${cargo_args[@]}" --workspace "${cluster_suites[@]}"
