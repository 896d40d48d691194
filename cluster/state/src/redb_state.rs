//! [`RedbState`]: the durable pinset, one redb database file per member.
//!
//! Layout: table `pins` maps the CID's binary form to the encoded pin (so redb's key order is the
//! CID byte order [`State::list_page`] promises); table `meta` holds the applied meta under one key.
//! `commit`, `replace_all` and `sync` commit with immediate durability (fsync before returning);
//! `commit_unsynced` commits with none, and is made durable by the next of those.
//!
//! Encoding: pins are written in the compact binary form of [`cluster_types::pin_codec`],
//! without their CID (the key holds it) and with their allocations as indexes into table
//! `peers` (see [`crate::stored_pin`]): about a ninth of their JSON, and no text to parse on
//! every read. Pins stored by earlier versions (plain binary, or JSON) are still read, so a
//! pinset needs no migration; each is rewritten in the current form when next changed.
//!
//! Lookups first ask a filter of the keys in `pins` ([`KeyFilter`]), built when the file
//! opens and added to before each commit that adds a key: a CID the table never held (every
//! new pin) is answered without a read transaction.

use std::fmt;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, RwLock};

use cluster_types::{Cid, Pin};
use redb::{
    DatabaseError, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};

use crate::key_filter::{self, KeyFilter};
use crate::stored_pin::{decode_pin, read_peers, PeerTable, PinWriter, PEERS};
use crate::{Disk, IoFailure, RealDisk, ReopeningDatabase, State, StateError, StateOp, StateView};

/// The page cache of the handle that reads every key for the key filter when the file opens.
const SCAN_CACHE_BYTES: usize = 4 << 20;

/// CID bytes -> encoded pin.
const PINS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("pins");
/// Name -> opaque blob; only [`META_KEY`] is used.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// CIDs this member's daemon may still hold though no longer allocated here (see `StateOp::Tombstone`).
const TOMBSTONES: TableDefinition<&[u8], ()> = TableDefinition::new("tombstones");
/// The key of the consensus applied meta in [`META`].
const META_KEY: &str = "applied";

/// A pinset stored in a redb file. Reads run on MVCC snapshots and never wait for a writer;
/// writers are serialized by redb (one write transaction at a time). After an I/O failure (a
/// full disk) the file is opened again by the next operation (see [`ReopeningDatabase`]).
pub struct RedbState {
    db: ReopeningDatabase,
    peers: Arc<RwLock<PeerTable>>,
    /// Every key `pins` holds, and some it does not. A key is added before the commit that
    /// makes it visible, so no reader finds it in the table but not here; a commit that then
    /// fails, or a reopen that loses it, leaves a key here the table does not hold: a lookup
    /// the filter does not spare.
    keys: KeyFilter,
}

impl RedbState {
    /// Opens the database at `path`, creating the file (not its folder) if missing.
    ///
    /// Fails with [`StateError::Locked`] when another process, or another open handle in this
    /// process, holds the file.
    pub fn open(path: &Path) -> Result<RedbState, StateError> {
        RedbState::open_on(Arc::new(RealDisk), path)
    }

    /// Opens the database at `path` on `disk` (the simulator's memory disk, or the real one).
    pub fn open_on(disk: Arc<dyn Disk>, path: &Path) -> Result<RedbState, StateError> {
        // The key filter reads every key; through the store's page cache (1 GiB) the whole
        // pinset would stay in memory after (RSS 156 to 183 MB instead of about 100 MB with a
        // million pins). It reads through a handle of its own with a small cache, closed before
        // the store's opens.
        let keys = RedbState::open_handle(disk.clone(), path, Some(SCAN_CACHE_BYTES))?.read(filter_of_keys)?;
        let mut state = RedbState::open_handle(disk, path, None)?;
        state.keys = keys;
        Ok(state)
    }

