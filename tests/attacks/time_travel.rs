//! A reader who lost access to a file tries to read it through an earlier version.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::common::{wait_found, wait_live};
use crate::support::{Daemon, Workspace, hit_paths};

const SETTLE: Duration = Duration::from_secs(300);

fn token(workspace: &Workspace, user: &str, role: &str) -> String {
    let output = workspace.run(&["token", "create", "--user", user, "--role", role]);
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The paths a search as `token` finds, and the HTTP status.
fn search_as(daemon: &Daemon, token: &str, extra: &str) -> (u16, Vec<String>) {
    let (status, body) =
        daemon.call("GET", &format!("/v1/search?q=salary+bands&mode=lexical{extra}"), Some(token), None);
    let paths = if status == 200 { hit_paths(&serde_json::from_str(&body).unwrap()) } else { Vec::new() };
    (status, paths)
}

#[test]
fn a_reader_who_lost_access_cannot_read_the_file_through_an_old_version() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    std::fs::set_permissions(&inbox, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = inbox.join("salaries.txt");
    std::fs::write(&file, "Salary bands for the coming year, by grade.\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A chmod is a file event (IN_ATTRIB): the daemon notices it within its debounce window.
    let pipeline_for =
        |history: &str| workspace.pipeline("default", &[&inbox], &format!("\n[access]\nhistory = \"{history}\"\n"));
    let daemon = workspace.start_daemon(&pipeline_for("current"));
    wait_found(&daemon, "salary bands", "salaries.txt", SETTLE);
    let alice = token(&workspace, "alice", "reader");
    let olga = token(&workspace, "olga", "operator");
    assert_eq!(search_as(&daemon, &alice, "").1.len(), 1, "everyone may read it at first");
    let chunk = daemon.search("salary bands", "&mode=lexical")["hits"][0]["chunk_id"].as_str().unwrap().to_owned();

    // Access revoked: only its owner may read it now (a new version, `access_changed`).
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    wait_live(&daemon, 2, SETTLE);
    assert_eq!(search_as(&daemon, &alice, ""), (200, vec![]));
    // history = "current": not through version 1 either, nor through its lineage.
    assert_eq!(search_as(&daemon, &alice, "&version=1"), (200, vec![]));
    let (status, _) = daemon.call("GET", &format!("/v1/chunks/{chunk}/lineage"), Some(&alice), None);
    assert_eq!(status, 404);
    // The administrator still sees what version 1 held.
    assert_eq!(hit_paths(&daemon.search("salary bands", "&mode=lexical&version=1")).len(), 1);
    daemon.stop();

    // history = "operators": readers may not search earlier versions at all; operators may.
    let daemon = workspace.start_daemon(&pipeline_for("operators"));
    assert_eq!(search_as(&daemon, &alice, "&version=1").0, 403);
    assert_eq!(search_as(&daemon, &olga, "&version=1").1.len(), 1);
    daemon.stop();

    // history = "as-committed" (chosen knowingly): version 1 answers with its own readers.
    let daemon = workspace.start_daemon(&pipeline_for("as-committed"));
    assert_eq!(search_as(&daemon, &alice, "&version=1").1.len(), 1);
    assert_eq!(search_as(&daemon, &alice, "").1.len(), 0);
    daemon.stop();
}
