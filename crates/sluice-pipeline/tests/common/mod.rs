//! What the library tests share: an engine over a source folder with the real model.

use std::path::{Path, PathBuf};

use sluice_config::{PipelinePlan, SourcePlan};
use sluice_pipeline::Engine;

pub fn models_dir() -> PathBuf {
    std::env::var_os("SLUICE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

/// An engine on the default pipeline watching `inbox`, after `edit` adjusts the plan.
pub fn engine_with(inbox: &Path, data: &Path, edit: impl FnOnce(&mut PipelinePlan)) -> Engine {
    let mut plan = sluice_config::default_pipeline();
    plan.sources = vec![SourcePlan { path: inbox.to_owned() }];
    edit(&mut plan);
    Engine::open(plan, data, &models_dir()).expect("engine opens")
}
