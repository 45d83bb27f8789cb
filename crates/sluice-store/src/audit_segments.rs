//! Rotation of the audit log: old entries move out of the catalog into segment files, and the
//! chain stays verifiable across them.
//!
//! When the catalog holds more than `rotate_after` entries, the oldest half is written to
//! `audit/segment-<first>-<last>.jsonl` beside the catalog (mode 0600; written, synced,
//! renamed), then, in one transaction, deleted from the table and recorded in
//! `audit_segments` with the segment's last hash (the anchor the next entry's previous-hash
//! must equal) and the file's blake3. A crash between the two steps leaves the entries in the
//! table and a file the next rotation writes again. Retention (`keep_days`) deletes old files;
//! their anchor rows stay, so the chain after them still verifies.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use crate::audit::{AuditEntry, AuditKey, AuditProblem, ENTRY_COLUMNS, GENESIS, StoredEntry, check_entry, entry_row};
use crate::catalog::{SqlCatalog, now_ms, params};
use crate::error::{Result, StoreError};
use crate::prelude::*;

/// One rotated range, as `audit_segments` records it.
struct Segment {
    first_seq: i64,
    last_seq: i64,
    last_hash: String,
    file: Option<String>,
    file_hash: String,
}

/// What the segments say about the chain.
pub(crate) struct SegmentCheck {
    /// (seq, hash) the catalog's first entry must follow.
    pub anchor: (i64, String),
    /// Entries rotated out, and segment files read and checked.
    pub rotated: u64,
    pub checked: u64,
    pub first_bad: Option<AuditProblem>,
}

impl SqlCatalog {
    fn audit_dir(&self) -> PathBuf {
        self.files_dir().join("audit")
    }

    fn segments(&self) -> Result<Vec<Segment>> {
        self.read(|c| {
            c.query_map(
                "SELECT first_seq, last_seq, last_hash, file, file_hash FROM audit_segments ORDER BY first_seq",
                params![],
                |r| {
                    Ok(Segment {
                        first_seq: r.get(0)?,
                        last_seq: r.get(1)?,
                        last_hash: r.get(2)?,
                        file: r.get(3)?,
                        file_hash: r.get(4)?,
                    })
                },
            )
        })
    }

    /// Writes a segment durably (to a temporary name first); returns its blake3.
    fn write_segment(&self, name: &str, entries: &[StoredEntry]) -> Result<String> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.audit_dir();
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| StoreError::Io { path, source }
        };
        crate::lock::create_private_dir(&dir).map_err(io(&dir))?;
        let partial = dir.join(format!("{name}.partial"));
        let mut bytes = Vec::new();
        for entry in entries {
            serde_json::to_writer(&mut bytes, entry).map_err(|err| StoreError::Invalid(err.to_string()))?;
            bytes.push(b'\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .map_err(io(&partial))?;
        file.write_all(&bytes).map_err(io(&partial))?;
        file.sync_all().map_err(io(&partial))?;
        let target = dir.join(name);
        std::fs::rename(&partial, &target).map_err(io(&target))?;
        Ok(blake3::hash(&bytes).to_hex().to_string())
    }

    fn expire_segments(&self, keep_days: u64) -> Result<()> {
        if keep_days == 0 {
            return Ok(());
        }
        let cutoff = now_ms() - i64::try_from(keep_days.saturating_mul(86_400_000)).unwrap_or(i64::MAX);
        let expired: Vec<(i64, String)> = self.read(|c| {
            c.query_map(
                "SELECT first_seq, file FROM audit_segments WHERE file IS NOT NULL AND rotated_at < ?1",
                params![cutoff],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })?;
        for (first_seq, file) in expired {
            let path = self.audit_dir().join(&file);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Io { path, source }),
            }
            self.write(|t| {
                t.execute("UPDATE audit_segments SET file = NULL WHERE first_seq = ?1", params![first_seq])
            })?;
        }
        Ok(())
    }

    /// The entries of a segment file that is still there.
    fn segment_entries(&self, file: &str) -> Result<(Vec<StoredEntry>, String)> {
        let path = self.audit_dir().join(file);
        let bytes = std::fs::read(&path).map_err(|source| StoreError::Io { path: path.clone(), source })?;
        let hash = blake3::hash(&bytes).to_hex().to_string();
        let mut entries = Vec::new();
        for line in bytes.lines() {
            let line = line.map_err(|source| StoreError::Io { path: path.clone(), source })?;
            entries.push(serde_json::from_str(&line).map_err(|err| StoreError::Corrupt(format!("{file}: {err}")))?);
        }
        Ok((entries, hash))
    }

    /// The last entry rotated out whose segment file retention removed (0: none).
    pub(crate) fn audit_expired_up_to(&self) -> Result<i64> {
        self.read(|c| {
            c.query_value("SELECT COALESCE(MAX(last_seq), 0) FROM audit_segments WHERE file IS NULL", params![])
        })
    }

    /// The hash of entry `seq`, from the catalog or a rotated segment; `None` when it is
    /// nowhere (never written, cut, or in a segment file retention removed).
    pub(crate) fn audit_hash_at(&self, seq: i64) -> Result<Option<String>> {
        let in_table: Option<String> =
            self.read(|c| c.query_value_opt("SELECT hash FROM audit WHERE seq = ?1", params![seq]))?;
        if in_table.is_some() {
            return Ok(in_table);
        }
        for segment in self.segments()? {
            if !(segment.first_seq..=segment.last_seq).contains(&seq) {
                continue;
            }
            if seq == segment.last_seq {
                return Ok(Some(segment.last_hash));
            }
            let Some(file) = segment.file else { return Ok(None) };
            let (entries, _) = self.segment_entries(&file)?;
            return Ok(entries.into_iter().find(|entry| entry.seq == seq).map(|entry| entry.hash));
        }
        Ok(None)
    }
}

