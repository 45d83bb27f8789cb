//! Local PII detection for text chunks: e-mail addresses, phone numbers, IBANs, payment card
//! numbers, IPv4/IPv6 addresses, and the pipeline's own named regexes.
//!
//! Everything runs in-process; nothing leaves the machine. Detected values are never logged,
//! stored or returned: callers get byte spans and kind names only, and the pipeline's policy
//! decides whether to tag the chunk, mask the values, or drop the chunk.
//!
//! Precision comes before recall. Checksummed kinds are flagged only when the checksum holds
//! (IBAN: country length and ISO 13616 mod-97; card: Luhn and a known issuer prefix), and digit
//! runs count only when they stand alone, so dates, versions, prices and order numbers are not
//! reported as phones or cards.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use regex::{Match, Regex};

/// Bumped whenever detection changes what it finds: part of the chunk fingerprint, so chunks
/// made under older rules are processed again.
pub const PII_VERSION: u32 = 1;

/// What a span holds. `Custom` carries the name of a pipeline regex.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PiiKind {
    Email,
    Phone,
    Iban,
    PaymentCard,
    IpAddress,
    Custom(String),
}

impl PiiKind {
    /// The name used in counts, chunk metadata and (upper-cased) mask placeholders.
    pub fn as_str(&self) -> &str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::Iban => "iban",
            PiiKind::PaymentCard => "card",
            PiiKind::IpAddress => "ip",
            PiiKind::Custom(name) => name,
        }
    }
}

/// One detected value: byte offsets `start..end` into the scanned text, always at char boundaries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PiiSpan {
    pub kind: PiiKind,
    pub start: usize,
    pub end: usize,
}

/// What the pipeline does with a chunk that contains PII.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PiiPolicy {
    /// Keep the text as is; record the kinds and counts with the chunk.
    Tag,
    /// Replace every value with a placeholder such as `[EMAIL]` before embedding and storage.
    Mask,
    /// Do not index the chunk at all.
    DropChunk,
}

impl PiiPolicy {
    /// Parses the pipeline file's spelling: `tag`, `mask` or `drop-chunk`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "tag" => Some(PiiPolicy::Tag),
            "mask" => Some(PiiPolicy::Mask),
            "drop-chunk" => Some(PiiPolicy::DropChunk),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PiiPolicy::Tag => "tag",
            PiiPolicy::Mask => "mask",
            PiiPolicy::DropChunk => "drop-chunk",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    #[error("pii pattern {name:?} is not a valid regex: {message}")]
    BadPattern { name: String, message: String },
}

/// `local@domain.tld`: local part of letters, digits and `._%+-` (not starting with a dot),
/// dot-separated domain labels, and an alphabetic TLD of two or more letters.
const EMAIL: &str = r"[A-Za-z0-9_%+-][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}";

/// Country code, check digits, then the BBAN either compact or in groups of four separated by
/// single spaces (the last group may be shorter). Lengths and the checksum are checked by hand.
const IBAN: &str = r"[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)";

/// 13-19 digits: compact, in groups of four (the last may be shorter), or Amex/Diners 4-6-5/4-6-4.
/// Separators are a single space or hyphen; that a number uses one kind only is checked by hand.
const CARD: &str = r"[0-9]{13,19}|[0-9]{4}(?:[ -][0-9]{4}){2,3}(?:[ -][0-9]{1,4})?|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5}";

/// `+`, then digits with single spaces, dots or hyphens between them and parenthesised groups
/// (at most one is allowed; checked by hand along with the digit count). Bounded, so the
/// restart-on-reject scan stays linear.
const PHONE_INTERNATIONAL: &str = r"\+[0-9](?:[ .-]?(?:\([0-9]{1,4}\)|[0-9])){6,18}";

/// North-American numbers without `+`: `(415) 555-2671`, `415-555-2671`, `1-800-555-0199`. Area and
/// exchange codes start with 2-9, which rules out most order numbers.
const PHONE_NORTH_AMERICAN: &str =
    r"\([2-9][0-9]{2}\) ?[2-9][0-9]{2}[-. ][0-9]{4}|(?:1[-.])?[2-9][0-9]{2}[-.][2-9][0-9]{2}[-.][0-9]{4}";

const IPV4: &str = r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}";

/// Candidate IPv6 text: 2-7 colon-terminated hex groups (empty ones make `::`), then a last hex
/// group or an embedded IPv4 address. `Ipv6Addr` parsing decides.
const IPV6: &str = r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{1,4})?";

