//! Talking to a running daemon, for commands that need the indexes it holds open.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sluice_core::Version;
use sluice_pipeline::SearchResponse;
use sluice_store::SearchMode;

/// Written by the daemon once it listens, removed when it stops.
#[derive(Serialize, Deserialize)]
pub struct DaemonInfo {
    pub listen: String,
    pub pid: u32,
    pub pipeline: String,
}

pub const DAEMON_FILE: &str = "daemon.json";

pub fn daemon_info(data: &Path) -> anyhow::Result<DaemonInfo> {
    let path = data.join(DAEMON_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("the data directory is locked by a daemon, but {} is missing", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

pub fn search(
    data: &Path,
    query: &str,
    version: Option<Version>,
    k: usize,
    mode: SearchMode,
) -> anyhow::Result<SearchResponse> {
    let daemon = daemon_info(data)?;
    let mode = serde_json::to_value(mode)?.as_str().unwrap_or("hybrid").to_owned();
    let mut request = ureq::get(&format!("http://{}/v1/search", daemon.listen))
        .query("q", query)
        .query("k", k.to_string())
        .query("mode", mode);
    if let Some(version) = version {
        request = request.query("version", version.to_string());
    }
    let mut response =
        request.config().http_status_as_error(false).build().call().context("cannot reach the daemon")?;
    let status = response.status();
    let body = response.body_mut().read_to_string()?;
    if !status.is_success() {
        bail!("daemon answered {status}: {body}");
    }
    Ok(serde_json::from_str(&body)?)
}
