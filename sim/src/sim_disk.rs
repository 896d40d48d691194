//! [`SimDisk`]: a member's disk held in memory, with the crash semantics of a real one.
//!
//! Each database file has the bytes the running member sees and the bytes that reached the
//! platter. `sync_data` (redb's fsync) copies the ranges written since the last sync to the
//! durable image; a crash throws away everything else and invalidates the handles the dead
//! incarnation still holds, so its dropped tasks can no longer write. A full disk refuses every
//! write and every growth of a file, as "No space left on device", until it is freed. No real
//! disk I/O happens, which is most of what makes a 5-member cluster cheap to simulate.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cluster_node::{Disk, DiskFile};
use redb::{Database, DatabaseError, StorageBackend};

/// The memory disk of one member; survives its kills and restarts.
#[derive(Default)]
pub struct SimDisk {
    files: Mutex<HashMap<PathBuf, Arc<Mutex<FileImage>>>>,
    /// Set while the disk is full; shared with every open handle.
    full: Arc<AtomicBool>,
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files = self.lock_files();
        f.debug_struct("SimDisk").field("files", &files.len()).finish()
    }
}

#[derive(Default)]
struct FileImage {
    /// What reads see: the durable bytes plus writes not yet synced.
    current: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Byte ranges written since the last sync.
    dirty: Vec<(usize, usize)>,
    /// Bumped by every crash; handles of an older incarnation fail.
    incarnation: u64,
    /// Bytes written and syncs, for the speed report.
    syncs: u64,
}

impl SimDisk {
    /// A fresh, empty disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    fn lock_files(&self) -> MutexGuard<'_, HashMap<PathBuf, Arc<Mutex<FileImage>>>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The machine lost power: every file goes back to its durable image, and handles opened
    /// before the crash stop working.
    pub fn crash(&self) {
        for file in self.lock_files().values() {
            let mut image = file.lock().unwrap_or_else(|e| e.into_inner());
            image.current = image.durable.clone();
            image.dirty.clear();
            image.incarnation += 1;
        }
    }

    /// The disk is lost: every file is gone, durable or not.
    pub fn wipe(&self) {
        self.crash();
        self.lock_files().clear();
    }

    /// The disk fills up: writes fail with "No space left on device" until [`SimDisk::free`].
    pub fn fill(&self) {
        self.full.store(true, Ordering::SeqCst);
    }

    /// Space is freed: writes work again.
    pub fn free(&self) {
        self.full.store(false, Ordering::SeqCst);
    }

    /// Whether the disk is full.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    /// How many syncs all files of this disk have had.
    pub fn syncs(&self) -> u64 {
        self.lock_files()
            .values()
            .map(|f| f.lock().unwrap_or_else(|e| e.into_inner()).syncs)
            .sum()
    }
}

impl SimDisk {
    fn handle(&self, path: &Path) -> SimFile {
        let file = self.lock_files().entry(path.to_path_buf()).or_default().clone();
        let incarnation = file.lock().unwrap_or_else(|e| e.into_inner()).incarnation;
        SimFile {
            path: path.to_path_buf(),
            file,
            incarnation,
            full: self.full.clone(),
        }
    }

    fn open_with(&self, path: &Path, builder: &mut redb::Builder) -> Result<Database, DatabaseError> {
        builder.create_with_backend(self.handle(path))
    }
}

impl Disk for SimDisk {
    fn open_database(&self, path: &Path) -> Result<Database, DatabaseError> {
        self.open_with(path, &mut Database::builder())
    }

    fn open_database_with_cache(&self, path: &Path, cache_bytes: usize) -> Result<Database, DatabaseError> {
        self.open_with(path, Database::builder().set_cache_size(cache_bytes))
    }

    fn open_file(&self, path: &Path) -> IoResult<Box<dyn DiskFile>> {
        Ok(Box::new(self.handle(path)))
    }

    fn file_names(&self, dir: &Path) -> IoResult<Vec<String>> {
        Ok(self
            .lock_files()
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
            .collect())
    }