    /// The file opened with a page cache of `cache_bytes` (redb's default if `None`), its tables
    /// created if missing, and an empty key filter.
    fn open_handle(disk: Arc<dyn Disk>, path: &Path, cache_bytes: Option<usize>) -> Result<RedbState, StateError> {
        let db = ReopeningDatabase::open_with_cache(disk, path, cache_bytes).map_err(|e| open_error(path, e))?;
        let mut state = RedbState {
            db,
            peers: Arc::default(),
            keys: KeyFilter::with_capacity(0),
        };
        // Creating the tables up front lets read transactions open them without handling
        // "table does not exist" on a fresh file.
        state.write(|txn| {
            txn.open_table(PINS).map_err(storage)?;
            txn.open_table(META).map_err(storage)?;
            txn.open_table(TOMBSTONES).map_err(storage)?;
            txn.open_table(PEERS).map_err(storage)?;
            Ok(())
        })?;
        state.peers = Arc::new(RwLock::new(state.read(PeerTable::load)?));
        tracing::debug!(path = %path.display(), "opened pinset state");
        Ok(state)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// Runs `f` in a write transaction and commits it, fsync included. Immediate is redb's
    /// default durability; it is set explicitly because the [`State`] contract depends on it.
    /// An error in `f` drops the transaction, which aborts it: nothing of it becomes visible.
    fn write<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T, StateError>) -> Result<T, StateError> {
        self.write_with(Durability::Immediate, f)
    }

    /// As [`RedbState::write`] with `durability`: `None` commits without writing to the disk
    /// (the next durable commit writes everything since the last).
    fn write_with<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        self.db.with(|db| {
            let mut txn = db.begin_write().map_err(storage)?;
            txn.set_durability(durability).map_err(storage)?;
            let value = f(&txn)?;
            txn.commit().map_err(storage)?;
            Ok(value)
        })
    }

    /// Applies `ops` and `meta` in one transaction committed with `durability`.
    fn commit_with(&self, durability: Durability, ops: &[StateOp], meta: Option<&[u8]>) -> Result<(), StateError> {
        self.write_with(durability, |txn| {
            let mut pins = txn.open_table(PINS).map_err(storage)?;
            let mut tombstones = txn.open_table(TOMBSTONES).map_err(storage)?;
            let mut writer = PinWriter::new(txn, &self.peers)?;
            let mut added = Vec::new();
            for op in ops {
                match op {
                    StateOp::Add(pin) => {
                        let key = pin.cid.to_bytes();
                        added.push(key_filter::hash(&key));
                        pins.insert(key.as_slice(), writer.encode(pin)?).map_err(storage)?;
                    }
                    StateOp::Rm(cid) => {
                        pins.remove(cid.to_bytes().as_slice()).map_err(storage)?;
                    }
                    StateOp::Tombstone(cid) => {
                        tombstones.insert(cid.to_bytes().as_slice(), ()).map_err(storage)?;
                    }
                    StateOp::ClearTombstone(cid) => {
                        tombstones.remove(cid.to_bytes().as_slice()).map_err(storage)?;
                    }
                }
            }
            if let Some(meta) = meta {
                txn.open_table(META)
                    .map_err(storage)?
                    .insert(META_KEY, meta)
                    .map_err(storage)?;
            }
            // Before the commit makes them visible.
            self.keys.insert(added);
            Ok(())
        })
    }

    /// Runs `f` in a read transaction.
    fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T, StateError>) -> Result<T, StateError> {
        self.db.with(|db| f(&db.begin_read().map_err(storage)?))
    }
}

impl fmt::Debug for RedbState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbState").field("path", &self.path()).finish()
    }
}

impl State for RedbState {
    fn get(&self, cid: &Cid) -> Result<Option<Pin>, StateError> {
        if !self.keys.may_contain(key_filter::hash_of_cid(cid)) {
            return Ok(None);
        }
        let key = cid.to_bytes();
        self.read(|txn| {
            let table = txn.open_table(PINS).map_err(storage)?;
            let value = table.get(key.as_slice()).map_err(storage)?;
            value
                .map(|value| decode_pin(&key, value.value(), &read_peers(&self.peers)))
                .transpose()
        })
    }

    fn get_many(&self, cids: &[Cid]) -> Result<Vec<Option<Pin>>, StateError> {
        let keys: Vec<Option<Vec<u8>>> = cids
            .iter()
            .map(|cid| {
                self.keys
                    .may_contain(key_filter::hash_of_cid(cid))
                    .then(|| cid.to_bytes())
            })
            .collect();
        if keys.iter().all(Option::is_none) {
            return Ok(vec![None; cids.len()]);
        }
        // One read transaction and one table for all: per-pin transactions were half the cost
        // of the reads an apply makes.
        self.read(|txn| {
            let table = txn.open_table(PINS).map_err(storage)?;
            let peers = read_peers(&self.peers);
            keys.iter()
                .map(|key| {
                    let Some(key) = key else { return Ok(None) };
                    let value = table.get(key.as_slice()).map_err(storage)?;
                    value.map(|value| decode_pin(key, value.value(), &peers)).transpose()
                })
                .collect()
        })
    }

