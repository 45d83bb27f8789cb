//! Plain text: decoding, and paragraphs split at blank lines.

use sluice_core::{Block, BlockKind, ExtractedDocument};

use crate::ExtractError;

/// Decodes UTF-8 (with or without BOM), UTF-16 with a BOM, and otherwise the legacy encoding
/// chardetng finds most likely (Windows-1252, Shift_JIS, KOI8-R, ...).
pub(crate) fn decode(bytes: &[u8]) -> Result<String, ExtractError> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return utf8(rest);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return utf16(rest, u16::from_be_bytes);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(_) => Ok(legacy(bytes)),
    }
}

fn legacy(bytes: &[u8]) -> String {
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Allow);
    detector.feed(bytes, true);
    let encoding = detector.guess(None, chardetng::Utf8Detection::Deny);
    let (text, _, _) = encoding.decode(bytes);
    text.into_owned()
}

fn utf8(bytes: &[u8]) -> Result<String, ExtractError> {
    String::from_utf8(bytes.to_vec()).map_err(|err| ExtractError::Encoding {
        detail: format!("not UTF-8 (invalid byte at offset {})", err.utf8_error().valid_up_to()),
    })
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, ExtractError> {
    let units = bytes.chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|err| ExtractError::Encoding { detail: format!("invalid UTF-16: {err}") })
}

pub(crate) fn extract(text: &str) -> ExtractedDocument {
    ExtractedDocument { format: "text".into(), blocks: paragraphs(text, None), ..Default::default() }
}

/// Splits text at blank lines into paragraph blocks.
pub(crate) fn paragraphs(text: &str, page: Option<u32>) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut blocks, &mut current, page);
        } else {
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(line);
        }
    }
    flush(&mut blocks, &mut current, page);
    blocks
}

fn flush(blocks: &mut Vec<Block>, current: &mut String, page: Option<u32>) {
    if !current.trim().is_empty() {
        blocks.push(Block { kind: BlockKind::Paragraph, text: std::mem::take(current), page });
    }
    current.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_boms() {
        assert_eq!(decode(b"\xEF\xBB\xBFhi").unwrap(), "hi");
        assert_eq!(decode(b"\xFF\xFEh\0i\0").unwrap(), "hi");
        assert_eq!(decode(b"\xFE\xFF\0h\0i").unwrap(), "hi");
        assert_eq!(decode(b"caf\xE9 cr\xE8me br\xFBl\xE9e").unwrap(), "café crème brûlée");
        assert!(decode(b"\xEF\xBB\xBFcaf\xE9").is_err(), "a UTF-8 BOM promises UTF-8");
    }

    #[test]
    fn splits_paragraphs_at_blank_lines() {
        let blocks = paragraphs("one\ntwo\n\n  \nthree\n", Some(2));
        let texts: Vec<&str> = blocks.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(texts, ["one\ntwo", "three"]);
        assert!(blocks.iter().all(|b| b.page == Some(2)));
    }
}
