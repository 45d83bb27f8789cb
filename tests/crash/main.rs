//! Crash safety (DESIGN.md §3): the daemon is killed with SIGKILL at random moments while files
//! are added, changed, renamed and deleted under it, then restarted, round after round. At the
//! end one clean run finishes the work, and then:
//! - `sluice verify` finds the catalog, Qdrant and Tantivy in agreement at every version;
//! - no chunk is duplicated in the live version;
//! - the live chunk set (blake3 over sorted chunk ids and texts) equals that of one
//!   uninterrupted run over the same final files, in a fresh data directory.
//!
//! The documents are SciFact abstracts from `../shared/corpora/scifact` (skipped, saying so,
//! where that folder is absent). `SLUICE_CRASH_ROUNDS` sets the number of rounds (default 50)
//! and `SLUICE_CRASH_SEED` the random seed (printed, so a failure can be replayed).
//!
//! Against a Qdrant server (`SLUICE_TEST_QDRANT_URL`), `SLUICE_CRASH_RESTART_QDRANT=1` also
//! kills the server with SIGKILL at a random moment of every round and starts it again
//! (through `tools/qdrant-test-server.sh`, whose variables `.ci/run` exports): the daemon sees
//! its vector store vanish mid-run and must recover by itself.

#[path = "../e2e/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::HashSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{Workspace, repo_root};

const DEFAULT_ROUNDS: usize = 50;
const DEFAULT_SEED: u64 = 0x5eed_c0de;
/// Documents in the folder at the start; later rounds add from the rest of the pool.
const INITIAL_DOCUMENTS: usize = 150;
const POOL: usize = 450;
/// The longest a daemon lives before its SIGKILL, in milliseconds.
const MAX_LIFETIME_MS: u64 = 4000;
/// Few versions kept, so retention's garbage collection runs (and is killed) too.
const RETENTION: &str = "\n[retention]\nkeep_versions = 3\n";

/// splitmix64: a small, seedable generator, so a failing sequence can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Distinct abstracts of reasonable length, as `title\n\ntext`.
fn scifact_pool() -> Option<Vec<String>> {
    let path = repo_root().join("../shared/corpora/scifact/corpus.jsonl");
    let Ok(file) = std::fs::File::open(&path) else {
        eprintln!("SKIPPED crash test: {} is absent (the shared corpora are not on this machine)", path.display());
        return None;
    };
    let mut seen = HashSet::new();
    let mut pool = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let record: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        let (title, text) = (record["title"].as_str().unwrap_or(""), record["text"].as_str().unwrap_or(""));
        if text.len() > 400 && seen.insert(text.to_owned()) {
            pool.push(format!("{title}\n\n{text}\n"));
        }
        if pool.len() == POOL {
            break;
        }
    }
    Some(pool)
}

/// The source folder and what the test does to it. Every write is a rename of a finished
/// file (as a careful copy tool does), and every text stays unique, so exact dedup decides
/// nothing and the final chunk set depends on the final files alone.
struct Folder {
    path: PathBuf,
    pool: Vec<String>,
    next_from_pool: usize,
    present: Vec<String>,
    edits: usize,
}

impl Folder {
    fn write(&self, name: &str, text: &str) {
        let temp = self.path.join(format!(".{name}.partial"));
        std::fs::write(&temp, text).unwrap();
        std::fs::rename(temp, self.path.join(name)).unwrap();
    }

    fn add(&mut self) {
        if self.next_from_pool == self.pool.len() {
            return;
        }
        let name = format!("abstract-{:04}.txt", self.next_from_pool);
        self.write(&name, &self.pool[self.next_from_pool].clone());
        self.next_from_pool += 1;
        self.present.push(name);
    }

    fn change(&mut self, rng: &mut Rng) {
        let name = self.present[rng.below(self.present.len() as u64) as usize].clone();
        let mut text = std::fs::read_to_string(self.path.join(&name)).unwrap();
        self.edits += 1;
        text.push_str(&format!("\nReviewer note {}: the sample size was checked again.\n", self.edits));
        self.write(&name, &text);
    }

    fn delete(&mut self, rng: &mut Rng) {
        let index = rng.below(self.present.len() as u64) as usize;
        std::fs::remove_file(self.path.join(self.present.swap_remove(index))).unwrap();
    }

    fn rename(&mut self, rng: &mut Rng) {
        let index = rng.below(self.present.len() as u64) as usize;
        self.edits += 1;
        let name = format!("renamed-{:04}.txt", self.edits);
        std::fs::rename(self.path.join(&self.present[index]), self.path.join(&name)).unwrap();
        self.present[index] = name;
    }

    /// One random change of a random kind.
    fn mutate(&mut self, rng: &mut Rng) {
        match rng.below(10) {
            0..=3 => self.add(),
            4..=6 => self.change(rng),
            7..=8 if self.present.len() > 20 => self.delete(rng),
            _ => self.rename(rng),
        }
    }
}

/// Kills the test's Qdrant server with SIGKILL and starts it again on the same storage and
/// ports (the script keeps the server's pid in its folder); returns once it is ready.
fn restart_qdrant() {
    let script = repo_root().join("tools/qdrant-test-server.sh");
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && qdrant_restart", script.display()))
        .stdout(Stdio::null())
        .status()
        .expect("bash runs");
    assert!(status.success(), "the Qdrant server did not come back");
}

