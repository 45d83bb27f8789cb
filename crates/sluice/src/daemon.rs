//! `sluice run`: the daemon. Watches the sources (file events plus a periodic full reconcile,
//! since network mounts deliver no events), cuts a version per debounce window, serves HTTP,
//! and shuts down cleanly on SIGINT/SIGTERM. A failed run is retried with capped exponential
//! backoff when its error says trying again can help, else at the next event or reconcile.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use notify::{EventKind, RecursiveMode, Watcher};
use sluice_pipeline::{Engine, Scope, is_ignored_name};
use sluice_store::{DataDirLock, NodeRole};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::auth::{Gate, InFlight, new_local_token};
use crate::client::{DAEMON_FILE, DaemonInfo};
use crate::commands::{load_plan, open_engine};
use crate::http::{AppState, router};
use crate::metrics::{Metrics, OutcomeLabels, ReasonLabels};
use crate::server::ServerLimits;

/// File events buffered while a run is in progress; past this, the next run rescans everything.
const EVENT_BUFFER: usize = 4096;
/// A steady stream of events still gets a version at least this often (in debounce windows).
const MAX_DEBOUNCE_WINDOWS: u32 = 10;
/// Quarantine retries waiting for the scheduler.
const RETRY_BUFFER: usize = 64;
/// First wait before retrying a run that failed with a retryable error; it doubles up to
/// `RETRY_MAX`.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// How often a node on a shared catalog looks for versions other nodes committed.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// `sluice run` (a writer: watches the sources and writes versions) or `sluice serve` (a query
/// node: no sources, answers the HTTP API from the stores it shares with the writers).
pub fn run(data: &Path, models: &Path, args: &crate::DaemonArgs, role: NodeRole) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (pipeline, listen) = (args.pipeline.as_deref(), args.listen);
    runtime.block_on(serve(data.to_owned(), models.to_owned(), pipeline, listen, args.allow_shared_data_dir, role))?;
    Ok(ExitCode::SUCCESS)
}

/// The data directory holds every chunk's text: other local users must not be able to read
/// it, or they bypass every ACL. Created owner-only; an existing one that is not is refused.
fn check_data_dir(data: &Path, allow_shared: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    sluice_store::create_private_dir(data).with_context(|| format!("cannot create {}", data.display()))?;
    let mode = std::fs::metadata(data)?.mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    if allow_shared {
        warn!(data = %data.display(), mode = format!("{mode:o}"), "the data directory is readable by other users (--allow-shared-data-dir)");
        return Ok(());
    }
    anyhow::bail!(
        "the data directory {} has mode {mode:o}: group or other users can read every chunk's text there, bypassing \
         every ACL. Run `chmod -R go-rwx {}`, or pass --allow-shared-data-dir to start anyway",
        data.display(),
        data.display()
    )
}

