//! [`Disk`]: where the member's redb databases live. Production opens files on the real disk;
//! the simulator supplies a memory disk that keeps only what was synced when a member crashes.

use std::fmt::Debug;
use std::path::Path;

use redb::{Database, DatabaseError};

/// Opens (creating if missing) the redb database a member keeps at `path`.
pub trait Disk: Send + Sync + Debug {
    /// Opens or creates the database. The folder of `path` must exist on a real disk.
    fn open_database(&self, path: &Path) -> Result<Database, DatabaseError>;

    /// As [`Disk::open_database`], with a page cache of at most `cache_bytes` (redb's default
    /// is 1 GiB): for scratch databases whose pages are written once and read once.
    fn open_database_with_cache(&self, path: &Path, cache_bytes: usize) -> Result<Database, DatabaseError>;
}

/// The real file system: one redb file per path, locked against a second opener.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDisk;

impl Disk for RealDisk {
    fn open_database(&self, path: &Path) -> Result<Database, DatabaseError> {
        Database::builder().create(path)
    }

    fn open_database_with_cache(&self, path: &Path, cache_bytes: usize) -> Result<Database, DatabaseError> {
        Database::builder().set_cache_size(cache_bytes).create(path)
    }
}

/// Databases in memory, each empty at every open: for scratch databases in tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryDisk;

impl Disk for MemoryDisk {
    fn open_database(&self, _path: &Path) -> Result<Database, DatabaseError> {
        Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())
    }

    fn open_database_with_cache(&self, _path: &Path, cache_bytes: usize) -> Result<Database, DatabaseError> {
        Database::builder()
            .set_cache_size(cache_bytes)
            .create_with_backend(redb::backends::InMemoryBackend::new())
    }
}
