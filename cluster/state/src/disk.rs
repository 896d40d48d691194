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

/// The page cache of a member's databases on the real disk. redb's default, 1 GiB, is taken
/// in full by a large pinset and made up most of a member's memory (about 1.3 KB per pin);
/// pages the cache does not hold are read from the file (the OS caches them too).
pub const PAGE_CACHE_BYTES: usize = 64 << 20;

impl Disk for RealDisk {
    fn open_database(&self, path: &Path) -> Result<Database, DatabaseError> {
        Database::builder().set_cache_size(PAGE_CACHE_BYTES).create(path)
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
