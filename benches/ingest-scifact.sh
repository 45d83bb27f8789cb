#!/usr/bin/env bash
# Cold ingest throughput: the first N SciFact documents (title + text) written as files, then
# one `sluice ingest` into a fresh data directory. Prints documents/s and chunks/s.
#   bash benches/ingest-scifact.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-1000}"
source benches/scifact-common.sh
python3 - "$corpus" "$work/docs" "$count" <<'PY'
import json, os, sys
corpus, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(out)
with open(corpus) as lines:
    for index, line in enumerate(lines):
        if index == count:
            break
        doc = json.loads(line)
        with open(os.path.join(out, f"{doc['_id']}.txt"), "w") as f:
            f.write(doc["title"] + "\n\n" + doc["text"] + "\n")
PY
cargo build --release -q -p sluice
./target/release/sluice --data "$work/data" ingest "$work/docs" --json > "$work/summary.json"
python3 - "$work/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
docs = s["indexed"] + s["duplicates"] + sum(s["quarantined"].values())
t = s["elapsed_seconds"]
print(f"documents {docs}, chunks {s['chunks_added']}, tokens embedded {s['tokens_embedded']}, {t:.1f} s")
print(f"{docs / t:.2f} documents/s, {s['chunks_added'] / t:.2f} chunks/s, {s['tokens_embedded'] / t:.0f} tokens/s")
print("stage seconds:", {k: round(v, 2) for k, v in sorted(s["stage_seconds"].items())})
PY
