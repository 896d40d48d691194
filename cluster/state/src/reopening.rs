//! [`ReopeningDatabase`]: a redb database that opens itself again after an I/O failure.
//!
//! Once a write fails (a full disk, say), redb refuses every later operation with
//! `PreviousIo` until the database is closed and opened again. Without this, a member whose
//! disk filled up stayed broken after space was freed, until a restart. Here the failed handle
//! is dropped and the next operation opens the file again; redb's recovery then starts from
//! the last commit that reached the disk, so nothing committed is lost and nothing half-written
//! is seen.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{Database, DatabaseError};

use crate::{Disk, StateError};

/// Errors that mean the disk could not be read or written, rather than bad data or a bug:
/// worth opening the database again and retrying once the disk works.
pub trait IoFailure {
    /// Whether this error is such a failure.
    fn is_io_failure(&self) -> bool;
}

impl IoFailure for redb::Error {
    fn is_io_failure(&self) -> bool {
        matches!(
            self,
            redb::Error::Io(_)
                | redb::Error::PreviousIo
                | redb::Error::DatabaseClosed
                // A reopen while a read of the failed handle is still in flight holds its lock.
                | redb::Error::DatabaseAlreadyOpen
                | redb::Error::Backend(_)
        )
    }
}

impl IoFailure for StateError {
    fn is_io_failure(&self) -> bool {
        matches!(self, StateError::Io(_))
    }
}

/// A redb database on a [`Disk`], dropped at its first I/O failure and opened again by the
/// next operation.
pub struct ReopeningDatabase {
    disk: Arc<dyn Disk>,
    path: PathBuf,
    /// The page cache, if not redb's default.
    cache_bytes: Option<usize>,
    /// `None` between a failure and the next successful open.
    open: Mutex<Option<Arc<Database>>>,
}

impl std::fmt::Debug for ReopeningDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReopeningDatabase({})", self.path.display())
    }
}

impl ReopeningDatabase {
    /// Opens (or creates) the database at `path` on `disk`.
    pub fn open(disk: Arc<dyn Disk>, path: &Path) -> Result<ReopeningDatabase, DatabaseError> {
        ReopeningDatabase::open_with_cache(disk, path, None)
    }

    /// Opens (or creates) the database at `path` on `disk` with a page cache of at most
    /// `cache_bytes` (redb's default, 1 GiB, if `None`).
    pub fn open_with_cache(
        disk: Arc<dyn Disk>,
        path: &Path,
        cache_bytes: Option<usize>,
    ) -> Result<ReopeningDatabase, DatabaseError> {
        let database = ReopeningDatabase::open_on(disk.as_ref(), path, cache_bytes)?;
        Ok(ReopeningDatabase {
            disk,
            path: path.to_path_buf(),
            cache_bytes,
            open: Mutex::new(Some(Arc::new(database))),
        })
    }

    fn open_on(disk: &dyn Disk, path: &Path, cache_bytes: Option<usize>) -> Result<Database, DatabaseError> {
        match cache_bytes {
            None => disk.open_database(path),
            Some(bytes) => disk.open_database_with_cache(path, bytes),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the database, opening it again first if an earlier call failed. An I/O
    /// failure of `f` drops the handle, so that the call after it opens the file afresh.
    pub fn with<T, E>(&self, f: impl FnOnce(&Database) -> Result<T, E>) -> Result<T, E>
    where
        E: From<redb::Error> + IoFailure,
    {
        let database = self.database()?;
        let result = f(&database);
        if let Err(e) = &result {
            if e.is_io_failure() {
                self.forget(&database);
            }
        }
        result
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<Database>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn database(&self) -> Result<Arc<Database>, redb::Error> {
        let mut open = self.lock();
        if let Some(database) = &*open {
            return Ok(database.clone());
        }
        let database = Arc::new(ReopeningDatabase::open_on(
            self.disk.as_ref(),
            &self.path,
            self.cache_bytes,
        )?);
        tracing::info!(path = %self.path.display(), "database opened again after an I/O failure");
        *open = Some(database.clone());
        Ok(database)
    }

    /// Drops `failed` unless another caller already replaced it.
    fn forget(&self, failed: &Arc<Database>) {
        let mut open = self.lock();
        if open.as_ref().is_some_and(|current| Arc::ptr_eq(current, failed)) {
            tracing::warn!(path = %self.path.display(), "database failed to read or write its disk; it will be opened again");
            *open = None;
        }
    }
}