impl AuditArchive for SqlCatalog {
    fn rotate_audit(&self, rotate_after: u64, keep_days: u64) -> Result<Option<(i64, i64)>> {
        let _one_at_a_time = self.rotation.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.expire_segments(keep_days)?;
        // Sequence numbers in the table have no gaps, so this counts without a scan.
        let (first, last): (Option<i64>, Option<i64>) = self
            .read(|c| c.query_row("SELECT MIN(seq), MAX(seq) FROM audit", params![], |r| Ok((r.get(0)?, r.get(1)?))))?;
        let (Some(first), Some(last)) = (first, last) else { return Ok(None) };
        let count = last - first + 1;
        if (count as u64) <= rotate_after {
            return Ok(None);
        }
        let last = first + (count / 2) - 1;
        let entries = self.read(|c| {
            c.query_map(
                &format!("SELECT {ENTRY_COLUMNS} FROM audit WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq"),
                params![first, last],
                entry_row,
            )
        })?;
        let Some(last_entry) = entries.last() else { return Ok(None) };
        let name = format!("segment-{first:012}-{last:012}.jsonl");
        let file_hash = self.write_segment(&name, &entries)?;
        let last_hash = last_entry.hash.clone();
        self.write(|t| {
            t.execute(
                "INSERT INTO audit_segments (first_seq, last_seq, last_hash, file, file_hash, rotated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (first_seq) DO UPDATE SET last_seq = excluded.last_seq, last_hash = excluded.last_hash,
                     file = excluded.file, file_hash = excluded.file_hash, rotated_at = excluded.rotated_at",
                params![first, last, last_hash, name, file_hash, now_ms()],
            )?;
            t.execute("DELETE FROM audit WHERE seq BETWEEN ?1 AND ?2", params![first, last])?;
            Ok(())
        })?;
        Ok(Some((first, last)))
    }

    fn visit_audit_entries(&self, since: Option<i64>, visit: &mut dyn FnMut(&AuditEntry) -> Result<()>) -> Result<u64> {
        let since = since.unwrap_or(i64::MIN);
        let mut visited = 0;
        for segment in self.segments()? {
            let Some(file) = segment.file else { continue };
            for entry in self.segment_entries(&file)?.0.iter().filter(|entry| entry.at >= since) {
                visit(&entry.to_entry())?;
                visited += 1;
            }
        }
        let mut after = 0;
        loop {
            let page = self.audit_entries(Some(since), after, 10_000)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for entry in &page {
                visit(entry)?;
                visited += 1;
            }
        }
        Ok(visited)
    }
}

