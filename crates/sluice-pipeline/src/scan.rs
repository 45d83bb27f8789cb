//! Reconciliation: what changed on disk since the ledger's last committed view.
//!
//! A file whose size and modification time match the ledger is unchanged and is not even read.
//! Otherwise it is hashed: equal bytes (a `touch`, a copy-back) only refresh the ledger, other
//! bytes make it changed. Ledger entries with no file behind them are deletions. Every file's
//! readers are resolved on each reconcile, from an open descriptor of the file (`fstat` and
//! `fgetxattr`, no content read): readers other than the ledger's alone make an access change.
//!
//! Symbolic links are not documents and are never followed; FIFOs, sockets and devices are
//! listed (to be quarantined) but never opened.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use sluice_core::{Acl, ContentHash};
use sluice_store::LedgerEntry;

use crate::access::AccessResolver;
use crate::names;
use crate::source::{FileIdentity, FileKind, FileStat, OpenError, SourceFile};

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
    /// From the descriptor of the opened file (a special file's from `lstat`: it is never opened).
    pub stat: FileStat,
    /// Who may read it, resolved from the same descriptor.
    pub readers: Acl,
    /// Why this process cannot open it, when it cannot (it is quarantined without a read).
    pub unreadable: Option<String>,
}

impl DiskFile {
    pub fn size(&self) -> u64 {
        self.stat.identity.size
    }

    pub fn mtime_ns(&self) -> i64 {
        self.stat.identity.mtime_ns
    }

    pub fn identity(&self) -> &FileIdentity {
        &self.stat.identity
    }
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

/// Relative paths of the documents under `dir` (recursively), with their kind from `lstat`.
/// Hidden files and folders, editor backups and office lock files are not documents; symbolic
/// links are not followed (a link loop must not hang the scan, and a link may point anywhere).
pub fn list_files(root: &Path, dir: &Path, into: &mut BTreeMap<String, FileKind>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if is_ignored_name(&name.to_string_lossy()) {
            continue;
        }
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if file_type.is_dir() {
            list_files(root, &path, into);
            continue;
        }
        let kind = FileKind::of(file_type);
        if kind != FileKind::Other
            && let Some(rel) = relative(root, &path)
        {
            into.insert(rel, kind);
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

/// Relative path with `/` separators and each name in its text form ([`names::encode`]), or
/// `None` when `path` is not under `root`.
pub fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let mut parts = Vec::new();
    for component in rel.components() {
        match component {
            std::path::Component::Normal(name) => parts.push(names::encode(name)),
            _ => return None,
        }
    }
    if parts.is_empty() { None } else { Some(parts.join("/")) }
}

/// A file found by a scan, opened (unless special) to read its kind, identity and readers
/// from its descriptor. `None` when it is gone or has become a link (or anything but a file).
pub(crate) struct Probed {
    pub disk: DiskFile,
    /// The open file, for hashing it without opening it again.
    pub file: Option<SourceFile>,
}

pub(crate) fn probe(access: &AccessResolver, root: &Root, rel_path: &str) -> Option<Probed> {
    let path = root.path.join(names::decode_path(rel_path));
    let listed = FileStat::of(&fs::symlink_metadata(&path).ok()?);
    // A file not opened (special, unreadable, or replaced by a special file): its owner's readers.
    let unopened = |stat: FileStat, unreadable: Option<String>| {
        let readers = access.readers(&root.path, rel_path, stat.owner, None);
        Probed { disk: DiskFile { stat, readers, unreadable }, file: None }
    };
    match listed.kind {
        FileKind::Other => None,
        FileKind::Special(_) => Some(unopened(listed, None)),
        FileKind::Regular => match SourceFile::open(&root.path, rel_path) {
            Ok(file) => {
                let readers = access.readers(&root.path, rel_path, file.stat.owner, file.acl_xattr().as_deref());
                Some(Probed { disk: DiskFile { stat: file.stat, readers, unreadable: None }, file: Some(file) })
            }
            Err(OpenError::Unreadable(err)) => Some(unopened(listed, Some(err.to_string()))),
            // Replaced since it was listed: what is there now decides (a FIFO is special, a
            // link or nothing is no document).
            Err(OpenError::Changed(_)) => {
                let now = FileStat::of(&fs::symlink_metadata(&path).ok()?);
                matches!(now.kind, FileKind::Special(_)).then(|| unopened(now, None))
            }
        },
    }
}

/// The file at `rel_path` under `root` with its readers, or `None` if it is gone.
pub fn stat_with_readers(access: &AccessResolver, root: &Root, rel_path: &str) -> Option<DiskFile> {
    probe(access, root, rel_path).map(|probed| probed.disk)
}

/// A known file's bytes compared with the ledger's.
enum Bytes {
    /// Same size and modification time: not even read.
    Unchanged,
    /// Read, and equal to the ledger's hash.
    Same(ContentHash),
    Changed,
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
    let mut listed = BTreeMap::new();
    let mut candidates: Vec<String> = Vec::new();
    match only {
        None => {
            list_files(&root.path, &root.path, &mut listed);
            candidates.extend(ledger.keys().cloned());
        }
        Some(paths) => {
            for rel in paths {
                let path = root.path.join(names::decode_path(rel));
                match fs::symlink_metadata(&path) {
                    Ok(metadata) if metadata.is_dir() => list_files(&root.path, &path, &mut listed),
                    Ok(metadata) if FileKind::of(metadata.file_type()) != FileKind::Other => {
                        listed.insert(rel.clone(), FileKind::of(metadata.file_type()));
                    }
                    _ => {}
                }
                // A path that vanished may have been a folder: everything the ledger has below it.
                let prefix = format!("{rel}/");
                candidates.extend(ledger.keys().filter(|known| *known == rel || known.starts_with(&prefix)).cloned());
            }
        }
    }
    candidates.extend(listed.into_keys());
    candidates.sort();
    candidates.dedup();

    let mut result = RootChanges::default();
    for rel in candidates {
        let known = ledger.get(&rel);
        let change = match (probe(access, root, &rel), known) {
            (None, None) => continue,
            (None, Some(_)) => FileChange::Deleted,
            (Some(probed), None) => FileChange::New { disk: probed.disk },
            (Some(Probed { disk, file }), Some(entry)) => {
                let same_readers = entry.readers.as_ref() == Some(&disk.readers);
                let bytes = if disk.size() == entry.size && disk.mtime_ns() == entry.mtime_ns {
                    Bytes::Unchanged
                } else {
                    match file.as_ref().map(|file| file.hash(0)) {
                        Some(Ok((hash, _))) if hash == entry.content_hash => Bytes::Same(hash),
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

    #[test]
    fn links_are_not_listed_and_special_files_are() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.txt"), b"a").unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("zero.txt")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        let status = std::process::Command::new("mkfifo").arg(root.join("pipe.txt")).status().unwrap();
        assert!(status.success());
        let mut listed = BTreeMap::new();
        list_files(root, root, &mut listed);
        assert_eq!(
            listed.into_iter().collect::<Vec<_>>(),
            [("a.txt".to_owned(), FileKind::Regular), ("pipe.txt".to_owned(), FileKind::Special("a FIFO"))]
        );
    }
}
