//! Governance through the binary: tokens and roles on every `/v1` endpoint of a running
//! daemon, the audit log's tamper detection with `sluice audit verify`, and `sluice report`.

use serde_json::{Value, json};

use crate::support::{Daemon, Workspace, wait_for};

fn create_token(workspace: &Workspace, user: &str, groups: &[&str], role: &str) -> String {
    let mut args = vec!["token", "create", "--user", user, "--role", role];
    for group in groups {
        args.extend(["--group", group]);
    }
    let output = workspace.run(&args);
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The status each request gets with `token`.
fn statuses(daemon: &Daemon, token: Option<&str>, requests: &[(&str, &str, Option<Value>)]) -> Vec<u16> {
    requests.iter().map(|(method, path, body)| daemon.call(method, path, token, body.clone()).0).collect()
}

#[test]
fn tokens_and_roles_decide_every_endpoint() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    std::fs::write(inbox.join("notes.txt"), "The harbour master logged three tugboats and a ferry.\n").unwrap();
    // Readers come from rules only: everyone may read (the workspace folder is private).
    let pipeline = workspace.pipeline("default", &[&inbox], "\n[access]\nsource = \"none\"\n");
    let reader = create_token(&workspace, "rita", &["staff"], "reader");
    let operator = create_token(&workspace, "otto", &[], "operator");
    let admin = create_token(&workspace, "ada", &[], "admin");
    let revoked = create_token(&workspace, "rex", &[], "admin");
    let listed = workspace.json(&["token", "list"]);
    let rex =
        listed.as_array().unwrap().iter().find(|t| t["user"] == "rex").unwrap()["id"].as_str().unwrap().to_owned();
    workspace.run(&["token", "revoke", &rex]);

    let daemon = workspace.start_daemon(&pipeline);
    wait_for(std::time::Duration::from_secs(120), || daemon.live_version()).expect("version 1 goes live");

    // Health and metrics need no token and carry no document text.
    assert_eq!(daemon.call("GET", "/healthz", None, None).0, 200);
    let (status, metrics) = daemon.call("GET", "/metrics", None, None);
    assert_eq!(status, 200);
    assert!(!metrics.contains("tugboats"));
    assert!(metrics.contains("sluice_file_stage_seconds"), "per-stage cost histograms are exported");

    let reading: Vec<(&str, &str, Option<Value>)> =
        vec![("GET", "/v1/search?q=tugboats", None), ("GET", "/v1/versions", None), ("GET", "/v1/versions/1", None)];
    let operating: Vec<(&str, &str, Option<Value>)> = vec![
        ("POST", "/v1/versions/1/promote", None),
        ("POST", "/v1/versions/1/pin", None),
        ("DELETE", "/v1/versions/1/pin", None),
        ("GET", "/v1/diff?from=1&to=1", None),
        ("GET", "/v1/verify", None),
        ("GET", "/v1/quarantine", None),
    ];
    let administering: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/v1/audit", None),
        ("GET", "/v1/audit/verify", None),
        ("GET", "/v1/tokens", None),
        ("GET", "/v1/export?format=jsonl", None),
        ("POST", "/v1/tokens", Some(json!({"user": "newbie", "role": "reader"}))),
    ];
    let all: Vec<_> = reading.iter().chain(&operating).chain(&administering).cloned().collect();

    // Missing, malformed, unknown and revoked tokens: 401 everywhere.
    for token in [None, Some("not-a-token"), Some("sluice_0000000000000000_00"), Some(revoked.as_str())] {
        assert!(
            statuses(&daemon, token, &all).iter().all(|s| *s == 401),
            "{token:?}: {:?}",
            statuses(&daemon, token, &all)
        );
    }
    let ok = |s: &u16| (200..300).contains(s);
    // The scheme name is case-insensitive.
    let lower = ureq::get(&format!("http://{}/v1/versions", daemon.address))
        .header("Authorization", format!("bearer {reader}"))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(lower.status().as_u16(), 200);
    // A reader reads and nothing more.
    assert!(statuses(&daemon, Some(&reader), &reading).iter().all(ok));
    assert!(statuses(&daemon, Some(&reader), &operating).iter().all(|s| *s == 403));
    assert!(statuses(&daemon, Some(&reader), &administering).iter().all(|s| *s == 403));
    // An operator also operates.
    assert!(statuses(&daemon, Some(&operator), &reading).iter().all(ok));
    assert!(
        statuses(&daemon, Some(&operator), &operating).iter().all(ok),
        "{:?}",
        statuses(&daemon, Some(&operator), &operating)
    );
    assert!(statuses(&daemon, Some(&operator), &administering).iter().all(|s| *s == 403));
    // An admin does everything.
    assert!(statuses(&daemon, Some(&admin), &all).iter().all(ok), "{:?}", statuses(&daemon, Some(&admin), &all));

    // Revoking through the API takes effect at once.
    let (_, body) = daemon.call("POST", "/v1/tokens", Some(&admin), Some(json!({"user": "temp", "role": "reader"})));
    let created: Value = serde_json::from_str(&body).unwrap();
    let temp = created["token"].as_str().unwrap();
    assert_eq!(daemon.call("GET", "/v1/versions", Some(temp), None).0, 200);
    let id = created["info"]["id"].as_str().unwrap();
    assert_eq!(daemon.call("DELETE", &format!("/v1/tokens/{id}"), Some(&admin), None).0, 200);
    assert_eq!(daemon.call("GET", "/v1/versions", Some(temp), None).0, 401);

    // The audit log names who did what, and what each search returned.
    let (_, body) = daemon.call("GET", "/v1/audit?limit=10000", Some(&admin), None);
    let entries: Value = serde_json::from_str(&body).unwrap();
    let entries = entries["entries"].as_array().unwrap();
    let by =
        |action: &str, principal: &str| entries.iter().any(|e| e["action"] == action && e["principal"] == principal);
    assert!(by("promoted", "otto") && by("pinned", "otto") && by("token_created", "ada") && by("token_revoked", "ada"));
    let search = entries.iter().find(|e| e["action"] == "search" && e["principal"] == "rita").unwrap();
    assert_eq!(search["subject"], "tugboats");
    assert_eq!(search["detail"]["chunk_ids"].as_array().unwrap().len(), 1);
    assert!(entries.iter().any(|e| e["action"] == "ingested" && e["principal"] == "pipeline"));
    daemon.stop();
}

