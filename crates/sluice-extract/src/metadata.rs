//! A document's metadata from what its extractor found: the fields each format names its own
//! way (an e-mail's From, a PDF's Author, a DOCX's `dc:creator`) under one set of names, and
//! every date in one form (UTC, RFC 3339), whatever form the file wrote it in.
//!
//! Extractors push `(name, value)` pairs with these names: `author`, `from`, `to`, `cc`,
//! `subject`, `created`, `modified`, `date` (an e-mail's sending date).

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use sluice_core::{DocumentMetadata, ExtractedDocument};

/// Characters of the text searched for a date, for a document with none of its own.
const DATE_SEARCH_CHARS: usize = 4096;
/// Dates before this year are taken for numbers that only look like dates.
const EARLIEST_YEAR: i32 = 1900;

pub fn describe(document: &ExtractedDocument) -> DocumentMetadata {
    let mut metadata = DocumentMetadata { mime_type: mime_type(&document.format).to_owned(), ..Default::default() };
    for (name, value) in &document.metadata {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match name.as_str() {
            "author" | "from" => push_people(&mut metadata.authors, value),
            "to" | "cc" => push_people(&mut metadata.recipients, value),
            "subject" if metadata.subject.is_none() => metadata.subject = Some(value.to_owned()),
            "created" | "date" if metadata.created.is_none() => metadata.created = parse_date(value),
            "modified" if metadata.modified.is_none() => metadata.modified = parse_date(value),
            _ => {}
        }
    }
    if metadata.created.is_none() && metadata.modified.is_none() {
        let mut budget = DATE_SEARCH_CHARS;
        for block in &document.blocks {
            let text: String = block.text.chars().take(budget).collect();
            budget = budget.saturating_sub(text.chars().count());
            if let Some(date) = date_in_text(&text) {
                metadata.date_in_text = Some(date);
                break;
            }
            if budget == 0 {
                break;
            }
        }
    }
    metadata
}

/// People in a header or property, each kept once, in order: several separated by `;`, or by
/// `,` in an address list (every part an address: `Smith, John` is one person).
fn push_people(people: &mut Vec<String>, value: &str) {
    for part in value.split(';') {
        let addresses: Vec<&str> = part.split(',').map(str::trim).filter(|person| !person.is_empty()).collect();
        let persons = if addresses.iter().all(|address| address.contains('@')) { addresses } else { vec![part.trim()] };
        for person in persons.into_iter().filter(|person| !person.is_empty()) {
            if !people.iter().any(|known| known == person) {
                people.push(person.to_owned());
            }
        }
    }
}

/// The media type of an extractor's format name.
pub fn mime_type(format: &str) -> &'static str {
    match format {
        "pdf" => "application/pdf",
        "html" => "text/html",
        "markdown" => "text/markdown",
        "text" => "text/plain",
        "email" => "message/rfc822",
        "mbox" => "application/mbox",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "odt" => "application/vnd.oasis.opendocument.text",
        "odp" => "application/vnd.oasis.opendocument.presentation",
        "ods" => "application/vnd.oasis.opendocument.spreadsheet",
        "xls" => "application/vnd.ms-excel",
        _ => "application/octet-stream",
    }
}

