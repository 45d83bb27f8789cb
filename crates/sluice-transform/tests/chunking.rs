//! Properties of chunking with the real all-MiniLM-L6-v2 tokenizer: chunks are exact slices of
//! the text, cover all of it in order, respect the token budget, prefer block boundaries, keep
//! pages, and are deterministic.

use std::path::{Path, PathBuf};

use sluice_core::{Block, BlockKind, ExtractedDocument, NormalizedDocument};
use sluice_transform::{Chunker, normalize};

fn tokenizer_json() -> Vec<u8> {
    let models = std::env::var_os("SLUICE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    let files = sluice_embed::ensure_model(&models, sluice_embed::DEFAULT_MODEL).expect("model files");
    std::fs::read(files.path("tokenizer.json")).unwrap()
}

/// A document of many paragraphs of 3 to `max_words + 2` words over three pages, with headings
/// and non-ASCII text, generated deterministically.
fn document_with(max_words: usize) -> NormalizedDocument {
    let words = [
        "naïve",
        "café",
        "tokenizer",
        "Überprüfung",
        "retrieval",
        "of",
        "the",
        "and",
        "日本語",
        "x",
        "embedding",
        "lineage",
    ];
    let mut blocks = Vec::new();
    let mut state = 7u64;
    for index in 0..60 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let length = 3 + (state >> 33) as usize % max_words;
        let text: Vec<&str> =
            (0..length).map(|i| words[(i * 7 + index + (state as usize >> 40)) % words.len()]).collect();
        let kind = if index % 10 == 0 { BlockKind::Heading { level: 2 } } else { BlockKind::Paragraph };
        let mut text = text.join(" ");
        if index % 3 == 0 {
            text.push('.');
        }
        blocks.push(Block { kind, text, page: Some(1 + index as u32 / 20) });
    }
    normalize(ExtractedDocument { format: "text".into(), blocks, page_count: Some(3), ..Default::default() })
}

fn document() -> NormalizedDocument {
    document_with(90)
}

fn char_slice(text: &str, start: u32, end: u32) -> String {
    text.chars().skip(start as usize).take((end - start) as usize).collect()
}

#[test]
fn chunks_are_exact_ordered_overlapping_slices_within_budget() {
    let json = tokenizer_json();
    let doc = document();
    for (max_tokens, overlap) in [(64, 0), (64, 16), (200, 32), (16, 8)] {
        let chunker = Chunker::new(&json, max_tokens, overlap).unwrap();
        let chunks = chunker.chunk(&doc).unwrap();
        assert!(chunks.len() > 1);
        assert_eq!(chunks, chunker.chunk(&doc).unwrap(), "deterministic");
        let total_chars = doc.text.chars().count() as u32;
        assert_eq!(chunks[0].char_start, 0);
        assert_eq!(chunks.last().unwrap().char_end, total_chars);
        for (index, chunk) in chunks.iter().enumerate() {
            assert_eq!(chunk.ordinal as usize, index);
            assert_eq!(
                chunk.text,
                char_slice(&doc.text, chunk.char_start, chunk.char_end),
                "chunk {index} is its span"
            );
            assert_eq!(chunk.text_hash, sluice_core::TextHash::of_text(&chunk.text));
            assert!(chunk.token_count as usize <= max_tokens);
            assert!(chunk.token_count > 0);
        }
        for pair in chunks.windows(2) {
            let (previous, next) = (&pair[0], &pair[1]);
            assert!(next.char_start > previous.char_start, "chunks advance");
            // No gap: the next chunk starts before the previous ends (overlap) or right at the
            // next token (only whitespace between them).
            let gap = if next.char_start > previous.char_end {
                char_slice(&doc.text, previous.char_end, next.char_start)
            } else {
                String::new()
            };
            assert!(gap.trim().is_empty(), "text {gap:?} fell between chunks");
            if overlap == 0 {
                assert!(next.char_start >= previous.char_end, "no overlap asked");
            }
        }
    }
}

#[test]
fn chunks_prefer_block_boundaries_and_keep_pages() {
    // Paragraphs much shorter than half a window: every window has a block end in its second
    // half, so every chunk but the last ends at one.
    let doc = document_with(12);
    let chunker = Chunker::new(&tokenizer_json(), 128, 0).unwrap();
    let chunks = chunker.chunk(&doc).unwrap();
    assert!(chunks.len() > 3);
    let block_ends: Vec<u32> =
        doc.blocks.iter().map(|block| doc.text[..block.byte_end].chars().count() as u32).collect();
    for chunk in &chunks[..chunks.len() - 1] {
        assert!(block_ends.contains(&chunk.char_end), "chunk {} ends inside a block", chunk.ordinal);
        assert!(chunk.token_count >= 64, "chunk {} is less than half full", chunk.ordinal);
    }
    for chunk in &chunks {
        let byte_start = doc.text.char_indices().nth(chunk.char_start as usize).unwrap().0;
        let block = doc.blocks.iter().find(|b| b.byte_start <= byte_start && byte_start < b.byte_end).unwrap();
        assert_eq!(chunk.page, block.page);
    }
}

