//! The catalog on SQLite against the catalog on PostgreSQL, in one run:
//! `bash benches/catalog-engines.sh` (it starts a throw-away PostgreSQL cluster on loopback and
//! runs this with `SLUICE_BENCH_POSTGRES_URL` set).
//!
//! What a run asks of the catalog for each file, without the model (its vectors are made up, so
//! the catalog is all that is timed): the first `FILES` SciFact abstracts as files of one
//! version, in batches of 32 as the pipeline writes them — per file the live documents of its
//! path, a reusable document by content hash and a live duplicate by text; per batch the cached
//! vectors, the new vectors and the documents with their chunks; then the commit with the
//! ledger, an audit entry and the costs of every file. Then the same again as a second version
//! in which every file changed (each old document retired first). Printed: statements (each
//! one round trip to PostgreSQL) and wall time per file, and PostgreSQL / SQLite ratios.
//!
//! Needs `../shared/corpora/scifact`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sluice_config::PostgresPlan;
use sluice_core::{Acl, Chunk, ChunkId, ContentHash, DocumentId, Fingerprint, TextHash};
use sluice_store::prelude::*;
use sluice_store::{
    AuditEvent, ChangeReason, CommitRecord, DocumentCost, DocumentWrite, FileStatus, LedgerChange, LedgerEntry,
    NewChunk, NewDocument, SqlCatalog, StageCost, StageFingerprints,
};

const FILES: usize = 2_000;
const BATCH: usize = 32;
const DIMENSION: usize = 384;
const PIPELINE: &str = "bench";

fn scifact() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/scifact");
    path.is_dir().then_some(path)
}

fn stages() -> StageFingerprints {
    StageFingerprints {
        extract: Fingerprint::of("extract", "bench"),
        chunk: Fingerprint::of("chunk", "bench"),
        model: Fingerprint::of("embed", "bench"),
    }
}

/// One abstract as a file: its sentences in chunks of about 400 characters.
fn document(index: usize, text: &str, edition: u32) -> DocumentWrite {
    let text = format!("{text} (edition {edition})");
    let rel_path = format!("scifact/{index:05}.txt");
    let doc_id = DocumentId::new(PIPELINE, "/share", &rel_path);
    let content_hash = ContentHash::of_bytes(text.as_bytes());
    let mut pieces = vec![String::new()];
    for sentence in text.split_inclusive(". ") {
        if pieces.last().is_some_and(|piece| piece.len() > 400) {
            pieces.push(String::new());
        }
        pieces.last_mut().expect("one piece").push_str(sentence);
    }
    let mut start = 0u32;
    let chunks = pieces
        .iter()
        .enumerate()
        .map(|(ordinal, piece)| {
            let length = piece.chars().count() as u32;
            let chunk = Chunk {
                ordinal: ordinal as u32,
                text: piece.clone(),
                text_hash: TextHash::of_text(piece),
                char_start: start,
                char_end: start + length,
                page: None,
                token_count: length / 4,
                heading_path: Vec::new(),
                pii: Vec::new(),
                language: None,
            };
            start += length;
            let vector = (0..DIMENSION).map(|i| ((i + ordinal + index) % 17) as f32 / 17.0).collect();
            NewChunk { id: ChunkId::new(doc_id, content_hash, stages().chunk, ordinal as u32), chunk, vector }
        })
        .collect();
    DocumentWrite {
        document: NewDocument {
            doc_id,
            root: "/share".into(),
            rel_path,
            member: String::new(),
            parent: None,
            embedded_files: 0,
            content_hash,
            text_hash: TextHash::of_text(&text),
            format: "text".into(),
            title: None,
            page_count: None,
            byte_size: text.len() as u64,
            fingerprints: stages(),
            duplicate_of: None,
            added_reason: ChangeReason::New,
            readers: Acl::default(),
            pii: Default::default(),
            language: None,
            metadata: Default::default(),
            similarity: None,
            minhash: None,
        },
        chunks,
    }
}

