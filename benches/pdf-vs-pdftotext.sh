#!/usr/bin/env bash
# PDF text extraction, sluice against poppler's pdftotext, over every PDF of the shared
# extraction corpus, in the same run: pages/s of each (one process per file for both, so both
# pay their start-up), the ratio, and per file the token F1 between the two texts (lower-cased
# runs of letters and digits, as multisets). Files either tool refuses are left out of all of it.
#   bash benches/pdf-vs-pdftotext.sh
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="../shared/corpora/extraction"
if [ ! -d "$corpus" ]; then
  echo "SKIPPED: $corpus is absent (the shared corpora are not on this machine)" >&2
  exit 0
fi
for tool in pdftotext pdfinfo; do
  command -v "$tool" > /dev/null || { echo "$tool is missing: apt-get install poppler-utils" >&2; exit 1; }
done
cargo build --release -q -p sluice-extract --example extract
python3 - "$corpus" <<'PY'
import collections, os, re, statistics, subprocess, sys, time

corpus = sys.argv[1]
sluice = "target/release/examples/extract"
pdfs = sorted(os.path.join(d, f) for d, _, fs in os.walk(corpus) for f in fs if f.lower().endswith(".pdf"))

def run(command):
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, timeout=120)
    return time.perf_counter() - started, done.returncode == 0, done.stdout.decode("utf-8", "replace")

def tokens(text):
    return collections.Counter(t for t in re.split(r"[\W_]+", text.lower()) if t)

def f1(a, b):
    a, b = tokens(a), tokens(b)
    overlap = sum((a & b).values())
    if not overlap:
        return 0.0
    p, r = overlap / sum(a.values()), overlap / sum(b.values())
    return 2 * p * r / (p + r)

rows, refused = [], 0
for path in pdfs:
    info = subprocess.run(["pdfinfo", path], capture_output=True).stdout.decode("utf-8", "replace")
    pages = re.search(r"^Pages:\s+(\d+)", info, re.M)
    t_sluice, ok_sluice, text_sluice = run([sluice, "--plain", path])
    t_poppler, ok_poppler, text_poppler = run(["pdftotext", "-q", "-enc", "UTF-8", path, "-"])
    if not (pages and ok_sluice and ok_poppler and text_poppler.strip()):
        refused += 1
        continue
    rows.append((f1(text_sluice, text_poppler), int(pages.group(1)), t_sluice, t_poppler, os.path.relpath(path, corpus)))

pages = sum(r[1] for r in rows)
sluice_s, poppler_s = sum(r[2] for r in rows), sum(r[3] for r in rows)
scores = [r[0] for r in rows]
print(f"{len(rows)} PDFs, {pages} pages compared ({refused} left out: refused by either tool or no text from pdftotext)")
print(f"sluice     {pages / sluice_s:8.1f} pages/s  ({sluice_s:.2f} s)")
print(f"pdftotext  {pages / poppler_s:8.1f} pages/s  ({poppler_s:.2f} s)")
print(f"ratio sluice/pdftotext: {poppler_s / sluice_s:.2f}x")
print(f"text similarity (token F1): median {statistics.median(scores):.3f}, mean {statistics.mean(scores):.3f}")
print("per file, lowest first:")
for score, n, ts, tp, name in sorted(rows):
    print(f"  {score:.3f}  {n:4d} p  sluice {ts * 1e3:7.1f} ms  pdftotext {tp * 1e3:7.1f} ms  {name}")
PY
