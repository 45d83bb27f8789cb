//! Format detection from content: magic bytes, the part names inside a zip package, the stream
//! names inside an OLE2 compound file, and the header lines of a message.
//!
//! The file name only separates Markdown from plain text, and e-mail from text where the
//! headers alone are ambiguous.

use crate::office::sheets::Workbook;
use crate::package::Package;

/// What a file is, as far as extraction is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pdf,
    Html,
    Markdown,
    Text,
    Docx,
    Pptx,
    /// OpenDocument text (`odt`) or presentation (`odp`).
    OpenDocument(&'static str),
    Workbook(Workbook),
    Email,
    Mailbox,
    /// A password-protected office document (an OLE2 file holding an encrypted package).
    EncryptedOffice,
    /// A format no extractor reads, with a short description of what was detected.
    Unsupported(&'static str),
}

impl Format {
    /// Short name, as stored with the document.
    pub fn name(self) -> &'static str {
        match self {
            Format::Pdf => "pdf",
            Format::Html => "html",
            Format::Markdown => "markdown",
            Format::Text => "text",
            Format::Docx => "docx",
            Format::Pptx => "pptx",
            Format::OpenDocument(name) => name,
            Format::Workbook(kind) => kind.name(),
            Format::Email => "email",
            Format::Mailbox => "mbox",
            Format::EncryptedOffice => "encrypted office document",
            Format::Unsupported(what) => what,
        }
    }
}

const OLE2: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

const MAGIC: &[(&[u8], Format)] = &[
    (b"{\\rtf", Format::Unsupported("rtf")),
    (b"\x89PNG", Format::Unsupported("png image")),
    (b"\xFF\xD8\xFF", Format::Unsupported("jpeg image")),
    (b"GIF8", Format::Unsupported("gif image")),
    (b"II*\x00", Format::Unsupported("tiff image")),
    (b"MM\x00*", Format::Unsupported("tiff image")),
    (b"BM", Format::Unsupported("bmp image")),
    (b"\x1F\x8B", Format::Unsupported("gzip archive")),
    (b"7z\xBC\xAF", Format::Unsupported("7z archive")),
    (b"Rar!", Format::Unsupported("rar archive")),
    (b"BZh", Format::Unsupported("bzip2 archive")),
    (b"\xFD7zXZ\x00", Format::Unsupported("xz archive")),
    (b"\x7FELF", Format::Unsupported("executable")),
    (b"MZ", Format::Unsupported("executable")),
    (b"OggS", Format::Unsupported("ogg media")),
    (b"ID3", Format::Unsupported("mp3 audio")),
    (b"\x00\x00\x01\x00", Format::Unsupported("icon image")),
];

/// Detects the format by content.
pub fn sniff(bytes: &[u8], file_name: &str) -> Format {
    let head = &bytes[..bytes.len().min(1024)];
    // PDF readers accept junk before the header, so look for it anywhere in the first KiB.
    if head.windows(5).any(|window| window == b"%PDF-") {
        return Format::Pdf;
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return sniff_zip(bytes);
    }
    if bytes.starts_with(OLE2) {
        return sniff_ole2(bytes);
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return Format::Unsupported("mp4/quicktime media");
    }
    if head.starts_with(b"RIFF") {
        return Format::Unsupported("riff media (wav/avi/webp)");
    }
    // A magic number of letters ("BM", "MZ", "ID3") also starts ordinary text ("BMP/SMAD1
    // signaling ..."): it counts only when binary bytes follow, as they do in those formats.
    let magic = MAGIC.iter().find(|(magic, _)| {
        bytes.starts_with(magic)
            && (!magic.iter().all(|b| b.is_ascii_graphic()) || has_control_bytes(&head[..head.len().min(32)]))
    });
    if let Some((_, format)) = magic {
        return *format;
    }
    let is_utf16 = bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF");
    if !is_utf16 && head.contains(&0) {
        return Format::Unsupported("binary data");
    }
    let extension = file_name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
    if let Some(format) = sniff_message(head, extension.as_deref()) {
        return format;
    }
    if looks_like_html(head) {
        return Format::Html;
    }
    match extension.as_deref() {
        Some("md" | "markdown" | "mdown" | "mkd") => Format::Markdown,
        _ => Format::Text,
    }
}

/// Whether `bytes` hold a NUL or a control character other than tab, newline and carriage return.
fn has_control_bytes(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
}

/// OOXML and OpenDocument packages by the parts they hold; other zips are archives.
fn sniff_zip(bytes: &[u8]) -> Format {
    let Ok(package) = Package::open(bytes, 1 << 20) else {
        return Format::Unsupported("damaged zip archive");
    };
    if package.contains("word/document.xml") {
        return Format::Docx;
    }
    if package.contains("ppt/presentation.xml") {
        return Format::Pptx;
    }
    if package.contains("xl/workbook.xml") {
        return Format::Workbook(Workbook::Xlsx);
    }
    if package.contains("xl/workbook.bin") {
        return Format::Workbook(Workbook::Xlsb);
    }
    let mimetype = package.read("mimetype").ok().flatten().unwrap_or_default();
    match mimetype.trim_ascii() {
        b"application/vnd.oasis.opendocument.text" | b"application/vnd.oasis.opendocument.text-template" => {
            Format::OpenDocument("odt")
        }
        b"application/vnd.oasis.opendocument.presentation"
        | b"application/vnd.oasis.opendocument.presentation-template" => Format::OpenDocument("odp"),
        b"application/vnd.oasis.opendocument.spreadsheet"
        | b"application/vnd.oasis.opendocument.spreadsheet-template" => Format::Workbook(Workbook::Ods),
        b"application/epub+zip" => Format::Unsupported("epub e-book"),
        mimetype if mimetype.starts_with(b"application/vnd.oasis.opendocument") => {
            Format::Unsupported("opendocument drawing/chart/formula")
        }
        _ if package.contains("[Content_Types].xml") => sniff_content_types(&package),
        _ => Format::Unsupported("zip archive"),
    }
}

