//! A file with everything embedded in it: the file's own document, then each embedded file
//! (attachment, mailbox message) detected and extracted in turn, down to `max_child_depth`.
//!
//! One embedded file failing costs that file alone: it carries its own failure, and its
//! parent and siblings are indexed. The text of the whole tree counts against one budget
//! (`max_text_chars`): a file over it fails as a whole, however its text is spread.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::{Deserialize, Serialize};
use sluice_core::{ContentHash, ExtractedDocument, Stage, StageFailure};

use crate::{ExtractError, Limits, extract};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExtractedFile {
    /// The file's own document; its `children` are moved into [`ExtractedFile::children`].
    pub document: ExtractedDocument,
    pub children: Vec<ExtractedChild>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExtractedChild {
    /// Unique among its siblings; a path segment below the parent.
    pub name: String,
    pub content_hash: ContentHash,
    pub byte_size: u64,
    pub outcome: Result<ExtractedFile, StageFailure>,
}

/// Extracts a file and, recursively, the files embedded in it.
pub fn extract_file(bytes: &[u8], file_name: &str, limits: &Limits) -> Result<ExtractedFile, ExtractError> {
    let mut text = TextBudget { left: limits.max_text_chars, exceeded: false };
    let file = extract_level(bytes, file_name, limits, 0, &mut text);
    if text.exceeded {
        return Err(text.error(limits));
    }
    file
}

/// Characters the file may still yield.
struct TextBudget {
    left: u64,
    exceeded: bool,
}

impl TextBudget {
    /// Takes a document's characters from the budget; `false` once it is overdrawn.
    fn spend(&mut self, document: &ExtractedDocument) -> bool {
        let texts = document.blocks.iter().map(|block| block.text.as_str()).chain(document.title.as_deref());
        for text in texts {
            match self.left.checked_sub(text.chars().count() as u64) {
                Some(left) => self.left = left,
                None => {
                    self.exceeded = true;
                    return false;
                }
            }
        }
        true
    }

    fn error(&self, limits: &Limits) -> ExtractError {
        ExtractError::LimitExceeded {
            limit: "max_text_chars",
            detail: format!(
                "the file yields more than {} characters of text (limits.max_text_chars)",
                limits.max_text_chars
            ),
        }
    }
}

fn extract_level(
    bytes: &[u8],
    file_name: &str,
    limits: &Limits,
    depth: usize,
    text: &mut TextBudget,
) -> Result<ExtractedFile, ExtractError> {
    let mut document = extract(bytes, file_name, limits)?;
    if !text.spend(&document) {
        return Err(text.error(limits));
    }
    let embedded = std::mem::take(&mut document.children);
    let mut children = Vec::with_capacity(embedded.len());
    for file in embedded {
        let outcome = if depth >= limits.max_child_depth {
            Err(StageFailure::new(
                Stage::Extract,
                "limit_exceeded",
                format!("embedded {} levels deep, over limits.max_child_depth {}", depth + 1, limits.max_child_depth),
            ))
        } else {
            catch_unwind(AssertUnwindSafe(|| extract_level(&file.bytes, &file.name, limits, depth + 1, text)))
                .map_err(|panic| StageFailure::new(Stage::Extract, "parser_panicked", panic_message(&panic)))
                .and_then(|result| result.map_err(ExtractError::into_failure))
        };
        // The whole file is over its text budget, not just this embedded file.
        if text.exceeded {
            return Err(text.error(limits));
        }
        children.push(ExtractedChild {
            name: file.name,
            content_hash: ContentHash::of_bytes(&file.bytes),
            byte_size: file.bytes.len() as u64,
            outcome,
        });
    }
    Ok(ExtractedFile { document, children })
}

/// What a caught panic said.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    format!("the parser panicked: {message}")
}
