#!/usr/bin/env bash
# Runs every fuzz target in turn for SECONDS each (default 600) on one core, from seeded
# corpora (see seed.sh), and prints libFuzzer's final statistics per target. Crashes, leaks,
# OOMs and timeouts land in fuzz/artifacts/<target>/.
#   bash fuzz/run.sh [SECONDS]
set -uo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
[ -d corpus ] || bash seed.sh
export RUSTC_BOOTSTRAP=1  # cargo fuzz passes nightly-only sanitizer flags; stable rustc accepts them this way
for target in pdf ooxml html email; do
    mkdir -p "corpus/$target"
    cargo fuzz run --release "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        > "logs-$target.txt" 2>&1
    echo "== $target (exit $?)"
    grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|stat::new_units_added|^Done|cov:" "logs-$target.txt" | tail -6
    ls "artifacts/$target" 2>/dev/null | sed 's/^/  artifact: /'
done
