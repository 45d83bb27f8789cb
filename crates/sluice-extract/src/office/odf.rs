//! OpenDocument text and presentations (ODT, ODP): `content.xml` in order, headings from
//! `text:h` outline levels, list items, tables row by row, one page per `draw:page` with its
//! title frame as heading and its `presentation:notes` as notes; headers and footers from the
//! master pages in `styles.xml`.

use sluice_core::{BlockKind, ExtractedDocument};

use super::sink::BlockSink;
use crate::package::Package;
use crate::xml::{self, XmlEvent, attribute, local_name};
use crate::{ExtractError, Limits};

/// Elements whose text is not part of the reading flow.
const SKIPPED: &[&str] = &["tracked-changes", "note-citation", "annotation", "sequence-decls", "deletion"];

pub(crate) fn extract(
    package: &Package<'_>,
    format: &'static str,
    limits: &Limits,
) -> Result<ExtractedDocument, ExtractError> {
    let depth = limits.max_xml_depth;
    let mut furniture = Vec::new();
    if let Some(styles) = package.read("styles.xml")? {
        furniture = read_part(&styles, "styles.xml", depth, true)?.0;
    }
    let content = package.require("content.xml")?;
    let (body, pages) = read_part(&content, "content.xml", depth, false)?;
    if pages > limits.max_pages {
        return Err(ExtractError::LimitExceeded {
            limit: "max_pages",
            detail: format!("{pages} pages, over the limit of {}", limits.max_pages),
        });
    }
    let (headers, footers): (Vec<_>, Vec<_>) = furniture.into_iter().partition(|b| b.kind == BlockKind::Header);
    let blocks = headers.into_iter().chain(body).chain(footers).collect();
    let mut document = ExtractedDocument {
        format: format.into(),
        blocks,
        page_count: (pages > 0).then_some(pages),
        ..Default::default()
    };
    super::dublin_core(package, "meta.xml", depth, &mut document)?;
    Ok(document)
}

/// Reads `content.xml` (or, with `furniture_only`, the headers and footers of `styles.xml`).
/// Returns the blocks and the number of presentation pages met.
fn read_part(
    bytes: &[u8],
    part: &str,
    depth: usize,
    furniture_only: bool,
) -> Result<(Vec<sluice_core::Block>, u32), ExtractError> {
    let mut sink = BlockSink::default();
    let mut pages = 0u32;
    let mut lists = 0usize;
    let mut skipped = 0usize;
    // Open header/footer elements (`styles.xml` only) and presentation notes.
    let mut furniture: Vec<BlockKind> = Vec::new();
    let mut title_frame = false;
    xml::walk(bytes, part, depth, |event| match event {
        XmlEvent::Open(start) => {
            let name = local_name(start);
            if skipped > 0 || SKIPPED.contains(&name) {
                skipped += 1;
                return;
            }
            match name {
                "header" | "header-left" | "header-first" => furniture.push(BlockKind::Header),
                "footer" | "footer-left" | "footer-first" => furniture.push(BlockKind::Footer),
                "notes" => furniture.push(BlockKind::Notes),
                "page" => {
                    pages += 1;
                    sink.set_page(Some(pages));
                }
                "frame" => title_frame = attribute(start, "class").as_deref() == Some("title"),
                "h" => {
                    let level = attribute(start, "outline-level").and_then(|l| l.parse::<u8>().ok()).unwrap_or(1);
                    sink.start_paragraph(BlockKind::Heading { level: level.clamp(1, 9) });
                }
                "p" => {
                    let kind = if title_frame && furniture.is_empty() {
                        BlockKind::Heading { level: 1 }
                    } else if lists > 0 {
                        BlockKind::ListItem
                    } else {
                        BlockKind::Paragraph
                    };
                    sink.start_paragraph(kind);
                }
                "list" => lists += 1,
                "s" => {
                    let count = attribute(start, "c").and_then(|c| c.parse::<usize>().ok()).unwrap_or(1);
                    sink.text(&" ".repeat(count.min(64)));
                }
                "tab" => sink.text("\t"),
                "line-break" => sink.text("\n"),
                "table" => sink.start_table(),
                "table-cell" => sink.start_cell(),
                _ => {}
            }
            sink.set_part_kind(furniture.last().copied());
        }
        XmlEvent::Close(name) => {
            if skipped > 0 {
                skipped -= 1;
                return;
            }
            match name {
                "header" | "header-left" | "header-first" | "footer" | "footer-left" | "footer-first" | "notes" => {
                    furniture.pop();
                }
                "frame" => title_frame = false,
                "h" | "p" => sink.end_paragraph(),
                "list" => lists = lists.saturating_sub(1),
                "table-cell" => sink.end_cell(),
                "table-row" => sink.end_row(),
                "table" => sink.end_table(),
                _ => {}
            }
            sink.set_part_kind(furniture.last().copied());
        }
        XmlEvent::Text(text) => {
            if skipped == 0 && (!furniture_only || !furniture.is_empty()) {
                sink.text(text);
            }
        }
    })?;
    let mut blocks = sink.finish();
    if furniture_only {
        blocks.retain(|block| matches!(block.kind, BlockKind::Header | BlockKind::Footer));
        let mut seen = std::collections::HashSet::new();
        blocks.retain(|block| seen.insert((block.kind, block.text.clone())));
    }
    Ok((blocks, pages))
}
