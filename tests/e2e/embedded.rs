//! Files embedded in others (an e-mail's attachments, a forwarded message and its attachment)
//! are documents of their own: found under `FILE#member`, quarantined one by one, and retired
//! with the file that holds them. Quarantined files are listed and processed again on request,
//! by the CLI alone and through the daemon's API.

use serde_json::Value;

use crate::support::{Workspace, hit_paths, wait_for};

const BODY_PHRASE: &str = "quarterly harbour inspection";
const ATTACHMENT_PHRASE: &str = "lighthouse maintenance schedule";
const NESTED_PHRASE: &str = "buoy replacement budget";

/// A message with a text attachment, a PNG image (no extractor: quarantined) and a forwarded
/// message that carries an attachment of its own.
fn message() -> String {
    let forwarded = format!(
        "From: Port Authority <port@example.org>\r\n\
         To: Harbour Master <master@example.org>\r\n\
         Subject: Buoys\r\n\
         Date: Mon, 2 Nov 2026 09:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"inner\"\r\n\r\n\
         --inner\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         See the attached figures for the coming year.\r\n\
         --inner\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Disposition: attachment; filename=\"budget.txt\"\r\n\r\n\
         The {NESTED_PHRASE} is approved for twelve units in the northern channel.\r\n\
         --inner--\r\n"
    );
    format!(
        "From: Harbour Master <master@example.org>\r\n\
         To: Crew <crew@example.org>\r\n\
         Subject: Inspection notes\r\n\
         Date: Tue, 3 Nov 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
         --outer\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         Notes from the {BODY_PHRASE}, with the schedule and a photo attached.\r\n\
         --outer\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Disposition: attachment; filename=\"schedule.txt\"\r\n\r\n\
         The {ATTACHMENT_PHRASE} starts in March and covers all four towers.\r\n\
         --outer\r\n\
         Content-Type: image/png\r\n\
         Content-Disposition: attachment; filename=\"photo.png\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n\
         iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\r\n\
         --outer\r\n\
         Content-Type: message/rfc822\r\n\
         Content-Disposition: attachment; filename=\"forwarded.eml\"\r\n\r\n\
         {forwarded}\
         --outer--\r\n"
    )
}

fn quarantine(workspace: &Workspace, pipeline: &std::path::Path) -> Vec<Value> {
    workspace.json(&["quarantine", "list", "--pipeline", pipeline.to_str().unwrap()]).as_array().unwrap().clone()
}

#[test]
fn attachments_are_documents_of_their_own_and_leave_with_their_message() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let mail = inbox.join("inspection.eml");
    std::fs::write(&mail, message()).unwrap();
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let pipeline_arg = pipeline.to_str().unwrap();

    let summary = workspace.ingest(&inbox, Some(&pipeline));
    // The message, schedule.txt, forwarded.eml and its budget.txt; photo.png is quarantined.
    assert_eq!(summary["indexed"], 4, "{summary}");
    assert_eq!(summary["embedded"], 4, "{summary}");
    assert_eq!(summary["quarantined"]["unsupported_format"], 1, "{summary}");

    let mail_path = std::fs::canonicalize(&mail).unwrap().display().to_string();
    let top_hit = |phrase: &str| {
        let hits =
            hit_paths(&workspace.json(&["search", phrase, "-k", "1", "--mode", "lexical", "--pipeline", pipeline_arg]));
        hits.first().cloned().unwrap_or_default()
    };
    assert_eq!(top_hit(BODY_PHRASE), mail_path);
    let attachment = top_hit(ATTACHMENT_PHRASE);
    assert!(attachment.starts_with(&format!("{mail_path}#")) && attachment.ends_with("schedule.txt"), "{attachment}");
    let nested = top_hit(NESTED_PHRASE);
    let (_, member) = nested.split_once('#').unwrap_or_else(|| panic!("{nested} is not embedded"));
    assert!(member.contains("forwarded.eml/") && member.ends_with("budget.txt"), "{nested}");

    let quarantined = quarantine(&workspace, &pipeline);
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0]["reason"], "unsupported_format");
    assert!(quarantined[0]["member"].as_str().unwrap().ends_with("photo.png"), "{quarantined:?}");
    assert!(quarantined[0]["path"].as_str().unwrap().starts_with(&format!("{mail_path}#")));

    // Deleting the message retires every document it held and clears its quarantine entries.
    std::fs::remove_file(&mail).unwrap();
    let summary = workspace.ingest(&inbox, Some(&pipeline));
    assert_eq!(summary["deleted"], 1, "{summary}");
    for phrase in [BODY_PHRASE, ATTACHMENT_PHRASE, NESTED_PHRASE] {
        assert_eq!(top_hit(phrase), "", "{phrase:?} still found");
    }
    assert!(quarantine(&workspace, &pipeline).is_empty());
}

