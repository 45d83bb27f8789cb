//! The analyzers of the lexical index, one per group of languages, chosen by a chunk's language
//! (the enrich stage's ISO 639-3 code), and the tokenizer for Chinese, Japanese and Korean.
//!
//! Each analyzer has fields of its own (`text_de`, `title_de`, `headings_de`): a chunk is
//! indexed in its language's fields, and a query is analysed by the analyzer of every language
//! the index holds and run over all of their fields, so a German word finds its German chunks
//! by its stem and a Chinese phrase finds the Chinese ones by its characters, whatever language
//! the query looks like.
//!
//! - the Snowball languages Tantivy ships (English, German, French, ... 18 of them): Unicode
//!   words, lower case, the language's stemmer. French and Italian elisions (`l'homme`,
//!   `dell'arte`) come apart at the apostrophe. Stop words are kept: BM25's idf already gives them
//!   next to no weight, and with them a phrase matches as written (`werden kann`, `consultez la
//!   section`); measured on the Debian Reference (`tests/multilingual.rs`), phrases found their
//!   chapter among three hits 97% (German) and 96% (French) of the time with stop words kept,
//!   86% and 91% without, and SciFact's lexical nDCG@10 is the same either way (0.664);
//! - `cjk` for Chinese, Japanese and Korean: overlapping pairs of characters, see
//!   [`CjkTokenizer`];
//! - `plain` for every other language and for chunks without one: Unicode words in lower case.

use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// Tokens longer than this many bytes are dropped (a hash, a base64 run).
const MAX_TOKEN_BYTES: usize = 40;

/// An analyzer: the suffix of its field names, and the languages (ISO 639-3) it serves.
pub(super) struct Analyzer {
    pub name: &'static str,
    snowball: Option<Language>,
    languages: &'static [&'static str],
}

/// Every analyzer, in the order of their fields in the schema. Adding or renaming one changes
/// the schema, and an index written before is rebuilt from the catalog at open.
pub(super) const ANALYZERS: &[Analyzer] = &[
    snowball("en", Language::English, &["eng"]),
    snowball("de", Language::German, &["deu"]),
    snowball("fr", Language::French, &["fra"]),
    snowball("es", Language::Spanish, &["spa"]),
    snowball("it", Language::Italian, &["ita"]),
    snowball("pt", Language::Portuguese, &["por"]),
    snowball("nl", Language::Dutch, &["nld"]),
    snowball("da", Language::Danish, &["dan"]),
    snowball("sv", Language::Swedish, &["swe"]),
    snowball("no", Language::Norwegian, &["nob", "nno", "nor"]),
    snowball("fi", Language::Finnish, &["fin"]),
    snowball("hu", Language::Hungarian, &["hun"]),
    snowball("ro", Language::Romanian, &["ron"]),
    snowball("ru", Language::Russian, &["rus"]),
    snowball("el", Language::Greek, &["ell"]),
    snowball("tr", Language::Turkish, &["tur"]),
    snowball("ta", Language::Tamil, &["tam"]),
    snowball("ar", Language::Arabic, &["ara", "arb"]),
    Analyzer { name: CJK, snowball: None, languages: &["cmn", "zho", "jpn", "kor"] },
    Analyzer { name: PLAIN, snowball: None, languages: &[] },
];

const CJK: &str = "cjk";
const PLAIN: &str = "plain";

const fn snowball(name: &'static str, language: Language, languages: &'static [&'static str]) -> Analyzer {
    Analyzer { name, snowball: Some(language), languages }
}

/// Position in [`ANALYZERS`] of the analyzer of a chunk in `language` (`None`: not known).
pub(super) fn position_of(language: Option<&str>) -> usize {
    let code = language.unwrap_or_default();
    ANALYZERS.iter().position(|analyzer| analyzer.languages.contains(&code)).unwrap_or(ANALYZERS.len() - 1)
}

#[cfg(test)]
fn for_language(language: Option<&str>) -> &'static Analyzer {
    &ANALYZERS[position_of(language)]
}

impl Analyzer {
    /// Whether it cuts text into words itself, by dictionary or by pairs of characters, rather
    /// than at spaces and punctuation.
    pub fn segments_words(&self) -> bool {
        self.name == CJK
    }

    /// The name it is registered under in the index's tokenizer manager.
    pub fn tokenizer_name(&self) -> String {
        format!("sluice_{}", self.name)
    }

    pub fn build(&self) -> TextAnalyzer {
        if self.name == CJK {
            return TextAnalyzer::builder(CjkTokenizer)
                .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
                .filter(LowerCaser)
                .build();
        }
        let words = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
            .filter(LowerCaser);
        match self.snowball {
            None => words.build(),
            Some(language) => words.filter(Stemmer::new(language)).build(),
        }
    }
}

/// Words in lower case, unstemmed: what heading filters match (as `sluice_core::filter::words`
/// cuts a filter's text, and as Qdrant's word tokenizer cuts the payload's headings).
pub(super) fn words() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .build()
}

