//! What flows between the stages: an extracted document, its normalised form, and its chunks.

use serde::{Deserialize, Serialize};

use crate::TextHash;

/// The kind of a block of text. Chunking breaks preferably between blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BlockKind {
    Heading {
        level: u8,
    },
    Paragraph,
    ListItem,
    Code,
    /// One row of a table, cells separated by ` | `.
    Table,
    Quote,
    /// Page or section header text (DOCX/ODT headers), kept apart from the body.
    Header,
    /// Page or section footer text.
    Footer,
    /// Speaker notes, footnotes and comments.
    Notes,
}

/// One block of a document as an extractor produced it: raw text, before normalisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub kind: BlockKind,
    pub text: String,
    /// 1-based page number for paged formats (PDF), `None` elsewhere.
    pub page: Option<u32>,
}

/// An extractor's output: blocks in reading order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExtractedDocument {
    /// Short name of the format that was detected, e.g. `pdf`, `html`, `markdown`, `text`.
    pub format: String,
    pub title: Option<String>,
    pub blocks: Vec<Block>,
    /// Pages in the source, for paged formats (slides for presentations, sheets for workbooks).
    pub page_count: Option<u32>,
    /// Descriptive fields of the source, e.g. an e-mail's `from`, `to`, `subject` and `date`.
    pub metadata: Vec<(String, String)>,
    /// Files embedded in this one (e-mail attachments, the messages of a mailbox), extracted
    /// as documents of their own with this one as their parent.
    pub children: Vec<EmbeddedFile>,
}

/// A file found inside another, still as bytes: it goes through format detection and
/// extraction like any file on a share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddedFile {
    /// A name unique within the parent, usable as a path segment, e.g. `3-report.pdf`.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A block after normalisation, located in the document's normalised text.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockSpan {
    pub kind: BlockKind,
    pub page: Option<u32>,
    /// Byte range in `NormalizedDocument::text`.
    pub byte_start: usize,
    pub byte_end: usize,
}

/// A document after cleaning: one normalised text with the blocks located in it.
///
/// Blocks are separated by a blank line in `text`, so the text reads naturally on its own and
/// chunk spans into it are meaningful to a person.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalizedDocument {
    pub format: String,
    pub title: Option<String>,
    pub text: String,
    pub blocks: Vec<BlockSpan>,
    pub page_count: Option<u32>,
    pub text_hash: TextHash,
}

/// A chunk of a document's normalised text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Position of the chunk in its document, from 0.
    pub ordinal: u32,
    pub text: String,
    pub text_hash: TextHash,
    /// Character (Unicode scalar value) range in the document's normalised text.
    pub char_start: u32,
    pub char_end: u32,
    /// Page of the chunk's first character, for paged formats.
    pub page: Option<u32>,
    /// Tokens of the model's tokenizer in `text`, special tokens excluded.
    pub token_count: u32,
    /// The headings the chunk sits under, outermost first (its own leading heading included).
    pub heading_path: Vec<String>,
    /// Kinds of personal data found in the text (`email`, `iban`, ...), sorted; empty unless
    /// the pipeline's PII stage tags or masks.
    pub pii: Vec<String>,
    /// ISO 639-3 code of the chunk's language (`eng`, `deu`, `cmn`, ...), from the enrich
    /// stage; `None` when neither it nor its document says enough to tell.
    #[serde(default)]
    pub language: Option<String>,
}

/// What a document says about itself, beyond its text: stored with the document (as JSON in
/// the catalog), carried in both indexes as filterable fields, shown in lineage and exported.
/// Dates are UTC, RFC 3339 with seconds (`2024-05-01T09:30:00Z`), so they sort as text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentMetadata {
    /// Who wrote it: the document properties' creator, a PDF's Author, an e-mail's From, an
    /// HTML page's `author` meta.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<String>,
    /// An e-mail's To and Cc.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// An e-mail's Subject, a document's subject property.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When the document says it was written (properties, PDF info, an e-mail's Date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    /// The first date found in the text, for a document that has no date of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_in_text: Option<String>,
    /// The media type of its format (`application/pdf`, `message/rfc822`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mime_type: String,
    /// The source file's modification time when it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_modified: Option<String>,
}

impl DocumentMetadata {
    /// The date that dates the document: its own creation date, else its modification date,
    /// else one found in its text, else the file's time.
    pub fn date(&self) -> Option<&str> {
        self.created
            .as_deref()
            .or(self.modified.as_deref())
            .or(self.date_in_text.as_deref())
            .or(self.file_modified.as_deref())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("metadata serialises")
    }

    /// A moment as the metadata writes it: UTC, RFC 3339, whole seconds.
    pub fn format_date(at: chrono::DateTime<chrono::Utc>) -> String {
        at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// A file time (nanoseconds since the epoch) as the metadata writes it.
    pub fn format_file_time(unix_ns: i64) -> String {
        Self::format_date(chrono::DateTime::from_timestamp_nanos(unix_ns))
    }

    /// Seconds since the epoch of a date this metadata wrote; for range filters.
    pub fn parse_date(date: &str) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(date).ok().map(|at| at.timestamp())
    }

    /// Reads what [`DocumentMetadata::to_json`] wrote; an empty or older object reads as empty
    /// fields.
    pub fn from_json(json: &str) -> Option<Self> {
        serde_json::from_str(json).ok()
    }
}