#[test]
fn the_fingerprint_changes_with_every_setting() {
    let json = tokenizer_json();
    let base = Chunker::new(&json, 200, 32).unwrap().fingerprint();
    assert_eq!(base, Chunker::new(&json, 200, 32).unwrap().fingerprint());
    assert_ne!(base, Chunker::new(&json, 201, 32).unwrap().fingerprint());
    assert_ne!(base, Chunker::new(&json, 200, 31).unwrap().fingerprint());
}

#[test]
fn an_empty_document_has_no_chunks() {
    let chunker = Chunker::new(&tokenizer_json(), 64, 8).unwrap();
    let empty = normalize(ExtractedDocument { format: "text".into(), ..Default::default() });
    assert!(chunker.chunk(&empty).unwrap().is_empty());
}

#[test]
fn chunks_start_sections_and_carry_their_heading_path() {
    let block = |kind, text: &str| Block { kind, text: text.to_owned(), page: None };
    let filler = "Retrieval needs chunks that follow the structure of the document they come from.";
    let mut blocks = vec![block(BlockKind::Heading { level: 1 }, "Handbook")];
    for (section, subsections) in [("Installation", ["Linux", "Windows"]), ("Operation", ["Backups", "Upgrades"])] {
        blocks.push(block(BlockKind::Heading { level: 2 }, section));
        for subsection in subsections {
            blocks.push(block(BlockKind::Heading { level: 3 }, subsection));
            for _ in 0..4 {
                blocks.push(block(BlockKind::Paragraph, filler));
            }
        }
    }
    let doc = normalize(ExtractedDocument { format: "markdown".into(), blocks, ..Default::default() });
    // A subsection is about 70 tokens: more than half of a 100-token window, less than all.
    let chunks = Chunker::new(&tokenizer_json(), 100, 20).unwrap().chunk(&doc).unwrap();
    let paths: Vec<Vec<&str>> =
        chunks.iter().map(|chunk| chunk.heading_path.iter().map(String::as_str).collect()).collect();
    assert_eq!(
        paths,
        [
            vec!["Handbook", "Installation", "Linux"],
            vec!["Handbook", "Installation", "Windows"],
            vec!["Handbook", "Operation", "Backups"],
            vec!["Handbook", "Operation", "Upgrades"],
        ],
        "one chunk per subsection, each under its headings: {chunks:#?}"
    );
    for chunk in &chunks[1..] {
        let first_line = chunk.text.lines().next().unwrap();
        assert!(chunk.heading_path.iter().any(|heading| heading == first_line), "a chunk starts with a heading");
        assert!(!chunk.text.trim_end().ends_with(chunk.heading_path.last().unwrap().as_str()));
    }
}

/// Hostile text: one block of unknown hundred-character "words" (one token each) and one line
/// of 300 KB with no space at all. Chunks stay a few kilobytes, cover the text in order, and
/// heading paths stay short however long the headings are.
#[test]
fn pathological_text_makes_small_chunks_and_short_heading_paths() {
    let chunker = Chunker::new(&tokenizer_json(), 200, 32).unwrap();
    let long_words = (0..2_000).map(|i| format!("{}{i}", "q".repeat(100))).collect::<Vec<_>>().join(" ");
    let blocks = vec![
        Block { kind: BlockKind::Heading { level: 1 }, text: "H".repeat(50_000), page: None },
        Block { kind: BlockKind::Paragraph, text: long_words, page: None },
        Block { kind: BlockKind::Paragraph, text: "z".repeat(300_000), page: None },
    ];
    let document = normalize(ExtractedDocument { format: "text".into(), blocks, ..Default::default() });
    let chunks = chunker.chunk(&document).unwrap();
    assert!(chunks.len() > 20, "{} chunks", chunks.len());
    for chunk in &chunks {
        assert!(chunk.text.len() <= 200 * 40, "a chunk of {} bytes", chunk.text.len());
        assert!(chunk.heading_path.iter().all(|heading| heading.chars().count() <= 200));
    }
    // In order, and nothing but the blank lines between blocks is left out.
    let chars: Vec<char> = document.text.chars().collect();
    let mut covered = 0;
    for chunk in &chunks {
        let (start, end) = (chunk.char_start as usize, chunk.char_end as usize);
        assert!(
            chars[covered.min(start)..start].iter().all(|c| c.is_whitespace()),
            "a gap before chunk {}",
            chunk.ordinal
        );
        covered = covered.max(end);
    }
    assert_eq!(covered, chars.len());
}

/// A long paragraph of Chinese sentences, which have no spaces and end with 。: chunks end at
/// a sentence end, not in the middle of one.
#[test]
fn chinese_text_is_cut_at_its_own_sentence_ends() {
    let sentence = "資料庫管理系統會定期備份所有的設定檔案與使用者資料。";
    let text: String = (0..40).map(|i| sentence.replace("所有", if i % 2 == 0 { "所有" } else { "全部" })).collect();
    let document = normalize(ExtractedDocument {
        format: "text".into(),
        blocks: vec![Block { kind: BlockKind::Paragraph, text, page: None }],
        ..Default::default()
    });
    let chunker = Chunker::new(&tokenizer_json(), 64, 0).unwrap();
    let chunks = chunker.chunk(&document).unwrap();
    assert!(chunks.len() > 3, "{} chunks", chunks.len());
    for chunk in &chunks[..chunks.len() - 1] {
        assert!(chunk.text.ends_with('。'), "a chunk ends mid-sentence: {:?}", chunk.text);
    }
}
