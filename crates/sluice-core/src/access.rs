//! Who may read what: a document's read ACL and a reader's principal keys.
//!
//! Both sides speak in *principal keys*: `user:<name>`, `group:<name>`, [`EVERYONE`] (any
//! authenticated reader; a file the share lets all its users read) and [`PUBLIC`] (anonymous
//! readers too; only a pipeline rule grants it). A reader may see a chunk iff the chunk's ACL
//! and the reader's keys share at least one key. The same test runs inside Qdrant (`match any`)
//! and Tantivy (a term set), so it filters before ranking.

use serde::{Deserialize, Serialize};

/// Any authenticated reader.
pub const EVERYONE: &str = "everyone";
/// Anyone, including anonymous readers where a pipeline allows them.
pub const PUBLIC: &str = "public";

/// A document's read ACL: principal keys, sorted and unique. Empty means nobody but an
/// unrestricted reader (the local administrator).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Acl(Vec<String>);

impl Acl {
    pub fn new(keys: impl IntoIterator<Item = String>) -> Self {
        let mut keys: Vec<String> = keys.into_iter().collect();
        keys.sort();
        keys.dedup();
        Self(keys)
    }

    pub fn keys(&self) -> &[String] {
        &self.0
    }

    /// The canonical text stored in the catalog: a JSON array.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).expect("a list of strings serialises")
    }

    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str::<Vec<String>>(text).ok().map(Self::new)
    }
}

/// An authenticated identity: a user and the groups it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub user: String,
    pub groups: Vec<String>,
}

impl Principal {
    /// The ACL keys this principal matches.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = vec![format!("user:{}", self.user)];
        keys.extend(self.groups.iter().map(|group| format!("group:{group}")));
        keys.push(EVERYONE.to_owned());
        keys.push(PUBLIC.to_owned());
        keys
    }
}

/// What a read may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadAccess {
    /// Everything: the local administrator working on the data directory itself.
    Unrestricted,
    /// Chunks whose ACL holds one of these keys.
    Keys(Vec<String>),
}

impl ReadAccess {
    pub fn of(principal: &Principal) -> Self {
        ReadAccess::Keys(principal.keys())
    }

    /// An unauthenticated reader, where a pipeline allows one: public documents only.
    pub fn anonymous() -> Self {
        ReadAccess::Keys(vec![PUBLIC.to_owned()])
    }

    pub fn may_read(&self, acl: &Acl) -> bool {
        match self {
            ReadAccess::Unrestricted => true,
            ReadAccess::Keys(keys) => acl.keys().iter().any(|key| keys.contains(key)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_sees_a_document_when_one_key_is_shared() {
        let alice = Principal { user: "alice".into(), groups: vec!["eng".into()] };
        let access = ReadAccess::of(&alice);
        assert!(access.may_read(&Acl::new(["group:eng".to_owned()])));
        assert!(access.may_read(&Acl::new([EVERYONE.to_owned()])));
        assert!(!access.may_read(&Acl::new(["user:bob".to_owned(), "group:hr".to_owned()])));
        assert!(!access.may_read(&Acl::default()));
        assert!(ReadAccess::Unrestricted.may_read(&Acl::default()));
        assert!(!ReadAccess::anonymous().may_read(&Acl::new([EVERYONE.to_owned()])));
        assert!(ReadAccess::anonymous().may_read(&Acl::new([PUBLIC.to_owned()])));
    }

    #[test]
    fn acl_keys_are_sorted_unique_and_stored_as_json() {
        let acl = Acl::new(["user:b".to_owned(), "group:a".to_owned(), "user:b".to_owned()]);
        assert_eq!(acl.keys(), ["group:a", "user:b"]);
        assert_eq!(acl.to_json(), r#"["group:a","user:b"]"#);
    }
}
