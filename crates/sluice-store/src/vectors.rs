//! The dense index: Qdrant's own engine in-process (qdrant-edge), one shard per pipeline.
//!
//! Each point is one appearance of a chunk (id from its `PointKey`), with the chunk id and the
//! validity interval and its readers (ACL principal keys) in its payload. Every query carries the version filter, so points of a
//! version that is still being written, or was abandoned by a crash, are never seen.

use std::path::Path;

use qdrant_edge::{
    CountRequest, CreateIndex, EdgeConfigBuilder, EdgeShard, EdgeVectorParamsBuilder, FieldIndexOperations, Filter,
    NamedQuery, Payload, PayloadFieldSchema, PayloadOps, PayloadSchemaType, PointId, PointInsertOperations,
    PointOperations, PointStruct, QueryEnum, QueryRequest, ScoringQuery, ScrollRequest, SearchParams, SetPayloadOp,
    UpdateOperation, VectorInternal, WithPayloadInterface, WithVector,
};
use serde_json::json;
use sluice_core::{ChunkId, PointKey, ReadAccess, VERSION_OPEN, Version};

use crate::error::{Result, StoreError};
use crate::time_travel::Readable;

const VECTOR_NAME: &str = "dense";

/// A point to write: its key and vector.
pub struct VectorPoint<'a> {
    pub key: PointKey,
    pub doc_id: String,
    pub vector: &'a [f32],
    /// Principal keys that may read it.
    pub readers: &'a [String],
}

/// A point as stored: its chunk appearance, readers and vector.
pub struct StoredPoint {
    pub chunk_id: ChunkId,
    pub valid_from: Version,
    pub valid_to: Version,
    pub readers: Vec<String>,
    pub vector: Vec<f32>,
}

/// A dense hit.
#[derive(Clone, Debug)]
pub struct DenseHit {
    pub chunk_id: ChunkId,
    pub valid_from: Version,
    pub score: f32,
}

pub struct VectorIndex {
    shard: EdgeShard,
}

/// Qdrant's REST filter for "visible at version v".
pub(crate) fn visible_filter(version: Version) -> Filter {
    readable_filter(version, &ReadAccess::Unrestricted, &[])
}

/// "Visible at version v and readable by `access`": Qdrant applies it while it searches the
/// graph, so the nearest readable chunks come back, not what is left of the nearest ones.
fn readable_filter(version: Version, access: &ReadAccess, hidden_docs: &[String]) -> Filter {
    let mut must = vec![
        json!({"key": "valid_from", "range": {"lte": version}}),
        json!({"key": "valid_to", "range": {"gt": version}}),
    ];
    if let ReadAccess::Keys(keys) = access {
        must.push(json!({"key": "readers", "match": {"any": keys}}));
    }
    if hidden_docs.is_empty() {
        return filter(json!({ "must": must }));
    }
    filter(json!({ "must": must, "must_not": [{"key": "doc_id", "match": {"any": hidden_docs}}] }))
}

fn filter(value: serde_json::Value) -> Filter {
    serde_json::from_value(value).expect("filters built here are valid Qdrant filter JSON")
}

fn payload(value: serde_json::Value) -> Payload {
    match value {
        serde_json::Value::Object(map) => Payload(map.into_iter().collect()),
        other => unreachable!("payloads built here are JSON objects, got {other}"),
    }
}

