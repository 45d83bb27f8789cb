//! Format detection from the first bytes of a file.

/// What a file is, as far as extraction is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pdf,
    Html,
    Markdown,
    Text,
    /// A format no extractor reads yet, with a short description of what was detected.
    Unsupported(&'static str),
}

const MAGIC: &[(&[u8], Format)] = &[
    (b"PK\x03\x04", Format::Unsupported("zip container (office document or archive)")),
    (b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", Format::Unsupported("OLE2 compound file (legacy office document)")),
    (b"{\\rtf", Format::Unsupported("rtf")),
    (b"\x89PNG", Format::Unsupported("png image")),
    (b"\xFF\xD8\xFF", Format::Unsupported("jpeg image")),
    (b"GIF8", Format::Unsupported("gif image")),
    (b"II*\x00", Format::Unsupported("tiff image")),
    (b"MM\x00*", Format::Unsupported("tiff image")),
    (b"\x1F\x8B", Format::Unsupported("gzip archive")),
    (b"7z\xBC\xAF", Format::Unsupported("7z archive")),
    (b"Rar!", Format::Unsupported("rar archive")),
    (b"\x7FELF", Format::Unsupported("executable")),
];

/// Detects the format by content; the file name only separates Markdown from plain text.
pub fn sniff(bytes: &[u8], file_name: &str) -> Format {
    let head = &bytes[..bytes.len().min(1024)];
    // PDF readers accept junk before the header, so look for it anywhere in the first KiB.
    if head.windows(5).any(|window| window == b"%PDF-") {
        return Format::Pdf;
    }
    if let Some((_, format)) = MAGIC.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return *format;
    }
    let is_utf16 = bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF");
    if !is_utf16 && head.contains(&0) {
        return Format::Unsupported("binary data");
    }
    if looks_like_html(head) {
        return Format::Html;
    }
    let extension = file_name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("md" | "markdown" | "mdown" | "mkd") => Format::Markdown,
        _ => Format::Text,
    }
}

/// Tags that, near the start of a file that opens with `<`, say it is HTML (pages saved as
/// fragments often start with a `<div>` or a `<table>`).
const HTML_TAGS: &[&str] = &[
    "<html", "<head", "<body", "<div", "<p>", "<p ", "<table", "<span", "<a ", "<br", "<style", "<script", "<meta",
    "<title", "<h1", "<h2", "<ul", "<li", "<!--",
];

fn looks_like_html(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let start = text.trim_start_matches('\u{feff}').trim_start();
    if start.starts_with("<!doctype html") {
        return true;
    }
    start.starts_with('<') && HTML_TAGS.iter().any(|tag| text.contains(tag))
}

/// The format a file's extension claims when that format is binary: text content under such
/// a name is a damaged or mislabelled file, not a text document.
pub(crate) fn claimed_binary_format(file_name: &str) -> Option<&'static str> {
    let extension = file_name.rsplit_once('.')?.1.to_ascii_lowercase();
    let format = match extension.as_str() {
        "pdf" => "PDF",
        "docx" | "xlsx" | "pptx" | "odt" | "ods" | "odp" | "epub" | "zip" => "zip-based",
        "doc" | "xls" | "ppt" | "msg" => "OLE2",
        "png" | "jpg" | "jpeg" | "gif" | "tif" | "tiff" => "image",
        _ => return None,
    };
    Some(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_content_not_extension() {
        assert_eq!(sniff(b"%PDF-1.7\n...", "report.txt"), Format::Pdf);
        assert_eq!(sniff(b"<!DOCTYPE html><html></html>", "page.txt"), Format::Html);
        assert_eq!(sniff(b"  <html><body>x</body></html>", "a"), Format::Html);
        assert_eq!(sniff(b"<div class=\"x\"><p>fragment</p></div>", "a"), Format::Html);
        assert_eq!(sniff(b"<3 is a heart, not a tag", "a"), Format::Text);
        assert_eq!(
            sniff(b"PK\x03\x04rest", "a.txt"),
            Format::Unsupported("zip container (office document or archive)")
        );
        assert_eq!(sniff(b"# Title\n\ntext", "notes.md"), Format::Markdown);
        assert_eq!(sniff(b"# Title\n\ntext", "notes.txt"), Format::Text);
        assert_eq!(sniff(b"abc\0def", "x.txt"), Format::Unsupported("binary data"));
    }
}
