//! Quality checks on extracted text, before cleaning hides the evidence (cleaning drops control
//! characters): empty documents, low text yield per PDF page, failed decoding, control characters,
//! and text that is mostly not letters, digits, punctuation or spaces.

use sluice_core::ExtractedDocument;

/// Thresholds, from the pipeline file's `[quality]` section.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QualityThresholds {
    pub min_chars_per_page: f64,
    pub max_replacement_ratio: f64,
    pub max_control_ratio: f64,
    pub min_readable_ratio: f64,
}

/// The first check a document failed: a reason code for quarantine and what was measured.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityFailure {
    pub reason: &'static str,
    pub detail: String,
}

/// Character counts over a document's blocks; whitespace is not counted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TextStats {
    pub chars: usize,
    pub replacement: usize,
    pub control: usize,
    pub readable: usize,
}

impl TextStats {
    pub fn of(document: &ExtractedDocument) -> Self {
        let mut stats = TextStats::default();
        for c in document.blocks.iter().flat_map(|block| block.text.chars()).filter(|c| !c.is_whitespace()) {
            stats.chars += 1;
            if c == '\u{FFFD}' {
                stats.replacement += 1;
            } else if c.is_control() {
                stats.control += 1;
            } else if is_readable(c) {
                stats.readable += 1;
            }
        }
        stats
    }
}

/// Runs every check; `Ok` when the document may be indexed. A document with embedded files
/// (a mailbox, a message with only attachments) may have no text of its own.
pub fn check(document: &ExtractedDocument, thresholds: &QualityThresholds) -> Result<TextStats, QualityFailure> {
    let stats = TextStats::of(document);
    let fail = |reason, detail| Err(QualityFailure { reason, detail });
    if stats.chars == 0 {
        if !document.children.is_empty() {
            return Ok(stats);
        }
        let detail = match document.page_count {
            Some(pages) => format!("no text in {pages} page(s)"),
            None => "no text found".to_owned(),
        };
        return fail("empty", detail);
    }
    let ratio = |part: usize| part as f64 / stats.chars as f64;
    if ratio(stats.replacement) > thresholds.max_replacement_ratio {
        let detail = format!(
            "{:.1}% of characters are U+FFFD (failed decoding), over quality.max_replacement_ratio {}",
            100.0 * ratio(stats.replacement),
            thresholds.max_replacement_ratio
        );
        return fail("garbled_text", detail);
    }
    if ratio(stats.control) > thresholds.max_control_ratio {
        let detail = format!(
            "{:.1}% of characters are control characters, over quality.max_control_ratio {}",
            100.0 * ratio(stats.control),
            thresholds.max_control_ratio
        );
        return fail("control_characters", detail);
    }
    if ratio(stats.readable) < thresholds.min_readable_ratio {
        let detail = format!(
            "only {:.1}% of characters are letters, digits or punctuation, under quality.min_readable_ratio {}",
            100.0 * ratio(stats.readable),
            thresholds.min_readable_ratio
        );
        return fail("unreadable_text", detail);
    }
    // Only a PDF page can be a scanned image with no text layer; a sheet or a slide with a few
    // words is what its author wrote.
    let scanned_pages_possible = document.format == "pdf";
    if let Some(pages) = document.page_count.filter(|pages| *pages > 0 && scanned_pages_possible) {
        let per_page = stats.chars as f64 / f64::from(pages);
        if per_page < thresholds.min_chars_per_page {
            let detail = format!(
                "{per_page:.1} characters per page over {pages} page(s), under quality.min_chars_per_page {} \
                 (scanned pages need OCR)",
                thresholds.min_chars_per_page
            );
            return fail("low_text_yield", detail);
        }
    }
    Ok(stats)
}

/// Letters, digits, and the punctuation and symbols that prose and tables use. Private-use
/// glyphs, unassigned code points and stray format characters are not.
fn is_readable(c: char) -> bool {
    c.is_alphanumeric()
        || c.is_ascii_punctuation()
        || matches!(c,
            '\u{00A1}'..='\u{00BF}' | '\u{00D7}' | '\u{00F7}'   // Latin-1 punctuation, × ÷
            | '\u{2010}'..='\u{205E}'                           // general punctuation
            | '\u{20A0}'..='\u{20CF}'                           // currency
            | '\u{2100}'..='\u{23FF}'                           // letterlike, arrows, math
            | '\u{2460}'..='\u{27BF}'                           // enclosed, box drawing, shapes, dingbats
            | '\u{3000}'..='\u{303F}'                           // CJK punctuation
            | '\u{FF01}'..='\u{FF65}'                           // full-width forms
            | '\u{0300}'..='\u{036F}'                           // combining accents
        )
}

#[cfg(test)]
mod tests {
    use sluice_core::{Block, BlockKind};

    use super::*;

    fn thresholds() -> QualityThresholds {
        QualityThresholds {
            min_chars_per_page: 8.0,
            max_replacement_ratio: 0.05,
            max_control_ratio: 0.05,
            min_readable_ratio: 0.6,
        }
    }

    fn document(text: &str, pages: Option<u32>) -> ExtractedDocument {
        let blocks = vec![Block { kind: BlockKind::Paragraph, text: text.to_owned(), page: Some(1) }];
        ExtractedDocument { format: "pdf".into(), blocks, page_count: pages, ..Default::default() }
    }

    fn reason(text: &str, pages: Option<u32>) -> Option<&'static str> {
        check(&document(text, pages), &thresholds()).err().map(|failure| failure.reason)
    }

    #[test]
    fn good_text_passes() {
        assert_eq!(reason("Café au lait — 3 × 4 = 12, «quoted» 日本語のテキスト.", Some(1)), None);
    }

    #[test]
    fn each_check_has_its_reason() {
        assert_eq!(reason("  \n ", Some(2)), Some("empty"));
        assert_eq!(reason("abc\u{FFFD}\u{FFFD}def", None), Some("garbled_text"));
        assert_eq!(reason("abc\u{1}\u{2}\u{3}defghij", None), Some("control_characters"));
        assert_eq!(reason("ab\u{E000}\u{E001}\u{E002}\u{E003}", None), Some("unreadable_text"));
        assert_eq!(reason("Page one only has this.", Some(40)), Some("low_text_yield"));
        let mut sparse_workbook = document("Totals", Some(3));
        sparse_workbook.format = "xlsx".into();
        assert!(check(&sparse_workbook, &thresholds()).is_ok(), "sheets are not scanned pages");
    }

    #[test]
    fn a_container_without_text_of_its_own_passes() {
        let mut mailbox = document("", None);
        mailbox.children.push(sluice_core::EmbeddedFile { name: "1.eml".into(), bytes: b"x".to_vec() });
        assert!(check(&mailbox, &thresholds()).is_ok());
    }
}
