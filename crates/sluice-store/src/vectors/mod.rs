//! The dense index behind one trait, with two backends: Qdrant Edge (Qdrant's engine
//! in-process, the embedded default) and a Qdrant server or cluster (through `qdrant-client`);
//! one index per embedding model (`by_model`).
//!
//! Each point is one appearance of a chunk (id from its `PointKey`), with its validity interval
//! and readers in the payload. Every query carries the version filter, so points of a version
//! that is still being written, or was abandoned by a crash, are never seen. Every write is
//! idempotent (deterministic point ids; payload updates by id or by filter), which is what lets
//! the commit protocol re-apply or roll back a version after a crash on either backend.

mod by_model;
mod edge;
mod server;

use serde::Serialize;
use serde_json::json;
use sluice_core::{ChunkId, DocumentFacets, DocumentMetadata, PointKey, ReadAccess, Version};

use crate::error::Result;
use crate::time_travel::Readable;

pub use by_model::ModelIndexes;
pub use edge::EdgeVectors;
pub use server::{ServerConnection, ServerVectors};

/// The named vector points carry.
const VECTOR_NAME: &str = "dense";

/// Fields with a payload index: the ones every query filters on, the ids retention and time
/// travel select by, and what search filters name (`sluice_core::filter`).
const INDEXED_FIELDS: [(&str, FieldKind); 12] = [
    ("valid_from", FieldKind::Integer),
    ("valid_to", FieldKind::Integer),
    ("chunk_id", FieldKind::Keyword),
    ("doc_id", FieldKind::Keyword),
    ("readers", FieldKind::Keyword),
    ("language", FieldKind::Keyword),
    ("formats", FieldKind::Keyword),
    ("folders", FieldKind::Keyword),
    ("source", FieldKind::Keyword),
    ("authors", FieldKind::Keyword),
    ("date", FieldKind::Integer),
    ("headings", FieldKind::Words),
];

#[derive(Clone, Copy)]
enum FieldKind {
    Integer,
    Keyword,
    /// Full text, cut into words in lower case (Qdrant's word tokenizer).
    Words,
}

/// The headings above a chunk as one text, for the `headings` payload field's word index.
fn headings_text(headings: &[String]) -> String {
    headings.join(" / ")
}

/// The dense index of one pipeline. Implementations are synchronous and may be shared between
/// the run and searches.
pub trait VectorIndex: Send + Sync {
    /// Which backend and where, for messages.
    fn describe(&self) -> String;

    /// Makes the index ready for use, creating it if it does not exist. Returns `true` when it
    /// became ready now (opened, created, or found again after it was lost), so the store
    /// checks it against the catalog; `false` when it already was. Operations before a
    /// successful `prepare` fail as unavailable.
    fn prepare(&self) -> Result<bool>;

    /// Whether the index answers now; the error says why not.
    fn health(&self) -> Result<()>;

