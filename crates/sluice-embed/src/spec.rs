//! `model.toml`: what a model is and which exact files make it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use sluice_core::Fingerprint;

use crate::EmbedError;

pub const DEFAULT_MODEL: &str = "all-minilm-l6-v2";

/// Pins compiled into the binary, so a models folder filled by hand needs only the weights.
const BUILT_IN: &[(&str, &str)] = &[(DEFAULT_MODEL, include_str!("../../../models/all-minilm-l6-v2/model.toml"))];

/// Version of the embedding code path (pooling, normalisation, truncation); part of the model
/// fingerprint, so a change to how vectors are computed invalidates the embedding cache.
const EMBED_CODE_VERSION: &str = "1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean of the token vectors, weighted by the attention mask.
    Mean,
    /// The first token's vector.
    Cls,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    pub architecture: String,
    pub dimension: usize,
    /// Longest input in tokens, special tokens included.
    pub max_tokens: usize,
    pub pooling: Pooling,
    pub normalize: bool,
    /// Keep only the first N dimensions of each vector (before normalising): models trained
    /// for it (Matryoshka) trade a little quality for smaller, faster indexes.
    #[serde(default)]
    pub truncate_dim: Option<usize>,
    pub source: PipSource,
    /// File name → sha256 (lowercase hex).
    pub files: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipSource {
    pub pip_package: String,
    pub pip_version: String,
    pub wheel_folder: String,
}

impl ModelSpec {
    /// `models_dir/name/model.toml` when it exists, else the built-in pin of that name.
    pub fn resolve(models_dir: &Path, name: &str) -> Result<Self, EmbedError> {
        let path = models_dir.join(name).join("model.toml");
        let (text, origin) = match std::fs::read_to_string(&path) {
            Ok(text) => (text, path.clone()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let built_in = BUILT_IN.iter().find(|(pinned, _)| *pinned == name);
                let Some((_, text)) = built_in else {
                    return Err(EmbedError::UnknownModel { name: name.to_owned(), path });
                };
                ((*text).to_owned(), "built-in model.toml".into())
            }
            Err(err) => return Err(EmbedError::io(&path)(err)),
        };
        let spec: ModelSpec = toml::from_str(&text)
            .map_err(|err| EmbedError::InvalidSpec { path: origin.clone(), detail: err.to_string() })?;
        spec.check(&origin)?;
        Ok(spec)
    }

    fn check(&self, origin: &Path) -> Result<(), EmbedError> {
        let invalid =
            |detail: &str| Err(EmbedError::InvalidSpec { path: origin.to_owned(), detail: detail.to_owned() });
        if self.architecture != "bert" {
            return invalid("only architecture = \"bert\" is supported");
        }
        for required in ["model.safetensors", "config.json", "tokenizer.json"] {
            if !self.files.contains_key(required) {
                return invalid(&format!("[files] must pin {required}"));
            }
        }
        if self.files.values().any(|hash| hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit())) {
            return invalid("every [files] value must be a sha256 in hex");
        }
        if self.truncate_dim.is_some_and(|dim| dim == 0 || dim > self.dimension) {
            return invalid(&format!("truncate_dim must be between 1 and dimension ({})", self.dimension));
        }
        Ok(())
    }

    /// The length of the vectors this model produces.
    pub fn output_dimension(&self) -> usize {
        self.truncate_dim.unwrap_or(self.dimension)
    }

    /// Changes whenever the vectors this model produces could change.
    pub fn fingerprint(&self) -> Fingerprint {
        let files: Vec<String> = self.files.iter().map(|(name, hash)| format!("{name}={hash}")).collect();
        // Named only when set, so the fingerprints of untruncated models stay what they were.
        let truncated = self.truncate_dim.map(|dim| format!(" truncate_dim={dim}")).unwrap_or_default();
        Fingerprint::of(
            "embed",
            &format!(
                "code={EMBED_CODE_VERSION} name={} arch={} dim={} max_tokens={} pooling={:?} normalize={} files={}{truncated}",
                self.name,
                self.architecture,
                self.dimension,
                self.max_tokens,
                self.pooling,
                self.normalize,
                files.join(",")
            ),
        )
    }
}
