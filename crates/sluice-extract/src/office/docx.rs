//! DOCX (WordprocessingML): the body in order, headings from paragraph styles and outline
//! levels, list items from numbering, tables row by row; headers first and footers last,
//! footnotes, endnotes and comments as notes.

use std::collections::HashMap;

use sluice_core::{BlockKind, ExtractedDocument};

use super::sink::BlockSink;
use crate::package::Package;
use crate::xml::{self, XmlEvent, attribute, local_name};
use crate::{ExtractError, Limits};

pub(crate) fn extract(package: &Package<'_>, limits: &Limits) -> Result<ExtractedDocument, ExtractError> {
    let depth = limits.max_xml_depth;
    let headings = match package.read("word/styles.xml")? {
        Some(styles) => heading_styles(&styles, depth)?,
        None => HashMap::new(),
    };
    let names = package.names();
    let mut blocks = Vec::new();
    for part in super::numbered_parts(&names, "word/header") {
        blocks.extend(read_part(package, &part, Some(BlockKind::Header), &headings, depth)?);
    }
    blocks.extend(read_part(package, "word/document.xml", None, &headings, depth)?);
    for part in ["word/footnotes.xml", "word/endnotes.xml", "word/comments.xml"] {
        if package.contains(part) {
            blocks.extend(read_part(package, part, Some(BlockKind::Notes), &headings, depth)?);
        }
    }
    for part in super::numbered_parts(&names, "word/footer") {
        blocks.extend(read_part(package, &part, Some(BlockKind::Footer), &headings, depth)?);
    }
    dedup_repeated_furniture(&mut blocks);
    let mut document = ExtractedDocument { format: "docx".into(), blocks, ..Default::default() };
    super::dublin_core(package, "docProps/core.xml", depth, &mut document)?;
    Ok(document)
}

/// Reads one part that holds paragraphs and tables.
fn read_part(
    package: &Package<'_>,
    part: &str,
    part_kind: Option<BlockKind>,
    headings: &HashMap<String, u8>,
    max_depth: usize,
) -> Result<Vec<sluice_core::Block>, ExtractError> {
    let bytes = package.require(part)?;
    let mut sink = BlockSink::new(part_kind);
    // Text counts only inside `w:t` (not deleted text, field codes or tab-stop definitions).
    let mut in_text = false;
    let mut runs = 0usize;
    xml::walk(&bytes, part, max_depth, |event| match event {
        XmlEvent::Open(start) => match local_name(start) {
            "p" => sink.start_paragraph(BlockKind::Paragraph),
            "pStyle" => {
                if let Some(level) = attribute(start, "val").and_then(|style| headings.get(&style).copied()) {
                    sink.set_kind(BlockKind::Heading { level });
                }
            }
            "outlineLvl" => {
                if let Some(level) = outline_level(start) {
                    sink.set_kind(BlockKind::Heading { level });
                }
            }
            "numPr" => sink.set_kind(BlockKind::ListItem),
            "r" => runs += 1,
            "t" => in_text = true,
            "tab" if runs > 0 => sink.text("\t"),
            "br" | "cr" if runs > 0 => sink.text("\n"),
            "tbl" => sink.start_table(),
            "tc" => sink.start_cell(),
            _ => {}
        },
        XmlEvent::Close("r") => runs = runs.saturating_sub(1),
        XmlEvent::Close(name) => sink.close_ooxml(name, &mut in_text),
        XmlEvent::Text(text) => {
            if in_text {
                sink.text(text);
            }
        }
    })?;
    Ok(sink.finish())
}

/// Heading level (1-based) of every paragraph style that is a heading: by outline level, by
/// the built-in names `heading N` and `Title`, or through the style it is based on.
fn heading_styles(styles: &[u8], max_depth: usize) -> Result<HashMap<String, u8>, ExtractError> {
    #[derive(Default)]
    struct Style {
        id: String,
        name: String,
        based_on: Option<String>,
        outline: Option<u8>,
    }
    let mut all: Vec<Style> = Vec::new();
    let mut current: Option<Style> = None;
    xml::walk(styles, "word/styles.xml", max_depth, |event| match event {
        XmlEvent::Open(start) => match local_name(start) {
            "style" => {
                current = Some(Style { id: attribute(start, "styleId").unwrap_or_default(), ..Style::default() })
            }
            "name" => {
                if let Some(style) = current.as_mut() {
                    style.name = attribute(start, "val").unwrap_or_default();
                }
            }
            "basedOn" => {
                if let Some(style) = current.as_mut() {
                    style.based_on = attribute(start, "val");
                }
            }
            "outlineLvl" => {
                if let Some(style) = current.as_mut() {
                    style.outline = outline_level(start);
                }
            }
            _ => {}
        },
        XmlEvent::Close("style") => all.extend(current.take()),
        _ => {}
    })?;
    let own_level = |style: &Style| {
        let name = style.name.to_ascii_lowercase();
        style.outline.or_else(|| {
            if name == "title" {
                return Some(1);
            }
            let number = name.strip_prefix("heading")?.trim();
            number.parse::<u8>().ok().filter(|level| (1..=9).contains(level))
        })
    };
    let by_id: HashMap<&str, &Style> = all.iter().map(|style| (style.id.as_str(), style)).collect();
    let mut levels = HashMap::new();
    for style in &all {
        // Follow `basedOn` a few steps: custom heading styles usually derive from a built-in one.
        let mut cursor = Some(style);
        for _ in 0..4 {
            let Some(candidate) = cursor else { break };
            if let Some(level) = own_level(candidate) {
                levels.insert(style.id.clone(), level);
                break;
            }
            cursor = candidate.based_on.as_deref().and_then(|id| by_id.get(id).copied());
        }
    }
    Ok(levels)
}

/// `w:outlineLvl` 0–8 is heading level 1–9; 9 means body text.
fn outline_level(start: &quick_xml::events::BytesStart<'_>) -> Option<u8> {
    attribute(start, "val").and_then(|value| value.parse::<u8>().ok()).filter(|level| *level < 9).map(|level| level + 1)
}

/// Sections often repeat the same header or footer part; keep each text once.
fn dedup_repeated_furniture(blocks: &mut Vec<sluice_core::Block>) {
    let mut seen = std::collections::HashSet::new();
    blocks.retain(|block| {
        !matches!(block.kind, BlockKind::Header | BlockKind::Footer) || seen.insert((block.kind, block.text.clone()))
    });
}
