//! Reading exactly the file that was scanned.
//!
//! Anyone who can write to a share can swap a file for a symbolic link (to the daemon's own
//! token file, say), a FIFO or a device between the scan and the read. So every source file is
//! opened from its source root with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`: no
//! component of the path may be a link and none may lead out of the root. The open is
//! non-blocking (a FIFO swapped in is never waited on) and the descriptor is then checked: a
//! regular file, and for a read, the very file the scan saw (device, inode, size and
//! modification time). Its readers (owner, group, mode, ACL) and its bytes come from that same
//! descriptor, and no more bytes are read than the size limit allows.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::names;

/// The extended attribute holding a file's POSIX access ACL (Linux binary format).
const POSIX_ACL_XATTR: &str = "system.posix_acl_access";
/// Bytes read per call when hashing or streaming a file.
pub(crate) const READ_BUFFER: usize = 256 << 10;

/// What the scan and the read compare: the same file has the same values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

/// Who owns a file and its permission bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// What kind of file a directory entry or a descriptor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    /// A FIFO, socket or device: never opened for reading, quarantined as `not_a_regular_file`.
    Special(&'static str),
    /// A directory, a symbolic link or anything else that is not a document.
    Other,
}

impl FileKind {
    pub fn of(file_type: std::fs::FileType) -> Self {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_file() {
            FileKind::Regular
        } else if file_type.is_fifo() {
            FileKind::Special("a FIFO")
        } else if file_type.is_socket() {
            FileKind::Special("a socket")
        } else if file_type.is_char_device() {
            FileKind::Special("a character device")
        } else if file_type.is_block_device() {
            FileKind::Special("a block device")
        } else {
            FileKind::Other
        }
    }
}

/// What `stat` says of a file, from a path (`lstat`) or a descriptor (`fstat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub kind: FileKind,
    pub identity: FileIdentity,
    pub owner: Ownership,
}

impl FileStat {
    pub fn of(metadata: &std::fs::Metadata) -> Self {
        let mtime_ns = metadata.mtime().saturating_mul(1_000_000_000).saturating_add(metadata.mtime_nsec());
        Self {
            kind: FileKind::of(metadata.file_type()),
            identity: FileIdentity { dev: metadata.dev(), ino: metadata.ino(), size: metadata.size(), mtime_ns },
            owner: Ownership { uid: metadata.uid(), gid: metadata.gid(), mode: metadata.mode() },
        }
    }
}

/// Why a source file could not be opened as scanned.
#[derive(Debug)]
pub enum OpenError {
    /// Gone, or no longer what the scan saw (a link, a FIFO, another file): try again next run.
    Changed(String),
    /// There, but this process may not read it (permissions): quarantine.
    Unreadable(io::Error),
}

/// An open source file and what its descriptor says about it.
pub struct SourceFile {
    file: File,
    pub stat: FileStat,
}

impl SourceFile {
    /// Opens `rel_path` (text form, see [`names`]) under `root` without following any symbolic
    /// link and without leaving the root; the descriptor must be a regular file.
    pub fn open(root: &Path, rel_path: &str) -> Result<Self, OpenError> {
        let file = open_beneath(root, &names::decode_path(rel_path)).map_err(|err| classify(rel_path, err))?;
        let file = File::from(file);
        let metadata = file.metadata().map_err(OpenError::Unreadable)?;
        let stat = FileStat::of(&metadata);
        if stat.kind != FileKind::Regular {
            return Err(OpenError::Changed(format!("{rel_path} is no longer a regular file")));
        }
        Ok(Self { file, stat })
    }

    /// Opens the file and checks that it is the one the scan saw.
    pub fn open_as_scanned(root: &Path, rel_path: &str, scanned: &FileIdentity) -> Result<Self, OpenError> {
        let source = Self::open(root, rel_path)?;
        if source.stat.identity != *scanned {
            return Err(OpenError::Changed(format!(
                "{rel_path} changed between the scan and the read ({:?} then {:?})",
                scanned, source.stat.identity
            )));
        }
        Ok(source)
    }

    /// The POSIX access ACL, read from this descriptor (`fgetxattr`); `None` without one.
    pub fn acl_xattr(&self) -> Option<Vec<u8>> {
        xattr::FileExt::get_xattr(&self.file, POSIX_ACL_XATTR).ok().flatten()
    }

