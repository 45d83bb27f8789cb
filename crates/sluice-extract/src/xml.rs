//! A streaming walk over one XML part (quick-xml) that enforces the nesting limit and refuses
//! entity declarations, so neither a nesting bomb nor an entity-expansion bomb gets through.
//!
//! Office formats never declare entities; a part that does is hostile or broken.

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::ExtractError;

/// What the walk reports, with names reduced to their local part (`w:p` → `p`).
pub(crate) enum XmlEvent<'a> {
    Open(&'a BytesStart<'a>),
    Close(&'a str),
    Text(&'a str),
}

/// Walks `bytes`, calling `visit` for each element start, end and piece of text. Empty
/// elements are reported as an open followed by a close.
pub(crate) fn walk(
    bytes: &[u8],
    part: &str,
    max_depth: usize,
    mut visit: impl FnMut(XmlEvent<'_>),
) -> Result<(), ExtractError> {
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().expand_empty_elements = true;
    reader.config_mut().check_end_names = false;
    let mut depth = 0usize;
    loop {
        let event = reader.read_event().map_err(|err| ExtractError::Malformed {
            format: "XML",
            detail: format!("{part} at byte {}: {err}", reader.buffer_position()),
        })?;
        match event {
            Event::Start(start) => {
                depth += 1;
                if depth > max_depth {
                    return Err(ExtractError::LimitExceeded {
                        limit: "max_xml_depth",
                        detail: format!("{part} nests elements deeper than {max_depth}"),
                    });
                }
                visit(XmlEvent::Open(&start));
            }
            Event::End(end) => {
                depth = depth.saturating_sub(1);
                visit(XmlEvent::Close(end.local_name().into_inner()));
            }
            Event::Text(text) => visit(XmlEvent::Text(&text.xml10_content())),
            Event::CData(data) => visit(XmlEvent::Text(&data)),
            Event::GeneralRef(reference) => {
                if let Some(text) = resolve_reference(&reference) {
                    visit(XmlEvent::Text(&text));
                }
            }
            Event::DocType(doctype) if doctype.contains("<!ENTITY") || doctype.contains("<!entity") => {
                return Err(ExtractError::LimitExceeded {
                    limit: "xml_entities",
                    detail: format!("{part} declares XML entities (a possible entity-expansion bomb)"),
                });
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

/// The five predefined entities and character references; anything else is dropped, never
/// expanded.
fn resolve_reference(reference: &str) -> Option<Cow<'static, str>> {
    let text = match reference {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "quot" => "\"",
        "apos" => "'",
        _ => {
            let number = reference.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            return char::from_u32(code).filter(|c| *c != '\0').map(|c| Cow::Owned(c.to_string()));
        }
    };
    Some(Cow::Borrowed(text))
}

/// The local name of an element (`w:p` → `p`).
pub(crate) fn local_name<'a>(start: &'a BytesStart<'_>) -> &'a str {
    let name = start.name().into_inner();
    name.rsplit_once(':').map_or(name, |(_, local)| local)
}

/// The value of the attribute whose local name is `name`, whatever its prefix.
pub(crate) fn attribute(start: &BytesStart<'_>, name: &str) -> Option<String> {
    start.attributes().flatten().find_map(|attribute| {
        let key = attribute.key.local_name();
        (key.into_inner() == name).then(|| {
            attribute.normalized_value(quick_xml::XmlVersion::Implicit1_0).map(Cow::into_owned).unwrap_or_default()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(xml: &str) -> Result<String, ExtractError> {
        let mut out = String::new();
        walk(xml.as_bytes(), "test.xml", 8, |event| {
            if let XmlEvent::Text(text) = event {
                out.push_str(text);
            }
        })?;
        Ok(out)
    }

    #[test]
    fn resolves_only_predefined_and_character_references() {
        assert_eq!(text_of("<a>x &amp; y &#x41;&#66; &custom;</a>").unwrap(), "x & y AB ");
    }

    #[test]
    fn refuses_entity_declarations_and_deep_nesting() {
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;\">]><l>&b;</l>";
        assert_eq!(text_of(bomb).unwrap_err().reason(), "limit_exceeded");
        let deep = format!("{}{}", "<a>".repeat(9), "</a>".repeat(9));
        assert_eq!(text_of(&deep).unwrap_err().reason(), "limit_exceeded");
        assert!(text_of(&format!("{}{}", "<a>".repeat(8), "</a>".repeat(8))).is_ok());
    }
}
