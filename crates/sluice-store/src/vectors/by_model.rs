//! One dense index per embedding model.
//!
//! Vectors of two models cannot be compared (nor, often, stored side by side: dimensions
//! differ), so each model's points live in an index named by its fingerprint, which changes
//! whenever its vectors could (weights, pooling, precision, dimension). A model change fills a
//! new index beside the old one while `live` keeps answering from the old; promotion and
//! rollback only move `live`. Qdrant cannot add a named vector to an existing collection, hence
//! a collection (Edge: a shard) per model rather than a named vector per model. On a server an
//! alias with the configured collection name follows `live`'s model, so a retrieval service
//! keeps querying one name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sluice_config::VectorsPlan;
use sluice_core::{ChunkId, Fingerprint, PointKey, Version};
use tracing::warn;

use super::{
    DenseHit, DenseQuery, EdgeVectors, ServerConnection, ServerVectors, StoredPoint, VectorIndex, VectorPoint,
};

use crate::error::{Result, StoreError};
use crate::prelude::*;

pub struct ModelIndexes {
    backend: Backend,
    catalog: Arc<dyn Catalog>,
    pipeline: String,
    /// Model label → its index, once opened.
    open: RwLock<BTreeMap<String, Arc<dyn VectorIndex>>>,
}

enum Backend {
    /// One shard per model under this folder.
    Edge(PathBuf),
    Server(Arc<ServerConnection>),
}

/// Hex digits of a model fingerprint that name its index: 64 bits tell models apart.
const LABEL_LEN: usize = 16;

