//! The language of a text (a document, a chunk, a query), for the analyzers that index it and
//! for filters. whatlang's detector (scripts, then trigram profiles of 69 languages; pure Rust,
//! no model files, already in the build through Qdrant's tokenizer) looks at the first
//! [`SAMPLE_CHARS`] characters: a language shows in a few thousand, and the cost stays bounded
//! on a huge document. `benches/language_detection.rs` measures its accuracy and speed on the
//! multilingual and English corpora.

/// Characters of a text the detector looks at.
pub const SAMPLE_CHARS: usize = 4096;
/// Letters a text needs before its language is worth a guess (a page number, a command line or
/// a table of figures has none to speak of).
const MIN_LETTERS: usize = 16;

/// A detected language.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Language {
    /// ISO 639-3 (`eng`, `deu`, `fra`, `cmn` for any written Chinese, `jpn`, …).
    pub code: &'static str,
    /// 0 to 1: how far ahead of the runner-up the language is.
    pub confidence: f32,
    /// Confident enough to choose an analyzer by (whatlang's own threshold).
    pub reliable: bool,
}

/// The language of `text`, or `None` when it has too few letters to tell.
///
/// Two things a plain detector gets wrong in real documents are settled first. Words that
/// belong to no language (commands, paths, options, identifiers: anything with a digit or one
/// of `/\_=$<>{}[]|@#~`, or starting with `-`) are left out, so a French paragraph quoting
/// `apt-get install` stays French. And a text whose Han, kana or Hangul characters carry as
/// much as its other letters (one such character is about a word, [`CJK_WEIGHT`] letters) is
/// judged on those characters alone: a Chinese paragraph full of English terms has more Latin
/// letters than Han characters, and the detector would call it English.
pub fn detect(text: &str) -> Option<Language> {
    let end = text.char_indices().nth(SAMPLE_CHARS).map_or(text.len(), |(at, _)| at);
    let words: Vec<&str> = text[..end].split_whitespace().filter(|word| !is_technical(word)).collect();
    let (cjk, other) = words.iter().flat_map(|word| word.chars()).fold((0, 0), |(cjk, other), c| {
        if is_cjk(c) {
            (cjk + 1, other)
        } else if c.is_alphabetic() {
            (cjk, other + 1)
        } else {
            (cjk, other)
        }
    });
    if cjk + other < MIN_LETTERS && cjk * CJK_WEIGHT < MIN_LETTERS {
        return None;
    }
    let sample: String = if cjk * CJK_WEIGHT >= other {
        words.iter().flat_map(|word| word.chars()).filter(|&c| is_cjk(c) || !c.is_alphabetic()).collect()
    } else {
        words.join(" ")
    };
    let info = whatlang::detect(&sample)?;
    Some(Language { code: info.lang().code(), confidence: info.confidence() as f32, reliable: info.is_reliable() })
}

/// Letters one Han, kana or Hangul character is worth when scripts are weighed.
const CJK_WEIGHT: usize = 3;

/// Han ideographs, kana and Hangul syllables.
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}' | '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}'
        | '\u{AC00}'..='\u{D7AF}' | '\u{20000}'..='\u{2FFFF}')
}

/// A word of no language: a command, path, option, identifier or number. (A run of CJK text
/// is one "word", since those scripts put no spaces between words: never dropped.)
fn is_technical(word: &str) -> bool {
    !word.chars().any(is_cjk)
        && (word.starts_with('-') || word.chars().any(|c| c.is_ascii_digit() || "/\\_=$<>{}[]|@#~".contains(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_languages_of_the_corpora_apart() {
        for (text, code) in [
            ("The committee approved the annual budget after a long debate about infrastructure.", "eng"),
            ("Der Ausschuss hat den Jahreshaushalt nach einer langen Debatte über die Infrastruktur gebilligt.", "deu"),
            ("Le comité a approuvé le budget annuel après un long débat sur les infrastructures de la ville.", "fra"),
            ("委員會在經過長時間的辯論之後，批准了今年的年度預算與基礎建設計畫。", "cmn"),
            ("委員会は長い議論の後、インフラに関する年間予算を承認しました。", "jpn"),
        ] {
            // One sentence each: the right language, if not always with a reliable margin.
            let language = detect(text).unwrap_or_else(|| panic!("no language for {text:?}"));
            assert_eq!(language.code, code, "{text:?}: {language:?}");
        }
    }

    #[test]
    fn too_few_letters_tell_nothing() {
        assert_eq!(detect("42 — 17.5 % / 3"), None);
        assert_eq!(detect("apt-get install --no-install-recommends /usr/lib/x86_64"), None);
        assert_eq!(detect("$ ls -l /etc"), None);
        assert_eq!(detect(""), None);
    }

    /// What real documents mix in: commands in prose, English terms in Chinese.
    #[test]
    fn commands_and_foreign_terms_do_not_decide() {
        let french = "Pour installer le paquet, lancez apt-get install --no-install-recommends nginx \
                      puis vérifiez /etc/nginx/nginx.conf avant de redémarrer le service.";
        assert_eq!(detect(french).map(|language| language.code), Some("fra"));
        let chinese =
            "使用 Debian package management system 時，請先執行 apt update 以更新套件清單，再安裝需要的軟體。";
        assert_eq!(detect(chinese).map(|language| language.code), Some("cmn"));
    }

    #[test]
    fn a_huge_text_is_sampled() {
        let text = "Das ist ein ganz gewöhnlicher deutscher Satz über das Wetter. ".repeat(100_000);
        assert_eq!(detect(&text).map(|language| language.code), Some("deu"));
    }
}
