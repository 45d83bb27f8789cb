//! Normalisation: Unicode NFC, ligatures expanded, control characters removed, whitespace
//! collapsed; blocks joined by a blank line into one text with their spans recorded.

use sluice_core::{BlockKind, BlockSpan, ExtractedDocument, NormalizedDocument, TextHash};
use unicode_normalization::UnicodeNormalization;

/// Version of the cleaning rules; part of the chunking fingerprint (cleaning changes text).
pub const CLEAN_VERSION: &str = "1";

/// What cleaning does to every block, in order, as lineage reports it. Keep in step with
/// `clean_block` and `normalize` (and bump `CLEAN_VERSION` when either changes).
pub const CLEAN_STEPS: &[&str] = &[
    "unicode_nfc",
    "expand_ligatures",
    "drop_control_and_zero_width_characters",
    "collapse_whitespace",
    "drop_empty_lines",
    "join_blocks_with_blank_line",
];

const BLOCK_SEPARATOR: &str = "\n\n";

pub fn normalize(document: ExtractedDocument) -> NormalizedDocument {
    let mut text = String::new();
    let mut blocks = Vec::with_capacity(document.blocks.len());
    for block in &document.blocks {
        let cleaned = clean_block(&block.text, block.kind == BlockKind::Code);
        if cleaned.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push_str(BLOCK_SEPARATOR);
        }
        let byte_start = text.len();
        text.push_str(&cleaned);
        blocks.push(BlockSpan { kind: block.kind, page: block.page, byte_start, byte_end: text.len() });
    }
    let title = document.title.as_deref().map(|title| clean_block(title, false)).filter(|t| !t.is_empty());
    NormalizedDocument {
        format: document.format,
        title,
        text_hash: TextHash::of_text(&text),
        text,
        blocks,
        page_count: document.page_count,
    }
}

/// Cleans one block. Line breaks inside a block are kept (they carry meaning in addresses,
/// poems and tables) but runs of them collapse to one; code keeps its indentation.
fn clean_block(raw: &str, keep_indentation: bool) -> String {
    let composed: String = raw.nfc().flat_map(expand_ligature).collect();
    let mut lines: Vec<String> = Vec::new();
    for line in composed.split('\n') {
        let line = clean_line(line, keep_indentation);
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines.join("\n")
}

fn clean_line(line: &str, keep_indentation: bool) -> String {
    let mut out = String::with_capacity(line.len());
    let mut leading = true;
    let mut pending_space = false;
    for c in line.chars() {
        let c = if c == '\t' || c == '\u{a0}' || (c.is_whitespace() && c != '\n') { ' ' } else { c };
        if c.is_control() || is_invisible(c) {
            continue;
        }
        if c == ' ' {
            if leading && keep_indentation {
                out.push(' ');
            } else {
                pending_space = !leading;
            }
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        leading = false;
        out.push(c);
    }
    if leading { String::new() } else { out }
}

/// Zero-width and formatting characters that only get in the way of search.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{00ad}')
}

/// Latin ligatures that PDF text layers produce (U+FB00..U+FB06).
fn expand_ligature(c: char) -> LigatureExpansion {
    let expansion: &'static str = match c {
        '\u{fb00}' => "ff",
        '\u{fb01}' => "fi",
        '\u{fb02}' => "fl",
        '\u{fb03}' => "ffi",
        '\u{fb04}' => "ffl",
        '\u{fb05}' | '\u{fb06}' => "st",
        _ => return LigatureExpansion::One(Some(c)),
    };
    LigatureExpansion::Many(expansion.chars())
}

enum LigatureExpansion {
    One(Option<char>),
    Many(std::str::Chars<'static>),
}

impl Iterator for LigatureExpansion {
    type Item = char;
    fn next(&mut self) -> Option<char> {
        match self {
            LigatureExpansion::One(c) => c.take(),
            LigatureExpansion::Many(chars) => chars.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::Block;

    use super::*;

    fn doc(blocks: &[(&str, BlockKind)]) -> ExtractedDocument {
        ExtractedDocument {
            format: "text".into(),
            title: Some("  A\u{00a0}title ".into()),
            blocks: blocks
                .iter()
                .map(|(text, kind)| Block { kind: *kind, text: (*text).into(), page: Some(1) })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn normalises_text_and_records_block_spans() {
        let normalized = normalize(doc(&[
            ("  Cafe\u{301}   au\tlait\u{200b} ", BlockKind::Paragraph),
            ("   \n ", BlockKind::Paragraph),
            ("e\u{fb03}cient\n\n\nsecond  line", BlockKind::Paragraph),
            ("fn main() {\n    body();\n}", BlockKind::Code),
        ]));
        assert_eq!(normalized.text, "Café au lait\n\nefficient\nsecond line\n\nfn main() {\n    body();\n}");
        assert_eq!(normalized.title.as_deref(), Some("A title"));
        assert_eq!(normalized.blocks.len(), 3);
        let second = &normalized.blocks[1];
        assert_eq!(&normalized.text[second.byte_start..second.byte_end], "efficient\nsecond line");
        assert_eq!(normalized.text_hash, TextHash::of_text(&normalized.text));
    }

    #[test]
    fn normalisation_is_idempotent() {
        let once = normalize(doc(&[("a  b\u{fb01}\r\nc", BlockKind::Paragraph)]));
        let twice = normalize(doc(&[(once.text.as_str(), BlockKind::Paragraph)]));
        assert_eq!(once.text, twice.text);
    }
}
