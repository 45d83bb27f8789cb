//! PDF through lopdf: the text of each page (`pdf_text.rs`), in page order, with page numbers
//! kept.
//!
//! Documents encrypted with an empty user password are opened; any other password makes the
//! document `encrypted`. A document with pages but no text layer, only images, is `needs_ocr`.

use sluice_core::ExtractedDocument;

use crate::pdf_text::page_text;
use crate::text::paragraphs;
use crate::{ExtractError, Limits};

pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<ExtractedDocument, ExtractError> {
    let document = lopdf::Document::load_mem(bytes).map_err(|err| match err {
        lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword => ExtractError::Encrypted,
        err => ExtractError::Malformed { format: "PDF", detail: err.to_string() },
    })?;
    // lopdf decrypts documents whose user password is empty while loading (and drops the
    // `/Encrypt` entry); one that still has it needs a password we do not have.
    if document.trailer.has(b"Encrypt") && !document.was_encrypted() {
        return Err(ExtractError::Encrypted);
    }
    let pages = document.get_pages();
    if pages.is_empty() {
        return Err(ExtractError::Malformed {
            format: "PDF",
            detail: "no pages found: the page tree is unreadable".into(),
        });
    }
    if pages.len() > limits.max_pages as usize {
        return Err(ExtractError::LimitExceeded {
            limit: "max_pages",
            detail: format!("{} pages, over the limit of {}", pages.len(), limits.max_pages),
        });
    }
    let mut blocks = Vec::new();
    let mut first_error = None;
    let mut readable_pages = 0;
    let mut image_pages = 0;
    let budget = usize::try_from(limits.max_decompressed_bytes).unwrap_or(usize::MAX);
    for (&number, &page_id) in &pages {
        match page_text(&document, page_id, budget) {
            Ok(text) if !text.trim().is_empty() => {
                readable_pages += 1;
                blocks.extend(paragraphs(&text, Some(number)));
            }
            Ok(_) => {
                if document.get_page_images(page_id).is_ok_and(|images| !images.is_empty()) {
                    image_pages += 1;
                }
            }
            Err(err) => {
                first_error.get_or_insert_with(|| format!("page {number}: {err}"));
            }
        }
    }
    if readable_pages == 0 {
        if image_pages > 0 {
            return Err(ExtractError::NeedsOcr { pages: pages.len() as u32, image_pages });
        }
        if let Some(detail) = first_error {
            return Err(ExtractError::Malformed { format: "PDF", detail });
        }
    }
    let (title, metadata) = info(&document);
    Ok(ExtractedDocument {
        format: "pdf".into(),
        title,
        blocks,
        page_count: Some(u32::try_from(pages.len()).unwrap_or(u32::MAX)),
        metadata,
        ..Default::default()
    })
}

/// Characters kept of one document-information field (a hostile file can make it megabytes).
const MAX_INFO_CHARS: usize = 1_000;

/// The title and the metadata pairs of the document information dictionary (`/Info` in the
/// trailer): Title, Author, Subject, CreationDate, ModDate. An unreadable entry is left out.
fn info(document: &lopdf::Document) -> (Option<String>, Vec<(String, String)>) {
    let Some(info) = document.trailer.get(b"Info").ok().and_then(|info| match info {
        lopdf::Object::Reference(id) => document.get_dictionary(*id).ok(),
        lopdf::Object::Dictionary(dictionary) => Some(dictionary),
        _ => None,
    }) else {
        return (None, Vec::new());
    };
    let field = |key: &[u8]| {
        let object = info.get(key).ok()?;
        let object = match object {
            lopdf::Object::Reference(id) => document.get_object(*id).ok()?,
            object => object,
        };
        let text = lopdf::decode_text_string(object).ok()?;
        let text: String = text.chars().filter(|c| !c.is_control()).take(MAX_INFO_CHARS).collect();
        Some(text.trim().to_owned()).filter(|text| !text.is_empty())
    };
    let mut metadata = Vec::new();
    for (key, name) in
        [(&b"Author"[..], "author"), (b"Subject", "subject"), (b"CreationDate", "created"), (b"ModDate", "modified")]
    {
        if let Some(value) = field(key) {
            metadata.push((name.to_owned(), value));
        }
    }
    (field(b"Title"), metadata)
}
