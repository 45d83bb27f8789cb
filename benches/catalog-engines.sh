#!/usr/bin/env bash
# The catalog on SQLite against the catalog on PostgreSQL, in one run (benches/catalog_engines.rs):
# statements and time per file of a run's catalog work, and their PostgreSQL / SQLite ratios.
# PostgreSQL is a throw-away cluster on loopback (Debian's package, tools/postgres-test-server.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/postgres-test-server.sh
source tools/postgres-test-server.sh
postgres_available || exit 1
postgres_start
trap postgres_stop EXIT
SLUICE_BENCH_POSTGRES_URL=$SLUICE_TEST_POSTGRES_URL cargo bench -p sluice-store --bench catalog_engines
