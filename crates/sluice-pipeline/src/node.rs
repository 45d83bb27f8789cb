//! This process as a node of its catalog (sluice-store's `cluster.rs`): registered when it
//! starts, a heartbeat every `[store.postgres] heartbeat_secs` (the version its indexes hold,
//! its counters, and the leases of the files it has claimed, extended to `lease_secs`), removed
//! when it stops cleanly. A node that dies stays listed, silent, and its claims return to the
//! pool when their lease runs out.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sluice_core::Version;
use sluice_store::{Catalog, NodeRecord, StoreError};
use tracing::warn;

/// What a node reports with each heartbeat: the version its indexes hold, and its counters.
pub type Report = dyn Fn() -> (Version, serde_json::Value) + Send + Sync;

/// Membership of the catalog's nodes, for as long as this value lives.
pub struct Membership {
    id: String,
    catalog: Arc<dyn Catalog>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    heartbeat: Option<JoinHandle<()>>,
}

impl Membership {
    /// Registers `node` and starts its heartbeat, every `heartbeat`, extending its claims to
    /// `lease` from then.
    pub fn join(
        catalog: Arc<dyn Catalog>,
        node: NodeRecord,
        report: Arc<Report>,
        (heartbeat, lease): (Duration, Duration),
    ) -> Result<Self, StoreError> {
        catalog.register_node(&node)?;
        let id = node.id.clone();
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let heartbeat = {
            let (catalog, stop) = (catalog.clone(), stop.clone());
            std::thread::Builder::new()
                .name("node-heartbeat".into())
                .spawn(move || beat(&*catalog, &node, &*report, &stop, heartbeat, lease))
                .map_err(|source| StoreError::Io { path: "node heartbeat thread".into(), source })?
        };
        Ok(Self { id, catalog, stop, heartbeat: Some(heartbeat) })
    }

    /// This node's id in the catalog.
    pub fn id(&self) -> &str {
        &self.id
    }
}

fn beat(
    catalog: &dyn Catalog,
    node: &NodeRecord,
    report: &Report,
    stop: &(Mutex<bool>, Condvar),
    heartbeat: Duration,
    lease: Duration,
) {
    let lease_ms = lease.as_millis() as i64;
    loop {
        let (applied, stats) = report();
        match catalog.heartbeat(&node.id, applied, &stats, lease_ms) {
            Ok(()) => {}
            // Forgotten after a long silence (a paused VM, a partition): join again.
            Err(StoreError::NotFound(_)) => {
                if let Err(err) = catalog.register_node(node) {
                    warn!(node = %node.id, error = %err, "cannot register this node again");
                }
            }
            Err(err) => warn!(node = %node.id, error = %err, "heartbeat failed; claims expire if this lasts"),
        }
        let (stopped, wake) = stop;
        let guard = stopped.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (guard, _) =
            wake.wait_timeout_while(guard, heartbeat, |stopped| !*stopped).unwrap_or_else(|p| p.into_inner());
        if *guard {
            return;
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        wake.notify_all();
        if let Some(heartbeat) = self.heartbeat.take() {
            let _ = heartbeat.join();
        }
        if let Err(err) = self.catalog.remove_node(&self.id) {
            warn!(node = %self.id, error = %err, "cannot remove this node from the catalog; it shows as silent");
        }
    }
}
