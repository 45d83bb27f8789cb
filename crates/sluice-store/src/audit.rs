//! The audit log (DESIGN.md §4): every pipeline decision and every query served, append-only
//! and hash-chained in the catalog.
//!
//! Entry N stores the hash of entry N-1 and its own hash over its fields and that previous
//! hash, so changing, removing or reordering any entry breaks the chain from there on; the
//! newest (seq, hash) is also kept in `meta` (`audit_head`), so removing entries from the end
//! is caught too. Anyone able to rewrite the whole database can forge a consistent chain: copy
//! the head `sluice audit verify` prints somewhere else to anchor it. Entries hold counts and
//! ids, never PII values.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, now_ms};
use crate::error::Result;

/// The previous hash of the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A decision or request to record.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent {
    pub pipeline: String,
    /// Who acted: a token's user, `pipeline` for the pipeline's own decisions, `local:<user>`
    /// for the command line working on the data directory.
    pub principal: String,
    /// `ingested`, `updated`, `retired`, `duplicate`, `quarantined`, `redacted`,
    /// `version_committed`, `promoted`, `rolled_back`, `pipeline_changed`, `search`, ...
    pub action: String,
    /// What it acted on: a path, a version, a query.
    pub subject: String,
    pub detail: serde_json::Value,
}

impl AuditEvent {
    pub fn new(
        pipeline: &str,
        principal: &str,
        action: &str,
        subject: impl Into<String>,
        detail: serde_json::Value,
    ) -> Self {
        Self {
            pipeline: pipeline.to_owned(),
            principal: principal.to_owned(),
            action: action.to_owned(),
            subject: subject.into(),
            detail,
        }
    }
}

/// A stored entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub pipeline: String,
    pub principal: String,
    pub action: String,
    pub subject: String,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// What `sluice audit verify` found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditVerification {
    pub entries: u64,
    /// `seq:hash` of the newest entry, to anchor elsewhere.
    pub head: Option<String>,
    /// The first entry that does not verify, and why.
    pub first_bad: Option<AuditProblem>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditProblem {
    pub seq: i64,
    pub problem: String,
}

