//! The catalog's one implementation on both engines: the same history written to SQLite and to
//! PostgreSQL reads back the same (versions, diff, lineage, costs, quarantine, retention) and
//! exports to the same bytes; PostgreSQL serialises writers from several nodes.
//!
//! PostgreSQL runs where `SLUICE_TEST_POSTGRES_URL` names a database (`.ci/run` starts a
//! throw-away cluster, `tools/postgres-test-server.sh`); each test works in a schema of its own.
//! Elsewhere only SQLite runs, saying so.

use std::sync::Arc;

use sluice_config::PostgresPlan;
use sluice_core::embedding_input::embedding_key;
use sluice_core::records::MinHash;
use sluice_core::{Acl, Chunk, ChunkId, ContentHash, DocumentId, DocumentMetadata, Fingerprint, ReadAccess, TextHash};
use sluice_store::prelude::*;
use sluice_store::{
    Actor, AuditEvent, Catalog, ChangeReason, CommitRecord, DocumentCost, DocumentWrite, ExportFormat, FileStatus,
    LedgerChange, LedgerEntry, NewChunk, NewDocument, PastAccess, QuarantineEntry, SqlCatalog, StageCost,
    StageFingerprints,
};

const PIPELINE: &str = "p";
const BY: Actor<'static> = Actor { pipeline: PIPELINE, principal: "local:test" };

/// Settings for a PostgreSQL catalog in a fresh schema, or `None` (with a note) without a server.
fn postgres_plan() -> Option<PostgresPlan> {
    if std::env::var("SLUICE_TEST_POSTGRES_URL").is_err() {
        eprintln!("SLUICE_TEST_POSTGRES_URL is not set: testing the SQLite catalog only");
        return None;
    }
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    Some(PostgresPlan {
        url_env: "SLUICE_TEST_POSTGRES_URL".into(),
        schema: format!("t_{}", hex::encode(bytes)),
        pool_size: 8,
        ..PostgresPlan::default()
    })
}

/// A fresh PostgreSQL catalog, or `None` without a server.
fn postgres(files: &std::path::Path) -> Option<SqlCatalog> {
    postgres_plan().map(|plan| SqlCatalog::postgres(&plan, files).expect("the PostgreSQL catalog opens"))
}

fn stages() -> StageFingerprints {
    StageFingerprints {
        extract: Fingerprint::of("extract", "1"),
        chunk: Fingerprint::of("chunk", "1"),
        model: Fingerprint::of("embed", "1"),
    }
}

/// A document of `texts` (one chunk each) at `rel_path`, readable by `readers`.
fn document(rel_path: &str, texts: &[&str], readers: &[&str]) -> DocumentWrite {
    let content = texts.join("\n");
    let doc_id = DocumentId::new(PIPELINE, "/share", rel_path);
    let content_hash = ContentHash::of_bytes(content.as_bytes());
    let mut offset = 0u32;
    let chunks = texts
        .iter()
        .enumerate()
        .map(|(ordinal, text)| {
            let len = text.chars().count() as u32;
            let chunk = Chunk {
                ordinal: ordinal as u32,
                text: (*text).to_owned(),
                text_hash: TextHash::of_text(text),
                char_start: offset,
                char_end: offset + len,
                page: (ordinal > 0).then_some(ordinal as u32),
                token_count: len / 4 + 1,
                heading_path: vec!["Überblick".into(), format!("Teil {ordinal}")],
                pii: if text.contains('@') { vec!["email".into()] } else { Vec::new() },
                language: Some(if ordinal % 2 == 0 { "deu" } else { "eng" }.into()),
            };
            offset += len + 1;
            let id = ChunkId::new(doc_id, content_hash, stages().chunk, ordinal as u32);
            NewChunk { id, vector: vector_of(text), chunk }
        })
        .collect();
    DocumentWrite {
        document: NewDocument {
            doc_id,
            root: "/share".into(),
            rel_path: rel_path.into(),
            member: String::new(),
            parent: None,
            embedded_files: 0,
            content_hash,
            text_hash: TextHash::of_text(&content),
            format: "text".into(),
            title: Some(format!("Titel — {rel_path}")),
            page_count: Some(texts.len() as u32),
            byte_size: content.len() as u64,
            fingerprints: stages(),
            duplicate_of: None,
            added_reason: ChangeReason::New,
            readers: Acl::new(readers.iter().map(|r| (*r).to_owned())),
            pii: Default::default(),
            language: Some("deu".into()),
            metadata: DocumentMetadata {
                authors: vec!["Jürgen Groß".into(), "ana@example.com".into()],
                created: Some("2024-05-01T09:30:00Z".into()),
                mime_type: "text/plain".into(),
                file_modified: Some("2025-01-02T03:04:05Z".into()),
                ..Default::default()
            },
            similarity: None,
            minhash: Some(MinHash { signature: vec![7; 512], bands: (0..32).collect() }),
        },
        chunks,
    }
}