#[test]
fn audit_verify_names_the_first_tampered_entry_and_report_adds_up() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    for i in 0..4 {
        std::fs::write(inbox.join(format!("note-{i}.txt")), format!("Lock keeper note {i} about the weir.\n")).unwrap();
    }
    workspace.ingest(&inbox, None);
    std::fs::write(inbox.join("note-0.txt"), "Lock keeper note 0, rewritten about the sluice gates.\n").unwrap();
    workspace.ingest(&inbox, None);
    workspace.run(&["search", "weir"]);

    let report = workspace.json(&["audit", "verify"]);
    assert!(report["first_bad"].is_null(), "{report}");
    let entries = report["entries"].as_u64().unwrap();
    assert!(entries >= 10, "{report}");
    let exported = workspace.run(&["audit", "export", "--since", "1970-01-01", "--format", "jsonl"]);
    assert_eq!(String::from_utf8(exported.stdout).unwrap().lines().count() as u64, entries);

    // Report: the version totals are the sums of their files.
    let costs = workspace.json(&["report"]);
    for version in costs["versions"].as_array().unwrap() {
        let sources: f64 =
            version["sources"].as_array().unwrap().iter().map(|s| s["total"]["wall"].as_f64().unwrap()).sum();
        let stages: f64 =
            version["stages"].as_object().unwrap().values().map(|s| s["total"]["wall"].as_f64().unwrap()).sum();
        let total = version["total"]["wall"].as_f64().unwrap();
        assert!((sources - total).abs() < 1e-5 && (stages - total).abs() < 1e-5, "{version}");
    }
    let files: Vec<u64> = costs["versions"].as_array().unwrap().iter().map(|v| v["files"].as_u64().unwrap()).collect();
    assert_eq!(files, [4, 1]);

    // Changes the catalog behind sluice's back, runs `audit verify`, then puts the catalog back.
    let tamper = |sql: &str| {
        let output = if crate::support::postgres_catalog() {
            let backup =
                "CREATE TABLE audit_copy AS SELECT * FROM audit; CREATE TABLE meta_copy AS SELECT * FROM meta;";
            workspace.postgres_sql(&format!("BEGIN; {backup} {sql}; COMMIT;"));
            let output = workspace.command(&["audit", "verify", "--json"]).output().unwrap();
            workspace.postgres_sql(
                "BEGIN; DELETE FROM audit; INSERT INTO audit SELECT * FROM audit_copy; DROP TABLE audit_copy;
                 DELETE FROM meta; INSERT INTO meta SELECT * FROM meta_copy; DROP TABLE meta_copy; COMMIT;",
            );
            output
        } else {
            let catalog = workspace.data().join("catalog.sqlite");
            let copy = workspace.path("catalog-backup.sqlite");
            let connection = rusqlite::Connection::open(&catalog).unwrap();
            connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
            std::fs::copy(&catalog, &copy).unwrap();
            connection.execute_batch(sql).unwrap();
            drop(connection);
            let output = workspace.command(&["audit", "verify", "--json"]).output().unwrap();
            for leftover in ["catalog.sqlite-wal", "catalog.sqlite-shm"] {
                let _ = std::fs::remove_file(workspace.data().join(leftover));
            }
            std::fs::copy(&copy, &catalog).unwrap();
            output
        };
        assert_eq!(output.status.code(), Some(1), "{sql}");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        report["first_bad"]["seq"].as_i64().unwrap()
    };
    assert_eq!(tamper("UPDATE audit SET subject = 'nothing to see' WHERE seq = 3"), 3);
    assert_eq!(tamper("DELETE FROM audit WHERE seq = 5"), 5);
    assert_eq!(
        tamper(
            "UPDATE audit SET seq = -1 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = -1"
        ),
        2
    );
    assert_eq!(tamper(&format!("DELETE FROM audit WHERE seq = {entries}")), entries as i64);
    // Restored, it verifies again.
    assert!(workspace.json(&["audit", "verify"])["first_bad"].is_null());
}

