//! Both vector backends as sluice uses them: create, upsert, filter by version, retire, roll
//! back, flush, reopen; and dense recall of Qdrant Edge's HNSW index against exact search. The
//! Qdrant server backend runs where `SLUICE_TEST_QDRANT_URL` names a server (`.ci/run` starts
//! one).

use std::path::Path;

use sluice_config::QdrantPlan;
use sluice_core::{ChunkId, PointKey, VERSION_OPEN};
use sluice_store::{
    DenseQuery, EdgeVectors, PointPayload, Readable, ServerConnection, ServerVectors, VectorIndex, VectorPoint,
};

/// A point with a payload that names only its key and document.
fn point<'a>(key: PointKey, doc: &str, vector: &'a [f32], readers: &'a [String]) -> VectorPoint<'a> {
    VectorPoint { key, vector, payload: PointPayload::minimal(key, doc.to_owned(), readers) }
}

fn nearest(
    index: &dyn VectorIndex,
    vector: &[f32],
    version: i64,
    limit: usize,
    ef: usize,
    exact: bool,
) -> Vec<ChunkId> {
    let query = DenseQuery { vector, version, readable: Readable::unrestricted(), limit, hnsw_ef: ef, exact };
    index.search(&query).unwrap().into_iter().map(|hit| hit.chunk_id).collect()
}

/// The backends to test, each as a function that opens the same index again: Qdrant Edge in
/// `dir`, and a fresh collection on the test server when there is one.
/// Opens a backend's index for vectors of a dimension.
type Opener = Box<dyn Fn(usize) -> sluice_store::Result<Box<dyn VectorIndex>>>;

fn backends(dir: &Path) -> Vec<(&'static str, Opener)> {
    let shard = dir.join("shard");
    let mut all: Vec<(&'static str, Opener)> = vec![(
        "edge",
        Box::new(move |dimension| Ok(Box::new(EdgeVectors::open(&shard, dimension)?) as Box<dyn VectorIndex>)),
    )];
    if let Ok(url) = std::env::var("SLUICE_TEST_QDRANT_URL") {
        let collection = format!("test-{}", dir.file_name().unwrap().to_string_lossy().replace('.', "-"));
        let plan = test_plan(&url, &collection);
        all.push((
            "qdrant server",
            Box::new(move |dimension| Ok(Box::new(server(&plan, &collection, dimension, "catalog-a")?) as Box<_>)),
        ));
    } else {
        eprintln!("SLUICE_TEST_QDRANT_URL is not set: testing Qdrant Edge only");
    }
    all
}

/// The collection `collection` on the plan's server, for a catalog.
fn server(plan: &QdrantPlan, collection: &str, dimension: usize, catalog: &str) -> sluice_store::Result<ServerVectors> {
    let connection = std::sync::Arc::new(ServerConnection::new(plan, catalog)?);
    Ok(ServerVectors::new(connection, collection.to_owned(), Some(dimension)))
}

fn test_plan(url: &str, collection: &str) -> QdrantPlan {
    QdrantPlan {
        url: url.to_owned(),
        api_key_env: None,
        collection: collection.to_owned(),
        timeout: std::time::Duration::from_secs(30),
        connect_timeout: std::time::Duration::from_secs(5),
        shards: 1,
        replication_factor: 1,
        write_consistency_factor: 1,
        on_disk_vectors: false,
        on_disk_payload: true,
        quantization: sluice_config::Quantization::None,
    }
}

fn key(byte: u8, valid_from: i64) -> PointKey {
    PointKey { chunk: ChunkId::from_bytes([byte; 32]), valid_from }
}

fn unit(values: &[f32]) -> Vec<f32> {
    let norm = values.iter().map(|x| x * x).sum::<f32>().sqrt();
    values.iter().map(|x| x / norm).collect()
}

#[test]
fn points_follow_versions_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    for (backend, open) in backends(dir.path()) {
        let (a, b, c) = (unit(&[1.0, 0.0, 0.0, 0.1]), unit(&[0.0, 1.0, 0.0, 0.1]), unit(&[0.0, 0.0, 1.0, 0.1]));
        {
            let index = open(4).unwrap();
            assert!(index.prepare().unwrap(), "{backend}: ready now");
            assert!(!index.prepare().unwrap(), "{backend}: already ready");
            index.upsert(&[point(key(1, 1), "d1", &a, &[]), point(key(2, 1), "d2", &b, &[])]).unwrap();
            // Version 2 retires chunk 2 and adds chunk 3.
            index.set_valid_to(&[key(2, 1)], 2).unwrap();
            index.upsert(&[point(key(3, 2), "d3", &c, &[])]).unwrap();
            // Upserting again is idempotent.
            index.upsert(&[point(key(3, 2), "d3", &c, &[])]).unwrap();
            index.flush().unwrap();
        }
        let index = open(4).unwrap();
        assert!(index.prepare().unwrap(), "{backend}: found again");
        assert_eq!(index.point_count().unwrap(), 3, "{backend}");
        let ids = |v| index.chunk_ids_visible_at(v).unwrap();
        assert_eq!(ids(1), vec![ChunkId::from_bytes([1; 32]), ChunkId::from_bytes([2; 32])], "{backend}");
        assert_eq!(ids(2), vec![ChunkId::from_bytes([1; 32]), ChunkId::from_bytes([3; 32])], "{backend}");
        assert_eq!(nearest(index.as_ref(), &b, 1, 1, 64, true)[0], ChunkId::from_bytes([2; 32]), "{backend}");
        assert_ne!(nearest(index.as_ref(), &b, 2, 1, 64, true)[0], ChunkId::from_bytes([2; 32]), "retired at 2");

        // Rolling version 2 back deletes what it added and reopens what it retired.
        index.roll_back(2).unwrap();
        index.flush().unwrap();
        assert_eq!(index.point_count().unwrap(), 2, "{backend}");
        assert_eq!(ids(2), ids(1), "{backend}");
        // Still live far in the future (Qdrant compares ranges as f64; versions stay far below 2^53).
        assert_eq!(ids(1 << 40), ids(1), "{backend}");
        let stored = index.appearances().unwrap();
        assert_eq!(stored.len(), 2, "{backend}");
        assert!(stored.iter().all(|point| point.valid_to == VERSION_OPEN && point.vector.len() == 4), "{backend}");
        drop(index);
        let error = match open(8) {
            Err(error) => error,
            Ok(index) => index.prepare().expect_err("a dimension mismatch is refused"),
        };
        assert!(error.to_string().contains("4"), "{backend}: {error}");
    }
}

