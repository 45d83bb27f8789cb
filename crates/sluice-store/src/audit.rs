//! The audit log (DESIGN.md §4): every pipeline decision and every query served, append-only
//! and hash-chained in the catalog.
//!
//! Entry N stores the hash of entry N-1 and its own hash over its fields and that previous
//! hash, so changing, removing or reordering any entry breaks the chain from there on; the
//! newest (seq, hash) is also kept in `meta` (`audit_head`), so removing entries from the end
//! is caught too, and each committed version remembers the entry that recorded its commit, so
//! a wiped log is caught against the versions.
//!
//! With an audit key (`[audit] key_file` / `key_env`, kept outside the data directory) each
//! hash is an HMAC (blake3's keyed mode): whoever can rewrite the catalog but lacks the key
//! cannot forge a consistent chain. With a key every entry must be keyed (`sluice audit rekey`
//! turns an older, unkeyed log into a keyed one after checking it). Without one the hashes are
//! plain and a consistent rewrite of the whole log is caught only against a head copied
//! elsewhere (`sluice audit head`, `audit verify --expect-head`). Entries hold counts and ids,
//! never PII values.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::catalog::{Row, Sql, SqlCatalog, now_ms, params};
use crate::error::{Result, StoreError};
use crate::prelude::*;

/// The previous hash of the first entry.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

/// Who does an audited action, and in which pipeline.
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    pub pipeline: &'a str,
    pub principal: &'a str,
}

impl Actor<'_> {
    pub fn event(&self, action: &str, subject: impl Into<String>, detail: serde_json::Value) -> AuditEvent {
        AuditEvent::new(self.pipeline, self.principal, action, subject, detail)
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
    /// Whether `hash` is an HMAC under the audit key.
    #[serde(default)]
    pub keyed: bool,
}

/// The secret that keys the chain. It must live outside the data directory.
#[derive(Clone)]
pub struct AuditKey([u8; 32]);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.id())
    }
}

impl AuditKey {
    /// A key from its text: 64 hex digits, or any secret of at least 32 bytes (hashed to 32).
    pub fn parse(secret: &[u8]) -> Result<Self> {
        let trimmed = std::str::from_utf8(secret).map(str::trim).unwrap_or_default();
        if trimmed.len() == 64
            && let Ok(bytes) = hex::decode(trimmed)
        {
            return Ok(Self(bytes.try_into().expect("64 hex digits are 32 bytes")));
        }
        let raw = if trimmed.is_empty() { secret } else { trimmed.as_bytes() };
        if raw.len() < 32 {
            return Err(StoreError::Invalid("an audit key needs 64 hex digits or at least 32 bytes".into()));
        }
        Ok(Self(blake3::derive_key("sluice audit key v1", raw)))
    }

    /// Reads the key file, refusing one inside `data_dir` (it would travel with the data it
    /// protects) or one that other users may read.
    pub fn from_file(path: &Path, data_dir: &Path) -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let io = |source| StoreError::Io { path: path.to_owned(), source };
        let canonical = std::fs::canonicalize(path).map_err(io)?;
        if let Ok(data) = std::fs::canonicalize(data_dir)
            && canonical.starts_with(&data)
        {
            return Err(StoreError::Invalid(format!(
                "the audit key {} is inside the data directory; keep it elsewhere",
                path.display()
            )));
        }
        let metadata = std::fs::metadata(&canonical).map_err(io)?;
        if metadata.mode() & 0o077 != 0 {
            return Err(StoreError::Invalid(format!(
                "the audit key {} is readable by other users (chmod 600 it)",
                path.display()
            )));
        }
        Self::parse(&std::fs::read(&canonical).map_err(io)?)
    }

    /// Reads the key from the environment variable `name`.
    pub fn from_env(name: &str) -> Result<Self> {
        let value = std::env::var_os(name)
            .ok_or_else(|| StoreError::Invalid(format!("the audit key variable {name} is not set")))?;
        Self::parse(std::os::unix::ffi::OsStrExt::as_bytes(value.as_os_str()))
    }

    /// A short public name for the key (it reveals nothing of it), for messages.
    pub fn id(&self) -> String {
        blake3::keyed_hash(&self.0, b"sluice audit key id").to_hex()[..12].to_owned()
    }
}

