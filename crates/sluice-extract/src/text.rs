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

/// Decodes an HTML page as browsers do: a BOM first, then the charset a `<meta>` declares in
/// the first 1024 bytes, then what [`decode`] finds.
pub(crate) fn decode_html(bytes: &[u8]) -> Result<String, ExtractError> {
    let has_bom = [&b"\xEF\xBB\xBF"[..], b"\xFF\xFE", b"\xFE\xFF"].iter().any(|bom| bytes.starts_with(bom));
    // A page declared UTF-8 that is not is common (a template's boilerplate over legacy
    // content): the detector reads it better than replacement characters would.
    let declared = declared_charset(&bytes[..bytes.len().min(1024)])
        .filter(|&encoding| encoding != encoding_rs::UTF_8 || std::str::from_utf8(bytes).is_ok());
    if !has_bom && let Some(encoding) = declared {
        let (text, _, _) = encoding.decode(bytes);
        return Ok(text.into_owned());
    }
    decode(bytes)
}

/// The encoding named by `charset=` in a `<meta>` tag (`<meta charset="...">` or the
/// `http-equiv` form). A UTF-16 label means UTF-8 here, as in the HTML standard: a page whose
/// bytes could be read to find the tag is not UTF-16.
fn declared_charset(head: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let lower = head.to_ascii_lowercase();
    let mut rest = &lower[..];
    while let Some(start) = find(rest, b"<meta") {
        let tag = &rest[start..];
        let tag = &tag[..find(tag, b">").unwrap_or(tag.len())];
        if let Some(at) = find(tag, b"charset=") {
            let value = tag[at + b"charset=".len()..].trim_ascii_start();
            let value = value.strip_prefix(b"\"").or_else(|| value.strip_prefix(b"'")).unwrap_or(value);
            let end = value.iter().position(|&b| matches!(b, b'"' | b'\'' | b';' | b'/' | b' ')).unwrap_or(value.len());
            let encoding = encoding_rs::Encoding::for_label(&value[..end])?;
            let is_utf16 = encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE;
            return Some(if is_utf16 { encoding_rs::UTF_8 } else { encoding });
        }
        rest = &rest[start + b"<meta".len()..];
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
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
    fn html_follows_its_meta_charset() {
        let (cp1251, _, _) = encoding_rs::WINDOWS_1251.encode("Привет, мир: отчёт о проверке");
        let page = [
            &b"<html><head><meta http-equiv='Content-Type' content='text/html; charset=windows-1251'>"[..],
            &cp1251,
            b"</head></html>",
        ]
        .concat();
        assert!(decode_html(&page).unwrap().contains("Привет, мир: отчёт о проверке"));
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("日本語のテキスト");
        let page = [&b"<meta charset=\"Shift_JIS\"><p>"[..], &sjis].concat();
        assert!(decode_html(&page).unwrap().ends_with("日本語のテキスト"));
        // A BOM wins over the declaration; a UTF-16 declaration means UTF-8.
        assert_eq!(decode_html(b"\xEF\xBB\xBF<meta charset=koi8-r>\xC3\xA9").unwrap(), "<meta charset=koi8-r>é");
        assert_eq!(decode_html(b"<meta charset=utf-16>\xC3\xA9").unwrap(), "<meta charset=utf-16>é");
        // An unknown label is ignored.
        assert_eq!(decode_html(b"<meta charset=bogus>caf\xC3\xA9").unwrap(), "<meta charset=bogus>café");
    }

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
