//! Someone with write access to the share swaps a file between the daemon's scan and its read,
//! or plants links and special files: the daemon reads exactly the file it scanned, or nothing.

use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use crate::common::{Failpoints, exported_text, is_root, wait_found, wait_live, wait_quarantined};
use crate::support::{Workspace, hit_paths, wait_for};

const SETTLE: Duration = Duration::from_secs(120);

/// Replaces `target` atomically with a symbolic link to `to` (as an attacker's `mv` would).
fn swap_for_link(target: &std::path::Path, to: &std::path::Path) {
    let temporary = target.with_file_name(".swap-link");
    std::os::unix::fs::symlink(to, &temporary).unwrap();
    std::fs::rename(&temporary, target).unwrap();
}

#[test]
fn a_symlink_swapped_in_between_scan_and_read_is_never_followed() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let failpoints = Failpoints::new(&workspace);
    std::fs::write(inbox.join("known.txt"), "The lighthouse keeper logs every passing ship.\n").unwrap();
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let (name, dir) = failpoints.env();
    let daemon = workspace.start_daemon_with(&pipeline, &[(name, &dir)]);
    wait_live(&daemon, 1, SETTLE);

    // The daemon's own secret is the link's target: the local admin token in daemon.json.
    let secret = daemon.token.clone();
    failpoints.arm("before_read", "victim.txt");
    std::fs::write(inbox.join("victim.txt"), "A harmless note about tide tables.\n").unwrap();
    failpoints.wait_reached("before_read", &daemon);
    swap_for_link(&inbox.join("victim.txt"), &workspace.data().join("daemon.json"));
    failpoints.release("before_read");

    wait_for(SETTLE, || daemon.stderr().contains("file changed between scan and read").then_some(()))
        .unwrap_or_else(|| panic!("the swap went unnoticed:\n{}", daemon.stderr()));
    // Give the follow-up run (which sees a link: not a document) time to pass.
    std::thread::sleep(Duration::from_secs(2));
    let export = exported_text(&daemon);
    assert!(!export.contains(&secret), "the daemon's token leaked into the index");
    assert!(!export.contains("victim.txt"), "the link was indexed: {export}");
    let hits = daemon.search(&secret, "&mode=lexical");
    assert!(hit_paths(&hits).is_empty(), "{hits}");
    assert!(daemon.stderr().contains("file changed between scan and read"));

    // The path holds a real file again: it is indexed as usual.
    std::fs::remove_file(inbox.join("victim.txt")).unwrap();
    std::fs::write(inbox.join("victim.txt"), "The victim file is back with its barnacle census.\n").unwrap();
    wait_found(&daemon, "barnacle census", "victim.txt", SETTLE);
    daemon.stop();
}

#[test]
fn a_fifo_swapped_in_between_scan_and_read_is_never_opened_for_reading() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let failpoints = Failpoints::new(&workspace);
    std::fs::write(inbox.join("known.txt"), "Weather balloons drift east in winter.\n").unwrap();
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let (name, dir) = failpoints.env();
    let mut daemon = workspace.start_daemon_with(&pipeline, &[(name, &dir)]);
    wait_live(&daemon, 1, SETTLE);

    failpoints.arm("before_read", "victim.txt");
    std::fs::write(inbox.join("victim.txt"), "A note that becomes a pipe.\n").unwrap();
    failpoints.wait_reached("before_read", &daemon);
    let fifo = inbox.join(".victim-fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::fs::rename(&fifo, inbox.join("victim.txt")).unwrap();
    failpoints.release("before_read");

    // A read of the FIFO would block the run for ever; instead the run goes on, and the next
    // one quarantines the FIFO without opening it.
    let reason = wait_quarantined(&mut daemon, "victim.txt", SETTLE);
    assert_eq!(reason, "not_a_regular_file");
    std::fs::write(inbox.join("after.txt"), "Seagulls nest on the harbour wall.\n").unwrap();
    wait_found(&daemon, "Seagulls nest", "after.txt", SETTLE);
    daemon.stop();
}

#[test]
fn links_out_of_the_share_and_device_files_are_not_documents() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let outside = workspace.folder("outside");
    std::fs::write(outside.join("secret.txt"), "The vault combination is tangerine seventeen.\n").unwrap();
    std::os::unix::fs::symlink("/dev/zero", inbox.join("zero.txt")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), inbox.join("secret-link.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, inbox.join("outside-folder")).unwrap();
    std::fs::write(inbox.join("plain.txt"), "Plain text about orchard pruning.\n").unwrap();
    let device = is_root("a device node in the share")
        && std::process::Command::new("mknod")
            .arg(inbox.join("zero-device.txt"))
            .args(["c", "1", "5"])
            .status()
            .unwrap()
            .success();
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let mut daemon = workspace.start_daemon(&pipeline);
    wait_found(&daemon, "orchard pruning", "plain.txt", SETTLE);
    if device {
        assert_eq!(wait_quarantined(&mut daemon, "zero-device.txt", SETTLE), "not_a_regular_file");
    }
    let export = exported_text(&daemon);
    assert!(!export.contains("tangerine"), "a link out of the share was followed");
    assert_eq!(export.lines().count(), 1, "only plain.txt is a document: {export}");
    // /dev/zero was never read: the daemon is small and answering.
    assert!(daemon.peak_rss_bytes() < 1536 << 20);
    daemon.stop();
}

#[test]
fn names_that_are_not_utf8_never_collide() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    // Two Latin-1 names that a lossy conversion would both turn into "r\u{fffd}sum\u{fffd}.txt".
    let names: [&[u8]; 2] = [b"r\xe9sum\xe9.txt", b"r\xe8sum\xe8.txt"];
    for (name, text) in
        names.iter().zip(["Alpha curriculum vitae of a glassblower.\n", "Beta curriculum vitae of a clockmaker.\n"])
    {
        std::fs::write(inbox.join(std::ffi::OsStr::from_bytes(name)), text).unwrap();
    }
    let summary = workspace.ingest(&inbox, None);
    assert_eq!(summary["indexed"], 2, "{summary}");
    let glass = workspace.search_paths("glassblower", &["--mode", "lexical"]);
    let clock = workspace.search_paths("clockmaker", &["--mode", "lexical"]);
    assert_eq!((glass.len(), clock.len()), (1, 1));
    assert_ne!(glass[0], clock[0]);
    assert!(glass[0].ends_with("r%E9sum%E9.txt"), "{glass:?}");
    // Nothing changed: a second ingest finds both unchanged.
    let again = workspace.ingest(&inbox, None);
    assert_eq!(again["unchanged"], 2, "{again}");
}
