#!/usr/bin/env bash
# Seeds each fuzz target's corpus from the shared test documents (never committed: corpus/ is
# git-ignored). Usage: bash fuzz/seed.sh [CORPORA_DIR]
set -euo pipefail
cd "$(dirname "$0")"
corpora="${1:-../../shared/corpora/extraction}"
if [ ! -d "$corpora" ]; then
    echo "no shared corpus at $corpora: the fuzzers start from empty corpora" >&2
    mkdir -p corpus/{pdf,ooxml,html,email}
    exit 0
fi
seed() { # target, find expression...
    local target=$1; shift
    mkdir -p "corpus/$target"
    # Names prefixed by a hash of the path: many test folders reuse the same file names.
    find "$corpora" -type f \( "$@" \) -size -2M -print0 | while IFS= read -r -d '' file; do
        cp "$file" "corpus/$target/$(printf '%s' "$file" | sha1sum | cut -c1-12)-$(basename "$file")"
    done
    echo "$target: $(ls "corpus/$target" | wc -l) seeds"
}
seed pdf -iname '*.pdf'
seed ooxml -iname '*.docx' -o -iname '*.pptx' -o -iname '*.xlsx' -o -iname '*.odt' -o -iname '*.ods' -o -iname '*.odp'
seed html -iname '*.html' -o -iname '*.htm' -o -iname '*.xhtml'
seed email -iname '*.eml' -o -iname '*.mbox' -o -path '*mimekit-email/messages/*' -o -path '*mimekit-email/mbox/*'
