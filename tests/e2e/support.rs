//! Running the binary, a daemon, and reading their answers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// `../shared/corpora/extraction`, or `None` (after saying so) when this machine lacks it.
pub fn extraction_corpus(test: &str) -> Option<PathBuf> {
    let path = repo_root().join("../shared/corpora/extraction");
    if path.is_dir() {
        Some(path)
    } else {
        eprintln!("SKIPPED {test}: {} is absent (the shared corpora are not on this machine)", path.display());
        None
    }
}

pub fn models_dir() -> PathBuf {
    std::env::var_os("SLUICE_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("models"))
}

/// The settings line a `sluice parse-worker` reads first: the default pipeline's text stage,
/// with this CPU cap per document and address-space cap.
pub fn worker_settings(cpu_seconds: u64, memory_bytes: u64) -> String {
    let model = sluice_embed::ensure_model(&models_dir(), sluice_embed::DEFAULT_MODEL).expect("model files");
    let tokenizer = model.path("tokenizer.json");
    let blake3 = blake3::hash(&std::fs::read(&tokenizer).unwrap()).to_hex().to_string();
    serde_json::json!({
        "text": {
            "limits": sluice_extract::Limits::default(),
            "tokenizer": tokenizer,
            "tokenizer_blake3": blake3,
            "max_tokens": 200,
            "overlap_tokens": 32,
            "quality": {"min_chars_per_page": 8.0, "max_replacement_ratio": 0.05, "max_control_ratio": 0.05,
                "min_readable_ratio": 0.6},
            "pii": null,
        },
        "memory_bytes": memory_bytes,
        "cpu_seconds": cpu_seconds,
    })
    .to_string()
}

/// The Qdrant server the suites run against instead of Qdrant Edge, when
/// `SLUICE_TEST_QDRANT_URL` names one (`.ci/run` runs them both ways).
pub fn qdrant_url() -> Option<String> {
    std::env::var("SLUICE_TEST_QDRANT_URL").ok().filter(|url| !url.is_empty())
}

/// Whether the suites keep their catalogs in the PostgreSQL database `SLUICE_TEST_POSTGRES_URL`
/// names instead of SQLite (each workspace in a schema of its own).
pub fn postgres_catalog() -> bool {
    std::env::var("SLUICE_TEST_POSTGRES_URL").is_ok_and(|url| !url.is_empty())
}

/// A scratch workspace: a data directory and room for source folders and pipeline files.
/// Against a Qdrant server it also holds `pipelines/default.toml` (the built-in default with
/// the server as its vector store), which commands without `--pipeline` read from the
/// working directory.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let workspace = Self { dir: tempfile::tempdir().expect("temp dir") };
        if qdrant_url().is_some() || postgres_catalog() {
            let mut default = sluice_config::DEFAULT_PIPELINE_TOML.to_owned();
            if qdrant_url().is_some() {
                default = default.replace("vectors = \"edge\"", "vectors = \"qdrant\"");
            }
            if postgres_catalog() {
                default = default.replace("\nvectors = ", "\ncatalog = \"postgres\"\nvectors = ");
            }
            default.push_str(&workspace.store_subtables("default"));
            std::fs::create_dir_all(workspace.path("pipelines")).unwrap();
            std::fs::write(workspace.path("pipelines/default.toml"), default).unwrap();
        }
        workspace
    }

    /// A collection name no other workspace uses.
    pub fn collection(&self, pipeline: &str) -> String {
        let dir = self.dir.path().file_name().unwrap().to_string_lossy().replace('.', "");
        format!("sluice-test-{dir}-{pipeline}")
    }

    /// A PostgreSQL schema no other workspace uses.
    pub fn schema(&self) -> String {
        let dir = self.dir.path().file_name().unwrap().to_string_lossy().to_lowercase();
        format!("t_{}", dir.replace(|c: char| !c.is_ascii_alphanumeric(), ""))
    }

    /// The `[store]` tables of a pipeline file for the stores under test (none for the
    /// embedded default).
    pub fn store_tables(&self, pipeline: &str) -> String {
        let mut store = String::new();
        if qdrant_url().is_some() {
            store.push_str("vectors = \"qdrant\"\n");
        }
        if postgres_catalog() {
            store.push_str("catalog = \"postgres\"\n");
        }
        if store.is_empty() {
            return store;
        }
        format!("\n[store]\n{store}{}", self.store_subtables(pipeline))
    }

    /// Runs `sql` with `psql` on this workspace's PostgreSQL catalog (its schema).
    pub fn postgres_sql(&self, sql: &str) {
        let url = std::env::var("SLUICE_TEST_POSTGRES_URL").expect("a PostgreSQL catalog under test");
        let output = Command::new("psql")
            .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-q", "-c"])
            .arg(format!("SET search_path TO {}; {sql}", self.schema()))
            .output()
            .expect("psql runs");
        assert!(output.status.success(), "psql: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// `[store.qdrant]` and `[store.postgres]` for the stores under test.
    fn store_subtables(&self, pipeline: &str) -> String {
        let mut tables = String::new();
        if let Some(url) = qdrant_url() {
            tables
                .push_str(&format!("\n[store.qdrant]\nurl = {url:?}\ncollection = {:?}\n", self.collection(pipeline)));
        }
        if postgres_catalog() {
            tables.push_str(&format!(
                "\n[store.postgres]\nurl_env = \"SLUICE_TEST_POSTGRES_URL\"\nschema = {:?}\n",
                self.schema()
            ));
        }
        tables
    }

    /// The stores `pipeline` uses here, for tests that open them themselves.
    pub fn store_plan(&self, pipeline: &str) -> sluice_config::StorePlan {
        let text = format!("version = 1\nname = {pipeline:?}\n{}", self.store_tables(pipeline));
        sluice_config::parse_pipeline("test", &text).expect("store tables parse").store
    }

    /// Opens the stores of `pipeline` in the data directory.
    pub fn open_store(&self, pipeline: &str) -> sluice_store::Store {
        sluice_store::Store::open(&self.data(), pipeline, &self.store_plan(pipeline)).unwrap()
    }

    /// Opens the catalog of `pipeline` (the default one's settings for `default`).
    pub fn open_catalog(&self, pipeline: &str) -> std::sync::Arc<dyn sluice_store::Catalog> {
        sluice_store::open_catalog(&self.data(), &self.store_plan(pipeline).catalog).unwrap()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn data(&self) -> PathBuf {
        self.path("data")
    }

    /// A folder of sources, created empty.
    pub fn folder(&self, relative: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    /// A pipeline file watching `sources`, serving HTTP on an ephemeral port.
    pub fn pipeline(&self, name: &str, sources: &[&Path], extra: &str) -> PathBuf {
        self.pipeline_with(name, sources, "", extra)
    }

    /// A pipeline file as [`Workspace::pipeline`] writes it, with more `[server]` settings.
    pub fn pipeline_with(&self, name: &str, sources: &[&Path], server: &str, extra: &str) -> PathBuf {
        let mut text = format!("version = 1\nname = \"{name}\"\n");
        for source in sources {
            text.push_str(&format!("\n[[source]]\npath = {:?}\n", source.display().to_string()));
        }
        text.push_str("\n[watch]\ndebounce_ms = 200\n\n[server]\nlisten = \"127.0.0.1:0\"\n");
        text.push_str(server);
        text.push_str(extra);
        text.push_str(&self.store_tables(name));
        let path = self.path(&format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A pipeline file as [`Workspace::pipeline`] writes it, with more `[store.postgres]`
    /// settings (the table is there only with a PostgreSQL catalog under test).
    pub fn pipeline_with_postgres(&self, name: &str, sources: &[&Path], extra: &str, postgres: &str) -> PathBuf {
        let path = self.pipeline(name, sources, extra);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("[store.postgres]\n", &format!("[store.postgres]\n{postgres}"))).unwrap();
        path
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_in(&self.data(), args)
    }

    /// `sluice ARGS` on the data directory `data` (another node's).
    pub fn command_in(&self, data: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            .current_dir(self.dir.path())
            .env("SLUICE_MODELS_DIR", models_dir())
            .env("RUST_LOG", "warn,qdrant_edge=error")
            .arg("--data")
            .arg(data)
            .args(args);
        command
    }

    /// Runs `sluice ARGS` to completion; panics with its output if it fails.
    pub fn run(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().expect("sluice runs");
        assert!(
            output.status.success(),
            "sluice {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Runs `sluice ARGS --json` and parses standard output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let output = self.run(&args);
        serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!("sluice {args:?} printed no JSON ({err}):\n{}", String::from_utf8_lossy(&output.stdout))
        })
    }

    pub fn ingest(&self, path: &Path, pipeline: Option<&Path>) -> Value {
        let mut args = vec!["ingest", path.to_str().unwrap()];
        if let Some(pipeline) = pipeline {
            args.extend(["--pipeline", pipeline.to_str().unwrap()]);
        }
        self.json(&args)
    }

    /// Paths of the hits of a CLI search.
    pub fn search_paths(&self, query: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["search", query];
        args.extend_from_slice(extra);
        hit_paths(&self.json(&args))
    }

    pub fn start_daemon(&self, pipeline: &Path) -> Daemon {
        self.start_daemon_with(pipeline, &[])
    }

    /// A daemon with these extra environment variables.
    pub fn start_daemon_with(&self, pipeline: &Path, env: &[(&str, &str)]) -> Daemon {
        self.start_node(&self.data(), "run", pipeline, env)
    }

    /// `sluice run` or `sluice serve` (a `command`) on the data directory `data`.
    pub fn start_node(&self, data: &Path, command: &str, pipeline: &Path, env: &[(&str, &str)]) -> Daemon {
        // The log goes to a file: a pipe nobody reads would block the daemon once full.
        let log = self.path(&format!(
            "daemon-{}.log",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        // A daemon killed with SIGKILL leaves its daemon.json behind: wait for the new one.
        let _ = std::fs::remove_file(data.join("daemon.json"));
        let mut command = self.command_in(data, &[command, "--pipeline", pipeline.to_str().unwrap()]);
        command
            .env("RUST_LOG", "info,qdrant_edge=error")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("daemon starts");
        let mut daemon = Daemon { child, address: String::new(), token: String::new(), log };
        let info_path = data.join("daemon.json");
        let info = wait_for(Duration::from_secs(120), || {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("daemon exited early with {status}: {}", daemon.stderr());
            }
            let info: Value = serde_json::from_str(&std::fs::read_to_string(&info_path).ok()?).ok()?;
            Some((info["listen"].as_str()?.to_owned(), info["local_token"].as_str()?.to_owned()))
        });
        (daemon.address, daemon.token) =
            info.unwrap_or_else(|| panic!("daemon did not start listening: {}", daemon.stderr()));
        daemon
    }
}

pub fn hit_paths(response: &Value) -> Vec<String> {
    response["hits"]
        .as_array()
        .map(|hits| hits.iter().map(|hit| hit["path"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

pub fn hit_ids(response: &Value) -> Vec<String> {
    response["hits"]
        .as_array()
        .map(|hits| hits.iter().map(|hit| hit["chunk_id"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Polls `probe` every 100 ms until it returns `Some` or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub struct Daemon {
    child: Child,
    pub address: String,
    /// The daemon's local admin token, from `daemon.json`.
    pub token: String,
    log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|line| line.starts_with("VmHWM:")).expect("VmHWM in /proc status");
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    }

    /// Whether the process has exited (and reaps it).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `GET` as the local administrator.
    pub fn get(&self, path_and_query: &str) -> (u16, String) {
        self.call("GET", path_and_query, Some(&self.token), None)
    }

    /// `POST` of a JSON body as the local administrator.
    pub fn post(&self, path: &str, body: Value) -> (u16, String) {
        self.call("POST", path, Some(&self.token), Some(body))
    }

    /// Any request, with the given bearer token (or none) and JSON body.
    pub fn call(&self, method: &str, path_and_query: &str, token: Option<&str>, body: Option<Value>) -> (u16, String) {
        let url = format!("http://{}{path_and_query}", self.address);
        let authorization = token.map(|token| format!("Bearer {token}"));
        let result = match method {
            "GET" | "DELETE" => {
                let mut request = if method == "GET" { ureq::get(&url) } else { ureq::delete(&url) };
                if let Some(value) = &authorization {
                    request = request.header("Authorization", value);
                }
                request.config().http_status_as_error(false).build().call()
            }
            _ => {
                let mut request = ureq::post(&url).header("content-type", "application/json");
                if let Some(value) = &authorization {
                    request = request.header("Authorization", value);
                }
                let body = body.unwrap_or(Value::Null).to_string();
                request.config().http_status_as_error(false).build().send(body)
            }
        };
        let mut response = result.unwrap_or_else(|err| panic!("{method} {url}: {err}"));
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    }

    pub fn get_json(&self, path_and_query: &str) -> Value {
        let (status, body) = self.get(path_and_query);
        assert_eq!(status, 200, "GET {path_and_query}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn search(&self, query: &str, extra: &str) -> Value {
        let query: String = query
            .bytes()
            .map(|byte| match byte {
                b' ' => "+".to_owned(),
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
                _ => format!("%{byte:02X}"),
            })
            .collect();
        self.get_json(&format!("/v1/search?q={query}{extra}"))
    }

    pub fn live_version(&self) -> Option<i64> {
        self.get_json("/healthz")["live_version"].as_i64()
    }

    /// A counter or gauge from /metrics (summed over labels).
    pub fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .filter(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(status.success());
        let exit = wait_for(Duration::from_secs(60), || self.child.try_wait().ok().flatten())
            .unwrap_or_else(|| panic!("daemon did not stop on SIGTERM"));
        assert!(exit.success(), "daemon exited with {exit}: {}", self.stderr());
    }

    /// The daemon's log so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