    /// Reads the bytes at `offset` into `buffer`; fewer (0 at the end) when the file ends.
    pub fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.file.read_at(buffer, offset) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                result => return result,
            }
        }
    }

    /// blake3 of the file's bytes, read in pieces; `Changed` when the file does not hold
    /// exactly the size its descriptor reported (it is being written). With `keep_up_to`,
    /// the bytes themselves too, if there are no more than that.
    pub fn hash(&self, keep_up_to: usize) -> Result<(sluice_core::ContentHash, Option<Vec<u8>>), OpenError> {
        let size = self.stat.identity.size;
        let mut hasher = blake3::Hasher::new();
        let mut kept = (size <= keep_up_to as u64).then(|| Vec::with_capacity(size as usize));
        let mut buffer = vec![0u8; READ_BUFFER.min(size as usize + 1).max(1)];
        let mut offset = 0u64;
        loop {
            let read = self.read_at(&mut buffer, offset).map_err(OpenError::Unreadable)?;
            if read == 0 {
                break;
            }
            offset += read as u64;
            if offset > size {
                return Err(OpenError::Changed("the file grew while it was read".into()));
            }
            hasher.update(&buffer[..read]);
            if let Some(kept) = kept.as_mut() {
                kept.extend_from_slice(&buffer[..read]);
            }
        }
        if offset != size {
            return Err(OpenError::Changed("the file shrank while it was read".into()));
        }
        Ok((sluice_core::ContentHash::from_bytes(*hasher.finalize().as_bytes()), kept))
    }
}

/// `ENOENT`, `ELOOP` (a link in the path), `ENOTDIR` and the like mean the path changed;
/// `EACCES`/`EPERM` that this process may not read it.
fn classify(rel_path: &str, err: io::Error) -> OpenError {
    match err.kind() {
        io::ErrorKind::PermissionDenied => OpenError::Unreadable(err),
        _ => OpenError::Changed(format!("{rel_path} cannot be opened as scanned: {err}")),
    }
}

/// Opens `rel` under the directory `root` for reading: no symbolic link anywhere in `rel`, no
/// `..` out of the root, non-blocking, never a controlling terminal.
fn open_beneath(root: &Path, rel: &Path) -> io::Result<OwnedFd> {
    let dir = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(&dir, rel, flags, Mode::empty(), resolve) {
        Err(rustix::io::Errno::NOSYS) => open_component_by_component(dir, rel, flags),
        result => Ok(result?),
    }
}

/// Kernels before 5.6 have no `openat2`: walk the path one directory at a time, each opened
/// with `O_NOFOLLOW` relative to the one before, which refuses links just the same.
fn open_component_by_component(mut dir: OwnedFd, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let mut components: Vec<&std::ffi::OsStr> = Vec::new();
    for component in rel.components() {
        match component {
            std::path::Component::Normal(name) => components.push(name),
            _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a plain relative path")),
        }
    }
    let Some((last, folders)) = components.split_last() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "an empty path"));
    };
    let folder_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    for folder in folders {
        dir = rustix::fs::openat(&dir, *folder, folder_flags, Mode::empty())?;
    }
    Ok(rustix::fs::openat(&dir, *last, flags, Mode::empty())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_fifos_and_escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("share");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), b"hello").unwrap();
        std::fs::write(dir.path().join("secret.txt"), b"secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("sub"), root.join("linked-folder")).unwrap();
        nix_mkfifo(&root.join("pipe"));

        let file = SourceFile::open(&root, "sub/a.txt").unwrap();
        assert_eq!(file.hash(16).unwrap().1.as_deref(), Some(&b"hello"[..]));
        for refused in ["link.txt", "linked-folder/a.txt", "../secret.txt", "pipe", "missing.txt"] {
            assert!(matches!(SourceFile::open(&root, refused), Err(OpenError::Changed(_))), "{refused}");
        }
    }

    #[test]
    fn a_different_file_at_the_same_path_is_not_the_scanned_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"one").unwrap();
        let scanned = SourceFile::open(dir.path(), "a.txt").unwrap().stat.identity;
        std::fs::write(dir.path().join("b.txt"), b"two").unwrap();
        std::fs::rename(dir.path().join("b.txt"), dir.path().join("a.txt")).unwrap();
        let reopened = SourceFile::open_as_scanned(dir.path(), "a.txt", &scanned);
        assert!(matches!(reopened, Err(OpenError::Changed(_))));
    }

    fn nix_mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
        assert!(status.success());
    }
}
