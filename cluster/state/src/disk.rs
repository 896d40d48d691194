//! [`Disk`]: where the member's redb databases live. Production opens files on the real disk;
//! the simulator supplies a memory disk that keeps only what was synced when a member crashes.

use std::fmt::Debug;
use std::path::Path;

use redb::{Database, DatabaseError};

/// Opens (creating if missing) the redb database a member keeps at `path`.
pub trait Disk: Send + Sync + Debug {
    /// Opens or creates the database. The folder of `path` must exist on a real disk.
    fn open_database(&self, path: &Path) -> Result<Database, DatabaseError>;
}

/// The real file system: one redb file per path, locked against a second opener.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDisk;

impl Disk for RealDisk {
    fn open_database(&self, path: &Path) -> Result<Database, DatabaseError> {
        Database::builder().create(path)
    }
}
