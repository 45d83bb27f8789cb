//! The vocabulary of sluice: identities, documents, chunks, versions and stage outcomes.
//!
//! Every other crate speaks in these types, so this crate stays small and does no I/O. Identity
//! is content-derived (see `ids`): the same bytes at the same place always produce the same
//! document version and the same chunk ids, which is what makes every write an idempotent upsert
//! and lets a crashed version be replayed or undone without bookkeeping of its own.

pub mod access;
pub mod compute;
pub mod document;
pub mod embedding_input;
pub mod error_kind;
pub mod filter;
pub mod fingerprint;
pub mod ids;
pub mod records;
pub mod stage;
pub mod version;

pub use access::{Acl, EVERYONE, PUBLIC, Principal, ReadAccess};
pub use compute::{DevicePreference, Precision};
pub use document::{
    Block, BlockKind, BlockSpan, Chunk, DocumentMetadata, EmbeddedFile, ExtractedDocument, NormalizedDocument,
};
pub use error_kind::ErrorKind;
pub use filter::{DocumentFacets, NormalizedFilter, SearchFilter};
pub use fingerprint::Fingerprint;
pub use ids::{ChunkId, ContentHash, DocumentId, PointKey, TextHash};
pub use stage::{Stage, StageFailure};
pub use version::{VERSION_OPEN, Version};