/// The hash of an entry: its fields, each length-prefixed, after the previous hash.
fn entry_hash(prev_hash: &str, seq: i64, at: i64, fields: [&str; 5]) -> String {
    let mut hasher = blake3::Hasher::new_derive_key("sluice audit entry v1");
    hasher.update(prev_hash.as_bytes());
    hasher.update(&seq.to_le_bytes());
    hasher.update(&at.to_le_bytes());
    for field in fields {
        hasher.update(&(field.len() as u64).to_le_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

/// Appends events inside the caller's transaction (a version's decisions commit with it).
pub(crate) fn append(t: &Transaction<'_>, events: &[AuditEvent]) -> rusqlite::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let last: Option<(i64, String)> = t
        .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (mut seq, mut prev_hash) = last.unwrap_or((0, GENESIS.to_owned()));
    let mut insert = t.prepare_cached(
        "INSERT INTO audit (seq, at, pipeline, principal, action, subject, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let at = now_ms();
    for event in events {
        seq += 1;
        let detail = event.detail.to_string();
        let fields = [&*event.pipeline, &*event.principal, &*event.action, &*event.subject, &*detail];
        let hash = entry_hash(&prev_hash, seq, at, fields);
        insert.execute(params![
            seq,
            at,
            event.pipeline,
            event.principal,
            event.action,
            event.subject,
            detail,
            prev_hash,
            hash
        ])?;
        prev_hash = hash;
    }
    t.execute(
        "INSERT INTO meta (key, value) VALUES ('audit_head', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [format!("{seq}:{prev_hash}")],
    )?;
    Ok(())
}

impl Catalog {
    /// Appends events in a transaction of their own.
    pub fn audit(&self, events: &[AuditEvent]) -> Result<()> {
        self.write(|t| append(t, events))
    }

    /// Entries from `since` (Unix milliseconds, inclusive) on, oldest first, at most `limit`.
    pub fn audit_entries(&self, since: Option<i64>, after_seq: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        self.read(|c| {
            let mut statement = c.prepare(
                "SELECT seq, at, pipeline, principal, action, subject, detail, prev_hash, hash FROM audit
                 WHERE at >= ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            statement
                .query_map(params![since.unwrap_or(i64::MIN), after_seq, limit], |r| {
                    let detail: String = r.get(6)?;
                    Ok(AuditEntry {
                        seq: r.get(0)?,
                        at: r.get(1)?,
                        pipeline: r.get(2)?,
                        principal: r.get(3)?,
                        action: r.get(4)?,
                        subject: r.get(5)?,
                        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
                        prev_hash: r.get(7)?,
                        hash: r.get(8)?,
                    })
                })?
                .collect()
        })
    }

    /// Walks the whole chain: sequence numbers without gaps, each previous hash equal to the
    /// entry before's hash, each hash recomputed from the stored fields, and the newest entry
    /// equal to the recorded head.
    pub fn verify_audit(&self) -> Result<AuditVerification> {
        self.read(|c| {
            let mut statement = c.prepare(
                "SELECT seq, at, pipeline, principal, action, subject, detail, prev_hash, hash FROM audit ORDER BY seq",
            )?;
            let mut rows = statement.query([])?;
            let mut entries = 0u64;
            let (mut last_seq, mut last_hash) = (0i64, GENESIS.to_owned());
            let mut first_bad = None;
            while let Some(r) = rows.next()? {
                let seq: i64 = r.get(0)?;
                let fields: [String; 5] = [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?];
                let (prev_hash, hash): (String, String) = (r.get(7)?, r.get(8)?);
                entries += 1;
                let problem = if seq != last_seq + 1 {
                    Some((last_seq + 1, format!("entry {} is missing (the next one found is {seq})", last_seq + 1)))
                } else if prev_hash != last_hash {
                    Some((seq, "its previous-hash does not match the entry before it".to_owned()))
                } else if entry_hash(&prev_hash, seq, r.get(1)?, fields.each_ref().map(String::as_str)) != hash {
                    Some((seq, "its contents do not match its hash (changed)".to_owned()))
                } else {
                    None
                };
                if let Some((seq, problem)) = problem {
                    first_bad = Some(AuditProblem { seq, problem });
                    break;
                }
                (last_seq, last_hash) = (seq, hash);
            }
            let head: Option<String> =
                c.query_row("SELECT value FROM meta WHERE key = 'audit_head'", [], |r| r.get(0)).optional()?;
            if first_bad.is_none()
                && let Some(recorded) = &head
                && *recorded != format!("{last_seq}:{last_hash}")
            {
                let recorded_seq = recorded.split(':').next().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
                let problem = if recorded_seq > last_seq {
                    format!("entries {} to {recorded_seq} are missing from the end", last_seq + 1)
                } else {
                    format!("the newest entry differs from the recorded head {recorded}")
                };
                first_bad = Some(AuditProblem { seq: last_seq + 1, problem });
            }
            if first_bad.is_none() && head.is_none() && entries > 0 {
                first_bad = Some(AuditProblem { seq: last_seq, problem: "the recorded head is missing".into() });
            }
            Ok(AuditVerification { entries, head, first_bad })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog_with_entries(dir: &std::path::Path, count: usize) -> Catalog {
        let catalog = Catalog::open(&dir.join("catalog.sqlite")).unwrap();
        let events: Vec<AuditEvent> = (0..count)
            .map(|i| AuditEvent::new("p", "alice", "search", format!("query {i}"), serde_json::json!({"k": i})))
            .collect();
        catalog.audit(&events[..count / 2]).unwrap();
        catalog.audit(&events[count / 2..]).unwrap();
        catalog
    }

    fn tamper(dir: &std::path::Path, sql: &str) {
        rusqlite::Connection::open(dir.join("catalog.sqlite")).unwrap().execute_batch(sql).unwrap();
    }

    fn first_bad(catalog: &Catalog) -> Option<i64> {
        catalog.verify_audit().unwrap().first_bad.map(|bad| bad.seq)
    }

    #[test]
    fn an_untouched_log_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog_with_entries(dir.path(), 10);
        let report = catalog.verify_audit().unwrap();
        assert_eq!(report.entries, 10);
        assert!(report.first_bad.is_none(), "{:?}", report.first_bad);
        assert!(report.head.unwrap().starts_with("10:"));
        let entries = catalog.audit_entries(None, 0, 100).unwrap();
        assert_eq!(entries[0].prev_hash, GENESIS);
        assert_eq!(entries[3].prev_hash, entries[2].hash);
    }

    #[test]
    fn every_kind_of_tampering_names_the_first_bad_entry() {
        let cases = [
            ("UPDATE audit SET subject = 'query X' WHERE seq = 4", 4),
            ("UPDATE audit SET at = at + 1 WHERE seq = 7", 7),
            ("DELETE FROM audit WHERE seq = 5", 5),
            // Swapping two entries' contents (each keeps its seq).
            (
                "UPDATE audit SET subject = CASE seq WHEN 2 THEN 'query 5' ELSE 'query 2' END,
                     detail = CASE seq WHEN 2 THEN '{\"k\":5}' ELSE '{\"k\":2}' END WHERE seq IN (2, 5)",
                2,
            ),
            // Swapping two whole rows, hashes included.
            (
                "UPDATE audit SET seq = -3 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 6;
                 UPDATE audit SET seq = 6 WHERE seq = -3",
                3,
            ),
            ("DELETE FROM audit WHERE seq >= 9", 9),
            ("DELETE FROM audit WHERE seq = 10", 10),
        ];
        for (sql, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            let catalog = catalog_with_entries(dir.path(), 10);
            tamper(dir.path(), sql);
            assert_eq!(first_bad(&catalog), Some(expected), "after {sql}");
        }
    }
}