    /// Writes points (insert or overwrite by point id). Idempotent.
    fn upsert(&self, points: &[VectorPoint<'_>]) -> Result<()>;

    /// Sets `valid_to` of these points. Idempotent.
    fn set_valid_to(&self, keys: &[PointKey], valid_to: Version) -> Result<()>;

    /// Undoes version N: deletes the points it added and reopens the ones it retired.
    fn roll_back(&self, version: Version) -> Result<()>;

    /// Deletes these points (retention). Idempotent.
    fn delete(&self, keys: &[PointKey]) -> Result<()>;

    /// Makes every update so far durable.
    fn flush(&self) -> Result<()>;

    /// The `limit` nearest chunks visible at a version and readable by its reader.
    fn search(&self, query: &DenseQuery<'_>) -> Result<Vec<DenseHit>>;

    /// Calls `each` with the payload (and the vector, if `with_vector`) of every point, or of
    /// every point visible at `visible_at`.
    fn scroll(&self, visible_at: Option<Version>, with_vector: bool, each: &mut ScrollVisitor<'_>) -> Result<()>;

    /// Chunk ids of every point visible at `version`, sorted.
    fn chunk_ids_visible_at(&self, version: Version) -> Result<Vec<ChunkId>> {
        let mut ids = Vec::new();
        self.scroll(Some(version), false, &mut |payload, _| {
            ids.push(key_from_payload(payload)?.0);
            Ok(())
        })?;
        ids.sort();
        Ok(ids)
    }

    /// Every point, sorted by (chunk id, valid_from); for `verify`.
    fn appearances(&self) -> Result<Vec<StoredPoint>> {
        let mut all = Vec::new();
        self.scroll(None, true, &mut |payload, vector| {
            all.push(stored_point(payload, vector)?);
            Ok(())
        })?;
        all.sort_by_key(|point| (point.chunk_id, point.valid_from));
        Ok(all)
    }

    /// Points stored, whatever their versions.
    fn point_count(&self) -> Result<usize>;

    /// Builds or tidies the index where the backend leaves that to its user; `threads` caps the
    /// CPU it takes. Returns whether anything was done. A server optimises by itself.
    fn optimize(&self, threads: usize) -> Result<bool>;
}

/// What [`VectorIndex::scroll`] calls for each point: its payload and (maybe empty) vector.
pub type ScrollVisitor<'a> = dyn FnMut(&serde_json::Map<String, serde_json::Value>, Vec<f32>) -> Result<()> + 'a;

static NO_METADATA: DocumentMetadata = DocumentMetadata {
    authors: Vec::new(),
    recipients: Vec::new(),
    subject: None,
    created: None,
    modified: None,
    date_in_text: None,
    mime_type: String::new(),
    file_modified: None,
};

/// A point to write: its key, vector and payload.
pub struct VectorPoint<'a> {
    pub key: PointKey,
    pub vector: &'a [f32],
    pub payload: PointPayload<'a>,
}

/// What a point carries besides its vector: everything a retrieval service needs to filter and
/// use a hit without asking sluice. The field names are an interface (README, "Query the
/// collection directly").
#[derive(Clone, Debug, Serialize)]
pub struct PointPayload<'a> {
    pub chunk_id: String,
    pub doc_id: String,
    /// The chunk is visible at version v iff `valid_from <= v < valid_to`.
    pub valid_from: Version,
    pub valid_to: Version,
    /// Principal keys that may read it (`user:alice`, `group:hr`, `everyone`, `public`).
    pub readers: &'a [String],
    pub text: &'a str,
    pub title: Option<&'a str>,
    /// The source file (`#member` for an embedded file) and its `file://` URI.
    pub path: &'a str,
    pub uri: String,
    pub page: Option<u32>,
    /// Character span in the document's normalised text.
    pub char_start: u32,
    pub char_end: u32,
    pub heading_path: &'a [String],
    /// blake3 of the document's bytes (the document version) and of the chunk's text.
    pub content_hash: String,
    pub text_hash: String,
    /// Fingerprint of the model (and precision) that made the vector.
    pub model: String,
    /// ISO 639-3 code of the chunk's language.
    pub language: Option<&'a str>,
    /// The document's metadata (authors, dates, MIME type, ...).
    pub metadata: &'a DocumentMetadata,
    /// What filters select it by: `formats`, `folders`, `source`, `authors`, `date` (seconds).
    #[serde(flatten)]
    pub facets: DocumentFacets,
}

impl<'a> PointPayload<'a> {
    /// A payload that names only the point's chunk, document and readers (tests and
    /// benchmarks; the fields a retrieval service reads are left empty).
    pub fn minimal(key: PointKey, doc_id: String, readers: &'a [String]) -> Self {
        PointPayload {
            chunk_id: key.chunk.to_hex(),
            doc_id,
            valid_from: key.valid_from,
            valid_to: sluice_core::VERSION_OPEN,
            readers,
            text: "",
            title: None,
            path: "",
            uri: String::new(),
            page: None,
            char_start: 0,
            char_end: 0,
            heading_path: &[],
            content_hash: String::new(),
            text_hash: String::new(),
            model: String::new(),
            language: None,
            metadata: &NO_METADATA,
            facets: DocumentFacets::default(),
        }
    }

    /// The whole payload as a JSON object, with the headings also as one text (`headings`,
    /// the field heading filters match words in).
    fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut map)) => {
                map.insert("headings".into(), json!(headings_text(self.heading_path)));
                map
            }
            _ => unreachable!("a payload serialises to a JSON object"),
        }
    }

    /// Only the fields queries and maintenance read (the embedded index keeps the rest in the
    /// catalog alone).
    fn keys_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert("chunk_id".into(), json!(self.chunk_id));
        map.insert("doc_id".into(), json!(self.doc_id));
        map.insert("valid_from".into(), json!(self.valid_from));
        map.insert("valid_to".into(), json!(self.valid_to));
        map.insert("readers".into(), json!(self.readers));
        map.insert("language".into(), json!(self.language));
        map.insert("headings".into(), json!(headings_text(self.heading_path)));
        for (key, value) in [
            ("formats", json!(self.facets.formats)),
            ("folders", json!(self.facets.folders)),
            ("source", json!(self.facets.source)),
            ("authors", json!(self.facets.authors)),
            ("date", json!(self.facets.date)),
        ] {
            map.insert(key.into(), value);
        }
        map
    }
}

/// A dense query at one version.
#[derive(Clone, Copy)]
pub struct DenseQuery<'a> {
    pub vector: &'a [f32],
    pub version: Version,
    pub readable: Readable<'a>,
    pub limit: usize,
    /// HNSW beam width; `exact` bypasses the graph.
    pub hnsw_ef: usize,
    pub exact: bool,
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