fn vector_of(text: &str) -> Vec<f32> {
    let hash = blake3::hash(text.as_bytes());
    hash.as_bytes()[..8].iter().map(|b| f32::from(*b) / 255.0).collect()
}

fn ledger(write: &DocumentWrite) -> LedgerChange {
    let d = &write.document;
    LedgerChange::Upsert(LedgerEntry {
        root: d.root.clone(),
        rel_path: d.rel_path.clone(),
        size: d.byte_size,
        mtime_ns: 1_700_000_000_000_000_000,
        content_hash: d.content_hash,
        status: FileStatus::Indexed,
        readers: Some(d.readers.clone()),
    })
}

fn cost(write: &DocumentWrite) -> DocumentCost {
    DocumentCost {
        doc_id: write.document.doc_id,
        root: write.document.root.clone(),
        rel_path: write.document.rel_path.clone(),
        outcome: "indexed",
        bytes: write.document.byte_size,
        pages: 1,
        tokens: 7,
        stages: [("extract", StageCost { wall: 0.25, cpu: 0.125, gpu: 0.0 })].into(),
    }
}

/// Writes one version: `writes` added, `retired` retired, committed and made live.
fn write_version(catalog: &dyn Catalog, version: i64, writes: &[DocumentWrite], retired: &[DocumentId]) {
    assert_eq!(catalog.next_version(PIPELINE).unwrap(), version);
    catalog.begin_version(PIPELINE, version, Fingerprint::of("pipeline", "1"), "run").unwrap();
    catalog.put_fingerprint(stages().extract, "extract", r#"{"extractor":1}"#).unwrap();
    catalog.insert_documents(PIPELINE, version, writes).unwrap();
    for doc_id in retired {
        catalog.retire_document(PIPELINE, *doc_id, version, ChangeReason::Deleted).unwrap();
    }
    for write in writes {
        // Keyed as the pipeline keys them: by what the model embedded (title, headings, text).
        let title = write.document.title.as_deref();
        let key = |c: &NewChunk| embedding_key(title, &c.chunk.heading_path, &c.chunk.text, c.chunk.text_hash);
        let vectors: Vec<_> = write.chunks.iter().map(|c| (key(c), c.vector.as_slice())).collect();
        catalog.put_embeddings(stages().model, &vectors).unwrap();
    }
    let quarantined = [QuarantineEntry {
        path: format!("/share/broken-{version}.pdf"),
        root: "/share".into(),
        rel_path: format!("broken-{version}.pdf"),
        member: String::new(),
        content_hash: ContentHash::of_bytes(b"broken"),
        stage: "extract".into(),
        reason: "encrypted".into(),
        detail: "needs a password".into(),
        version,
        at: 1_700_000_000_000,
    }];
    let ledger: Vec<_> = writes.iter().map(ledger).collect();
    let costs: Vec<_> = writes.iter().map(cost).collect();
    let audit = [AuditEvent::new(
        PIPELINE,
        "pipeline",
        "version_committed",
        format!("version {version}"),
        serde_json::json!({"documents": writes.len()}),
    )];
    let record = CommitRecord {
        ledger: &ledger,
        quarantined: &quarantined,
        cleared_quarantine: &[],
        summary: &serde_json::json!({"indexed": writes.len(), "deleted": retired.len()}),
        audit: &audit,
        costs: &costs,
        promote: true,
        run_id: "run",
        cleared_in_flight: &[],
    };
    catalog.commit_version(PIPELINE, version, &record).unwrap();
}

/// The same history on any catalog: three documents, then one changed, one deleted, one new.
fn history(catalog: &dyn Catalog) -> Vec<DocumentWrite> {
    let first = vec![
        document("a.txt", &["Alpha one", "Alpha two, mail alice@example.org"], &["group:eng"]),
        document("b/ç.txt", &["Beta — naïve café", "日本語のテキスト"], &[]),
        document("Z.txt", &["Zulu sorts before lowercase by code point"], &["user:bob"]),
    ];
    write_version(catalog, 1, &first, &[]);
    let second = vec![document("c.txt", &["Gamma arrives in version two"], &[])];
    write_version(catalog, 2, &second, &[first[1].document.doc_id]);
    first.into_iter().chain(second).collect()
}

/// What a catalog says about the history, with times (which differ by engine) left out.
fn observations(catalog: &dyn Catalog, writes: &[DocumentWrite], out: &std::path::Path) -> serde_json::Value {
    let mut exports = serde_json::Map::new();
    for version in [1, 2] {
        for (format, vectors) in [(ExportFormat::Jsonl, true), (ExportFormat::Parquet, false)] {
            let file = out.join(format!("v{version}-{format:?}"));
            let summary =
                catalog.export(PIPELINE, version, &ReadAccess::Unrestricted, &[], format, vectors, &file).unwrap();
            let bytes = std::fs::read(&file).unwrap();
            exports.insert(
                format!("v{version} {format:?}"),
                serde_json::json!({"chunks": summary.chunks, "blake3": blake3::hash(&bytes).to_hex().to_string()}),
            );
        }
    }
    let versions: Vec<_> = catalog
        .versions(PIPELINE)
        .unwrap()
        .into_iter()
        .map(|v| serde_json::json!([v.version, v.state, v.chunks, v.aliases, v.summary, v.pinned, v.gate]))
        .collect();
    let chunk = writes[0].chunks[1].id;
    let mut lineage = serde_json::to_value(
        catalog.lineage(PIPELINE, chunk, &ReadAccess::Unrestricted, PastAccess::AsCommitted).unwrap().unwrap(),
    )
    .unwrap();
    for time in ["written_at", "run"] {
        lineage.as_object_mut().unwrap().remove(time);
    }
    let audit: Vec<_> = catalog
        .audit_entries(None, 0, 100)
        .unwrap()
        .into_iter()
        .map(|e| serde_json::json!([e.seq, e.action, e.subject, e.detail]))
        .collect();
    serde_json::json!({
        "exports": exports,
        "versions": versions,
        "diff": catalog.diff(PIPELINE, 1, 2).unwrap(),
        "lineage": lineage,
        "costs": catalog.cost_report(PIPELINE, None).unwrap(),
        "quarantine": catalog.quarantine(PIPELINE).unwrap(),
        "ledger": catalog.ledger(PIPELINE, "/share").unwrap().into_keys().collect::<std::collections::BTreeSet<_>>(),
        "roots": catalog.document_roots(PIPELINE).unwrap(),
        "models": catalog.models_at(PIPELINE, 2).unwrap(),
        "retired_at_2": catalog.chunks_retired_at(PIPELINE, 2).unwrap().len(),
        "visible_at_1": catalog.chunks_visible_at(PIPELINE, 1).unwrap().into_iter().map(|c| c.chunk_id).collect::<Vec<_>>(),
        "embeddings": catalog.embedding_count().unwrap(),
        "dimension": catalog.model_dimension(&stages().model.to_hex()).unwrap(),
        "audit": audit,
        "audit_ok": catalog.verify_audit(None).unwrap().first_bad.is_none(),
        "revoked": catalog.revoked_documents(PIPELINE, 1, &ReadAccess::Unrestricted).unwrap(),
    })
}

#[test]
fn both_engines_hold_and_export_the_same_history() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqlCatalog::sqlite(&dir.path().join("catalog.sqlite")).unwrap();
    let writes = history(&sqlite);
    std::fs::create_dir_all(dir.path().join("out-sqlite")).unwrap();
    let expected = observations(&sqlite, &writes, &dir.path().join("out-sqlite"));
    assert_eq!(expected["exports"]["v2 Jsonl"]["chunks"], 4, "{expected:#}");
    let Some(postgres) = postgres(&dir.path().join("pg-files")) else { return };
    history(&postgres);
    std::fs::create_dir_all(dir.path().join("out-pg")).unwrap();
    let found = observations(&postgres, &writes, &dir.path().join("out-pg"));
    assert_eq!(found, expected);
    for name in ["v1-Jsonl", "v2-Jsonl", "v1-Parquet", "v2-Parquet"] {
        let (a, b) = (dir.path().join("out-sqlite").join(name), dir.path().join("out-pg").join(name));
        assert!(std::fs::read(a).unwrap() == std::fs::read(b).unwrap(), "{name} differs between the engines");
    }
    // Retention and garbage collection decide alike.
    for catalog in [&sqlite as &dyn Catalog, &postgres] {
        let (expired, retained) = catalog.expire_versions(1, &BY).unwrap();
        assert_eq!((expired, retained.clone()), (vec![1], vec![2]));
        let unreachable = catalog.unreachable_chunks(PIPELINE, &retained).unwrap();
        assert_eq!(unreachable.len(), 2, "the deleted document's chunks");
        assert_eq!(catalog.delete_unreachable(PIPELINE, &retained).unwrap(), (2, 1));
        assert!(catalog.verify_audit(None).unwrap().first_bad.is_none());
    }
}

