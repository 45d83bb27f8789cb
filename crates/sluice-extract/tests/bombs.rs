//! Hostile containers, generated here: each must stop at its limit, quickly, with
//! `limit_exceeded`, never by exhausting memory.

use std::io::{Cursor, Write};

use sluice_extract::{Limits, extract};
use zip::write::SimpleFileOptions;

const CONTENT_TYPES: &str =
    r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#;

/// A DOCX package whose `word/document.xml` is `document`.
fn docx(document: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("[Content_Types].xml", options).unwrap();
    zip.write_all(CONTENT_TYPES.as_bytes()).unwrap();
    zip.start_file("word/document.xml", options).unwrap();
    zip.write_all(document).unwrap();
    zip.finish().unwrap().into_inner()
}

fn limits() -> Limits {
    Limits { max_decompressed_bytes: 16 << 20, ..Limits::default() }
}

#[test]
fn zip_bomb_stops_at_the_decompressed_limit() {
    // 128 MiB of one repeated paragraph compresses to well under 1 MiB.
    let paragraph = b"<w:p><w:r><w:t>bomb</w:t></w:r></w:p>";
    let mut document = b"<w:document xmlns:w=\"w\"><w:body>".to_vec();
    while document.len() < 128 << 20 {
        document.extend_from_slice(paragraph);
    }
    document.extend_from_slice(b"</w:body></w:document>");
    let bomb = docx(&document);
    assert!(bomb.len() < 2 << 20, "the bomb is small on disk: {} bytes", bomb.len());
    let err = extract(&bomb, "bomb.docx", &limits()).unwrap_err();
    assert_eq!(err.reason(), "limit_exceeded", "{err}");
    assert!(err.to_string().contains("max_decompressed_bytes"), "{err}");
}

#[test]
fn entity_expansion_bomb_is_refused() {
    let mut laughs = String::from("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for level in 1..10 {
        let previous = if level == 1 { "lol".to_owned() } else { format!("lol{}", level - 1) };
        laughs.push_str(&format!("<!ENTITY lol{level} \"{}\">", format!("&{previous};").repeat(10)));
    }
    laughs
        .push_str("]><w:document xmlns:w=\"w\"><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>");
    let err = extract(&docx(laughs.as_bytes()), "laughs.docx", &limits()).unwrap_err();
    assert_eq!(err.reason(), "limit_exceeded", "{err}");
    assert!(err.to_string().contains("entit"), "{err}");
}

#[test]
fn nesting_bomb_stops_at_the_depth_limit() {
    let depth = 100_000;
    let mut document = b"<w:document xmlns:w=\"w\"><w:body>".to_vec();
    document.extend(std::iter::repeat_n(b"<w:sdt>".as_slice(), depth).flatten());
    document.extend(std::iter::repeat_n(b"</w:sdt>".as_slice(), depth).flatten());
    document.extend_from_slice(b"</w:body></w:document>");
    let err = extract(&docx(&document), "deep.docx", &limits()).unwrap_err();
    assert_eq!(err.reason(), "limit_exceeded", "{err}");
    assert!(err.to_string().contains("max_xml_depth"), "{err}");
}

#[test]
fn a_plain_docx_within_limits_reads() {
    let document =
        br#"<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>Hello, world.</w:t></w:r></w:p></w:body></w:document>"#;
    let extracted = extract(&docx(document), "ok.docx", &limits()).unwrap();
    assert_eq!(extracted.blocks[0].text, "Hello, world.");
}
