//! API tokens: a user, its groups and a role, behind a random secret of which only a hash is
//! kept.
//!
//! A token reads `sluice_<id>_<secret>`: the id finds the row, the secret (256 random bits)
//! is compared by its blake3 hash in constant time. A fast hash is enough for secrets this
//! long; a password hash only matters for guessable ones.

use serde::{Deserialize, Serialize};
use sluice_core::Principal;

use crate::audit::Actor;
use crate::catalog::{Row, SqlCatalog, now_ms, params};
use crate::error::{Result, StoreError};
use crate::prelude::*;

const PREFIX: &str = "sluice_";

/// What a token may do; each role can do everything the ones before it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Search, lineage and version listings, within its ACL.
    Reader,
    /// Also promote, roll back, pin, retry quarantine, collect garbage, verify, diff.
    Operator,
    /// Also tokens, the audit log and export.
    Admin,
}

impl Role {
    pub const NAMES: [&str; 3] = ["reader", "operator", "admin"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Role::Reader, Role::Operator, Role::Admin].into_iter().find(|role| role.as_str() == text)
    }
}

/// A token as listed (never with its secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    pub groups: Vec<String>,
    pub role: Role,
    /// Unix milliseconds.
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl TokenInfo {
    pub fn principal(&self) -> Principal {
        Principal { user: self.user.clone(), groups: self.groups.clone() }
    }
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|err| StoreError::Invalid(format!("no randomness for a token: {err}")))?;
    Ok(hex::encode(buffer))
}

fn parse_role(text: String) -> Result<Role> {
    Role::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("bad role {text:?}")))
}

fn token_row(r: &Row) -> Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.get(0)?,
        user: r.get(1)?,
        groups: crate::catalog::parse_strings(r.get(2)?)?,
        role: parse_role(r.get(3)?)?,
        created_at: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

// `user` is a reserved word in PostgreSQL: quoted, as both engines accept.
const TOKEN_COLUMNS: &str = r#"id, "user", groups, role, created_at, revoked_at"#;

impl TokenStore for SqlCatalog {
    fn create_token(&self, user: &str, groups: &[String], role: Role, by: &Actor<'_>) -> Result<(TokenInfo, String)> {
        if user.is_empty() || user.contains(':') {
            return Err(StoreError::Invalid(format!(
                "a token's user must be a non-empty name without ':', got {user:?}"
            )));
        }
        let id = random_hex(8)?;
        let secret = random_hex(32)?;
        let info = TokenInfo {
            id: id.clone(),
            user: user.to_owned(),
            groups: groups.to_vec(),
            role,
            created_at: now_ms(),
            revoked_at: None,
        };
        let detail = serde_json::json!({"id": info.id, "user": info.user, "groups": info.groups, "role": info.role});
        self.write_audited(|t| {
            t.execute(
                r#"INSERT INTO tokens (id, secret_hash, "user", groups, role, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"#,
                params![
                    id,
                    blake3::hash(secret.as_bytes()).to_hex().to_string(),
                    user,
                    serde_json::to_string(groups).expect("strings serialise"),
                    role.as_str(),
                    info.created_at
                ],
            )?;
            Ok(((), vec![by.event("token_created", id.clone(), detail)]))
        })?;
        Ok((info, format!("{PREFIX}{id}_{secret}")))
    }

    fn tokens(&self) -> Result<Vec<TokenInfo>> {
        self.read(|c| {
            c.query_map(&format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"), params![], token_row)
        })
    }

    fn revoke_token(&self, id: &str, by: &Actor<'_>) -> Result<bool> {
        self.write_audited(|t| {
            let changed = t.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now_ms()],
            )?;
            let events = if changed == 1 { vec![by.event("token_revoked", id, serde_json::json!({}))] } else { vec![] };
            Ok((changed == 1, events))
        })
    }

    fn authenticate(&self, presented: &str) -> Result<Option<TokenInfo>> {
        let Some((id, secret)) = presented.strip_prefix(PREFIX).and_then(|rest| rest.split_once('_')) else {
            return Ok(None);
        };
        let found = self.read(|c| {
            c.query_opt(&format!("SELECT {TOKEN_COLUMNS}, secret_hash FROM tokens WHERE id = ?1"), params![id], |r| {
                Ok((token_row(r)?, r.get::<String>(6)?))
            })
        })?;
        let Some((info, stored)) = found else { return Ok(None) };
        // blake3::Hash compares in constant time.
        let matches = blake3::Hash::from_hex(&stored).is_ok_and(|stored| stored == blake3::hash(secret.as_bytes()));
        Ok((matches && info.revoked_at.is_none()).then_some(info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BY: Actor<'static> = Actor { pipeline: "p", principal: "local:test" };

    #[test]
    fn tokens_authenticate_until_revoked_and_only_with_their_secret() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqlCatalog::sqlite(&dir.path().join("catalog.sqlite")).unwrap();
        let (info, token) = catalog.create_token("alice", &["eng".into()], Role::Operator, &BY).unwrap();
        assert_eq!(catalog.authenticate(&token).unwrap().as_ref(), Some(&info));
        assert_eq!(info.principal().keys()[..2], ["user:alice", "group:eng"]);
        let wrong = format!("{}0", &token[..token.len() - 1]);
        let wrong = if wrong == token { format!("{}1", &token[..token.len() - 1]) } else { wrong };
        assert_eq!(catalog.authenticate(&wrong).unwrap(), None);
        assert_eq!(catalog.authenticate("sluice_nothing_here").unwrap(), None);
        assert_eq!(catalog.authenticate("Bearer").unwrap(), None);
        // Only the hash is stored.
        let stored: String = rusqlite::Connection::open(dir.path().join("catalog.sqlite"))
            .unwrap()
            .query_row("SELECT secret_hash FROM tokens", [], |r| r.get(0))
            .unwrap();
        assert!(!token.contains(&stored));
        assert!(catalog.revoke_token(&info.id, &BY).unwrap());
        assert!(!catalog.revoke_token(&info.id, &BY).unwrap());
        assert_eq!(catalog.authenticate(&token).unwrap(), None);
        assert!(catalog.tokens().unwrap()[0].revoked_at.is_some());
        assert!(catalog.create_token("", &[], Role::Reader, &BY).is_err());
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Reader < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }
}
