//! Lineage of a chunk (DESIGN.md §4): where it came from and everything that made it, from
//! the catalog alone.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use sluice_core::{
    Acl, ChunkId, ContentHash, DocumentId, DocumentMetadata, ReadAccess, TextHash, VERSION_OPEN, Version,
};

use crate::catalog::{STORED_CHUNK_SELECT, SqlCatalog, opt_u32, params, parse_id, parse_reason, stored_chunk_row};
use crate::error::Result;
use crate::prelude::*;
use crate::time_travel::PastAccess;
use crate::types::{ChangeReason, join_path};

/// Everything known about how one chunk came to be.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Lineage {
    pub chunk_id: ChunkId,
    pub pipeline: String,
    pub source: LineageSource,
    pub span: LineageSpan,
    pub text_hash: TextHash,
    pub dedup: DedupVerdict,
    /// Extraction and cleaning, chunking, embedding: each stage's fingerprint and settings.
    pub stages: LineageStages,
    pub pipeline_fingerprint: String,
    pub run: LineageRun,
    /// Why this document version was added, and (once retired) why it was retired.
    pub added_reason: ChangeReason,
    pub retired_reason: Option<ChangeReason>,
    /// Every `[valid_from, valid_to)` in which the chunk is visible; `valid_to` null while live.
    pub appearances: Vec<Appearance>,
    /// Unix milliseconds when the chunk was written.
    pub written_at: i64,
    /// Who may read the chunk (principal keys), captured from the source and the rules.
    pub readers: Acl,
    /// PII found: counts per kind in the document, and the kinds in this chunk.
    pub pii: LineagePii,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LineagePii {
    pub document: BTreeMap<String, usize>,
    pub chunk: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LineageSource {
    /// `file://` URI of the source file, with `#member` for an embedded file.
    pub uri: String,
    pub path: String,
    pub doc_id: DocumentId,
    /// The document version: blake3 of the bytes it was made from.
    pub content_hash: ContentHash,
    /// The document this one is embedded in (an attachment's message).
    pub parent: Option<DocumentId>,
    pub format: String,
    pub title: Option<String>,
    pub page_count: Option<u32>,
    pub byte_size: u64,
    /// The document's language (ISO 639-3).
    pub language: Option<String>,
    /// What the document says about itself: authors, dates, MIME type, ...
    pub metadata: DocumentMetadata,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LineageSpan {
    pub ordinal: u32,
    /// 1-based page (or slide, sheet) where the chunk starts.
    pub page: Option<u32>,
    /// Character span in the document's cleaned text.
    pub char_start: u32,
    pub char_end: u32,
    pub token_count: u32,
    pub heading_path: Vec<String>,
    /// The chunk's language (ISO 639-3).
    pub language: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DedupVerdict {
    /// `unique`: no live document had the same normalised text, or nearly, when this one was
    /// indexed; `near_duplicate`: it was indexed with a link to the live document it nearly
    /// repeats (`duplicate_of`, `similarity`).
    pub verdict: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<DocumentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f64>,
    /// Live documents skipped as exact duplicates of this chunk's document.
    pub duplicates: Vec<String>,
    /// Live documents recorded as its near-duplicates (indexed with the link, or skipped).
    #[serde(default)]
    pub near_duplicates: Vec<NearDuplicate>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NearDuplicate {
    pub path: String,
    pub similarity: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LineageStages {
    pub extract: StageRecord,
    pub chunk: StageRecord,
    pub embed: StageRecord,
}

/// A stage fingerprint and what it stands for (as the engine that used it recorded it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageRecord {
    pub fingerprint: String,
    pub settings: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LineageRun {
    pub run_id: String,
    /// The version the run committed (the chunk's `valid_from`).
    pub version: Version,
    pub started_at: i64,
    pub committed_at: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appearance {
    pub valid_from: Version,
    pub valid_to: Option<Version>,
}

impl ChunkLineage for SqlCatalog {
    fn lineage(
        &self,
        pipeline: &str,
        chunk_id: ChunkId,
        access: &ReadAccess,
        past: PastAccess,
    ) -> Result<Option<Lineage>> {
        self.read(|c| {
            let appearances: Vec<Appearance> = c.query_map(
                "SELECT c.valid_from, c.valid_to FROM chunks c JOIN versions v
                     ON v.pipeline = c.pipeline AND v.version = c.valid_from AND v.state IN ('committed', 'expired')
                 WHERE c.pipeline = ?1 AND c.chunk_id = ?2 ORDER BY c.valid_from",
                params![pipeline, chunk_id.to_hex()],
                |r| {
                    let valid_to: Version = r.get(1)?;
                    Ok(Appearance { valid_from: r.get(0)?, valid_to: (valid_to != VERSION_OPEN).then_some(valid_to) })
                },
            )?;
            let Some(latest) = appearances.last().copied() else { return Ok(None) };
            // The one chunk record, then the provenance around it: its document and version.
            let chunk = c.query_row(
                &format!("{STORED_CHUNK_SELECT} WHERE c.pipeline = ?1 AND c.chunk_id = ?2 AND c.valid_from = ?3"),
                params![pipeline, chunk_id.to_hex(), latest.valid_from],
                stored_chunk_row,
            )?;
            let (
                parent,
                page_count,
                byte_size,
                added_reason,
                retired_reason,
                written_at,
                pipeline_fp,
                run,
                document_pii,
                (language, duplicate_of, similarity),
            ) = c.query_row(
                "SELECT d.parent, d.page_count, d.byte_size, d.added_reason, d.retired_reason, d.created_at,
                            v.pipeline_fingerprint, v.run_id, v.started_at, v.finished_at, d.pii,
                            d.language, d.duplicate_of, d.similarity
                     FROM chunks c JOIN documents d ON d.id = c.document
                          JOIN versions v ON v.pipeline = c.pipeline AND v.version = c.valid_from
                     WHERE c.pipeline = ?1 AND c.chunk_id = ?2 AND c.valid_from = ?3",
                params![pipeline, chunk_id.to_hex(), latest.valid_from],
                |r| {
                    Ok((
                        r.get::<Option<String>>(0)?.map(|id| parse_id(id, DocumentId::parse)).transpose()?,
                        opt_u32(r.get(1)?),
                        r.get::<i64>(2)? as u64,
                        parse_reason(r.get(3)?)?,
                        r.get::<Option<String>>(4)?.map(parse_reason).transpose()?,
                        r.get::<i64>(5)?,
                        r.get::<String>(6)?,
                        LineageRun {
                            run_id: r.get(7)?,
                            version: latest.valid_from,
                            started_at: r.get(8)?,
                            committed_at: r.get(9)?,
                        },
                        serde_json::from_str::<BTreeMap<String, usize>>(&r.get::<String>(10)?).unwrap_or_default(),
                        (
                            r.get::<Option<String>>(11)?,
                            r.get::<Option<String>>(12)?.map(|id| parse_id(id, DocumentId::parse)).transpose()?,
                            r.get::<Option<f64>>(13)?,
                        ),
                    ))
                },
            )?;
            let source = LineageSource {
                uri: file_uri(&chunk.path),
                path: chunk.path.clone(),
                doc_id: chunk.doc_id,
                content_hash: chunk.content_hash,
                parent,
                format: chunk.format.clone(),
                title: chunk.title.clone(),
                page_count,
                byte_size,
                language,
                metadata: chunk.metadata.clone(),
            };
            let span = LineageSpan {
                ordinal: chunk.ordinal,
                page: chunk.page,
                char_start: chunk.char_start,
                char_end: chunk.char_end,
                token_count: chunk.token_count,
                heading_path: chunk.heading_path.clone(),
                language: chunk.language.clone(),
            };
            let (text_hash, readers) = (chunk.text_hash, chunk.readers.clone());
            let fingerprints =
                [chunk.extract_fingerprint.clone(), chunk.chunk_fingerprint.clone(), chunk.model.clone()];
            let pii = LineagePii { document: document_pii, chunk: chunk.pii.clone() };
            if !access.may_read(&readers) {
                return Ok(None);
            }
            let retired = latest.valid_to.is_some() && !matches!(access, ReadAccess::Unrestricted);
            if retired && past == PastAccess::Hidden {
                return Ok(None);
            }
            if retired && past == PastAccess::Today {
                let today_readers: Option<String> = c.query_value_opt(
                    "SELECT f.readers FROM documents d JOIN files f
                         ON f.pipeline = d.pipeline AND f.root = d.root AND f.rel_path = d.rel_path
                     WHERE d.pipeline = ?1 AND d.doc_id = ?2 LIMIT 1",
                    params![pipeline, source.doc_id.to_hex()],
                )?;
                if !access.may_read(&today_readers.as_deref().and_then(Acl::from_json).unwrap_or_default()) {
                    return Ok(None);
                }
            }
            let copies: Vec<(String, Option<f64>)> = c.query_map(
                "SELECT root, rel_path, member, similarity FROM documents
                 WHERE pipeline = ?1 AND duplicate_of = ?2 AND valid_to = ?3 ORDER BY root, rel_path, member",
                params![pipeline, source.doc_id.to_hex(), VERSION_OPEN],
                |r| Ok((join_path(&r.get::<String>(0)?, &r.get::<String>(1)?, &r.get::<String>(2)?), r.get(3)?)),
            )?;
            let duplicates = copies.iter().filter(|(_, similarity)| similarity.is_none()).map(|(path, _)| path.clone());
            let near_duplicates = copies
                .iter()
                .filter_map(|(path, similarity)| Some(NearDuplicate { path: path.clone(), similarity: (*similarity)? }))
                .collect();
            let verdict = if duplicate_of.is_some() { "near_duplicate" } else { "unique" };
            let dedup = DedupVerdict {
                verdict: verdict.to_owned(),
                duplicate_of,
                similarity,
                duplicates: duplicates.collect(),
                near_duplicates,
            };
            let [extract, chunking, embed] = fingerprints;
            let stage = |fingerprint: String| -> Result<StageRecord> {
                let settings = crate::catalog::stage_settings_in(c, &fingerprint)?.unwrap_or(serde_json::Value::Null);
                Ok(StageRecord { fingerprint, settings })
            };
            Ok(Some(Lineage {
                chunk_id,
                pipeline: pipeline.to_owned(),
                source,
                span,
                text_hash,
                dedup,
                stages: LineageStages { extract: stage(extract)?, chunk: stage(chunking)?, embed: stage(embed)? },
                pipeline_fingerprint: pipeline_fp,
                run,
                added_reason,
                retired_reason,
                appearances,
                written_at,
                readers,
                pii,
            }))
        })
    }
}

/// A `file://` URI for a local path (`#member` kept as the fragment). Characters outside
/// RFC 3986's unreserved set and `/` are percent-encoded.
pub fn file_uri(path: &str) -> String {
    let (file, member) = match path.split_once('#') {
        Some((file, member)) => (file, Some(member)),
        None => (path, None),
    };
    let encode = |text: &str, keep: &[u8]| -> String {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let mut uri = format!("file://{}", encode(file, b"/"));
    if let Some(member) = member {
        uri.push('#');
        uri.push_str(&encode(member, b"/"));
    }
    uri
}
