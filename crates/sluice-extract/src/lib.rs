//! From bytes to an [`ExtractedDocument`]: format detection by content, then one extractor per
//! format, under per-document [`Limits`].
//!
//! Extractors are pure functions of the bytes (no I/O, no clock), so the same bytes always give
//! the same blocks, which is what lets a document version be identified by its content hash.
//! They never panic on purpose; the caller still isolates them (a parser bug must cost one
//! document, not the run), and bounds their memory and time, which no in-process check can.

mod email;
mod html;
mod limits;
mod markdown;
pub mod metadata;
mod office;
mod package;
mod pdf;
mod pdf_text;
mod sniff;
mod text;
mod tree;
mod xml;

use sluice_core::{ExtractedDocument, Stage, StageFailure};

pub use limits::Limits;
pub use office::sheets::Workbook;
pub use sniff::{Format, sniff};
pub use tree::{ExtractedChild, ExtractedFile, extract_file, panic_message};

/// Version of the extraction code; part of the extract stage's fingerprint.
pub const EXTRACTOR_VERSION: &str = "3";

/// Why a document could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("unsupported format: {detected}")]
    Unsupported { detected: String },
    #[error("the document is encrypted and needs a password")]
    Encrypted,
    #[error("no text layer: {image_pages} of {pages} page(s) are images only (scanned pages need OCR)")]
    NeedsOcr { pages: u32, image_pages: u32 },
    #[error("the document is not valid {format}: {detail}")]
    Malformed { format: &'static str, detail: String },
    #[error("text is not in a supported encoding: {detail}")]
    Encoding { detail: String },
    #[error("over the {limit} limit: {detail}")]
    LimitExceeded { limit: &'static str, detail: String },
}

impl ExtractError {
    /// The quarantine reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            ExtractError::Unsupported { .. } => "unsupported_format",
            ExtractError::Encrypted => "encrypted",
            ExtractError::NeedsOcr { .. } => "needs_ocr",
            ExtractError::Malformed { .. } => "parse_error",
            ExtractError::Encoding { .. } => "unsupported_encoding",
            ExtractError::LimitExceeded { .. } => "limit_exceeded",
        }
    }

    pub fn into_failure(self) -> StageFailure {
        StageFailure::new(Stage::Extract, self.reason(), self.to_string())
    }
}

/// Extracts a document. `file_name` is only a hint, used where content alone cannot tell
/// formats apart (Markdown is plain text to a sniffer).
pub fn extract(bytes: &[u8], file_name: &str, limits: &Limits) -> Result<ExtractedDocument, ExtractError> {
    let format = sniff(bytes, file_name);
    if let Some(claimed) = sniff::claimed_binary_format(file_name) {
        let contradicts = match claimed {
            "PDF" => format != Format::Pdf,
            _ => matches!(format, Format::Html | Format::Markdown | Format::Text | Format::Email | Format::Mailbox),
        };
        if contradicts {
            return Err(ExtractError::Malformed {
                format: claimed,
                detail: format!("the name says {claimed} but the content is not (no {claimed} header)"),
            });
        }
    }
    match format {
        Format::Pdf => pdf::extract(bytes, limits),
        Format::Html => html::extract(&text::decode_html(bytes)?),
        Format::Markdown => Ok(markdown::extract(&text::decode(bytes)?)),
        Format::Text => Ok(text::extract(&text::decode(bytes)?)),
        Format::Docx => office::docx::extract(&open_package(bytes, limits)?, limits),
        Format::Pptx => office::pptx::extract(&open_package(bytes, limits)?, limits),
        Format::OpenDocument(name) => office::odf::extract(&open_package(bytes, limits)?, name, limits),
        Format::Workbook(kind) => {
            if matches!(kind, Workbook::Xlsx | Workbook::Xlsb | Workbook::Ods) {
                // calamine inflates the parts itself: refuse what declares more than the budget.
                open_package(bytes, limits)?;
            }
            office::sheets::extract(bytes, kind, limits)
        }
        Format::Email => email::extract_message(bytes, limits),
        Format::Mailbox => email::extract_mailbox(bytes, limits),
        Format::EncryptedOffice => Err(ExtractError::Encrypted),
        Format::Unsupported(detected) => Err(ExtractError::Unsupported { detected: detected.to_owned() }),
    }
}

/// Opens a zip package, refusing one whose declared sizes already exceed the budget.
fn open_package<'a>(bytes: &'a [u8], limits: &Limits) -> Result<package::Package<'a>, ExtractError> {
    let package = package::Package::open(bytes, limits.max_decompressed_bytes)?;
    let declared = package.declared_size();
    if declared > limits.max_decompressed_bytes {
        return Err(ExtractError::LimitExceeded {
            limit: "max_decompressed_bytes",
            detail: format!(
                "the archive declares {declared} bytes uncompressed, over the limit of {} (a zip bomb?)",
                limits.max_decompressed_bytes
            ),
        });
    }
    Ok(package)
}
