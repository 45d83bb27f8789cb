//! From bytes to an [`ExtractedDocument`]: format detection by content, then one extractor per
//! format.
//!
//! Extractors are pure functions of the bytes (no I/O, no clock), so the same bytes always give
//! the same blocks, which is what lets a document version be identified by its content hash.
//! They never panic on purpose; the caller still isolates them (a parser bug must cost one
//! document, not the run).

mod html;
mod markdown;
mod pdf;
mod sniff;
mod text;

use sluice_core::{ExtractedDocument, Stage, StageFailure};
pub use sniff::{Format, sniff};

/// Version of the extraction code; part of the extract stage's fingerprint.
pub const EXTRACTOR_VERSION: &str = "1";

/// Why a document could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("unsupported format: {detected}")]
    Unsupported { detected: String },
    #[error("the document is encrypted and needs a password")]
    Encrypted,
    #[error("the document is not valid {format}: {detail}")]
    Malformed { format: &'static str, detail: String },
    #[error("text is not in a supported encoding: {detail}")]
    Encoding { detail: String },
}

impl ExtractError {
    /// The quarantine reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            ExtractError::Unsupported { .. } => "unsupported_format",
            ExtractError::Encrypted => "encrypted",
            ExtractError::Malformed { .. } => "parse_error",
            ExtractError::Encoding { .. } => "unsupported_encoding",
        }
    }

    pub fn into_failure(self) -> StageFailure {
        StageFailure::new(Stage::Extract, self.reason(), self.to_string())
    }
}

/// Extracts a document. `file_name` is only a hint, used where content alone cannot tell
/// formats apart (Markdown is plain text to a sniffer).
pub fn extract(bytes: &[u8], file_name: &str) -> Result<ExtractedDocument, ExtractError> {
    let format = sniff(bytes, file_name);
    if let Some(claimed) = sniff::claimed_binary_format(file_name) {
        let contradicts = match claimed {
            "PDF" => format != Format::Pdf,
            _ => matches!(format, Format::Html | Format::Markdown | Format::Text),
        };
        if contradicts {
            return Err(ExtractError::Malformed {
                format: claimed,
                detail: format!("the name says {claimed} but the content is not (no {claimed} header)"),
            });
        }
    }
    match format {
        Format::Pdf => pdf::extract(bytes),
        Format::Html => html::extract(&text::decode(bytes)?),
        Format::Markdown => Ok(markdown::extract(&text::decode(bytes)?)),
        Format::Text => Ok(text::extract(&text::decode(bytes)?)),
        Format::Unsupported(detected) => Err(ExtractError::Unsupported { detected: detected.to_owned() }),
    }
}
