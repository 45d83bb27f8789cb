//! One document that would take the daemon's memory: a 250 MB single-line text, a small DOCX
//! that inflates to 400 MB of text, and a large document that is in the daemon's hands when it
//! is killed. The daemon's memory stays bounded, the files end in quarantine with a reason,
//! and a restart does not crash on them again.

use std::time::Duration;

use crate::common::{Failpoints, inflating_docx, quarantined, wait_found, wait_live, wait_quarantined};
use crate::support::{Workspace, extraction_corpus, wait_for};

const SETTLE: Duration = Duration::from_secs(300);
/// The bound ARCHITECTURE.md states for the default settings.
const MAX_DAEMON_RSS: u64 = 1536 << 20;

/// 250,000,000 bytes of one line.
fn single_line_text(path: &std::path::Path) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let word = b"unbroken ";
    let words = 250_000_000 / word.len();
    for _ in 0..words {
        file.write_all(word).unwrap();
    }
    file.write_all(&vec![b'x'; 250_000_000 - words * word.len()]).unwrap();
}

#[test]
fn oversized_files_are_quarantined_and_the_daemon_stays_within_its_memory_bound() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let failpoints = Failpoints::new(&workspace);
    std::fs::write(inbox.join("kept.txt"), "A document that must survive: the ferry timetable for March.\n").unwrap();
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let (name, dir) = failpoints.env();
    let daemon = workspace.start_daemon_with(&pipeline, &[(name, &dir)]);
    wait_found(&daemon, "ferry timetable", "kept.txt", SETTLE);

    // Killed in the middle of the huge file (held just before its read), then restarted: the
    // restart takes it on again and does not crash.
    single_line_text(&workspace.path("huge.txt.partial"));
    failpoints.arm("before_read", "huge.txt");
    std::fs::rename(workspace.path("huge.txt.partial"), inbox.join("huge.txt")).unwrap();
    failpoints.wait_reached("before_read", &daemon);
    daemon.kill_9();
    let mut daemon = workspace.start_daemon_with(&pipeline, &[(name, &dir)]);
    inflating_docx(&workspace.path("bomb.docx.partial"), 400 << 20);
    let compressed = std::fs::metadata(workspace.path("bomb.docx.partial")).unwrap().len();
    assert!(compressed < 2 << 20, "the DOCX is {compressed} bytes");
    std::fs::rename(workspace.path("bomb.docx.partial"), inbox.join("bomb.docx")).unwrap();

    assert_eq!(wait_quarantined(&mut daemon, "huge.txt", SETTLE), "limit_exceeded");
    assert_eq!(wait_quarantined(&mut daemon, "bomb.docx", SETTLE), "limit_exceeded");
    assert!(!daemon.exited(), "{}", daemon.stderr());
    let peak = daemon.peak_rss_bytes();
    eprintln!("daemon peak RSS with both oversized files: {} MiB", peak >> 20);
    assert!(peak < MAX_DAEMON_RSS, "the daemon reached {} MiB", peak >> 20);
    wait_found(&daemon, "ferry timetable", "kept.txt", SETTLE);
    daemon.stop();
}

/// The same, over the real documents of the shared corpus too (a second source).
#[test]
fn the_extraction_corpus_and_the_oversized_files_stay_within_the_bound() {
    let Some(corpus) = extraction_corpus("the_extraction_corpus_and_the_oversized_files_stay_within_the_bound") else {
        return;
    };
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    single_line_text(&inbox.join("huge.txt"));
    inflating_docx(&inbox.join("bomb.docx"), 400 << 20);
    // A few hundred real documents of every format; the whole corpus is measured by
    // `benches/daemon-memory.sh`.
    let pipeline = workspace.pipeline("default", &[&inbox, &corpus.join("tika"), &corpus.join("python-docx")], "");
    let mut daemon = workspace.start_daemon(&pipeline);
    wait_live(&daemon, 1, Duration::from_secs(1800));
    assert_eq!(wait_quarantined(&mut daemon, "huge.txt", SETTLE), "limit_exceeded");
    assert_eq!(wait_quarantined(&mut daemon, "bomb.docx", SETTLE), "limit_exceeded");
    let peak = daemon.peak_rss_bytes();
    eprintln!("daemon peak RSS over tika + python-docx + the oversized files: {} MiB", peak >> 20);
    assert!(peak < MAX_DAEMON_RSS, "the daemon reached {} MiB", peak >> 20);
    daemon.stop();
}

#[test]
fn a_large_document_the_daemon_died_holding_is_quarantined_at_the_next_start() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let failpoints = Failpoints::new(&workspace);
    std::fs::write(inbox.join("small.txt"), "Small files are never suspects: the bakery opens at six.\n").unwrap();
    // 11,000 copies of one paragraph: a large answer (its chunks weigh well over the in-flight
    // threshold), but a single text for the model to embed.
    let paragraph = "Quarterly sediment survey of the northern estuary, station readings and notes. ".repeat(9);
    std::fs::write(inbox.join("large.txt"), format!("{paragraph}\n\n").repeat(11_000)).unwrap();
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let (name, dir) = failpoints.env();
    failpoints.arm("in_flight_recorded", "large.txt");
    let daemon = workspace.start_daemon_with(&pipeline, &[(name, &dir)]);
    failpoints.wait_reached("in_flight_recorded", &daemon);
    // The daemon dies with the large document in its hands (an OOM kill looks the same).
    daemon.kill_9();

    let mut daemon = workspace.start_daemon_with(&pipeline, &[(name, &dir)]);
    assert_eq!(wait_quarantined(&mut daemon, "large.txt", SETTLE), "crashed_run");
    wait_found(&daemon, "bakery opens", "small.txt", SETTLE);
    let entry = quarantined(&daemon, "large.txt").unwrap();
    assert!(entry["detail"].as_str().unwrap().contains("quarantine retry"), "{entry}");

    // An operator decides it is safe: a retry indexes it.
    let path = entry["path"].as_str().unwrap().to_owned();
    let (status, body) =
        daemon.call("POST", "/v1/quarantine/retry", Some(&daemon.token), Some(serde_json::json!({"path": path})));
    assert_eq!(status, 202, "{body}");
    wait_found(&daemon, "sediment survey", "large.txt", SETTLE);
    wait_for(SETTLE, || quarantined(&daemon, "large.txt").is_none().then_some(())).unwrap();
    daemon.stop();
}
