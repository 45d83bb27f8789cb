#!/usr/bin/env bash
# Several nodes at SciFact scale (README "Cluster"), on this machine, with the test suites'
# throw-away PostgreSQL and Qdrant server (loopback):
#   1. one node, the embedded default (SQLite + Qdrant Edge + Tantivy): `sluice ingest` of the
#      corpus as files; the baseline of every ratio below;
#   2. one writer node on PostgreSQL + the Qdrant server, one share of claims for the whole
#      corpus: its live export must be byte-identical to 1's;
#   3. two writer nodes (`sluice ingest` in two data directories, default shares of claims)
#      and a query node (`sluice serve`, started first, following the catalog): the live export
#      must equal 1's but for `valid_from` (the cluster wrote many versions, 1 wrote one), and
#      all three nodes must return the same top-10 for 50 SciFact queries (hybrid), each from its
#      own lexical index; lexical top-10 must also equal node 1's.
# Prints documents/s of each, as ratios to 1. On 2 cores the model is the limit: two writers
# share the same cores, so expect about 1x (README "Cluster" and ARCHITECTURE.md project the
# GPU-node case).
#   bash benches/cluster-scifact.sh [N]     (N documents; default: the whole corpus)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-0}"
source benches/scifact-common.sh
# shellcheck source=tools/postgres-test-server.sh
source tools/postgres-test-server.sh
# shellcheck source=tools/qdrant-test-server.sh
source tools/qdrant-test-server.sh
postgres_available && qdrant_available || exit 0
cargo build --release -q -p sluice
sluice=$PWD/target/release/sluice
export SLUICE_MODELS_DIR=$PWD/models RUST_LOG=warn,qdrant_edge=error
postgres_start
qdrant_start
trap 'qdrant_stop; postgres_stop; rm -rf "$work"' EXIT
export SLUICE_POSTGRES_URL=$SLUICE_TEST_POSTGRES_URL

python3 - "$corpus" "$work/docs" "$count" <<'PY'
import json, os, sys
corpus, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(out)
with open(corpus) as lines:
    for index, line in enumerate(lines):
        if count and index == count:
            break
        doc = json.loads(line)
        with open(os.path.join(out, f"{doc['_id']}.txt"), "w") as f:
            f.write(doc["title"] + "\n\n" + doc["text"] + "\n")
PY
docs=$(find "$work/docs" -type f | wc -l)

# A pipeline file per configuration: the shape of deploy/cluster.toml, on this machine.
pipeline() { # NAME SCHEMA CLAIM_BATCH
  if [ "$2" = none ]; then
    printf 'version = 1\nname = "scifact"\n[server]\nlisten = "127.0.0.1:0"\n' >"$work/$1.toml"
    return
  fi
  cat >"$work/$1.toml" <<EOF
version = 1
name = "scifact"
[server]
listen = "127.0.0.1:0"
[store]
catalog = "postgres"
vectors = "qdrant"
[store.postgres]
schema = "$2"
claim_batch = $3
[store.qdrant]
url = "$SLUICE_TEST_QDRANT_URL"
collection = "$2"
EOF
}
seconds() { python3 -c 'import time; print(time.monotonic())'; }
ingest() { # DATA PIPELINE
  "$sluice" --data "$1" ingest "$work/docs" --pipeline "$2" --json >"$1.summary.json"
}
export_live() { # DATA PIPELINE OUT
  "$sluice" --data "$1" export --format jsonl --out "$3" --pipeline "$2" >/dev/null
}

echo "== 1. one node, embedded default: $docs documents"
pipeline single none 0
start=$(seconds); ingest "$work/single" "$work/single.toml"; single_s=$(python3 -c "print($(seconds) - $start)")
export_live "$work/single" "$work/single.toml" "$work/single.jsonl"

echo "== 2. one writer node, PostgreSQL + Qdrant server"
pipeline one one 100000
start=$(seconds); ingest "$work/one" "$work/one.toml"; one_s=$(python3 -c "print($(seconds) - $start)")
export_live "$work/one" "$work/one.toml" "$work/one.jsonl"
cmp "$work/single.jsonl" "$work/one.jsonl" && echo "live export byte-identical to the embedded single node"

