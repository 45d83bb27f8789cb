//! A reader over a parsed TOML table that collects located errors instead of stopping at the
//! first one, and reports keys nobody asked for.

use std::collections::BTreeSet;
use std::ops::Range;

use toml_edit::{Item, TableLike};

use crate::error::ConfigError;

/// Collects errors for one file.
pub(crate) struct Diagnostics<'s> {
    file: &'s str,
    source: &'s str,
    pub(crate) errors: Vec<(usize, ConfigError)>,
}

impl<'s> Diagnostics<'s> {
    pub(crate) fn new(file: &'s str, source: &'s str) -> Self {
        Self { file, source, errors: Vec::new() }
    }

    pub(crate) fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let offset = span.map(|span| span.start).unwrap_or(0);
        let (line, col) = if self.source.is_empty() { (0, 0) } else { line_col(self.source, offset) };
        let error = ConfigError { file: self.file.to_owned(), line, col, message: message.into() };
        self.errors.push((offset, error));
    }

    pub(crate) fn into_sorted(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|(offset, _)| *offset);
        self.errors.into_iter().map(|(_, error)| error).collect()
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// One table of the file. Each typed getter marks its key as known; `finish` reports the rest.
pub(crate) struct Section<'d> {
    table: &'d dyn TableLike,
    /// Dotted name used in messages, e.g. `chunk` or `source[0]`; empty for the root.
    name: String,
    pub(crate) span: Option<Range<usize>>,
    known: BTreeSet<&'static str>,
}

impl<'d> Section<'d> {
    pub(crate) fn new(table: &'d dyn TableLike, name: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Self { table, name: name.into(), span, known: BTreeSet::new() }
    }

    fn qualified(&self, key: &str) -> String {
        if self.name.is_empty() { key.to_owned() } else { format!("{}.{key}", self.name) }
    }

    fn lookup(&mut self, key: &'static str) -> Option<(Option<Range<usize>>, &'d Item)> {
        self.known.insert(key);
        let (_, item) = self.table.get_key_value(key)?;
        Some((item.span(), item))
    }

    /// Whether `key` is present (of any type); either way it is a key this section knows.
    pub(crate) fn has(&mut self, key: &'static str) -> bool {
        self.known.insert(key);
        self.table.contains_key(key)
    }

    /// An integer in `min..=max`; `default` when absent.
    pub(crate) fn integer(
        &mut self,
        diag: &mut Diagnostics<'_>,
        key: &'static str,
        default: i64,
        min: i64,
        max: i64,
    ) -> i64 {
        let Some((span, item)) = self.lookup(key) else {
            return default;
        };
        match item.as_integer() {
            Some(value) if (min..=max).contains(&value) => value,
            Some(value) => {
                diag.error(span, format!("`{}` must be between {min} and {max}, got {value}", self.qualified(key)));
                default
            }
            None => {
                diag.error(span, format!("`{}` must be an integer, got {}", self.qualified(key), item.type_name()));
                default
            }
        }
    }

    /// A number (integer or float) in `min..=max`; `default` when absent.
    pub(crate) fn float(
        &mut self,
        diag: &mut Diagnostics<'_>,
        key: &'static str,
        default: f64,
        min: f64,
        max: f64,
    ) -> f64 {
        let Some((span, item)) = self.lookup(key) else {
            return default;
        };
        match item.as_float().or_else(|| item.as_integer().map(|value| value as f64)) {
            Some(value) if (min..=max).contains(&value) => value,
            Some(value) => {
                diag.error(span, format!("`{}` must be between {min} and {max}, got {value}", self.qualified(key)));
                default
            }
            None => {
                diag.error(span, format!("`{}` must be a number, got {}", self.qualified(key), item.type_name()));
                default
            }
        }
    }

