//! Someone who can write the catalog wipes the audit log, or rewrites all of it consistently
//! (every hash recomputed). Both fail `sluice audit verify`: against the versions it recorded,
//! against the audit key they do not have, and against a head a witness kept elsewhere.

use std::os::unix::fs::PermissionsExt;

use crate::support::Workspace;

fn ingest_twice(workspace: &Workspace, pipeline: &std::path::Path) {
    let inbox = workspace.path("inbox");
    std::fs::write(inbox.join("a.txt"), "Minutes of the harbour board, first session.\n").unwrap();
    workspace.ingest(&inbox, Some(pipeline));
    std::fs::write(inbox.join("b.txt"), "Minutes of the harbour board, second session.\n").unwrap();
    workspace.ingest(&inbox, Some(pipeline));
}

fn verify(workspace: &Workspace, pipeline: &std::path::Path, expect_head: Option<&str>) -> (bool, String) {
    let mut args = vec!["audit", "verify", "--pipeline", pipeline.to_str().unwrap()];
    if let Some(head) = expect_head {
        args.extend(["--expect-head", head]);
    }
    let output = workspace.command(&args).output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

fn sql(workspace: &Workspace, statements: &str) {
    rusqlite::Connection::open(workspace.data().join("catalog.sqlite")).unwrap().execute_batch(statements).unwrap();
}

#[test]
fn a_wiped_audit_log_fails_verification() {
    let workspace = Workspace::new();
    workspace.folder("inbox");
    let pipeline = workspace.pipeline("default", &[&workspace.path("inbox")], "");
    ingest_twice(&workspace, &pipeline);
    let head =
        String::from_utf8(workspace.run(&["audit", "head", "--pipeline", pipeline.to_str().unwrap()]).stdout).unwrap();
    let head = head.trim().to_owned();
    assert!(verify(&workspace, &pipeline, Some(&head)).0);

    sql(&workspace, "DELETE FROM audit; DELETE FROM meta WHERE key = 'audit_head';");
    let (ok, report) = verify(&workspace, &pipeline, None);
    assert!(!ok, "a wiped log verified: {report}");
    assert!(report.contains("version 1") && report.contains("missing"), "{report}");
    let (ok, report) = verify(&workspace, &pipeline, Some(&head));
    assert!(!ok, "{report}");
}

/// Recomputes every entry's hash without a key, as someone who edits the catalog would.
const REWRITE: &str = "UPDATE audit SET subject = 'nothing happened' WHERE action = 'ingested';";

fn rewrite_consistently(workspace: &Workspace) {
    sql(workspace, REWRITE);
    let connection = rusqlite::Connection::open(workspace.data().join("catalog.sqlite")).unwrap();
    let rows: Vec<(i64, i64, String, String, String, String, String)> = connection
        .prepare("SELECT seq, at, pipeline, principal, action, subject, detail FROM audit ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut prev = "0".repeat(64);
    for (seq, at, pipeline, principal, action, subject, detail) in rows {
        // The chain's documented construction, unkeyed (the attacker lacks the key).
        let mut hasher = blake3::Hasher::new_derive_key("sluice audit entry v1");
        hasher.update(prev.as_bytes());
        hasher.update(&seq.to_le_bytes());
        hasher.update(&at.to_le_bytes());
        for field in [&pipeline, &principal, &action, &subject, &detail] {
            hasher.update(&(field.len() as u64).to_le_bytes());
            hasher.update(field.as_bytes());
        }
        let hash = hasher.finalize().to_hex().to_string();
        connection
            .execute(
                "UPDATE audit SET prev_hash = ?2, hash = ?3, keyed = 0 WHERE seq = ?1",
                rusqlite::params![seq, prev, hash],
            )
            .unwrap();
        prev = hash;
        connection.execute("UPDATE meta SET value = ?1 WHERE key = 'audit_head'", [format!("{seq}:{prev}")]).unwrap();
    }
}

#[test]
fn a_consistently_rewritten_chain_fails_against_the_key_and_the_witness() {
    let workspace = Workspace::new();
    workspace.folder("inbox");
    // The key lives outside the data directory, readable by its owner only.
    let key = workspace.path("audit.key");
    std::fs::write(&key, "7f".repeat(32)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let keyed = workspace.pipeline(
        "default",
        &[&workspace.path("inbox")],
        &format!("\n[audit]\nkey_file = {:?}\n", key.display().to_string()),
    );
    let unkeyed = workspace.pipeline("plain", &[&workspace.path("inbox")], "");
    ingest_twice(&workspace, &keyed);
    let head =
        String::from_utf8(workspace.run(&["audit", "head", "--pipeline", keyed.to_str().unwrap()]).stdout).unwrap();
    let head = head.trim().to_owned();
    assert!(verify(&workspace, &keyed, Some(&head)).0);

    rewrite_consistently(&workspace);
    // With the key: the rewritten entries are not keyed.
    let (ok, report) = verify(&workspace, &keyed, None);
    assert!(!ok && report.contains("not keyed"), "{report}");
    // Without the key the chain is consistent, but the witnessed head is not in it any more.
    let unkeyed_catalog = |workspace: &Workspace| {
        workspace.command(&["audit", "verify", "--pipeline", unkeyed.to_str().unwrap()]).output().unwrap()
    };
    assert!(unkeyed_catalog(&workspace).status.success(), "an unkeyed reader sees a consistent chain");
    let (ok, report) = verify(&workspace, &unkeyed, Some(&head));
    assert!(!ok && report.contains("rewritten"), "{report}");
    // And a keyed daemon refuses to append to it.
    let inbox = workspace.path("inbox");
    std::fs::write(inbox.join("c.txt"), "A third session.\n").unwrap();
    let output = workspace
        .command(&["ingest", inbox.to_str().unwrap(), "--pipeline", keyed.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("audit"), "{}", String::from_utf8_lossy(&output.stderr));
}
