//! A parser exploited by a hostile document runs with nothing worth stealing and no way out:
//! no token from the daemon's environment, few files, no file writes, no sockets, no exec.

use std::time::Duration;

use crate::common::wait_found;
use crate::support::{Workspace, wait_for};

/// Pids of the daemon's parser workers.
fn workers_of(daemon_pid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The parent pid is the second field after the parenthesised command name.
        let parent = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if parent == Some(daemon_pid) && String::from_utf8_lossy(&cmdline).contains("parse-worker") {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn parser_workers_run_without_the_daemons_secrets_and_confined() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    std::fs::write(inbox.join("memo.txt"), "A memo about the canteen's new coffee machine.\n").unwrap();
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let daemon = workspace.start_daemon_with(&pipeline, &[("SLUICE_TOKEN", "sluice_secret_from_the_environment")]);
    wait_found(&daemon, "coffee machine", "memo.txt", Duration::from_secs(300));
    let workers = wait_for(Duration::from_secs(30), || Some(workers_of(daemon.pid())).filter(|w| !w.is_empty()))
        .expect("an idle parser worker");
    for pid in workers {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        assert!(environ.is_empty(), "a worker inherited an environment: {}", String::from_utf8_lossy(&environ));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(status.lines().any(|line| line == "NoNewPrivs:\t1"), "{status}");
        assert!(status.lines().any(|line| line == "Seccomp:\t2"), "no seccomp filter: {status}");
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let limit = |name: &str| {
            let line = limits.lines().find(|line| line.starts_with(name)).unwrap();
            line[name.len()..].split_whitespace().take(2).map(str::to_owned).collect::<Vec<_>>()
        };
        assert_eq!(limit("Max open files"), ["16", "16"], "{limits}");
        assert_eq!(limit("Max file size"), ["0", "0"], "{limits}");
        assert_eq!(limit("Max core file size"), ["0", "0"], "{limits}");
    }
    daemon.stop();
}