echo "== 3. two writer nodes and a query node"
pipeline two two 256
"$sluice" --data "$work/query" serve --pipeline "$work/two.toml" 2>"$work/query.log" &
query_pid=$!
start=$(seconds)
ingest "$work/w1" "$work/two.toml" &
w1=$!
ingest "$work/w2" "$work/two.toml" &
w2=$!
wait "$w1" "$w2"
two_s=$(python3 -c "print($(seconds) - $start)")
"$sluice" --data "$work/w1" nodes --pipeline "$work/two.toml" || true
export_live "$work/w1" "$work/two.toml" "$work/two.jsonl"
# The writers' indexes answer over HTTP too: each serves its own data directory.
"$sluice" --data "$work/w1" serve --pipeline "$work/two.toml" 2>"$work/w1.log" &
s1=$!
"$sluice" --data "$work/w2" serve --pipeline "$work/two.toml" 2>"$work/w2.log" &
s2=$!
trap 'kill $query_pid $s1 $s2 2>/dev/null; qdrant_stop; postgres_stop; rm -rf "$work"' EXIT

python3 - "$work" "../shared/corpora/scifact/queries.jsonl" "$docs" "$single_s" "$one_s" "$two_s" "$sluice" <<'PY'
import json, os, subprocess, sys, time, urllib.parse, urllib.request
work, queries, docs = sys.argv[1], sys.argv[2], int(sys.argv[3])
single_s, one_s, two_s = map(float, sys.argv[4:7])
sluice = sys.argv[7]

def strip_version(path):
    rows = [json.loads(line) for line in open(path)]
    for row in rows:
        row.pop("valid_from")
    return rows, len(rows)
single_rows, chunks = strip_version(f"{work}/single.jsonl")
two_rows, _ = strip_version(f"{work}/two.jsonl")
versions = sorted({json.loads(line)["valid_from"] for line in open(f"{work}/two.jsonl")})
assert two_rows == single_rows, "two writers' live export differs from the single node's (valid_from aside)"
print(f"two writers' live export: {chunks} chunks in {len(versions)} versions, equal to the single node's but for valid_from")

def node(data):
    for _ in range(600):
        try:
            info = json.load(open(f"{work}/{data}/daemon.json"))
            return info["listen"], info["local_token"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.2)
    raise SystemExit(f"node {data} did not start")

def search(address, token, text, mode, version):
    query = urllib.parse.urlencode({"q": text, "k": 10, "mode": mode, "version": version})
    request = urllib.request.Request(f"http://{address}/v1/search?{query}", headers={"Authorization": f"Bearer {token}"})
    for _ in range(100):
        try:
            with urllib.request.urlopen(request) as response:
                return [hit["chunk_id"] for hit in json.load(response)["hits"]]
        except urllib.error.HTTPError as error:
            if error.code != 503:
                raise
            time.sleep(0.5)  # a node still catching up
    raise SystemExit("a node never caught up")

def single_lexical(text):
    # The embedded single node through the command line (`serve` needs a shared catalog).
    out = subprocess.run([sluice, "--data", f"{work}/single", "search", text, "--mode", "lexical", "--json",
                          "--pipeline", f"{work}/single.toml"], check=True, capture_output=True, text=True).stdout
    return [hit["chunk_id"] for hit in json.loads(out)["hits"]]

cluster = {name: node(name) for name in ["query", "w1", "w2"]}
live = max(versions)
questions = [json.loads(line)["text"] for line in open(queries)][:50]
for mode in ["hybrid", "lexical", "dense"]:
    differing = 0
    for text in questions:
        answers = {name: search(*where, text, mode, live) for name, where in cluster.items()}
        if len({tuple(ids) for ids in answers.values()}) != 1:
            differing += 1
            print(f"  {mode}: nodes differ on {text!r}")
    print(f"{mode}: {len(questions) - differing}/{len(questions)} queries with the same top-10 on all three nodes")
    assert differing == 0
lexical_same = sum(search(*cluster["query"], t, "lexical", live) == single_lexical(t) for t in questions)
print(f"lexical: {lexical_same}/{len(questions)} queries with the same top-10 as the embedded single node")

print(f"documents/s: single node {docs / single_s:.1f}; one writer {docs / one_s:.1f} ({single_s / one_s:.2f}x); "
      f"two writers {docs / two_s:.1f} ({single_s / two_s:.2f}x)")
PY
kill $query_pid $s1 $s2 2>/dev/null || true