#[test]
fn anonymous_search_sees_public_documents_only_and_only_where_allowed() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    std::fs::create_dir_all(inbox.join("handbook")).unwrap();
    std::fs::write(inbox.join("handbook/welcome.txt"), "Welcome aboard: the canal tour leaves at nine.\n").unwrap();
    std::fs::write(inbox.join("board-minutes.txt"), "Board minutes: the canal tour budget was cut.\n").unwrap();
    let rules = "\n[access]\nsource = \"none\"\nanonymous_search = true\n\n[[access.rule]]\npath = \"handbook/**\"\npublic = true\n";
    let pipeline = workspace.pipeline("default", &[&inbox], rules);
    let daemon = workspace.start_daemon(&pipeline);
    wait_for(std::time::Duration::from_secs(120), || daemon.live_version()).expect("version 1 goes live");
    let (status, body) = daemon.call("GET", "/v1/search?q=canal+tour&mode=lexical", None, None);
    assert_eq!(status, 200, "{body}");
    let paths = crate::support::hit_paths(&serde_json::from_str(&body).unwrap());
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert!(paths[0].ends_with("handbook/welcome.txt"));
    // Only search is open; everything else still needs a token.
    assert_eq!(daemon.call("GET", "/v1/versions", None, None).0, 401);
    let (_, body) = daemon.call("GET", "/v1/search?q=canal+tour&mode=lexical", Some(&daemon.token), None);
    assert_eq!(crate::support::hit_paths(&serde_json::from_str(&body).unwrap()).len(), 2);
    daemon.stop();
}

#[test]
fn pii_values_reach_neither_the_logs_nor_the_audit_log() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let fixtures = crate::support::repo_root().join("fixtures/pii");
    std::fs::copy(fixtures.join("planted.md"), inbox.join("memo.md")).unwrap();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("planted.expected.json")).unwrap()).unwrap();
    let values: Vec<String> = expected
        .as_object()
        .unwrap()
        .values()
        .flat_map(|list| list.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()))
        .collect();
    let pipeline = workspace.pipeline("default", &[&inbox], "\n[pii]\npolicy = \"mask\"\n");
    let output = workspace
        .command(&["ingest", inbox.to_str().unwrap(), "--pipeline", pipeline.to_str().unwrap(), "--json"])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let audit = workspace.run(&["audit", "export"]);
    let search = workspace.run(&["search", "payment run bank details", "--json"]);
    for (what, bytes) in
        [("log", &output.stderr), ("summary", &output.stdout), ("audit", &audit.stdout), ("search", &search.stdout)]
    {
        let text = String::from_utf8_lossy(bytes);
        for value in &values[..] {
            let checksum_broken = expected["not_flagged"].as_array().unwrap().iter().any(|v| v == value.as_str());
            if what == "search" && checksum_broken {
                continue; // not PII: it stays in the chunk text
            }
            assert!(!text.contains(value.as_str()), "{value} appears in the {what}");
        }
    }
    assert!(String::from_utf8_lossy(&audit.stdout).contains("\"redacted\""));
}
