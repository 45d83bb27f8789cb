//! The enrich stage, between chunk and embed: what the text says about itself that search
//! needs besides its words. Today that is the language of each chunk and of the document, which
//! choose the lexical analyzer a chunk is indexed with and which `language` filters match.

use std::collections::BTreeMap;

use sluice_core::Chunk;

use crate::language;

/// Changes whenever what this stage decides for the same chunks changes (the detector's
/// version or rules); it is part of the chunk fingerprint, so chunks are enriched again.
pub const ENRICH_VERSION: &str = "2 (whatlang 0.18)";

/// Sets every chunk's language and returns the document's.
///
/// The document's language is the one that reliably covers the most text among its chunks (a
/// French manual quoting English paragraphs stays French). A chunk whose own language is not
/// reliable (a table of figures, a short caption) takes the document's: the analyzer that suits
/// its neighbours suits it best.
pub fn detect_languages(chunks: &mut [Chunk]) -> Option<String> {
    let detected: Vec<Option<language::Language>> = chunks.iter().map(|chunk| language::detect(&chunk.text)).collect();
    let covers = |reliable_only: bool| {
        let mut chars: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (chunk, language) in chunks.iter().zip(&detected) {
            if let Some(language) = language.filter(|language| language.reliable || !reliable_only) {
                *chars.entry(language.code).or_default() += chunk.text.chars().count();
            }
        }
        // Most text first; equal coverage goes to the code that sorts first, so it is stable.
        chars.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0))).map(|(code, _)| code)
    };
    let document = covers(true).or_else(|| covers(false));
    for (chunk, language) in chunks.iter_mut().zip(detected) {
        let own = language.filter(|language| language.reliable).map(|language| language.code);
        chunk.language = own.or(document).map(str::to_owned);
    }
    document.map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use sluice_core::TextHash;

    use super::*;

    fn chunk(text: &str) -> Chunk {
        Chunk {
            ordinal: 0,
            text: text.to_owned(),
            text_hash: TextHash::of_text(text),
            char_start: 0,
            char_end: 0,
            page: None,
            token_count: 0,
            heading_path: Vec::new(),
            pii: Vec::new(),
            language: None,
        }
    }

    #[test]
    fn the_document_speaks_the_language_of_most_of_its_text_and_lends_it_to_unsure_chunks() {
        let mut chunks = vec![
            chunk(
                "Le comité a approuvé le budget annuel après un long débat sur les infrastructures de la ville et des villages.",
            ),
            chunk(
                "Les élus ont demandé que les travaux commencent au printemps, avant la saison des pluies qui ralentit tout.",
            ),
            chunk("The committee approved the budget."),
            chunk("42 — 17.5 % / 3"),
        ];
        assert_eq!(detect_languages(&mut chunks).as_deref(), Some("fra"));
        let languages: Vec<_> = chunks.iter().map(|chunk| chunk.language.as_deref()).collect();
        assert_eq!(languages[..2], [Some("fra"), Some("fra")]);
        // Figures say nothing: the document's language.
        assert_eq!(languages[3], Some("fra"));
    }

    #[test]
    fn nothing_to_tell_leaves_no_language() {
        let mut chunks = vec![chunk("42 — 17.5 % / 3")];
        assert_eq!(detect_languages(&mut chunks), None);
        assert_eq!(chunks[0].language, None);
        assert_eq!(detect_languages(&mut []), None);
    }
}
