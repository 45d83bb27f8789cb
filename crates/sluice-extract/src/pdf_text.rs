//! The text of one PDF page: its content stream, and the form XObjects it draws (`Do`), read
//! through lopdf's fonts and encodings (ToUnicode maps included).
//!
//! lopdf's own `extract_text` reads the page's stream only, so text drawn inside forms (stamps,
//! letterheads, whole pages wrapped in one form by some producers) was lost. Lines break where
//! the text position moves down (`T*`, `'`, `"`, `Td`/`TD` with a vertical offset, `Tm` to a new
//! baseline) or a text object ends; a large negative kerning in `TJ` is a word space.
//! Decompressed bytes are budgeted per page, forms are followed at most `MAX_FORM_DEPTH` deep
//! and each at most once per page, so a hostile file cannot make this loop or balloon.

use std::collections::{BTreeMap, HashSet};

use lopdf::content::Content;
use lopdf::{Dictionary, Document, Encoding, Object, ObjectId};

/// Forms inside forms followed; real documents rarely nest more than two.
const MAX_FORM_DEPTH: usize = 8;
/// A kerning adjustment (thousandths of a text-space unit) beyond this is a gap between words.
const WORD_GAP: f32 = -100.0;

type Fonts<'d> = BTreeMap<Vec<u8>, Encoding<'d>>;
type Forms = BTreeMap<Vec<u8>, ObjectId>;

pub(crate) fn page_text(document: &Document, page_id: ObjectId, budget: usize) -> lopdf::Result<String> {
    let mut reader = PageReader { document, budget, seen_forms: HashSet::new(), text: String::new(), baseline: None };
    let content = document.get_page_content_with_limit(page_id, budget)?;
    reader.budget = budget.saturating_sub(content.len());
    let fonts = encodings(document, document.get_page_fonts(page_id)?.into_iter(), budget);
    let forms = page_forms(document, page_id);
    reader.read(&content, &fonts, &forms, 0)?;
    Ok(reader.text)
}

struct PageReader<'d> {
    document: &'d Document,
    /// Decompressed bytes this page may still read.
    budget: usize,
    seen_forms: HashSet<ObjectId>,
    text: String,
    /// The vertical position of the last `Tm`, to tell a new line from a move along this one.
    baseline: Option<f32>,
}