    /// Removal (and creation) is durable at once: a crash does not bring a file back.
    fn remove_file(&self, path: &Path) -> IoResult<()> {
        self.lock_files().remove(path);
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> IoResult<()> {
        Ok(())
    }

    /// One incarnation of a member runs at a time on its disk: the lock always holds.
    fn try_lock(&self, _path: &Path) -> IoResult<Option<Box<dyn fmt::Debug + Send + Sync>>> {
        Ok(Some(Box::new(())))
    }
}

/// One open handle on a file of a [`SimDisk`].
struct SimFile {
    path: PathBuf,
    file: Arc<Mutex<FileImage>>,
    incarnation: u64,
    full: Arc<AtomicBool>,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimFile({}, incarnation {})", self.path.display(), self.incarnation)
    }
}

type IoResult<T> = Result<T, std::io::Error>;

fn io_error(message: String) -> std::io::Error {
    std::io::Error::other(message)
}

impl SimFile {
    /// The image, if this handle belongs to the living incarnation.
    fn image(&self) -> IoResult<MutexGuard<'_, FileImage>> {
        let image = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if image.incarnation != self.incarnation {
            return Err(io_error(format!(
                "{}: the member crashed; this handle is dead",
                self.path.display()
            )));
        }
        Ok(image)
    }

    /// Refuses a write while the disk is full.
    fn check_space(&self) -> IoResult<()> {
        match self.full.load(Ordering::SeqCst) {
            true => Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("{}: No space left on device (simulated)", self.path.display()),
            )),
            false => Ok(()),
        }
    }
}

fn range(offset: u64, len: usize, file_len: usize) -> IoResult<std::ops::Range<usize>> {
    let start = usize::try_from(offset).map_err(|_| io_error(format!("offset {offset} out of range")))?;
    let end = start
        .checked_add(len)
        .filter(|end| *end <= file_len)
        .ok_or_else(|| io_error(format!("{len} bytes at {offset} past the end ({file_len})")))?;
    Ok(start..end)
}

