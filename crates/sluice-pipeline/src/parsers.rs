//! Where the text stage (`text.rs`: extract, clean, chunk, PII) runs: in worker processes (the
//! default) or in this process.
//!
//! A worker is the `sluice` binary in its `parse-worker` mode, started with an empty
//! environment (no token of the daemon's reaches it), its settings on the first line of
//! stdin. It caps itself before it reads a document: address space (`RLIMIT_AS`), open files
//! (`RLIMIT_NOFILE`), file writes (`RLIMIT_FSIZE` 0), no core dumps, CPU time per document
//! (`RLIMIT_CPU`, a backstop to the daemon's wall-clock timeout), and a seccomp filter that
//! refuses sockets and `exec` where the kernel offers seccomp. A parser that allocates past
//! the cap, crashes, overflows its stack or runs past `parse_timeout` takes its worker down,
//! not the daemon; the file is quarantined (`limit_exceeded` or `parser_crashed`) and the next
//! request gets a fresh worker.
//!
//! Protocol, one request at a time: a JSON header line (`file_name`, `len`), then the file's
//! bytes, streamed by the daemon from the descriptor it checked and hashed (bytes are sent,
//! not paths, so the text always belongs to the hashed bytes; a file that changes while it is
//! sent is noticed by its hash). The answer is announced first by a line `SLUICE-RESULT
//! {"bytes":N,"chunks":C}`; the daemon admits it (its size against the answer cap and the
//! run's memory budget) before it reads the N bytes of JSON that follow. Nothing a worker says
//! can make the daemon hold more than it agreed to.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use sluice_core::{ContentHash, Stage, StageFailure};
use tracing::warn;

use crate::source::{READ_BUFFER, SourceFile};
use crate::text::{PreparedFile, TextSettings, TextStage, TextTimes};

/// Marks protocol lines, so that anything else a library prints to stdout is skipped.
const RESULT_PREFIX: &[u8] = b"SLUICE-RESULT ";
/// The longest line read from a worker (or from the daemon, by a worker); longer ones are
/// skipped, not buffered.
const MAX_LINE_BYTES: usize = 1 << 20;
/// Open files a worker may have (it needs its three pipes).
const WORKER_OPEN_FILES: u64 = 16;

/// A worker's settings, the first line it reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct WorkerSettings {
    text: TextSettings,
    memory_bytes: u64,
    /// CPU seconds one document may take.
    cpu_seconds: u64,
}

#[derive(Serialize, Deserialize)]
struct Request {
    file_name: String,
    len: u64,
}

/// The size of an answer, announced before the answer itself.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct AnswerSize {
    /// Bytes of JSON that follow.
    pub bytes: u64,
    /// Chunks in it, the file's embedded files' included.
    pub chunks: u64,
}

/// A worker's answer: the prepared file (or why not), and what each stage cost it.
#[derive(Serialize, Deserialize)]
struct Answer {
    outcome: Result<PreparedFile, StageFailure>,
    times: TextTimes,
}

