#!/usr/bin/env bash
# The daemon's peak memory (VmHWM) on the whole extraction corpus plus two oversized files (a
# 250 MB single-line text and a DOCX that inflates to 400 MB of text), against the bound
# ARCHITECTURE.md states for the default settings. Usage, from the repository root:
#   bash benches/daemon-memory.sh
# Builds the release binary if needed; needs python3 (to write the oversized files).
set -euo pipefail
corpus="../shared/corpora/extraction"
if [ ! -d "$corpus" ]; then
  echo "SKIPPED: $corpus is absent (the shared corpora are not on this machine)" >&2
  exit 0
fi
corpus="$(cd "$corpus" && pwd)"
cargo build --release -p sluice >/dev/null 2>&1 || cargo build --release -p sluice
binary="$PWD/target/release/sluice"
work="$(mktemp -d)"
trap 'kill "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/inbox"

python3 - "$work/inbox" <<'EOF'
import sys, zipfile
inbox = sys.argv[1]
with open(f"{inbox}/huge.txt", "wb") as f:
    word = b"unbroken "
    f.write(word * (250_000_000 // len(word)))
paragraph = "<w:p><w:r><w:t>" + "lorem ipsum dolor sit amet " * 2400 + "</w:t></w:r></w:p>"
with zipfile.ZipFile(f"{inbox}/bomb.docx", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
    with z.open("word/document.xml", "w", force_zip64=True) as part:
        part.write(b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>')
        block = (paragraph * 16).encode()
        for _ in range((400 << 20) // len(block) + 1):
            part.write(block)
        part.write(b"</w:body></w:document>")
EOF

cat > "$work/pipeline.toml" <<EOF
version = 1
name = "default"
[[source]]
path = "$corpus"
[[source]]
path = "$work/inbox"
[server]
listen = "127.0.0.1:0"
EOF

started=$(date +%s)
SLUICE_MODELS_DIR="$PWD/models" RUST_LOG=info,qdrant_edge=error \
  "$binary" --data "$work/data" run --pipeline "$work/pipeline.toml" 2>"$work/daemon.log" &
daemon=$!
# The first run covers everything; it is over when the log says it committed.
until grep -q "run committed" "$work/daemon.log"; do
  if ! kill -0 "$daemon" 2>/dev/null; then
    echo "the daemon exited:" >&2
    tail -20 "$work/daemon.log" >&2
    exit 1
  fi
  sleep 2
done
sleep 5
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$daemon/status")
elapsed=$(( $(date +%s) - started ))
summary=$(grep "run committed" "$work/daemon.log" | tail -1 | sed 's/.*run committed//')
echo "corpus: $(find "$corpus" -type f | wc -l) files + huge.txt (250 MB) + bomb.docx ($(stat -c %s "$work/inbox/bomb.docx") bytes)"
echo "first run: ${elapsed} s;${summary}"
grep -E "quarantined" "$work/daemon.log" | grep -E "huge.txt|bomb.docx" | sed 's/.*WARN[^ ]* //' | cut -c1-200 || true
echo "daemon peak RSS (VmHWM): $((peak_kib / 1024)) MiB; bound with the default settings: 1536 MiB ($(awk "BEGIN {printf \"%.2f\", $peak_kib / 1024 / 1536}")x)"
