//! Reconciliation: what changed on disk since the ledger's last committed view.
//!
//! A file whose size and modification time match the ledger is unchanged and is not even read.
//! Otherwise it is hashed: equal bytes (a `touch`, a copy-back) only refresh the ledger, other
//! bytes make it changed. Ledger entries with no file behind them are deletions. Every file's
//! readers are resolved on each reconcile (a stat and an xattr read, no content): readers
//! other than the ledger's alone make an access change.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sluice_core::{Acl, ContentHash};
use sluice_store::LedgerEntry;

use crate::access::AccessResolver;

/// One source folder, by its canonical absolute path (part of every document identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    pub path: PathBuf,
    pub key: String,
}

impl Root {
    pub fn new(path: &Path) -> std::io::Result<Self> {
        let path = fs::canonicalize(path)?;
        let key = path.display().to_string();
        Ok(Self { path, key })
    }
}

/// A file as seen on disk.
#[derive(Clone, Debug)]
pub struct DiskFile {
    pub size: u64,
    pub mtime_ns: i64,
    /// Owner, group and mode bits from the same `stat`, for the readers.
    pub owner: Ownership,
    /// Who may read it (filled in by [`AccessResolver`]; empty until then).
    pub readers: Acl,
}

/// Who owns a file and its permission bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// What reconciliation decided for one path.
#[derive(Clone, Debug)]
pub enum FileChange {
    /// Not in the ledger.
    New { disk: DiskFile },
    /// In the ledger with other bytes (hash already known to differ, or not yet computed).
    Changed { disk: DiskFile },
    /// Same bytes as the ledger says, new size/mtime: only the ledger is refreshed.
    Touched { disk: DiskFile, content_hash: ContentHash },
    /// Same bytes, other readers: the file's documents get the new ACL (nothing is extracted
    /// or embedded again).
    AccessChanged { disk: DiskFile },
    /// In the ledger, gone from disk.
    Deleted,
}

/// The changes under one root, by relative path (sorted, so runs are deterministic).
#[derive(Debug, Default)]
pub struct RootChanges {
    pub changes: BTreeMap<String, FileChange>,
    pub unchanged: usize,
}

/// Files under `dir`, recursively, as relative paths from `root`. Hidden files and folders,
/// editor backups and office lock files are not documents; symbolic links are not followed
/// (a link loop must not hang the scan).
pub fn list_files(root: &Path, dir: &Path, into: &mut BTreeMap<String, DiskFile>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_ignored_name(&name) {
            continue;
        }
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if file_type.is_dir() {
            list_files(root, &path, into);
        } else if file_type.is_file()
            && let Some(disk) = stat(&path)
            && let Some(rel) = relative(root, &path)
        {
            into.insert(rel, disk);
        }
    }
}

pub fn is_ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with("~$")
        || name.ends_with('~')
        || name.ends_with(".tmp")
        || name.ends_with(".swp")
}

/// Relative path with `/` separators, or `None` when `path` is not under `root`.
pub fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if parts.is_empty() { None } else { Some(parts.join("/")) }
}

pub fn stat(path: &Path) -> Option<DiskFile> {
    let metadata = fs::metadata(path).ok()?;
    if !metadata.is_file() {
        return None;
    }
    let mtime_ns = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let owner = Ownership { uid: metadata.uid(), gid: metadata.gid(), mode: metadata.mode() };
    Some(DiskFile { size: metadata.len(), mtime_ns, owner, readers: Acl::default() })
}

/// blake3 of a file's bytes, streamed.
pub fn hash_file(path: &Path) -> std::io::Result<ContentHash> {
    let mut file = fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(ContentHash::from_bytes(*hasher.finalize().as_bytes()))
}

/// A known file's bytes compared with the ledger's.
enum Bytes {
    /// Same size and modification time: not even read.
    Unchanged,
    /// Read, and equal to the ledger's hash.
    Same(ContentHash),
    Changed,
}

/// The file at `rel_path` under `root` with its readers, or `None` if it is gone.
pub fn stat_with_readers(access: &AccessResolver, root: &Root, rel_path: &str) -> Option<DiskFile> {
    let mut disk = stat(&root.path.join(rel_path))?;
    disk.readers = access.readers(&root.path, rel_path, disk.owner);
    Some(disk)
}

/// Compares what is on disk with the ledger for the given relative paths (`None`: everything
/// under the root).
pub fn reconcile(
    root: &Root,
    ledger: &HashMap<String, LedgerEntry>,
    only: Option<&[String]>,
    access: &AccessResolver,
) -> RootChanges {
    access.forget_folders();
    let mut on_disk = BTreeMap::new();
    let mut candidates: Vec<String> = Vec::new();
    match only {
        None => {
            list_files(&root.path, &root.path, &mut on_disk);
            candidates.extend(ledger.keys().cloned());
        }
        Some(paths) => {
            for rel in paths {
                let path = root.path.join(rel);
                if path.is_dir() {
                    list_files(&root.path, &path, &mut on_disk);
                } else if let Some(disk) = stat(&path) {
                    on_disk.insert(rel.clone(), disk);
                }
                // A path that vanished may have been a folder: everything the ledger has below it.
                let prefix = format!("{rel}/");
                candidates.extend(ledger.keys().filter(|known| *known == rel || known.starts_with(&prefix)).cloned());
            }
        }
    }
    candidates.extend(on_disk.keys().cloned());
    candidates.sort();
    candidates.dedup();

    let mut result = RootChanges::default();
    for rel in candidates {
        let known = ledger.get(&rel);
        let disk = on_disk.remove(&rel).map(|mut disk| {
            disk.readers = access.readers(&root.path, &rel, disk.owner);
            disk
        });
        let change = match (disk, known) {
            (None, None) => continue,
            (None, Some(_)) => FileChange::Deleted,
            (Some(disk), None) => FileChange::New { disk },
            (Some(disk), Some(entry)) => {
                let same_readers = entry.readers.as_ref() == Some(&disk.readers);
                let bytes = if disk.size == entry.size && disk.mtime_ns == entry.mtime_ns {
                    Bytes::Unchanged
                } else {
                    match hash_file(&root.path.join(&rel)) {
                        Ok(hash) if hash == entry.content_hash => Bytes::Same(hash),
                        _ => Bytes::Changed,
                    }
                };
                match (bytes, same_readers) {
                    (Bytes::Unchanged, true) => {
                        result.unchanged += 1;
                        continue;
                    }
                    (Bytes::Same(content_hash), true) => FileChange::Touched { disk, content_hash },
                    (Bytes::Unchanged | Bytes::Same(_), false) => FileChange::AccessChanged { disk },
                    (Bytes::Changed, _) => FileChange::Changed { disk },
                }
            }
        };
        result.changes.insert(rel, change);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_hidden_and_temporary_files() {
        assert!(is_ignored_name(".DS_Store"));
        assert!(is_ignored_name("~$report.docx"));
        assert!(is_ignored_name("notes.txt~"));
        assert!(!is_ignored_name("report.pdf"));
    }

    #[test]
    fn relative_paths_use_forward_slashes() {
        assert_eq!(relative(Path::new("/a"), Path::new("/a/b/c.txt")).as_deref(), Some("b/c.txt"));
        assert_eq!(relative(Path::new("/a"), Path::new("/x/c.txt")), None);
    }
}
