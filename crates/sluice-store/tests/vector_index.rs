//! Qdrant Edge as sluice uses it: create, upsert, filter by version, retire, roll back, flush,
//! reopen; and dense recall of the HNSW index against exact search.

use sluice_core::{ChunkId, PointKey};
use sluice_store::{VectorIndex, VectorPoint};

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
    let path = dir.path().join("shard");
    let (a, b, c) = (unit(&[1.0, 0.0, 0.0, 0.1]), unit(&[0.0, 1.0, 0.0, 0.1]), unit(&[0.0, 0.0, 1.0, 0.1]));
    {
        let index = VectorIndex::open(&path, 4).unwrap();
        index
            .upsert(&[
                VectorPoint { key: key(1, 1), doc_id: "d1".into(), vector: &a, readers: &[] },
                VectorPoint { key: key(2, 1), doc_id: "d2".into(), vector: &b, readers: &[] },
            ])
            .unwrap();
        // Version 2 retires chunk 2 and adds chunk 3.
        index.set_valid_to(&[key(2, 1)], 2).unwrap();
        index.upsert(&[VectorPoint { key: key(3, 2), doc_id: "d3".into(), vector: &c, readers: &[] }]).unwrap();
        // Upserting again is idempotent.
        index.upsert(&[VectorPoint { key: key(3, 2), doc_id: "d3".into(), vector: &c, readers: &[] }]).unwrap();
        index.flush().unwrap();
    }
    let index = VectorIndex::open(&path, 4).unwrap();
    assert_eq!(index.point_count().unwrap(), 3);
    let ids = |v| index.chunk_ids_visible_at(v).unwrap();
    assert_eq!(ids(1), vec![ChunkId::from_bytes([1; 32]), ChunkId::from_bytes([2; 32])]);
    assert_eq!(ids(2), vec![ChunkId::from_bytes([1; 32]), ChunkId::from_bytes([3; 32])]);
    let nearest_b_at =
        |v| index.search(&b, v, sluice_store::Readable::unrestricted(), 1, 64, true).unwrap()[0].chunk_id;
    assert_eq!(nearest_b_at(1), ChunkId::from_bytes([2; 32]));
    assert_ne!(nearest_b_at(2), ChunkId::from_bytes([2; 32]), "retired at 2");

    // Rolling version 2 back deletes what it added and reopens what it retired.
    index.roll_back(2).unwrap();
    index.flush().unwrap();
    assert_eq!(index.point_count().unwrap(), 2);
    assert_eq!(ids(2), ids(1));
    // Still live far in the future (Qdrant compares ranges as f64; versions stay far below 2^53).
    assert_eq!(ids(1 << 40), ids(1));
    drop(index);
    let error = VectorIndex::open(&path, 8).err().expect("a dimension mismatch is refused").to_string();
    assert!(error.contains("4"), "{error}");
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
    let index = VectorIndex::open(&dir.path().join("shard"), DIMENSION).unwrap();
    for batch in (0..POINTS).collect::<Vec<_>>().chunks(1000) {
        let points: Vec<VectorPoint<'_>> = batch
            .iter()
            .map(|&i| VectorPoint { key: keys[i], doc_id: format!("d{i}"), vector: &vectors[i], readers: &[] })
            .collect();
        index.upsert(&points).unwrap();
    }
    index.flush().unwrap();
    assert!(index.optimize(2).unwrap(), "this many points cross the indexing threshold");

    let queries: Vec<Vec<f32>> = (0..100)
        .map(|q| unit(&centres[(q * 7) % CLUSTERS].iter().map(|c| c + 0.35 * random()).collect::<Vec<_>>()))
        .collect();
    let exact: Vec<Vec<ChunkId>> = queries
        .iter()
        .map(|q| {
            index
                .search(q, 1, sluice_store::Readable::unrestricted(), 10, 0, true)
                .unwrap()
                .into_iter()
                .map(|h| h.chunk_id)
                .collect()
        })
        .collect();
    let mut recall_at_256 = 0.0;
    for ef in [16, 64, 256] {
        let mut found = 0usize;
        for (query, truth) in queries.iter().zip(&exact) {
            let approximate: Vec<ChunkId> = index
                .search(query, 1, sluice_store::Readable::unrestricted(), 10, ef, false)
                .unwrap()
                .into_iter()
                .map(|h| h.chunk_id)
                .collect();
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
