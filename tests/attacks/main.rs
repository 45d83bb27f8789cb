//! The attack suite: each test is a real attack on a real daemon (the `sluice` binary built
//! with its `failpoints` feature, against real folders, real Qdrant Edge, Tantivy, SQLite and
//! model weights), and checks the documented outcome: the daemon keeps serving, nothing leaks,
//! nothing indexed is lost, and the answer is the one the README names (a quarantine reason,
//! an HTTP status, a verification failure).
//!
//! Races between the scan and the read are driven through the daemon's failpoints
//! (`sluice-pipeline`'s `failpoint.rs`), not by luck. Tests that need root (mounting a small
//! tmpfs, a device node, files of other owners) print SKIPPED without it; CI runs as root.

#[path = "../e2e/support.rs"]
#[allow(dead_code)]
mod support;

mod common;

mod audit_chain;
mod disk_full;
mod http_limits;
mod local_users;
mod oversized;
mod swaps;
mod time_travel;
mod workers;
