//! [`ReopeningDatabase`]: a redb database that opens itself again after an I/O failure.
//!
//! Once a write fails (a full disk, say), redb refuses every later operation with
//! `PreviousIo` until the database is closed and opened again. Without this, a member whose
//! disk filled up stayed broken after space was freed, until a restart. Here the failed handle
//! is dropped and the next operation opens the file again; redb's recovery then starts from
//! the last commit that reached the disk, so nothing committed is lost and nothing half-written
//! is seen.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Handles dropped after a failure: each loses the commits not yet synced.
    reopens: AtomicU64,
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
            reopens: AtomicU64::new(0),
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

    /// How many handles were dropped after an I/O failure: the next open of each starts from
    /// the last durable commit, without the unsynced ones after it.
    pub fn reopens(&self) -> u64 {
        self.reopens.load(Ordering::SeqCst)
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
            self.reopens.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, ReadableTable, StorageBackend, TableDefinition};
    use std::sync::atomic::AtomicBool;

    const TABLE: TableDefinition<u64, u64> = TableDefinition::new("t");

    /// A disk whose writes and syncs fail while `full` is set; its bytes outlive each handle.
    #[derive(Debug, Default, Clone)]
    struct FillingDisk {
        bytes: Arc<Mutex<Vec<u8>>>,
        full: Arc<AtomicBool>,
    }

    #[derive(Debug)]
    struct FillingBackend(FillingDisk);

    impl FillingBackend {
        fn refuse_if_full(&self) -> std::io::Result<()> {
            match self.0.full.load(Ordering::SeqCst) {
                true => Err(std::io::Error::other("No space left on device")),
                false => Ok(()),
            }
        }
    }

    impl StorageBackend for FillingBackend {
        fn len(&self) -> std::io::Result<u64> {
            Ok(self.0.bytes.lock().unwrap().len() as u64)
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
            let bytes = self.0.bytes.lock().unwrap();
            let start = offset as usize;
            out.copy_from_slice(&bytes[start..start + out.len()]);
            Ok(())
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.refuse_if_full()?;
            self.0.bytes.lock().unwrap().resize(len as usize, 0);
            Ok(())
        }
        fn sync_data(&self) -> std::io::Result<()> {
            self.refuse_if_full()
        }
        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            self.refuse_if_full()?;
            let mut bytes = self.0.bytes.lock().unwrap();
            let start = offset as usize;
            bytes[start..start + data.len()].copy_from_slice(data);
            Ok(())
        }
    }

    impl Disk for FillingDisk {
        fn open_database(&self, _path: &Path) -> Result<Database, DatabaseError> {
            Database::builder().create_with_backend(FillingBackend(self.clone()))
        }
        fn open_database_with_cache(&self, _path: &Path, cache_bytes: usize) -> Result<Database, DatabaseError> {
            Database::builder()
                .set_cache_size(cache_bytes)
                .create_with_backend(FillingBackend(self.clone()))
        }
    }

    fn write(database: &ReopeningDatabase, key: u64) -> Result<(), redb::Error> {
        database.with(|db| {
            let txn = db.begin_write()?;
            txn.open_table(TABLE)?.insert(key, key)?;
            txn.commit()?;
            Ok(())
        })
    }

    fn keys(database: &ReopeningDatabase) -> Result<Vec<u64>, redb::Error> {
        database.with(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(TABLE)?;
            let keys = table.iter()?.map(|entry| entry.map(|(key, _)| key.value()));
            Ok(keys.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// A write the disk refuses drops the handle and counts a reopen (what the state machine
    /// watches to apply its lost applies again); once the disk takes writes, the next
    /// operation opens the file again and finds every durable commit.
    #[test]
    fn a_failed_write_counts_a_reopen_and_the_next_operation_opens_the_file_again() {
        let disk = FillingDisk::default();
        let database = ReopeningDatabase::open(Arc::new(disk.clone()), Path::new("pinset.redb")).unwrap();
        write(&database, 1).unwrap();
        assert_eq!(database.reopens(), 0);

        disk.full.store(true, Ordering::SeqCst);
        let refused = write(&database, 2).unwrap_err();
        assert!(refused.is_io_failure(), "{refused}");
        assert_eq!(database.reopens(), 1, "the failed handle is dropped");
        let refused_again = write(&database, 2).unwrap_err();
        assert!(refused_again.is_io_failure(), "{refused_again}");

        disk.full.store(false, Ordering::SeqCst);
        assert_eq!(keys(&database).unwrap(), vec![1], "opened again at the durable commit");
        write(&database, 3).unwrap();
        assert_eq!(keys(&database).unwrap(), vec![1, 3]);
        assert!(database.reopens() >= 1);
    }
}
