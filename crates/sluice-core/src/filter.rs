//! What a search can be narrowed to besides its version and its reader: the chunk's language, its
//! document's format, place, source, authors and date, and the headings above it. Both
//! retrievers apply a filter inside their search, before ranking (as the reader's access), so
//! the best chunks that match come back, not what is left of the best ones.

use serde::{Deserialize, Serialize};

use crate::DocumentMetadata;

/// A search filter; every part that is set must hold (an empty list or `None` does not
/// restrict). Values are matched as [`SearchFilter::normalized`] writes them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchFilter {
    /// The chunk's language, any of these (ISO 639-3 `deu`, or 639-1 `de`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub language: Vec<String>,
    /// The document's format (`pdf`, `docx`, `html`, ...) or MIME type (`application/pdf`), any
    /// of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub format: Vec<String>,
    /// A folder (or a file) the document is in, as a path: `/shares/finance/2024`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// The source root the document was found under, any of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<String>,
    /// An author, any of these, matched whole and in any case: a name, an e-mail address, or
    /// both as written (`Ana Díaz <ana@example.com>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub author: Vec<String>,
    /// The document's date ([`DocumentMetadata::date`]) at or after this moment, and at or before
    /// this one: RFC 3339 or a day (`2024-05-01`; as a bound, the whole day counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_to: Option<String>,
    /// Words that must all be in the headings above the chunk (any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading: Option<String>,
}

/// A filter as the indexes compare it: codes, keys and words in lower case, dates in seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NormalizedFilter {
    pub languages: Vec<String>,
    /// Formats and MIME types.
    pub formats: Vec<String>,
    pub folder: Option<String>,
    pub sources: Vec<String>,
    pub authors: Vec<String>,
    /// Seconds since the epoch, both bounds included.
    pub date_from: Option<i64>,
    pub date_to: Option<i64>,
    pub heading_words: Vec<String>,
}

impl NormalizedFilter {
    pub fn is_empty(&self) -> bool {
        *self == NormalizedFilter::default()
    }
}

impl SearchFilter {
    pub fn is_empty(&self) -> bool {
        *self == SearchFilter::default()
    }

    /// The filter as the indexes compare it, or what is wrong with it.
    pub fn normalized(&self) -> Result<NormalizedFilter, String> {
        let languages = self.language.iter().map(|code| language_code(code)).collect::<Result<Vec<_>, _>>()?;
        let formats = self.format.iter().map(|format| format.trim().to_ascii_lowercase()).collect();
        let folder = self.path_prefix.as_deref().map(folder_key).filter(|folder| !folder.is_empty());
        let date = |text: &Option<String>, end_of_day: bool| {
            text.as_deref().map(|text| parse_bound(text, end_of_day)).transpose()
        };
        let (date_from, date_to) = (date(&self.date_from, false)?, date(&self.date_to, true)?);
        if let (Some(from), Some(to)) = (date_from, date_to)
            && from > to
        {
            return Err(format!("date_from {:?} is after date_to {:?}", self.date_from, self.date_to));
        }
        Ok(NormalizedFilter {
            languages,
            formats,
            folder,
            sources: self.source.iter().map(|source| folder_key(source)).collect(),
            authors: self.author.iter().map(|author| author.trim().to_lowercase()).collect(),
            date_from,
            date_to,
            heading_words: self.heading.as_deref().map(words).unwrap_or_default(),
        })
    }
}

/// What filters select a document's chunks by, computed once per document for both indexes
/// (the chunk's own language and headings travel beside it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DocumentFacets {
    /// The format and the MIME type, in lower case: a `format` filter names either.
    pub formats: Vec<String>,
    /// [`folders_of`] the document's path.
    pub folders: Vec<String>,
    /// The source root it was found under.
    pub source: String,
    /// [`author_keys`] of its metadata.
    pub authors: Vec<String>,
    /// [`date_seconds`] of its metadata.
    pub date: Option<i64>,
}

impl DocumentFacets {
    /// `path` is the document's path as people read it (`root/rel_path#member`).
    pub fn new(format: &str, metadata: &DocumentMetadata, source: &str, path: &str) -> Self {
        let mut formats = vec![format.to_ascii_lowercase()];
        if !metadata.mime_type.is_empty() {
            formats.push(metadata.mime_type.to_ascii_lowercase());
        }
        DocumentFacets {
            formats,
            folders: folders_of(path),
            source: folder_key(source),
            authors: author_keys(metadata),
            date: date_seconds(metadata),
        }
    }

