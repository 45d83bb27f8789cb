//! PDF through lopdf: the text of each page, in page order, with page numbers kept.

use sluice_core::ExtractedDocument;

use crate::ExtractError;
use crate::text::paragraphs;

pub(crate) fn extract(bytes: &[u8]) -> Result<ExtractedDocument, ExtractError> {
    let document = lopdf::Document::load_mem(bytes)
        .map_err(|err| ExtractError::Malformed { format: "PDF", detail: err.to_string() })?;
    // lopdf opens documents whose user password is empty by itself; anything else needs a
    // password we do not have.
    if document.is_encrypted() && document.authenticate_password("").is_err() {
        return Err(ExtractError::Encrypted);
    }
    let pages = document.get_pages();
    let mut blocks = Vec::new();
    let mut first_error = None;
    let mut readable_pages = 0;
    for &number in pages.keys() {
        match document.extract_text(&[number]) {
            Ok(text) => {
                readable_pages += 1;
                blocks.extend(paragraphs(&text, Some(number)));
            }
            Err(err) => {
                first_error.get_or_insert_with(|| format!("page {number}: {err}"));
            }
        }
    }
    if readable_pages == 0
        && let Some(detail) = first_error
    {
        return Err(ExtractError::Malformed { format: "PDF", detail });
    }
    Ok(ExtractedDocument {
        format: "pdf",
        title: None,
        blocks,
        page_count: Some(u32::try_from(pages.len()).unwrap_or(u32::MAX)),
    })
}