/// A date as documents write them, as RFC 3339 UTC: RFC 3339 / ISO 8601 (Office properties,
/// HTML meta), RFC 2822 (e-mail), PDF's `D:YYYYMMDDHHmmSS+HH'mm'`, or a bare `YYYY-MM-DD`. A
/// time without a zone is taken as UTC.
pub fn parse_date(text: &str) -> Option<String> {
    let text = text.trim();
    let parsed = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_rfc2822(text))
        .map(|at| at.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"]
                .iter()
                .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
                .map(|naive| Utc.from_utc_datetime(&naive))
        })
        .or_else(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(midnight))
        .or_else(|| pdf_date(text))?;
    (parsed.year() >= EARLIEST_YEAR).then(|| DocumentMetadata::format_date(parsed))
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// PDF's date string (ISO 32000 §7.9.4): `D:YYYY[MM[DD[HH[mm[SS]]]]][Z|+HH'mm'|-HH'mm']`.
fn pdf_date(text: &str) -> Option<DateTime<Utc>> {
    let (digits_and_zone, prefixed) = match text.strip_prefix("D:") {
        Some(rest) => (rest, true),
        None => (text, false),
    };
    let digits: String = digits_and_zone.chars().take_while(char::is_ascii_digit).collect();
    // Without its `D:`, only a whole date and time of digits is taken for one.
    let zone_follows =
        digits_and_zone[digits.len()..].chars().next().is_none_or(|c| matches!(c, 'Z' | '+' | '-' | '\''));
    if digits.len() < 4 || !digits.len().is_multiple_of(2) || !zone_follows || (!prefixed && digits.len() < 14) {
        return None;
    }
    let field = |from: usize, default: u32| digits.get(from..from + 2).map_or(Some(default), |two| two.parse().ok());
    let year: i32 = digits[..4].parse().ok()?;
    let naive = NaiveDate::from_ymd_opt(year, field(4, 1)?, field(6, 1)?)?.and_hms_opt(
        field(8, 0)?,
        field(10, 0)?,
        field(12, 0)?,
    )?;
    let zone = &digits_and_zone[digits.len()..];
    let offset_minutes = match zone.chars().next() {
        Some(sign @ ('+' | '-')) => {
            let numbers: Vec<i32> = zone[1..]
                .split(|c: char| !c.is_ascii_digit())
                .filter(|n| !n.is_empty())
                .filter_map(|n| n.parse().ok())
                .collect();
            let minutes = numbers.first().copied().unwrap_or(0) * 60 + numbers.get(1).copied().unwrap_or(0);
            if sign == '-' { -minutes } else { minutes }
        }
        _ => 0,
    };
    Some(Utc.from_utc_datetime(&naive) - chrono::Duration::minutes(offset_minutes.into()))
}

/// The first date written out in `text`: ISO `2024-05-01`, or a day, a month name and a year
/// (`1 May 2024`, `May 1, 2024`, `1. Mai 2024`, `1er mai 2024`) in English, German or French.
pub fn date_in_text(text: &str) -> Option<String> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|word| word.trim_matches(|c: char| matches!(c, '(' | ')' | '[' | ']' | ';' | ':')))
        .filter(|word| !word.is_empty())
        .collect();
    for (at, word) in words.iter().enumerate() {
        let word = word.trim_end_matches('.');
        if word.len() == 10
            && word.as_bytes()[4] == b'-'
            && let Ok(date) = NaiveDate::parse_from_str(word, "%Y-%m-%d")
            && date.year() >= EARLIEST_YEAR
        {
            return Some(DocumentMetadata::format_date(midnight(date)));
        }
        let Some(month) = month_number(word) else { continue };
        let day_before = at.checked_sub(1).and_then(|before| day_number(words[before]));
        let (day, year) = match day_before {
            Some(day) => (Some(day), words.get(at + 1)),
            None => (words.get(at + 1).and_then(|next| day_number(next)), words.get(at + 2)),
        };
        let year: Option<i32> = year.and_then(|year| year.trim_end_matches('.').parse().ok());
        if let (Some(day), Some(year)) = (day, year)
            && let Some(date) = NaiveDate::from_ymd_opt(year, month, day)
            && year >= EARLIEST_YEAR
        {
            return Some(DocumentMetadata::format_date(midnight(date)));
        }
    }
    None
}

/// `1`, `01`, `1.`, `1st`, `1er`.
fn day_number(word: &str) -> Option<u32> {
    let digits: String = word.chars().take_while(char::is_ascii_digit).collect();
    let rest = &word[digits.len()..];
    let day: u32 = digits.parse().ok()?;
    (matches!(rest, "" | "." | "st" | "nd" | "rd" | "th" | "er") && (1..=31).contains(&day)).then_some(day)
}

