//! Language detection (`sluice_transform::language`): accuracy and speed on real text.
//!
//! - The multilingual corpus (`../shared/corpora/multilingual`: the Debian Reference in German,
//!   French and Traditional Chinese, HTML chapters extracted as the daemon extracts them): each
//!   paragraph of 80 characters or more, and chunk-sized runs of paragraphs (about 1,000
//!   characters), against the chapter's language. The chapters quote commands and file names
//!   in English, so a paragraph that is mostly a command line counts as wrong: a lower bound.
//! - English: SciFact abstracts (`../shared/corpora/scifact`), whole and first sentence only.
//!
//! Prints accuracy per set, how often the answer was also marked reliable, and texts/s and
//! MB/s. `cargo bench -p sluice-transform --bench language_detection`

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use sluice_extract::{Limits, extract};
use sluice_transform::language::detect;

/// Roughly a chunk of the default chunker (200 tokens).
const CHUNK_CHARS: usize = 1000;
const MIN_PARAGRAPH_CHARS: usize = 80;
const SCIFACT_DOCUMENTS: usize = 2000;

struct Tally {
    texts: usize,
    right: usize,
    right_and_reliable: usize,
    undetected: usize,
    bytes: usize,
    seconds: f64,
    /// What the wrong answers were.
    wrong: BTreeMap<&'static str, usize>,
}

impl Tally {
    fn new() -> Self {
        Self {
            texts: 0,
            right: 0,
            right_and_reliable: 0,
            undetected: 0,
            bytes: 0,
            seconds: 0.0,
            wrong: BTreeMap::new(),
        }
    }

    fn judge(&mut self, text: &str, expected: &str) {
        let started = Instant::now();
        let found = detect(text);
        self.seconds += started.elapsed().as_secs_f64();
        self.texts += 1;
        self.bytes += text.len();
        match found {
            None => self.undetected += 1,
            Some(language) if language.code == expected => {
                self.right += 1;
                self.right_and_reliable += usize::from(language.reliable);
            }
            Some(language) => *self.wrong.entry(language.code).or_default() += 1,
        }
    }

    fn print(&self, name: &str) {
        let share = |count: usize| 100.0 * count as f64 / self.texts.max(1) as f64;
        println!(
            "{name:<34} {:>6} texts  right {:>5.1}%  right+reliable {:>5.1}%  none {:>4.1}%  {:>8.0} texts/s {:>6.1} MB/s",
            self.texts,
            share(self.right),
            share(self.right_and_reliable),
            share(self.undetected),
            self.texts as f64 / self.seconds.max(1e-9),
            self.bytes as f64 / self.seconds.max(1e-9) / 1e6,
        );
        let mut wrong: Vec<_> = self.wrong.iter().collect();
        wrong.sort_by_key(|(_, count)| std::cmp::Reverse(**count));
        if !wrong.is_empty() {
            let top: Vec<String> = wrong.iter().take(4).map(|(code, count)| format!("{code} {count}")).collect();
            println!("{:<34} wrong answers: {}", "", top.join(", "));
        }
    }
}

fn multilingual(root: &Path) {
    let mut names: Vec<_> = std::fs::read_dir(root).unwrap().flatten().map(|entry| entry.path()).collect();
    names.sort();
    for (suffix, code) in [(".de.html", "deu"), (".fr.html", "fra"), (".zh-tw.html", "cmn")] {
        let (mut paragraphs, mut chunks) = (Tally::new(), Tally::new());
        for path in names.iter().filter(|path| path.to_string_lossy().ends_with(suffix)) {
            let bytes = std::fs::read(path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy();
            let Ok(document) = extract(&bytes, &name, &Limits::default()) else { continue };
            let mut chunk = String::new();
            for block in &document.blocks {
                if block.text.chars().count() >= MIN_PARAGRAPH_CHARS {
                    paragraphs.judge(&block.text, code);
                }
                chunk.push_str(&block.text);
                chunk.push('\n');
                if chunk.chars().count() >= CHUNK_CHARS {
                    chunks.judge(&chunk, code);
                    chunk.clear();
                }
            }
        }
        paragraphs.print(&format!("{code} paragraphs (>= {MIN_PARAGRAPH_CHARS} chars)"));
        chunks.print(&format!("{code} chunks (~{CHUNK_CHARS} chars)"));
    }
}

fn english(corpus: &Path) {
    let (mut whole, mut first_sentence) = (Tally::new(), Tally::new());
    for line in std::fs::read_to_string(corpus).unwrap().lines().take(SCIFACT_DOCUMENTS) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = record["text"].as_str().unwrap_or_default();
        whole.judge(text, "eng");
        let sentence = text.split_inclusive(". ").next().unwrap_or(text);
        first_sentence.judge(sentence, "eng");
    }
    whole.print("eng SciFact abstracts");
    first_sentence.print("eng SciFact first sentences");
}

fn main() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora");
    let (multilingual_root, scifact) =
        (shared.join("multilingual/debian-reference"), shared.join("scifact/corpus.jsonl"));
    if !multilingual_root.is_dir() || !scifact.is_file() {
        eprintln!("SKIPPED: {} is absent (the shared corpora are not on this machine)", shared.display());
        return;
    }
    multilingual(&multilingual_root);
    english(&scifact);
}
