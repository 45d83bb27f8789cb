//! A file's readers: captured from the share (POSIX owner, group, mode and ACL xattrs), then
//! renamed and overridden by the pipeline's `[access]` rules.
//!
//! Folders count too: a principal the file names is a reader only if it may also enter every
//! folder from the source root down (search permission, `x`), checked the way the kernel
//! checks it (owner, named user, groups, others; the ACL mask applied). A user's groups come
//! from the system's group database; a group stands for a member with no other claim on the
//! folder; `everyone` for a user in no special class.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use glob::MatchOptions;
use sluice_config::{AccessPlan, AccessSource};
use sluice_core::{Acl, EVERYONE, PUBLIC};

use crate::source::Ownership;

/// The extended attribute holding a file's POSIX access ACL (Linux binary format).
const POSIX_ACL_XATTR: &str = "system.posix_acl_access";
/// The search (execute) bit of an ACL entry.
const ACL_EXECUTE: u16 = 1;
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

/// A folder's owner, group and permissions, as its ACL (mode bits make a minimal one).
#[derive(Clone, Debug)]
struct Folder {
    uid: u32,
    gid: u32,
    acl: Vec<AclEntry>,
}

impl Folder {
    /// `None` when the path is missing or not a folder (a link is not followed).
    fn read(path: &Path) -> Option<Self> {
        let metadata = std::fs::symlink_metadata(path).ok()?;
        if !metadata.is_dir() {
            return None;
        }
        let acl = xattr::get(path, POSIX_ACL_XATTR).ok().flatten().and_then(|bytes| parse_posix_acl(&bytes));
        let mode = metadata.mode();
        let bits = |shift: u32| ((mode >> shift) & 7) as u16;
        let acl = acl.unwrap_or_else(|| {
            vec![
                AclEntry { tag: ACL_USER_OBJ, perm: bits(6), id: u32::MAX },
                AclEntry { tag: ACL_GROUP_OBJ, perm: bits(3), id: u32::MAX },
                AclEntry { tag: ACL_OTHER, perm: bits(0), id: u32::MAX },
            ]
        });
        Some(Self { uid: metadata.uid(), gid: metadata.gid(), acl })
    }

    /// Whether a process with user `uid` (if any) and these groups may pass (POSIX order:
    /// owner, named user, any matching group entry, others).
    fn lets_through(&self, uid: Option<u32>, groups: &[u32]) -> bool {
        let mask = self.acl.iter().find(|e| e.tag == ACL_MASK).map_or(7, |e| e.perm);
        let entry = |tag: u16| self.acl.iter().find(move |e| e.tag == tag);
        if uid == Some(self.uid) {
            return entry(ACL_USER_OBJ).is_some_and(|e| e.perm & ACL_EXECUTE != 0);
        }
        if let Some(named) = self.acl.iter().find(|e| e.tag == ACL_USER && Some(e.id) == uid) {
            return named.perm & mask & ACL_EXECUTE != 0;
        }
        let mut group_matched = false;
        for e in &self.acl {
            let matches = match e.tag {
                ACL_GROUP_OBJ => groups.contains(&self.gid),
                ACL_GROUP => groups.contains(&e.id),
                _ => false,
            };
            if matches {
                group_matched = true;
                if e.perm & mask & ACL_EXECUTE != 0 {
                    return true;
                }
            }
        }
        !group_matched && entry(ACL_OTHER).is_some_and(|e| e.perm & ACL_EXECUTE != 0)
    }
}

/// Resolves readers for the files of one pipeline, caching account names, group memberships
/// and folders.
pub struct AccessResolver {
    plan: AccessPlan,
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
    memberships: Mutex<HashMap<u32, Vec<u32>>>,
    /// Folders by path (`None`: missing or not a folder).
    folders: Mutex<HashMap<PathBuf, Option<Folder>>>,
}

impl AccessResolver {
    pub fn new(plan: AccessPlan) -> Self {
        Self {
            plan,
            users: Mutex::default(),
            groups: Mutex::default(),
            memberships: Mutex::default(),
            folders: Mutex::default(),
        }
    }

    pub fn plan(&self) -> &AccessPlan {
        &self.plan
    }