    /// Whether a chunk of this document in `language` under `headings` passes `filter`: the
    /// rule both indexes implement, spelled out once (tests hold the indexes to it).
    pub fn admits(&self, filter: &NormalizedFilter, language: Option<&str>, headings: &[String]) -> bool {
        let any = |wanted: &[String], have: &[String]| wanted.is_empty() || wanted.iter().any(|w| have.contains(w));
        let heading_words: Vec<String> = headings.iter().flat_map(|heading| words(heading)).collect();
        any(&filter.languages, &language.map(str::to_owned).into_iter().collect::<Vec<_>>())
            && any(&filter.formats, &self.formats)
            && filter.folder.as_ref().is_none_or(|folder| self.folders.contains(folder))
            && any(&filter.sources, std::slice::from_ref(&self.source))
            && any(&filter.authors, &self.authors)
            && filter.date_from.is_none_or(|from| self.date.is_some_and(|date| date >= from))
            && filter.date_to.is_none_or(|to| self.date.is_some_and(|date| date <= to))
            && filter.heading_words.iter().all(|word| heading_words.contains(word))
    }
}

/// Words as heading filters compare them: runs of letters and digits, in lower case.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|word| !word.is_empty()).map(str::to_lowercase).collect()
}

/// A path as folder filters compare it: no trailing `/` (but `/` itself).
fn folder_key(path: &str) -> String {
    let path = path.trim();
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() && path.starts_with('/') { "/".to_owned() } else { trimmed.to_owned() }
}

/// The folders a document at `path` (`root/rel_path`, maybe `#member`) is in, outermost first,
/// and the file itself: what a `path_prefix` filter matches.
pub fn folders_of(path: &str) -> Vec<String> {
    let file = path.split('#').next().unwrap_or(path);
    let mut folders: Vec<String> = Vec::new();
    for (at, _) in file.match_indices('/') {
        let folder = if at == 0 { "/" } else { &file[..at] };
        folders.push(folder.to_owned());
    }
    folders.push(file.to_owned());
    folders.dedup();
    folders
}

/// The keys an author is found by: the whole text, and for `Name <address>` the name and the
/// address, all in lower case.
pub fn author_keys(metadata: &DocumentMetadata) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for author in &metadata.authors {
        let whole = author.trim().to_lowercase();
        if let Some((name, rest)) = whole.split_once('<')
            && let Some(address) = rest.strip_suffix('>')
        {
            keys.extend([name.trim().trim_matches('"').to_owned(), address.trim().to_owned()]);
        }
        keys.push(whole);
    }
    keys.retain(|key| !key.is_empty());
    keys.sort();
    keys.dedup();
    keys
}

/// Seconds since the epoch of the date that dates a document, for date filters.
pub fn date_seconds(metadata: &DocumentMetadata) -> Option<i64> {
    metadata.date().and_then(DocumentMetadata::parse_date)
}

fn parse_bound(text: &str, end_of_day: bool) -> Result<i64, String> {
    let text = text.trim();
    if let Some(seconds) = DocumentMetadata::parse_date(text) {
        return Ok(seconds);
    }
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a date (RFC 3339, or YYYY-MM-DD)"))?;
    let time = if end_of_day { day.and_hms_opt(23, 59, 59) } else { day.and_hms_opt(0, 0, 0) };
    Ok(time.expect("a time of day").and_utc().timestamp())
}

/// ISO 639-1 codes of the languages most documents are in, and their 639-3 codes (the ones the
/// enrich stage writes: `cmn` for written Chinese).
const TWO_LETTER_CODES: &[(&str, &str)] = &[
    ("ar", "arb"),
    ("cs", "ces"),
    ("da", "dan"),
    ("de", "deu"),
    ("el", "ell"),
    ("en", "eng"),
    ("es", "spa"),
    ("fi", "fin"),
    ("fr", "fra"),
    ("he", "heb"),
    ("hi", "hin"),
    ("hu", "hun"),
    ("it", "ita"),
    ("ja", "jpn"),
    ("ko", "kor"),
    ("nl", "nld"),
    ("no", "nob"),
    ("pl", "pol"),
    ("pt", "por"),
    ("ro", "ron"),
    ("ru", "rus"),
    ("sv", "swe"),
    ("tr", "tur"),
    ("uk", "ukr"),
    ("zh", "cmn"),
];

