//! Another account on the same machine: the data directory holds every chunk's text, so
//! nothing in it may be readable by group or others, or every ACL is bypassed from a shell.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use crate::common::wait_found;
use crate::support::Workspace;

/// Every path under `dir` (itself included) with group or other permission bits.
fn shared_paths(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        if metadata.mode() & 0o077 != 0 && !metadata.file_type().is_symlink() {
            found.push(format!("{} {:o}", path.display(), metadata.mode() & 0o777));
        }
        if metadata.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        }
    }
    found
}

#[test]
fn nothing_in_a_fresh_data_directory_is_readable_by_other_users() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    std::fs::write(inbox.join("payroll.txt"), "Payroll run for the night shift at the cannery.\n").unwrap();
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    // The CLI on a fresh data directory, then the daemon, then an export of each kind.
    workspace.run(&["token", "create", "--user", "ann", "--pipeline", pipeline.to_str().unwrap()]);
    let daemon = workspace.start_daemon(&pipeline);
    wait_found(&daemon, "night shift", "payroll.txt", Duration::from_secs(300));
    assert_eq!(daemon.get("/v1/export?format=jsonl").0, 200);
    let export = workspace.path("export.parquet");
    workspace.run(&[
        "export",
        "--format",
        "parquet",
        "--out",
        export.to_str().unwrap(),
        "--pipeline",
        pipeline.to_str().unwrap(),
    ]);
    let audit = workspace.path("audit.jsonl");
    workspace.run(&["audit", "export", "--out", audit.to_str().unwrap(), "--pipeline", pipeline.to_str().unwrap()]);
    let shared = shared_paths(&workspace.data());
    assert!(shared.is_empty(), "readable by group or others: {shared:#?}");
    for file in [&export, &audit] {
        assert_eq!(std::fs::metadata(file).unwrap().mode() & 0o777, 0o600, "{}", file.display());
    }
    daemon.stop();
}

#[test]
fn the_daemon_refuses_a_data_directory_others_can_read() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let data = workspace.data();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let output = workspace.command(&["run", "--pipeline", pipeline.to_str().unwrap()]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("755") && stderr.contains("chmod -R go-rwx"), "{stderr}");
    // Told otherwise, it starts.
    let mut daemon = workspace
        .command(&["run", "--pipeline", pipeline.to_str().unwrap(), "--allow-shared-data-dir"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let info = workspace.data().join("daemon.json");
    let started = crate::support::wait_for(Duration::from_secs(120), || info.exists().then_some(()));
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(started.is_some(), "the daemon did not start with --allow-shared-data-dir");
}
