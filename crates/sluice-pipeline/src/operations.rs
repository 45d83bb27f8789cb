//! What an operator does to a pipeline's datasets: promote, roll back, pin, collect garbage,
//! verify, export, look up versions, lineage, diffs and quarantine, manage tokens. Each action
//! is one library method that acts and writes its audit entry in one place (in the catalog
//! transaction of the change where there is one), so the daemon's HTTP handlers and the command
//! line (here, or through the daemon) cannot differ in what an action does.
//!
//! [`Operations`] is a view over a pipeline's plan, catalog and, where they are open, its
//! stores: an [`crate::Engine`] lends one, and [`Admin`] opens one without loading the model.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sluice_config::{HistoryAccess, PipelinePlan};
use sluice_core::{ChunkId, ReadAccess, Version};
use sluice_store::{
    Actor, AuditEvent, Catalog, ExportFormat, ExportSummary, GcReport, Lineage, QuarantineEntry, Role, Store,
    TokenInfo, VerifyReport, VersionDiff, VersionInfo,
};
use tracing::info;

use crate::{PipelineError, names, past_access};

/// The operator actions on one pipeline.
#[derive(Clone, Copy)]
pub struct Operations<'a> {
    plan: &'a PipelinePlan,
    catalog: &'a dyn Catalog,
    /// The pipeline's stores, for actions that touch the indexes; `None` when only the catalog
    /// is open (beside a running daemon, whose stores they are).
    store: Option<&'a Store>,
    /// Held by actions that must happen between runs.
    between_runs: &'a Mutex<()>,
}

impl<'a> Operations<'a> {
    pub(crate) fn new(
        plan: &'a PipelinePlan,
        catalog: &'a dyn Catalog,
        store: Option<&'a Store>,
        between_runs: &'a Mutex<()>,
    ) -> Self {
        Self { plan, catalog, store, between_runs }
    }

