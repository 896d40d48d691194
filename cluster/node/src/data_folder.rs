//! The member's data folder: where its files live, and the lock that keeps a second member
//! from using the same folder at once.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::NodeError;

/// An open, locked data folder. The lock is released when this is dropped (or the process dies).
#[derive(Debug)]
pub struct DataFolder {
    path: PathBuf,
    _lock: File,
}

impl DataFolder {
    /// Creates the folder if needed and takes its lock (`cluster.lock`).
    pub fn lock(path: &Path) -> Result<DataFolder, NodeError> {
        std::fs::create_dir_all(path).map_err(|e| NodeError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let lock_path = path.join("cluster.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| NodeError::Io {
                path: lock_path.display().to_string(),
                message: e.to_string(),
            })?;
        match lock.try_lock() {
            Ok(()) => Ok(DataFolder {
                path: path.to_path_buf(),
                _lock: lock,
            }),
            Err(std::fs::TryLockError::WouldBlock) => Err(NodeError::Locked {
                path: path.display().to_string(),
                lock: lock_path.display().to_string(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(NodeError::Io {
                path: lock_path.display().to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where Raft keeps its log and snapshot.
    pub fn raft_dir(&self) -> PathBuf {
        self.path.join("raft")
    }

    /// The pinset database file.
    pub fn state_file(&self) -> PathBuf {
        self.path.join("state").join("pinset.redb")
    }

    /// The scratch database the tracker lists the IPFS daemon's pins into.
    pub fn daemon_listing_file(&self) -> PathBuf {
        self.path.join("state").join("daemon-listing.redb")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_same_folder_fails() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataFolder::lock(dir.path()).unwrap();
        let err = DataFolder::lock(dir.path()).unwrap_err();
        assert!(matches!(err, NodeError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("locked by another running member"));
        drop(first);
        DataFolder::lock(dir.path()).unwrap();
    }
}
