//! A Qdrant server or cluster, through `qdrant-client` (gRPC): one collection per pipeline and
//! model (see `by_model`), whose points carry the whole [`PointPayload`](super::PointPayload), so
//! retrieval services can query it with any Qdrant client.
//!
//! Every write waits until the server has applied it (`wait`), with strong write ordering
//! across replicas, so what a commit relies on is on the server before the catalog commits.
//! The collection names the catalog that created it in its metadata; another catalog's
//! collection is refused rather than mixed with.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use qdrant_client::qdrant::{
    BinaryQuantizationBuilder, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter, GetCollectionInfoRequest,
    PointId, PointStruct, PointsIdsList, QueryPointsBuilder, Range, ScalarQuantizationBuilder, ScrollPointsBuilder,
    SearchParamsBuilder, SetPayloadPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder, VectorsConfigBuilder,
    WriteOrdering, WriteOrderingType, point_id::PointIdOptions, points_selector::PointsSelectorOneOf,
    vector_output::Vector,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use serde_json::json;
use sluice_config::{QdrantPlan, Quantization};
use sluice_core::{PointKey, VERSION_OPEN, Version};

use super::{
    DenseHit, DenseQuery, FieldKind, INDEXED_FIELDS, ScrollVisitor, VECTOR_NAME, VectorIndex, VectorPoint,
    key_from_payload,
};
use crate::error::{Result, StoreError};
use crate::time_travel::Readable;

/// Points per write request: keeps each message well under gRPC's limits.
const WRITE_BATCH: usize = 256;

/// The metadata key naming the catalog a collection belongs to.
const OWNER_KEY: &str = "sluice_catalog";

/// One connection to a Qdrant server, shared by the collections of a pipeline's models.
pub struct ServerConnection {
    client: Qdrant,
    /// The client's own runtime: the store is synchronous and may be called from inside the
    /// daemon's runtime, where blocking on a future of that runtime would deadlock or panic.
    runtime: tokio::runtime::Runtime,
    plan: QdrantPlan,
    /// The catalog's identity, written into the metadata of the collections sluice creates.
    catalog_id: String,
}

impl ServerConnection {
    /// A client for the plan's server. Connects lazily: nothing is asked of the server until
    /// a collection is prepared.
    pub fn new(plan: &QdrantPlan, catalog_id: &str) -> Result<Self> {
        let api_key = match &plan.api_key_env {
            Some(name) => Some(std::env::var(name).map_err(|_| {
                StoreError::Invalid(format!("store.qdrant.api_key_env names {name}, which is not set"))
            })?),
            None => None,
        };
        let client = Qdrant::from_url(&plan.url)
            .api_key(api_key)
            .timeout(plan.timeout)
            .connect_timeout(plan.connect_timeout)
            .skip_compatibility_check()
            .build()
            .map_err(|err| StoreError::Invalid(format!("store.qdrant.url {}: {err}", plan.url)))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("qdrant-client")
            .enable_all()
            .build()
            .map_err(|source| StoreError::Io { path: "qdrant-client runtime".into(), source })?;
        Ok(Self { client, runtime, plan: plan.clone(), catalog_id: catalog_id.to_owned() })
    }

    pub fn describe(&self) -> String {
        format!("Qdrant server {} collection alias {}", self.plan.url, self.plan.collection)
    }

    /// The collection of the model whose fingerprint starts with `label`.
    pub fn model_collection(&self, label: &str) -> String {
        format!("{}-{label}", self.plan.collection)
    }

    /// The labels of the model collections on the server, whatever the catalog says.
    pub fn model_labels(&self) -> Result<Vec<String>> {
        let client = self.client.clone();
        let collections = self.call(&self.plan.collection, async move { client.list_collections().await })?;
        let prefix = format!("{}-", self.plan.collection);
        Ok(collections
            .collections
            .into_iter()
            .filter_map(|description| description.name.strip_prefix(&prefix).map(str::to_owned))
            // Another pipeline's collection may share the prefix (`sluice-a` and `sluice-a-b`).
            .filter(|label| super::by_model::is_label(label))
            .collect())
    }