fn language_code(code: &str) -> Result<String, String> {
    let code = code.trim().to_ascii_lowercase();
    match code.len() {
        3 if code.chars().all(|c| c.is_ascii_lowercase()) => Ok(code),
        2 => TWO_LETTER_CODES
            .iter()
            .find(|(short, _)| *short == code)
            .map(|(_, long)| (*long).to_owned())
            .ok_or_else(|| format!("unknown language {code:?}: use its ISO 639-3 code")),
        _ => Err(format!("{code:?} is not a language code (ISO 639-3, like `deu`)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_as_the_indexes_compare_it() {
        let filter = SearchFilter {
            language: vec!["de".into(), "FRA".into()],
            format: vec!["PDF".into(), "application/vnd.oasis.opendocument.text".into()],
            path_prefix: Some("/shares/finance/".into()),
            author: vec![" Ana Díaz ".into()],
            date_from: Some("2024-05-01".into()),
            date_to: Some("2024-05-01".into()),
            heading: Some("Budget — 2024".into()),
            ..Default::default()
        };
        let normalized = filter.normalized().unwrap();
        assert_eq!(normalized.languages, ["deu", "fra"]);
        assert_eq!(normalized.formats, ["pdf", "application/vnd.oasis.opendocument.text"]);
        assert_eq!(normalized.folder.as_deref(), Some("/shares/finance"));
        assert_eq!(normalized.authors, ["ana díaz"]);
        assert_eq!(normalized.date_to.unwrap() - normalized.date_from.unwrap(), 86_399);
        assert_eq!(normalized.heading_words, ["budget", "2024"]);
        assert!(SearchFilter::default().normalized().unwrap().is_empty());
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let bad = |filter: SearchFilter| filter.normalized().unwrap_err();
        assert!(bad(SearchFilter { language: vec!["german".into()], ..Default::default() }).contains("not a language"));
        assert!(bad(SearchFilter { date_from: Some("last week".into()), ..Default::default() }).contains("not a date"));
        let reversed = SearchFilter {
            date_from: Some("2024-02-01".into()),
            date_to: Some("2024-01-01".into()),
            ..Default::default()
        };
        assert!(bad(reversed).contains("after"));
    }

    #[test]
    fn where_a_document_is_and_who_wrote_it() {
        assert_eq!(folders_of("/shares/a/b.pdf#2-x.txt"), ["/", "/shares", "/shares/a", "/shares/a/b.pdf"]);
        let metadata =
            DocumentMetadata { authors: vec!["Ana Díaz <Ana@Example.com>".into(), "Bo".into()], ..Default::default() };
        assert_eq!(author_keys(&metadata), ["ana díaz", "ana díaz <ana@example.com>", "ana@example.com", "bo"]);

        let facets = DocumentFacets::new("pdf", &metadata, "/shares/", "/shares/a/b.pdf");
        let filter = |filter: SearchFilter| filter.normalized().unwrap();
        let headings = ["Budget 2024".to_owned()];
        let admits = |f: SearchFilter| facets.admits(&filter(f), Some("deu"), &headings);
        assert!(admits(SearchFilter { author: vec!["ANA@example.com".into()], ..Default::default() }));
        assert!(admits(SearchFilter {
            path_prefix: Some("/shares/a/".into()),
            source: vec!["/shares".into()],
            ..Default::default()
        }));
        assert!(admits(SearchFilter {
            heading: Some("budget".into()),
            language: vec!["de".into()],
            ..Default::default()
        }));
        assert!(!admits(SearchFilter { path_prefix: Some("/shares/ab".into()), ..Default::default() }));
        assert!(!admits(SearchFilter { format: vec!["docx".into()], ..Default::default() }));
        // A document without a date is outside every date range.
        assert!(!admits(SearchFilter { date_from: Some("1900-01-01".into()), ..Default::default() }));
    }
}