impl<'d> PageReader<'d> {
    fn read(&mut self, content: &[u8], fonts: &Fonts<'d>, forms: &Forms, depth: usize) -> lopdf::Result<()> {
        let content = Content::decode(content)?;
        let mut font: Option<&Encoding<'d>> = None;
        for operation in &content.operations {
            let operands = &operation.operands;
            match operation.operator.as_str() {
                "Tf" => font = operands.first().and_then(|name| name.as_name().ok()).and_then(|name| fonts.get(name)),
                "Tj" | "TJ" => self.show(font, operands),
                "'" => {
                    self.new_line();
                    self.show(font, operands);
                }
                "\"" => {
                    self.new_line();
                    self.show(font, operands.get(2..).unwrap_or_default());
                }
                "T*" | "ET" => self.new_line(),
                // A move along the line says nothing about spacing: many producers place each
                // glyph with its own `Td`.
                "Td" | "TD" if number(operands.get(1)).is_some_and(|dy| dy != 0.0) => self.new_line(),
                "Tm" => {
                    let y = number(operands.get(5));
                    if self.baseline.is_some() && y != self.baseline {
                        self.new_line();
                    }
                    self.baseline = y;
                }
                "Do" if depth < MAX_FORM_DEPTH => {
                    if let Some(form) = operands.first().and_then(|name| name.as_name().ok()).and_then(|n| forms.get(n))
                    {
                        self.read_form(*form, fonts, forms, depth + 1)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A form XObject's text, with its own fonts and forms where it has resources, else those
    /// of the content that draws it. Image XObjects and forms already read are skipped.
    fn read_form(&mut self, id: ObjectId, fonts: &Fonts<'d>, forms: &Forms, depth: usize) -> lopdf::Result<()> {
        if !self.seen_forms.insert(id) {
            return Ok(());
        }
        let Ok(stream) = self.document.get_object(id).and_then(Object::as_stream) else { return Ok(()) };
        if stream.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form".as_slice()) {
            return Ok(());
        }
        let content = stream.decompressed_content_with_limit(self.budget)?;
        self.budget = self.budget.saturating_sub(content.len());
        let resources = stream.dict.get(b"Resources").ok().and_then(|object| self.dictionary(object));
        let own_fonts;
        let fonts = match resources.and_then(|resources| resources.get(b"Font").ok()).and_then(|f| self.dictionary(f)) {
            Some(font_dict) => {
                let named = font_dict.iter().filter_map(|(name, font)| Some((name.clone(), self.dictionary(font)?)));
                own_fonts = encodings(self.document, named, self.budget);
                &own_fonts
            }
            None => fonts,
        };
        let own_forms;
        let forms =
            match resources.and_then(|resources| resources.get(b"XObject").ok()).and_then(|x| self.dictionary(x)) {
                Some(xobjects) => {
                    own_forms = references(xobjects);
                    &own_forms
                }
                None => forms,
            };
        self.read(&content, fonts, forms, depth)
    }

    fn show(&mut self, font: Option<&Encoding<'d>>, operands: &[Object]) {
        let Some(font) = font else { return };
        for operand in operands {
            match operand {
                Object::String(bytes, _) => {
                    if let Ok(text) = Document::decode_text(font, bytes) {
                        self.text.push_str(&text);
                    }
                }
                Object::Array(items) => self.show(Some(font), items),
                other => {
                    if number(Some(other)).is_some_and(|gap| gap < WORD_GAP) {
                        self.space();
                    }
                }
            }
        }
    }

    fn new_line(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
    }

    fn space(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with(char::is_whitespace) {
            self.text.push(' ');
        }
    }

    fn dictionary(&self, object: &'d Object) -> Option<&'d Dictionary> {
        match object {
            Object::Dictionary(dictionary) => Some(dictionary),
            Object::Reference(id) => self.document.get_dictionary(*id).ok(),
            _ => None,
        }
    }
}

/// Each font's encoding; a font whose encoding cannot be read shows no text.
fn encodings<'d>(
    document: &'d Document,
    fonts: impl Iterator<Item = (Vec<u8>, &'d Dictionary)>,
    budget: usize,
) -> Fonts<'d> {
    fonts.filter_map(|(name, font)| Some((name, font.get_font_encoding_with_limit(document, budget).ok()?))).collect()
}

/// The XObjects named in a page's resources (nearest first, as the page tree inherits them).
fn page_forms(document: &Document, page_id: ObjectId) -> Forms {
    let Ok((direct, referenced)) = document.get_page_resources(page_id) else { return Forms::new() };
    let mut forms = Forms::new();
    let resources = direct.into_iter().chain(referenced.iter().filter_map(|id| document.get_dictionary(*id).ok()));
    for resources in resources {
        let xobjects = match resources.get(b"XObject") {
            Ok(Object::Dictionary(xobjects)) => Some(xobjects),
            Ok(Object::Reference(id)) => document.get_dictionary(*id).ok(),
            _ => None,
        };
        for (name, id) in xobjects.map(references).unwrap_or_default() {
            forms.entry(name).or_insert(id);
        }
    }
    forms
}

fn references(dictionary: &Dictionary) -> Forms {
    dictionary.iter().filter_map(|(name, value)| Some((name.clone(), value.as_reference().ok()?))).collect()
}

fn number(object: Option<&Object>) -> Option<f32> {
    match object? {
        Object::Integer(value) => Some(*value as f32),
        Object::Real(value) => Some(*value),
        _ => None,
    }
}
