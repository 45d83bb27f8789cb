//! Where parsers run: in worker processes (the default) or in this process.
//!
//! A worker is the `sluice` binary in its `parse-worker` mode, with its address space capped by
//! `RLIMIT_AS` and, per document, its CPU time by `RLIMIT_CPU` (a backstop to the wall-clock
//! timeout the daemon enforces: a worker the daemon cannot reach still stops). It reads requests on stdin (a JSON header line, then the file's bytes) and
//! answers each with one JSON line on stdout. A parser that allocates past the cap, crashes,
//! overflows its stack or runs past `parse_timeout` takes its worker down, not the daemon; the
//! document is quarantined (`limit_exceeded` or `parser_crashed`) and the next request gets a
//! fresh worker. Bytes are sent, not paths, so the text always belongs to the bytes that were
//! hashed.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use sluice_core::{Stage, StageFailure};
use sluice_extract::{ExtractedFile, Limits, extract_file, panic_message};
use tracing::warn;

/// Marks protocol lines, so that anything else a library prints to stdout is skipped.
const RESULT_PREFIX: &str = "SLUICE-RESULT ";
/// Environment variable carrying the worker's settings as JSON.
const SETTINGS_ENV: &str = "SLUICE_PARSER_SETTINGS";

type Outcome = Result<ExtractedFile, StageFailure>;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct WorkerSettings {
    limits: Limits,
    memory_bytes: u64,
    /// CPU seconds one document may take.
    cpu_seconds: u64,
}

#[derive(Serialize, Deserialize)]
struct Request {
    file_name: String,
    len: usize,
}

pub enum Parsers {
    InProcess { limits: Limits },
    Workers(WorkerPool),
}

/// A worker's answer: the outcome and the CPU seconds the worker spent on it.
#[derive(Serialize, Deserialize)]
struct Answer {
    outcome: Outcome,
    cpu_seconds: f64,
}

impl Parsers {
    /// Extracts a file; also returns the CPU seconds a worker process spent on it (0 when
    /// parsed in this process, where the caller's own thread time covers it).
    pub fn extract(&self, bytes: &[u8], file_name: &str) -> (Outcome, f64) {
        match self {
            Parsers::InProcess { limits } => (extract_caught(bytes, file_name, limits), 0.0),
            Parsers::Workers(pool) => pool.extract(bytes, file_name),
        }
    }
}

fn extract_caught(bytes: &[u8], file_name: &str, limits: &Limits) -> Outcome {
    catch_unwind(AssertUnwindSafe(|| extract_file(bytes, file_name, limits)))
        .map_err(|panic| StageFailure::new(Stage::Extract, "parser_panicked", panic_message(&panic)))?
        .map_err(sluice_extract::ExtractError::into_failure)
}

/// Worker processes, started on demand and reused while they stay healthy.
pub struct WorkerPool {
    executable: PathBuf,
    settings: WorkerSettings,
    timeout: Duration,
    idle: Mutex<Vec<Worker>>,
}

impl WorkerPool {
    pub fn new(executable: PathBuf, limits: Limits, memory_bytes: u64, timeout: Duration) -> Self {
        // One second over the wall-clock timeout, so the daemon's timeout normally acts first.
        let settings = WorkerSettings { limits, memory_bytes, cpu_seconds: timeout.as_secs() + 1 };
        Self { executable, settings, timeout, idle: Mutex::new(Vec::new()) }
    }

    fn extract(&self, bytes: &[u8], file_name: &str) -> (Outcome, f64) {
        let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        let mut worker = match idle {
            Some(worker) => worker,
            None => match Worker::spawn(&self.executable, &self.settings) {
                Ok(worker) => worker,
                Err(err) => {
                    let detail = format!("cannot start a parser process: {err}");
                    return (Err(StageFailure::new(Stage::Extract, "parser_unavailable", detail)), 0.0);
                }
            },
        };
        match worker.call(bytes, file_name, self.timeout) {
            Ok(answer) => {
                self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(worker);
                (answer.outcome, answer.cpu_seconds)
            }
            Err(failure) => {
                worker.kill();
                warn!(file = file_name, reason = %failure.reason, detail = %failure.detail, "parser process lost");
                (Err(failure), 0.0)
            }
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        for worker in self.idle.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).iter_mut() {
            worker.kill();
        }
    }
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    /// The last lines the worker wrote to stderr, to tell why it died.
    stderr_tail: Arc<Mutex<Vec<String>>>,
}

