//! Pipeline files: TOML in, a validated [`PipelinePlan`] out, in one step.
//!
//! Parse, don't validate: the runtime only ever sees a `PipelinePlan`, whose fields are already
//! checked, typed and defaulted. Every problem in a file is reported at once, each with
//! `file:line:col`, and a key the schema does not know is an error (a typo must never silently
//! fall back to a default).

mod error;
mod plan;
mod reader;

pub use error::{ConfigError, ConfigErrors};
pub use plan::{
    AccessPlan, AccessRule, AccessSource, AuditKeySource, AuditPlan, CatalogPlan, ChunkPlan, DedupPlan, EmbedPlan,
    EvalPlan, Fusion, HistoryAccess, LimitsPlan, NearDuplicates, PiiPlan, PiiPolicyPlan, PipelinePlan, PostgresPlan,
    PrincipalMap, QdrantPlan, QualityPlan, Quantization, RetentionPlan, SearchPlan, ServerPlan, SourcePlan, StorePlan,
    VectorsPlan, WatchPlan,
};

/// The default pipeline, compiled in so that `sluice ingest` works without a pipeline file.
pub const DEFAULT_PIPELINE_TOML: &str = include_str!("../../../pipelines/default.toml");
pub const DEFAULT_PIPELINE_NAME: &str = "pipelines/default.toml";

/// Parses and validates a pipeline file. `file` is only used to name locations in errors.
pub fn parse_pipeline(file: &str, source: &str) -> Result<PipelinePlan, ConfigErrors> {
    plan::build(file, source)
}

/// Reads and validates a pipeline file from disk.
pub fn load_pipeline(path: &std::path::Path) -> Result<PipelinePlan, ConfigErrors> {
    let file = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|err| {
        ConfigErrors(vec![ConfigError { file: file.clone(), line: 0, col: 0, message: format!("cannot read: {err}") }])
    })?;
    parse_pipeline(&file, &source)
}

/// The compiled-in default pipeline.
pub fn default_pipeline() -> PipelinePlan {
    parse_pipeline(DEFAULT_PIPELINE_NAME, DEFAULT_PIPELINE_TOML)
        .expect("the compiled-in default pipeline is valid (checked by tests)")
}
