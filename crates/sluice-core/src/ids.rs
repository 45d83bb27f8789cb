//! Content-derived identities (DESIGN.md §2).
//!
//! All ids are blake3 digests rendered as lowercase hex, so they are stable across machines,
//! processes and releases. Each id type is a distinct newtype so a text hash can never be passed
//! where a chunk id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! hex_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 32]);

        impl $name {
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses the 64-character lowercase hex form produced by `to_hex`.
            pub fn parse(text: &str) -> Option<Self> {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(text, &mut bytes).ok()?;
                Some(Self(bytes))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.to_hex()[..12])
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(concat!("invalid ", stringify!($name)))
                })
            }
        }
    };
}

hex_id!(
    /// Identity of a document: (pipeline, source root, relative path), or its parent's id and
    /// its name for an embedded file. Survives edits.
    DocumentId
);
hex_id!(
    /// A document version: blake3 of the file's bytes. Equal bytes, equal hash, wherever they are.
    ContentHash
);
hex_id!(
    /// blake3 of a normalised text: the key of exact dedup and of the embedding cache.
    TextHash
);
hex_id!(
    /// Identity of a chunk: (document, document version, chunking fingerprint, ordinal).
    ChunkId
);

/// Builds a digest from length-prefixed parts, so ("ab", "c") and ("a", "bc") never collide.
fn digest(domain: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(domain);
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    *hasher.finalize().as_bytes()
}

impl DocumentId {
    pub fn new(pipeline: &str, source_root: &str, relative_path: &str) -> Self {
        Self(digest("sluice document id v1", &[pipeline.as_bytes(), source_root.as_bytes(), relative_path.as_bytes()]))
    }

    /// Identity of a file embedded in this document (an attachment, a mailbox's message), by its
    /// name inside the parent. A separate domain, so it never equals the id of a real file.
    pub fn embedded(self, name: &str) -> Self {
        Self(digest("sluice embedded document id v1", &[self.as_bytes(), name.as_bytes()]))
    }

    /// Identity of the document at `member` (names joined by `/`, empty for the file itself)
    /// inside the file with this id.
    pub fn member(self, member: &str) -> Self {
        member.split('/').filter(|name| !name.is_empty()).fold(self, DocumentId::embedded)
    }
}

impl ContentHash {
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

impl TextHash {
    pub fn of_text(text: &str) -> Self {
        Self(*blake3::hash(text.as_bytes()).as_bytes())
    }
}

impl ChunkId {
    pub fn new(document: DocumentId, version: ContentHash, chunking: crate::Fingerprint, ordinal: u32) -> Self {
        Self(digest(
            "sluice chunk id v1",
            &[document.as_bytes(), version.as_bytes(), chunking.as_bytes(), &ordinal.to_le_bytes()],
        ))
    }
}

/// Key of one stored appearance of a chunk: the chunk id plus the version it became visible in.
///
/// A chunk id can become visible more than once (a file reverted to earlier bytes produces the
/// same chunk ids again), and each appearance needs its own `[valid_from, valid_to)` interval so
/// that time travel to the version in between still hides it. The catalog, the Qdrant point id
/// and the Tantivy delete term are all keyed by this, never by the bare chunk id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PointKey {
    pub chunk: ChunkId,
    pub valid_from: crate::Version,
}

impl PointKey {
    /// The Qdrant point id: a UUID made of the first 16 bytes of a digest of the key.
    pub fn uuid(&self) -> uuid::Uuid {
        let bytes = digest("sluice point id v1", &[self.chunk.as_bytes(), &self.valid_from.to_le_bytes()]);
        let mut first = [0u8; 16];
        first.copy_from_slice(&bytes[..16]);
        uuid::Uuid::from_bytes(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = DocumentId::new("p", "/root", "a.txt");
        assert_eq!(a, DocumentId::new("p", "/root", "a.txt"));
        assert_ne!(a, DocumentId::new("p", "/roo", "ta.txt"));
        let fp = crate::Fingerprint::of("chunker", "v1");
        let v = ContentHash::of_bytes(b"hello");
        let c0 = ChunkId::new(a, v, fp, 0);
        assert_eq!(c0, ChunkId::new(a, v, fp, 0));
        assert_ne!(c0, ChunkId::new(a, v, fp, 1));
        assert_eq!(ChunkId::parse(&c0.to_hex()), Some(c0));
    }

    #[test]
    fn embedded_documents_never_share_a_file_id() {
        let mail = DocumentId::new("p", "/root", "mail.eml");
        let attachment = mail.embedded("1-report.pdf");
        assert_ne!(attachment, DocumentId::new("p", "/root", "mail.eml#1-report.pdf"));
        assert_eq!(mail.member(""), mail);
        assert_eq!(mail.member("1-report.pdf"), attachment);
        assert_eq!(mail.member("1-report.pdf/2-note.txt"), attachment.embedded("2-note.txt"));
    }

    #[test]
    fn each_appearance_of_a_chunk_gets_its_own_point() {
        let chunk = ChunkId::from_bytes([7; 32]);
        let first = PointKey { chunk, valid_from: 1 };
        let again = PointKey { chunk, valid_from: 3 };
        assert_ne!(first.uuid(), again.uuid());
        assert_eq!(first.uuid(), PointKey { chunk, valid_from: 1 }.uuid());
    }
}