/// Checks the rotated segments: ranges without gaps, files (those still there) matching their
/// hash and chaining from the segment before, each ending on its recorded anchor.
pub(crate) fn verify_segments(catalog: &SqlCatalog, key: Option<&AuditKey>) -> Result<SegmentCheck> {
    let mut check = SegmentCheck { anchor: (0, GENESIS.to_owned()), rotated: 0, checked: 0, first_bad: None };
    for segment in catalog.segments()? {
        let (last_seq, last_hash) = check.anchor.clone();
        if segment.first_seq != last_seq + 1 {
            check.first_bad.get_or_insert(AuditProblem {
                seq: last_seq + 1,
                problem: format!("rotated entries {} to {} are missing", last_seq + 1, segment.first_seq - 1),
            });
        }
        check.rotated += (segment.last_seq - segment.first_seq + 1) as u64;
        if let Some(file) = &segment.file
            && check.first_bad.is_none()
        {
            check.checked += 1;
            check.first_bad = check_segment_file(catalog, &segment, file, (last_seq, &last_hash), key)?;
        }
        check.anchor = (segment.last_seq, segment.last_hash);
    }
    Ok(check)
}

fn check_segment_file(
    catalog: &SqlCatalog,
    segment: &Segment,
    file: &str,
    before: (i64, &str),
    key: Option<&AuditKey>,
) -> Result<Option<AuditProblem>> {
    let (entries, hash) = match catalog.segment_entries(file) {
        Ok(read) => read,
        Err(err) => {
            return Ok(Some(AuditProblem { seq: segment.first_seq, problem: format!("segment {file}: {err}") }));
        }
    };
    if hash != segment.file_hash {
        return Ok(Some(AuditProblem { seq: segment.first_seq, problem: format!("segment {file} was changed") }));
    }
    let (mut last_seq, mut last_hash) = (before.0, before.1.to_owned());
    for entry in &entries {
        // A segment's own chain starts from the anchor before it, which may be a removed file's.
        if let Some(problem) = check_entry(entry, (last_seq, &last_hash), key) {
            return Ok(Some(problem));
        }
        (last_seq, last_hash) = (entry.seq, entry.hash.clone());
    }
    if (last_seq, last_hash.as_str()) != (segment.last_seq, segment.last_hash.as_str()) {
        return Ok(Some(AuditProblem {
            seq: segment.last_seq,
            problem: format!("segment {file} does not end on its recorded anchor"),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditEvent;

    #[test]
    fn a_rotated_log_still_verifies_and_exports_whole() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqlCatalog::sqlite(&dir.path().join("catalog.sqlite")).unwrap();
        for i in 0..30 {
            catalog.audit(&[AuditEvent::new("p", "a", "search", format!("q{i}"), serde_json::json!({}))]).unwrap();
        }
        let head = catalog.audit_head().unwrap().unwrap();
        assert_eq!(catalog.rotate_audit(20, 0).unwrap(), Some((1, 15)));
        assert_eq!(catalog.rotate_audit(20, 0).unwrap(), None);
        let report = catalog.verify_audit(Some(&head)).unwrap();
        assert!(report.first_bad.is_none(), "{:?}", report.first_bad);
        assert_eq!((report.entries, report.rotated, report.segments_checked), (15, 15, 1));
        // An entry inside the segment is still found, and the export has all 30.
        assert!(
            catalog
                .verify_audit(Some(&format!("7:{}", catalog.audit_hash_at(7).unwrap().unwrap())))
                .unwrap()
                .first_bad
                .is_none()
        );
        let mut seqs = Vec::new();
        catalog
            .visit_audit_entries(None, &mut |entry: &AuditEntry| {
                seqs.push(entry.seq);
                Ok(())
            })
            .unwrap();
        assert_eq!(seqs, (1..=30).collect::<Vec<_>>());
        // A changed segment file is caught.
        let file = dir.path().join("audit").join("segment-000000000001-000000000015.jsonl");
        let text = std::fs::read_to_string(&file).unwrap().replace("q3", "q9");
        std::fs::write(&file, text).unwrap();
        assert_eq!(catalog.verify_audit(None).unwrap().first_bad.map(|bad| bad.seq), Some(1));
    }
}
