#!/usr/bin/env bash
# Retrieval quality on SciFact with the default pipeline: every corpus document written as a file
# `<id>.txt` (title, blank line, abstract), one `sluice ingest` into a fresh data directory, then
# `sluice eval` on the BEIR set (document key: the file stem) for lexical, dense and hybrid search.
#   bash benches/eval-scifact.sh [SPLIT]     (default: train, the split ../shared/corpora holds)
set -euo pipefail
cd "$(dirname "$0")/.."
split="${1:-train}"
source benches/scifact-common.sh
python3 - "$corpus" "$work/docs" <<'PY'
import json, os, sys
corpus, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
with open(corpus) as lines:
    for line in lines:
        doc = json.loads(line)
        with open(os.path.join(out, f"{doc['_id']}.txt"), "w") as f:
            f.write(doc["title"] + "\n\n" + doc["text"] + "\n")
PY
cargo build --release -q --workspace --bins
./target/release/sluice --data "$work/data" ingest "$work/docs" --json > "$work/summary.json"
python3 - "$work/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"ingested {s['indexed']} documents, {s['chunks_added']} chunks in {s['elapsed_seconds']:.0f} s; "
      f"quarantined {s['quarantined']}")
PY
./target/release/sluice --data "$work/data" eval --set "$(dirname "$corpus")" --split "$split" --check-hnsw
