//! Several sluice processes on one catalog (DESIGN.md §9): who they are, which source files
//! each has taken on, and the lock that lets one at a time write a pipeline's versions.
//!
//! A node registers at start and refreshes its heartbeat (with the version its lexical index
//! has applied) every few seconds; `sluice nodes` lists them, one whose heartbeat is older
//! than its lease as gone. A node claims the files it will process for a lease
//! (`claims`): a file claimed by another node whose lease has not expired is not taken, so two
//! writers never process the same file, and a dead node's claims return to the pool when
//! their lease runs out (the heartbeat extends a live node's). Claiming is one upsert per
//! file that wins only when the row is new, its lease expired or it is the claimer's own, the
//! equivalent of `SELECT … FOR UPDATE SKIP LOCKED` without holding a transaction open.

use serde::{Deserialize, Serialize};
use sluice_core::Version;

use crate::catalog::{SqlCatalog, now_ms, params};
use crate::error::{Result, StoreError};
use crate::prelude::*;

/// What a node is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Watches sources and writes versions (`sluice run`, `sluice ingest`).
    Writer,
    /// Answers the HTTP API from the shared stores (`sluice serve`).
    Query,
}

impl NodeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Writer => "writer",
            NodeRole::Query => "query",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "writer" => Some(NodeRole::Writer),
            "query" => Some(NodeRole::Query),
            _ => None,
        }
    }
}

/// A node as it registers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Random, made at each start.
    pub id: String,
    pub pipeline: String,
    pub role: NodeRole,
    pub host: String,
    /// Where its HTTP API listens (empty without one).
    pub address: String,
    pub pid: u32,
    /// Unix milliseconds.
    pub started_at: i64,
}

impl NodeRecord {
    /// This process, as the node of the data directory `data_dir`: a node is its data
    /// directory (one process holds it at a time), so its id is kept there, and a node that
    /// restarts after a crash takes its own claims back at once instead of waiting for them to
    /// expire.
    pub fn this_process(pipeline: &str, role: NodeRole, address: &str, data_dir: &std::path::Path) -> Result<Self> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Ok(Self {
            id: node_id(data_dir)?,
            pipeline: pipeline.to_owned(),
            role,
            host,
            address: address.to_owned(),
            pid: std::process::id(),
            started_at: now_ms(),
        })
    }
}

/// The node id kept in `data_dir` (made at the first start).
fn node_id(data_dir: &std::path::Path) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join(NODE_ID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let id = text.trim()
        && id.len() == 16
        && id.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Ok(id.to_owned());
    }
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|err| StoreError::Invalid(format!("no randomness for a node id: {err}")))?;
    let id = hex::encode(bytes);
    let partial = path.with_extension("partial");
    let io = |source| StoreError::Io { path: partial.clone(), source };
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&partial).map_err(io)?;
    file.write_all(id.as_bytes()).and_then(|()| file.sync_all()).map_err(io)?;
    std::fs::rename(&partial, &path).map_err(|source| StoreError::Io { path: path.clone(), source })?;
    Ok(id)
}

/// The file in a data directory that names its node.
pub const NODE_ID_FILE: &str = "node-id";

/// A node as `sluice nodes` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    #[serde(flatten)]
    pub node: NodeRecord,
    pub heartbeat_at: i64,
    /// The newest version its lexical index has applied.
    pub applied_version: Version,
    /// Files it holds claims on now.
    pub claims: u64,
    /// Whether its heartbeat is recent.
    pub alive: bool,
    /// Its counters (documents, chunks, runs), as it last reported them.
    pub stats: serde_json::Value,
}

/// A source file: (root, path relative to it).
pub type FileKey = (String, String);

/// Holds a pipeline's write lock until dropped.
pub struct PipelineLock {
    _held: Box<dyn Send>,
}

impl PipelineLock {
    pub(crate) fn new(held: Box<dyn Send>) -> Self {
        Self { _held: held }
    }
}

impl Cluster for SqlCatalog {
    fn register_node(&self, node: &NodeRecord) -> Result<()> {
        let now = now_ms();
        self.write(|t| {
            // Nodes gone for a day are forgotten.
            t.execute("DELETE FROM nodes WHERE heartbeat_at < ?1", params![now - 86_400_000])?;
            t.execute(
                "INSERT INTO nodes (id, pipeline, role, host, address, pid, started_at, heartbeat_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO UPDATE SET pipeline = excluded.pipeline, role = excluded.role,
                     host = excluded.host, address = excluded.address, pid = excluded.pid,
                     started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
                params![
                    node.id,
                    node.pipeline,
                    node.role.as_str(),
                    node.host,
                    node.address,
                    node.pid,
                    node.started_at,
                    now
                ],
            )?;
            Ok(())
        })
    }

    fn heartbeat(&self, node: &str, applied: Version, stats: &serde_json::Value, lease_ms: i64) -> Result<()> {
        let now = now_ms();
        self.write(|t| {
            let known = t.execute(
                "UPDATE nodes SET heartbeat_at = ?2, applied_version = ?3, stats = ?4 WHERE id = ?1",
                params![node, now, applied, stats.to_string()],
            )?;
            if known == 0 {
                return Err(StoreError::NotFound(format!(
                    "node {node} is not registered (forgotten after a long silence?)"
                )));
            }
            t.execute("UPDATE claims SET expires_at = ?2 WHERE node = ?1", params![node, now + lease_ms])?;
            Ok(())
        })
    }

