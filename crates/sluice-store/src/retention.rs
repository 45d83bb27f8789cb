//! Aliases and retention: promote, roll back, pin, and garbage collection of what no retained
//! version can see.
//!
//! A version is retained while it is committed and one of: the `keep` newest, pinned, or the
//! target of an alias. Retention marks the others `expired`, then removes every chunk
//! appearance (and document version) not visible at any retained version, from Qdrant and
//! Tantivy first and from the catalog last. A crash in between leaves rows the catalog still
//! lists but no retained version can see; the next open removes them again, idempotently.

use serde::{Deserialize, Serialize};
use sluice_core::{ChunkId, PointKey, Version};
use tracing::info;

use crate::Store;
use crate::audit::Actor;
use crate::catalog::{Dialect, Sql, SqlCatalog, alias_in, now_ms, params, parse_id, set_alias};
use crate::error::{Result, StoreError};
use crate::prelude::*;

/// What one garbage collection did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Versions retention dropped in this collection.
    pub expired: Vec<Version>,
    /// Versions still retained, oldest first.
    pub retained: Vec<Version>,
    pub chunks_removed: usize,
    pub documents_removed: usize,
}

/// Appearances visible at none of the versions in `?2` (a JSON array of numbers), in the
/// engine's own way of reading a JSON array as rows.
fn unreachable(sql: &dyn Sql) -> &'static str {
    match sql.dialect() {
        Dialect::Sqlite => {
            "NOT EXISTS (SELECT 1 FROM json_each(?2) r WHERE r.value >= valid_from AND r.value < valid_to)"
        }
        Dialect::Postgres => {
            "NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(CAST(?2 AS jsonb)) r(value)
                 WHERE CAST(r.value AS BIGINT) >= valid_from AND CAST(r.value AS BIGINT) < valid_to)"
        }
    }
}

impl Aliases for SqlCatalog {
    fn promote(&self, version: Version, force: bool, by: &Actor<'_>) -> Result<()> {
        let pipeline = by.pipeline;
        self.require_committed(pipeline, version)?;
        let gate = self.gate(pipeline, version)?;
        let held = gate.as_deref() == Some("held");
        if held && !force {
            return Err(StoreError::Conflict(format!(
                "version {version} was held by the evaluation gate (see `sluice versions`); `promote {version} --force` overrides"
            )));
        }
        self.write_audited(|t| {
            let before = alias_in(t, pipeline, "live")?;
            if held {
                t.execute(
                    "UPDATE versions SET gate = 'forced' WHERE pipeline = ?1 AND version = ?2",
                    params![pipeline, version],
                )?;
            }
            set_alias(t, pipeline, "live", version, if held { "promote --force" } else { "promote" })?;
            let detail = serde_json::json!({"version": version, "previous_live": before, "gate": gate, "force": force});
            Ok(((), vec![by.event("promoted", format!("version {version}"), detail)]))
        })
    }

    fn gate(&self, pipeline: &str, version: Version) -> Result<Option<String>> {
        self.read(|c| {
            c.query_value_opt::<Option<String>>(
                "SELECT gate FROM versions WHERE pipeline = ?1 AND version = ?2",
                params![pipeline, version],
            )
            .map(Option::flatten)
        })
    }

    fn record_gate(
        &self,
        pipeline: &str,
        version: Version,
        verdict: &str,
        evaluation: &serde_json::Value,
        promote: bool,
        audit: crate::AuditEvent,
    ) -> Result<()> {
        self.write_audited(|t| {
            t.execute(
                "UPDATE versions SET gate = ?3, evaluation = ?4 WHERE pipeline = ?1 AND version = ?2",
                params![pipeline, version, verdict, evaluation.to_string()],
            )?;
            if promote {
                set_alias(t, pipeline, "live", version, "gate passed")?;
            }
            Ok(((), vec![audit]))
        })
    }

    fn ungated_versions(&self, pipeline: &str) -> Result<Vec<Version>> {
        self.read(|c| {
            c.query_column(
                "SELECT version FROM versions WHERE pipeline = ?1 AND state = 'committed' AND gate IS NULL
                   AND version > COALESCE((SELECT version FROM aliases WHERE pipeline = ?1 AND name = 'live'), 0)
                 ORDER BY version",
                params![pipeline],
            )
        })
    }

    fn roll_back_live(&self, by: &Actor<'_>) -> Result<Version> {
        let pipeline = by.pipeline;
        let live = self.alias(pipeline, "live")?.ok_or_else(|| StoreError::Conflict("nothing is live yet".into()))?;
        let previous: Option<Version> = self.read(|c| {
            c.query_value(
                "SELECT MAX(version) FROM versions WHERE pipeline = ?1 AND state = 'committed' AND version < ?2
                   AND COALESCE(gate, '') != 'held'",
                params![pipeline, live],
            )
        })?;
        let previous = previous.ok_or_else(|| {
            StoreError::Conflict(format!("live is version {live}; no earlier committed version is retained"))
        })?;
        self.write_audited(|t| {
            set_alias(t, pipeline, "live", previous, "rollback")?;
            let detail = serde_json::json!({"version": previous, "previous_live": live});
            Ok(((), vec![by.event("rolled_back", format!("version {previous}"), detail)]))
        })?;
        Ok(previous)
    }

    fn set_pinned(&self, version: Version, pinned: bool, by: &Actor<'_>) -> Result<()> {
        let pipeline = by.pipeline;
        self.require_committed(pipeline, version)?;
        self.write_audited(|t| {
            t.execute(
                "UPDATE versions SET pinned = ?3 WHERE pipeline = ?1 AND version = ?2",
                params![pipeline, version, pinned],
            )?;
            let action = if pinned { "pinned" } else { "unpinned" };
            Ok(((), vec![by.event(action, format!("version {version}"), serde_json::json!({"version": version}))]))
        })
    }
}

