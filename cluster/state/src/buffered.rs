//! [`BufferedState`]: unsynced commits held in memory in front of another store, written to it
//! together at the next sync.
//!
//! Why: an unsynced commit of a few dozen pins to redb still copies, checksums and writes one
//! 4 KB leaf per pin (random CIDs share no leaf) plus the tree above them; it was a fifth of a
//! follower's CPU under load. Unsynced commits are allowed to be lost to a crash (the Raft log
//! holds them and openraft applies them again), so holding them in memory until the sync
//! loses nothing a crash would not, and the sync writes each touched leaf once.
//!
//! Readers see the buffer over the store: a read after an unsynced commit sees it. A failed
//! write to the store drops the buffer, as a reopen at the last durable commit drops unsynced
//! commits, and counts as a reopen ([`State::reopens`]) so the state machine applies them again.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use cluster_types::{Cid, Pin};

use crate::{State, StateError, StateOp, StateView};

/// Buffered pins and tombstones past which an unsynced commit writes the buffer to the store
/// (still unsynced): bounds memory when nobody syncs.
const BUFFER_MAX: usize = 16_384;

/// A store whose unsynced commits wait in memory until a sync, a durable commit or
/// [`BUFFER_MAX`].
pub struct BufferedState {
    inner: Arc<dyn State>,
    buffer: RwLock<Buffer>,
    /// Buffers dropped because the store refused them.
    dropped: AtomicU64,
}

/// What the store does not hold yet.
#[derive(Default)]
struct Buffer {
    /// `None`: removed. Hashed: the applies look up every pin they change.
    pins: HashMap<Cid, Option<Pin>>,
    /// The keys of `pins` by the CID's binary form: the store's order, for listings.
    pin_order: BTreeMap<Vec<u8>, Cid>,
    /// `false`: cleared.
    tombstones: BTreeMap<Vec<u8>, (Cid, bool)>,
    meta: Option<Vec<u8>>,
}

impl Buffer {
    fn apply(&mut self, ops: &[StateOp], meta: Option<&[u8]>) {
        for op in ops {
            match op {
                StateOp::Add(pin) => self.set_pin(pin.cid, Some(pin.clone())),
                StateOp::Rm(cid) => self.set_pin(*cid, None),
                StateOp::Tombstone(cid) => {
                    self.tombstones.insert(cid.to_bytes(), (*cid, true));
                }
                StateOp::ClearTombstone(cid) => {
                    self.tombstones.insert(cid.to_bytes(), (*cid, false));
                }
            }
        }
        if let Some(meta) = meta {
            self.meta = Some(meta.to_vec());
        }
    }

    fn set_pin(&mut self, cid: Cid, pin: Option<Pin>) {
        if self.pins.insert(cid, pin).is_none() {
            self.pin_order.insert(cid.to_bytes(), cid);
        }
    }

    /// The buffered pins after `after`, in the store's order.
    fn pins_after<'a>(&'a self, after: Option<&Cid>) -> impl Iterator<Item = (&'a [u8], Option<Pin>)> + 'a {
        let start = match after {
            Some(cid) => Bound::Excluded(cid.to_bytes()),
            None => Bound::Unbounded,
        };
        self.pin_order
            .range((start, Bound::Unbounded))
            .map(|(key, cid)| (key.as_slice(), self.pins.get(cid).cloned().flatten()))
    }

    fn is_empty(&self) -> bool {
        self.pins.is_empty() && self.tombstones.is_empty() && self.meta.is_none()
    }

    /// One op per buffered key, in key order: the store ends as if every commit had reached it.
    fn ops(&self) -> Vec<StateOp> {
        let pins = self
            .pin_order
            .values()
            .map(|cid| match self.pins.get(cid).cloned().flatten() {
                Some(pin) => StateOp::Add(pin),
                None => StateOp::Rm(*cid),
            });
        let tombstones = self.tombstones.values().map(|(cid, set)| match set {
            true => StateOp::Tombstone(*cid),
            false => StateOp::ClearTombstone(*cid),
        });
        pins.chain(tombstones).collect()
    }
}

impl BufferedState {
    /// `inner` with unsynced commits buffered in front of it.
    pub fn new(inner: Arc<dyn State>) -> BufferedState {
        BufferedState {
            inner,
            buffer: RwLock::new(Buffer::default()),
            dropped: AtomicU64::new(0),
        }
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Buffer>, StateError> {
        self.buffer
            .read()
            .map_err(|_| StateError::Storage("state buffer lock poisoned".into()))
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Buffer>, StateError> {
        self.buffer
            .write()
            .map_err(|_| StateError::Storage("state buffer lock poisoned".into()))
    }

    /// Writes the buffer to the store with `write`, and empties it whether that worked or not:
    /// a store that refused a write was opened again at its last durable commit.
    fn flush(
        &self,
        buffer: &mut Buffer,
        write: impl FnOnce(&[StateOp], Option<&[u8]>) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let written = write(&buffer.ops(), buffer.meta.as_deref());
        *buffer = Buffer::default();
        if written.is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        written
    }
}

impl std::fmt::Debug for BufferedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let buffered = self.buffer.read().map(|b| b.pins.len() + b.tombstones.len()).ok();
        f.debug_struct("BufferedState").field("buffered", &buffered).finish()
    }
}

