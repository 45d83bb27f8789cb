#!/usr/bin/env bash
# Qdrant Edge against a Qdrant server, in one run (benches/vector_backends.rs): ingest of 5,000
# SciFact documents, and dense search p50/p95 at 100k chunks, printed as server/Edge ratios.
# The server is built from ../shared/vendor/qdrant-server with its optimised `perf` profile
# (cached in ~/.cache; the first build takes long on two cores) and runs on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/qdrant-test-server.sh
source tools/qdrant-test-server.sh
qdrant_available || exit 1
QDRANT_PROFILE=perf qdrant_start
trap qdrant_stop EXIT
SLUICE_BENCH_QDRANT_URL=$SLUICE_TEST_QDRANT_URL SLUICE_BENCH_QDRANT_REST=$SLUICE_TEST_QDRANT_REST \
  cargo bench -p sluice-pipeline --bench vector_backends