    /// The readers of the file at `rel_path` under `root`, whose descriptor gave `owner` and
    /// `acl` (the `system.posix_acl_access` bytes): nothing is read by path but the folders.
    pub fn readers(&self, root: &Path, rel_path: &str, owner: Ownership, acl: Option<&[u8]>) -> Acl {
        let mut keys = match self.plan.source {
            AccessSource::None => vec![EVERYONE.to_owned()],
            AccessSource::Posix => self.captured(root, rel_path, owner, acl),
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

    fn captured(&self, root: &Path, rel_path: &str, owner: Ownership, acl: Option<&[u8]>) -> Vec<String> {
        let acl = acl.and_then(parse_posix_acl);
        let folders = self.folders_above(root, rel_path);
        let mut keys = Vec::new();
        for reader in posix_readers(owner.uid, owner.gid, owner.mode, acl.as_deref()) {
            let (uid, groups) = match reader {
                Reader::Uid(uid) => (Some(uid), self.groups_of(uid)),
                Reader::Gid(gid) => (None, vec![gid]),
                Reader::Others => (None, Vec::new()),
            };
            // A principal that cannot enter a folder on the way cannot read the file.
            let reaches = folders.iter().all(|folder| folder.as_ref().is_some_and(|f| f.lets_through(uid, &groups)));
            if !reaches {
                continue;
            }
            keys.push(match reader {
                Reader::Uid(uid) => format!("user:{}", self.user_name(uid)),
                Reader::Gid(gid) => format!("group:{}", self.group_name(gid)),
                Reader::Others => EVERYONE.to_owned(),
            });
        }
        keys
    }

    /// The folders from `root` down to the file's parent, cached for the reconcile.
    fn folders_above(&self, root: &Path, rel_path: &str) -> Vec<Option<Folder>> {
        let mut path = root.to_owned();
        let names: Vec<&str> = rel_path.split('/').collect();
        let mut paths = vec![path.clone()];
        for name in &names[..names.len().saturating_sub(1)] {
            path.push(crate::names::decode(name));
            paths.push(path.clone());
        }
        let mut cache = self.folders.lock().expect("folder cache lock");
        paths.into_iter().map(|path| cache.entry(path.clone()).or_insert_with(|| Folder::read(&path)).clone()).collect()
    }

    /// Forgets cached folders and memberships (a reconcile sees chmods and group changes).
    pub fn forget_folders(&self) {
        self.folders.lock().expect("folder cache lock").clear();
        self.memberships.lock().expect("membership cache lock").clear();
    }

    /// The groups a user belongs to (primary and supplementary), from the group database.
    fn groups_of(&self, uid: u32) -> Vec<u32> {
        let mut cache = self.memberships.lock().expect("membership cache lock");
        cache
            .entry(uid)
            .or_insert_with(|| {
                let Some(user) = uzers::get_user_by_uid(uid) else { return Vec::new() };
                let primary = user.primary_group_id();
                let mut groups: Vec<u32> = uzers::get_user_groups(user.name(), primary)
                    .map(|groups| groups.iter().map(uzers::Group::gid).collect())
                    .unwrap_or_default();
                groups.push(primary);
                groups.sort_unstable();
                groups.dedup();
                groups
            })
            .clone()
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

    fn folder(uid: u32, gid: u32, acl: &[AclEntry]) -> Folder {
        Folder { uid, gid, acl: acl.to_vec() }
    }

    #[test]
    fn folders_are_passed_as_the_kernel_decides() {
        // drwx--x---, owner 10, group 20.
        let modes =
            [entry(ACL_USER_OBJ, 7, u32::MAX), entry(ACL_GROUP_OBJ, 1, u32::MAX), entry(ACL_OTHER, 0, u32::MAX)];
        let plain = folder(10, 20, &modes);
        assert!(plain.lets_through(Some(10), &[]));
        assert!(plain.lets_through(Some(11), &[20]));
        assert!(plain.lets_through(None, &[20]));
        assert!(!plain.lets_through(Some(11), &[21]));
        assert!(!plain.lets_through(None, &[]));
        // The owner class decides for the owner, even when others may pass.
        let owner_locked = folder(
            10,
            20,
            &[entry(ACL_USER_OBJ, 6, u32::MAX), entry(ACL_GROUP_OBJ, 0, u32::MAX), entry(ACL_OTHER, 1, u32::MAX)],
        );
        assert!(!owner_locked.lets_through(Some(10), &[]));
        assert!(owner_locked.lets_through(Some(11), &[]));
        // A matching group without x refuses, even when others may pass.
        let group_locked = folder(
            10,
            20,
            &[entry(ACL_USER_OBJ, 7, u32::MAX), entry(ACL_GROUP_OBJ, 4, u32::MAX), entry(ACL_OTHER, 1, u32::MAX)],
        );
        assert!(!group_locked.lets_through(Some(11), &[20]));
        assert!(group_locked.lets_through(Some(11), &[21]));
        // Named entries, limited by the mask.
        let acl = [
            entry(ACL_USER_OBJ, 7, u32::MAX),
            entry(ACL_USER, 1, 1001),
            entry(ACL_GROUP_OBJ, 0, u32::MAX),
            entry(ACL_GROUP, 1, 3001),
            entry(ACL_MASK, 1, u32::MAX),
            entry(ACL_OTHER, 0, u32::MAX),
        ];
        assert!(folder(10, 20, &acl).lets_through(Some(1001), &[]));
        assert!(folder(10, 20, &acl).lets_through(None, &[3001]));
        let mut masked = acl;
        masked[4].perm = 0;
        assert!(!folder(10, 20, &masked).lets_through(Some(1001), &[]));
        assert!(!folder(10, 20, &masked).lets_through(None, &[3001]));
    }
}