/// The first `limit` items after `after` of the store's pages (`page`) with the `buffered`
/// items after `after` (in the store's order) over them: a buffered item replaces or (`None`)
/// hides the store's.
fn merged_page<'a, T>(
    buffered: impl Iterator<Item = (&'a [u8], Option<T>)>,
    after: Option<&Cid>,
    limit: usize,
    page: impl Fn(Option<&Cid>, usize) -> Result<Vec<(Cid, T)>, StateError>,
) -> Result<Vec<T>, StateError> {
    let mut buffered = buffered.peekable();
    let mut out = Vec::with_capacity(limit.min(4096));
    let mut stored_after = after.copied();
    while out.len() < limit {
        let stored = page(stored_after.as_ref(), limit)?;
        let last_page = stored.len() < limit;
        for (cid, item) in stored {
            let key = cid.to_bytes();
            while let Some((_, value)) = buffered.next_if(|(k, _)| *k < key.as_slice()) {
                out.extend(value);
                if out.len() == limit {
                    return Ok(out);
                }
            }
            match buffered.next_if(|(k, _)| *k == key.as_slice()) {
                Some((_, value)) => out.extend(value),
                None => out.push(item),
            }
            if out.len() == limit {
                return Ok(out);
            }
            stored_after = Some(cid);
        }
        if last_page {
            out.extend(buffered.filter_map(|(_, value)| value).take(limit - out.len()));
            break;
        }
    }
    Ok(out)
}

fn pin_page(
    buffer: &Buffer,
    after: Option<&Cid>,
    limit: usize,
    page: impl Fn(Option<&Cid>, usize) -> Result<Vec<Pin>, StateError>,
) -> Result<Vec<Pin>, StateError> {
    merged_page(buffer.pins_after(after), after, limit, |after, limit| {
        Ok(page(after, limit)?.into_iter().map(|pin| (pin.cid, pin)).collect())
    })
}

impl State for BufferedState {
    fn get(&self, cid: &Cid) -> Result<Option<Pin>, StateError> {
        if let Some(pin) = self.read()?.pins.get(cid) {
            return Ok(pin.clone());
        }
        // Outside the lock: a flush meanwhile moves the pin to the store, where this finds it.
        self.inner.get(cid)
    }

    fn get_many(&self, cids: &[Cid]) -> Result<Vec<Option<Pin>>, StateError> {
        let mut found: Vec<Option<Option<Pin>>> = {
            let buffer = self.read()?;
            cids.iter().map(|cid| buffer.pins.get(cid).cloned()).collect()
        };
        let missing: Vec<Cid> = cids
            .iter()
            .zip(&found)
            .filter(|(_, found)| found.is_none())
            .map(|(cid, _)| *cid)
            .collect();
        let mut stored = self.inner.get_many(&missing)?.into_iter();
        for slot in found.iter_mut().filter(|slot| slot.is_none()) {
            *slot = Some(stored.next().flatten());
        }
        Ok(found.into_iter().map(Option::flatten).collect())
    }

    fn len(&self) -> Result<u64, StateError> {
        let buffer = self.read()?;
        let mut len = self.inner.len()?;
        for (cid, pin) in &buffer.pins {
            match (pin.is_some(), self.inner.has(cid)?) {
                (true, false) => len += 1,
                (false, true) => len -= 1,
                _ => {}
            }
        }
        Ok(len)
    }

