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

/// Leases short enough that a dead writer's files return to the pool within seconds, and
/// small shares, so that both writers hold claims at once.
const CLUSTER_SETTINGS: &str = "lease_secs = 2\nheartbeat_secs = 1\nclaim_batch = 8\n";
const DEFAULT_CLUSTER_ROUNDS: usize = 30;

/// Several nodes on one PostgreSQL catalog (DESIGN.md §9): a steady writer and a query node run
/// throughout, while a second writer is killed with SIGKILL at random moments (and started
/// again on its own data directory, as a supervisor would) and files keep changing. After
/// every kill both running nodes answer the same searches at the live version alike (each
/// from its own lexical index: a version half-applied on either would show). At the end the
/// steady writer finishes what the last killed one had claimed, once its lease runs out; the
/// live chunk set equals an uninterrupted run's, and `verify` is clean on every node's data
/// directory, the killed one's included.
///
/// `SLUICE_CLUSTER_CRASH_ROUNDS` sets the rounds (default 30), `SLUICE_CRASH_SEED` the seed.
#[test]
fn kill_9_of_one_writer_while_another_runs_loses_nothing_on_any_node() {
    if !support::postgres_catalog() {
        eprintln!("SKIPPED: several writer nodes need a shared catalog (SLUICE_TEST_POSTGRES_URL)");
        return;
    }
    let Some(pool) = scifact_pool() else { return };
    let rounds: usize = std::env::var("SLUICE_CLUSTER_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CLUSTER_ROUNDS);
    let seed: u64 = std::env::var("SLUICE_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_SEED);
    eprintln!("cluster crash test: {rounds} rounds, seed {seed} (SLUICE_CLUSTER_CRASH_ROUNDS, SLUICE_CRASH_SEED)");
    let mut rng = Rng(seed);
    // Questions from titles of the pool, whether or not their documents are still there.
    let questions: Vec<String> =
        pool.iter().step_by(37).take(8).map(|text| text.lines().next().unwrap_or_default().to_owned()).collect();

    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let pipeline = workspace.pipeline_with_postgres("crash", &[&inbox], RETENTION, CLUSTER_SETTINGS);
    let mut folder = Folder { path: inbox.clone(), pool, next_from_pool: 0, present: Vec::new(), edits: 0 };
    for _ in 0..INITIAL_DOCUMENTS {
        folder.add();
    }
    let (steady_data, query_data, victim_data) =
        (workspace.path("steady"), workspace.path("query"), workspace.path("victim"));
    let steady = workspace.start_node(&steady_data, "run", &pipeline, &[]);
    let query = workspace.start_node(&query_data, "serve", &pipeline, &[]);

    let started = Instant::now();
    for round in 0..rounds {
        for _ in 0..rng.below(4) {
            folder.mutate(&mut rng);
        }
        let (mut victim, log_path) = spawn_node(&workspace, &victim_data, &pipeline, round);
        let lifetime = Duration::from_millis(rng.below(MAX_LIFETIME_MS));
        let born = Instant::now();
        while born.elapsed() < lifetime {
            std::thread::sleep(Duration::from_millis(rng.below(400)).min(lifetime.saturating_sub(born.elapsed())));
            if born.elapsed() < lifetime && rng.below(3) == 0 {
                folder.mutate(&mut rng);
            }
        }
        if let Ok(Some(status)) = victim.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("round {round}: the second writer exited by itself ({status}):\n{log}");
        }
        victim.kill().unwrap(); // SIGKILL
        victim.wait().unwrap();
        same_answers(&steady, &query, &questions, &format!("round {round}"));
    }
    // Last, the second writer dies holding claims for sure: new files arrive, and the kill
    // lands once it has taken some of them.
    let victim_id =
        std::fs::read_to_string(victim_data.join(sluice_store::NODE_ID_FILE)).expect("the second writer's node id");
    let claims_of_victim = || {
        let nodes = workspace.json(&["nodes", "--pipeline", pipeline.to_str().unwrap()]);
        let victim = nodes.as_array().unwrap().iter().find(|node| node["id"] == victim_id.trim())?.clone();
        Some((victim["alive"] == true, victim["claims"].as_u64().unwrap_or(0)))
    };
    let held_when_killed = (rounds..rounds + 5)
        .find_map(|round| {
            let (mut victim, _) = spawn_node(&workspace, &victim_data, &pipeline, round);
            support::wait_for(Duration::from_secs(60), || claims_of_victim().filter(|(alive, _)| *alive))
                .expect("the second writer joins");
            for _ in 0..40 {
                folder.add();
            }
            let held = support::wait_for(Duration::from_secs(20), || claims_of_victim().filter(|(_, held)| *held > 0));
            victim.kill().unwrap(); // SIGKILL
            victim.wait().unwrap();
            held.map(|(_, claims)| claims)
        })
        .expect("the second writer never held claims when it was killed");
    eprintln!(
        "{rounds} rounds in {:.0} s; the second writer was killed at last holding {held_when_killed} claims; {} files at the end",
        started.elapsed().as_secs_f64(),
        folder.present.len()
    );

    // The same final files, indexed once without interruption (meanwhile the dead writer's
    // leases run out and the steady writer takes its files).
    let reference = Workspace::new();
    let reference_pipeline = reference.pipeline("crash", &[&inbox], RETENTION);
    let uninterrupted = reference.ingest(&inbox, Some(&reference_pipeline));
    assert_eq!(uninterrupted["duplicates"], 0, "the test's texts must be unique: {uninterrupted}");
    let expected = live_chunk_set(&reference, &reference_pipeline);
    // The catalog is shared: any data directory's export reads it (this one's belongs to no node).
    support::wait_for(Duration::from_secs(300), || (live_chunk_set(&workspace, &pipeline) == expected).then_some(()))
        .unwrap_or_else(|| {
            panic!(
                "the steady writer did not finish the work: {:?} != {expected:?}\n{}",
                live_chunk_set(&workspace, &pipeline),
                steady.stderr()
            )
        });
    same_answers(&steady, &query, &questions, "at the end");
    steady.stop();
    query.stop();
    for data in [&steady_data, &query_data, &victim_data] {
        let output =
            workspace.command_in(data, &["verify", "--json", "--pipeline", pipeline.to_str().unwrap()]).output();
        let report: serde_json::Value = serde_json::from_slice(&output.unwrap().stdout).expect("verify prints JSON");
        assert_eq!(report["problem_count"], 0, "verify on {}: {report:#}", data.display());
    }
}

/// `sluice run` on the data directory `data`, logging to `victim-ROUND.log`.
fn spawn_node(workspace: &Workspace, data: &Path, pipeline: &Path, round: usize) -> (Child, PathBuf) {
    let log = workspace.path(&format!("victim-{round:04}.log"));
    let child = workspace
        .command_in(data, &["run", "--pipeline", pipeline.to_str().unwrap()])
        .env("RUST_LOG", "info,qdrant_edge=error")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the second writer starts");
    (child, log)
}

/// Both nodes answer every question at the live version alike, each from its own indexes.
fn same_answers(steady: &support::Daemon, query: &support::Daemon, questions: &[String], when: &str) {
    let Some(live) = steady.live_version() else { return };
    for question in questions {
        let extra = format!("&version={live}&k=10");
        let (mine, theirs) = (steady.search(question, &extra), query.search(question, &extra));
        assert_eq!(support::hit_ids(&theirs), support::hit_ids(&mine), "{when}: {question:?} at version {live}");
    }
}
