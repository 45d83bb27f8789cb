//! The PII stage: detection runs once over a document's whole cleaned text (so a value that
//! straddles two chunks is still found), then the policy is applied to every chunk the value
//! touches, before anything is embedded or stored.

use std::collections::BTreeMap;

use sluice_core::{Chunk, TextHash};

use crate::pii::{self, PiiDetector, PiiPolicy, PiiSpan};

/// A document's chunks after the policy, and how many values of each kind it held.
pub struct Redacted {
    pub chunks: Vec<Chunk>,
    pub counts: BTreeMap<String, usize>,
}

/// Applies `policy` to the chunks of `text` (the cleaned text they were cut from): `Tag`
/// lists the kinds on each chunk, `Mask` also replaces each value (or the part of it inside
/// the chunk) with its placeholder and rehashes the text, `DropChunk` leaves out every chunk
/// holding a value.
pub fn redact(detector: &PiiDetector, policy: PiiPolicy, text: &str, chunks: Vec<Chunk>) -> Redacted {
    let spans = detector.detect(text);
    let counts = pii::count_by_kind(&spans);
    if spans.is_empty() {
        return Redacted { chunks, counts };
    }
    let char_spans = to_char_spans(text, &spans);
    let mut kept = Vec::with_capacity(chunks.len());
    for mut chunk in chunks {
        let inside: Vec<&(usize, usize, &PiiSpan)> = char_spans
            .iter()
            .filter(|(start, end, _)| *start < chunk.char_end as usize && *end > chunk.char_start as usize)
            .collect();
        if inside.is_empty() {
            kept.push(chunk);
            continue;
        }
        let mut kinds: Vec<String> = inside.iter().map(|(_, _, span)| span.kind.as_str().to_owned()).collect();
        kinds.sort();
        kinds.dedup();
        match policy {
            PiiPolicy::DropChunk => continue,
            PiiPolicy::Tag => {}
            PiiPolicy::Mask => {
                let local: Vec<PiiSpan> = inside
                    .iter()
                    .map(|(start, end, span)| {
                        let from = (*start).max(chunk.char_start as usize) - chunk.char_start as usize;
                        let to = (*end).min(chunk.char_end as usize) - chunk.char_start as usize;
                        PiiSpan {
                            kind: span.kind.clone(),
                            start: byte_at(&chunk.text, from),
                            end: byte_at(&chunk.text, to),
                        }
                    })
                    .collect();
                chunk.text = pii::mask(&chunk.text, &local);
                chunk.text_hash = TextHash::of_text(&chunk.text);
            }
        }
        chunk.pii = kinds;
        kept.push(chunk);
    }
    Redacted { chunks: kept, counts }
}

/// Masks a short text whole (a title) under `Mask`; other policies leave it as it is.
pub fn redact_text(detector: &PiiDetector, policy: PiiPolicy, text: &str) -> String {
    if policy != PiiPolicy::Mask {
        return text.to_owned();
    }
    pii::mask(text, &detector.detect(text))
}

/// Byte spans as (char start, char end) pairs; `spans` are sorted by start.
fn to_char_spans<'s>(text: &str, spans: &'s [PiiSpan]) -> Vec<(usize, usize, &'s PiiSpan)> {
    let mut chars_before = 0;
    let mut counted_to = 0;
    let mut count_to = |byte: usize| {
        // Spans are sorted and do not overlap, so the counting only moves forward.
        if byte >= counted_to {
            chars_before += text[counted_to..byte].chars().count();
            counted_to = byte;
            chars_before
        } else {
            text[..byte].chars().count()
        }
    };
    spans.iter().map(|span| (count_to(span.start), count_to(span.end), span)).collect()
}

/// The byte offset of character `index` in `text` (its length past the end).
fn byte_at(text: &str, index: usize) -> usize {
    text.char_indices().nth(index).map_or(text.len(), |(byte, _)| byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(text: &str, ordinal: u32, char_start: u32) -> Chunk {
        Chunk {
            ordinal,
            text: text.to_owned(),
            text_hash: TextHash::of_text(text),
            char_start,
            char_end: char_start + text.chars().count() as u32,
            page: None,
            token_count: 1,
            heading_path: Vec::new(),
            pii: Vec::new(),
            language: None,
        }
    }

    /// Two chunks cut from one text: the e-mail address straddles the boundary.
    fn split_document() -> (String, Vec<Chunk>) {
        let text = "Écrivez à jane.doe@example.com s'il vous plaît. Rien ici.".to_owned();
        let cut = text.find("doe@").unwrap();
        let first = &text[..cut];
        let second = &text[cut..];
        let chunks = vec![chunk(first, 0, 0), chunk(second, 1, first.chars().count() as u32)];
        (text, chunks)
    }

    #[test]
    fn masking_covers_a_value_split_across_chunks() {
        let detector = PiiDetector::new(&[]).unwrap();
        let (text, chunks) = split_document();
        let redacted = redact(&detector, PiiPolicy::Mask, &text, chunks);
        assert_eq!(redacted.counts.get("email"), Some(&1));
        assert_eq!(redacted.chunks[0].text, "Écrivez à [EMAIL]");
        assert_eq!(redacted.chunks[1].text, "[EMAIL] s'il vous plaît. Rien ici.");
        assert!(redacted.chunks.iter().all(|c| c.pii == ["email"] && !c.text.contains("example.com")));
        assert_eq!(redacted.chunks[1].text_hash, TextHash::of_text(&redacted.chunks[1].text));
    }

    #[test]
    fn tag_keeps_text_and_drop_leaves_chunks_out() {
        let detector = PiiDetector::new(&[]).unwrap();
        let (text, chunks) = split_document();
        let tagged = redact(&detector, PiiPolicy::Tag, &text, chunks.clone());
        assert_eq!(tagged.chunks[0].text, chunks[0].text);
        assert_eq!(tagged.chunks[0].pii, ["email"]);
        let mut with_clean_tail = chunks.clone();
        with_clean_tail.push(chunk("Nothing personal.", 2, 200));
        let dropped = redact(&detector, PiiPolicy::DropChunk, &text, with_clean_tail);
        assert_eq!(dropped.chunks.len(), 1);
        assert_eq!(dropped.chunks[0].ordinal, 2);
        assert_eq!(redact_text(&detector, PiiPolicy::Mask, "From bob@corp.example"), "From [EMAIL]");
    }
}
