//! PPTX (PresentationML): slides in presentation order, each slide's title as a heading and
//! the slide number as page, text frames and tables, then the slide's speaker notes.

use sluice_core::{BlockKind, ExtractedDocument};

use super::sink::BlockSink;
use crate::package::Package;
use crate::xml::{self, XmlEvent, attribute, local_name};
use crate::{ExtractError, Limits};

/// Placeholders of a notes page that repeat the slide rather than hold notes.
const NOT_NOTES: &[&str] = &["sldImg", "sldNum", "hdr", "ftr", "dt"];

pub(crate) fn extract(package: &Package<'_>, limits: &Limits) -> Result<ExtractedDocument, ExtractError> {
    let depth = limits.max_xml_depth;
    let slides = slide_parts(package, depth)?;
    if slides.len() > limits.max_pages as usize {
        return Err(ExtractError::LimitExceeded {
            limit: "max_pages",
            detail: format!("{} slides, over the limit of {}", slides.len(), limits.max_pages),
        });
    }
    let mut sink = BlockSink::default();
    for (index, slide) in slides.iter().enumerate() {
        sink.set_page(Some(index as u32 + 1));
        sink.set_part_kind(None);
        read_slide(package, slide, &mut sink, depth, false)?;
        let (folder, file) = slide.rsplit_once('/').unwrap_or(("", slide));
        let rels = super::relationships(package, &format!("{folder}/_rels/{file}.rels"), folder, depth)?;
        let mut notes: Vec<&String> = rels.values().filter(|target| target.contains("notesSlide")).collect();
        notes.sort();
        for notes_part in notes {
            sink.set_part_kind(Some(BlockKind::Notes));
            read_slide(package, notes_part, &mut sink, depth, true)?;
        }
    }
    let mut document = ExtractedDocument {
        format: "pptx".into(),
        blocks: sink.finish(),
        page_count: Some(slides.len() as u32),
        ..Default::default()
    };
    super::dublin_core(package, "docProps/core.xml", depth, &mut document)?;
    Ok(document)
}

/// Slide parts in the order `presentation.xml` lists them; if that list cannot be read, in
/// the numeric order of their names.
fn slide_parts(package: &Package<'_>, depth: usize) -> Result<Vec<String>, ExtractError> {
    let rels = super::relationships(package, "ppt/_rels/presentation.xml.rels", "ppt", depth)?;
    let mut slides: Vec<String> = Vec::new();
    if let Some(presentation) = package.read("ppt/presentation.xml")? {
        xml::walk(&presentation, "ppt/presentation.xml", depth, |event| {
            if let XmlEvent::Open(start) = event
                && local_name(start) == "sldId"
                && let Some(target) = relationship_id(start).and_then(|id| rels.get(&id))
                && package.contains(target)
            {
                slides.push(target.clone());
            }
        })?;
    }
    if slides.is_empty() {
        slides = super::numbered_parts(&package.names(), "ppt/slides/slide");
    }
    Ok(slides)
}

/// The `r:id` attribute (namespaced, unlike the plain `id` beside it).
fn relationship_id(start: &quick_xml::events::BytesStart<'_>) -> Option<String> {
    start.attributes().flatten().find_map(|attribute| {
        let key = attribute.key.into_inner();
        key.ends_with(":id").then(|| attribute.value.into_owned())
    })
}

/// Reads a slide or notes page: shapes' paragraphs (titles as headings) and tables.
fn read_slide(
    package: &Package<'_>,
    part: &str,
    sink: &mut BlockSink,
    depth: usize,
    notes: bool,
) -> Result<(), ExtractError> {
    let Some(bytes) = package.read(part)? else { return Ok(()) };
    let mut in_text = false;
    // The placeholder type of the shape being read, and whether to skip the shape.
    let mut shape: Option<String> = None;
    let mut skipping = false;
    xml::walk(&bytes, part, depth, |event| match event {
        XmlEvent::Open(start) => match local_name(start) {
            "sp" => {
                shape = None;
                skipping = false;
            }
            "ph" => {
                let kind = attribute(start, "type").unwrap_or_default();
                skipping = notes && NOT_NOTES.contains(&kind.as_str());
                shape = Some(kind);
            }
            "p" => {
                let title = matches!(shape.as_deref(), Some("title" | "ctrTitle")) && !notes;
                sink.start_paragraph(if title { BlockKind::Heading { level: 1 } } else { BlockKind::Paragraph });
            }
            "buChar" | "buAutoNum" => sink.set_kind(BlockKind::ListItem),
            "t" => in_text = true,
            "br" => sink.text("\n"),
            "tbl" => sink.start_table(),
            "tc" => sink.start_cell(),
            _ => {}
        },
        XmlEvent::Close(name) => sink.close_ooxml(name, &mut in_text),
        XmlEvent::Text(text) => {
            if in_text && !skipping {
                sink.text(text);
            }
        }
    })?;
    Ok(())
}