impl StorageBackend for SimFile {
    fn len(&self) -> IoResult<u64> {
        Ok(self.image()?.current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> IoResult<()> {
        let image = self.image()?;
        let range = range(offset, out.len(), image.current.len())?;
        out.copy_from_slice(&image.current[range]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> IoResult<()> {
        let len = usize::try_from(len).map_err(|_| io_error(format!("length {len} out of range")))?;
        let mut image = self.image()?;
        if len > image.current.len() {
            self.check_space()?;
        }
        image.current.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> IoResult<()> {
        let mut image = self.image()?;
        let image = &mut *image;
        image.durable.resize(image.current.len(), 0);
        for (start, end) in image.dirty.drain(..) {
            let end = end.min(image.current.len());
            if start < end {
                image.durable[start..end].copy_from_slice(&image.current[start..end]);
            }
        }
        image.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> IoResult<()> {
        self.check_space()?;
        let mut image = self.image()?;
        let range = range(offset, data.len(), image.current.len())?;
        image.current[range.clone()].copy_from_slice(data);
        // Adjacent writes (redb writes pages in order) extend the last range.
        match image.dirty.last_mut() {
            Some((_, end)) if *end == range.start => *end = range.end,
            _ => image.dirty.push((range.start, range.end)),
        }
        Ok(())
    }
}

/// The same handle as a plain file (the Raft log's segments): writes past the end grow it.
impl DiskFile for SimFile {
    fn len(&self) -> IoResult<u64> {
        StorageBackend::len(self)
    }

    fn read_at(&self, offset: u64, out: &mut [u8]) -> IoResult<()> {
        StorageBackend::read(self, offset, out)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> IoResult<()> {
        let end = offset + data.len() as u64;
        if end > StorageBackend::len(self)? {
            StorageBackend::set_len(self, end)?;
        }
        StorageBackend::write(self, offset, data)
    }

    fn set_len(&self, len: u64) -> IoResult<()> {
        StorageBackend::set_len(self, len)
    }

    fn sync_data(&self) -> IoResult<()> {
        StorageBackend::sync_data(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Durability, ReadableDatabase, TableDefinition};

    const TABLE: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn put(db: &Database, key: u64, durability: Durability) {
        let mut txn = db.begin_write().unwrap();
        txn.set_durability(durability).unwrap();
        txn.open_table(TABLE).unwrap().insert(key, key).unwrap();
        txn.commit().unwrap();
    }

    fn keys(db: &Database) -> Vec<u64> {
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(TABLE).unwrap();
        let keys = redb::ReadableTable::iter(&table)
            .unwrap()
            .map(|e| e.unwrap().0.value())
            .collect();
        keys
    }

    #[test]
    fn a_full_disk_fails_writes_and_a_reopened_store_works_once_freed() {
        use cluster_state::{RedbState, State, StateError, StateOp};
        let disk = Arc::new(SimDisk::new());
        let pin = |i: u8| cluster_types::Pin::new(cluster_types::Cid::raw_sha256(&[i]), Default::default());
        let state = RedbState::open_on(disk.clone(), Path::new("/sim/pinset.redb")).unwrap();
        state.commit(&[StateOp::Add(pin(1))], Some(b"one")).unwrap();
        disk.fill();
        let refused = state.commit(&[StateOp::Add(pin(2))], Some(b"two")).unwrap_err();
        assert!(
            matches!(&refused, StateError::Io(reason) if reason.contains("No space left on device")),
            "a full disk refuses the commit as an I/O failure: {refused:?}"
        );
        disk.free();
        // redb refuses everything after an I/O failure; the store opens the file again.
        state.commit(&[StateOp::Add(pin(3))], Some(b"three")).unwrap();
        assert!(state.has(&pin(1).cid).unwrap(), "what was committed before is kept");
        assert!(!state.has(&pin(2).cid).unwrap(), "the refused commit left nothing");
        assert!(state.has(&pin(3).cid).unwrap());
        assert_eq!(state.meta().unwrap().as_deref(), Some(&b"three"[..]));
        disk.crash();
        let state = RedbState::open_on(disk, Path::new("/sim/pinset.redb")).unwrap();
        assert_eq!(state.len().unwrap(), 2, "and all of it is durable");
    }

    #[test]
    fn a_crash_loses_the_unsynced_pinset_commits_whole_and_a_sync_keeps_them() {
        use cluster_state::{RedbState, State, StateOp};
        let disk = Arc::new(SimDisk::new());
        let path = Path::new("/sim/pinset.redb");
        let pin = |i: u8| cluster_types::Pin::new(cluster_types::Cid::raw_sha256(&[i]), Default::default());
        let state = RedbState::open_on(disk.clone(), path).unwrap();
        state.commit(&[StateOp::Add(pin(1))], Some(b"1")).unwrap();
        state.commit_unsynced(&[StateOp::Add(pin(2))], Some(b"2")).unwrap();
        state.commit_unsynced(&[StateOp::Add(pin(3))], Some(b"3")).unwrap();
        disk.crash();
        drop(state);
        let state = RedbState::open_on(disk.clone(), path).unwrap();
        assert_eq!(state.len().unwrap(), 1, "unsynced commits are lost whole");
        assert_eq!(state.meta().unwrap().as_deref(), Some(&b"1"[..]), "with their meta");
        state.commit_unsynced(&[StateOp::Add(pin(4))], Some(b"4")).unwrap();
        state.sync().unwrap();
        disk.crash();
        drop(state);
        let state = RedbState::open_on(disk, path).unwrap();
        assert!(
            state.has(&pin(4).cid).unwrap(),
            "a sync made the unsynced commit durable"
        );
        assert_eq!(state.meta().unwrap().as_deref(), Some(&b"4"[..]));
    }

    #[test]
    fn a_crash_keeps_synced_commits_and_loses_the_rest() {
        let disk = SimDisk::new();
        let path = Path::new("/sim/db.redb");
        let db = disk.open_database(path).unwrap();
        put(&db, 1, Durability::Immediate);
        put(&db, 2, Durability::None);
        assert_eq!(keys(&db), vec![1, 2]);
        disk.crash();
        // The dead incarnation's handle can no longer write.
        let mut txn = db.begin_write().unwrap();
        txn.set_durability(Durability::Immediate).unwrap();
        let wrote = txn
            .open_table(TABLE)
            .and_then(|mut t| t.insert(3, 3).map(|_| ()).map_err(Into::into))
            .is_ok();
        assert!(!wrote || txn.commit().is_err(), "a dead handle wrote after the crash");
        drop(db);
        let db = disk.open_database(path).unwrap();
        assert_eq!(keys(&db), vec![1], "only the synced commit survives");
        put(&db, 4, Durability::Immediate);
        drop(db);
        let db = disk.open_database(path).unwrap();
        assert_eq!(keys(&db), vec![1, 4], "a clean reopen keeps everything");
    }
}