    /// Whether the server answers.
    pub fn health(&self) -> Result<()> {
        let client = self.client.clone();
        self.call(&self.plan.collection, async move { client.health_check().await }).map(drop)
    }

    /// Points the alias named `store.qdrant.collection` at `collection` (one atomic change on
    /// the server, so a client never sees the alias missing). A collection of that name left by
    /// an earlier sluice, which kept every model in one collection, is deleted first: the
    /// per-model collections were refilled from the catalog before this is called.
    pub fn point_alias(&self, collection: &str) -> Result<()> {
        let alias = self.plan.collection.clone();
        let client = self.client.clone();
        let collections = self.call(&alias, async move { client.list_collections().await })?;
        if collections.collections.iter().any(|description| description.name == alias) {
            let info = collection_info(self, &alias)?;
            check_owner(self, &alias, &info)?;
            tracing::warn!(collection = %alias, "deleting the single collection an earlier sluice kept; the per-model collections and an alias replace it");
            let client = self.client.clone();
            let name = alias.clone();
            self.call(&alias, async move { client.delete_collection(name).await })?;
        }
        let request = qdrant_client::qdrant::CreateAliasBuilder::new(collection, &alias);
        let client = self.client.clone();
        self.call(&alias, async move { client.create_alias(request).await })?;
        Ok(())
    }

    /// Runs a client call on the client's runtime and waits for it, from any thread.
    fn call<T, F>(&self, collection: &str, request: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, QdrantError>> + Send + 'static,
    {
        let (answer, receive) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = answer.send(request.await);
        });
        let result = receive.recv().map_err(|_| StoreError::Unavailable("the Qdrant client stopped".into()))?;
        result.map_err(|err| classify(&self.plan.url, collection, err))
    }
}

/// One model's collection on a Qdrant server.
pub struct ServerVectors {
    server: Arc<ServerConnection>,
    collection: String,
    /// The model's dimension; `None` for a collection found on the server whose model the
    /// catalog no longer knows (it takes the collection's).
    dimension: Option<usize>,
    /// Whether the collection is known to exist and belong to this catalog. Only
    /// [`VectorIndex::prepare`] creates it, so that a collection lost under a running daemon is
    /// refilled by the store rather than silently recreated empty.
    ready: AtomicBool,
    /// Serialises checking and creating the collection.
    preparing: Mutex<()>,
}

impl ServerVectors {
    /// The collection `collection` of `dimension`-dimensional vectors (created if missing only
    /// when the dimension is known). Nothing is asked of the server until
    /// [`VectorIndex::prepare`].
    pub fn new(server: Arc<ServerConnection>, collection: String, dimension: Option<usize>) -> Self {
        Self { server, collection, dimension, ready: AtomicBool::new(false), preparing: Mutex::new(()) }
    }

    fn create_collection(&self) -> Result<()> {
        let plan = &self.server.plan;
        let Some(dimension) = self.dimension else {
            return Err(StoreError::Corrupt(format!("Qdrant collection {} is gone", self.collection)));
        };
        let vector = VectorParamsBuilder::new(dimension as u64, Distance::Cosine).on_disk(plan.on_disk_vectors);
        let mut vectors = VectorsConfigBuilder::default();
        vectors.add_named_vector_params(VECTOR_NAME, vector);
        let metadata = HashMap::from([
            (OWNER_KEY.to_owned(), json!(self.server.catalog_id)),
            ("created_by".to_owned(), json!("sluice")),
        ]);
        let mut request = CreateCollectionBuilder::new(&self.collection)
            .vectors_config(vectors)
            .shard_number(plan.shards)
            .replication_factor(plan.replication_factor)
            .write_consistency_factor(plan.write_consistency_factor)
            .on_disk_payload(plan.on_disk_payload)
            .metadata(metadata);
        request = match plan.quantization {
            Quantization::None => request,
            Quantization::Int8 => request.quantization_config(
                ScalarQuantizationBuilder::default()
                    .r#type(qdrant_client::qdrant::QuantizationType::Int8.into())
                    .always_ram(true),
            ),
            Quantization::Binary => request.quantization_config(BinaryQuantizationBuilder::new(true)),
        };
        let client = self.server.client.clone();
        self.call(async move { client.create_collection(request).await })?;
        Ok(())
    }