/// What `sluice audit verify` found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditVerification {
    /// Entries checked in the catalog (rotated ones are counted in `rotated`).
    pub entries: u64,
    /// `seq:hash` of the newest entry, to anchor elsewhere.
    pub head: Option<String>,
    /// Whether the chain was checked as keyed (an audit key was given).
    pub keyed: bool,
    /// Entries moved to segment files by rotation, and the segment files checked.
    #[serde(default)]
    pub rotated: u64,
    #[serde(default)]
    pub segments_checked: u64,
    /// The first entry that does not verify, and why.
    pub first_bad: Option<AuditProblem>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditProblem {
    pub seq: i64,
    pub problem: String,
}

/// The hash of an entry: its fields, each length-prefixed, after the previous hash; an HMAC
/// under `key` when there is one.
pub(crate) fn entry_hash(key: Option<&AuditKey>, prev_hash: &str, seq: i64, at: i64, fields: [&str; 5]) -> String {
    let mut hasher = match key {
        Some(key) => blake3::Hasher::new_keyed(&key.0),
        None => blake3::Hasher::new_derive_key("sluice audit entry v1"),
    };
    hasher.update(prev_hash.as_bytes());
    hasher.update(&seq.to_le_bytes());
    hasher.update(&at.to_le_bytes());
    for field in fields {
        hasher.update(&(field.len() as u64).to_le_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

/// The newest (seq, hash, keyed) of the chain: the table's newest entry, else the last rotated
/// segment's anchor, else the genesis.
fn chain_tail(t: &dyn Sql) -> Result<(i64, String, Option<bool>)> {
    let last: Option<(i64, String, bool)> =
        t.query_opt("SELECT seq, hash, keyed FROM audit ORDER BY seq DESC LIMIT 1", params![], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if let Some((seq, hash, keyed)) = last {
        return Ok((seq, hash, Some(keyed)));
    }
    let anchor: Option<(i64, String)> =
        t.query_opt("SELECT last_seq, last_hash FROM audit_segments ORDER BY last_seq DESC LIMIT 1", params![], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(anchor.map_or((0, GENESIS.to_owned(), None), |(seq, hash)| (seq, hash, None)))
}

fn refuse(message: String) -> StoreError {
    StoreError::Invalid(message)
}

/// Appends events inside the caller's transaction (a version's decisions commit with it);
/// returns the sequence number of the last one. With `key`, the newest entry must already be
/// keyed (or the log empty), and without, it must not be: a chain is never mixed by accident.
pub(crate) fn append(t: &dyn Sql, events: &[AuditEvent], key: Option<&AuditKey>) -> Result<Option<i64>> {
    if events.is_empty() {
        return Ok(None);
    }
    let (mut seq, mut prev_hash, keyed) = chain_tail(t)?;
    match (keyed, key) {
        (Some(false), Some(_)) => {
            return Err(refuse(
                "the audit log holds unkeyed entries but an audit key is configured: check it with `sluice audit \
                 verify`, then key it with `sluice audit rekey`"
                    .into(),
            ));
        }
        (Some(true), None) => {
            return Err(refuse(
                "the audit log is keyed: configure its key ([audit] key_file or key_env) to append to it".into(),
            ));
        }
        _ => {}
    }
    let at = now_ms();
    for event in events {
        seq += 1;
        let detail = event.detail.to_string();
        let fields = [&*event.pipeline, &*event.principal, &*event.action, &*event.subject, &*detail];
        let hash = entry_hash(key, &prev_hash, seq, at, fields);
        t.execute(
            "INSERT INTO audit (seq, at, pipeline, principal, action, subject, detail, prev_hash, hash, keyed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                seq,
                at,
                event.pipeline,
                event.principal,
                event.action,
                event.subject,
                detail,
                prev_hash,
                hash,
                key.is_some()
            ],
        )?;
        prev_hash = hash;
    }
    t.execute(
        "INSERT INTO meta (key, value) VALUES ('audit_head', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![format!("{seq}:{prev_hash}")],
    )?;
    Ok(Some(seq))
}

/// An entry as stored: its detail as the exact text that was hashed (parsing JSON and writing
/// it again need not give back the same text, floats especially). Rotated segment files hold
/// these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredEntry {
    pub seq: i64,
    pub at: i64,
    pub pipeline: String,
    pub principal: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
    pub keyed: bool,
}

impl StoredEntry {
    pub(crate) fn to_entry(&self) -> AuditEntry {
        AuditEntry {
            seq: self.seq,
            at: self.at,
            pipeline: self.pipeline.clone(),
            principal: self.principal.clone(),
            action: self.action.clone(),
            subject: self.subject.clone(),
            detail: serde_json::from_str(&self.detail)
                .unwrap_or_else(|_| serde_json::Value::String(self.detail.clone())),
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
            keyed: self.keyed,
        }
    }

    fn hash_with(&self, key: Option<&AuditKey>, prev_hash: &str) -> String {
        let fields = [&*self.pipeline, &*self.principal, &*self.action, &*self.subject, &*self.detail];
        entry_hash(key, prev_hash, self.seq, self.at, fields)
    }
}

pub(crate) fn entry_row(r: &Row) -> Result<StoredEntry> {
    Ok(StoredEntry {
        seq: r.get(0)?,
        at: r.get(1)?,
        pipeline: r.get(2)?,
        principal: r.get(3)?,
        action: r.get(4)?,
        subject: r.get(5)?,
        detail: r.get(6)?,
        prev_hash: r.get(7)?,
        hash: r.get(8)?,
        keyed: r.get(9)?,
    })
}

pub(crate) const ENTRY_COLUMNS: &str = "seq, at, pipeline, principal, action, subject, detail, prev_hash, hash, keyed";

/// Checks one entry against the one before it (`last`): sequence, previous hash, keyed-ness
/// and its own hash. `None` when it is sound.
pub(crate) fn check_entry(entry: &StoredEntry, last: (i64, &str), key: Option<&AuditKey>) -> Option<AuditProblem> {
    let (last_seq, last_hash) = last;
    let problem = |seq, text: &str| Some(AuditProblem { seq, problem: text.to_owned() });
    if entry.seq != last_seq + 1 {
        return Some(AuditProblem {
            seq: last_seq + 1,
            problem: format!("entry {} is missing (the next one found is {})", last_seq + 1, entry.seq),
        });
    }
    if entry.prev_hash != last_hash {
        return problem(entry.seq, "its previous-hash does not match the entry before it");
    }
    match (entry.keyed, key) {
        (false, Some(_)) => return problem(entry.seq, "it is not keyed though the log must be (rewritten?)"),
        (true, None) => return problem(entry.seq, "it is keyed: verifying it needs the audit key"),
        _ => {}
    }
    if entry.hash_with(key, &entry.prev_hash) != entry.hash {
        return problem(entry.seq, "its contents do not match its hash (changed)");
    }
    None
}

impl SqlCatalog {
    /// Runs `f` in one write transaction and appends the events it returns in the same one: an
    /// action and its audit entry take effect together or not at all.
    pub(crate) fn write_audited<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<(T, Vec<AuditEvent>)>) -> Result<T> {
        let key = self.audit_key();
        self.write(|t| {
            let (value, events) = f(t)?;
            append(t, &events, key.as_ref())?;
            Ok(value)
        })
    }

    /// Whether the entry a witness recorded (`seq:hash`) is still in the chain, unchanged.
    fn check_witnessed_head(&self, expected: &str) -> Result<Option<AuditProblem>> {
        let Some((seq, hash)) = expected.split_once(':').and_then(|(s, h)| Some((s.parse::<i64>().ok()?, h))) else {
            return Err(StoreError::Invalid(format!(
                "{expected:?} is not a head (SEQ:HASH, as `sluice audit head` prints)"
            )));
        };
        let found = self.audit_hash_at(seq)?;
        Ok(match found {
            Some(found) if found == hash => None,
            Some(_) => {
                Some(AuditProblem { seq, problem: "it differs from the witnessed head (the log was rewritten)".into() })
            }
            None if seq <= self.audit_expired_up_to()? => Some(AuditProblem {
                seq,
                problem: "the witnessed head was in a rotated segment that retention removed: witness a newer head"
                    .into(),
            }),
            None => Some(AuditProblem {
                seq,
                problem: "the witnessed head is not in the log any more (the log was wiped or cut back)".into(),
            }),
        })
    }
}

impl AuditLog for SqlCatalog {
    fn set_audit_key(&self, key: Option<AuditKey>) {
        *self.audit_key.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = key;
    }

    fn audit(&self, events: &[AuditEvent]) -> Result<()> {
        let key = self.audit_key();
        self.write(|t| append(t, events, key.as_ref()).map(drop))
    }

    fn audit_entries(&self, since: Option<i64>, after_seq: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| {
            c.query_map(
                &format!("SELECT {ENTRY_COLUMNS} FROM audit WHERE at >= ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"),
                params![since.unwrap_or(i64::MIN), after_seq, limit],
                |r| Ok(entry_row(r)?.to_entry()),
            )
        })
    }

    fn audit_is_keyed(&self) -> Result<Option<bool>> {
        self.read(|c| Ok(chain_tail(c)?.2))
    }

    fn audit_head(&self) -> Result<Option<String>> {
        self.read(|c| {
            let (seq, hash, _) = chain_tail(c)?;
            Ok((seq > 0).then(|| format!("{seq}:{hash}")))
        })
    }

    fn verify_audit(&self, expect_head: Option<&str>) -> Result<AuditVerification> {
        let key = self.audit_key();
        let segments = crate::audit_segments::verify_segments(self, key.as_ref())?;
        let mut report = self.read(|c| {
            let (mut last_seq, mut last_hash) = (segments.anchor.0, segments.anchor.1.clone());
            let mut entries = 0u64;
            let mut first_bad = None;
            // A broken chain is read to its end but checked only up to its first bad entry.
            c.for_each_row(&format!("SELECT {ENTRY_COLUMNS} FROM audit ORDER BY seq"), params![], &mut |row| {
                if first_bad.is_some() {
                    return Ok(());
                }
                let entry = entry_row(row)?;
                entries += 1;
                if let Some(problem) = check_entry(&entry, (last_seq, &last_hash), key.as_ref()) {
                    first_bad = Some(problem);
                } else {
                    (last_seq, last_hash) = (entry.seq, entry.hash);
                }
                Ok(())
            })?;
            let head: Option<String> =
                c.query_value_opt("SELECT value FROM meta WHERE key = 'audit_head'", params![])?;
            if first_bad.is_none() {
                first_bad = check_head(head.as_deref(), last_seq, &last_hash, entries);
            }
            if first_bad.is_none() {
                first_bad = check_versions(c, segments.anchor.0, last_seq)?;
            }
            Ok(AuditVerification {
                entries,
                head: (last_seq > 0).then(|| format!("{last_seq}:{last_hash}")),
                keyed: key.is_some(),
                rotated: segments.rotated,
                segments_checked: segments.checked,
                first_bad,
            })
        })?;
        if report.first_bad.is_none() {
            report.first_bad = segments.first_bad;
        }
        if report.first_bad.is_none()
            && let Some(expected) = expect_head
        {
            report.first_bad = self.check_witnessed_head(expected)?;
        }
        Ok(report)
    }

    fn rekey_audit(&self, key: &AuditKey, principal: &str, pipeline: &str) -> Result<u64> {
        let rotated: i64 = self.read(|c| c.query_value("SELECT COUNT(*) FROM audit_segments", params![]))?;
        if rotated > 0 {
            return Err(StoreError::Invalid(
                "rotated segments cannot be rekeyed; rekey before the first rotation".into(),
            ));
        }
        self.write(|t| {
            let entries =
                t.query_map(&format!("SELECT {ENTRY_COLUMNS} FROM audit ORDER BY seq"), params![], entry_row)?;
            let (mut last_seq, mut last_hash) = (0i64, GENESIS.to_owned());
            for entry in &entries {
                let check_with = entry.keyed.then_some(key);
                if let Some(problem) = check_entry(entry, (last_seq, &last_hash), check_with) {
                    return Err(refuse(format!("entry {}: {}; not rekeyed", problem.seq, problem.problem)));
                }
                (last_seq, last_hash) = (entry.seq, entry.hash.clone());
            }
            let mut prev_hash = GENESIS.to_owned();
            for entry in &entries {
                let hash = entry.hash_with(Some(key), &prev_hash);
                t.execute(
                    "UPDATE audit SET prev_hash = ?2, hash = ?3, keyed = 1 WHERE seq = ?1",
                    params![entry.seq, prev_hash, hash],
                )?;
                prev_hash = hash;
            }
            if let Some(last) = entries.last() {
                t.execute(
                    "INSERT INTO meta (key, value) VALUES ('audit_head', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![format!("{}:{prev_hash}", last.seq)],
                )?;
            }
            let detail = serde_json::json!({"entries": entries.len(), "key_id": key.id()});
            append(t, &[AuditEvent::new(pipeline, principal, "audit_rekeyed", "audit log", detail)], Some(key))?;
            Ok(entries.len() as u64)
        })
    }
}

/// The recorded head must name the newest entry; a log with entries must have one.
fn check_head(head: Option<&str>, last_seq: i64, last_hash: &str, entries: u64) -> Option<AuditProblem> {
    match head {
        Some(recorded) if recorded != format!("{last_seq}:{last_hash}") => {
            let recorded_seq = recorded.split(':').next().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
            let problem = if recorded_seq > last_seq {
                format!("entries {} to {recorded_seq} are missing from the end", last_seq + 1)
            } else {
                format!("the newest entry differs from the recorded head {recorded}")
            };
            Some(AuditProblem { seq: last_seq + 1, problem })
        }
        None if entries > 0 => Some(AuditProblem { seq: last_seq, problem: "the recorded head is missing".into() }),
        _ => None,
    }
}

/// Every committed version's commit entry must still be where it was written: in the table,
/// or in a rotated range. A wiped log (entries and head deleted together) fails here.
fn check_versions(c: &dyn Sql, rotated_up_to: i64, last_seq: i64) -> Result<Option<AuditProblem>> {
    let missing: Option<(i64, i64)> = c.query_opt(
        "SELECT v.version, v.audit_seq FROM versions v
         WHERE v.audit_seq IS NOT NULL AND v.audit_seq > ?1
           AND NOT EXISTS (SELECT 1 FROM audit a WHERE a.seq = v.audit_seq AND a.action = 'version_committed')
         ORDER BY v.audit_seq LIMIT 1",
        params![rotated_up_to],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if let Some((version, seq)) = missing {
        let beyond = if seq > last_seq { " (beyond the end of the log: it was cut back or wiped)" } else { "" };
        return Ok(Some(AuditProblem {
            seq,
            problem: format!("the entry recording the commit of version {version} is missing{beyond}"),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog_with_entries(dir: &std::path::Path, count: usize, key: Option<AuditKey>) -> SqlCatalog {
        let catalog = SqlCatalog::sqlite(&dir.join("catalog.sqlite")).unwrap();
        catalog.set_audit_key(key);
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

    fn first_bad(catalog: &SqlCatalog) -> Option<i64> {
        catalog.verify_audit(None).unwrap().first_bad.map(|bad| bad.seq)
    }

    fn key(byte: u8) -> AuditKey {
        AuditKey::parse(hex::encode([byte; 32]).as_bytes()).unwrap()
    }

    #[test]
    fn an_untouched_log_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog_with_entries(dir.path(), 10, None);
        let report = catalog.verify_audit(None).unwrap();
        assert_eq!(report.entries, 10);
        assert!(report.first_bad.is_none(), "{:?}", report.first_bad);
        assert!(report.head.as_ref().unwrap().starts_with("10:"));
        assert_eq!(catalog.audit_head().unwrap(), report.head);
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
            let catalog = catalog_with_entries(dir.path(), 10, None);
            tamper(dir.path(), sql);
            assert_eq!(first_bad(&catalog), Some(expected), "after {sql}");
        }
    }

    /// Recomputes every hash without a key, as someone who can write the catalog could.
    fn rewrite_consistently(dir: &std::path::Path) {
        let connection = rusqlite::Connection::open(dir.join("catalog.sqlite")).unwrap();
        connection.execute("UPDATE audit SET subject = 'nothing to see' WHERE seq = 3", []).unwrap();
        let mut prev = GENESIS.to_owned();
        let entries: Vec<StoredEntry> = (&connection as &dyn Sql)
            .query_map(&format!("SELECT {ENTRY_COLUMNS} FROM audit ORDER BY seq"), params![], entry_row)
            .unwrap();
        for entry in entries {
            let hash = entry.hash_with(None, &prev);
            connection
                .execute(
                    "UPDATE audit SET prev_hash = ?2, hash = ?3, keyed = 0 WHERE seq = ?1",
                    rusqlite::params![entry.seq, prev, hash],
                )
                .unwrap();
            prev = hash;
        }
        connection.execute("UPDATE meta SET value = ?1 WHERE key = 'audit_head'", [format!("10:{prev}")]).unwrap();
    }

    #[test]
    fn a_consistent_rewrite_fails_against_the_key_and_the_witnessed_head() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog_with_entries(dir.path(), 10, Some(key(7)));
        let witnessed = catalog.audit_head().unwrap().unwrap();
        assert!(catalog.verify_audit(Some(&witnessed)).unwrap().first_bad.is_none());
        rewrite_consistently(dir.path());
        // With the key, the first rewritten entry is not keyed.
        assert_eq!(first_bad(&catalog), Some(1));
        // Without the key the chain looks fine, but the witnessed head is gone.
        catalog.set_audit_key(None);
        assert_eq!(first_bad(&catalog), None);
        let report = catalog.verify_audit(Some(&witnessed)).unwrap();
        assert_eq!(report.first_bad.map(|bad| bad.seq), Some(10));
        // A wrong key fails the first entry.
        let dir = tempfile::tempdir().unwrap();
        let keyed = catalog_with_entries(dir.path(), 4, Some(key(7)));
        keyed.set_audit_key(Some(key(8)));
        assert_eq!(first_bad(&keyed), Some(1));
    }

    #[test]
    fn a_log_is_rekeyed_once_checked_and_never_mixed() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog_with_entries(dir.path(), 6, None);
        catalog.set_audit_key(Some(key(1)));
        // Appending keyed entries to an unkeyed log is refused, and verify says why.
        assert!(catalog.audit(&[AuditEvent::new("p", "a", "x", "y", serde_json::json!({}))]).is_err());
        assert_eq!(first_bad(&catalog), Some(1));
        assert_eq!(catalog.rekey_audit(&key(1), "local:root", "p").unwrap(), 6);
        let report = catalog.verify_audit(None).unwrap();
        assert!(report.first_bad.is_none(), "{:?}", report.first_bad);
        assert_eq!(report.entries, 7);
        catalog.set_audit_key(None);
        assert!(catalog.audit(&[AuditEvent::new("p", "a", "x", "y", serde_json::json!({}))]).is_err());
    }

    #[test]
    fn keys_are_hex_or_long_secrets() {
        assert!(AuditKey::parse(b"short").is_err());
        assert_eq!(AuditKey::parse(hex::encode([3u8; 32]).as_bytes()).unwrap().0, [3u8; 32]);
        assert_eq!(AuditKey::parse(b"a secret phrase of at least thirty-two bytes").unwrap().id().len(), 12);
    }
}
