//! Per-document limits that extraction enforces itself. Memory and wall-clock time are bounded
//! one level up, by the worker process a document is parsed in.

/// What one document may cost to extract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Pages (PDF), slides or sheets.
    pub max_pages: u32,
    /// Bytes a container (zip, MIME) may inflate to, all parts together: the zip-bomb guard.
    pub max_decompressed_bytes: u64,
    /// Element nesting in XML parts.
    pub max_xml_depth: usize,
    /// Files embedded in one document (attachments, messages of a mailbox).
    pub max_children: usize,
    /// Levels of embedded files followed (an attachment of an attached message is level 2).
    pub max_child_depth: usize,
    /// Characters of text (blocks and titles) a file may yield, its embedded files included.
    pub max_text_chars: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pages: 5_000,
            max_decompressed_bytes: 512 << 20,
            max_xml_depth: 256,
            max_children: 10_000,
            max_child_depth: 3,
            max_text_chars: 8 << 20,
        }
    }
}
