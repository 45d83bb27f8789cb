//! Commands for who may do what and what was done: API tokens and the audit log.
//!
//! Both work on the catalog directly (SQLite serves them beside a running daemon, which
//! checks tokens on every request, so a revocation takes effect at once). Whoever can write
//! the data directory is its administrator; what they do here is audited as `local:<user>`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use sluice_store::{AuditEvent, Catalog, Role, store_paths};

use crate::auth::local_principal;
use crate::commands::load_plan;

/// The data directory's catalog (created if needed: tokens may come before any ingest).
fn catalog(data: &Path, pipeline: Option<&Path>) -> anyhow::Result<(Catalog, String)> {
    let plan = load_plan(pipeline)?;
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let (catalog_path, _, _) = store_paths(data, &plan.name);
    Ok((Catalog::open(&catalog_path)?, plan.name))
}

pub fn token_create(
    data: &Path,
    pipeline: Option<&Path>,
    user: &str,
    groups: &[String],
    role: &str,
) -> anyhow::Result<ExitCode> {
    let role = Role::parse(role).with_context(|| format!("unknown role {role:?} (reader, operator, admin)"))?;
    let (catalog, name) = catalog(data, pipeline)?;
    let (info, token) = catalog.create_token(user, groups, role)?;
    let detail = serde_json::json!({"id": info.id, "user": info.user, "groups": info.groups, "role": info.role});
    catalog.audit(&[AuditEvent::new(&name, &local_principal(), "token_created", info.id.clone(), detail)])?;
    eprintln!("token {} for {} ({}); it is shown once:", info.id, info.user, role.as_str());
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

pub fn token_list(data: &Path, pipeline: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let (catalog, _) = catalog(data, pipeline)?;
    let tokens = catalog.tokens()?;
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
    let (catalog, name) = catalog(data, pipeline)?;
    if !catalog.revoke_token(id)? {
        bail!("no active token {id} (see `sluice token list`)");
    }
    catalog.audit(&[AuditEvent::new(&name, &local_principal(), "token_revoked", id, serde_json::json!({}))])?;
    println!("revoked {id}");
    Ok(ExitCode::SUCCESS)
}

/// Exit status 0 when the chain is intact, 1 when an entry was changed, removed or reordered.
pub fn audit_verify(data: &Path, pipeline: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let (catalog, _) = catalog(data, pipeline)?;
    let report = catalog.verify_audit()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{} audit entries; head {}", report.entries, report.head.as_deref().unwrap_or("(none)"));
        match &report.first_bad {
            Some(bad) => println!("TAMPERED: first bad entry is {}: {}", bad.seq, bad.problem),
            None => println!("intact"),
        }
    }
    Ok(if report.first_bad.is_none() { ExitCode::SUCCESS } else { ExitCode::from(1) })
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
            std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut after = 0;
    let mut written = 0usize;
    loop {
        let page = catalog.audit_entries(since, after, 10_000)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for entry in &page {
            serde_json::to_writer(&mut sink, entry)?;
            sink.write_all(b"\n")?;
        }
        written += page.len();
    }
    sink.flush()?;
    eprintln!("{written} audit entries");
    Ok(ExitCode::SUCCESS)
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