fn month_number(word: &str) -> Option<u32> {
    const MONTHS: [[&str; 3]; 12] = [
        ["january", "januar", "janvier"],
        ["february", "februar", "février"],
        ["march", "märz", "mars"],
        ["april", "april", "avril"],
        ["may", "mai", "mai"],
        ["june", "juni", "juin"],
        ["july", "juli", "juillet"],
        ["august", "august", "août"],
        ["september", "september", "septembre"],
        ["october", "oktober", "octobre"],
        ["november", "november", "novembre"],
        ["december", "dezember", "décembre"],
    ];
    let word = word.to_lowercase();
    MONTHS.iter().position(|names| names.contains(&word.as_str())).map(|index| index as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_every_form_documents_write_them() {
        for (text, expected) in [
            ("2024-05-01T09:30:00Z", "2024-05-01T09:30:00Z"),
            ("2024-05-01T11:30:00+02:00", "2024-05-01T09:30:00Z"),
            ("Wed, 1 May 2024 11:30:00 +0200", "2024-05-01T09:30:00Z"),
            ("D:20240501113000+02'00'", "2024-05-01T09:30:00Z"),
            ("D:20240501", "2024-05-01T00:00:00Z"),
            ("2024-05-01T09:30:00", "2024-05-01T09:30:00Z"),
            ("2024-05-01", "2024-05-01T00:00:00Z"),
        ] {
            assert_eq!(parse_date(text).as_deref(), Some(expected), "{text}");
        }
        for nonsense in ["", "yesterday", "D:", "0000-00-00", "1601-01-01T00:00:00Z"] {
            assert_eq!(parse_date(nonsense), None, "{nonsense}");
        }
    }

    #[test]
    fn a_date_written_in_the_text() {
        for (text, expected) in [
            ("Minutes of the meeting held on 3 March 2021 in Lyon.", "2021-03-03"),
            ("Signed in Berlin, am 3. März 2021.", "2021-03-03"),
            ("Fait à Paris le 1er mai 2022", "2022-05-01"),
            ("Released May 7, 2019 (see notes)", "2019-05-07"),
            ("Build 2020-11-30: fixes", "2020-11-30"),
        ] {
            let found = date_in_text(text);
            assert_eq!(found.as_deref().map(|date| &date[..10]), Some(expected), "{text}");
        }
        assert_eq!(date_in_text("May we go? 12 apples, 2 pears."), None);
        assert_eq!(date_in_text("Version 1.2.3 of 45 modules"), None);
    }

    #[test]
    fn fields_under_one_set_of_names() {
        let document = ExtractedDocument {
            format: "email".into(),
            metadata: vec![
                ("from".into(), "Ana Díaz <ana@example.com>".into()),
                ("to".into(), "bo@example.com, Cy <cy@example.com>".into()),
                ("subject".into(), "Budget".into()),
                ("date".into(), "Wed, 1 May 2024 11:30:00 +0200".into()),
            ],
            ..Default::default()
        };
        let metadata = describe(&document);
        assert_eq!(metadata.authors, ["Ana Díaz <ana@example.com>"]);
        assert_eq!(metadata.recipients, ["bo@example.com", "Cy <cy@example.com>"]);
        assert_eq!(metadata.subject.as_deref(), Some("Budget"));
        assert_eq!(metadata.created.as_deref(), Some("2024-05-01T09:30:00Z"));
        assert_eq!(metadata.mime_type, "message/rfc822");
        assert_eq!(metadata.date_in_text, None);

        let office = ExtractedDocument {
            format: "docx".into(),
            metadata: vec![("author".into(), "Smith, John".into()), ("author".into(), "Jane Roe; Smith, John".into())],
            blocks: vec![sluice_core::Block {
                kind: sluice_core::BlockKind::Paragraph,
                text: "Agreed on 4 July 2023.".into(),
                page: None,
            }],
            ..Default::default()
        };
        let metadata = describe(&office);
        assert_eq!(metadata.authors, ["Smith, John", "Jane Roe"]);
        assert_eq!(metadata.date_in_text.as_deref(), Some("2023-07-04T00:00:00Z"));
    }
}