impl VectorIndex {
    /// Opens the shard at `path`, creating it (with its payload indexes) if it does not exist.
    pub fn open(path: &Path, dimension: usize) -> Result<Self> {
        let exists = path.join("edge_config.json").exists();
        let shard = if exists {
            EdgeShard::load(path, None)?
        } else {
            let vectors = EdgeVectorParamsBuilder::new(dimension, qdrant_edge::Distance::Cosine).build();
            let config = EdgeConfigBuilder::new()
                .vector(VECTOR_NAME, vectors)
                .payload_memory(qdrant_edge::Memory::Cached)
                .build();
            let shard = EdgeShard::new(path, config)?;
            for (field, schema) in [
                ("valid_from", PayloadSchemaType::Integer),
                ("valid_to", PayloadSchemaType::Integer),
                ("chunk_id", PayloadSchemaType::Keyword),
                ("doc_id", PayloadSchemaType::Keyword),
                ("readers", PayloadSchemaType::Keyword),
            ] {
                shard.update(UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(CreateIndex {
                    field_name: field.try_into().map_err(|_| StoreError::Invalid(format!("bad field {field}")))?,
                    field_schema: Some(PayloadFieldSchema::FieldType(schema)),
                })))?;
            }
            shard.flush()?;
            shard
        };
        let stored = shard.config().vectors.get(VECTOR_NAME).map(|params| params.size);
        if stored != Some(dimension) {
            return Err(StoreError::Invalid(format!(
                "vector index {} holds {stored:?}-dimensional vectors, the model makes {dimension}",
                path.display()
            )));
        }
        Ok(Self { shard })
    }

    /// Upserts points that become visible at their `valid_from`. Idempotent.
    pub fn upsert(&self, points: &[VectorPoint<'_>]) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let points = points
            .iter()
            .map(|point| {
                let vectors = std::collections::HashMap::from([(VECTOR_NAME.to_owned(), point.vector.to_vec())]);
                PointStruct::new(
                    PointId::Uuid(point.key.uuid()),
                    vectors,
                    json!({
                        "chunk_id": point.key.chunk.to_hex(),
                        "doc_id": point.doc_id,
                        "valid_from": point.key.valid_from,
                        "valid_to": VERSION_OPEN,
                        "readers": point.readers,
                    }),
                )
                .into()
            })
            .collect();
        self.shard.update(UpdateOperation::PointOperation(PointOperations::UpsertPoints(
            PointInsertOperations::PointsList(points),
        )))?;
        Ok(())
    }

    /// Sets `valid_to` of these points. Idempotent.
    pub fn set_valid_to(&self, keys: &[PointKey], valid_to: Version) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.shard.update(UpdateOperation::PayloadOperation(PayloadOps::SetPayload(SetPayloadOp {
            payload: payload(json!({"valid_to": valid_to})),
            points: Some(keys.iter().map(|key| PointId::Uuid(key.uuid())).collect()),
            filter: None,
            key: None,
        })))?;
        Ok(())
    }

    /// Undoes version N: deletes the points it added and reopens the ones it retired.
    pub fn roll_back(&self, version: Version) -> Result<()> {
        self.shard.update(UpdateOperation::PointOperation(PointOperations::DeletePointsByFilter(filter(json!({
            "must": [{"key": "valid_from", "match": {"value": version}}]
        })))))?;
        self.shard.update(UpdateOperation::PayloadOperation(PayloadOps::SetPayload(SetPayloadOp {
            payload: payload(json!({"valid_to": VERSION_OPEN})),
            points: None,
            filter: Some(filter(json!({"must": [{"key": "valid_to", "match": {"value": version}}]}))),
            key: None,
        })))?;
        Ok(())
    }

    /// Deletes these points (retention). Idempotent.
    pub fn delete(&self, keys: &[PointKey]) -> Result<()> {
        for batch in keys.chunks(4096) {
            let ids = batch.iter().map(|key| PointId::Uuid(key.uuid())).collect();
            self.shard.update(UpdateOperation::PointOperation(PointOperations::DeletePoints { ids }))?;
        }
        Ok(())
    }

    /// Makes every update so far durable.
    pub fn flush(&self) -> Result<()> {
        self.shard.flush()?;
        Ok(())
    }

    /// The `limit` nearest chunks visible at `version`. `exact` bypasses the HNSW graph.
    pub fn search(
        &self,
        vector: &[f32],
        version: Version,
        readable: Readable<'_>,
        limit: usize,
        hnsw_ef: usize,
        exact: bool,
    ) -> Result<Vec<DenseHit>> {
        let request = QueryRequest {
            prefetches: Vec::new(),
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                query: VectorInternal::from(vector.to_vec()),
                using: Some(VECTOR_NAME.into()),
            }))),
            filter: Some(readable_filter(version, readable.access, readable.hidden_docs)),
            score_threshold: None,
            limit,
            offset: 0,
            params: Some(SearchParams { hnsw_ef: Some(hnsw_ef), exact, ..SearchParams::default() }),
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(true),
        };
        let points = self.shard.query(request)?;
        points
            .into_iter()
            .map(|point| {
                let (chunk_id, valid_from) = key_from_payload(point.payload.as_ref())?;
                Ok(DenseHit { chunk_id, valid_from, score: point.score })
            })
            .collect()
    }

    /// Chunk ids of every point visible at `version`, sorted.
    pub fn chunk_ids_visible_at(&self, version: Version) -> Result<Vec<ChunkId>> {
        let mut ids = Vec::new();
        self.scroll(Some(visible_filter(version)), false, |payload, _| {
            ids.push(key_from_payload(payload)?.0);
            Ok(())
        })?;
        ids.sort();
        Ok(ids)
    }

    /// Every point, sorted by (chunk id, valid_from); for `verify`.
    pub fn appearances(&self) -> Result<Vec<StoredPoint>> {
        let mut all = Vec::new();
        self.scroll(None, true, |payload, vector| {
            let (chunk_id, valid_from) = key_from_payload(payload)?;
            let valid_to = payload
                .and_then(|payload| payload.0.get("valid_to"))
                .and_then(|v| v.as_i64())
                .ok_or_else(|| StoreError::Corrupt("a vector point has no valid_to".into()))?;
            let readers = payload
                .and_then(|payload| payload.0.get("readers"))
                .and_then(|v| v.as_array())
                .map(|keys| keys.iter().filter_map(|key| key.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            all.push(StoredPoint { chunk_id, valid_from, valid_to, readers, vector });
            Ok(())
        })?;
        all.sort_by_key(|point| (point.chunk_id, point.valid_from));
        Ok(all)
    }

    /// Calls `each` with the payload (and the vector, if asked) of every point that matches.
    fn scroll(
        &self,
        filter: Option<Filter>,
        with_vector: bool,
        mut each: impl FnMut(Option<&Payload>, Vec<f32>) -> Result<()>,
    ) -> Result<()> {
        let mut offset = None;
        loop {
            let (records, next) = self.shard.scroll(ScrollRequest {
                offset,
                limit: Some(1024),
                filter: filter.clone(),
                with_payload: Some(WithPayloadInterface::Bool(true)),
                with_vector: WithVector::Bool(with_vector),
                order_by: None,
            })?;
            for record in records {
                let vector = match record.vector {
                    Some(vectors) if with_vector => dense_vector(vectors)?,
                    _ => Vec::new(),
                };
                each(record.payload.as_ref(), vector)?;
            }
            match next {
                Some(next) => offset = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Points stored, whatever their versions.
    pub fn point_count(&self) -> Result<usize> {
        Ok(self.shard.count(CountRequest { filter: None, exact: true })?)
    }

    /// Builds the HNSW index for segments big enough to need one, merges small segments and
    /// vacuums deleted points. Blocking, and can take a while: `threads` caps the CPU it uses so
    /// searches and the next run keep the rest. Returns whether anything was optimised.
    pub fn optimize(&self, threads: usize) -> Result<bool> {
        let threads = threads.max(1);
        Ok(self.shard.optimize_with_budget(qdrant_edge::ResourceBudget::new(threads, threads))?)
    }
}

/// The dense vector of a scrolled point.
fn dense_vector(vectors: qdrant_edge::VectorStructInternal) -> Result<Vec<f32>> {
    let vector = match vectors {
        qdrant_edge::VectorStructInternal::Single(vector) => Some(vector),
        qdrant_edge::VectorStructInternal::Named(mut named) => match named.remove(VECTOR_NAME) {
            Some(VectorInternal::Dense(vector)) => Some(vector),
            _ => None,
        },
        qdrant_edge::VectorStructInternal::MultiDense(_) => None,
    };
    vector.ok_or_else(|| StoreError::Corrupt("a vector point has no dense vector".into()))
}

fn key_from_payload(payload: Option<&Payload>) -> Result<(ChunkId, Version)> {
    let payload = payload.ok_or_else(|| StoreError::Corrupt("a vector point has no payload".into()))?;
    let chunk_id = payload
        .0
        .get("chunk_id")
        .and_then(|v| v.as_str())
        .and_then(ChunkId::parse)
        .ok_or_else(|| StoreError::Corrupt("a vector point has no chunk_id".into()))?;
    let valid_from = payload
        .0
        .get("valid_from")
        .and_then(|v| v.as_i64())
        .ok_or_else(|| StoreError::Corrupt("a vector point has no valid_from".into()))?;
    Ok((chunk_id, valid_from))
}
