//! `sluice diff N M`: the chunks added and retired between two versions, each with its reason.
//!
//! A chunk is the same in both versions when its id and the model that embedded it are: a
//! model change keeps chunk ids (same text, same place) but replaces every vector, so it shows
//! as retired and added with reason `model_changed`.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use sluice_core::{ChunkId, Version};

use crate::catalog::{SqlCatalog, params, parse_id, parse_reason};
use crate::error::{Result, StoreError};
use crate::prelude::*;
use crate::types::{ChangeReason, join_path};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionDiff {
    pub from: Version,
    pub to: Version,
    /// Visible at `to`, not at `from`; by path, then position.
    pub added: Vec<DiffEntry>,
    /// Visible at `from`, not at `to`.
    pub retired: Vec<DiffEntry>,
    /// Reason → (chunks added, chunks retired).
    pub counts: BTreeMap<ChangeReason, DiffCount>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffCount {
    pub added: usize,
    pub retired: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffEntry {
    pub chunk_id: ChunkId,
    pub path: String,
    pub ordinal: u32,
    pub reason: ChangeReason,
}

/// One chunk visible at a version, with both reasons of its document version.
struct Visible {
    key: (ChunkId, String),
    path: String,
    ordinal: u32,
    added_reason: ChangeReason,
    retired_reason: Option<ChangeReason>,
}

impl SqlCatalog {
    fn visible_for_diff(&self, pipeline: &str, version: Version) -> Result<Vec<Visible>> {
        self.read(|c| {
            c.query_map(
                "SELECT c.chunk_id, d.model_fingerprint, d.root, d.rel_path, d.member, c.ordinal, d.added_reason,
                        d.retired_reason
                 FROM chunks c JOIN documents d ON d.id = c.document
                 WHERE c.pipeline = ?1 AND c.valid_from <= ?2 AND ?2 < c.valid_to
                 ORDER BY d.root, d.rel_path, d.member, c.ordinal",
                params![pipeline, version],
                |r| {
                    Ok(Visible {
                        key: (parse_id(r.get(0)?, ChunkId::parse)?, r.get(1)?),
                        path: join_path(&r.get::<String>(2)?, &r.get::<String>(3)?, &r.get::<String>(4)?),
                        ordinal: r.get(5)?,
                        added_reason: parse_reason(r.get(6)?)?,
                        retired_reason: r.get::<Option<String>>(7)?.map(parse_reason).transpose()?,
                    })
                },
            )
        })
    }
}

impl VersionDiffs for SqlCatalog {
    fn diff(&self, pipeline: &str, from: Version, to: Version) -> Result<VersionDiff> {
        if from > to {
            return Err(StoreError::Invalid(format!("diff goes forward: {from} is later than {to}")));
        }
        self.require_committed(pipeline, from)?;
        self.require_committed(pipeline, to)?;
        let before = self.visible_for_diff(pipeline, from)?;
        let after = self.visible_for_diff(pipeline, to)?;
        let before_keys: HashSet<&(ChunkId, String)> = before.iter().map(|v| &v.key).collect();
        let after_keys: HashSet<&(ChunkId, String)> = after.iter().map(|v| &v.key).collect();
        let mut counts: BTreeMap<ChangeReason, DiffCount> = BTreeMap::new();
        let mut added = Vec::new();
        for visible in after.iter().filter(|v| !before_keys.contains(&v.key)) {
            counts.entry(visible.added_reason).or_default().added += 1;
            added.push(entry(visible, visible.added_reason));
        }
        let mut retired = Vec::new();
        for visible in before.iter().filter(|v| !after_keys.contains(&v.key)) {
            // Not visible at `to` while visible at `from`: retired at some version up to `to`.
            let reason = visible
                .retired_reason
                .ok_or_else(|| StoreError::Corrupt(format!("chunk {} was retired without a reason", visible.key.0)))?;
            counts.entry(reason).or_default().retired += 1;
            retired.push(entry(visible, reason));
        }
        Ok(VersionDiff { from, to, added, retired, counts })
    }
}

fn entry(visible: &Visible, reason: ChangeReason) -> DiffEntry {
    DiffEntry { chunk_id: visible.key.0, path: visible.path.clone(), ordinal: visible.ordinal, reason }
}