    /// Creates the payload indexes the collection lacks (all of them after a creation; any a
    /// crash between creation and indexing left out).
    fn ensure_indexes(&self, existing: &HashMap<String, qdrant_client::qdrant::PayloadSchemaInfo>) -> Result<()> {
        for (field, kind) in INDEXED_FIELDS {
            if existing.contains_key(field) {
                continue;
            }
            let kind = match kind {
                FieldKind::Integer => FieldType::Integer,
                FieldKind::Keyword => FieldType::Keyword,
                FieldKind::Words => FieldType::Text,
            };
            let request = CreateFieldIndexCollectionBuilder::new(&self.collection, field, kind).wait(true);
            let client = self.server.client.clone();
            self.call(async move { client.create_field_index(request).await })?;
        }
        Ok(())
    }

    /// Refuses a collection another catalog (or someone else) created, or one whose vectors have
    /// another dimension than the model's.
    fn check_collection(&self, info: &qdrant_client::qdrant::CollectionInfo) -> Result<()> {
        use qdrant_client::qdrant::vectors_config::Config;
        let config = info.config.as_ref();
        let size = match config.and_then(|c| c.params.as_ref()).and_then(|p| p.vectors_config.as_ref()) {
            Some(qdrant_client::qdrant::VectorsConfig { config: Some(Config::ParamsMap(map)) }) => {
                map.map.get(VECTOR_NAME).map(|params| params.size)
            }
            _ => None,
        };
        if size.is_none() || self.dimension.is_some_and(|dimension| size != Some(dimension as u64)) {
            return Err(StoreError::Invalid(format!(
                "Qdrant collection {} holds {size:?}-dimensional `{VECTOR_NAME}` vectors, the model makes {:?}",
                self.collection, self.dimension
            )));
        }
        check_owner(&self.server, &self.collection, info)
    }

    /// Runs a client call; a missing collection makes this one unready (to be prepared, and
    /// refilled, again).
    fn call<T, F>(&self, request: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, QdrantError>> + Send + 'static,
    {
        self.server.call(&self.collection, request).inspect_err(|err| {
            if matches!(err, StoreError::Corrupt(_)) {
                self.ready.store(false, Ordering::SeqCst);
            }
        })
    }

    /// The collection, once [`VectorIndex::prepare`] found or made it.
    fn collection(&self) -> Result<String> {
        if self.ready.load(Ordering::SeqCst) {
            return Ok(self.collection.clone());
        }
        Err(StoreError::Unavailable(format!(
            "Qdrant collection {} at {} is not ready (the server was unreachable, or the collection is being \
             refilled)",
            self.collection, self.server.plan.url
        )))
    }

    /// Sets `valid_to` on the points `selector` picks.
    fn set_valid_to_where(&self, selector: impl Into<PointsSelectorOneOf>, valid_to: Version) -> Result<()> {
        let payload = Payload::try_from(json!({ "valid_to": valid_to })).expect("a JSON object");
        let request = SetPayloadPointsBuilder::new(self.collection()?, payload)
            .points_selector(selector)
            .wait(true)
            .ordering(strong());
        let client = self.server.client.clone();
        self.call(async move { client.set_payload(request).await })?;
        Ok(())
    }
}

impl VectorIndex for ServerVectors {
    fn describe(&self) -> String {
        format!("Qdrant server {} collection {}", self.server.plan.url, self.collection)
    }

    /// Makes sure the collection exists and is this catalog's, creating it (with its payload
    /// indexes) if it does not.
    fn prepare(&self) -> Result<bool> {
        let _serial = self.preparing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.ready.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let name = self.collection.clone();
        let client = self.server.client.clone();
        if !self.call(async move { client.collection_exists(name).await })? {
            self.create_collection()?;
        }
        let info = collection_info(&self.server, &self.collection)?;
        self.check_collection(&info)?;
        self.ensure_indexes(&info.payload_schema)?;
        self.ready.store(true, Ordering::SeqCst);
        Ok(true)
    }

    fn health(&self) -> Result<()> {
        self.server.health()?;
        self.collection().map(drop)
    }

