//! The data directory's disk fills just as a run commits (so the commit fails, and so does its
//! rollback): nothing already indexed is lost, the daemon keeps answering searches, and once
//! there is room again it rolls back what was left half written before it commits anything new.

use std::io::Write;
use std::time::Duration;

use crate::common::{Failpoints, Tmpfs, is_root, wait_found, wait_live};
use crate::support::{Workspace, wait_for};

const SETTLE: Duration = Duration::from_secs(300);

/// Fills the file system under `dir` with one file, to the last byte.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    for size in [1 << 20, 4096, 1] {
        let block = vec![0u8; size];
        while file.write_all(&block).is_ok() {}
    }
    path
}

#[test]
fn a_disk_that_fills_mid_commit_loses_nothing_and_the_daemon_recovers() {
    let test = "a_disk_that_fills_mid_commit_loses_nothing_and_the_daemon_recovers";
    if !is_root(test) {
        return;
    }
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let Some(_disk) = Tmpfs::mount(&workspace.data(), "96m", test) else { return };
    for i in 0..20 {
        let text = format!("Ledger {i}: grain shipments through the lower lock, tonnage {}.\n", i * 17).repeat(20);
        std::fs::write(inbox.join(format!("ledger-{i:02}.txt")), text).unwrap();
    }
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let failpoints = Failpoints::new(&workspace);
    let (name, dir) = failpoints.env();
    let daemon = workspace.start_daemon_with(&pipeline, &[(name, &dir)]);
    wait_live(&daemon, 1, SETTLE);
    wait_found(&daemon, "grain shipments", "ledger-00.txt", SETTLE);

    // The next run writes its version, and stops just before committing it: the disk fills.
    failpoints.arm("before_commit", "default");
    for i in 0..200 {
        let text = format!("Bulletin {i}: the lock keeper reports algae bloom number {i} near the weir.\n").repeat(30);
        std::fs::write(inbox.join(format!("bulletin-{i:03}.txt")), text).unwrap();
    }
    failpoints.wait_reached("before_commit", &daemon);
    let filler = fill(&workspace.data());
    failpoints.release("before_commit");
    wait_for(SETTLE, || daemon.stderr().contains("pipeline run failed").then_some(()))
        .unwrap_or_else(|| panic!("the commit did not fail on a full disk:\n{}", daemon.stderr()));
    // Full disk: what was indexed is still there and searchable.
    assert_eq!(daemon.live_version(), Some(1));
    wait_found(&daemon, "grain shipments", "ledger-07.txt", SETTLE);

    std::fs::remove_file(filler).unwrap();
    wait_found(&daemon, "algae bloom number 199", "bulletin-199.txt", SETTLE);
    wait_found(&daemon, "grain shipments", "ledger-19.txt", SETTLE);
    let verify = daemon.get_json("/v1/verify");
    assert_eq!(verify["problem_count"], 0, "{verify}");
    let versions = daemon.get_json("/v1/versions");
    let states: Vec<&str> =
        versions["versions"].as_array().unwrap().iter().map(|v| v["state"].as_str().unwrap()).collect();
    assert!(!states.contains(&"pending"), "{states:?}");
    eprintln!("versions after the full disk: {states:?}");
    if std::env::var_os("SLUICE_ATTACK_LOGS").is_some() {
        eprintln!("{}", daemon.stderr());
    }
    daemon.stop();
}
