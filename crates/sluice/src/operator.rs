//! The command line's one interface to the actions that change a pipeline's datasets or read
//! its indexes: through the daemon's HTTP API when a daemon holds the data directory (one writer
//! per data directory), else here, under the data directory's lock. Either way the same library
//! methods (`sluice_pipeline::Operations`) act and audit; only the transport differs.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sluice_core::Version;
use sluice_pipeline::Admin;
use sluice_store::{DataDirLock, GcReport, VerifyReport};

use crate::auth::local_principal;
use crate::client;
use crate::commands::load_plan;

pub trait Operator {
    /// Points `live` at version N; returns it.
    fn promote(&self, version: Version, force: bool) -> anyhow::Result<Version>;
    /// Moves `live` back to the committed version before it; returns that version.
    fn roll_back(&self) -> anyhow::Result<Version>;
    fn pin(&self, version: Version, pinned: bool) -> anyhow::Result<()>;
    fn collect_garbage(&self) -> anyhow::Result<GcReport>;
    fn verify(&self, version: Option<Version>) -> anyhow::Result<VerifyReport>;
}

/// The operator for the data directory `data`: its daemon, or the library here.
pub fn operator(data: &Path, pipeline: Option<&Path>) -> anyhow::Result<Box<dyn Operator>> {
    if DataDirLock::is_held(data) {
        return Ok(Box::new(Daemon { data: data.to_owned() }));
    }
    let lock = DataDirLock::acquire(data)?;
    let mut plan = load_plan(pipeline)?;
    plan.sources.clear();
    crate::commands::ensure_catalog(data, &plan)?;
    Ok(Box::new(Here { admin: Admin::open(plan, data)?, principal: local_principal(), _lock: lock }))
}

/// The library, in this process; audited as `local:<user>`.
struct Here {
    admin: Admin,
    principal: String,
    _lock: DataDirLock,
}

impl Operator for Here {
    fn promote(&self, version: Version, force: bool) -> anyhow::Result<Version> {
        self.admin.operations().promote(version, &self.principal, force)?;
        Ok(version)
    }

    fn roll_back(&self) -> anyhow::Result<Version> {
        Ok(self.admin.operations().roll_back_live(&self.principal)?)
    }

    fn pin(&self, version: Version, pinned: bool) -> anyhow::Result<()> {
        Ok(self.admin.operations().pin(version, pinned, &self.principal)?)
    }

    fn collect_garbage(&self) -> anyhow::Result<GcReport> {
        Ok(self.admin.operations().collect_garbage(&self.principal)?)
    }

    fn verify(&self, version: Option<Version>) -> anyhow::Result<VerifyReport> {
        Ok(self.admin.operations().verify(version)?)
    }
}

/// The daemon that holds the data directory, over its HTTP API (with its local token).
struct Daemon {
    data: PathBuf,
}

#[derive(Deserialize)]
struct Live {
    live: Version,
}

impl Operator for Daemon {
    fn promote(&self, version: Version, force: bool) -> anyhow::Result<Version> {
        let api = format!("/v1/versions/{version}/promote?force={force}");
        Ok(client::send::<Live>(&self.data, "POST", &api)?.live)
    }

    fn roll_back(&self) -> anyhow::Result<Version> {
        Ok(client::send::<Live>(&self.data, "POST", "/v1/rollback")?.live)
    }

    fn pin(&self, version: Version, pinned: bool) -> anyhow::Result<()> {
        let method = if pinned { "POST" } else { "DELETE" };
        client::send::<serde_json::Value>(&self.data, method, &format!("/v1/versions/{version}/pin"))?;
        Ok(())
    }

    fn collect_garbage(&self) -> anyhow::Result<GcReport> {
        client::send(&self.data, "POST", "/v1/gc")
    }

    fn verify(&self, version: Option<Version>) -> anyhow::Result<VerifyReport> {
        let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
        client::get(&self.data, &format!("/v1/verify{query}"))
    }
}
