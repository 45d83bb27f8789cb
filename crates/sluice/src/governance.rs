//! Commands for who may do what and what was done: API tokens and the audit log.
//!
//! Both work on the catalog directly (SQLite serves them beside a running daemon, which
//! checks tokens on every request, so a revocation takes effect at once). Whoever can write
//! the data directory is its administrator; what they do here is audited as `local:<user>`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use sluice_pipeline::Admin;
use sluice_store::{Catalog, Role};

use crate::auth::local_principal;
use crate::commands::load_plan;

/// The data directory's catalog (created if needed: tokens may come before any ingest), with
/// the pipeline's audit key, so what is appended here is keyed like the daemon's entries.
pub fn catalog(data: &Path, pipeline: Option<&Path>) -> anyhow::Result<(Arc<dyn Catalog>, String)> {
    let admin = admin(data, pipeline)?;
    Ok((admin.shared_catalog(), admin.plan().name.clone()))
}

/// The pipeline's operations on the data directory's catalog (created if needed).
fn admin(data: &Path, pipeline: Option<&Path>) -> anyhow::Result<Admin> {
    Ok(Admin::open_catalog(load_plan(pipeline)?, data)?)
}

pub fn token_create(
    data: &Path,
    pipeline: Option<&Path>,
    user: &str,
    groups: &[String],
    role: &str,
) -> anyhow::Result<ExitCode> {
    let role = Role::parse(role).with_context(|| format!("unknown role {role:?} (reader, operator, admin)"))?;
    let admin = admin(data, pipeline)?;
    let (info, token) = admin.operations().create_token(user, groups, role, &local_principal())?;
    eprintln!("token {} for {} ({}); it is shown once:", info.id, info.user, role.as_str());
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

pub fn token_list(data: &Path, pipeline: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let tokens = admin(data, pipeline)?.operations().tokens()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&tokens)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<18} {:<16} {:<9} {:<8} groups", "id", "user", "role", "state");
    for token in tokens {
        let state = if token.revoked_at.is_some() { "revoked" } else { "active" };
        println!(
            "{:<18} {:<16} {:<9} {:<8} {}",
            token.id,
            token.user,
            token.role.as_str(),
            state,
            token.groups.join(",")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn token_revoke(data: &Path, pipeline: Option<&Path>, id: &str) -> anyhow::Result<ExitCode> {
    if let Err(err) = admin(data, pipeline)?.operations().revoke_token(id, &local_principal()) {
        anyhow::bail!("{err} (see `sluice token list`)");
    }
    println!("revoked {id}");
    Ok(ExitCode::SUCCESS)
}

/// Exit status 0 when the chain is intact, 1 when an entry was changed, removed or reordered
/// (or the expected head is not in it).
pub fn audit_verify(
    data: &Path,
    pipeline: Option<&Path>,
    expect_head: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (catalog, _) = catalog(data, pipeline)?;
    let report = catalog.verify_audit(expect_head)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let keyed = if report.keyed { "keyed (HMAC)" } else { "not keyed" };
        println!(
            "{} audit entries ({} rotated, {} segment files checked), {keyed}; head {}",
            report.entries,
            report.rotated,
            report.segments_checked,
            report.head.as_deref().unwrap_or("(none)")
        );
        match &report.first_bad {
            Some(bad) => println!("TAMPERED: first bad entry is {}: {}", bad.seq, bad.problem),
            None => println!("intact"),
        }
    }
    Ok(if report.first_bad.is_none() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Prints the newest entry's `SEQ:HASH` (nothing for an empty log).
pub fn audit_head(data: &Path, pipeline: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (catalog, _) = catalog(data, pipeline)?;
    if let Some(head) = catalog.audit_head()? {
        println!("{head}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Keys an unkeyed log with the pipeline's audit key, after checking it.
pub fn audit_rekey(data: &Path, pipeline: Option<&Path>) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !sluice_store::DataDirLock::is_held(data),
        "a daemon holds the data directory; stop it before rekeying the audit log"
    );
    let _lock = sluice_store::DataDirLock::acquire(data)?;
    let (catalog, name) = catalog(data, pipeline)?;
    let plan = load_plan(pipeline)?;
    let key = sluice_pipeline::audit_key(&plan, data)?
        .context("the pipeline names no audit key ([audit] key_file or key_env)")?;
    catalog.set_audit_key(None);
    let rekeyed = catalog.rekey_audit(&key, &local_principal(), &name)?;
    println!("{rekeyed} audit entries keyed with key {}", key.id());
    Ok(ExitCode::SUCCESS)
}

/// Writes entries from `since` on as JSON lines to stdout (or `out`).
pub fn audit_export(
    data: &Path,
    pipeline: Option<&Path>,
    since: Option<&str>,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let since = since.map(parse_time).transpose()?;
    let (catalog, _) = catalog(data, pipeline)?;
    let mut sink: Box<dyn Write> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            private_file(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    // Rotated segments first, then the catalog: the whole log, oldest first.
    let written = catalog.visit_audit_entries(since, &mut |entry| {
        let io = |err: std::io::Error| sluice_store::StoreError::Io { path: "audit export".into(), source: err };
        serde_json::to_writer(&mut sink, entry).map_err(|err| io(err.into()))?;
        sink.write_all(b"\n").map_err(io)
    })?;
    sink.flush()?;
    eprintln!("{written} audit entries");
    Ok(ExitCode::SUCCESS)
}

/// A new file only its owner can read (the audit log names principals and queries).
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

/// Unix milliseconds, a date (`2026-11-29`, UTC midnight) or an RFC 3339 time.
fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(millis) = text.parse::<i64>() {
        return Ok(millis);
    }
    let full = if text.len() == 10 { format!("{text}T00:00:00Z") } else { text.to_owned() };
    let time = humantime::parse_rfc3339_weak(&full)
        .with_context(|| format!("{text:?} is not a time (Unix milliseconds, 2026-11-29 or 2026-11-29T10:00:00Z)"))?;
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).context("a time before 1970")?;
    Ok(i64::try_from(since_epoch.as_millis())?)
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_are_read_as_milliseconds_dates_or_rfc3339() {
        assert_eq!(parse_time("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_time("1970-01-01T00:00:01Z").unwrap(), 1_000);
        assert!(parse_time("yesterday").is_err());
    }
}
