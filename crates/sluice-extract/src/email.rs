//! E-mail through mail-parser: an RFC 822 message (EML) gives its headers as metadata, its
//! text body (an HTML-only body converted) as blocks, and its attachments as embedded files;
//! a mailbox (MBOX) gives one embedded file per message.

use mail_parser::{Address, MessageParser, MimeHeaders};
use sluice_core::{Block, BlockKind, EmbeddedFile, ExtractedDocument};

use crate::text::paragraphs;
use crate::{ExtractError, Limits, html};

pub(crate) fn extract_message(bytes: &[u8], limits: &Limits) -> Result<ExtractedDocument, ExtractError> {
    let message = MessageParser::default()
        .parse(bytes)
        .ok_or_else(|| ExtractError::Malformed { format: "e-mail", detail: "no message headers found".into() })?;
    let mut document = ExtractedDocument { format: "email".into(), ..Default::default() };
    let mut header_lines = Vec::new();
    let fields = [
        ("from", message.from().map(addresses)),
        ("to", message.to().map(addresses)),
        ("cc", message.cc().map(addresses)),
        ("subject", message.subject().map(str::to_owned)),
        ("date", message.date().map(|date| date.to_rfc3339())),
        ("message_id", message.message_id().map(str::to_owned)),
    ];
    for (name, value) in fields {
        if let Some(value) = value.filter(|value| !value.trim().is_empty()) {
            if name != "message_id" {
                header_lines.push(format!("{}: {value}", capitalised(name)));
            }
            document.metadata.push((name.to_owned(), value));
        }
    }
    document.title = message.subject().map(str::to_owned).filter(|subject| !subject.trim().is_empty());
    if !header_lines.is_empty() {
        document.blocks.push(Block { kind: BlockKind::Header, text: header_lines.join("\n"), page: None });
    }
    for part in message.text_bodies() {
        let Some(text) = part.text_contents() else { continue };
        if part.is_text_html() {
            document.blocks.extend(html::extract(text)?.blocks);
        } else {
            document.blocks.extend(paragraphs(text, None));
        }
    }
    let mut inflated = 0u64;
    for (index, part) in message.attachments().enumerate() {
        if document.children.len() >= limits.max_children {
            return Err(too_many_children(limits));
        }
        let bytes = part.contents();
        inflated += bytes.len() as u64;
        if inflated > limits.max_decompressed_bytes {
            return Err(ExtractError::LimitExceeded {
                limit: "max_decompressed_bytes",
                detail: format!("attachments decode to more than {} bytes", limits.max_decompressed_bytes),
            });
        }
        let name = part
            .attachment_name()
            .map(str::to_owned)
            .unwrap_or_else(|| if part.is_message() { "message.eml".to_owned() } else { "attachment".to_owned() });
        document.children.push(EmbeddedFile { name: child_name(index + 1, &name), bytes: bytes.to_vec() });
    }
    Ok(document)
}

/// A mailbox: every message becomes an embedded file (`0001.eml`, ...) of its own.
pub(crate) fn extract_mailbox(bytes: &[u8], limits: &Limits) -> Result<ExtractedDocument, ExtractError> {
    let mut document = ExtractedDocument { format: "mbox".into(), ..Default::default() };
    for (index, message) in mail_parser::mailbox::mbox::MessageIterator::new(bytes).enumerate() {
        let message = message.map_err(|err| ExtractError::Malformed { format: "mbox", detail: err.to_string() })?;
        if document.children.len() >= limits.max_children {
            return Err(too_many_children(limits));
        }
        document
            .children
            .push(EmbeddedFile { name: format!("{:04}.eml", index + 1), bytes: message.unwrap_contents() });
    }
    document.metadata.push(("messages".to_owned(), document.children.len().to_string()));
    Ok(document)
}

fn too_many_children(limits: &Limits) -> ExtractError {
    ExtractError::LimitExceeded {
        limit: "max_children",
        detail: format!("more than {} embedded files", limits.max_children),
    }
}

/// `Name <address>` for each address, comma-separated.
fn addresses(address: &Address<'_>) -> String {
    address
        .iter()
        .map(|addr| match (addr.name(), addr.address()) {
            (Some(name), Some(email)) => format!("{name} <{email}>"),
            (Some(name), None) => name.to_owned(),
            (None, Some(email)) => email.to_owned(),
            (None, None) => String::new(),
        })
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// A child name safe as one path segment, prefixed by its position so that two attachments
/// with the same name stay apart.
fn child_name(position: usize, name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| if c.is_control() || matches!(c, '/' | '\\' | '#' | ':') { '_' } else { c })
        .take(120)
        .collect();
    format!("{position}-{}", safe.trim())
}
