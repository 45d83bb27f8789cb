//! Office documents, e-mail and workbooks are indexed; a file that exhausts its parser's memory
//! cap costs only its worker process and is quarantined as `limit_exceeded`, and the daemon's
//! own run goes on.

use crate::support::{Workspace, extraction_corpus};

/// (file in the corpus, name in the inbox, a phrase only that file contains)
const DOCUMENTS: &[(&str, &str, &str)] = &[
    ("python-docx/test.docx", "note.docx", "python-docx was here"),
    ("python-pptx/test_slides.pptx", "slides.pptx", "Group test text"),
    ("mimekit-email/messages/japanese.txt", "japanese.eml", "testing Japanese emails"),
];

#[test]
fn office_and_email_are_indexed_and_a_memory_hog_costs_only_its_worker() {
    let Some(corpus) = extraction_corpus("office_and_email_are_indexed_and_a_memory_hog_costs_only_its_worker") else {
        return;
    };
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    for (source, name, _) in DOCUMENTS {
        std::fs::copy(corpus.join(source), inbox.join(name)).unwrap();
    }
    // 96 MiB of text: decoding and splitting it needs a few copies, well over a 256 MiB cap.
    let line = "a line of perfectly ordinary text that repeats until the file is enormous\n";
    std::fs::write(inbox.join("huge.txt"), line.repeat((96 << 20) / line.len())).unwrap();
    // The text limit is raised so that the memory cap is what stops the worker.
    let limits = "\n[limits]\nparser_memory_bytes = 268435456\nmax_text_chars = 1073741824\n";
    let pipeline = workspace.pipeline("default", &[&inbox], limits);

    let summary = workspace.ingest(&inbox, Some(&pipeline));
    assert_eq!(summary["indexed"], DOCUMENTS.len() as u64, "{summary}");
    assert_eq!(summary["quarantined"]["limit_exceeded"], 1, "{summary}");
    for (_, name, phrase) in DOCUMENTS {
        let paths = workspace.search_paths(phrase, &["-k", "3", "--pipeline", pipeline.to_str().unwrap()]);
        assert!(paths.iter().any(|path| path.ends_with(&format!("/{name}"))), "{phrase:?} → {paths:?}");
    }
    let catalog = workspace.open_catalog("default");
    let quarantine = catalog.quarantine("default").unwrap();
    assert_eq!(quarantine.len(), 1, "{quarantine:?}");
    assert!(quarantine[0].path.ends_with("/huge.txt"));
    assert!(quarantine[0].detail.contains("parser_memory_bytes"), "{:?}", quarantine[0]);
}

/// The worker side of the CPU cap: a worker given one CPU second for a document that needs
/// more is ended by the kernel with SIGXCPU (the daemon reports that as `limit_exceeded`).
#[test]
fn a_parser_worker_stops_at_its_cpu_cap() {
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;

    let page = format!("<html><body>{}</body></html>", "<div><p>word <b>bold</b> text</p></div>".repeat(3_000_000));
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("parse-worker")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = worker.stdin.take().unwrap();
    writeln!(stdin, "{}", crate::support::worker_settings(1, 16 << 30)).unwrap();
    writeln!(stdin, r#"{{"file_name":"big.html","len":{}}}"#, page.len()).unwrap();
    stdin.write_all(page.as_bytes()).unwrap();
    let status = worker.wait().unwrap();
    assert_eq!(status.signal(), Some(24), "expected SIGXCPU, got {status}");
}
