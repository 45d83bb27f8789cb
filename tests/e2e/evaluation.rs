//! Evaluation through the binary: `sluice eval` on a JSONL set, and the gate holding a version
//! that misses its thresholds until `sluice promote N --force`.

use serde_json::Value;

use crate::support::Workspace;

fn write_notes(workspace: &Workspace) -> std::path::PathBuf {
    let inbox = workspace.folder("inbox");
    let notes = [
        ("ferry.txt", "The ferry timetable changes in October when the winter schedule starts."),
        ("tides.txt", "Spring tides flood the causeway twice a month at the new and full moon."),
        ("lock.txt", "The lock keeper raises the upper gate once the chamber has filled."),
    ];
    for (name, text) in notes {
        std::fs::write(inbox.join(name), text).unwrap();
    }
    inbox
}

#[test]
fn eval_scores_a_jsonl_set_and_the_gate_holds_a_failing_version_until_forced() {
    let workspace = Workspace::new();
    let inbox = write_notes(&workspace);
    let set = workspace.path("set.jsonl");
    std::fs::write(
        &set,
        "{\"query\": \"winter ferry timetable\", \"relevant\": [\"ferry.txt\"]}\n\
         {\"query\": \"causeway flooded by spring tides\", \"relevant\": {\"tides.txt\": 2}}\n",
    )
    .unwrap();
    workspace.ingest(&inbox, None);
    let report = workspace.json(&["eval", "--set", set.to_str().unwrap(), "--document-key", "path"]);
    assert_eq!(report["queries"], 2);
    for retriever in ["lexical", "dense", "hybrid"] {
        assert_eq!(report["summaries"][retriever]["mrr_at_10"], 1.0, "{retriever}: {report}");
        assert_eq!(report["per_query"][retriever].as_array().unwrap().len(), 2);
    }

    // A gate no version can pass: its set asks for a document that does not exist.
    let impossible = workspace.path("impossible.jsonl");
    std::fs::write(&impossible, "{\"query\": \"lock keeper\", \"relevant\": [\"missing.txt\"]}\n").unwrap();
    let gate = format!(
        "\n[eval]\nset = {:?}\ndocument_key = \"path\"\n\n[[eval.threshold]]\nmetric = \"recall@10\"\nretriever = \"hybrid\"\nmin = 0.5\n",
        impossible.display().to_string()
    );
    let pipeline = workspace.pipeline("default", &[&inbox], &gate);
    std::fs::write(inbox.join("lock.txt"), "The lock keeper now opens the lower gate first.").unwrap();
    let summary = workspace.ingest(&inbox, Some(&pipeline));
    assert_eq!((summary["version"].as_i64(), summary["gate"].as_str()), (Some(2), Some("held")), "{summary}");
    let versions = workspace.json(&["versions", "--pipeline", pipeline.to_str().unwrap()]);
    let live: Vec<i64> = versions
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["aliases"].as_array().unwrap().iter().any(|a| a == "live"))
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(live, [1], "live stays on version 1");
    let held = &versions[1];
    assert_eq!(held["gate"], "held");
    assert!(held["evaluation"]["failures"][0].as_str().unwrap().contains("recall@10"), "{held}");

    let refused = workspace.command(&["promote", "2"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    workspace.run(&["promote", "2", "--force"]);
    let versions = workspace.json(&["versions"]);
    assert_eq!(versions[1]["gate"], "forced");
    assert!(versions[1]["aliases"].as_array().unwrap().iter().any(|a| a == "live"));
    let audit = String::from_utf8(workspace.run(&["audit", "export"]).stdout).unwrap();
    let entries: Vec<Value> = audit.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert!(entries.iter().any(|e| e["action"] == "held" && e["subject"] == "version 2"));
    // The same action, audited in one place whether the CLI or the daemon promotes.
    assert!(entries.iter().any(|e| {
        e["action"] == "promoted"
            && e["detail"]["force"] == true
            && e["detail"]["gate"] == "held"
            && e["principal"].as_str().unwrap().starts_with("local:")
    }));
}