async fn serve(
    data: PathBuf,
    models: PathBuf,
    pipeline: Option<&Path>,
    listen: Option<SocketAddr>,
    allow_shared_data_dir: bool,
    role: NodeRole,
) -> anyhow::Result<()> {
    let mut plan = load_plan(pipeline)?;
    if role == NodeRole::Query {
        anyhow::ensure!(
            matches!(plan.store.catalog, sluice_config::CatalogPlan::Postgres(_)),
            "`sluice serve` answers from stores it shares with writer nodes: pipeline {:?} needs \
             `[store] catalog = \"postgres\"` (see README \"Cluster\")",
            plan.name
        );
        plan.sources.clear();
    } else if plan.sources.is_empty() {
        anyhow::bail!("pipeline {:?} has no [[source]] to watch", plan.name);
    }
    for source in &plan.sources {
        std::fs::create_dir_all(&source.path)
            .with_context(|| format!("cannot create source folder {}", source.path.display()))?;
    }
    check_data_dir(&data, allow_shared_data_dir)?;
    let _lock = DataDirLock::acquire(&data)?;
    remove_stale_exports(&data);
    if plan.audit.key.is_none() {
        warn!(
            "the audit log is not keyed ([audit] key_file / key_env): a rewrite of the whole log is only caught \
             against a head kept elsewhere (`sluice audit head`)"
        );
    }
    let metrics = Arc::new(Metrics::new());
    let engine = {
        let (data, models) = (data.clone(), models.clone());
        Arc::new(tokio::task::spawn_blocking(move || open_engine(plan, &data, &models)).await??)
    };

    let address = listen.unwrap_or(engine.plan().server.listen);
    let listener =
        tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
    let address = listener.local_addr()?;
    let local_token = new_local_token()?;
    let info = DaemonInfo {
        listen: address.to_string(),
        pid: std::process::id(),
        pipeline: engine.plan().name.clone(),
        local_token: Some(local_token.clone()),
    };
    write_private(&data.join(DAEMON_FILE), &serde_json::to_vec_pretty(&info)?)?;
    info!(%address, pipeline = %engine.plan().name, "HTTP API listening");
    let stats = Arc::new(NodeStats::default());
    let node_id = join_catalog(&engine, role, &address.to_string(), stats.clone()).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let (retries, retry_requests) = mpsc::channel(RETRY_BUFFER);
    let server_plan = engine.plan().server.clone();
    let gate = Gate {
        engine: engine.clone(),
        local_token: Arc::new(local_token),
        anonymous_search: engine.plan().access.anonymous_search,
        in_flight: Arc::new(InFlight::new(server_plan.max_requests_per_token)),
    };
    let app = router(AppState {
        engine: engine.clone(),
        metrics: metrics.clone(),
        retries,
        gate,
        searches: Arc::new(tokio::sync::Semaphore::new(server_plan.max_concurrent_searches)),
        data_dir: data.clone(),
    });
    let limits =
        ServerLimits { max_connections: server_plan.max_connections, header_timeout: server_plan.header_timeout };
    let server = tokio::spawn(crate::server::serve(listener, app, limits, stop_rx.clone()));

    // On SIGTERM/SIGINT a run in progress stops at its next batch and commits what it did.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let signalled = engine.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        info!("shutting down (a second signal exits at once)");
        signalled.request_stop();
        let _ = stop_tx.send(true);
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        // Safe at any moment: an interrupted version is rolled back at the next start.
        warn!("second signal: exiting now");
        std::process::exit(130);
    });

    // On a shared catalog, versions other nodes commit reach this node's indexes within a second.
    let follower = tokio::spawn(follow(engine.clone(), metrics.clone(), node_id, stop_rx.clone()));
    let result = match role {
        NodeRole::Writer => schedule(engine.clone(), metrics, stats, retry_requests, stop_rx.clone()).await,
        NodeRole::Query => {
            let mut stopped = stop_rx.clone();
            let _ = stopped.wait_for(|stop| *stop).await;
            drop(retry_requests);
            Ok(())
        }
    };
    follower.await?;
    let leaving = engine.clone();
    tokio::task::spawn_blocking(move || leaving.leave_catalog()).await?;
    let _ = std::fs::remove_file(data.join(DAEMON_FILE));
    server.await??;
    drop(stop_rx);
    info!("stopped");
    result
}

/// What this node did since it started, reported with its heartbeat (`sluice nodes`).
#[derive(Default)]
struct NodeStats {
    runs: AtomicU64,
    documents_indexed: AtomicU64,
    chunks_added: AtomicU64,
    last_commit_at: AtomicI64,
}

impl NodeStats {
    fn record(&self, summary: &sluice_pipeline::RunSummary) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.documents_indexed.fetch_add(summary.indexed as u64, Ordering::Relaxed);
        self.chunks_added.fetch_add(summary.chunks_added as u64, Ordering::Relaxed);
        if summary.version.is_some() {
            self.last_commit_at.store(sluice_store::now_ms(), Ordering::Relaxed);
        }
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "runs": self.runs.load(Ordering::Relaxed),
            "documents_indexed": self.documents_indexed.load(Ordering::Relaxed),
            "chunks_added": self.chunks_added.load(Ordering::Relaxed),
            "last_commit_at": self.last_commit_at.load(Ordering::Relaxed),
        })
    }
}

/// Every second until shutdown: applies other nodes' versions to this node's indexes (on a
/// shared catalog), then refreshes the node metrics from the catalog's list of nodes.
async fn follow(engine: Arc<Engine>, metrics: Arc<Metrics>, node_id: String, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                let (engine, metrics, node_id) = (engine.clone(), metrics.clone(), node_id.clone());
                let followed = tokio::task::spawn_blocking(move || {
                    let applied = engine.follow();
                    if let Ok(nodes) = engine.operations().nodes() {
                        metrics.record_nodes(&node_id, engine.store().applied_version(), &nodes);
                    }
                    applied
                });
                match followed.await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(versions)) => info!(versions, "applied versions other nodes committed"),
                    Ok(Err(err)) => warn!(error = %err, "cannot apply other nodes' versions yet; trying again"),
                    Err(err) => warn!(error = %err, "following the catalog panicked; trying again"),
                }
            }
        }
    }
}