/// A file's bytes as the daemon hands them over.
pub enum FileBytes<'a> {
    /// Read (and hashed) in full already: small files.
    InMemory(&'a [u8]),
    /// Streamed from the checked descriptor; must hash to `expected` again.
    Streamed { file: &'a SourceFile, expected: ContentHash },
}

/// What became of one file.
pub enum Parsed {
    Done(Box<Result<PreparedFile, StageFailure>>, TextTimes),
    /// The file's bytes changed while they were sent: the caller tries again next run.
    Changed(String),
}

pub enum Parsers {
    InProcess(Box<TextStage>),
    Workers(Box<WorkerPool>),
}

impl Parsers {
    /// Runs the text stage on a file. `admit` sees the answer's size before it is read (or, in
    /// this process, made): an `Err` refuses it, and the file fails with that.
    pub fn prepare(
        &self,
        bytes: FileBytes<'_>,
        file_name: &str,
        admit: &mut dyn FnMut(AnswerSize) -> Result<(), StageFailure>,
    ) -> Parsed {
        match self {
            Parsers::InProcess(stage) => prepare_in_process(stage, bytes, file_name, admit),
            Parsers::Workers(pool) => pool.prepare(bytes, file_name, admit),
        }
    }
}

fn prepare_in_process(
    stage: &TextStage,
    bytes: FileBytes<'_>,
    file_name: &str,
    admit: &mut dyn FnMut(AnswerSize) -> Result<(), StageFailure>,
) -> Parsed {
    let read;
    let bytes = match bytes {
        FileBytes::InMemory(bytes) => bytes,
        FileBytes::Streamed { file, expected } => match file.hash(usize::MAX) {
            Ok((hash, Some(all))) if hash == expected => {
                read = all;
                &read
            }
            Ok(_) => return Parsed::Changed("the file changed while it was read".into()),
            Err(err) => return Parsed::Changed(format!("{err:?}")),
        },
    };
    let (outcome, times) = stage.prepare(bytes, file_name);
    if let Ok(prepared) = &outcome {
        let size = AnswerSize { bytes: estimated_bytes(prepared), chunks: prepared.chunk_count() as u64 };
        if let Err(failure) = admit(size) {
            return Parsed::Done(Box::new(Err(failure)), times);
        }
    }
    Parsed::Done(Box::new(outcome), times)
}

/// About what a prepared file would weigh as JSON: its chunk texts and a little per chunk.
fn estimated_bytes(prepared: &PreparedFile) -> u64 {
    let texts = std::iter::once(&prepared.text).chain(prepared.embedded.iter().filter_map(|e| e.result.as_ref().ok()));
    texts.flat_map(|text| &text.chunks).map(|chunk| chunk.text.len() as u64 + 256).sum()
}

/// Worker processes, started on demand and reused while they stay healthy.
pub struct WorkerPool {
    executable: PathBuf,
    settings: WorkerSettings,
    timeout: Duration,
    idle: Mutex<Vec<Worker>>,
}

impl WorkerPool {
    pub fn new(executable: PathBuf, text: TextSettings, memory_bytes: u64, timeout: Duration) -> Self {
        // One second over the wall-clock timeout, so the daemon's timeout normally acts first.
        let settings = WorkerSettings { text, memory_bytes, cpu_seconds: timeout.as_secs() + 1 };
        Self { executable, settings, timeout, idle: Mutex::new(Vec::new()) }
    }

    fn prepare(
        &self,
        bytes: FileBytes<'_>,
        file_name: &str,
        admit: &mut dyn FnMut(AnswerSize) -> Result<(), StageFailure>,
    ) -> Parsed {
        let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        let mut worker = match idle {
            Some(worker) => worker,
            None => match Worker::spawn(&self.executable, &self.settings) {
                Ok(worker) => worker,
                Err(err) => {
                    let detail = format!("cannot start a parser process: {err}");
                    let failure = StageFailure::new(Stage::Extract, "parser_unavailable", detail);
                    return Parsed::Done(Box::new(Err(failure)), TextTimes::default());
                }
            },
        };
        match worker.call(bytes, file_name, self.timeout, admit) {
            Ok(Call::Answered(answer)) => {
                self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(worker);
                Parsed::Done(Box::new(answer.outcome), answer.times)
            }
            Ok(Call::Changed(why)) => {
                worker.kill();
                Parsed::Changed(why)
            }
            Err(failure) => {
                worker.kill();
                warn!(file = file_name, reason = %failure.reason, detail = %failure.detail, "parser process dropped");
                Parsed::Done(Box::new(Err(failure)), TextTimes::default())
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

/// What the stdout reader thread reports.
enum Event {
    Header(AnswerSize),
    Payload(Vec<u8>),
    /// A protocol line that does not parse.
    Garbled(String),
}

/// How one call ended, short of the worker failing.
enum Call {
    Answered(Box<Answer>),
    Changed(String),
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    events: Receiver<Event>,
    /// Tells the reader thread to read an admitted answer (`true`) or to stop (`false`).
    go: Sender<bool>,
    /// The last lines the worker wrote to stderr, to tell why it died.
    stderr_tail: Arc<Mutex<Vec<String>>>,
}

impl Worker {
    fn spawn(executable: &PathBuf, settings: &WorkerSettings) -> std::io::Result<Self> {
        let mut child = Command::new(executable)
            .arg("parse-worker")
            // Nothing of the daemon's environment (tokens, keys, proxies) reaches a parser.
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
        let stderr = child.stderr.take().ok_or_else(|| std::io::Error::other("no stderr"))?;
        writeln!(stdin, "{}", serde_json::to_string(settings).map_err(std::io::Error::other)?)?;
        let (sender, events) = std::sync::mpsc::channel();
        let (go, go_receiver) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("sluice-parser-out".into())
            .spawn(move || read_answers(BufReader::new(stdout), &sender, &go_receiver))?;
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let tail = Arc::clone(&stderr_tail);
        std::thread::Builder::new().name("sluice-parser-err".into()).spawn(move || {
            let mut stderr = BufReader::new(stderr);
            while let Ok(Some(line)) = read_line_bounded(&mut stderr, MAX_LINE_BYTES) {
                let mut tail = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if tail.len() == 8 {
                    tail.remove(0);
                }
                tail.push(String::from_utf8_lossy(&line).chars().take(500).collect());
            }
        })?;
        Ok(Self { child, stdin, events, go, stderr_tail })
    }

    /// One request. `Err` means the worker is lost (dead, hung, refused or talking nonsense).
    fn call(
        &mut self,
        bytes: FileBytes<'_>,
        file_name: &str,
        timeout: Duration,
        admit: &mut dyn FnMut(AnswerSize) -> Result<(), StageFailure>,
    ) -> Result<Call, StageFailure> {
        let len = match &bytes {
            FileBytes::InMemory(bytes) => bytes.len() as u64,
            FileBytes::Streamed { file, .. } => file.stat.identity.size,
        };
        let header = serde_json::to_string(&Request { file_name: file_name.to_owned(), len }).unwrap_or_default();
        if writeln!(self.stdin, "{header}").is_err() {
            return Err(self.death());
        }
        match self.send(&bytes, len) {
            Ok(None) => {}
            Ok(Some(changed)) => return Ok(Call::Changed(changed)),
            Err(_) => return Err(self.death()),
        }
        let size = match self.events.recv_timeout(timeout) {
            Ok(Event::Header(size)) => size,
            Ok(Event::Garbled(line)) => return Err(crashed(format!("unreadable answer from the parser: {line}"))),
            Ok(Event::Payload(_)) => return Err(crashed("an answer without its header".into())),
            Err(RecvTimeoutError::Timeout) => return Err(timed_out(timeout)),
            Err(RecvTimeoutError::Disconnected) => return Err(self.death()),
        };
        admit(size)?;
        if self.go.send(true).is_err() {
            return Err(self.death());
        }
        match self.events.recv_timeout(timeout) {
            Ok(Event::Payload(payload)) => serde_json::from_slice(&payload)
                .map(|answer| Call::Answered(Box::new(answer)))
                .map_err(|err| crashed(format!("unreadable answer from the parser: {err}"))),
            Ok(_) => Err(crashed("a second header before the answer".into())),
            Err(RecvTimeoutError::Timeout) => Err(timed_out(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(self.death()),
        }
    }

    /// Writes the file's bytes to the worker; `Some(why)` when a streamed file turned out
    /// changed (its hash or length differ from the check), in which case the worker has not
    /// received a whole request and must be dropped.
    fn send(&mut self, bytes: &FileBytes<'_>, len: u64) -> std::io::Result<Option<String>> {
        let (file, expected) = match bytes {
            FileBytes::InMemory(bytes) => {
                self.stdin.write_all(bytes)?;
                self.stdin.flush()?;
                return Ok(None);
            }
            FileBytes::Streamed { file, expected } => (file, expected),
        };
        let mut hasher = blake3::Hasher::new();
        let mut buffer = vec![0u8; READ_BUFFER];
        let mut offset = 0u64;
        while offset < len {
            let want = buffer.len().min((len - offset) as usize);
            let read = match file.read_at(&mut buffer[..want], offset) {
                Ok(0) => return Ok(Some("the file shrank while it was sent to the parser".into())),
                Ok(read) => read,
                Err(err) => return Ok(Some(format!("the file could not be read again: {err}"))),
            };
            hasher.update(&buffer[..read]);
            self.stdin.write_all(&buffer[..read])?;
            offset += read as u64;
        }
        self.stdin.flush()?;
        if ContentHash::from_bytes(*hasher.finalize().as_bytes()) != *expected {
            return Ok(Some("the file changed while it was sent to the parser".into()));
        }
        Ok(None)
    }

    /// Why the worker died: out of its memory or CPU cap (`limit_exceeded`) or anything else.
    fn death(&mut self) -> StageFailure {
        let _ = self.child.kill();
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
        crashed(format!("the parser process died ({status}){said}"))
    }

    fn kill(&mut self) {
        let _ = self.go.send(false);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn crashed(detail: String) -> StageFailure {
    StageFailure::new(Stage::Extract, "parser_crashed", detail)
}

fn timed_out(timeout: Duration) -> StageFailure {
    StageFailure::new(
        Stage::Extract,
        "limit_exceeded",
        format!("parsing took longer than {}s (limits.parse_timeout_secs)", timeout.as_secs()),
    )
}

/// The stdout reader: skips anything that is not a protocol line; on a header, waits for the
/// daemon's word before it reads (and so allocates) the answer.
fn read_answers(mut stdout: impl BufRead, events: &Sender<Event>, go: &Receiver<bool>) {
    while let Ok(Some(line)) = read_line_bounded(&mut stdout, MAX_LINE_BYTES) {
        let Some(header) = line.strip_prefix(RESULT_PREFIX) else { continue };
        let size: AnswerSize = match serde_json::from_slice(header) {
            Ok(size) => size,
            Err(_) => {
                let _ = events.send(Event::Garbled(String::from_utf8_lossy(header).chars().take(200).collect()));
                return;
            }
        };
        if events.send(Event::Header(size)).is_err() || !go.recv().unwrap_or(false) {
            return;
        }
        let Ok(len) = usize::try_from(size.bytes) else { return };
        let mut payload = vec![0u8; len];
        if stdout.read_exact(&mut payload).is_err() || events.send(Event::Payload(payload)).is_err() {
            return;
        }
    }
}

/// Reads one line (without its `\n`) of at most `max` bytes; a longer line is skipped to its
/// end and returned cut. `None` at the end of the stream.
fn read_line_bounded(reader: &mut impl BufRead, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let mut seen_any = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(seen_any.then_some(line));
        }
        seen_any = true;
        let (used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        let content = &available[..if done { used - 1 } else { used }];
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&content[..content.len().min(room)]);
        reader.consume(used);
        if done {
            return Ok(Some(line));
        }
    }
}

/// The worker side: reads its settings, caps and confines itself, then answers requests until
/// stdin closes, each under a fresh CPU-time cap.
pub fn serve_worker() -> std::io::Result<()> {
    let mut input = BufReader::new(std::io::stdin().lock());
    let settings =
        read_line_bounded(&mut input, MAX_LINE_BYTES)?.ok_or_else(|| std::io::Error::other("no settings line"))?;
    let settings: WorkerSettings = serde_json::from_slice(&settings).map_err(std::io::Error::other)?;
    rlimit::setrlimit(rlimit::Resource::AS, settings.memory_bytes, settings.memory_bytes)?;
    rlimit::setrlimit(rlimit::Resource::CORE, 0, 0)?;
    let stage = TextStage::new(&settings.text).map_err(std::io::Error::other)?;
    rlimit::setrlimit(rlimit::Resource::NOFILE, WORKER_OPEN_FILES, WORKER_OPEN_FILES)?;
    rlimit::setrlimit(rlimit::Resource::FSIZE, 0, 0)?;
    if let Err(err) = crate::sandbox::confine() {
        eprintln!("parse-worker: no seccomp filter ({err}); running with rlimits only");
    }
    let mut output = std::io::stdout().lock();
    loop {
        let Some(header) = read_line_bounded(&mut input, MAX_LINE_BYTES)? else {
            return Ok(());
        };
        let request: Request = serde_json::from_slice(&header).map_err(std::io::Error::other)?;
        let len = usize::try_from(request.len).map_err(std::io::Error::other)?;
        let mut bytes = vec![0; len];
        input.read_exact(&mut bytes)?;
        cap_cpu_time(settings.cpu_seconds)?;
        let (outcome, times) = stage.prepare(&bytes, &request.file_name);
        drop(bytes);
        let chunks = outcome.as_ref().map_or(0, PreparedFile::chunk_count) as u64;
        let payload = serde_json::to_vec(&Answer { outcome, times }).map_err(std::io::Error::other)?;
        let size = AnswerSize { bytes: payload.len() as u64, chunks };
        output.write_all(RESULT_PREFIX)?;
        serde_json::to_writer(&mut output, &size).map_err(std::io::Error::other)?;
        output.write_all(b"\n")?;
        output.write_all(&payload)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_not_buffered() {
        let mut input = std::io::Cursor::new(b"short\nxxxxxxxxxxxxxxxxxxxx\nlast".to_vec());
        assert_eq!(read_line_bounded(&mut input, 8).unwrap().unwrap(), b"short");
        assert_eq!(read_line_bounded(&mut input, 8).unwrap().unwrap(), b"xxxxxxxx");
        assert_eq!(read_line_bounded(&mut input, 8).unwrap().unwrap(), b"last");
        assert_eq!(read_line_bounded(&mut input, 8).unwrap(), None);
    }
}