    fn name(&self) -> &'a str {
        &self.plan.name
    }

    /// The stores, for an action on the indexes.
    fn store(&self, action: &str) -> Result<&'a Store, PipelineError> {
        self.store.ok_or_else(|| {
            PipelineError::Conflict(format!("{action} needs the pipeline's indexes, which a running daemon holds"))
        })
    }

    fn between_runs(&self) -> std::sync::MutexGuard<'a, ()> {
        self.between_runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn versions(&self) -> Result<Vec<VersionInfo>, PipelineError> {
        Ok(self.catalog.versions(self.name())?)
    }

    /// The version `live` points at.
    pub fn live(&self) -> Result<Option<Version>, PipelineError> {
        Ok(self.catalog.alias(self.name(), "live")?)
    }

    /// `version` if given, else the one `live` points at.
    pub fn version_or_live(&self, version: Option<Version>) -> Result<Version, PipelineError> {
        match version {
            Some(version) => Ok(version),
            None => self.live()?.ok_or_else(|| PipelineError::Conflict("nothing is live yet".into())),
        }
    }

    /// Documents (hex ids) `access` may not see at `version` although its readers then allowed
    /// them, under `[access] history`: with `current`, those its file no longer lets it read;
    /// with `operators`, an earlier version is refused to anyone but an operator. `live` is as
    /// current as the last reconcile already, so it costs no query.
    pub fn hidden_at(
        &self,
        version: Version,
        access: &ReadAccess,
        operator: bool,
    ) -> Result<Vec<String>, PipelineError> {
        if self.live()? == Some(version) {
            return Ok(Vec::new());
        }
        match self.plan.access.history {
            HistoryAccess::Current => Ok(self.catalog.revoked_documents(self.name(), version, access)?),
            HistoryAccess::Operators if !operator && *access != ReadAccess::Unrestricted => {
                Err(PipelineError::Forbidden(
                    "earlier versions are read by operators only ([access] history = \"operators\")".into(),
                ))
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Documents that failed a stage, files and embedded files, by path.
    pub fn quarantine(&self) -> Result<Vec<QuarantineEntry>, PipelineError> {
        Ok(self.catalog.quarantine(self.name())?)
    }

    /// The nodes working on the pipeline's catalog: role, claims, applied version, heartbeat.
    pub fn nodes(&self) -> Result<Vec<sluice_store::NodeStatus>, PipelineError> {
        let silent_after = self.plan.store.catalog.node_settings().lease;
        Ok(self.catalog.nodes(self.name(), silent_after.as_millis() as i64)?)
    }

    /// The quarantine entry at `path`: its own path, or that of the file holding it (the first
    /// such entry, for a file with several quarantined embedded files).
    pub fn quarantine_entry(&self, path: &str) -> Result<Option<QuarantineEntry>, PipelineError> {
        Ok(self.quarantine()?.into_iter().find(|entry| entry.matches(path)))
    }

    /// Makes the next run that covers the quarantined file at `path` process it again, as if
    /// new (a fixed parser, a raised limit); returns its on-disk path. Only the ledger entry is
    /// dropped (audited with it): the file's live documents stay until that run replaces them,
    /// so a crash in between loses nothing.
    pub fn requeue_quarantined(&self, path: &str, principal: &str) -> Result<PathBuf, PipelineError> {
        let _between_runs = self.between_runs();
        let entry = self
            .quarantine_entry(path)?
            .ok_or_else(|| PipelineError::NotFound(format!("{path} is not in quarantine")))?;
        let file = Path::new(&entry.root).join(names::decode_path(&entry.rel_path));
        if std::fs::symlink_metadata(&file).is_err() {
            return Err(PipelineError::NotFound(format!("{} no longer exists", file.display())));
        }
        self.catalog.forget_quarantined(&entry, &self.actor(principal))?;
        Ok(file)
    }

    /// Where a chunk came from and what made it; `None` also when `access` may not read it.
    /// `operator`: the caller has the operator role (earlier versions under `history =
    /// "operators"`).
    pub fn lineage(
        &self,
        chunk_id: ChunkId,
        access: &ReadAccess,
        operator: bool,
    ) -> Result<Option<Lineage>, PipelineError> {
        let past = past_access(self.plan.access.history, operator);
        Ok(self.catalog.lineage(self.name(), chunk_id, access, past)?)
    }

    /// Chunks added and retired from version `from` to `to`, with reasons.
    pub fn diff(&self, from: Version, to: Version) -> Result<VersionDiff, PipelineError> {
        Ok(self.catalog.diff(self.name(), from, to)?)
    }

    /// Writes the chunks visible at `version` (default: live) that `access` may read to `out`,
    /// then audits the export as `principal`.
    #[allow(clippy::too_many_arguments)]
    pub fn export(
        &self,
        version: Option<Version>,
        access: &ReadAccess,
        operator: bool,
        format: ExportFormat,
        with_vectors: bool,
        out: &Path,
        principal: &str,
    ) -> Result<ExportSummary, PipelineError> {
        let version = self.version_or_live(version)?;
        let hidden = self.hidden_at(version, access, operator)?;
        let summary = self.catalog.export(self.name(), version, access, &hidden, format, with_vectors, out)?;
        let detail = serde_json::json!({"version": version, "chunks": summary.chunks, "format": format});
        self.audit(principal, "exported", format!("version {version}"), detail)?;
        Ok(summary)
    }

    /// Records an action taken on this pipeline by `principal` (a token's user, or
    /// `local:<user>` for the command line).
    pub fn audit(
        &self,
        principal: &str,
        action: &str,
        subject: impl Into<String>,
        detail: serde_json::Value,
    ) -> Result<(), PipelineError> {
        let event = AuditEvent::new(self.name(), principal, action, subject, detail);
        Ok(self.catalog.audit(&[event])?)
    }

    /// Points `live` at committed version N (audited in the same transaction), and the
    /// vector store's alias at its model; `force` overrides a hold by the evaluation gate.
    pub fn promote(&self, version: Version, principal: &str, force: bool) -> Result<(), PipelineError> {
        self.store("promote")?.promote(version, force, principal)?;
        info!(pipeline = %self.name(), version, force, "promoted to live");
        Ok(())
    }

    /// Moves `live` back to the newest committed version before it (audited in the same
    /// transaction), and the vector store's alias with it; returns that version.
    pub fn roll_back_live(&self, principal: &str) -> Result<Version, PipelineError> {
        let version = self.store("rollback")?.roll_back_live(principal)?;
        info!(pipeline = %self.name(), version, "live rolled back");
        Ok(version)
    }

    /// Pins or unpins a version (audited in the same transaction): a pinned version is kept
    /// by retention whatever its age.
    pub fn pin(&self, version: Version, pinned: bool, principal: &str) -> Result<(), PipelineError> {
        Ok(self.catalog.set_pinned(version, pinned, &self.actor(principal))?)
    }

    /// Applies retention now (it also runs after every committed run), between runs; the
    /// expiry is audited in its own transaction.
    pub fn collect_garbage(&self, principal: &str) -> Result<GcReport, PipelineError> {
        let store = self.store("gc")?;
        let _between_runs = self.between_runs();
        Ok(store.collect_garbage(self.plan.retention.keep_versions, principal)?)
    }

    /// Compares catalog, Qdrant and Tantivy (between runs, so no version is half written).
    pub fn verify(&self, version: Option<Version>) -> Result<VerifyReport, PipelineError> {
        let store = self.store("verify")?;
        let _between_runs = self.between_runs();
        Ok(store.verify(version)?)
    }

    /// Creates a token (audited with it); returns it with its secret, shown once.
    pub fn create_token(
        &self,
        user: &str,
        groups: &[String],
        role: Role,
        principal: &str,
    ) -> Result<(TokenInfo, String), PipelineError> {
        Ok(self.catalog.create_token(user, groups, role, &self.actor(principal))?)
    }

    pub fn tokens(&self) -> Result<Vec<TokenInfo>, PipelineError> {
        Ok(self.catalog.tokens()?)
    }

    /// Revokes a token (audited with it).
    pub fn revoke_token(&self, id: &str, principal: &str) -> Result<(), PipelineError> {
        if self.catalog.revoke_token(id, &self.actor(principal))? {
            Ok(())
        } else {
            Err(PipelineError::NotFound(format!("no active token {id}")))
        }
    }

    /// `principal` acting on this pipeline, for audited actions.
    fn actor<'p>(&self, principal: &'p str) -> Actor<'p>
    where
        'a: 'p,
    {
        Actor { pipeline: &self.plan.name, principal }
    }
}

/// A pipeline's operations without its model or sources: for the command line, which acts here
/// only when no daemon holds the data directory (or only on the catalog beside one).
pub struct Admin {
    plan: PipelinePlan,
    catalog: Arc<dyn Catalog>,
    store: Option<Store>,
    between_runs: Mutex<()>,
}

impl Admin {
    /// Opens the pipeline's stores (rolling back a version a crash left pending). The caller
    /// holds the data directory's lock.
    pub fn open(plan: PipelinePlan, data_dir: &Path) -> Result<Self, PipelineError> {
        let store = Store::open(data_dir, &plan.name, &plan.store)?;
        store.catalog().set_audit_key(crate::audit_key(&plan, data_dir)?);
        crate::check_audit_keying(store.catalog(), &plan)?;
        Ok(Self { catalog: store.shared_catalog(), plan, store: Some(store), between_runs: Mutex::new(()) })
    }

    /// Opens the catalog only: reads, exports, tokens and pins, which are safe beside a running
    /// daemon (the catalog serves several processes).
    pub fn open_catalog(plan: PipelinePlan, data_dir: &Path) -> Result<Self, PipelineError> {
        let catalog = sluice_store::open_catalog(data_dir, &plan.store.catalog)?;
        catalog.set_audit_key(crate::audit_key(&plan, data_dir)?);
        Ok(Self { catalog, plan, store: None, between_runs: Mutex::new(()) })
    }

    pub fn plan(&self) -> &PipelinePlan {
        &self.plan
    }

    pub fn catalog(&self) -> &dyn Catalog {
        self.catalog.as_ref()
    }

    pub fn shared_catalog(&self) -> Arc<dyn Catalog> {
        self.catalog.clone()
    }

    pub fn operations(&self) -> Operations<'_> {
        Operations::new(&self.plan, self.catalog.as_ref(), self.store.as_ref(), &self.between_runs)
    }
}
