//! Time travel under today's permissions.
//!
//! Every version keeps the readers it was committed with, so a search at `version=N` would
//! answer as of then: a reader who has since lost access to a file would still read it
//! through N. With `[access] history = "current"` (the default) a document at an earlier
//! version is visible only to readers who may read it as of that version *and* may read its
//! file today (the ledger's readers, from the latest reconcile); a file no longer in the share
//! has no readers today. The documents a reader must not see are few (those whose readers
//! changed since), so they are excluded by id inside both indexes' queries, before ranking.

use sluice_core::{Acl, NormalizedFilter, ReadAccess, Version};

use crate::catalog::{SqlCatalog, params};
use crate::error::Result;
use crate::prelude::*;

/// What an index query may return: what the reader's keys open, less the documents it may no
/// longer see at the version asked for, narrowed to what the search's filter asks for.
#[derive(Clone, Copy, Debug)]
pub struct Readable<'a> {
    pub access: &'a ReadAccess,
    pub hidden_docs: &'a [String],
    pub filter: &'a NormalizedFilter,
}

static NO_FILTER: NormalizedFilter = NormalizedFilter {
    languages: Vec::new(),
    formats: Vec::new(),
    folder: None,
    sources: Vec::new(),
    authors: Vec::new(),
    date_from: None,
    date_to: None,
    heading_words: Vec::new(),
};

impl<'a> Readable<'a> {
    pub fn unrestricted() -> Readable<'static> {
        Readable { access: &ReadAccess::Unrestricted, hidden_docs: &[], filter: &NO_FILTER }
    }

    /// What `access` may read, less `hidden_docs`, unfiltered.
    pub fn by(access: &'a ReadAccess, hidden_docs: &'a [String]) -> Self {
        Readable { access, hidden_docs, filter: &NO_FILTER }
    }

    pub fn filtered(self, filter: &'a NormalizedFilter) -> Self {
        Readable { filter, ..self }
    }
}

/// What a restricted reader sees of what is no longer live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PastAccess {
    /// As each version was committed.
    AsCommitted,
    /// As committed, and only what it may read today.
    Today,
    /// Nothing (earlier versions are for operators).
    Hidden,
}

impl AccessHistory for SqlCatalog {
    fn revoked_documents(&self, pipeline: &str, version: Version, access: &ReadAccess) -> Result<Vec<String>> {
        if matches!(access, ReadAccess::Unrestricted) {
            return Ok(Vec::new());
        }
        let candidates: Vec<(String, String, Option<String>)> = self.read(|c| {
            // Only documents whose readers differ from their file's today can be revoked.
            c.query_map(
                "SELECT d.doc_id, d.readers, f.readers FROM documents d
                 LEFT JOIN files f ON f.pipeline = d.pipeline AND f.root = d.root AND f.rel_path = d.rel_path
                 WHERE d.pipeline = ?1 AND d.valid_from <= ?2 AND ?2 < d.valid_to
                   AND (f.readers IS NULL OR f.readers != d.readers)",
                params![pipeline, version],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })?;
        Ok(candidates
            .into_iter()
            .filter(|(_, then, now)| {
                let then = Acl::from_json(then).unwrap_or_default();
                let now = now.as_deref().and_then(Acl::from_json).unwrap_or_default();
                access.may_read(&then) && !access.may_read(&now)
            })
            .map(|(doc_id, _, _)| doc_id)
            .collect())
    }
}