impl Retention for SqlCatalog {
    fn expire_versions(&self, keep: usize, by: &Actor<'_>) -> Result<(Vec<Version>, Vec<Version>)> {
        let pipeline = by.pipeline;
        self.write_audited(|t| {
            let rows: Vec<(Version, bool, bool)> = t.query_map(
                "SELECT v.version, v.pinned, EXISTS (SELECT 1 FROM aliases a WHERE a.pipeline = v.pipeline
                     AND a.version = v.version)
                 FROM versions v WHERE v.pipeline = ?1 AND v.state = 'committed' ORDER BY v.version DESC",
                params![pipeline],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let (mut retained, mut expired) = (Vec::new(), Vec::new());
            for (index, (version, pinned, aliased)) in rows.into_iter().enumerate() {
                if index < keep || pinned || aliased {
                    retained.push(version);
                } else {
                    expired.push(version);
                }
            }
            for version in &expired {
                t.execute(
                    "UPDATE versions SET state = 'expired', finished_at = COALESCE(finished_at, ?3)
                     WHERE pipeline = ?1 AND version = ?2",
                    params![pipeline, version, now_ms()],
                )?;
            }
            retained.reverse();
            expired.reverse();
            let events = if expired.is_empty() {
                Vec::new()
            } else {
                let detail = serde_json::json!({"expired": expired, "retained": retained, "keep_versions": keep});
                vec![by.event("versions_expired", "retention", detail)]
            };
            Ok(((expired, retained), events))
        })
    }

    fn committed_versions(&self, pipeline: &str) -> Result<Vec<Version>> {
        self.read(|c| {
            c.query_column(
                "SELECT version FROM versions WHERE pipeline = ?1 AND state = 'committed' ORDER BY version",
                params![pipeline],
            )
        })
    }

    fn unreachable_chunks(&self, pipeline: &str, retained: &[Version]) -> Result<Vec<(String, PointKey)>> {
        let retained = serde_json::to_string(retained).expect("numbers serialise");
        self.read(|c| {
            c.query_map(
                &format!(
                    "SELECT c.chunk_id, c.valid_from,
                            (SELECT d.model_fingerprint FROM documents d WHERE d.id = c.document)
                     FROM chunks c WHERE c.pipeline = ?1 AND {}",
                    unreachable(c)
                ),
                params![pipeline, retained],
                |r| {
                    let key = PointKey { chunk: parse_id(r.get(0)?, ChunkId::parse)?, valid_from: r.get(1)? };
                    Ok((r.get(2)?, key))
                },
            )
        })
    }

    fn delete_unreachable(&self, pipeline: &str, retained: &[Version]) -> Result<(usize, usize)> {
        let retained = serde_json::to_string(retained).expect("numbers serialise");
        self.write(|t| {
            let chunks = t.execute(
                &format!("DELETE FROM chunks WHERE pipeline = ?1 AND {}", unreachable(t)),
                params![pipeline, retained],
            )?;
            let documents = t.execute(
                &format!(
                    "DELETE FROM documents WHERE pipeline = ?1 AND {}
                       AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.document = documents.id)",
                    unreachable(t)
                ),
                params![pipeline, retained],
            )?;
            crate::catalog::forget_deleted_bands(t, pipeline)?;
            Ok((chunks as usize, documents as usize))
        })
    }
}

impl Store {
    /// Expires versions beyond retention (`keep` newest, plus pinned and aliased ones), then
    /// removes from Qdrant, Tantivy and the catalog what no retained version can see. Call
    /// between runs: a pending version's rows would look unreachable.
    pub fn collect_garbage(&self, keep: usize, principal: &str) -> Result<GcReport> {
        let pipeline = self.pipeline();
        if !self.catalog().pending_versions(pipeline)?.is_empty() {
            return Err(StoreError::Conflict("a version is being written; collect garbage between runs".into()));
        }
        let by = Actor { pipeline, principal };
        let (expired, retained) = self.catalog().expire_versions(keep.max(1), &by)?;
        // Rows become unreachable only when the versions that saw them expire (rolled-back
        // versions delete their own), so without an expiry there is nothing to scan for.
        let (chunks_removed, documents_removed) =
            if expired.is_empty() { (0, 0) } else { self.remove_unreachable(&retained)? };
        let report = GcReport { expired, retained, chunks_removed, documents_removed };
        if report.chunks_removed + report.documents_removed > 0 || !report.expired.is_empty() {
            info!(pipeline, expired = ?report.expired, chunks = report.chunks_removed, documents = report.documents_removed,
                "retention removed old versions");
        }
        Ok(report)
    }

    /// Finishes a collection a crash interrupted: removes what no committed version can see.
    pub(crate) fn finish_garbage_collection(&self) -> Result<usize> {
        let retained = self.catalog().committed_versions(self.pipeline())?;
        Ok(self.remove_unreachable(&retained)?.0)
    }

    fn remove_unreachable(&self, retained: &[Version]) -> Result<(usize, usize)> {
        let unreachable = self.catalog().unreachable_chunks(self.pipeline(), retained)?;
        if !unreachable.is_empty() {
            let by_model: Vec<(&str, PointKey)> =
                unreachable.iter().map(|(model, key)| (model.as_str(), *key)).collect();
            self.vectors().delete(&by_model)?;
            self.vectors().flush()?;
            let keys: Vec<PointKey> = unreachable.iter().map(|(_, key)| *key).collect();
            self.lexical().delete(&keys);
            self.lexical().commit()?;
        }
        self.catalog().delete_unreachable(self.pipeline(), retained)
    }
}