/// One condition of a point filter, as both Qdrant APIs can spell it.
#[derive(Clone, Debug, PartialEq)]
enum Condition {
    /// An integer field within bounds (each included when `true`).
    Range { key: &'static str, gte: Option<i64>, gt: Option<i64>, lte: Option<i64> },
    /// A keyword field holding any of these values.
    Any { key: &'static str, values: Vec<String> },
    /// A word-indexed field holding every word of this text.
    Words { key: &'static str, text: String },
}

/// "Visible at version v, readable by `access`, and what the filter asks for", as conditions that
/// must all hold and ones that must not (the documents hidden from this reader). Qdrant applies
/// them while it searches the graph, so the nearest readable matching chunks come back, not what
/// is left of the nearest ones.
fn readable_conditions(version: Version, readable: &Readable<'_>) -> (Vec<Condition>, Vec<Condition>) {
    let mut must = vec![
        Condition::Range { key: "valid_from", gte: None, gt: None, lte: Some(version) },
        Condition::Range { key: "valid_to", gte: None, gt: Some(version), lte: None },
    ];
    if let ReadAccess::Keys(keys) = readable.access {
        must.push(Condition::Any { key: "readers", values: keys.clone() });
    }
    let filter = readable.filter;
    for (key, values) in [
        ("language", &filter.languages),
        ("formats", &filter.formats),
        ("source", &filter.sources),
        ("authors", &filter.authors),
    ] {
        if !values.is_empty() {
            must.push(Condition::Any { key, values: values.clone() });
        }
    }
    if let Some(folder) = &filter.folder {
        must.push(Condition::Any { key: "folders", values: vec![folder.clone()] });
    }
    if filter.date_from.is_some() || filter.date_to.is_some() {
        must.push(Condition::Range { key: "date", gte: filter.date_from, gt: None, lte: filter.date_to });
    }
    if !filter.heading_words.is_empty() {
        must.push(Condition::Words { key: "headings", text: filter.heading_words.join(" ") });
    }
    let must_not = if readable.hidden_docs.is_empty() {
        Vec::new()
    } else {
        vec![Condition::Any { key: "doc_id", values: readable.hidden_docs.to_vec() }]
    };
    (must, must_not)
}

/// [`readable_conditions`] as Qdrant's REST filter JSON (the form the README documents).
fn readable_filter_json(version: Version, readable: &Readable<'_>) -> serde_json::Value {
    let json_of = |condition: &Condition| match condition {
        Condition::Range { key, gte, gt, lte } => {
            let mut range = serde_json::Map::new();
            for (name, bound) in [("gte", gte), ("gt", gt), ("lte", lte)] {
                if let Some(bound) = bound {
                    range.insert(name.into(), json!(bound));
                }
            }
            json!({"key": key, "range": range})
        }
        Condition::Any { key, values } => json!({"key": key, "match": {"any": values}}),
        Condition::Words { key, text } => json!({"key": key, "match": {"text": text}}),
    };
    let (must, must_not) = readable_conditions(version, readable);
    let must: Vec<_> = must.iter().map(json_of).collect();
    if must_not.is_empty() {
        return json!({ "must": must });
    }
    json!({ "must": must, "must_not": must_not.iter().map(json_of).collect::<Vec<_>>() })
}

/// A point's chunk appearance, read back from its payload.
fn key_from_payload(payload: &serde_json::Map<String, serde_json::Value>) -> Result<(ChunkId, Version)> {
    let chunk_id = payload
        .get("chunk_id")
        .and_then(|v| v.as_str())
        .and_then(ChunkId::parse)
        .ok_or_else(|| corrupt("a vector point has no chunk_id"))?;
    let valid_from = payload
        .get("valid_from")
        .and_then(|v| v.as_i64())
        .ok_or_else(|| corrupt("a vector point has no valid_from"))?;
    Ok((chunk_id, valid_from))
}

/// A stored point from its payload and vector.
fn stored_point(payload: &serde_json::Map<String, serde_json::Value>, vector: Vec<f32>) -> Result<StoredPoint> {
    let (chunk_id, valid_from) = key_from_payload(payload)?;
    let valid_to =
        payload.get("valid_to").and_then(|v| v.as_i64()).ok_or_else(|| corrupt("a vector point has no valid_to"))?;
    let readers = payload
        .get("readers")
        .and_then(|v| v.as_array())
        .map(|keys| keys.iter().filter_map(|key| key.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    Ok(StoredPoint { chunk_id, valid_from, valid_to, readers, vector })
}

fn corrupt(message: &str) -> crate::StoreError {
    crate::StoreError::Corrupt(message.into())
}
