//! Files the daemon was in the middle of when it stopped.
//!
//! Before the daemon takes on a large document's chunks (reading the parser's answer,
//! embedding and writing them), it records the file here, durably; the record goes when the
//! document is written, or when its run ends in any way but a crash. A record still here at the
//! next start names a file that was in the daemon's hands when it crashed or hung: that run
//! quarantines it (`crashed_run`) instead of taking it on again, so one document cannot crash
//! the daemon at every restart. Small documents get no record: their share of the daemon's
//! memory and time is too small to be the cause, and a `kill -9` must not quarantine them.

use serde::{Deserialize, Serialize};

use crate::catalog::{SqlCatalog, now_ms, params};
use crate::error::Result;
use crate::prelude::*;

/// A file taken on by a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub root: String,
    pub rel_path: String,
    /// The file as it was (the same size and time at the next start mean the same file).
    pub size: u64,
    pub mtime_ns: i64,
    pub run_id: String,
    /// What the parser announced: bytes of its answer and chunks.
    pub answer_bytes: u64,
    pub chunks: u64,
    pub started_at: i64,
}

impl InFlightLog for SqlCatalog {
    fn record_in_flight(&self, pipeline: &str, entry: &InFlight) -> Result<()> {
        self.write(|t| {
            t.execute(
                "INSERT INTO in_flight (pipeline, root, rel_path, size, mtime_ns, run_id, answer_bytes, chunks,
                     started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (pipeline, root, rel_path) DO UPDATE SET size = excluded.size,
                     mtime_ns = excluded.mtime_ns, run_id = excluded.run_id, answer_bytes = excluded.answer_bytes,
                     chunks = excluded.chunks, started_at = excluded.started_at",
                params![
                    pipeline,
                    entry.root,
                    entry.rel_path,
                    entry.size as i64,
                    entry.mtime_ns,
                    entry.run_id,
                    entry.answer_bytes as i64,
                    entry.chunks as i64,
                    if entry.started_at == 0 { now_ms() } else { entry.started_at }
                ],
            )?;
            Ok(())
        })
    }

    fn clear_in_flight(&self, pipeline: &str, root: &str, rel_path: &str) -> Result<()> {
        self.write(|t| {
            t.execute(
                "DELETE FROM in_flight WHERE pipeline = ?1 AND root = ?2 AND rel_path = ?3",
                params![pipeline, root, rel_path],
            )?;
            Ok(())
        })
    }

    fn clear_in_flight_of_run(&self, pipeline: &str, run_id: &str) -> Result<()> {
        self.write(|t| {
            t.execute("DELETE FROM in_flight WHERE pipeline = ?1 AND run_id = ?2", params![pipeline, run_id])?;
            Ok(())
        })
    }

    fn in_flight(&self, pipeline: &str) -> Result<Vec<InFlight>> {
        self.read(|c| {
            c.query_map(
                "SELECT root, rel_path, size, mtime_ns, run_id, answer_bytes, chunks, started_at FROM in_flight
                 WHERE pipeline = ?1 ORDER BY root, rel_path",
                params![pipeline],
                |r| {
                    Ok(InFlight {
                        root: r.get(0)?,
                        rel_path: r.get(1)?,
                        size: r.get::<i64>(2)? as u64,
                        mtime_ns: r.get(3)?,
                        run_id: r.get(4)?,
                        answer_bytes: r.get::<i64>(5)? as u64,
                        chunks: r.get::<i64>(6)? as u64,
                        started_at: r.get(7)?,
                    })
                },
            )
        })
    }
}
