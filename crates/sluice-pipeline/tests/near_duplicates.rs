//! Near-duplicate documents (issue 18): a file that nearly repeats a live one (MinHash
//! similarity at least `[dedup] near_threshold`, same readers) is indexed with a link to it
//! (`link`, the default) or recorded as its duplicate without its chunks (`skip`); the link and
//! the similarity are in lineage, the run summary and the audit log, and the stage's time is a
//! cost of its own. A skipped near-duplicate is indexed in its own right once its original goes.

mod common;

use sluice_config::NearDuplicates;
use sluice_core::ReadAccess;
use sluice_pipeline::{Engine, Quiet, Scope};
use sluice_store::SearchMode;

use common::engine_with;

const WORDS: &[&str] = &[
    "harbour",
    "channel",
    "survey",
    "budget",
    "contractor",
    "silt",
    "quay",
    "winter",
    "storm",
    "ferry",
    "tide",
    "council",
    "engineer",
    "dredger",
    "permit",
    "schedule",
    "timber",
    "pier",
    "lighthouse",
    "cargo",
    "crane",
    "warehouse",
    "pilot",
    "buoy",
    "anchor",
    "marsh",
    "estuary",
    "river",
    "bridge",
    "lock",
    "gate",
    "wall",
];

/// 200 words of generated prose, the same for the same seed.
fn prose(seed: u64) -> Vec<String> {
    let mut state = seed;
    (0..200)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            WORDS[(state >> 33) as usize % WORDS.len()].to_owned()
        })
        .collect()
}

fn write(inbox: &std::path::Path, name: &str, words: &[String]) {
    std::fs::write(inbox.join(name), words.join(" ") + ".\n").unwrap();
}

/// The chunk of the file named `file` that the search for `codeword` finds.
fn chunk_of(engine: &Engine, codeword: &str, file: &str) -> Option<sluice_core::ChunkId> {
    let hits = engine.search(codeword, None, 10, SearchMode::Lexical, &ReadAccess::Unrestricted, "t").unwrap().hits;
    hits.iter().find(|hit| hit.path.ends_with(file)).map(|hit| hit.chunk_id)
}

#[test]
fn a_near_duplicate_is_linked_to_its_original_or_skipped() {
    for mode in [NearDuplicates::Link, NearDuplicates::Skip] {
        let dir = tempfile::tempdir().unwrap();
        let (inbox, data) = (dir.path().join("inbox"), dir.path().join("data"));
        std::fs::create_dir_all(&inbox).unwrap();
        let mut original = prose(1);
        original[10] = "albatross".into();
        write(&inbox, "a-original.txt", &original);
        // Two words of 200 changed: still a near-duplicate at the default threshold.
        let mut copy = original.clone();
        copy[150] = "cormorant".into();
        copy[151] = "pelican".into();
        write(&inbox, "b-copy.txt", &copy);
        let mut other = prose(2);
        other[5] = "kittiwake".into();
        write(&inbox, "c-other.txt", &other);

        let engine = engine_with(&inbox, &data, |plan| plan.dedup.near_duplicates = mode);
        let summary = engine.run(&Scope::All, &Quiet).unwrap();
        assert_eq!(summary.near_duplicates, 1, "{mode:?}: {summary:?}");
        assert!(summary.stage_seconds.contains_key("dedup"), "{summary:?}");
        let operations = engine.operations();
        let original_chunk = chunk_of(&engine, "albatross", "a-original.txt").expect("the original is indexed");
        let original_lineage = operations.lineage(original_chunk, &ReadAccess::Unrestricted, false).unwrap().unwrap();
        let near = &original_lineage.dedup.near_duplicates;
        assert_eq!(near.len(), 1, "{mode:?}: {:?}", original_lineage.dedup);
        assert!(near[0].path.ends_with("b-copy.txt") && near[0].similarity >= 0.8, "{near:?}");
        assert_eq!(original_lineage.dedup.verdict, "unique");

        match mode {
            NearDuplicates::Link => {
                assert_eq!((summary.indexed, summary.duplicates), (3, 0), "{summary:?}");
                let copy_chunk =
                    chunk_of(&engine, "cormorant", "b-copy.txt").expect("a linked near-duplicate is indexed");
                let lineage = operations.lineage(copy_chunk, &ReadAccess::Unrestricted, false).unwrap().unwrap();
                assert_eq!(lineage.dedup.verdict, "near_duplicate");
                assert_eq!(lineage.dedup.duplicate_of, Some(original_lineage.source.doc_id));
                assert!(lineage.dedup.similarity.is_some_and(|similarity| similarity >= 0.8), "{:?}", lineage.dedup);
            }
            NearDuplicates::Skip => {
                assert_eq!((summary.indexed, summary.duplicates), (2, 1), "{summary:?}");
                assert_eq!(
                    chunk_of(&engine, "cormorant", "b-copy.txt"),
                    None,
                    "a skipped near-duplicate has no chunks"
                );
                // Its original gone, it is indexed in its own right.
                std::fs::remove_file(inbox.join("a-original.txt")).unwrap();
                let summary = engine.run(&Scope::All, &Quiet).unwrap();
                assert_eq!(summary.indexed, 1, "{summary:?}");
                assert!(chunk_of(&engine, "cormorant", "b-copy.txt").is_some());
            }
            NearDuplicates::Off => unreachable!(),
        }
        let audit = engine.store().catalog().audit_entries(None, 0, 10_000).unwrap();
        assert!(audit.iter().any(|entry| entry.action == "near_duplicate"), "no audit entry");
    }
}