#[test]
fn quarantined_files_are_retried_on_request_by_the_cli_and_the_daemon() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let line = "Anchorage fees are reviewed every spring by the port council.\n";
    for name in ["first.txt", "second.txt"] {
        std::fs::write(inbox.join(name), format!("{name}: {}", line.repeat(4))).unwrap();
    }
    let strict = workspace.pipeline("strict", &[&inbox], "\n[limits]\nmax_file_bytes = 100\n");
    let relaxed = workspace.pipeline("relaxed", &[&inbox], "");
    // Both files share one catalog: the pipelines differ in their limits only, not their name.
    let relaxed_text = std::fs::read_to_string(&relaxed).unwrap().replace("name = \"relaxed\"", "name = \"strict\"");
    std::fs::write(&relaxed, relaxed_text).unwrap();

    let summary = workspace.ingest(&inbox, Some(&strict));
    assert_eq!(summary["quarantined"]["too_large"], 2, "{summary}");
    // A raised limit alone changes nothing: the files did not change, so they are not read again.
    let summary = workspace.ingest(&inbox, Some(&relaxed));
    assert_eq!(summary["unchanged"], 2, "{summary}");
    assert_eq!(quarantine(&workspace, &relaxed).len(), 2);

    // Retried by the CLI on its own: processed now.
    let first = std::fs::canonicalize(inbox.join("first.txt")).unwrap().display().to_string();
    workspace.run(&["quarantine", "retry", &first, "--pipeline", relaxed.to_str().unwrap()]);
    let left: Vec<String> =
        quarantine(&workspace, &relaxed).iter().map(|e| e["path"].as_str().unwrap().to_owned()).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].ends_with("/second.txt"), "{left:?}");
    let (status, body) = {
        let output = workspace
            .command(&["quarantine", "retry", &first, "--pipeline", relaxed.to_str().unwrap()])
            .output()
            .unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    assert!(!status && body.contains("not in quarantine"), "{body}");

    // Retried through the daemon: the API lists it, the CLI asks the daemon, its next run takes it.
    let daemon = workspace.start_daemon(&relaxed);
    let listed = daemon.get_json("/v1/quarantine");
    assert_eq!(listed["quarantined"].as_array().unwrap().len(), 1, "{listed}");
    let second = workspace.path("inbox/second.txt");
    let output = workspace.run(&["quarantine", "retry", second.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("queued"));
    let cleared = wait_for(std::time::Duration::from_secs(60), || {
        daemon.get_json("/v1/quarantine")["quarantined"].as_array().unwrap().is_empty().then_some(())
    });
    assert!(cleared.is_some(), "still quarantined: {}", daemon.stderr());
    let hits = hit_paths(&daemon.search("second.txt anchorage fees", "&mode=lexical&k=5"));
    assert!(hits.iter().any(|path| path.ends_with("/second.txt")), "{hits:?}");
    let (status, _) = daemon.get("/v1/quarantine/retry");
    assert_eq!(status, 405, "retry is a POST");
    daemon.stop();
}