/// OOXML packages with their main part at an unusual path, by its declared content type.
fn sniff_content_types(package: &Package<'_>) -> Format {
    let types = package.read("[Content_Types].xml").ok().flatten().unwrap_or_default();
    let types = String::from_utf8_lossy(&types);
    if types.contains("spreadsheetml.sheet.main") || types.contains("ms-excel.sheet.macroEnabled.main") {
        Format::Workbook(Workbook::Xlsx)
    } else {
        Format::Unsupported("other office open xml package (xps/vsdx)")
    }
}

/// OLE2 compound files by the names of their streams (UTF-16 in the directory).
fn sniff_ole2(bytes: &[u8]) -> Format {
    // Writers differ in case (`Workbook`, `WORKBOOK`), so compare ASCII case-insensitively.
    let has_stream = |name: &str| {
        let utf16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        bytes.windows(utf16.len()).any(|window| window.eq_ignore_ascii_case(&utf16))
    };
    if has_stream("EncryptedPackage") {
        Format::EncryptedOffice
    } else if has_stream("Workbook") || has_stream("Book") {
        Format::Workbook(Workbook::Xls)
    } else if has_stream("WordDocument") {
        Format::Unsupported("legacy Word document (.doc)")
    } else if has_stream("PowerPoint Document") {
        Format::Unsupported("legacy PowerPoint presentation (.ppt)")
    } else if has_stream("__substg1.0_") {
        Format::Unsupported("Outlook message (.msg)")
    } else {
        Format::Unsupported("OLE2 compound file")
    }
}

/// Header names that open RFC 822 messages.
const MESSAGE_HEADERS: &[&str] = &[
    "from",
    "to",
    "subject",
    "date",
    "received",
    "return-path",
    "message-id",
    "mime-version",
    "delivered-to",
    "x-mailer",
    "content-type",
    "cc",
    "reply-to",
    "sender",
    "x-original-to",
    "references",
    "in-reply-to",
];

/// A mailbox starts with a `From ` separator line; a message with header lines, at least two of
/// them well-known message headers (one is enough under an e-mail extension).
fn sniff_message(head: &[u8], extension: Option<&str>) -> Option<Format> {
    let text = String::from_utf8_lossy(head);
    let text = text.trim_start_matches('\u{feff}');
    if text.starts_with("From ") {
        let first_line_ends = text.find('\n')?;
        let next = &text[first_line_ends + 1..];
        if next.split(':').next().is_some_and(is_header_name) {
            return Some(Format::Mailbox);
        }
    }
    let mut known = 0;
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            continue; // folded continuation of the previous header
        }
        let (name, _) = line.split_once(':')?;
        if !is_header_name(name) {
            return None;
        }
        if MESSAGE_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            known += 1;
        }
    }
    let needed = if matches!(extension, Some("eml" | "msg" | "mht" | "mhtml" | "mbx")) { 1 } else { 2 };
    (known >= needed).then_some(Format::Email)
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.len() < 80 && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
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
        "docx" | "xlsx" | "pptx" | "odt" | "ods" | "odp" | "epub" | "zip" | "xlsb" => "zip-based",
        "doc" | "xls" | "ppt" => "OLE2",
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
        assert_eq!(sniff(b"PK\x03\x04rest", "a.docx"), Format::Unsupported("damaged zip archive"));
        assert_eq!(sniff(b"# Title\n\ntext", "notes.md"), Format::Markdown);
        // Letters that are also a magic number: text unless binary bytes follow.
        assert_eq!(sniff(b"BMP/SMAD1 signaling sets a threshold", "11831598.txt"), Format::Text);
        assert_eq!(sniff(b"MZ is a postcode prefix", "a.txt"), Format::Text);
        assert_eq!(sniff(b"BM\x36\x00\x0C\x00\x00\x00\x00\x00\x36\x00", "a"), Format::Unsupported("bmp image"));
        assert_eq!(sniff(b"MZ\x90\x00\x03\x00", "a"), Format::Unsupported("executable"));
        assert_eq!(sniff(b"# Title\n\ntext", "notes.txt"), Format::Text);
        assert_eq!(sniff(b"abc\0def", "x.txt"), Format::Unsupported("binary data"));
    }

    #[test]
    fn detects_messages_and_mailboxes() {
        let message = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody";
        assert_eq!(sniff(message, "note.txt"), Format::Email);
        assert_eq!(sniff(b"From - Mon Jun  3 1996\nFrom: a@b\nSubject: x\n\nbody", "box"), Format::Mailbox);
        assert_eq!(sniff(b"Subject: only one header\n\nbody", "a.txt"), Format::Text);
        assert_eq!(sniff(b"Subject: only one header\n\nbody", "a.eml"), Format::Email);
        assert_eq!(sniff(b"Note: this is prose\nwith: colons", "a.txt"), Format::Text);
    }
}