/// One version of `documents`, as a run writes it; returns (statements, seconds).
fn version(catalog: &SqlCatalog, number: i64, documents: &[DocumentWrite]) -> (u64, f64) {
    let (before, started) = (catalog.statements(), Instant::now());
    assert_eq!(catalog.next_version(PIPELINE).unwrap(), number);
    catalog.begin_version(PIPELINE, number, Fingerprint::of("pipeline", "bench"), "run").unwrap();
    let (mut ledger, mut audit, mut costs) = (Vec::new(), Vec::new(), Vec::new());
    for batch in documents.chunks(BATCH) {
        for write in batch {
            let d = &write.document;
            for live in catalog.live_documents_of_file(PIPELINE, &d.root, &d.rel_path).unwrap() {
                catalog.retire_document(PIPELINE, live.doc_id, number, ChangeReason::DocumentChanged).unwrap();
            }
            assert!(catalog.reusable_document(PIPELINE, d.content_hash, &stages()).unwrap().is_none());
            catalog.live_document_with_text(PIPELINE, d.text_hash, &d.readers).unwrap();
        }
        let hashes: Vec<TextHash> = batch.iter().flat_map(|w| w.chunks.iter().map(|c| c.chunk.text_hash)).collect();
        catalog.cached_embeddings(stages().model, &hashes).unwrap();
        let vectors: Vec<(TextHash, &[f32])> =
            batch.iter().flat_map(|w| w.chunks.iter().map(|c| (c.chunk.text_hash, c.vector.as_slice()))).collect();
        catalog.put_embeddings(stages().model, &vectors).unwrap();
        catalog.insert_documents(PIPELINE, number, batch).unwrap();
        for write in batch {
            let d = &write.document;
            ledger.push(LedgerChange::Upsert(LedgerEntry {
                root: d.root.clone(),
                rel_path: d.rel_path.clone(),
                size: d.byte_size,
                mtime_ns: number,
                content_hash: d.content_hash,
                status: FileStatus::Indexed,
                readers: Some(Acl::default()),
            }));
            audit.push(AuditEvent::new(PIPELINE, "pipeline", "ingested", d.rel_path.clone(), serde_json::json!({})));
            costs.push(DocumentCost {
                doc_id: d.doc_id,
                root: d.root.clone(),
                rel_path: d.rel_path.clone(),
                outcome: "indexed",
                bytes: d.byte_size,
                pages: 0,
                tokens: 100,
                stages: [("extract", StageCost { wall: 0.01, cpu: 0.01, gpu: 0.0 })].into(),
            });
        }
    }
    audit.push(AuditEvent::new(PIPELINE, "pipeline", "version_committed", "version", serde_json::json!({})));
    let record = CommitRecord {
        ledger: &ledger,
        quarantined: &[],
        cleared_quarantine: &[],
        summary: &serde_json::json!({}),
        audit: &audit,
        costs: &costs,
        promote: true,
        run_id: "run",
        cleared_in_flight: &[],
    };
    catalog.commit_version(PIPELINE, number, &record).unwrap();
    (catalog.statements() - before, started.elapsed().as_secs_f64())
}

fn main() {
    let Some(scifact) = scifact() else {
        eprintln!("SKIPPED: ../shared/corpora/scifact is absent");
        return;
    };
    let Ok(_) = std::env::var("SLUICE_BENCH_POSTGRES_URL") else {
        eprintln!("SLUICE_BENCH_POSTGRES_URL is not set: run benches/catalog-engines.sh");
        std::process::exit(1);
    };
    let file = std::fs::File::open(scifact.join("corpus.jsonl")).expect("corpus.jsonl");
    let abstracts: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(&line).ok())
        .filter_map(|record| record["text"].as_str().map(str::to_owned))
        .take(FILES)
        .collect();
    let first: Vec<_> = abstracts.iter().enumerate().map(|(i, text)| document(i, text, 1)).collect();
    let second: Vec<_> = abstracts.iter().enumerate().map(|(i, text)| document(i, text, 2)).collect();
    let chunks: usize = first.iter().map(|w| w.chunks.len()).sum();
    println!("{} files, {chunks} chunks, batches of {BATCH}, {DIMENSION}-dimensional vectors", first.len());

    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = SqlCatalog::sqlite(&dir.path().join("catalog.sqlite")).expect("SQLite catalog");
    let plan = PostgresPlan {
        url_env: "SLUICE_BENCH_POSTGRES_URL".into(),
        schema: format!("bench_{}", std::process::id()),
        pool_size: 4,
        ..PostgresPlan::default()
    };
    let postgres = SqlCatalog::postgres(&plan, dir.path()).expect("PostgreSQL catalog");
    let mut rows = Vec::new();
    for (name, catalog) in [("SQLite", &sqlite), ("PostgreSQL", &postgres)] {
        let new = version(catalog, 1, &first);
        let changed = version(catalog, 2, &second);
        rows.push((name, new, changed));
    }
    let per_file = |(statements, seconds): (u64, f64)| {
        (statements as f64 / FILES as f64, seconds * 1e3 / FILES as f64, FILES as f64 / seconds)
    };
    println!("{:<12} {:>28} {:>28}", "", "new files", "changed files");
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "", "stmts/f", "ms/file", "files/s", "stmts/f", "ms/file", "files/s"
    );
    for (name, new, changed) in &rows {
        let (a, b) = (per_file(*new), per_file(*changed));
        println!("{name:<12} {:>9.1} {:>9.3} {:>9.0} {:>9.1} {:>9.3} {:>9.0}", a.0, a.1, a.2, b.0, b.1, b.2);
    }
    let time = |row: usize, changed: bool| if changed { rows[row].2.1 } else { rows[row].1.1 };
    println!(
        "PostgreSQL / SQLite time per file: new {:.2}x, changed {:.2}x",
        time(1, false) / time(0, false),
        time(1, true) / time(0, true)
    );
}
