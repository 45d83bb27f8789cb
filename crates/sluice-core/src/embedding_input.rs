//! What the model embeds for a chunk: its text, after the context a reader of the chunk alone
//! would miss — its document's title and the headings above it. The context stays out of the
//! chunk's own text and span (what search hits, exports and lineage show); the embedding cache
//! is keyed by the hash of what was embedded ([`embedding_key`]), so every place that looks a
//! chunk's vector up computes the same key from the chunk's stored title, headings and text.

use std::borrow::Cow;

use crate::TextHash;

/// Part of the chunk fingerprint: changes whenever the same chunk would be embedded from other
/// text.
pub const CONTEXT_VERSION: &str = "title and headings, 1";

/// What of the context is kept, in estimated tokens of the model (a chunk fills at most 200 of
/// the model's 256; the context must not push its end out of the window).
const MAX_CONTEXT_TOKENS: usize = 40;
/// Characters at the start of a chunk searched for a context part it already says (a chunk
/// that opens with its own heading).
const OPENING_CHARS: usize = 400;

/// The text the model embeds for a chunk: the title, then the headings above the chunk (each
/// once, and none the chunk's opening already says), joined by ` › `, a blank line, and the
/// chunk's text; the text alone when there is no such context.
pub fn embedding_text<'a>(title: Option<&str>, headings: &[String], text: &'a str) -> Cow<'a, str> {
    let opening: String = text.chars().take(OPENING_CHARS).collect::<String>().to_lowercase();
    let mut parts: Vec<String> = Vec::new();
    let mut budget = MAX_CONTEXT_TOKENS;
    for part in title.into_iter().chain(headings.iter().map(String::as_str)) {
        let part = part.split_whitespace().collect::<Vec<_>>().join(" ");
        if part.is_empty() || parts.contains(&part) || opening.contains(&part.to_lowercase()) {
            continue;
        }
        let cost = estimated_tokens(&part);
        if cost > budget {
            continue;
        }
        budget -= cost;
        parts.push(part);
    }
    if parts.is_empty() { Cow::Borrowed(text) } else { Cow::Owned(format!("{}\n\n{text}", parts.join(" › "))) }
}

/// [`embedding_text`] and its key in the embedding cache: the hash of that text, which is the
/// chunk's own text hash (`text_hash`) when nothing is added.
pub fn embedding_input<'a>(
    title: Option<&str>,
    headings: &[String],
    text: &'a str,
    text_hash: TextHash,
) -> (TextHash, Cow<'a, str>) {
    let input = embedding_text(title, headings, text);
    let key = match &input {
        Cow::Borrowed(_) => text_hash,
        Cow::Owned(input) => TextHash::of_text(input),
    };
    (key, input)
}

/// The embedding cache's key for a chunk ([`embedding_input`]'s).
pub fn embedding_key(title: Option<&str>, headings: &[String], text: &str, text_hash: TextHash) -> TextHash {
    embedding_input(title, headings, text, text_hash).0
}

/// Tokens a WordPiece model makes of `text`, roughly: a word and a half per word, one per Han,
/// kana or Hangul character (those become a token each).
fn estimated_tokens(text: &str) -> usize {
    let cjk = text
        .chars()
        .filter(|&c| matches!(c, '\u{3040}'..='\u{30FF}' | '\u{3400}'..='\u{9FFF}' | '\u{AC00}'..='\u{D7AF}'))
        .count();
    cjk + text.split_whitespace().count() * 3 / 2 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_comes_first_once_and_never_twice() {
        let headings = vec!["Installation".to_owned(), "Network settings".to_owned()];
        let text = "Set the proxy in /etc/apt/apt.conf before the first update.";
        assert_eq!(
            embedding_text(Some("Debian Reference"), &headings, text),
            "Debian Reference › Installation › Network settings\n\nSet the proxy in /etc/apt/apt.conf before the first update."
        );
        // A chunk that opens with its own heading does not get it again.
        let opening = "Network settings\n\nSet the proxy first.";
        assert_eq!(embedding_text(None, &headings, opening), format!("Installation\n\n{opening}"));
        // No context: the text itself, and its own hash as the key.
        let hash = TextHash::of_text(text);
        assert!(matches!(embedding_text(None, &[], text), Cow::Borrowed(_)));
        assert_eq!(embedding_key(None, &[], text, hash), hash);
        assert_ne!(embedding_key(Some("Debian Reference"), &headings, text, hash), hash);
    }

    #[test]
    fn a_long_context_is_cut_to_its_budget() {
        let title = "word ".repeat(100);
        let headings = vec!["Short heading".to_owned()];
        // The title alone is over the budget: it is left out, the heading kept.
        assert_eq!(embedding_text(Some(&title), &headings, "Body."), "Short heading\n\nBody.");
    }
}