#[test]
fn postgres_tokens_pins_rollback_and_rotation_work_as_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let Some(catalog) = postgres(dir.path()) else { return };
    history(&catalog);
    let (info, secret) = catalog.create_token("alice", &["eng".into()], sluice_store::Role::Operator, &BY).unwrap();
    assert_eq!(catalog.authenticate(&secret).unwrap(), Some(info.clone()));
    assert!(catalog.revoke_token(&info.id, &BY).unwrap());
    assert_eq!(catalog.authenticate(&secret).unwrap(), None);
    catalog.set_pinned(1, true, &BY).unwrap();
    assert_eq!(catalog.roll_back_live(&BY).unwrap(), 1);
    assert_eq!(catalog.alias(PIPELINE, "live").unwrap(), Some(1));
    catalog.promote(2, false, &BY).unwrap();
    let head = catalog.audit_head().unwrap().unwrap();
    assert!(catalog.rotate_audit(4, 0).unwrap().is_some());
    let report = catalog.verify_audit(Some(&head)).unwrap();
    assert!(report.first_bad.is_none(), "{:?}", report.first_bad);
    assert!(report.rotated > 0);
    assert_eq!(catalog.identity().unwrap(), catalog.identity().unwrap());
}

/// Writers on several nodes (here: two catalogs on one schema, written from threads) never
/// interleave a write: the audit chain they append to concurrently stays whole.
#[test]
fn postgres_serialises_writers_from_several_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(plan) = postgres_plan() else { return };
    let nodes: Vec<Arc<SqlCatalog>> =
        (0..2).map(|_| Arc::new(SqlCatalog::postgres(&plan, dir.path()).expect("a node opens"))).collect();
    let threads: Vec<_> = nodes
        .iter()
        .cloned()
        .enumerate()
        .map(|(node, catalog)| {
            std::thread::spawn(move || {
                for i in 0..40 {
                    let event = AuditEvent::new(
                        PIPELINE,
                        "n",
                        "search",
                        format!("node {node} query {i}"),
                        serde_json::json!({}),
                    );
                    catalog.audit(&[event.clone(), event]).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let report = nodes[1].verify_audit(None).unwrap();
    assert!(report.first_bad.is_none(), "{:?}", report.first_bad);
    assert_eq!(report.entries, 160);
}

/// Two nodes claim from the same files concurrently: every file is claimed by exactly one, and
/// a pipeline's write lock is held by one node at a time.
#[test]
fn postgres_claims_and_the_pipeline_lock_exclude_other_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(plan) = postgres_plan() else { return };
    let nodes: Vec<Arc<SqlCatalog>> =
        (0..2).map(|_| Arc::new(SqlCatalog::postgres(&plan, dir.path()).expect("a node opens"))).collect();
    let files: Vec<sluice_store::FileKey> = (0..200).map(|i| ("/share".to_owned(), format!("{i:03}.txt"))).collect();
    let claimers: Vec<_> = nodes
        .iter()
        .cloned()
        .enumerate()
        .map(|(node, catalog)| {
            let files = files.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for batch in files.chunks(10) {
                    mine.extend(catalog.claim_files(PIPELINE, &format!("node{node}"), batch, 60_000, 10).unwrap());
                }
                mine
            })
        })
        .collect();
    let claimed: Vec<Vec<sluice_store::FileKey>> = claimers.into_iter().map(|t| t.join().unwrap()).collect();
    let mut all: Vec<_> = claimed.concat();
    all.sort();
    assert_eq!(all, files, "each file claimed exactly once");

    let held = nodes[0].lock_pipeline(PIPELINE).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let other = nodes[1].clone();
    let waiter = std::thread::spawn(move || {
        let _lock = other.lock_pipeline(PIPELINE).unwrap();
        tx.send(()).unwrap();
    });
    assert!(rx.recv_timeout(std::time::Duration::from_millis(500)).is_err(), "the second node waits");
    // Another pipeline's lock is free meanwhile.
    drop(nodes[1].lock_pipeline("another").unwrap());
    drop(held);
    rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the second node gets the lock once it is free");
    waiter.join().unwrap();
}
