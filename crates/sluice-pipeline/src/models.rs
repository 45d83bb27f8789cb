//! The model each version was embedded with, and an embedder for it.
//!
//! A query must be embedded by the model that embedded the version it reads: after a model
//! change, the new model fills a new version beside the old ones (each chunk appearance keeps
//! the vector it was written with), and `live` stays on an old version until the evaluation
//! gate or an operator moves it. Versions are immutable, so a version's model is looked up
//! once; an earlier model is loaded on first need from the settings the catalog recorded
//! under its fingerprint, and checked to reproduce that fingerprint.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sluice_core::{DevicePreference, Precision, Version};
use sluice_embed::{EmbedOptions, Embedder};
use sluice_store::Store;
use tracing::{info, warn};

use crate::PipelineError;

pub(crate) struct QueryModels {
    /// The model runs embed with now.
    current: Arc<Embedder>,
    models_dir: PathBuf,
    device: DevicePreference,
    /// Version → fingerprint of the model that embedded it (`None`: the version is empty).
    by_version: Mutex<HashMap<Version, Option<String>>>,
    /// Earlier models, loaded on first need, by fingerprint.
    earlier: Mutex<HashMap<String, Arc<Embedder>>>,
}

impl QueryModels {
    pub(crate) fn new(current: Arc<Embedder>, models_dir: PathBuf, device: DevicePreference) -> Self {
        Self {
            current,
            models_dir,
            device,
            by_version: Mutex::new(HashMap::new()),
            earlier: Mutex::new(HashMap::new()),
        }
    }

    /// The embedder for queries at committed `version`.
    pub(crate) fn for_version(&self, store: &Store, version: Version) -> Result<Arc<Embedder>, PipelineError> {
        let current = self.current.fingerprint().to_hex();
        let model = self.model_of(store, version, &current)?;
        match model {
            Some(model) if model != current => self.earlier_model(store, version, &model),
            _ => Ok(self.current.clone()),
        }
    }

    /// The fingerprint of the model that embedded `version`'s chunks. A version that mixes
    /// models (written before runs widened to every source on a model change) answers with
    /// the current model if it is among them.
    fn model_of(&self, store: &Store, version: Version, current: &str) -> Result<Option<String>, PipelineError> {
        if let Some(model) = self.by_version.lock().unwrap_or_else(|p| p.into_inner()).get(&version) {
            return Ok(model.clone());
        }
        let models = store.catalog().models_at(store.pipeline(), version)?;
        let model = match models.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            several => {
                warn!(version, models = ?several, "a version mixes embedding models; its dense results are approximate");
                Some(several.iter().find(|model| *model == current).unwrap_or(&several[0]).clone())
            }
        };
        self.by_version.lock().unwrap_or_else(|p| p.into_inner()).insert(version, model.clone());
        Ok(model)
    }

    /// Loads (once) the model with fingerprint `model`, from the settings recorded under it.
    fn earlier_model(&self, store: &Store, version: Version, model: &str) -> Result<Arc<Embedder>, PipelineError> {
        let mut earlier = self.earlier.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(embedder) = earlier.get(model) {
            return Ok(embedder.clone());
        }
        let unusable = |why: String| {
            PipelineError::Conflict(format!(
                "version {version} was embedded by model {model}, which cannot answer queries here: {why}; search it \
                 with mode=lexical, or move live to a version of the current model"
            ))
        };
        let settings =
            store.catalog().stage_settings(model)?.ok_or_else(|| unusable("its settings were not recorded".into()))?;
        let name = settings["model"].as_str().ok_or_else(|| unusable("its recorded settings name no model".into()))?;
        let precision = settings["precision"].as_str().and_then(Precision::parse).unwrap_or(Precision::F32);
        let options = EmbedOptions { device: self.device, precision };
        let embedder =
            Embedder::load_named(&self.models_dir, name, options).map_err(|err| unusable(err.to_string()))?;
        if embedder.fingerprint().to_hex() != model {
            return Err(unusable(format!(
                "model {name} in {precision} now has fingerprint {} (its files or the code changed)",
                embedder.fingerprint()
            )));
        }
        info!(version, model = name, %precision, "loaded an earlier model for queries at the versions it embedded");
        let embedder = Arc::new(embedder);
        earlier.insert(model.to_owned(), embedder.clone());
        Ok(embedder)
    }
}
