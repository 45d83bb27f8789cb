//! Talking to a running daemon, for commands that need the indexes it holds open.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sluice_pipeline::{Search, SearchResponse};
use sluice_store::QuarantineEntry;

/// Written by the daemon once it listens, removed when it stops.
#[derive(Serialize, Deserialize)]
pub struct DaemonInfo {
    pub listen: String,
    pub pid: u32,
    pub pipeline: String,
    /// The daemon's local admin token (the file is readable by its owner only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_token: Option<String>,
}

impl DaemonInfo {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    /// `Authorization` value: `SLUICE_TOKEN` when set, else the daemon's local token.
    fn authorization(&self) -> String {
        let token = std::env::var("SLUICE_TOKEN").ok().or_else(|| self.local_token.clone()).unwrap_or_default();
        format!("Bearer {token}")
    }
}

pub const DAEMON_FILE: &str = "daemon.json";

pub fn daemon_info(data: &Path) -> anyhow::Result<DaemonInfo> {
    let path = data.join(DAEMON_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("the data directory is locked by a daemon, but {} is missing", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

pub fn search(data: &Path, search: &Search) -> anyhow::Result<SearchResponse> {
    let daemon = daemon_info(data)?;
    let mut body =
        serde_json::json!({ "query": search.query, "k": search.k, "mode": search.mode, "filter": search.filter });
    if let Some(version) = search.version {
        body["version"] = version.into();
    }
    let mut response = ureq::post(&daemon.url("/v1/search"))
        .header("Authorization", daemon.authorization())
        .header("Content-Type", "application/json")
        .config()
        .http_status_as_error(false)
        .build()
        .send(body.to_string())
        .context("cannot reach the daemon")?;
    Ok(serde_json::from_str(&answer(&mut response)?)?)
}

/// `GET /v1/quarantine` of the running daemon.
pub fn quarantine(data: &Path) -> anyhow::Result<Vec<QuarantineEntry>> {
    #[derive(Deserialize)]
    struct Listing {
        quarantined: Vec<QuarantineEntry>,
    }
    let daemon = daemon_info(data)?;
    let request = ureq::get(&daemon.url("/v1/quarantine")).header("Authorization", daemon.authorization());
    let mut response =
        request.config().http_status_as_error(false).build().call().context("cannot reach the daemon")?;
    let body = answer(&mut response)?;
    Ok(serde_json::from_str::<Listing>(&body)?.quarantined)
}

/// `POST /v1/quarantine/retry`: the daemon processes the file in its next run.
pub fn retry_quarantined(data: &Path, path: &str) -> anyhow::Result<()> {
    let daemon = daemon_info(data)?;
    let request = ureq::post(&daemon.url("/v1/quarantine/retry"))
        .header("content-type", "application/json")
        .header("Authorization", daemon.authorization());
    let mut response = request
        .config()
        .http_status_as_error(false)
        .build()
        .send(serde_json::json!({ "path": path }).to_string())
        .context("cannot reach the daemon")?;
    answer(&mut response)?;
    Ok(())
}

/// The body of a successful answer, or the daemon's error (a problem document) as ours.
fn answer(response: &mut ureq::http::Response<ureq::Body>) -> anyhow::Result<String> {
    let status = response.status();
    let body = response.body_mut().read_to_string()?;
    if !status.is_success() {
        let problem: Option<serde_json::Value> = serde_json::from_str(&body).ok();
        let detail = problem.as_ref().and_then(|p| p["detail"].as_str()).unwrap_or(&body);
        bail!("daemon answered {status}: {detail}");
    }
    Ok(body)
}

/// `GET path` (with its query string) of the running daemon, parsed from JSON.
pub fn get<T: serde::de::DeserializeOwned>(data: &Path, path: &str) -> anyhow::Result<T> {
    let daemon = daemon_info(data)?;
    let request = ureq::get(&daemon.url(path)).header("Authorization", daemon.authorization());
    let mut response =
        request.config().http_status_as_error(false).build().call().context("cannot reach the daemon")?;
    Ok(serde_json::from_str(&answer(&mut response)?)?)
}

/// `POST path` (or `DELETE`) with no body to the running daemon, parsed from JSON.
pub fn send<T: serde::de::DeserializeOwned>(data: &Path, method: &str, path: &str) -> anyhow::Result<T> {
    let daemon = daemon_info(data)?;
    let (url, authorization) = (daemon.url(path), daemon.authorization());
    let mut response = match method {
        "DELETE" => ureq::delete(&url)
            .header("Authorization", authorization)
            .config()
            .http_status_as_error(false)
            .build()
            .call(),
        _ => ureq::post(&url)
            .header("Authorization", authorization)
            .config()
            .http_status_as_error(false)
            .build()
            .send_empty(),
    }
    .context("cannot reach the daemon")?;
    Ok(serde_json::from_str(&answer(&mut response)?)?)
}