impl Worker {
    fn spawn(executable: &PathBuf, settings: &WorkerSettings) -> std::io::Result<Self> {
        let mut child = Command::new(executable)
            .arg("parse-worker")
            .env(SETTINGS_ENV, serde_json::to_string(settings).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
        let stderr = child.stderr.take().ok_or_else(|| std::io::Error::other("no stderr"))?;
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("sluice-parser-out".into()).spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(result) = line.strip_prefix(RESULT_PREFIX)
                    && sender.send(result.to_owned()).is_err()
                {
                    break;
                }
            }
        })?;
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let tail = Arc::clone(&stderr_tail);
        std::thread::Builder::new().name("sluice-parser-err".into()).spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut tail = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if tail.len() == 8 {
                    tail.remove(0);
                }
                tail.push(line);
            }
        })?;
        Ok(Self { child, stdin, lines, stderr_tail })
    }

    /// One request. `Err` means the worker is lost (dead, hung or talking nonsense).
    fn call(&mut self, bytes: &[u8], file_name: &str, timeout: Duration) -> Result<Answer, StageFailure> {
        let header =
            serde_json::to_string(&Request { file_name: file_name.to_owned(), len: bytes.len() }).unwrap_or_default();
        let sent = writeln!(self.stdin, "{header}")
            .and_then(|()| self.stdin.write_all(bytes))
            .and_then(|()| self.stdin.flush());
        if sent.is_err() {
            return Err(self.death());
        }
        match self.lines.recv_timeout(timeout) {
            Ok(line) => serde_json::from_str(&line).map_err(|err| {
                StageFailure::new(Stage::Extract, "parser_crashed", format!("unreadable answer from the parser: {err}"))
            }),
            Err(RecvTimeoutError::Timeout) => Err(StageFailure::new(
                Stage::Extract,
                "limit_exceeded",
                format!("parsing took longer than {}s (limits.parse_timeout_secs)", timeout.as_secs()),
            )),
            Err(RecvTimeoutError::Disconnected) => Err(self.death()),
        }
    }

    /// Why the worker died: out of its memory or CPU cap (`limit_exceeded`) or anything else.
    fn death(&mut self) -> StageFailure {
        let status = self.child.wait();
        if status.as_ref().is_ok_and(|status| status.signal() == Some(Signal::SIGXCPU as i32)) {
            return StageFailure::new(
                Stage::Extract,
                "limit_exceeded",
                "the parser used up its CPU time (limits.parse_timeout_secs)".to_owned(),
            );
        }
        let status = status.map(|status| status.to_string()).unwrap_or_else(|err| err.to_string());
        // Give the stderr reader a moment to collect the last words.
        std::thread::sleep(Duration::from_millis(50));
        let tail = self.stderr_tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).join(" | ");
        if tail.contains("memory allocation of") || tail.contains("capacity overflow") {
            return StageFailure::new(
                Stage::Extract,
                "limit_exceeded",
                format!("the parser ran out of its memory cap (limits.parser_memory_bytes): {tail}"),
            );
        }
        let said = if tail.is_empty() { String::new() } else { format!(": {tail}") };
        StageFailure::new(Stage::Extract, "parser_crashed", format!("the parser process died ({status}){said}"))
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The worker side: caps its own address space, then answers requests until stdin closes,
/// each under a fresh CPU-time cap.
pub fn serve_worker() -> std::io::Result<()> {
    let settings: WorkerSettings =
        std::env::var(SETTINGS_ENV)
            .ok()
            .and_then(|json| serde_json::from_str(&json).ok())
            .ok_or_else(|| std::io::Error::other(format!("{SETTINGS_ENV} is missing or invalid")))?;
    rlimit::setrlimit(rlimit::Resource::AS, settings.memory_bytes, settings.memory_bytes)?;
    rlimit::setrlimit(rlimit::Resource::CORE, 0, 0)?;
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut output = std::io::stdout().lock();
    let mut header = String::new();
    loop {
        header.clear();
        if input.read_line(&mut header)? == 0 {
            return Ok(());
        }
        let request: Request = serde_json::from_str(&header).map_err(std::io::Error::other)?;
        let mut bytes = vec![0; request.len];
        input.read_exact(&mut bytes)?;
        cap_cpu_time(settings.cpu_seconds)?;
        let cpu_before = crate::meter::thread_cpu_seconds();
        let outcome = extract_caught(&bytes, &request.file_name, &settings.limits);
        let cpu_seconds = crate::meter::thread_cpu_seconds() - cpu_before;
        drop(bytes);
        let answer = serde_json::to_string(&Answer { outcome, cpu_seconds }).map_err(std::io::Error::other)?;
        writeln!(output, "{RESULT_PREFIX}{answer}")?;
        output.flush()?;
    }
}

/// Lets this process use `seconds` more CPU time, then the kernel ends it with `SIGXCPU`.
/// `RLIMIT_CPU` counts the whole life of the process, so the cap moves with each document.
fn cap_cpu_time(seconds: u64) -> std::io::Result<()> {
    let usage = getrusage(UsageWho::RUSAGE_SELF).map_err(std::io::Error::from)?;
    let used = usage.user_time().tv_sec() + usage.system_time().tv_sec();
    let soft = u64::try_from(used).unwrap_or(0) + seconds;
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::CPU)?;
    rlimit::setrlimit(rlimit::Resource::CPU, soft.min(hard), hard)
}