    fn upsert(&self, points: &[VectorPoint<'_>]) -> Result<()> {
        let collection = self.collection()?;
        for batch in points.chunks(WRITE_BATCH) {
            let batch: Vec<PointStruct> = batch
                .iter()
                .map(|point| {
                    let vectors = HashMap::from([(VECTOR_NAME.to_owned(), point.vector.to_vec())]);
                    PointStruct::new(point_id(&point.key), vectors, Payload::from(point.payload.to_json()))
                })
                .collect();
            let request = UpsertPointsBuilder::new(&collection, batch).wait(true).ordering(strong());
            let client = self.server.client.clone();
            self.call(async move { client.upsert_points(request).await })?;
        }
        Ok(())
    }

    fn set_valid_to(&self, keys: &[PointKey], valid_to: Version) -> Result<()> {
        for batch in keys.chunks(4096) {
            self.set_valid_to_where(ids(batch), valid_to)?;
        }
        Ok(())
    }

    fn roll_back(&self, version: Version) -> Result<()> {
        let added = Filter::must([Condition::matches("valid_from", version)]);
        let request = DeletePointsBuilder::new(self.collection()?).points(added).wait(true).ordering(strong());
        let client = self.server.client.clone();
        self.call(async move { client.delete_points(request).await })?;
        self.set_valid_to_where(Filter::must([Condition::matches("valid_to", version)]), VERSION_OPEN)
    }

    fn delete(&self, keys: &[PointKey]) -> Result<()> {
        let collection = self.collection()?;
        for batch in keys.chunks(4096) {
            let request = DeletePointsBuilder::new(&collection).points(ids(batch)).wait(true).ordering(strong());
            let client = self.server.client.clone();
            self.call(async move { client.delete_points(request).await })?;
        }
        Ok(())
    }

    /// Every write already waited until the server applied it (and logged it in its WAL).
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn search(&self, query: &DenseQuery<'_>) -> Result<Vec<DenseHit>> {
        let readable = query.readable;
        let request = QueryPointsBuilder::new(self.collection()?)
            .query(query.vector.to_vec())
            .using(VECTOR_NAME)
            .filter(readable_filter(query.version, &readable))
            .limit(query.limit as u64)
            .params(SearchParamsBuilder::default().hnsw_ef(query.hnsw_ef as u64).exact(query.exact))
            .with_payload(true);
        let client = self.server.client.clone();
        let answer = self.call(async move { client.query(request).await })?;
        answer
            .result
            .into_iter()
            .map(|point| {
                let (chunk_id, valid_from) = key_from_payload(&Payload::from(point.payload).into())?;
                Ok(DenseHit { chunk_id, valid_from, score: point.score })
            })
            .collect()
    }

    fn scroll(&self, visible_at: Option<Version>, with_vector: bool, each: &mut ScrollVisitor<'_>) -> Result<()> {
        let collection = self.collection()?;
        let filter = visible_at.map(|version| readable_filter(version, &Readable::unrestricted()));
        let mut offset: Option<PointId> = None;
        loop {
            let mut request =
                ScrollPointsBuilder::new(&collection).limit(1024).with_payload(true).with_vectors(with_vector);
            if let Some(filter) = &filter {
                request = request.filter(filter.clone());
            }
            if let Some(offset) = offset.take() {
                request = request.offset(offset);
            }
            let client = self.server.client.clone();
            let page = self.call(async move { client.scroll(request).await })?;
            for point in page.result {
                let vector = match point.vectors.as_ref().and_then(|v| v.get_vector_by_name(VECTOR_NAME)) {
                    Some(Vector::Dense(dense)) => dense.data,
                    _ if with_vector => return Err(StoreError::Corrupt("a vector point has no dense vector".into())),
                    _ => Vec::new(),
                };
                each(&Payload::from(point.payload).into(), vector)?;
            }
            match page.next_page_offset {
                Some(next) => offset = Some(next),
                None => return Ok(()),
            }
        }
    }

    fn point_count(&self) -> Result<usize> {
        let request = CountPointsBuilder::new(self.collection()?).exact(true);
        let client = self.server.client.clone();
        let answer = self.call(async move { client.count(request).await })?;
        Ok(answer.result.map_or(0, |count| count.count as usize))
    }

    /// The server builds its HNSW graphs and vacuums in the background by itself.
    fn optimize(&self, _threads: usize) -> Result<bool> {
        Ok(false)
    }
}

/// [`super::readable_conditions`] as the gRPC API spells them.
fn readable_filter(version: Version, readable: &Readable<'_>) -> Filter {
    let grpc = |condition: super::Condition| match condition {
        super::Condition::Range { key, gte, gt, lte } => {
            let bound = |value: Option<i64>| value.map(|value| value as f64);
            Condition::range(key, Range { gte: bound(gte), gt: bound(gt), lte: bound(lte), ..Range::default() })
        }
        super::Condition::Any { key, values } => Condition::matches(key, values),
        super::Condition::Words { key, text } => Condition::matches_text(key, text),
    };
    let (must, must_not) = super::readable_conditions(version, readable);
    Filter {
        must: must.into_iter().map(grpc).collect(),
        must_not: must_not.into_iter().map(grpc).collect(),
        ..Filter::default()
    }
}

fn point_id(key: &PointKey) -> PointId {
    PointId { point_id_options: Some(PointIdOptions::Uuid(key.uuid().to_string())) }
}

fn ids(keys: &[PointKey]) -> PointsIdsList {
    PointsIdsList { ids: keys.iter().map(point_id).collect() }
}

fn collection_info(server: &ServerConnection, collection: &str) -> Result<qdrant_client::qdrant::CollectionInfo> {
    let client = server.client.clone();
    let request = GetCollectionInfoRequest { collection_name: collection.to_owned() };
    let info = server.call(collection, async move { client.collection_info(request).await })?;
    info.result.ok_or_else(|| StoreError::Corrupt(format!("Qdrant gave no info on {collection}")))
}

/// Refuses a collection another catalog (or someone else) created.
fn check_owner(
    server: &ServerConnection,
    collection: &str,
    info: &qdrant_client::qdrant::CollectionInfo,
) -> Result<()> {
    let owner =
        info.config.as_ref().and_then(|config| config.metadata.get(OWNER_KEY).cloned()).map(serde_json::Value::from);
    match owner {
        Some(serde_json::Value::String(owner)) if owner == server.catalog_id => Ok(()),
        Some(owner) => Err(StoreError::Invalid(format!(
            "Qdrant collection {collection} belongs to another sluice catalog ({owner}); set store.qdrant.collection \
             to another name"
        ))),
        None => Err(StoreError::Invalid(format!(
            "Qdrant collection {collection} was not created by sluice; set store.qdrant.collection to another name"
        ))),
    }
}

/// Writes go through each shard's leader, so replicas apply them in one order.
fn strong() -> WriteOrdering {
    WriteOrdering { r#type: WriteOrderingType::Strong.into() }
}

/// Sorts the client's errors into the store's kinds: a server that cannot be reached, is
/// overloaded or timed out is worth retrying; a missing collection or a refused request is not.
fn classify(url: &str, collection: &str, err: QdrantError) -> StoreError {
    use tonic::Code;
    let status = match &err {
        QdrantError::ResponseError { status } | QdrantError::ResourceExhaustedError { status, .. } => status,
        _ => return StoreError::Vectors { backend: "Qdrant server", message: err.to_string(), transient: false },
    };
    let message = format!("{url} ({collection}): {}", status.message());
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted | Code::Cancelled => {
            StoreError::Unavailable(message)
        }
        // The client reports a connection it could not make as an internal error of its own.
        Code::Unknown | Code::Internal
            if status.message().starts_with("Failed to connect") || status.message().contains("transport error") =>
        {
            StoreError::Unavailable(message)
        }
        Code::NotFound => StoreError::Corrupt(format!("Qdrant collection is gone: {message}")),
        Code::InvalidArgument | Code::FailedPrecondition | Code::Unauthenticated | Code::PermissionDenied => {
            StoreError::Invalid(format!("Qdrant server refused a request: {message}"))
        }
        _ => StoreError::Vectors { backend: "Qdrant server", message, transient: true },
    }
}