/// Registers this daemon as a node of its catalog, heartbeating while the engine lives;
/// returns its node id.
async fn join_catalog(
    engine: &Arc<Engine>,
    role: NodeRole,
    address: &str,
    stats: Arc<NodeStats>,
) -> anyhow::Result<String> {
    let (engine, address) = (engine.clone(), address.to_owned());
    let stats: Arc<dyn Fn() -> serde_json::Value + Send + Sync> = Arc::new(move || stats.to_json());
    Ok(tokio::task::spawn_blocking(move || engine.join_catalog(role, &address, stats)).await??)
}

/// Removes HTTP exports a crash left behind (they hold chunk text; nobody will read them).
fn remove_stale_exports(data: &Path) {
    let Ok(entries) = std::fs::read_dir(data) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".export-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes a file only its owner can read (it holds the local admin token).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

/// The scheduler: one run at a time, triggered by events, the reconcile timer, a retry, or a
/// quarantined file queued again through the API.
async fn schedule(
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    stats: Arc<NodeStats>,
    mut requeued: mpsc::Receiver<(String, String)>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (events_tx, mut events) = mpsc::channel::<Vec<PathBuf>>(EVENT_BUFFER);
    let overflowed = Arc::new(AtomicBool::new(false));
    let _watcher = watch_roots(&engine, events_tx, overflowed.clone());

    let watch_plan = engine.plan().watch.clone();
    let waits =
        FollowUpWaits { debounce: watch_plan.debounce, held: engine.plan().store.catalog.node_settings().heartbeat };
    let mut reconcile =
        tokio::time::interval_at(Instant::now() + watch_plan.reconcile_interval, watch_plan.reconcile_interval);
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut pending: BTreeSet<PathBuf> = BTreeSet::new();
    let mut first_event: Option<Instant> = None;
    let mut deadline: Option<Instant> = None;
    let mut backoff = Backoff::default();
    // Start-up: resume from the ledger (only what changed while stopped is processed).
    let mut retry = false;
    let outcome = execute(&engine, &metrics, &stats, Scope::All).await;
    follow_up(&outcome, &mut backoff, &mut retry, &mut pending, &mut deadline, &waits);
    loop {
        let sleep_until = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(paths) = events.recv() => {
                pending.extend(paths);
                let now = Instant::now();
                let first = *first_event.get_or_insert(now);
                let latest = first + watch_plan.debounce * MAX_DEBOUNCE_WINDOWS;
                // A retry waiting for its backoff is not hurried by new events.
                if !retry {
                    deadline = Some((now + watch_plan.debounce).min(latest));
                }
            }
            _ = tokio::time::sleep_until(sleep_until), if deadline.is_some() => {
                let scope = if overflowed.swap(false, Ordering::SeqCst) || retry {
                    Scope::All
                } else {
                    Scope::Paths(std::mem::take(&mut pending).into_iter().collect())
                };
                pending.clear(); // already empty unless a full rescan replaced it
                first_event = None;
                deadline = None;
                let outcome = execute(&engine, &metrics, &stats, scope).await;
                follow_up(&outcome, &mut backoff, &mut retry, &mut pending, &mut deadline, &waits);
            }
            Some((path, principal)) = requeued.recv() => {
                let requeue = engine.clone();
                match tokio::task::spawn_blocking(move || requeue.operations().requeue_quarantined(&path, &principal)).await? {
                    Ok(file) => {
                        info!(path = %file.display(), "quarantined file queued again");
                        pending.insert(file);
                        deadline.get_or_insert_with(Instant::now);
                    }
                    Err(err) => warn!(error = %err, "cannot queue the quarantined file again"),
                }
            }
            _ = reconcile.tick() => {
                if retry {
                    continue; // a retry with backoff is due; it rescans everything anyway
                }
                pending.clear();
                first_event = None;
                overflowed.store(false, Ordering::SeqCst);
                let outcome = execute(&engine, &metrics, &stats, Scope::All).await;
                follow_up(&outcome, &mut backoff, &mut retry, &mut pending, &mut deadline, &waits);
            }
        }
    }
    Ok(())
}

/// Waits between retries of failed runs: 1 s, doubling to 5 min, reset by a good run.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let wait = RETRY_FIRST.saturating_mul(1 << self.failures.min(16)).min(RETRY_MAX);
        self.failures += 1;
        wait
    }
}

/// How long the scheduler waits before it runs files a run left: `debounce` for files that
/// changed between scan and read (or that a full share of claims did not reach), `held` for
/// files other nodes held claims on (a heartbeat: a live node has written them by then, or a
/// dead node's lease runs out a few heartbeats later).
struct FollowUpWaits {
    debounce: Duration,
    held: Duration,
}