/// A collection another catalog created is refused, not mixed with.
#[test]
fn a_server_collection_belongs_to_one_catalog() {
    let Ok(url) = std::env::var("SLUICE_TEST_QDRANT_URL") else {
        eprintln!("SLUICE_TEST_QDRANT_URL is not set: skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let collection = format!("test-owner-{}", dir.path().file_name().unwrap().to_string_lossy().replace('.', "-"));
    let plan = test_plan(&url, &collection);
    let first = server(&plan, &collection, 4, "catalog-a").unwrap();
    assert!(first.prepare().unwrap());
    let other = server(&plan, &collection, 4, "catalog-b").unwrap();
    let error = other.prepare().expect_err("another catalog's collection is refused").to_string();
    assert!(error.contains("another sluice catalog"), "{error}");
    assert!(other.point_count().is_err(), "nothing is done before prepare succeeds");
}

/// A server nobody listens on: operations fail as unavailable (retryable), not as corruption.
#[test]
fn an_unreachable_server_is_retryable() {
    let mut plan = test_plan("http://127.0.0.1:9", "nowhere");
    plan.connect_timeout = std::time::Duration::from_secs(1);
    let index = server(&plan, "nowhere", 4, "catalog-a").unwrap();
    let error = index.prepare().expect_err("nothing listens on the discard port");
    assert!(error.is_retryable(), "{error}");
    assert!(matches!(error, sluice_store::StoreError::Unavailable(_)), "{error:?}");
}

/// Clustered vectors (like real embeddings: topics), enough points for the indexing threshold
/// to build an HNSW graph. Reports recall@10 against exact search for several `hnsw_ef`.
#[test]
fn hnsw_recall_against_exact_search() {
    const DIMENSION: usize = 384;
    const POINTS: usize = 9_000;
    const CLUSTERS: usize = 150;
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let centres: Vec<Vec<f32>> = (0..CLUSTERS).map(|_| (0..DIMENSION).map(|_| random()).collect()).collect();
    let vectors: Vec<Vec<f32>> = (0..POINTS)
        .map(|i| unit(&centres[i % CLUSTERS].iter().map(|c| c + 0.35 * random()).collect::<Vec<_>>()))
        .collect();
    let keys: Vec<PointKey> = (0..POINTS)
        .map(|i| {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            PointKey { chunk: ChunkId::from_bytes(bytes), valid_from: 1 }
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let index = EdgeVectors::open(&dir.path().join("shard"), DIMENSION).unwrap();
    for batch in (0..POINTS).collect::<Vec<_>>().chunks(1000) {
        let points: Vec<VectorPoint<'_>> =
            batch.iter().map(|&i| point(keys[i], &format!("d{i}"), &vectors[i], &[])).collect();
        index.upsert(&points).unwrap();
    }
    index.flush().unwrap();
    assert!(index.optimize(2).unwrap(), "this many points cross the indexing threshold");

    let queries: Vec<Vec<f32>> = (0..100)
        .map(|q| unit(&centres[(q * 7) % CLUSTERS].iter().map(|c| c + 0.35 * random()).collect::<Vec<_>>()))
        .collect();
    let exact: Vec<Vec<ChunkId>> = queries.iter().map(|q| nearest(&index, q, 1, 10, 0, true)).collect();
    let mut recall_at_256 = 0.0;
    for ef in [16, 64, 256] {
        let mut found = 0usize;
        for (query, truth) in queries.iter().zip(&exact) {
            let approximate = nearest(&index, query, 1, 10, ef, false);
            found += truth.iter().filter(|id| approximate.contains(id)).count();
        }
        let recall = found as f64 / (queries.len() * 10) as f64;
        eprintln!("hnsw_ef {ef}: recall@10 {recall:.3} against exact search ({POINTS} points, {DIMENSION}-d)");
        if ef == 256 {
            recall_at_256 = recall;
        }
    }
    assert!(recall_at_256 >= 0.95, "recall@10 at the default hnsw_ef is {recall_at_256}");
}
