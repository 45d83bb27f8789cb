//! A file's readers: captured from the share (POSIX owner, group, mode and ACL xattrs), then
//! renamed and overridden by the pipeline's `[access]` rules.
//!
//! Folders count too, approximately: `everyone` is granted only when the file's mode lets
//! others read it *and* every folder from the source root down lets others through (`o+x`);
//! named owners, groups and ACL entries are taken from the file alone.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use glob::MatchOptions;
use sluice_config::{AccessPlan, AccessSource};
use sluice_core::{Acl, EVERYONE, PUBLIC};

use crate::scan::Ownership;

/// The extended attribute holding a file's POSIX access ACL (Linux binary format).
const POSIX_ACL_XATTR: &str = "system.posix_acl_access";
/// Entry tags and the read bit of the Linux ACL format (`acl/libacl.h`).
pub const ACL_USER_OBJ: u16 = 0x01;
pub const ACL_USER: u16 = 0x02;
pub const ACL_GROUP_OBJ: u16 = 0x04;
pub const ACL_GROUP: u16 = 0x08;
pub const ACL_MASK: u16 = 0x10;
pub const ACL_OTHER: u16 = 0x20;
pub const ACL_READ: u16 = 4;

/// One entry of a POSIX ACL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclEntry {
    pub tag: u16,
    pub perm: u16,
    pub id: u32,
}

/// Decodes `system.posix_acl_access`: a little-endian version 2 header, then 8-byte entries.
pub fn parse_posix_acl(bytes: &[u8]) -> Option<Vec<AclEntry>> {
    let (header, entries) = bytes.split_at_checked(4)?;
    if u32::from_le_bytes(header.try_into().ok()?) != 2 || entries.len() % 8 != 0 {
        return None;
    }
    Some(
        entries
            .chunks_exact(8)
            .map(|e| AclEntry {
                tag: u16::from_le_bytes([e[0], e[1]]),
                perm: u16::from_le_bytes([e[2], e[3]]),
                id: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            })
            .collect(),
    )
}

/// Encodes an ACL in the xattr format (tests write ACLs with it; no `setfacl` needed).
pub fn encode_posix_acl(entries: &[AclEntry]) -> Vec<u8> {
    let mut bytes = 2u32.to_le_bytes().to_vec();
    for entry in entries {
        bytes.extend(entry.tag.to_le_bytes());
        bytes.extend(entry.perm.to_le_bytes());
        bytes.extend(entry.id.to_le_bytes());
    }
    bytes
}

/// Who the share lets read a file, before the pipeline's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reader {
    Uid(u32),
    Gid(u32),
    Others,
}

/// Readers from the mode bits and, when present, the ACL (whose mask limits named entries and
/// the owning group; with an ACL, the mode's group bits are the mask).
pub fn posix_readers(uid: u32, gid: u32, mode: u32, acl: Option<&[AclEntry]>) -> Vec<Reader> {
    let mut readers = Vec::new();
    let Some(acl) = acl else {
        if mode & 0o400 != 0 {
            readers.push(Reader::Uid(uid));
        }
        if mode & 0o040 != 0 {
            readers.push(Reader::Gid(gid));
        }
        if mode & 0o004 != 0 {
            readers.push(Reader::Others);
        }
        return readers;
    };
    let mask = acl.iter().find(|e| e.tag == ACL_MASK).map_or(7, |e| e.perm);
    for entry in acl {
        let masked = entry.perm & mask & ACL_READ != 0;
        match entry.tag {
            ACL_USER_OBJ if entry.perm & ACL_READ != 0 => readers.push(Reader::Uid(uid)),
            ACL_USER if masked => readers.push(Reader::Uid(entry.id)),
            ACL_GROUP_OBJ if masked => readers.push(Reader::Gid(gid)),
            ACL_GROUP if masked => readers.push(Reader::Gid(entry.id)),
            ACL_OTHER if entry.perm & ACL_READ != 0 => readers.push(Reader::Others),
            _ => {}
        }
    }
    readers
}

/// Resolves readers for the files of one pipeline, caching account names and folder modes.
pub struct AccessResolver {
    plan: AccessPlan,
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
    /// Whether others may pass through a folder (`o+x`).
    folders: Mutex<HashMap<PathBuf, bool>>,
}

impl AccessResolver {
    pub fn new(plan: AccessPlan) -> Self {
        Self { plan, users: Mutex::default(), groups: Mutex::default(), folders: Mutex::default() }
    }