    /// A boolean, `None` when absent.
    pub(crate) fn boolean(&mut self, diag: &mut Diagnostics<'_>, key: &'static str) -> Option<bool> {
        let (span, item) = self.lookup(key)?;
        let value = item.as_bool();
        if value.is_none() {
            diag.error(span, format!("`{}` must be true or false, got {}", self.qualified(key), item.type_name()));
        }
        value
    }

    /// A string, `None` when absent.
    pub(crate) fn string(
        &mut self,
        diag: &mut Diagnostics<'_>,
        key: &'static str,
    ) -> Option<(String, Option<Range<usize>>)> {
        let (span, item) = self.lookup(key)?;
        match item.as_str() {
            Some(value) => Some((value.to_owned(), span)),
            None => {
                diag.error(span, format!("`{}` must be a string, got {}", self.qualified(key), item.type_name()));
                None
            }
        }
    }

    /// An array of strings, `None` when absent.
    pub(crate) fn strings(
        &mut self,
        diag: &mut Diagnostics<'_>,
        key: &'static str,
    ) -> Option<(Vec<String>, Option<Range<usize>>)> {
        let (span, item) = self.lookup(key)?;
        let strings = item.as_array().and_then(|array| {
            array.iter().map(|value| value.as_str().map(str::to_owned)).collect::<Option<Vec<String>>>()
        });
        if strings.is_none() {
            diag.error(span.clone(), format!("`{}` must be an array of strings", self.qualified(key)));
        }
        Some((strings?, span))
    }

    /// A sub-table (`[name]` or an inline table); `None` when absent or of the wrong type.
    pub(crate) fn table(&mut self, diag: &mut Diagnostics<'_>, key: &'static str) -> Option<Section<'d>> {
        let (span, item) = self.lookup(key)?;
        match item.as_table_like() {
            Some(table) => Some(Section::new(table, self.qualified(key), span.or_else(|| self.key_span(key)))),
            None => {
                diag.error(span, format!("`{}` must be a table, got {}", self.qualified(key), item.type_name()));
                None
            }
        }
    }

    /// An array of tables (`[[name]]` or an array of inline tables).
    pub(crate) fn tables(&mut self, diag: &mut Diagnostics<'_>, key: &'static str) -> Vec<Section<'d>> {
        let Some((span, item)) = self.lookup(key) else {
            return Vec::new();
        };
        let qualified = self.qualified(key);
        if let Some(array) = item.as_array_of_tables() {
            return array
                .iter()
                .enumerate()
                .map(|(i, table)| Section::new(table, format!("{qualified}[{i}]"), table.span()))
                .collect();
        }
        if let Some(array) = item.as_array() {
            let mut sections = Vec::new();
            for (i, value) in array.iter().enumerate() {
                match value.as_inline_table() {
                    Some(table) => sections.push(Section::new(table, format!("{qualified}[{i}]"), value.span())),
                    None => diag
                        .error(value.span(), format!("`{qualified}[{i}]` must be a table, got {}", value.type_name())),
                }
            }
            return sections;
        }
        diag.error(span, format!("`{qualified}` must be an array of tables, got {}", item.type_name()));
        Vec::new()
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    pub(crate) fn value_span(&self, key: &str) -> Option<Range<usize>> {
        self.table.get(key).and_then(Item::span)
    }

    fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.table.get_key_value(key).and_then(|(key, _)| key.span())
    }

    /// Reports every key that no getter asked for.
    pub(crate) fn finish(self, diag: &mut Diagnostics<'_>) {
        for (key, _) in self.table.iter() {
            if !self.known.contains(key) {
                let known: Vec<&str> = self.known.iter().copied().collect();
                diag.error(
                    self.key_span(key),
                    format!("unknown key `{}` (expected one of: {})", self.qualified(key), known.join(", ")),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::line_col;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let source = "a = 1\nbé = 2\n";
        assert_eq!(line_col(source, 0), (1, 1));
        assert_eq!(line_col(source, 6), (2, 1));
        assert_eq!(line_col(source, 10), (2, 4));
    }
}