/// Characters that join digit groups into one longer number (`12.4111…`, `2024-4111…`).
const NUMBER_JOINERS: [char; 4] = ['.', ',', '-', '/'];

/// IBAN lengths from the SWIFT IBAN registry; countries not listed accept 15-34 characters.
const IBAN_LENGTHS: [(&str, usize); 77] = [
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// Compiled patterns; built once and shared. `Regex` is `Send + Sync` and clones cheaply, so a
/// detector can sit behind an `Arc` or be cloned per worker.
#[derive(Clone, Debug)]
pub struct PiiDetector {
    email: Regex,
    iban: Regex,
    card: Regex,
    phone_international: Regex,
    phone_north_american: Regex,
    ipv4: Regex,
    ipv6: Regex,
    custom: Vec<(String, Regex)>,
}

impl PiiDetector {
    /// `custom`: (name, regex source) pairs from the pipeline file; an invalid regex is an Err naming it.
    pub fn new(custom: &[(String, String)]) -> Result<Self, PiiError> {
        let custom = custom
            .iter()
            .map(|(name, source)| match Regex::new(source) {
                Ok(regex) => Ok((name.clone(), regex)),
                Err(error) => Err(PiiError::BadPattern { name: name.clone(), message: error.to_string() }),
            })
            .collect::<Result<_, _>>()?;
        Ok(PiiDetector {
            email: builtin(EMAIL),
            iban: builtin(IBAN),
            card: builtin(CARD),
            phone_international: builtin(PHONE_INTERNATIONAL),
            phone_north_american: builtin(PHONE_NORTH_AMERICAN),
            ipv4: builtin(IPV4),
            ipv6: builtin(IPV6),
            custom,
        })
    }

    /// Every PII span in `text`, sorted by start, non-overlapping. Where detections overlap, an
    /// IBAN or card (checksum-validated) wins; otherwise the longer, then the earlier one.
    pub fn detect(&self, text: &str) -> Vec<PiiSpan> {
        let hints = Hints::of(text);
        let mut found = Vec::new();
        let mut add = |kind: PiiKind, spans: Vec<(usize, usize)>| {
            found.extend(spans.into_iter().map(|(start, end)| PiiSpan { kind: kind.clone(), start, end }));
        };
        if hints.at && hints.dot {
            add(PiiKind::Email, self.emails(text));
        }
        if hints.upper && hints.digit {
            add(PiiKind::Iban, scan(&self.iban, text, |m| iban_end(text, m)));
        }
        if hints.digit {
            add(PiiKind::PaymentCard, scan(&self.card, text, |m| card_end(text, m)));
            add(PiiKind::Phone, scan(&self.phone_north_american, text, |m| north_american_end(text, m)));
        }
        if hints.plus && hints.digit {
            add(PiiKind::Phone, scan(&self.phone_international, text, |m| international_end(text, m)));
        }
        if hints.dot && hints.digit {
            add(PiiKind::IpAddress, scan(&self.ipv4, text, |m| ipv4_end(text, m)));
        }
        if hints.colon && hints.digit {
            add(PiiKind::IpAddress, scan(&self.ipv6, text, |m| ipv6_end(text, m)));
        }
        for (name, regex) in &self.custom {
            let spans = regex.find_iter(text).filter(|m| !m.is_empty()).map(|m| (m.start(), m.end())).collect();
            add(PiiKind::Custom(name.clone()), spans);
        }
        resolve_overlaps(found)
    }

    /// E-mails need no restart after a rejected match: leftmost matching already starts each
    /// match as early as possible, and restarting would be quadratic in a long local part.
    fn emails(&self, text: &str) -> Vec<(usize, usize)> {
        self.email
            .find_iter(text)
            .filter(|m| email_stands_alone(text, m.start(), m.end()))
            .map(|m| (m.start(), m.end()))
            .collect()
    }
}

/// Compiles one of this module's own patterns; they are constants covered by every test.
fn builtin(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in PII pattern compiles")
}

/// Replaces each span with a placeholder `[EMAIL]`, `[PHONE]`, `[IBAN]`, `[CARD]`, `[IP]`,
/// `[<CUSTOM NAME UPPERCASE>]`; returns the new string. Spans that overlap an earlier one, are
/// empty, or do not fall on char boundaries of `text` are skipped rather than panicking.
pub fn mask(text: &str, spans: &[PiiSpan]) -> String {
    let mut ordered: Vec<&PiiSpan> = spans.iter().collect();
    ordered.sort_by_key(|span| (span.start, Reverse(span.end)));
    let mut masked = String::with_capacity(text.len());
    let mut copied = 0;
    for span in ordered {
        if span.start < copied || span.end <= span.start || text.get(span.start..span.end).is_none() {
            continue;
        }
        masked.push_str(&text[copied..span.start]);
        masked.push('[');
        masked.push_str(&span.kind.as_str().to_uppercase());
        masked.push(']');
        copied = span.end;
    }
    masked.push_str(&text[copied..]);
    masked
}

/// Counts per kind name, sorted by name.
pub fn count_by_kind(spans: &[PiiSpan]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for span in spans {
        *counts.entry(span.kind.as_str().to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Which trigger characters occur, from one pass over the bytes, so `detect` can skip patterns
/// that cannot match (most chunks have no `@`, `+` or `:`).
#[derive(Default)]
struct Hints {
    at: bool,
    dot: bool,
    colon: bool,
    plus: bool,
    digit: bool,
    upper: bool,
}

impl Hints {
    fn of(text: &str) -> Self {
        let mut hints = Hints::default();
        for byte in text.bytes() {
            match byte {
                b'@' => hints.at = true,
                b'.' => hints.dot = true,
                b':' => hints.colon = true,
                b'+' => hints.plus = true,
                b'0'..=b'9' => hints.digit = true,
                b'A'..=b'Z' => hints.upper = true,
                _ => {}
            }
        }
        hints
    }
}

/// Leftmost matches of `regex`, each vetted by `accept`, which returns where the value ends (it
/// may shorten the match) or rejects it. A rejected match restarts the search one character
/// later, so a valid value inside a rejected run is still found; the built-in patterns are
/// bounded in length, which keeps this linear in the text.
fn scan(regex: &Regex, text: &str, mut accept: impl FnMut(Match<'_>) -> Option<usize>) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = regex.find_at(text, from) {
        match accept(found) {
            Some(end) => {
                spans.push((found.start(), end));
                from = end;
            }
            None => from = next_char(text, found.start()),
        }
        if from >= text.len() {
            break;
        }
    }
    spans
}

fn next_char(text: &str, at: usize) -> usize {
    at + text[at..].chars().next().map_or(1, char::len_utf8)
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The character just before `at` and the one before that.
fn before(text: &str, at: usize) -> (Option<char>, Option<char>) {
    let mut chars = text[..at].chars().rev();
    (chars.next(), chars.next())
}

/// The character at `at` and the one after it.
fn after(text: &str, at: usize) -> (Option<char>, Option<char>) {
    let mut chars = text[at..].chars();
    (chars.next(), chars.next())
}

/// Whether `start..end` is a value on its own rather than part of a word or a longer number: no
/// word character touches it, and no joiner links it to a further character `continues` accepts.
fn stands_alone(text: &str, start: usize, end: usize, joiners: &[char], continues: fn(char) -> bool) -> bool {
    let glued = |(next, beyond): (Option<char>, Option<char>)| match next {
        Some(c) if is_word(c) => true,
        Some(c) if joiners.contains(&c) => beyond.is_some_and(continues),
        _ => false,
    };
    !glued(before(text, start)) && !glued(after(text, end))
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

fn is_hex_digit(c: char) -> bool {
    c.is_ascii_hexdigit()
}

/// An e-mail must not be glued to a word, another `@`, or a domain that goes on (`-x`, `.x`).
fn email_stands_alone(text: &str, start: usize, end: usize) -> bool {
    let previous_ok = !before(text, start).0.is_some_and(|c| is_word(c) || c == '@');
    let next_ok = match after(text, end) {
        (Some(c), _) if is_word(c) || c == '@' || c == '-' => false,
        (Some('.'), beyond) => !beyond.is_some_and(is_word),
        _ => true,
    };
    previous_ok && next_ok
}

/// A grouped match may have swallowed a following four-letter word (`… 7034 THEN`), so shorter
/// prefixes ending at a group boundary are tried, longest first.
fn iban_end(text: &str, found: Match<'_>) -> Option<usize> {
    if !stands_alone(text, found.start(), found.end(), &[], is_digit) {
        return None;
    }
    let written = found.as_str();
    let group_ends = written.rmatch_indices(' ').map(|(space, _)| space);
    std::iter::once(written.len())
        .chain(group_ends)
        .find(|&end| is_valid_iban(&written[..end]))
        .map(|end| found.start() + end)
}

/// Country length and the ISO 13616 check: check digits 02-98, and the rearranged number mod 97
/// is 1. Single spaces between groups are ignored.
fn is_valid_iban(written: &str) -> bool {
    let iban: Vec<u8> = written.bytes().filter(|&b| b != b' ').collect();
    let Some((country, rest)) = iban.split_first_chunk::<2>() else { return false };
    let expected = IBAN_LENGTHS.iter().find(|(code, _)| code.as_bytes() == country).map(|&(_, length)| length);
    let length_ok = match expected {
        Some(length) => iban.len() == length,
        None => (15..=34).contains(&iban.len()),
    };
    let check_ok = match rest {
        [tens @ b'0'..=b'9', ones @ b'0'..=b'9', ..] => (2..=98).contains(&((tens - b'0') * 10 + (ones - b'0'))),
        _ => false,
    };
    length_ok && check_ok && iban_mod97(&iban) == Some(1)
}

/// The IBAN with its first four characters moved to the end and letters read as 10..35, mod 97,
/// computed digit by digit so no big integer is needed. `None` for a character outside A-Z0-9.
fn iban_mod97(iban: &[u8]) -> Option<u32> {
    let (head, tail) = iban.split_at(iban.len().min(4));
    tail.iter().chain(head).try_fold(0u32, |remainder, &byte| match byte {
        b'0'..=b'9' => Some((remainder * 10 + u32::from(byte - b'0')) % 97),
        b'A'..=b'Z' => Some((remainder * 100 + u32::from(byte - b'A') + 10) % 97),
        _ => None,
    })
}

/// One kind of separator throughout, not part of a longer number, Luhn-valid, known issuer.
fn card_end(text: &str, found: Match<'_>) -> Option<usize> {
    let written = found.as_str();
    let separator = written.chars().find(|c| !c.is_ascii_digit());
    if written.chars().any(|c| !c.is_ascii_digit() && Some(c) != separator) {
        return None;
    }
    // A grouped number continued by another group with the same separator is a longer run.
    let mut joiners = NUMBER_JOINERS.to_vec();
    joiners.extend(separator);
    if !stands_alone(text, found.start(), found.end(), &joiners, is_digit) {
        return None;
    }
    let digits: Vec<u8> = written.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
    (plausible_issuer(&digits) && luhn_valid(&digits)).then_some(found.end())
}

/// Issuer prefix and the lengths that issuer uses: Visa 4; Mastercard 51-55, 2221-2720; Amex
/// 34, 37; Discover 6011, 65; JCB 35; Diners 30, 36, 38.
fn plausible_issuer(digits: &[u8]) -> bool {
    let prefix = |n: usize| digits.iter().take(n).fold(0u32, |number, &d| number * 10 + u32::from(d));
    let length = digits.len();
    if prefix(1) == 4 {
        matches!(length, 13 | 16 | 19)
    } else if (51..=55).contains(&prefix(2)) || (2221..=2720).contains(&prefix(4)) {
        length == 16
    } else if matches!(prefix(2), 34 | 37) {
        length == 15
    } else if prefix(4) == 6011 || matches!(prefix(2), 65 | 35) {
        (16..=19).contains(&length)
    } else if matches!(prefix(2), 30 | 36 | 38) {
        (14..=19).contains(&length)
    } else {
        false
    }
}

/// Luhn: double every second digit from the right, sum the digits of the results, mod 10 is 0.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, &digit)| match (position % 2, u32::from(digit) * 2) {
            (1, doubled) if doubled > 9 => doubled - 9,
            (1, doubled) => doubled,
            _ => u32::from(digit),
        })
        .sum();
    sum.is_multiple_of(10)
}

/// E.164 allows at most 15 digits including the country code; fewer than 8 is not a full number.
fn international_end(text: &str, found: Match<'_>) -> Option<usize> {
    let written = found.as_str();
    let digits = written.bytes().filter(u8::is_ascii_digit).count();
    let area_codes = written.bytes().filter(|&b| b == b'(').count();
    let ok = (8..=15).contains(&digits)
        && area_codes <= 1
        && stands_alone(text, found.start(), found.end(), &NUMBER_JOINERS, is_digit);
    ok.then_some(found.end())
}

/// The bare form must use one separator throughout (`415-555.2671` is not a phone number).
fn north_american_end(text: &str, found: Match<'_>) -> Option<usize> {
    let written = found.as_str();
    let consistent = written.starts_with('(') || {
        let mut separators = written.bytes().filter(|b| !b.is_ascii_digit());
        let first = separators.next();
        separators.all(|b| Some(b) == first)
    };
    let ok = consistent && stands_alone(text, found.start(), found.end(), &NUMBER_JOINERS, is_digit);
    ok.then_some(found.end())
}

/// Dotted quads that `Ipv4Addr` parses (octets 0-255; it also rejects leading zeros, which some
/// tools read as octal), not part of a version string (`v1.2.3.4`) or a longer run (`1.2.3.4.5`).
fn ipv4_end(text: &str, found: Match<'_>) -> Option<usize> {
    let ok =
        found.as_str().parse::<Ipv4Addr>().is_ok() && stands_alone(text, found.start(), found.end(), &['.'], is_digit);
    ok.then_some(found.end())
}

/// Whatever `Ipv6Addr` parses, provided it holds a decimal digit: that keeps code paths such as
/// `a::b` or `Self::CONST` out while `::1` and `fe80::…` still count.
fn ipv6_end(text: &str, found: Match<'_>) -> Option<usize> {
    let written = found.as_str();
    let ok = written.bytes().any(|b| b.is_ascii_digit())
        && written.parse::<Ipv6Addr>().is_ok()
        && stands_alone(text, found.start(), found.end(), &[':', '.'], is_hex_digit);
    ok.then_some(found.end())
}

/// Keeps a non-overlapping subset, choosing in a fixed order of preference: checksummed kinds
/// (IBAN, card) first, then longer spans, then earlier ones, then the kind's declaration order.
fn resolve_overlaps(found: Vec<PiiSpan>) -> Vec<PiiSpan> {
    let mut candidates: Vec<(usize, PiiSpan)> = found.into_iter().enumerate().collect();
    candidates.sort_by_key(|(order, span)| {
        let checksummed = matches!(span.kind, PiiKind::Iban | PiiKind::PaymentCard);
        (!checksummed, Reverse(span.end - span.start), span.start, *order)
    });
    // Kept spans are disjoint, so the one starting last before a candidate's end is the only
    // one that can overlap it.
    let mut kept: BTreeMap<usize, PiiSpan> = BTreeMap::new();
    for (_, span) in candidates {
        let overlaps = kept.range(..span.end).next_back().is_some_and(|(_, previous)| previous.end > span.start);
        if !overlaps {
            kept.insert(span.start, span);
        }
    }
    kept.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector() -> PiiDetector {
        PiiDetector::new(&[]).unwrap()
    }

    /// (kind, value) for every detection, in text order.
    fn detections<'t>(detector: &PiiDetector, text: &'t str) -> Vec<(String, &'t str)> {
        detector
            .detect(text)
            .into_iter()
            .map(|span| (span.kind.as_str().to_owned(), &text[span.start..span.end]))
            .collect()
    }

    fn flagged(text: &str) -> Vec<(String, &str)> {
        detections(&detector(), text)
    }

    fn only(kind: &str, value: &str) -> Vec<(String, String)> {
        vec![(kind.to_owned(), value.to_owned())]
    }

    fn owned(found: Vec<(String, &str)>) -> Vec<(String, String)> {
        found.into_iter().map(|(kind, value)| (kind, value.to_owned())).collect()
    }

    /// The same value with its last digit changed (a single-digit error every checksum here catches).
    fn last_digit_changed(value: &str) -> String {
        let position = value.rfind(|c: char| c.is_ascii_digit()).unwrap();
        let digit = value.as_bytes()[position] - b'0';
        let mut changed = value.to_owned();
        changed.replace_range(position..=position, &((digit + 1) % 10).to_string());
        changed
    }

    const VALID_IBANS: [&str; 9] = [
        "DE89 3704 0044 0532 0130 00",
        "GB82 WEST 1234 5698 7654 32",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91 ABNA 0417 1643 00",
        "ES91 2100 0418 4502 0005 1332",
        "IT60 X054 2811 1010 0000 0123 456",
        "BE68 5390 0754 7034",
        "CH93 0076 2011 6238 5295 7",
        "AT61 1904 3002 3457 3201",
    ];

    #[test]
    fn valid_ibans_are_flagged_grouped_and_compact() {
        for grouped in VALID_IBANS {
            let compact = grouped.replace(' ', "");
            for iban in [grouped, compact.as_str()] {
                let text = format!("Please pay to {iban}, reference 7731.");
                assert_eq!(owned(flagged(&text)), only("iban", iban), "{iban}");
            }
        }
    }

    #[test]
    fn ibans_with_one_digit_changed_are_not_flagged() {
        for grouped in VALID_IBANS {
            let changed = last_digit_changed(grouped);
            for iban in [changed.clone(), changed.replace(' ', "")] {
                let text = format!("Please pay to {iban} today.");
                assert_eq!(flagged(&text), vec![], "{iban}");
            }
        }
    }

    #[test]
    fn iban_checks_country_length_and_check_digit_range() {
        // Valid mod-97 but one character short for Germany (22).
        assert_eq!(iban_mod97(b"DE5137040044053201300"), Some(1));
        assert!(!is_valid_iban("DE5137040044053201300"));
        assert!(is_valid_iban("DE89370400440532013000"));
        // A country without a registered length accepts 15-34 characters.
        assert!(is_valid_iban("QQ831234567890123"));
        // Check digits 99 leave the same remainder as 02 (99 = 2 mod 97) but are outside 02-98.
        assert!(is_valid_iban("DE02370400440000000024"));
        assert_eq!(iban_mod97(b"DE99370400440000000024"), Some(1));
        assert!(!is_valid_iban("DE99370400440000000024"));
    }

    #[test]
    fn grouped_iban_followed_by_a_capitalised_word_keeps_only_the_iban() {
        let text = "Account BE68 5390 0754 7034 THEN call us.";
        assert_eq!(owned(flagged(text)), only("iban", "BE68 5390 0754 7034"));
    }

    #[test]
    fn iban_inside_a_longer_code_is_not_flagged() {
        assert_eq!(flagged("ref XDE89370400440532013000 and DE89370400440532013000X"), vec![]);
    }

    #[test]
    fn valid_cards_are_flagged() {
        for card in
            ["4111 1111 1111 1111", "5555555555554444", "378282246310005", "6011-1111-1111-1117", "3782 822463 10005"]
        {
            let text = format!("Card on file: {card}. Expires 09/27.");
            assert_eq!(owned(flagged(&text)), only("card", card), "{card}");
        }
    }

    #[test]
    fn luhn_broken_cards_are_not_flagged() {
        for card in ["4111 1111 1111 1111", "5555555555554444", "378282246310005", "6011-1111-1111-1117"] {
            let broken = last_digit_changed(card);
            let text = format!("Card on file: {broken}.");
            assert_eq!(flagged(&text), vec![], "{broken}");
        }
    }

    #[test]
    fn digit_runs_that_are_not_single_cards_are_not_flagged() {
        // 20 digits, compact and grouped; a valid card glued to more digits; mixed separators;
        // Luhn-valid but no known issuer (starts with 1).
        for text in [
            "Tracking 41111111111111111111 sent.",
            "Tracking 4111 1111 1111 1111 1111 sent.",
            "Tracking 0000 4111 1111 1111 1111 sent.",
            "Serial 9-4111111111111111 and 4111111111111111.5",
            "Mixed 4111 1111-1111 1111 separators.",
            "Account 1234567812345670 is internal.",
        ] {
            assert_eq!(flagged(text), vec![], "{text}");
        }
        assert!(luhn_valid(&[1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 0]));
    }

    #[test]
    fn emails_are_flagged_with_exact_spans() {
        let text = "Write to jane.doe+news@mail.example.co.uk or (ops_team@example.org).";
        let spans = detector().detect(text);
        assert_eq!(
            spans,
            vec![
                PiiSpan { kind: PiiKind::Email, start: 9, end: 41 },
                PiiSpan { kind: PiiKind::Email, start: 46, end: 66 }
            ]
        );
        assert_eq!(&text[9..41], "jane.doe+news@mail.example.co.uk");
        assert_eq!(&text[46..66], "ops_team@example.org");
    }

    #[test]
    fn things_that_are_not_emails_are_not_flagged() {
        for text in [
            "mail foo@bar now",
            "ping @handle on chat",
            "a@b.c is too short",
            "x@example.com2",
            "x@example.com-archive",
            "a@b@example.com",
        ] {
            assert_eq!(flagged(text), vec![], "{text}");
        }
    }

    #[test]
    fn phones_are_flagged() {
        for phone in [
            "+1 (415) 555-2671",
            "+44 20 7946 0958",
            "+49 30 901820",
            "+33.1.42.68.53.00",
            "(415) 555-2671",
            "415-555-2671",
            "1-800-555-0199",
        ] {
            let text = format!("Call {phone} after lunch.");
            assert_eq!(owned(flagged(&text)), only("phone", phone), "{phone}");
        }
    }

    #[test]
    fn malformed_phone_numbers_are_not_flagged() {
        // Two parenthesised groups; mixed separators; too few and too many digits for E.164.
        for text in
            ["Call +1 (415) (555) 2671.", "Call 415-555.2671.", "Call +49 30 123.", "Call +1 415 555 2671 8899 1."]
        {
            assert_eq!(flagged(text), vec![], "{text}");
        }
    }

    #[test]
    fn dates_years_times_prices_and_order_numbers_are_not_phones() {
        let text = "On 2024-01-15 (fiscal 2024) at 10:30 we shipped order #100234 and ORD-2024-001234 for \
                    $1,299.00 (€ 4.500,00); ISBN 978-3-16-148410-0, release 1.2.3, pi 3.14159, ticket 123-456-7890, \
                    +12 34 and 15.01.2024.";
        assert_eq!(flagged(text), vec![]);
    }

    #[test]
    fn ip_addresses_are_flagged() {
        for ip in [
            "192.168.1.1",
            "10.0.0.254",
            "0.0.0.0",
            "2001:db8::8a2e:370:7334",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "::1",
            "fe80::1ff:fe23:4567:890a",
            "::ffff:192.0.2.128",
        ] {
            let text = format!("Host {ip} is down.");
            assert_eq!(owned(flagged(&text)), only("ip", ip), "{ip}");
        }
        assert_eq!(owned(flagged("Connect to 10.1.2.3:8080 now")), only("ip", "10.1.2.3"));
    }

    #[test]
    fn invalid_or_ambiguous_addresses_are_not_flagged() {
        for text in [
            "Host 256.1.1.1 is bad.",
            "Version 1.2.3 shipped.",
            "Path 1.2.3.4.5 is a dotted run.",
            "Tag v1.2.3.4 released.",
            "Octal 01.2.3.4 looks odd.",
            "At 12:30:45 the MAC 00:1A:2B:3C:4D:5E was seen.",
            "Call std::fmt or a::b or u8::MAX.",
            "Overlong 1:2:3:4:5:6:7:8:9 groups.",
        ] {
            assert_eq!(flagged(text), vec![], "{text}");
        }
    }

    #[test]
    fn custom_patterns_are_flagged_with_their_name() {
        let custom = [("employee_id".to_owned(), r"EMP-\d{6}".to_owned())];
        let detector = PiiDetector::new(&custom).unwrap();
        let found = owned(detections(&detector, "Badge EMP-004211 for Ana."));
        assert_eq!(found, only("employee_id", "EMP-004211"));
    }

    #[test]
    fn invalid_custom_regex_is_an_error_naming_it() {
        let custom =
            [("employee_id".to_owned(), r"EMP-\d{6}".to_owned()), ("ticket".to_owned(), r"TCK-(\d+".to_owned())];
        let PiiError::BadPattern { name, message } = PiiDetector::new(&custom).unwrap_err();
        assert_eq!(name, "ticket");
        assert!(!message.is_empty());
        let error = PiiError::BadPattern { name, message: "unclosed group".to_owned() };
        assert_eq!(error.to_string(), "pii pattern \"ticket\" is not a valid regex: unclosed group");
    }

    #[test]
    fn mask_replaces_every_kind_with_its_placeholder() {
        let custom = [("employee_id".to_owned(), r"EMP-\d{6}".to_owned())];
        let detector = PiiDetector::new(&custom).unwrap();
        let text = "EMP-004211 (ana@example.com, +44 20 7946 0958) paid DE89 3704 0044 0532 0130 00 \
                    with 4111-1111-1111-1111 from 192.168.1.20.";
        assert_eq!(
            mask(text, &detector.detect(text)),
            "[EMPLOYEE_ID] ([EMAIL], [PHONE]) paid [IBAN] with [CARD] from [IP]."
        );
    }

    #[test]
    fn overlaps_prefer_checksummed_then_longer_then_earlier() {
        let custom = [
            ("short".to_owned(), r"AB-[0-9]{3}".to_owned()),
            ("long".to_owned(), r"AB-[0-9]{3}-[0-9]{2}".to_owned()),
            ("left".to_owned(), r"X12".to_owned()),
            ("right".to_owned(), r"23Y".to_owned()),
            ("same".to_owned(), r"Q[0-9]+".to_owned()),
            ("also_same".to_owned(), r"Q[0-9]+".to_owned()),
            ("card_label".to_owned(), r"Card: [0-9 ]+[0-9]".to_owned()),
        ];
        let detector = PiiDetector::new(&custom).unwrap();
        let text = "AB-123-45 X123Y Q77 Card: 4111 1111 1111 1111";
        let found = owned(detections(&detector, text));
        let expected = [("long", "AB-123-45"), ("left", "X12"), ("same", "Q77"), ("card", "4111 1111 1111 1111")];
        assert_eq!(found, expected.map(|(kind, value)| (kind.to_owned(), value.to_owned())).to_vec());
        // A 13-digit card right after a country code also reads as a (longer) phone number.
        assert_eq!(owned(flagged("Dial +1 4222222222222 now")), only("card", "4222222222222"));
    }

    #[test]
    fn mask_tolerates_unsorted_overlapping_and_misaligned_spans() {
        let text = "Grüße an ana@example.com";
        let at = text.find("ana").unwrap();
        let spans = [
            PiiSpan { kind: PiiKind::Email, start: at, end: text.len() },
            PiiSpan { kind: PiiKind::Phone, start: 3, end: 5 }, // inside 'ü'
            PiiSpan { kind: PiiKind::Iban, start: at + 2, end: at + 6 }, // overlaps the e-mail
            PiiSpan { kind: PiiKind::Custom("x".to_owned()), start: 0, end: 999 },
        ];
        assert_eq!(mask(text, &spans), "Grüße an [EMAIL]");
    }

    #[test]
    fn count_by_kind_counts_per_name() {
        let text = "a@example.com, b@example.com, 10.0.0.1 and 415-555-2671";
        let counts = count_by_kind(&detector().detect(text));
        let expected: BTreeMap<String, usize> =
            [("email", 2), ("ip", 1), ("phone", 1)].map(|(kind, n)| (kind.to_owned(), n)).into();
        assert_eq!(counts, expected);
    }

    #[test]
    fn multi_byte_text_around_values() {
        let text = "Grüße — schreib an jörg@example.com? Nein: an joerg@example.com 😀, Tel. +49 30 901820 …  \
                    Überweisung: DE89 3704 0044 0532 0130 00 ✓ 🇩🇪10.0.0.1";
        let spans = detector().detect(text);
        for span in &spans {
            assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
        }
        let found = owned(detections(&detector(), text));
        let expected = [
            ("email", "joerg@example.com"),
            ("phone", "+49 30 901820"),
            ("iban", "DE89 3704 0044 0532 0130 00"),
            ("ip", "10.0.0.1"),
        ];
        assert_eq!(found, expected.map(|(kind, value)| (kind.to_owned(), value.to_owned())).to_vec());
        assert_eq!(
            mask(text, &spans),
            "Grüße — schreib an jörg@example.com? Nein: an [EMAIL] 😀, Tel. [PHONE] …  \
             Überweisung: [IBAN] ✓ 🇩🇪[IP]"
        );
    }

    #[test]
    fn long_runs_produce_nothing() {
        let digits = "1".repeat(100_000);
        let dotted = "1.".repeat(50_000);
        let colons = "1:".repeat(50_000);
        for text in [digits, dotted, colons] {
            assert_eq!(detector().detect(&text), vec![]);
        }
    }

    #[test]
    fn policy_names_round_trip() {
        for policy in [PiiPolicy::Tag, PiiPolicy::Mask, PiiPolicy::DropChunk] {
            assert_eq!(PiiPolicy::parse(policy.as_str()), Some(policy));
        }
        assert_eq!(PiiPolicy::parse("drop_chunk"), None);
        assert_eq!(PiiPolicy::parse("Mask"), None);
    }

    #[test]
    fn detector_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PiiDetector>();
    }

    #[test]
    fn planted_fixture_flags_exactly_the_expected_values() {
        let text = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/pii/planted.md"));
        let expected: serde_json::Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/pii/planted.expected.json"
        )))
        .unwrap();
        let values = |key: &str| -> Vec<String> {
            let list = expected[key].as_array().unwrap();
            let mut values: Vec<String> = list.iter().map(|value| value.as_str().unwrap().to_owned()).collect();
            values.sort();
            values
        };
        let spans = detector().detect(text);
        let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for span in &spans {
            found.entry(span.kind.as_str().to_owned()).or_default().push(text[span.start..span.end].to_owned());
        }
        found.values_mut().for_each(|values| values.sort());
        let wanted: BTreeMap<String, Vec<String>> =
            ["email", "iban", "card", "phone", "ip"].map(|kind| (kind.to_owned(), values(kind))).into();
        assert_eq!(found, wanted);
        for planted in values("not_flagged") {
            let occurrences: Vec<usize> = text.match_indices(&planted).map(|(at, _)| at).collect();
            assert!(!occurrences.is_empty(), "{planted} is not in the fixture");
            for at in occurrences {
                let end = at + planted.len();
                assert!(spans.iter().all(|span| span.end <= at || span.start >= end), "{planted} was flagged");
            }
        }
    }
}