    fn list_page(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Pin>, StateError> {
        let buffer = self.read()?;
        pin_page(&buffer, after, limit, |after, limit| self.inner.list_page(after, limit))
    }

    fn commit(&self, ops: &[StateOp], meta: Option<&[u8]>) -> Result<(), StateError> {
        let mut buffer = self.write()?;
        buffer.apply(ops, meta);
        self.flush(&mut buffer, |ops, meta| self.inner.commit(ops, meta))
    }

    fn commit_unsynced(&self, ops: &[StateOp], meta: Option<&[u8]>) -> Result<(), StateError> {
        let mut buffer = self.write()?;
        buffer.apply(ops, meta);
        if buffer.pins.len() + buffer.tombstones.len() > BUFFER_MAX {
            return self.flush(&mut buffer, |ops, meta| self.inner.commit_unsynced(ops, meta));
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StateError> {
        let mut buffer = self.write()?;
        if buffer.is_empty() {
            return self.inner.sync();
        }
        self.flush(&mut buffer, |ops, meta| self.inner.commit(ops, meta))
    }

    fn meta(&self) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(meta) = &self.read()?.meta {
            return Ok(Some(meta.clone()));
        }
        self.inner.meta()
    }

    fn reopens(&self) -> u64 {
        self.inner.reopens() + self.dropped.load(Ordering::Relaxed)
    }

    fn replace_all(
        &self,
        pins: &mut dyn Iterator<Item = Result<Pin, StateError>>,
        meta: &[u8],
    ) -> Result<(), StateError> {
        let mut buffer = self.write()?;
        if !buffer.is_empty() {
            // Tombstones are kept by a replace, and the pins it replaces decide new ones.
            self.flush(&mut buffer, |ops, meta| self.inner.commit_unsynced(ops, meta))?;
        }
        self.inner.replace_all(pins, meta)
    }

    fn tombstones(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Cid>, StateError> {
        let buffer = self.read()?;
        let start = match after {
            Some(cid) => Bound::Excluded(cid.to_bytes()),
            None => Bound::Unbounded,
        };
        let buffered = buffer
            .tombstones
            .range((start, Bound::Unbounded))
            .map(|(key, (cid, set))| (key.as_slice(), set.then_some(*cid)));
        merged_page(buffered, after, limit, |after, limit| {
            Ok(self
                .inner
                .tombstones(after, limit)?
                .into_iter()
                .map(|cid| (cid, cid))
                .collect())
        })
    }

    fn view(&self) -> Result<Box<dyn StateView>, StateError> {
        // Under the lock: no flush moves pins between the two halves while they are taken.
        let buffer = self.read()?;
        Ok(Box::new(BufferedView {
            stored: self.inner.view()?,
            buffer: Buffer {
                pins: buffer.pins.clone(),
                pin_order: buffer.pin_order.clone(),
                tombstones: BTreeMap::new(),
                meta: buffer.meta.clone(),
            },
        }))
    }
}

/// A [`BufferedState::view`]: the store's view with a copy of the buffer over it.
struct BufferedView {
    stored: Box<dyn StateView>,
    /// Its pins and meta.
    buffer: Buffer,
}

impl StateView for BufferedView {
    fn meta(&self) -> Result<Option<Vec<u8>>, StateError> {
        match &self.buffer.meta {
            Some(meta) => Ok(Some(meta.clone())),
            None => self.stored.meta(),
        }
    }

    fn list_page(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Pin>, StateError> {
        pin_page(&self.buffer, after, limit, |after, limit| {
            self.stored.list_page(after, limit)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::testing::{self, full_listing, sorted_pins, test_cid, test_pin};
    use crate::MemoryState;

    #[test]
    fn buffered_memory_state_passes_the_conformance_suite() {
        testing::run_conformance_suite(&|| Box::new(BufferedState::new(Arc::new(MemoryState::new()))));
    }

    #[test]
    fn buffered_redb_state_passes_the_conformance_suite() {
        testing::run_conformance_suite(&|| {
            let (state, dir) = testing::temp_redb_state();
            // The folder lives as long as the test process: the suite owns only the state.
            std::mem::forget(dir);
            Box::new(BufferedState::new(Arc::new(state)))
        });
    }

    /// Unsynced commits stay in the buffer; listings, reads and views see them over the store,
    /// and a sync writes them to it.
    #[test]
    fn unsynced_commits_are_read_over_the_store_and_written_at_the_sync() {
        let store = Arc::new(MemoryState::new());
        let state = BufferedState::new(store.clone());
        let ops: Vec<StateOp> = (0..40).map(test_pin).map(StateOp::Add).collect();
        state.commit(&ops, Some(b"first")).unwrap();
        // Every other pin removed, ten replaced, ten added, some tombstones, all unsynced.
        let mut later: Vec<StateOp> = (0..40).step_by(2).map(|i| StateOp::Rm(test_cid(i))).collect();
        let mut replaced = test_pin(41);
        replaced.cid = test_cid(1);
        later.push(StateOp::Add(replaced.clone()));
        later.extend((100..110).map(test_pin).map(StateOp::Add));
        later.extend([StateOp::Tombstone(test_cid(0)), StateOp::Tombstone(test_cid(2))]);
        state.commit_unsynced(&later, Some(b"second")).unwrap();
        state
            .commit_unsynced(&[StateOp::ClearTombstone(test_cid(2))], None)
            .unwrap();

        let mut expected = sorted_pins((1..40).step_by(2).skip(1).chain(100..110));
        expected.push(replaced.clone());
        expected.sort_by_key(|pin| pin.cid.to_bytes());
        assert_eq!(store.len().unwrap(), 40, "nothing reached the store before the sync");
        for limit in [1, 3, 7, 64] {
            let paged: Vec<Pin> = crate::PinIter::new(&state, limit).map(Result::unwrap).collect();
            assert_eq!(paged, expected, "pages of {limit}");
        }
        assert_eq!(state.len().unwrap(), expected.len() as u64);
        assert_eq!(state.get(&test_cid(1)).unwrap(), Some(replaced));
        assert_eq!(state.get(&test_cid(0)).unwrap(), None);
        assert_eq!(
            state.get_many(&[test_cid(0), test_cid(3), test_cid(105)]).unwrap(),
            vec![None, Some(test_pin(3)), Some(test_pin(105))]
        );
        assert_eq!(state.tombstones(None, 10).unwrap(), vec![test_cid(0)]);
        assert_eq!(state.meta().unwrap().as_deref(), Some(&b"second"[..]));
        let view = state.view().unwrap();
        assert_eq!(
            crate::PinIter::of_view(view.as_ref(), 5)
                .map(Result::unwrap)
                .collect::<Vec<_>>(),
            expected
        );

        state.sync().unwrap();
        assert_eq!(full_listing(store.as_ref()), expected);
        assert_eq!(store.tombstones(None, 10).unwrap(), vec![test_cid(0)]);
        assert_eq!(store.meta().unwrap().as_deref(), Some(&b"second"[..]));
        assert_eq!(full_listing(&state), expected);
    }

    /// A store that refuses the write drops the buffer and says so through `reopens`, as a
    /// store reopened at its last durable commit does.
    #[test]
    fn a_refused_sync_drops_the_buffer_and_counts_as_a_reopen() {
        let store = Arc::new(RefusingStore::default());
        let state = BufferedState::new(store.clone());
        state.commit(&[StateOp::Add(test_pin(1))], Some(b"durable")).unwrap();
        state
            .commit_unsynced(&[StateOp::Add(test_pin(2))], Some(b"unsynced"))
            .unwrap();
        let before = state.reopens();
        store.refuse.store(true, Ordering::Relaxed);
        let refused = state.sync();
        store.refuse.store(false, Ordering::Relaxed);
        assert!(refused.is_err());
        assert_eq!(state.reopens(), before + 1);
        assert_eq!(state.get(&test_cid(2)).unwrap(), None, "the unsynced pin is gone");
        assert_eq!(state.meta().unwrap().as_deref(), Some(&b"durable"[..]));
        assert_eq!(full_listing(&state), vec![test_pin(1)]);
    }

    /// A [`MemoryState`] whose commits fail while `refuse` is set, as a full disk's do.
    #[derive(Default)]
    struct RefusingStore {
        store: MemoryState,
        refuse: AtomicBool,
    }

    impl RefusingStore {
        fn check(&self) -> Result<(), StateError> {
            match self.refuse.load(Ordering::Relaxed) {
                true => Err(StateError::Io("disk full".into())),
                false => Ok(()),
            }
        }
    }

    impl State for RefusingStore {
        fn get(&self, cid: &Cid) -> Result<Option<Pin>, StateError> {
            self.store.get(cid)
        }
        fn len(&self) -> Result<u64, StateError> {
            self.store.len()
        }
        fn list_page(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Pin>, StateError> {
            self.store.list_page(after, limit)
        }
        fn commit(&self, ops: &[StateOp], meta: Option<&[u8]>) -> Result<(), StateError> {
            self.check()?;
            self.store.commit(ops, meta)
        }
        fn meta(&self) -> Result<Option<Vec<u8>>, StateError> {
            self.store.meta()
        }
        fn replace_all(
            &self,
            pins: &mut dyn Iterator<Item = Result<Pin, StateError>>,
            meta: &[u8],
        ) -> Result<(), StateError> {
            self.check()?;
            self.store.replace_all(pins, meta)
        }
        fn tombstones(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Cid>, StateError> {
            self.store.tombstones(after, limit)
        }
        fn view(&self) -> Result<Box<dyn StateView>, StateError> {
            self.store.view()
        }
    }

    /// A buffer past [`BUFFER_MAX`] is written to the store without waiting for a sync.
    #[test]
    fn a_full_buffer_is_written_to_the_store() {
        let store = Arc::new(MemoryState::new());
        let state = BufferedState::new(store.clone());
        let ops: Vec<StateOp> = (0..=BUFFER_MAX as u64).map(test_pin).map(StateOp::Add).collect();
        state.commit_unsynced(&ops, None).unwrap();
        assert_eq!(store.len().unwrap(), BUFFER_MAX as u64 + 1);
        assert_eq!(state.len().unwrap(), BUFFER_MAX as u64 + 1);
    }
}
