# Sourced by the SciFact benchmarks: from the repository root, sets `corpus` (or exits, skipping,
# when the shared corpora are absent) and `work`, a temporary folder removed on exit.
corpus="../shared/corpora/scifact/corpus.jsonl"
if [ ! -f "$corpus" ]; then
  echo "SKIPPED: $corpus is absent (the shared corpora are not on this machine)" >&2
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
