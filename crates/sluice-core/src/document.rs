//! What flows between the stages: an extracted document, its normalised form, and its chunks.

use serde::{Deserialize, Serialize};

use crate::TextHash;

/// The kind of a block of text. Chunking breaks preferably between blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BlockKind {
    Heading { level: u8 },
    Paragraph,
    ListItem,
    Code,
    Table,
    Quote,
}

/// One block of a document as an extractor produced it: raw text, before normalisation.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub kind: BlockKind,
    pub text: String,
    /// 1-based page number for paged formats (PDF), `None` elsewhere.
    pub page: Option<u32>,
}

/// An extractor's output: blocks in reading order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExtractedDocument {
    /// Short name of the format that was detected, e.g. `pdf`, `html`, `markdown`, `text`.
    pub format: &'static str,
    pub title: Option<String>,
    pub blocks: Vec<Block>,
    /// Pages in the source, for paged formats.
    pub page_count: Option<u32>,
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
    pub format: &'static str,
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
}