fn spawn_daemon(workspace: &Workspace, pipeline: &Path, round: usize) -> Child {
    let log = std::fs::File::create(workspace.path(&format!("daemon-{round:04}.log"))).unwrap();
    workspace
        .command(&["run", "--pipeline", pipeline.to_str().unwrap()])
        .env("RUST_LOG", "info,qdrant_edge=error")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("daemon starts")
}

/// blake3 over the sorted (chunk id, text) pairs of the live version's export, and how many.
fn live_chunk_set(workspace: &Workspace, pipeline: &Path) -> (String, usize) {
    let out = workspace.path(&format!("live-{}.jsonl", std::process::id()));
    workspace.run(&[
        "export",
        "--format",
        "jsonl",
        "--out",
        out.to_str().unwrap(),
        "--pipeline",
        pipeline.to_str().unwrap(),
    ]);
    let mut pairs: Vec<(String, String)> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            (row["chunk_id"].as_str().unwrap().to_owned(), row["text"].as_str().unwrap().to_owned())
        })
        .collect();
    pairs.sort();
    let ids: HashSet<&str> = pairs.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), pairs.len(), "a chunk is duplicated in the live version");
    let mut hasher = blake3::Hasher::new();
    for (id, text) in &pairs {
        hasher.update(id.as_bytes());
        hasher.update(&[0]);
        hasher.update(text.as_bytes());
        hasher.update(&[0]);
    }
    (hasher.finalize().to_hex().to_string(), pairs.len())
}

fn verify(workspace: &Workspace, pipeline: &Path) {
    let report = workspace.json(&["verify", "--pipeline", pipeline.to_str().unwrap()]);
    assert_eq!(report["problem_count"], 0, "verify found differences: {report:#}");
    assert!(report["catalog_chunks"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn kill_9_at_random_moments_leaves_the_same_index_as_an_uninterrupted_run() {
    let Some(pool) = scifact_pool() else { return };
    let rounds: usize =
        std::env::var("SLUICE_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_ROUNDS);
    let seed: u64 = std::env::var("SLUICE_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_SEED);
    eprintln!("crash test: {rounds} rounds, seed {seed} (SLUICE_CRASH_ROUNDS, SLUICE_CRASH_SEED)");
    let restart_qdrant_too =
        support::qdrant_url().is_some() && std::env::var("SLUICE_CRASH_RESTART_QDRANT").is_ok_and(|value| value == "1");
    if restart_qdrant_too {
        eprintln!("crash test: the Qdrant server is killed and restarted at a random moment of every round");
    }
    let mut rng = Rng(seed);

    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let pipeline = workspace.pipeline("crash", &[&inbox], RETENTION);
    let mut folder = Folder { path: inbox.clone(), pool, next_from_pool: 0, present: Vec::new(), edits: 0 };
    for _ in 0..INITIAL_DOCUMENTS {
        folder.add();
    }

    let started = Instant::now();
    let mut killed_after_commit = 0;
    for round in 0..rounds {
        for _ in 0..rng.below(4) {
            folder.mutate(&mut rng);
        }
        let mut daemon = spawn_daemon(&workspace, &pipeline, round);
        // Changes keep coming while it runs; the SIGKILL lands at a random moment.
        let lifetime = Duration::from_millis(rng.below(MAX_LIFETIME_MS));
        let mut server_restart = restart_qdrant_too.then(|| Duration::from_millis(rng.below(MAX_LIFETIME_MS)));
        let born = Instant::now();
        while born.elapsed() < lifetime {
            if server_restart.is_some_and(|at| born.elapsed() >= at) {
                restart_qdrant();
                server_restart = None;
            }
            std::thread::sleep(Duration::from_millis(rng.below(400)).min(lifetime.saturating_sub(born.elapsed())));
            if born.elapsed() < lifetime && rng.below(3) == 0 {
                folder.mutate(&mut rng);
            }
        }
        if let Ok(Some(status)) = daemon.try_wait() {
            let log = std::fs::read_to_string(workspace.path(&format!("daemon-{round:04}.log"))).unwrap_or_default();
            panic!("round {round}: the daemon exited by itself ({status}):\n{log}");
        }
        daemon.kill().unwrap(); // SIGKILL
        daemon.wait().unwrap();
        let log = std::fs::read_to_string(workspace.path(&format!("daemon-{round:04}.log"))).unwrap_or_default();
        killed_after_commit += log.matches("version committed").count().min(1);
    }
    eprintln!(
        "{rounds} rounds in {:.0} s; {} of them committed at least one version before the kill; {} files at the end",
        started.elapsed().as_secs_f64(),
        killed_after_commit,
        folder.present.len()
    );

    // One clean run finishes what the last daemon left; the stores must agree.
    let finished = workspace.ingest(&inbox, Some(&pipeline));
    assert_eq!(finished["quarantined"], serde_json::json!({}), "{finished}");
    verify(&workspace, &pipeline);
    let (interrupted, chunks) = live_chunk_set(&workspace, &pipeline);

    // The same final files, indexed once without interruption.
    let reference = Workspace::new();
    let reference_pipeline = reference.pipeline("crash", &[&inbox], RETENTION);
    let uninterrupted = reference.ingest(&inbox, Some(&reference_pipeline));
    assert_eq!(uninterrupted["duplicates"], 0, "the test's texts must be unique: {uninterrupted}");
    verify(&reference, &reference_pipeline);
    let (expected, expected_chunks) = live_chunk_set(&reference, &reference_pipeline);
    assert_eq!((interrupted, chunks), (expected, expected_chunks), "live chunk sets differ");
}