/// What a run's outcome asks of the scheduler: a retry after backoff (retryable failure), a
/// run of the files it left (see [`FollowUpWaits`]), or nothing.
fn follow_up(
    outcome: &RunOutcome,
    backoff: &mut Backoff,
    retry: &mut bool,
    pending: &mut BTreeSet<PathBuf>,
    deadline: &mut Option<Instant>,
    waits: &FollowUpWaits,
) {
    *retry = false;
    match outcome {
        RunOutcome::Done { requeued, held } => {
            backoff.failures = 0;
            for (paths, wait) in [(requeued, waits.debounce), (held, waits.held)] {
                if !paths.is_empty() {
                    pending.extend(paths.iter().cloned());
                    let at = Instant::now() + wait;
                    *deadline = Some(deadline.map_or(at, |due| due.min(at)));
                }
            }
        }
        RunOutcome::Failed { retryable: true } => {
            let wait = backoff.next();
            warn!(seconds = wait.as_secs_f64(), "retrying the run after a pause");
            *retry = true;
            *deadline = Some(Instant::now() + wait);
        }
        // Retrying as is cannot help (bad settings, damaged data): the next event or reconcile
        // tries again, and the log says why.
        RunOutcome::Failed { retryable: false } => {}
    }
}

/// How a run ended, for the scheduler.
enum RunOutcome {
    /// Committed or had nothing to do; these files changed between scan and read, and these
    /// other nodes held.
    Done {
        requeued: Vec<PathBuf>,
        held: Vec<PathBuf>,
    },
    Failed {
        retryable: bool,
    },
}

/// Runs the pipeline on a blocking thread, then builds the vector index if it grew enough.
async fn execute(engine: &Arc<Engine>, metrics: &Arc<Metrics>, stats: &NodeStats, scope: Scope) -> RunOutcome {
    let (engine, observer) = (engine.clone(), metrics.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        let summary = engine.run(&scope, &*observer)?;
        // A stopping daemon leaves the index build to its next start. A failed build costs
        // search speed, not data: it is logged and tried again after the next commit.
        if summary.version.is_some()
            && !summary.stopped_early
            && let Err(err) = engine.optimize_vectors()
        {
            warn!(error = %err, "building the vector index failed; search stays exact until the next try");
        }
        if let Some(live) = engine.store().live_version()? {
            observer.live_version.set(live);
        }
        Ok::<_, sluice_pipeline::PipelineError>(summary)
    })
    .await;
    if let Ok(Ok(summary)) = &outcome
        && let Some(verdict) = &summary.gate
    {
        metrics.gate_verdicts.get_or_create(&ReasonLabels { reason: verdict.clone() }).inc();
    }
    let (label, result) = match outcome {
        Ok(Ok(summary)) => {
            stats.record(&summary);
            let label = if summary.version.is_some() { "committed" } else { "unchanged" };
            (label, RunOutcome::Done { requeued: summary.requeued_paths, held: summary.held_paths })
        }
        Ok(Err(err)) => {
            let retryable = err.is_retryable();
            error!(error = %err, retryable, "pipeline run failed; its version is rolled back, now or before the next one begins");
            ("failed", RunOutcome::Failed { retryable })
        }
        Err(err) => {
            error!(error = %err, "pipeline run panicked; its version is rolled back, now or before the next one begins");
            ("failed", RunOutcome::Failed { retryable: false })
        }
    };
    metrics.runs.get_or_create(&OutcomeLabels { outcome: label }).inc();
    result
}

/// Watches every root recursively. Returns the watcher (events stop when it is dropped), or
/// `None` when the platform cannot watch, in which case the periodic reconcile does the work.
fn watch_roots(
    engine: &Engine,
    events: mpsc::Sender<Vec<PathBuf>>,
    overflowed: Arc<AtomicBool>,
) -> Option<notify::RecommendedWatcher> {
    let handler = move |result: notify::Result<notify::Event>| match result {
        Ok(event) => {
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            let paths: Vec<PathBuf> = event
                .paths
                .into_iter()
                .filter(|path| !path.file_name().is_some_and(|name| is_ignored_name(&name.to_string_lossy())))
                .collect();
            if !paths.is_empty() && events.try_send(paths).is_err() {
                overflowed.store(true, Ordering::SeqCst);
            }
        }
        Err(err) => {
            warn!(error = %err, "file watcher error; the next run rescans everything");
            overflowed.store(true, Ordering::SeqCst);
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(watcher) => watcher,
        Err(err) => {
            warn!(error = %err, "cannot watch files; relying on the periodic reconcile");
            return None;
        }
    };
    for root in engine.roots() {
        match watcher.watch(&root.path, RecursiveMode::Recursive) {
            Ok(()) => info!(root = %root.path.display(), "watching"),
            Err(err) => {
                warn!(root = %root.path.display(), error = %err, "cannot watch; relying on the periodic reconcile")
            }
        }
    }
    Some(watcher)
}