/// Whether `text` has the form of an index label (a folder or collection name's suffix).
pub(super) fn is_label(text: &str) -> bool {
    text.len() == LABEL_LEN && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The part of a model fingerprint that names its index.
pub(crate) fn label(model: &str) -> Result<&str> {
    match Fingerprint::parse(model) {
        Some(_) => Ok(&model[..LABEL_LEN.min(model.len())]),
        None => Err(StoreError::Corrupt(format!("chunks name no valid model fingerprint ({model:?})"))),
    }
}

impl ModelIndexes {
    /// The indexes of `pipeline`'s models: Edge shards under `edge_root`, or collections on
    /// the plan's server. Opens nothing yet.
    pub(crate) fn new(edge_root: &Path, plan: &VectorsPlan, catalog: Arc<dyn Catalog>, pipeline: &str) -> Result<Self> {
        let backend = match plan {
            VectorsPlan::Edge => {
                remove_single_shard(edge_root)?;
                Backend::Edge(edge_root.to_owned())
            }
            VectorsPlan::Qdrant(plan) => Backend::Server(Arc::new(ServerConnection::new(plan, &catalog.identity()?)?)),
        };
        Ok(Self { backend, catalog, pipeline: pipeline.to_owned(), open: RwLock::new(BTreeMap::new()) })
    }

    /// Which backend and where, for messages.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Edge(root) => format!("Qdrant Edge shards under {}", root.display()),
            Backend::Server(server) => server.describe(),
        }
    }

    /// Whether every open index answers now; the error says why not.
    pub fn health(&self) -> Result<()> {
        let opened = self.opened();
        match &self.backend {
            // Each open collection's health asks the server too.
            Backend::Server(server) if opened.is_empty() => server.health(),
            _ => opened.iter().try_for_each(|(_, index)| index.health()),
        }
    }

    /// The index of `model`, and whether this call opened it. An index not open yet is opened,
    /// or created with `dimension` (else the dimension of the model's cached vectors); `None`
    /// when it does not exist and no dimension is known: the model has no vectors anywhere.
    pub(crate) fn index(&self, model: &str, dimension: Option<usize>) -> Result<Option<(Arc<dyn VectorIndex>, bool)>> {
        let label = label(model)?;
        if let Some(index) = self.open.read().unwrap_or_else(|p| p.into_inner()).get(label) {
            return Ok(Some((index.clone(), false)));
        }
        let dimension = match dimension {
            Some(dimension) => Some(dimension),
            None => self.catalog.model_dimension(model)?,
        };
        if dimension.is_none() && !self.stored_labels()?.iter().any(|stored| stored == label) {
            return Ok(None);
        }
        Ok(Some(self.open_label(label, dimension)?))
    }

    /// Opens the index `label` (created with `dimension` if missing and known).
    fn open_label(&self, label: &str, dimension: Option<usize>) -> Result<(Arc<dyn VectorIndex>, bool)> {
        let mut open = self.open.write().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = open.get(label) {
            return Ok((index.clone(), false));
        }
        let index: Arc<dyn VectorIndex> = match &self.backend {
            Backend::Edge(root) => Arc::new(EdgeVectors::open_or_create(&root.join(label), dimension)?),
            Backend::Server(server) => {
                Arc::new(ServerVectors::new(server.clone(), server.model_collection(label), dimension))
            }
        };
        open.insert(label.to_owned(), index.clone());
        Ok((index, true))
    }

    /// Labels of the indexes the backend holds, whether the catalog knows their model or not.
    fn stored_labels(&self) -> Result<Vec<String>> {
        match &self.backend {
            Backend::Edge(root) => {
                let entries = match std::fs::read_dir(root) {
                    Ok(entries) => entries,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(source) => return Err(StoreError::Io { path: root.to_owned(), source }),
                };
                Ok(entries
                    .filter_map(|entry| entry.ok())
                    .filter(|entry| EdgeVectors::exists(&entry.path()))
                    .filter_map(|entry| entry.file_name().into_string().ok())
                    .filter(|name| is_label(name))
                    .collect())
            }
            Backend::Server(server) => server.model_labels(),
        }
    }

    /// The index of `model`, which must exist (the catalog lists chunks of it).
    fn existing(&self, model: &str) -> Result<Arc<dyn VectorIndex>> {
        match self.index(model, None)? {
            Some((index, _)) => Ok(index),
            None => Err(StoreError::Corrupt(format!("model {model} has chunks but no vector index"))),
        }
    }

    fn opened(&self) -> Vec<(String, Arc<dyn VectorIndex>)> {
        let open = self.open.read().unwrap_or_else(|p| p.into_inner());
        open.iter().map(|(label, index)| (label.clone(), index.clone())).collect()
    }

    /// Every index, by label: those open, those of every model with chunks in the catalog, and
    /// any other the backend holds (a crash can leave points of a model the catalog has
    /// forgotten: rollback and `verify` must see them).
    fn all(&self) -> Result<Vec<(String, Arc<dyn VectorIndex>)>> {
        for model in self.catalog.models_with_chunks(&self.pipeline)? {
            self.index(&model, None)?;
        }
        for label in self.stored_labels()? {
            // Prepared here only when found this way: an index of a catalog model is prepared
            // (and refilled when short) by the store, and must not be recreated empty here.
            let (index, opened) = self.open_label(&label, None)?;
            if opened {
                index.prepare()?;
            }
        }
        Ok(self.opened())
    }

    /// Writes points, each into its model's index (created on its model's first point).
    pub(crate) fn upsert(&self, points: &[VectorPoint<'_>]) -> Result<()> {
        // A run's points share one model: in practice one slice, passed on as it is.
        for run in points.chunk_by(|a, b| a.payload.model == b.payload.model) {
            let (index, _) = self.open_label(label(&run[0].payload.model)?, Some(run[0].vector.len()))?;
            // A no-op once ready. A collection lost meanwhile failed the write that found it
            // missing, and so the run: the next `begin` refills it before anything is written.
            index.prepare()?;
            index.upsert(run)?;
        }
        Ok(())
    }

    /// Sets `valid_to` of these (model, point) pairs.
    pub(crate) fn set_valid_to(&self, keys: &[(&str, PointKey)], valid_to: Version) -> Result<()> {
        for (model, keys) in group(keys) {
            self.existing(model)?.set_valid_to(&keys, valid_to)?;
        }
        Ok(())
    }

    /// Deletes these (model, point) pairs (retention).
    pub fn delete(&self, keys: &[(&str, PointKey)]) -> Result<()> {
        for (model, keys) in group(keys) {
            self.existing(model)?.delete(&keys)?;
        }
        Ok(())
    }

    /// Deletes these points from every model's index, whichever holds them (retention another
    /// node did, found from this node's lexical index, which does not know the models).
    pub(crate) fn delete_everywhere(&self, keys: &[PointKey]) -> Result<()> {
        self.all()?.iter().try_for_each(|(_, index)| index.delete(keys))
    }

    /// Undoes version N in every model's index.
    pub(crate) fn roll_back(&self, version: Version) -> Result<()> {
        self.all()?.iter().try_for_each(|(_, index)| index.roll_back(version))
    }

    pub(crate) fn flush(&self) -> Result<()> {
        self.opened().iter().try_for_each(|(_, index)| index.flush())
    }

    /// The nearest chunks in the index of `model`, the model that embedded the query; none
    /// when that model has no vectors.
    pub fn search(&self, model: &str, query: &DenseQuery<'_>) -> Result<Vec<DenseHit>> {
        match self.index(model, None)? {
            Some((index, _)) => index.search(query),
            None => Ok(Vec::new()),
        }
    }

    /// Chunk ids of every point visible at `version`, all models together, sorted.
    pub fn chunk_ids_visible_at(&self, version: Version) -> Result<Vec<ChunkId>> {
        let mut ids = Vec::new();
        for (_, index) in self.all()? {
            ids.extend(index.chunk_ids_visible_at(version)?);
        }
        ids.sort();
        Ok(ids)
    }

    /// Every point of every model, with the label of the index it is in (the first hex digits
    /// of its model's fingerprint), sorted by (chunk id, valid_from).
    pub fn appearances(&self) -> Result<Vec<(String, StoredPoint)>> {
        let mut all = Vec::new();
        for (label, index) in self.all()? {
            all.extend(index.appearances()?.into_iter().map(|point| (label.clone(), point)));
        }
        all.sort_by_key(|(_, point)| (point.chunk_id, point.valid_from));
        Ok(all)
    }

    /// Points stored, all models together.
    pub fn point_count(&self) -> Result<usize> {
        self.all()?.iter().map(|(_, index)| index.point_count()).sum()
    }

    /// Optimises every open index; whether anything was done.
    pub fn optimize(&self, threads: usize) -> Result<bool> {
        let mut done = false;
        for (_, index) in self.opened() {
            done |= index.optimize(threads)?;
        }
        Ok(done)
    }

    /// Points the server's alias at the collection of `model`, the model of `live` (Edge has
    /// no aliases).
    pub(crate) fn publish_live(&self, model: &str) -> Result<()> {
        match &self.backend {
            Backend::Edge(_) => Ok(()),
            Backend::Server(server) => match self.index(model, None)? {
                Some(_) => server.point_alias(&server.model_collection(label(model)?)),
                None => Ok(()),
            },
        }
    }
}