    /// The readers of the file at `rel_path` under `root`, whose `stat` gave `owner` (the
    /// reconcile already has it: no second `stat` per file).
    pub fn readers(&self, root: &Path, rel_path: &str, owner: Ownership) -> Acl {
        let mut keys = match self.plan.source {
            AccessSource::None => vec![EVERYONE.to_owned()],
            AccessSource::Posix => self.captured(root, rel_path, owner),
        };
        for map in &self.plan.map {
            if let Some(at) = keys.iter().position(|key| *key == map.from) {
                keys.remove(at);
                keys.extend(map.to.iter().cloned());
            }
        }
        let options = MatchOptions { require_literal_separator: true, ..MatchOptions::default() };
        for rule in self.plan.rules.iter().filter(|rule| rule.path.matches_with(rel_path, options)) {
            if rule.replace {
                keys.clear();
            }
            keys.extend(rule.readers.iter().cloned());
            if rule.public {
                keys.push(PUBLIC.to_owned());
            }
        }
        Acl::new(keys)
    }

    fn captured(&self, root: &Path, rel_path: &str, owner: Ownership) -> Vec<String> {
        let path = root.join(rel_path);
        let acl = xattr::get(&path, POSIX_ACL_XATTR).ok().flatten().and_then(|bytes| parse_posix_acl(&bytes));
        let readers = posix_readers(owner.uid, owner.gid, owner.mode, acl.as_deref());
        let mut keys = Vec::new();
        for reader in readers {
            match reader {
                Reader::Uid(uid) => keys.push(format!("user:{}", self.user_name(uid))),
                Reader::Gid(gid) => keys.push(format!("group:{}", self.group_name(gid))),
                Reader::Others if self.others_can_reach(root, rel_path) => keys.push(EVERYONE.to_owned()),
                Reader::Others => {}
            }
        }
        keys
    }

    /// Whether others may enter every folder from `root` down to the file's parent.
    fn others_can_reach(&self, root: &Path, rel_path: &str) -> bool {
        let mut folder = root.to_owned();
        let parents = rel_path.split('/').collect::<Vec<_>>();
        let parents = &parents[..parents.len().saturating_sub(1)];
        let check = |folder: &Path| {
            let mut cache = self.folders.lock().expect("folder cache lock");
            *cache.entry(folder.to_owned()).or_insert_with(|| {
                std::fs::metadata(folder).map(|metadata| metadata.mode() & 0o001 != 0).unwrap_or(false)
            })
        };
        if !check(&folder) {
            return false;
        }
        for name in parents {
            folder.push(name);
            if !check(&folder) {
                return false;
            }
        }
        true
    }

    /// Forgets cached folder modes (a reconcile sees chmods of folders).
    pub fn forget_folders(&self) {
        self.folders.lock().expect("folder cache lock").clear();
    }

    fn user_name(&self, uid: u32) -> String {
        let mut cache = self.users.lock().expect("user cache lock");
        cache
            .entry(uid)
            .or_insert_with(|| {
                uzers::get_user_by_uid(uid).map_or_else(|| uid.to_string(), |user| user.name().to_string_lossy().into())
            })
            .clone()
    }

    fn group_name(&self, gid: u32) -> String {
        let mut cache = self.groups.lock().expect("group cache lock");
        cache
            .entry(gid)
            .or_insert_with(|| {
                uzers::get_group_by_gid(gid)
                    .map_or_else(|| gid.to_string(), |group| group.name().to_string_lossy().into())
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tag: u16, perm: u16, id: u32) -> AclEntry {
        AclEntry { tag, perm, id }
    }

    #[test]
    fn mode_bits_name_owner_group_and_others() {
        assert_eq!(posix_readers(10, 20, 0o640, None), [Reader::Uid(10), Reader::Gid(20)]);
        assert_eq!(posix_readers(10, 20, 0o604, None), [Reader::Uid(10), Reader::Others]);
        assert_eq!(posix_readers(10, 20, 0o200, None), []);
    }

    #[test]
    fn acl_entries_are_limited_by_the_mask() {
        let acl = [
            entry(ACL_USER_OBJ, 6, u32::MAX),
            entry(ACL_USER, 4, 1001),
            entry(ACL_USER, 2, 1002),
            entry(ACL_GROUP_OBJ, 4, u32::MAX),
            entry(ACL_GROUP, 5, 3001),
            entry(ACL_MASK, 4, u32::MAX),
            entry(ACL_OTHER, 0, u32::MAX),
        ];
        let bytes = encode_posix_acl(&acl);
        assert_eq!(parse_posix_acl(&bytes).as_deref(), Some(&acl[..]));
        assert_eq!(
            posix_readers(10, 20, 0o640, Some(&acl)),
            [Reader::Uid(10), Reader::Uid(1001), Reader::Gid(20), Reader::Gid(3001)]
        );
        // A mask without read hides every named entry and the owning group, not the owner.
        let mut masked = acl;
        masked[5].perm = 0;
        assert_eq!(posix_readers(10, 20, 0o600, Some(&masked)), [Reader::Uid(10)]);
        assert_eq!(parse_posix_acl(&[1, 0, 0, 0]), None);
        assert_eq!(parse_posix_acl(&bytes[..9]), None);
    }
}
