//! Office documents: OOXML (DOCX, PPTX) and OpenDocument (ODT, ODP) read part by part from
//! their zip package with quick-xml, and workbooks of every kind through calamine.
//!
//! All of them come out as the same blocks: headings with levels, paragraphs, list items, one
//! block per table row, slide titles as headings with the slide as page, and headers, footers,
//! notes and comments marked as such.

pub(crate) mod docx;
pub(crate) mod odf;
pub(crate) mod pptx;
pub(crate) mod sheets;
mod sink;

use std::collections::HashMap;

use sluice_core::ExtractedDocument;

use crate::ExtractError;
use crate::package::Package;
use crate::xml::{self, XmlEvent};

/// `Relationship` targets of a `.rels` part by id, resolved against `base` (the folder of the
/// part the relationships belong to).
pub(crate) fn relationships(
    package: &Package<'_>,
    rels_part: &str,
    base: &str,
    max_depth: usize,
) -> Result<HashMap<String, String>, ExtractError> {
    let mut targets = HashMap::new();
    let Some(bytes) = package.read(rels_part)? else { return Ok(targets) };
    xml::walk(&bytes, rels_part, max_depth, |event| {
        if let XmlEvent::Open(start) = event
            && xml::local_name(start) == "Relationship"
            && let (Some(id), Some(target)) = (xml::attribute(start, "Id"), xml::attribute(start, "Target"))
        {
            targets.insert(id, resolve(base, &target));
        }
    })?;
    Ok(targets)
}

/// Resolves a relative part name (`../notesSlides/notesSlide1.xml`) against a folder.
fn resolve(base: &str, target: &str) -> String {
    if let Some(absolute) = target.strip_prefix('/') {
        return absolute.to_owned();
    }
    let mut segments: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    for segment in target.split('/') {
        match segment {
            ".." => {
                segments.pop();
            }
            "." | "" => {}
            segment => segments.push(segment),
        }
    }
    segments.join("/")
}

/// Title, authors, subject and dates from a Dublin Core part (`docProps/core.xml`, `meta.xml`).
pub(crate) fn dublin_core(
    package: &Package<'_>,
    part: &str,
    max_depth: usize,
    document: &mut ExtractedDocument,
) -> Result<(), ExtractError> {
    let Some(bytes) = package.read(part)? else { return Ok(()) };
    let mut field: Option<&'static str> = None;
    let mut values: Vec<(&'static str, String)> = Vec::new();
    xml::walk(&bytes, part, max_depth, |event| match event {
        XmlEvent::Open(start) => {
            field = match xml::local_name(start) {
                "title" => Some("title"),
                "creator" | "initial-creator" => Some("author"),
                "subject" => Some("subject"),
                // OOXML's dcterms:created / dcterms:modified; ODF's meta:creation-date and
                // dc:date (when it was last saved).
                "created" | "creation-date" => Some("created"),
                "modified" | "date" => Some("modified"),
                _ => None,
            };
        }
        XmlEvent::Text(text) => {
            if let Some(name) = field
                && !text.trim().is_empty()
            {
                values.push((name, text.trim().to_owned()));
            }
        }
        XmlEvent::Close(_) => field = None,
    })?;
    for (name, value) in values {
        if name == "title" && document.title.is_none() {
            document.title = Some(value.clone());
        }
        if !document.metadata.iter().any(|(key, _)| key == name) {
            document.metadata.push((name.to_owned(), value));
        }
    }
    Ok(())
}

/// Part names matching `prefix<number>.xml`, in numeric order (`header2.xml` before `header10.xml`).
pub(crate) fn numbered_parts(names: &[String], prefix: &str) -> Vec<String> {
    let mut parts: Vec<(u32, String)> = names
        .iter()
        .filter_map(|name| {
            let number = name.strip_prefix(prefix)?.strip_suffix(".xml")?;
            let number = if number.is_empty() { 0 } else { number.parse().ok()? };
            Some((number, name.clone()))
        })
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, name)| name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_targets() {
        assert_eq!(resolve("ppt/slides", "../notesSlides/notesSlide1.xml"), "ppt/notesSlides/notesSlide1.xml");
        assert_eq!(resolve("ppt", "slides/slide1.xml"), "ppt/slides/slide1.xml");
        assert_eq!(resolve("word", "/word/header1.xml"), "word/header1.xml");
    }

    #[test]
    fn orders_numbered_parts_numerically() {
        let names = ["word/header10.xml", "word/header2.xml", "word/headers.xml", "word/header.xml"];
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(numbered_parts(&names, "word/header"), ["word/header.xml", "word/header2.xml", "word/header10.xml"]);
    }
}