    fn has(&self, cid: &Cid) -> Result<bool, StateError> {
        // Cheaper than the provided method: no decoding.
        if !self.keys.may_contain(key_filter::hash_of_cid(cid)) {
            return Ok(false);
        }
        let key = cid.to_bytes();
        self.read(|txn| {
            let table = txn.open_table(PINS).map_err(storage)?;
            Ok(table.get(key.as_slice()).map_err(storage)?.is_some())
        })
    }

    fn len(&self) -> Result<u64, StateError> {
        self.read(|txn| txn.open_table(PINS).map_err(storage)?.len().map_err(storage))
    }

    fn list_page(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Pin>, StateError> {
        self.read(|txn| list_page_in(txn, &self.peers, after, limit))
    }

    fn commit(&self, ops: &[StateOp], meta: Option<&[u8]>) -> Result<(), StateError> {
        if ops.is_empty() && meta.is_none() {
            // Nothing to make durable: skip the fsync.
            return Ok(());
        }
        self.commit_with(Durability::Immediate, ops, meta)
    }

    fn commit_unsynced(&self, ops: &[StateOp], meta: Option<&[u8]>) -> Result<(), StateError> {
        if ops.is_empty() && meta.is_none() {
            return Ok(());
        }
        self.commit_with(Durability::None, ops, meta)
    }

    fn reopens(&self) -> u64 {
        self.db.reopens()
    }

    fn sync(&self) -> Result<(), StateError> {
        // An empty durable commit writes every non-durable one before it.
        self.write(|_| Ok(()))
    }

    fn meta(&self) -> Result<Option<Vec<u8>>, StateError> {
        self.read(meta_in)
    }

    fn replace_all(
        &self,
        pins: &mut dyn Iterator<Item = Result<Pin, StateError>>,
        meta: &[u8],
    ) -> Result<(), StateError> {
        // One write transaction: readers see the old pinset until the commit, then the new one.
        self.write(|txn| {
            if txn.open_table(PINS).map_err(storage)?.is_empty().map_err(storage)? {
                // Nothing to compare with (an import, a first snapshot): deleting the table
                // frees its pages at once, and the pins go straight in.
                txn.delete_table(PINS).map_err(storage)?;
                let mut table = txn.open_table(PINS).map_err(storage)?;
                let mut writer = PinWriter::new(txn, &self.peers)?;
                for pin in pins {
                    // An error drops the transaction uncommitted.
                    let pin = pin?;
                    let key = pin.cid.to_bytes();
                    self.keys.insert([key_filter::hash(&key)]);
                    table.insert(key.as_slice(), writer.encode(&pin)?).map_err(storage)?;
                }
            } else {
                replace_tombstoning_changes(txn, &self.peers, &self.keys, pins)?;
            }
            txn.open_table(META)
                .map_err(storage)?
                .insert(META_KEY, meta)
                .map_err(storage)?;
            Ok(())
        })
    }

    fn view(&self) -> Result<Box<dyn StateView>, StateError> {
        let txn = self.db.with(|db| db.begin_read().map_err(storage))?;
        Ok(Box::new(RedbView(txn, self.peers.clone())))
    }

    fn tombstones(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Cid>, StateError> {
        let start_key = after.map(|cid| cid.to_bytes());
        self.read(|txn| {
            let table = txn.open_table(TOMBSTONES).map_err(storage)?;
            let range = match &start_key {
                Some(key) => table.range::<&[u8]>((Bound::Excluded(key.as_slice()), Bound::Unbounded)),
                None => table.range::<&[u8]>(..),
            }
            .map_err(storage)?;
            let mut cids = Vec::new();
            for item in range.take(limit) {
                let (key, _) = item.map_err(storage)?;
                cids.push(
                    Cid::from_bytes(key.value()).map_err(|e| StateError::Corrupt(format!("tombstone key: {e}")))?,
                );
            }
            Ok(cids)
        })
    }
}

/// A [`RedbState::view`]: one read transaction, which sees the commit it began after, and the
/// store's peer table (which holds every entry any commit used).
struct RedbView(ReadTransaction, Arc<RwLock<PeerTable>>);

impl StateView for RedbView {
    fn meta(&self) -> Result<Option<Vec<u8>>, StateError> {
        meta_in(&self.0)
    }

    fn list_page(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Pin>, StateError> {
        list_page_in(&self.0, &self.1, after, limit)
    }
}

/// [`State::meta`] in the read transaction `txn`.
fn meta_in(txn: &ReadTransaction) -> Result<Option<Vec<u8>>, StateError> {
    let table = txn.open_table(META).map_err(storage)?;
    let value = table.get(META_KEY).map_err(storage)?;
    Ok(value.map(|value| value.value().to_vec()))
}

/// [`State::list_page`] in the read transaction `txn`.
fn list_page_in(
    txn: &ReadTransaction,
    peers: &RwLock<PeerTable>,
    after: Option<&Cid>,
    limit: usize,
) -> Result<Vec<Pin>, StateError> {
    let after_key = after.map(Cid::to_bytes);
    let start = match &after_key {
        Some(key) => Bound::Excluded(key.as_slice()),
        None => Bound::Unbounded,
    };
    let table = txn.open_table(PINS).map_err(storage)?;
    let range = table.range::<&[u8]>((start, Bound::Unbounded)).map_err(storage)?;
    // Capped so a huge `limit` does not allocate up front; a cluster-wide status reads 4,096.
    let mut page = Vec::with_capacity(limit.min(4096));
    let peers = read_peers(peers);
    for entry in range.take(limit) {
        let (key, value) = entry.map_err(storage)?;
        page.push(decode_pin(key.value(), value.value(), &peers)?);
    }
    Ok(page)
}

/// Keys of the new pinset seen so far by a `replace_all` over a non-empty one.
const REPLACING: TableDefinition<&[u8], ()> = TableDefinition::new("replacing");

/// `replace_all` over a non-empty pinset: each new pin replaces the old one in place
/// (tombstoned if its allocations moved), the keys seen are noted, and then the old keys not
/// seen are removed and tombstoned.
fn replace_tombstoning_changes(
    txn: &WriteTransaction,
    peers: &RwLock<PeerTable>,
    keys: &KeyFilter,
    pins: &mut dyn Iterator<Item = Result<Pin, StateError>>,
) -> Result<(), StateError> {
    let mut table = txn.open_table(PINS).map_err(storage)?;
    let mut writer = PinWriter::new(txn, peers)?;
    let mut tombstones = txn.open_table(TOMBSTONES).map_err(storage)?;
    let mut seen = txn.open_table(REPLACING).map_err(storage)?;
    for pin in pins {
        let pin = pin?;
        let key = pin.cid.to_bytes();
        keys.insert([key_filter::hash(&key)]);
        let previous = table
            .insert(key.as_slice(), writer.encode(&pin)?)
            .map_err(storage)?
            .map(|old| old.value().to_vec());
        if let Some(previous) = previous {
            let old = decode_pin(&key, &previous, &read_peers(peers))?;
            if old.allocations != pin.allocations || old.is_everywhere() != pin.is_everywhere() {
                tombstones.insert(key.as_slice(), ()).map_err(storage)?;
            }
        }
        seen.insert(key.as_slice(), ()).map_err(storage)?;
    }
    let mut gone = Vec::new();
    for item in table.iter().map_err(storage)? {
        let (key, _) = item.map_err(storage)?;
        if seen.get(key.value()).map_err(storage)?.is_none() {
            gone.push(key.value().to_vec());
        }
    }
    for key in gone {
        table.remove(key.as_slice()).map_err(storage)?;
        tombstones.insert(key.as_slice(), ()).map_err(storage)?;
    }
    drop(seen);
    txn.delete_table(REPLACING).map_err(storage)?;
    Ok(())
}

/// A filter of every key in `pins`, with room for as many again.
fn filter_of_keys(txn: &ReadTransaction) -> Result<KeyFilter, StateError> {
    let table = txn.open_table(PINS).map_err(storage)?;
    let filter = KeyFilter::with_capacity(table.len().map_err(storage)?.saturating_mul(2));
    let mut hashes = Vec::with_capacity(4096);
    for item in table.iter().map_err(storage)? {
        let (key, _) = item.map_err(storage)?;
        hashes.push(key_filter::hash(key.value()));
        if hashes.len() == hashes.capacity() {
            filter.insert(hashes.drain(..));
        }
    }
    filter.insert(hashes);
    Ok(filter)
}

fn storage<E: Into<redb::Error>>(error: E) -> StateError {
    StateError::from(error.into())
}

impl From<redb::Error> for StateError {
    fn from(error: redb::Error) -> StateError {
        match error.is_io_failure() {
            true => StateError::Io(error.to_string()),
            false => StateError::Storage(error.to_string()),
        }
    }
}

fn open_error(path: &Path, error: DatabaseError) -> StateError {
    match error {
        // Both mean another handle holds the file lock (the second: one running another redb
        // locking protocol generation).
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => StateError::Locked {
            path: path.display().to_string(),
        },
        other => StateError::Storage(format!("opening {}: {other}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, test_pin};
    use cluster_types::pin_codec;
    use std::cell::Cell;

    #[test]
    fn redb_state_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let counter = Cell::new(0u32);
        testing::run_conformance_suite(&|| {
            counter.set(counter.get() + 1);
            let path = dir.path().join(format!("state-{}.redb", counter.get()));
            Box::new(RedbState::open(&path).unwrap())
        });
    }

    #[test]
    fn commits_survive_drop_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pinset.redb");
        {
            let state = RedbState::open(&path).unwrap();
            state
                .commit(&[StateOp::Add(test_pin(1)), StateOp::Add(test_pin(2))], Some(b"m1"))
                .unwrap();
            state.commit(&[StateOp::Rm(test_pin(1).cid)], Some(b"m2")).unwrap();
            assert_eq!(state.path(), path.as_path());
        }
        let state = RedbState::open(&path).unwrap();
        assert_eq!(state.len().unwrap(), 1);
        assert_eq!(state.get(&test_pin(2).cid).unwrap(), Some(test_pin(2)));
        assert!(!state.has(&test_pin(1).cid).unwrap());
        assert_eq!(state.meta().unwrap().as_deref(), Some(&b"m2"[..]));
    }

    #[test]
    fn replace_all_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pinset.redb");
        {
            let state = RedbState::open(&path).unwrap();
            state.commit(&[StateOp::Add(test_pin(1))], Some(b"old")).unwrap();
            state
                .replace_all(&mut (10..20).map(|i| Ok(test_pin(i))), b"new")
                .unwrap();
        }
        let state = RedbState::open(&path).unwrap();
        assert_eq!(testing::full_listing(&state), testing::sorted_pins(10..20));
        assert_eq!(state.meta().unwrap().as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn second_open_of_the_same_file_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pinset.redb");
        let first = RedbState::open(&path).unwrap();
        match RedbState::open(&path) {
            Err(StateError::Locked { path: locked }) => assert_eq!(locked, path.display().to_string()),
            other => panic!("expected Locked, got {other:?}"),
        }
        // The first handle keeps working, and the lock goes away with it.
        first.commit(&[StateOp::Add(test_pin(7))], None).unwrap();
        drop(first);
        let again = RedbState::open(&path).unwrap();
        assert!(again.has(&test_pin(7).cid).unwrap());
    }

    #[test]
    fn missing_folder_is_a_storage_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-folder").join("pinset.redb");
        assert!(matches!(RedbState::open(&path), Err(StateError::Storage(_))));
    }

    #[test]
    fn undecodable_or_misplaced_pins_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pinset.redb");
        let state = RedbState::open(&path).unwrap();
        // Write bad records behind the store's back.
        state
            .write(|txn| {
                let mut table = txn.open_table(PINS).unwrap();
                table
                    .insert(test_pin(1).cid.to_bytes().as_slice(), &b"not json"[..])
                    .unwrap();
                let misplaced = serde_json::to_vec(&test_pin(3)).unwrap();
                table
                    .insert(test_pin(2).cid.to_bytes().as_slice(), misplaced.as_slice())
                    .unwrap();
                let misplaced = pin_codec::encode_pin(&test_pin(5), true);
                table
                    .insert(test_pin(4).cid.to_bytes().as_slice(), misplaced.as_slice())
                    .unwrap();
                // An allocation index the peer table does not hold.
                let mut unknown_peer = vec![0x02, 1, 9];
                pin_codec::encode_pin_into(&test_pin(6), false, false, &mut unknown_peer);
                table
                    .insert(test_pin(6).cid.to_bytes().as_slice(), unknown_peer.as_slice())
                    .unwrap();
                Ok(())
            })
            .unwrap();
        // Opened again, as a file written elsewhere is: the key filter knows the records.
        drop(state);
        let state = RedbState::open(&path).unwrap();
        for n in [1, 2, 4, 6] {
            let result = state.get(&test_pin(n).cid);
            assert!(matches!(result, Err(StateError::Corrupt(_))), "pin {n}: {result:?}");
        }
        assert!(matches!(state.list_page(None, 10), Err(StateError::Corrupt(_))));
        // Presence checks do not decode.
        assert!(state.has(&test_pin(1).cid).unwrap());
    }

    /// The stored value of `cid`, as bytes.
    fn stored_value(state: &RedbState, cid: &Cid) -> Vec<u8> {
        state
            .read(|txn| {
                let table = txn.open_table(PINS).unwrap();
                let value = table.get(cid.to_bytes().as_slice()).unwrap().unwrap();
                Ok(value.value().to_vec())
            })
            .unwrap()
    }

    #[test]
    fn pins_stored_as_json_or_plain_binary_are_read_and_changed_pins_are_stored_compact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pinset.redb");
        let state = RedbState::open(&path).unwrap();
        // As earlier versions wrote them: JSON, then the binary form with the peer ids inside.
        state
            .write(|txn| {
                let mut table = txn.open_table(PINS).unwrap();
                for n in 0..6 {
                    let value = match n % 2 {
                        0 => serde_json::to_vec(&test_pin(n)).unwrap(),
                        _ => pin_codec::encode_pin(&test_pin(n), false),
                    };
                    table
                        .insert(test_pin(n).cid.to_bytes().as_slice(), value.as_slice())
                        .unwrap();
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(state.list_page(None, 10).unwrap(), testing::sorted_pins(0..6));
        for n in [2, 5] {
            let mut changed = test_pin(n);
            assert_eq!(changed.allocations.len(), 2);
            let before = stored_value(&state, &changed.cid).len();
            changed.options.name = "renamed".into();
            state.commit(&[StateOp::Add(changed.clone())], None).unwrap();
            assert_eq!(state.get(&changed.cid).unwrap(), Some(changed.clone()));
            let stored = stored_value(&state, &changed.cid);
            assert_eq!(stored[0], 0x02, "rewritten with peer table indexes");
            // Two 38-byte peer ids became two one-byte indexes.
            assert!(
                stored.len() + 70 < before,
                "pin {n}: {} bytes, {before} before",
                stored.len()
            );
        }
    }

    #[test]
    fn the_peer_table_survives_reopen_and_a_failed_write_leaves_no_dangling_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pinset.redb");
        let stranger = cluster_types::PeerId::from_ed25519_seed([99; 32]);
        let mut pin = test_pin(7);
        pin.allocations.push(stranger);
        {
            let state = RedbState::open(&path).unwrap();
            state.commit(&[StateOp::Add(test_pin(2))], None).unwrap();
            // A transaction that gives `stranger` an index, then fails: nothing of it is kept,
            // but the table in memory keeps the index.
            let failed = state.write(|txn| {
                PinWriter::new(txn, &state.peers)?.encode(&pin)?;
                Err::<(), _>(StateError::Storage("given up".into()))
            });
            assert!(failed.is_err());
            state.commit(&[StateOp::Add(pin.clone())], Some(b"m")).unwrap();
            assert_eq!(state.get(&pin.cid).unwrap(), Some(pin.clone()));
        }
        let state = RedbState::open(&path).unwrap();
        assert_eq!(state.get(&pin.cid).unwrap(), Some(pin.clone()));
        assert_eq!(state.get(&test_pin(2).cid).unwrap(), Some(test_pin(2)));
        let mut expected = vec![test_pin(2), pin];
        expected.sort_by_key(|p| p.cid.to_bytes());
        assert_eq!(testing::full_listing(&state), expected);
    }
}
