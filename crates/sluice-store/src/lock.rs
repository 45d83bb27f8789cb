//! One writer per data directory.
//!
//! Tantivy allows one index writer and Qdrant Edge one process per shard, so a second daemon
//! (or an `ingest` next to a running daemon) must be refused, not left to corrupt things. The
//! lock is an OS file lock: it is released when the process dies, even by `kill -9`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Result, StoreError};

/// Creates a folder (and any missing parents) that only its owner may enter: a data
/// directory holds every chunk's text, whatever the documents' ACLs.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// How long `acquire` waits for a holder to go before refusing. A lock is held for a moment by
/// things that are not a second writer: [`DataDirLock::is_held`]'s probe (a `sluice status`
/// started beside a daemon that is starting), and the open file a writer killed by `kill -9` shares
/// with a child caught between `fork` and `exec`, for the instant before `exec` closes it.
const HOLDER_GRACE: Duration = Duration::from_secs(3);

pub struct DataDirLock {
    /// Holds the lock for as long as the value lives.
    _file: File,
}

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> Result<Self> {
        create_private_dir(data_dir).map_err(|source| StoreError::Io { path: data_dir.to_owned(), source })?;
        let path = data_dir.join("LOCK");
        let io = |source| StoreError::Io { path: path.clone(), source };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        let deadline = Instant::now() + HOLDER_GRACE;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut pid = String::new();
                    let _ = file.read_to_string(&mut pid);
                    return Err(StoreError::Locked { path: data_dir.to_owned(), pid: pid.trim().to_owned() });
                }
                Err(std::fs::TryLockError::Error(err)) => return Err(io(err)),
            }
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }

    /// Whether another process holds the lock right now.
    pub fn is_held(data_dir: &Path) -> bool {
        let Ok(file) = File::open(data_dir.join("LOCK")) else {
            return false;
        };
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                false
            }
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_of_the_lock_does_not_turn_a_writer_away_but_a_writer_does() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        assert!(DataDirLock::is_held(dir.path()));
        assert!(matches!(DataDirLock::acquire(dir.path()), Err(StoreError::Locked { .. })));
        drop(first);

        // A `status` probing at the moment a writer starts: the writer waits it out.
        let probe = File::open(dir.path().join("LOCK")).unwrap();
        probe.try_lock_shared().unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(probe);
        });
        let second = DataDirLock::acquire(dir.path()).unwrap();
        release.join().unwrap();
        assert!(DataDirLock::is_held(dir.path()));
        drop(second);
        assert!(!DataDirLock::is_held(dir.path()));
    }
}