fn group<'k>(keys: &[(&'k str, PointKey)]) -> BTreeMap<&'k str, Vec<PointKey>> {
    let mut by_model: BTreeMap<&str, Vec<PointKey>> = BTreeMap::new();
    for (model, key) in keys {
        by_model.entry(model).or_default().push(*key);
    }
    by_model
}

/// Removes the single shard an earlier sluice kept for every model directly under `root`; the
/// per-model shards that replace it are refilled from the catalog.
fn remove_single_shard(root: &Path) -> Result<()> {
    if !root.join("edge_config.json").exists() {
        return Ok(());
    }
    warn!(path = %root.display(), "replacing the single Qdrant Edge shard of an earlier sluice with one shard per model");
    std::fs::remove_dir_all(root).map_err(|source| StoreError::Io { path: root.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fingerprint_prefix_names_a_model_index() {
        let model = Fingerprint::of("embed", "a model").to_hex();
        let own = label(&model).unwrap();
        assert!(is_label(own));
        // Another pipeline's collections share the prefix: `sluice-a-2024`, `sluice-a-b-<label>`.
        for suffix in ["2024", &format!("b-{own}"), "", "segments"] {
            assert!(!is_label(suffix), "{suffix:?}");
        }
        assert!(label("not a fingerprint").is_err());
    }
}
