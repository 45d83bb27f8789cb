//! Qdrant Edge: Qdrant's own engine in-process, one shard per pipeline under the data
//! directory. Points carry only the fields queries and maintenance read; the chunk text and
//! its metadata stay in the catalog.

use std::path::Path;

use qdrant_edge::{
    CountRequest, CreateIndex, EdgeConfigBuilder, EdgeShard, EdgeVectorParamsBuilder, FieldIndexOperations, Filter,
    NamedQuery, Payload, PayloadFieldSchema, PayloadOps, PayloadSchemaType, PointId, PointInsertOperations,
    PointOperations, PointStruct, QueryEnum, QueryRequest, ScoringQuery, ScrollRequest, SearchParams, SetPayloadOp,
    UpdateOperation, VectorInternal, WithPayloadInterface, WithVector,
};
use serde_json::json;
use sluice_core::{PointKey, VERSION_OPEN, Version};

use super::{
    DenseHit, DenseQuery, FieldKind, INDEXED_FIELDS, ScrollVisitor, VECTOR_NAME, VectorIndex, VectorPoint,
    key_from_payload, readable_filter_json,
};
use crate::error::{Result, StoreError};
use crate::time_travel::Readable;

pub struct EdgeVectors {
    shard: EdgeShard,
    path: std::path::PathBuf,
    /// Opened, until the store has been told so by `prepare`.
    opened: std::sync::atomic::AtomicBool,
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

impl EdgeVectors {
    /// Opens the shard at `path`, creating it (with its payload indexes) if it does not exist.
    pub fn open(path: &Path, dimension: usize) -> Result<Self> {
        Self::open_or_create(path, Some(dimension))
    }

    /// Whether a shard exists at `path`.
    pub fn exists(path: &Path) -> bool {
        path.join("edge_config.json").exists()
    }

    /// Opens the shard at `path`; creates it when `dimension` is given, else it must exist.
    pub fn open_or_create(path: &Path, dimension: Option<usize>) -> Result<Self> {
        let shard = if Self::exists(path) {
            EdgeShard::load(path, None)?
        } else if let Some(dimension) = dimension {
            let vectors = EdgeVectorParamsBuilder::new(dimension, qdrant_edge::Distance::Cosine).build();
            let config = EdgeConfigBuilder::new()
                .vector(VECTOR_NAME, vectors)
                .payload_memory(qdrant_edge::Memory::Cached)
                .build();
            EdgeShard::new(path, config)?
        } else {
            return Err(StoreError::Corrupt(format!("vector index {} is gone", path.display())));
        };
        // Every payload index this build filters on, including ones added since the shard was made.
        let existing = shard.info()?.payload_schema;
        let mut created = false;
        for (field, kind) in INDEXED_FIELDS {
            if existing.keys().any(|key| key.to_string() == field) {
                continue;
            }
            let schema = match kind {
                FieldKind::Integer => PayloadSchemaType::Integer,
                FieldKind::Keyword => PayloadSchemaType::Keyword,
                FieldKind::Words => PayloadSchemaType::Text,
            };
            shard.update(UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(CreateIndex {
                field_name: field.try_into().map_err(|_| StoreError::Invalid(format!("bad field {field}")))?,
                field_schema: Some(PayloadFieldSchema::FieldType(schema)),
            })))?;
            created = true;
        }
        if created {
            shard.flush()?;
        }
        let stored = shard.config().vectors.get(VECTOR_NAME).map(|params| params.size);
        if stored.is_none() || dimension.is_some_and(|dimension| stored != Some(dimension)) {
            return Err(StoreError::Invalid(format!(
                "vector index {} holds {stored:?}-dimensional vectors, the model makes {dimension:?}",
                path.display()
            )));
        }
        Ok(Self { shard, path: path.to_owned(), opened: true.into() })
    }
}

impl VectorIndex for EdgeVectors {
    fn describe(&self) -> String {
        format!("Qdrant Edge shard {}", self.path.display())
    }

    /// The shard was opened (or created) by `open`.
    fn prepare(&self) -> Result<bool> {
        Ok(self.opened.swap(false, std::sync::atomic::Ordering::SeqCst))
    }

    fn health(&self) -> Result<()> {
        Ok(())
    }

    fn upsert(&self, points: &[VectorPoint<'_>]) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let points = points
            .iter()
            .map(|point| {
                let vectors = std::collections::HashMap::from([(VECTOR_NAME.to_owned(), point.vector.to_vec())]);
                let payload = serde_json::Value::Object(point.payload.keys_json());
                PointStruct::new(PointId::Uuid(point.key.uuid()), vectors, payload).into()
            })
            .collect();
        self.shard.update(UpdateOperation::PointOperation(PointOperations::UpsertPoints(
            PointInsertOperations::PointsList(points),
        )))?;
        Ok(())
    }

    fn set_valid_to(&self, keys: &[PointKey], valid_to: Version) -> Result<()> {
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

    fn roll_back(&self, version: Version) -> Result<()> {
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

    fn delete(&self, keys: &[PointKey]) -> Result<()> {
        for batch in keys.chunks(4096) {
            let ids = batch.iter().map(|key| PointId::Uuid(key.uuid())).collect();
            self.shard.update(UpdateOperation::PointOperation(PointOperations::DeletePoints { ids }))?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.shard.flush()?;
        Ok(())
    }

    fn search(&self, query: &DenseQuery<'_>) -> Result<Vec<DenseHit>> {
        let readable = query.readable;
        let request = QueryRequest {
            prefetches: Vec::new(),
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                query: VectorInternal::from(query.vector.to_vec()),
                using: Some(VECTOR_NAME.into()),
            }))),
            filter: Some(filter(readable_filter_json(query.version, &readable))),
            score_threshold: None,
            limit: query.limit,
            offset: 0,
            params: Some(SearchParams { hnsw_ef: Some(query.hnsw_ef), exact: query.exact, ..SearchParams::default() }),
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(true),
        };
        let empty = serde_json::Map::new();
        self.shard
            .query(request)?
            .into_iter()
            .map(|point| {
                let (chunk_id, valid_from) = key_from_payload(point.payload.as_ref().map_or(&empty, |p| &p.0))?;
                Ok(DenseHit { chunk_id, valid_from, score: point.score })
            })
            .collect()
    }

    fn scroll(&self, visible_at: Option<Version>, with_vector: bool, each: &mut ScrollVisitor<'_>) -> Result<()> {
        let filter = visible_at.map(|version| filter(readable_filter_json(version, &Readable::unrestricted())));
        let mut offset = None;
        let empty = serde_json::Map::new();
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
                each(record.payload.as_ref().map_or(&empty, |payload| &payload.0), vector)?;
            }
            match next {
                Some(next) => offset = Some(next),
                None => return Ok(()),
            }
        }
    }

    fn point_count(&self) -> Result<usize> {
        Ok(self.shard.count(CountRequest { filter: None, exact: true })?)
    }

    /// Builds the HNSW index for segments big enough to need one, merges small segments and
    /// vacuums deleted points. Blocking, and can take a while: `threads` caps the CPU it uses so
    /// searches and the next run keep the rest.
    fn optimize(&self, threads: usize) -> Result<bool> {
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
