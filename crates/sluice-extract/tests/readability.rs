//! Main-content extraction from HTML, scored against the pages of readability's own test suite
//! (`../shared/corpora/extraction/readability-html/*/{source,expected}.html`; skipped with a
//! message where the folder is absent).
//!
//! The score of a page is the token F1 between our text (blocks, without the title) and the
//! visible text of `expected.html`: tokens are lower-cased runs of letters and digits, counted
//! as a multiset, so precision punishes boilerplate kept and recall content lost. The test
//! prints every page's score and holds the median at the level reached.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use scraper::Html;
use sluice_extract::{Limits, extract};

/// The median token F1 reached; a change that lowers it fails here.
const MEDIAN_F1_FLOOR: f64 = 0.98;
/// The mean, which the worst pages drag down; held too.
const MEAN_F1_FLOOR: f64 = 0.94;

fn pages() -> Option<Vec<PathBuf>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/extraction/readability-html");
    if !root.is_dir() {
        eprintln!("skipped: {} is absent (the shared corpora are not in this checkout)", root.display());
        return None;
    }
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|dir| dir.join("source.html").is_file() && dir.join("expected.html").is_file())
        .collect();
    pages.sort();
    Some(pages)
}

fn tokens(text: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for token in text.split(|c: char| !c.is_alphanumeric()).filter(|token| !token.is_empty()) {
        *counts.entry(token.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

fn f1(ours: &str, expected: &str) -> f64 {
    let (ours, expected) = (tokens(ours), tokens(expected));
    let overlap: usize = ours.iter().map(|(token, n)| (*n).min(expected.get(token).copied().unwrap_or(0))).sum();
    let (ours_total, expected_total) = (ours.values().sum::<usize>(), expected.values().sum::<usize>());
    if overlap == 0 || ours_total == 0 || expected_total == 0 {
        return 0.0;
    }
    let precision = overlap as f64 / ours_total as f64;
    let recall = overlap as f64 / expected_total as f64;
    2.0 * precision * recall / (precision + recall)
}

fn score(page: &Path) -> f64 {
    let source = std::fs::read(page.join("source.html")).unwrap();
    let ours = match extract(&source, "source.html", &Limits::default()) {
        Ok(document) => document.blocks.iter().map(|block| block.text.as_str()).collect::<Vec<_>>().join("\n"),
        Err(_) => String::new(),
    };
    let expected = Html::parse_document(&std::fs::read_to_string(page.join("expected.html")).unwrap());
    let expected: String = expected.root_element().text().collect::<Vec<_>>().join(" ");
    f1(&ours, &expected)
}

#[test]
fn main_content_matches_readability_expectations() {
    let Some(pages) = pages() else { return };
    assert!(pages.len() >= 40, "only {} pages found", pages.len());
    let mut scores: Vec<(f64, String)> =
        pages.iter().map(|page| (score(page), page.file_name().unwrap().to_string_lossy().into_owned())).collect();
    scores.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (score, page) in &scores {
        println!("{score:.3}  {page}");
    }
    let median = (scores[(scores.len() - 1) / 2].0 + scores[scores.len() / 2].0) / 2.0;
    let mean = scores.iter().map(|(score, _)| score).sum::<f64>() / scores.len() as f64;
    println!("{} pages: median token F1 {median:.3}, mean {mean:.3}", scores.len());
    assert!(median >= MEDIAN_F1_FLOOR, "median token F1 {median:.3} fell under {MEDIAN_F1_FLOOR}");
    assert!(mean >= MEAN_F1_FLOOR, "mean token F1 {mean:.3} fell under {MEAN_F1_FLOOR}");
}

#[test]
fn token_f1_is_computed_on_multisets() {
    assert_eq!(f1("a b c", "a b c"), 1.0);
    assert_eq!(f1("", "a"), 0.0);
    // Two of four of ours are right (precision 0.5), two of two expected found (recall 1).
    assert!((f1("a b a a", "a b") - 2.0 * 0.5 / 1.5).abs() < 1e-12);
}