    fn nodes(&self, pipeline: &str, silent_after_ms: i64) -> Result<Vec<NodeStatus>> {
        let now = now_ms();
        self.read(|c| {
            c.query_map(
                "SELECT n.id, n.pipeline, n.role, n.host, n.address, n.pid, n.started_at, n.heartbeat_at,
                        n.applied_version, n.stats,
                        (SELECT COUNT(*) FROM claims c WHERE c.node = n.id AND c.expires_at >= ?2)
                 FROM nodes n WHERE n.pipeline = ?1 ORDER BY n.role DESC, n.started_at, n.id",
                params![pipeline, now],
                |r| {
                    let role: String = r.get(2)?;
                    let heartbeat_at: i64 = r.get(7)?;
                    Ok(NodeStatus {
                        node: NodeRecord {
                            id: r.get(0)?,
                            pipeline: r.get(1)?,
                            role: NodeRole::parse(&role)
                                .ok_or_else(|| StoreError::Corrupt(format!("unknown node role {role:?}")))?,
                            host: r.get(3)?,
                            address: r.get(4)?,
                            pid: r.get(5)?,
                            started_at: r.get(6)?,
                        },
                        heartbeat_at,
                        applied_version: r.get(8)?,
                        stats: serde_json::from_str(&r.get::<String>(9)?).unwrap_or_default(),
                        claims: r.get(10)?,
                        alive: now - heartbeat_at <= silent_after_ms,
                    })
                },
            )
        })
    }

    fn remove_node(&self, node: &str) -> Result<()> {
        self.write(|t| {
            t.execute("DELETE FROM claims WHERE node = ?1", params![node])?;
            t.execute("DELETE FROM nodes WHERE id = ?1", params![node])?;
            Ok(())
        })
    }

    fn claim_files(
        &self,
        pipeline: &str,
        node: &str,
        files: &[FileKey],
        lease_ms: i64,
        max: usize,
    ) -> Result<Vec<FileKey>> {
        let now = now_ms();
        self.write(|t| {
            let mut claimed = Vec::new();
            for (root, rel_path) in files {
                if claimed.len() >= max {
                    break;
                }
                let won = t.query_opt(
                    "INSERT INTO claims (pipeline, root, rel_path, node, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (pipeline, root, rel_path) DO UPDATE SET node = excluded.node,
                         expires_at = excluded.expires_at
                     WHERE claims.expires_at < ?6 OR claims.node = excluded.node
                     RETURNING rel_path",
                    params![pipeline, root, rel_path, node, now + lease_ms, now],
                    |_| Ok(()),
                )?;
                if won.is_some() {
                    claimed.push((root.clone(), rel_path.clone()));
                }
            }
            Ok(claimed)
        })
    }

    fn release_claims(&self, pipeline: &str, node: &str, files: &[FileKey]) -> Result<()> {
        self.write(|t| {
            for (root, rel_path) in files {
                t.execute(
                    "DELETE FROM claims WHERE pipeline = ?1 AND root = ?2 AND rel_path = ?3 AND node = ?4",
                    params![pipeline, root, rel_path, node],
                )?;
            }
            Ok(())
        })
    }

    fn lock_pipeline(&self, pipeline: &str) -> Result<PipelineLock> {
        Ok(PipelineLock::new(self.hold_lock(&format!("pipeline writes {pipeline}"))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_exclusive_until_its_lease_expires_and_a_node_can_renew_it() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqlCatalog::sqlite(&dir.path().join("catalog.sqlite")).unwrap();
        for (id, role) in [("a", NodeRole::Writer), ("b", NodeRole::Writer), ("q", NodeRole::Query)] {
            let node =
                NodeRecord { id: id.into(), ..NodeRecord::this_process("p", role, "127.0.0.1:1", dir.path()).unwrap() };
            catalog.register_node(&node).unwrap();
        }
        let files: Vec<FileKey> = (0..5).map(|i| ("/r".to_owned(), format!("{i}.txt"))).collect();
        let a = catalog.claim_files("p", "a", &files, 60_000, 3).unwrap();
        assert_eq!(a, files[..3]);
        let b = catalog.claim_files("p", "b", &files, 60_000, 10).unwrap();
        assert_eq!(b, files[3..], "b takes only what a does not hold");
        assert_eq!(catalog.claim_files("p", "a", &files[..1], 60_000, 10).unwrap(), files[..1], "a renews its own");
        // An expired lease is taken over.
        catalog.claim_files("p", "a", &files[..1], -1, 10).unwrap();
        assert_eq!(catalog.claim_files("p", "b", &files[..1], 60_000, 10).unwrap(), files[..1]);
        catalog.heartbeat("a", 4, &serde_json::json!({"runs": 1}), 60_000).unwrap();
        let nodes = catalog.nodes("p", 30_000).unwrap();
        let claims: Vec<(&str, u64)> = nodes.iter().map(|n| (n.node.id.as_str(), n.claims)).collect();
        assert_eq!(claims, [("a", 2), ("b", 3), ("q", 0)]);
        assert_eq!(nodes[0].applied_version, 4);
        assert!(nodes.iter().all(|n| n.alive));
        catalog.release_claims("p", "b", &files[3..]).unwrap();
        catalog.remove_node("a").unwrap();
        let nodes = catalog.nodes("p", 30_000).unwrap();
        let claims: Vec<(&str, u64)> = nodes.iter().map(|n| (n.node.id.as_str(), n.claims)).collect();
        assert_eq!(claims, [("b", 1), ("q", 0)]);
        assert!(catalog.heartbeat("a", 0, &serde_json::json!({}), 1).is_err(), "a removed node is unknown");
    }
}
