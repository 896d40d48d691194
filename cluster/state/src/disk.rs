//! [`Disk`]: where the member's redb databases and plain files (the Raft log's segments) live.
//! Production opens files on the real disk; the simulator supplies a memory disk that keeps
//! only what was synced when a member crashes.

use std::fmt::Debug;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use redb::{Database, DatabaseError};

/// Opens (creating if missing) the redb databases and plain files a member keeps.
pub trait Disk: Send + Sync + Debug {
    /// Opens or creates the database. The folder of `path` must exist on a real disk.
    fn open_database(&self, path: &Path) -> Result<Database, DatabaseError>;

    /// As [`Disk::open_database`], with a page cache of at most `cache_bytes` (redb's default
    /// is 1 GiB): for scratch databases whose pages are written once and read once.
    fn open_database_with_cache(&self, path: &Path, cache_bytes: usize) -> Result<Database, DatabaseError>;

    /// Opens or creates the plain file at `path`. The folder must exist on a real disk.
    fn open_file(&self, _path: &Path) -> io::Result<Box<dyn DiskFile>> {
        Err(unsupported(std::any::type_name::<Self>()))
    }

    /// The names of the files in `dir`; none if it does not exist.
    fn file_names(&self, _dir: &Path) -> io::Result<Vec<String>> {
        Err(unsupported(std::any::type_name::<Self>()))
    }

    /// Removes the file at `path`; a missing file is not an error.
    fn remove_file(&self, _path: &Path) -> io::Result<()> {
        Err(unsupported(std::any::type_name::<Self>()))
    }

    /// Makes the creations and removals of files in `dir` durable.
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Err(unsupported(std::any::type_name::<Self>()))
    }

    /// Takes the exclusive lock at `path` (a file created for it) for as long as the returned
    /// guard lives; `None` if another opener holds it.
    fn try_lock(&self, _path: &Path) -> io::Result<Option<Box<dyn Debug + Send + Sync>>> {
        Err(unsupported(std::any::type_name::<Self>()))
    }
}

fn unsupported(disk: &str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, format!("{disk} holds no plain files"))
}

/// A plain file on a [`Disk`], read and written at offsets. Nothing written is durable before
/// [`DiskFile::sync_data`] returns.
pub trait DiskFile: Send + Sync + Debug {
    /// Its length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether it is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Fills `out` from `offset`; reading past the end is an error.
    fn read_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()>;
    /// Writes all of `data` at `offset`, growing the file as needed.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Cuts or grows (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes what was written durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
}

/// Opens `path` for reading and writing, creating it empty if missing, keeping its bytes.
fn open_read_write(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// A file of the real disk.
#[derive(Debug)]
struct RealFile(std::fs::File);

impl DiskFile for RealFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn read_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read_exact_at(out, offset)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_all_at(data, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
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

    fn open_file(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let file = open_read_write(path)?;
        Ok(Box::new(RealFile(file)))
    }

    fn file_names(&self, dir: &Path) -> io::Result<Vec<String>> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn Debug + Send + Sync>>> {
        let file = open_read_write(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
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