/// Chinese, Japanese and Korean text, which puts no spaces between words: each run of Han, kana
/// or Hangul characters as overlapping pairs (`東京都庁` → `東京`, `京都`, `都庁`; a lone character
/// as itself), the approach of Lucene's CJK analyzer; everything else cut into Unicode words.
/// Positions follow the text, so a phrase's pairs match in order.
///
/// Pairs rather than a dictionary segmenter: jieba (the one in the build, through Qdrant's
/// charabia) knows Simplified Chinese, and cuts Traditional text into single characters where
/// its words differ (`系統` → `管理系`, `統`). On the Debian Reference in Traditional Chinese,
/// phrases of 4 to 8 characters found their chapter among three hits 100% of the time with
/// pairs, 86% with jieba's search mode. Pairs need no dictionary for Japanese or Korean either
/// (lindera's dictionaries are downloaded when it compiles, which a build here cannot do).
#[derive(Clone, Copy, Default)]
pub(super) struct CjkTokenizer;

impl Tokenizer for CjkTokenizer {
    type TokenStream<'a> = VecTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream {
        let mut tokens = Vec::new();
        for run in script_runs(text) {
            match run.kind {
                RunKind::Other => continue,
                RunKind::Word => push(&mut tokens, run.start, &text[run.start..run.end]),
                RunKind::Han | RunKind::KanaOrHangul => {
                    let chars: Vec<(usize, char)> = text[run.start..run.end].char_indices().collect();
                    if chars.len() == 1 {
                        push(&mut tokens, run.start, &text[run.start..run.end]);
                    }
                    for pair in chars.windows(2) {
                        let (from, second) = (pair[0].0, pair[1]);
                        push(
                            &mut tokens,
                            run.start + from,
                            &text[run.start + from..run.start + second.0 + second.1.len_utf8()],
                        );
                    }
                }
            }
        }
        VecTokenStream { tokens, next: 0 }
    }
}

fn push(tokens: &mut Vec<Token>, offset: usize, word: &str) {
    let position = tokens.len();
    tokens.push(Token {
        offset_from: offset,
        offset_to: offset + word.len(),
        position,
        text: word.to_owned(),
        position_length: 1,
    });
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RunKind {
    Han,
    /// Kana or Hangul (a run of Han characters with kana in it is Japanese: this too).
    KanaOrHangul,
    /// Letters or digits of any other script.
    Word,
    Other,
}

struct Run {
    kind: RunKind,
    start: usize,
    end: usize,
}

fn kind_of(c: char) -> RunKind {
    match c {
        '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{2FFFF}' => {
            RunKind::Han
        }
        '\u{3040}'..='\u{30FF}' | '\u{31F0}'..='\u{31FF}' | '\u{AC00}'..='\u{D7AF}' | '\u{1100}'..='\u{11FF}' => {
            RunKind::KanaOrHangul
        }
        c if c.is_alphanumeric() => RunKind::Word,
        _ => RunKind::Other,
    }
}

/// Maximal runs of one kind; Han and kana next to each other make one Japanese run.
fn script_runs(text: &str) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (at, c) in text.char_indices() {
        let kind = kind_of(c);
        let end = at + c.len_utf8();
        if let Some(last) = runs.last_mut() {
            let japanese = matches!(
                (last.kind, kind),
                (RunKind::Han, RunKind::KanaOrHangul) | (RunKind::KanaOrHangul, RunKind::Han)
            ) && !is_hangul(c);
            if last.kind == kind || japanese {
                if japanese {
                    last.kind = RunKind::KanaOrHangul;
                }
                last.end = end;
                continue;
            }
        }
        runs.push(Run { kind, start: at, end });
    }
    runs
}

fn is_hangul(c: char) -> bool {
    matches!(c, '\u{AC00}'..='\u{D7AF}' | '\u{1100}'..='\u{11FF}')
}

/// Tokens made up front.
pub(super) struct VecTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl TokenStream for VecTokenStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(analyzer: &Analyzer, text: &str) -> Vec<String> {
        let mut analyzer = analyzer.build();
        let mut stream = analyzer.token_stream(text);
        let mut terms = Vec::new();
        while stream.advance() {
            terms.push(stream.token().text.clone());
        }
        terms
    }

    #[test]
    fn chinese_becomes_character_pairs_and_latin_words_stay_whole() {
        let chinese = terms(for_language(Some("cmn")), "使用 Debian 套件管理系統。");
        assert_eq!(chinese, ["使用", "debian", "套件", "件管", "管理", "理系", "系統"]);
        assert_eq!(terms(for_language(Some("cmn")), "字"), ["字"]);
    }

    #[test]
    fn japanese_and_korean_become_character_pairs() {
        assert_eq!(terms(for_language(Some("jpn")), "東京です"), ["東京", "京で", "です"]);
        assert_eq!(terms(for_language(Some("kor")), "한국어 사전"), ["한국", "국어", "사전"]);
    }

    #[test]
    fn european_words_are_stemmed_in_their_language() {
        assert_eq!(terms(for_language(Some("deu")), "Die Häuser der Verwaltung"), ["die", "haus", "der", "verwalt"]);
        assert_eq!(terms(for_language(Some("fra")), "l'installation des paquets"), ["l", "install", "de", "paquet"]);
        assert_eq!(terms(for_language(Some("eng")), "installing the packages"), ["instal", "the", "packag"]);
        // A language without an analyzer of its own: words in lower case, as written.
        assert_eq!(terms(for_language(Some("pol")), "Zażółć Gęślą"), ["zażółć", "gęślą"]);
        assert_eq!(terms(for_language(None), "Zażółć"), ["zażółć"]);
    }
}
