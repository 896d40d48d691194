//! [`BufferedState`]: unsynced commits held in memory in front of another store, written to it
//! together at the next sync.
//!
//! Why: an unsynced commit of a few dozen pins to redb still copies, checksums and writes one
//! 4 KB leaf per pin (random CIDs share no leaf) plus the tree above them; it was a fifth of a
//! follower's CPU under load. Unsynced commits are allowed to be lost to a crash (the Raft log
//! holds them and openraft applies them again), so holding them in memory until the sync
//! loses nothing a crash would not, and the sync writes each touched leaf once.
//!
//! Readers see the buffer over the store: a read after an unsynced commit sees it. The store
//! only ever receives durable commits from here, so a write it refuses (it is opened again at
//! its last durable commit) loses nothing: the buffer being written goes back under the one
//! that filled meanwhile, and the next sync writes both.
//!
//! A sync swaps the buffer out and writes it while commits fill a new one: readers and
//! unsynced commits never wait for the disk (the sync was the p99 of a loaded leader, since
//! every read waited for it). Syncs and durable commits take turns.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use cluster_types::{Cid, Pin};

use crate::{State, StateError, StateOp, StateView};

mod key_order;
mod merge;

use key_order::{key_order, KeyOrder, SortedKeys};
use merge::{layered, merged_page, pin_page};

/// Buffered pins and tombstones past which an unsynced commit writes the buffer to the store
/// (durably): bounds memory when nobody syncs. Twice the consensus' sync interval, so that
/// commits fill a buffer while the last one is written.
const BUFFER_MAX: usize = 65_536;

/// A store whose unsynced commits wait in memory until a sync, a durable commit or
/// [`BUFFER_MAX`].
pub struct BufferedState {
    inner: Arc<dyn State>,
    buffers: RwLock<Buffers>,
    /// Held while a buffer is written to the store: one write at a time, and the buffers' lock
    /// is never held across one.
    writing: Mutex<()>,
}

/// What the store does not hold yet: the buffer commits fill, over the one being written.
#[derive(Default)]
struct Buffers {
    filling: Buffer,
    writing: Option<Arc<Buffer>>,
}

/// One layer of changes.
#[derive(Default)]
struct Buffer {
    /// `None`: removed. Hashed: the applies look up every pin they change.
    pins: HashMap<Cid, Option<Pin>>,
    /// The keys of `pins` in the store's order, sorted when a listing or a write asks.
    pin_order: Mutex<KeyOrder>,
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

    /// [`Buffer::apply`] of ops it may keep.
    fn apply_owned(&mut self, ops: Vec<StateOp>, meta: Option<&[u8]>) {
        for op in ops {
            match op {
                StateOp::Add(pin) => self.set_pin(pin.cid, Some(pin)),
                other => self.apply(std::slice::from_ref(&other), None),
            }
        }
        if let Some(meta) = meta {
            self.meta = Some(meta.to_vec());
        }
    }

    /// An empty buffer with room for `pins` pins: one that fills does not grow (and move its
    /// entries) a dozen times.
    fn with_capacity(pins: usize) -> Buffer {
        Buffer {
            pins: HashMap::with_capacity(pins),
            pin_order: Mutex::new(KeyOrder {
                sorted: Arc::default(),
                added: Vec::with_capacity(pins),
            }),
            ..Buffer::default()
        }
    }

    fn set_pin(&mut self, cid: Cid, pin: Option<Pin>) {
        if self.pins.insert(cid, pin).is_none() {
            key_order(self.pin_order.get_mut()).added.push(cid);
        }
    }

    /// The keys of the buffered pins in the store's order.
    fn sorted_keys(&self) -> Arc<SortedKeys> {
        key_order(self.pin_order.lock()).sorted()
    }

    /// Puts `older` under this buffer: its keys that this one lacks join it.
    fn put_under(&mut self, older: Buffer) {
        for (cid, pin) in older.pins {
            if !self.pins.contains_key(&cid) {
                self.set_pin(cid, pin);
            }
        }
        for (key, tombstone) in older.tombstones {
            self.tombstones.entry(key).or_insert(tombstone);
        }
        if self.meta.is_none() {
            self.meta = older.meta;
        }
    }

    /// The buffered pins after `after`, in the store's order: `keys` are this buffer's
    /// [`Buffer::sorted_keys`].
    fn pins_after<'a>(
        &'a self,
        keys: &'a SortedKeys,
        after: Option<&Cid>,
    ) -> impl Iterator<Item = (&'a [u8], Option<Pin>)> + 'a {
        let start = match after {
            Some(cid) => {
                let after = cid.to_bytes();
                keys.partition_point(|(key, _)| **key <= *after)
            }
            None => 0,
        };
        keys[start..]
            .iter()
            .map(|(key, cid)| (&**key, self.pins.get(cid).cloned().flatten()))
    }

    /// The buffered tombstones after `after`, in the store's order: `None` for a cleared one.
    fn tombstones_after<'a>(&'a self, after: Option<&Cid>) -> impl Iterator<Item = (&'a [u8], Option<Cid>)> + 'a {
        self.tombstones
            .range((key_after(after), Bound::Unbounded))
            .map(|(key, (cid, set))| (key.as_slice(), set.then_some(*cid)))
    }

    fn is_empty(&self) -> bool {
        self.pins.is_empty() && self.tombstones.is_empty() && self.meta.is_none()
    }

    fn keys(&self) -> usize {
        self.pins.len() + self.tombstones.len()
    }

    /// One op per buffered key, in key order: the store ends as if every commit had reached it.
    fn ops(&self) -> Vec<StateOp> {
        let keys = self.sorted_keys();
        let pins = keys.iter().map(|(_, cid)| match self.pins.get(cid).cloned().flatten() {
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

fn key_after(after: Option<&Cid>) -> Bound<Vec<u8>> {
    match after {
        Some(cid) => Bound::Excluded(cid.to_bytes()),
        None => Bound::Unbounded,
    }
}

impl Buffers {
    /// The pin the buffers hold for `cid`: `Some(None)` when they removed it, `None` when they
    /// do not know it.
    fn pin(&self, cid: &Cid) -> Option<Option<Pin>> {
        match self.filling.pins.get(cid) {
            Some(pin) => Some(pin.clone()),
            None => self.writing.as_ref()?.pins.get(cid).cloned(),
        }
    }

    fn meta(&self) -> Option<&Vec<u8>> {
        self.filling
            .meta
            .as_ref()
            .or_else(|| self.writing.as_ref()?.meta.as_ref())
    }

    /// Both layers as one buffer, the filling one over the other.
    fn merged(&self) -> Buffer {
        let mut merged = self.filling.copy();
        if let Some(writing) = &self.writing {
            merged.put_under(writing.copy());
        }
        merged
    }
}

impl BufferedState {
    /// `inner` with unsynced commits buffered in front of it.
    pub fn new(inner: Arc<dyn State>) -> BufferedState {
        BufferedState {
            inner,
            buffers: RwLock::new(Buffers::default()),
            writing: Mutex::new(()),
        }
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Buffers>, StateError> {
        self.buffers
            .read()
            .map_err(|_| StateError::Storage("state buffer lock poisoned".into()))
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Buffers>, StateError> {
        self.buffers
            .write()
            .map_err(|_| StateError::Storage("state buffer lock poisoned".into()))
    }

    fn writing_turn(&self) -> Result<MutexGuard<'_, ()>, StateError> {
        self.writing
            .lock()
            .map_err(|_| StateError::Storage("state write lock poisoned".into()))
    }

    /// Writes every buffered change, then `commit`'s ops and meta, to the store in one durable
    /// commit (`None`: a sync). Commits meanwhile fill a new buffer; a refused write puts the
    /// one it took back under it.
    fn write_through(&self, commit: Option<(&[StateOp], Option<&[u8]>)>) -> Result<(), StateError> {
        let _turn = self.writing_turn()?;
        let taken = {
            let mut buffers = self.write()?;
            if buffers.filling.is_empty() {
                None
            } else {
                let room = buffers.filling.pins.len();
                let taken = Arc::new(std::mem::replace(&mut buffers.filling, Buffer::with_capacity(room)));
                buffers.writing = Some(taken.clone());
                Some(taken)
            }
        };
        let Some(taken) = taken else {
            return match commit {
                Some((ops, meta)) => self.inner.commit(ops, meta),
                None => self.inner.sync(),
            };
        };
        let mut ops = taken.ops();
        let mut meta = taken.meta.as_deref();
        if let Some((more, more_meta)) = commit {
            ops.extend_from_slice(more);
            meta = more_meta.or(meta);
        }
        let written = self.inner.commit(&ops, meta);
        drop(ops);
        let mut buffers = self.write()?;
        let was_writing = buffers.writing.take();
        drop(taken);
        if written.is_err() {
            if let Some(was_writing) = was_writing {
                let was_writing = Arc::try_unwrap(was_writing).unwrap_or_else(|shared| shared.copy());
                buffers.filling.put_under(was_writing);
            }
        }
        written
    }
}

impl BufferedState {
    /// After an unsynced commit: a buffer past [`BUFFER_MAX`] is written to the store. The
    /// commit is in the buffer whether this write works or not: a refused one is tried again at
    /// the next sync.
    fn written_when_full(&self, full: bool) -> Result<(), StateError> {
        if full {
            if let Err(e) = self.write_through(None) {
                tracing::warn!("writing a full state buffer to the store: {e}");
            }
        }
        Ok(())
    }
}

impl Buffer {
    fn copy(&self) -> Buffer {
        Buffer {
            pins: self.pins.clone(),
            pin_order: Mutex::new(key_order(self.pin_order.lock()).clone()),
            tombstones: self.tombstones.clone(),
            meta: self.meta.clone(),
        }
    }
}

impl std::fmt::Debug for BufferedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let buffered = self
            .buffers
            .read()
            .map(|b| b.filling.keys() + b.writing.as_ref().map_or(0, |w| w.keys()))
            .ok();
        f.debug_struct("BufferedState").field("buffered", &buffered).finish()
    }
}

impl State for BufferedState {
    fn get(&self, cid: &Cid) -> Result<Option<Pin>, StateError> {
        if let Some(pin) = self.read()?.pin(cid) {
            return Ok(pin);
        }
        // Outside the lock: a write that ends meanwhile moves the pin to the store, where this
        // finds it.
        self.inner.get(cid)
    }

    fn get_many(&self, cids: &[Cid]) -> Result<Vec<Option<Pin>>, StateError> {
        let mut found: Vec<Option<Option<Pin>>> = {
            let buffers = self.read()?;
            cids.iter().map(|cid| buffers.pin(cid)).collect()
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
        let buffers = self.read()?;
        let mut len = self.inner.len()?;
        let writing = buffers.writing.iter().flat_map(|w| w.pins.iter());
        let under = writing.filter(|(cid, _)| !buffers.filling.pins.contains_key(cid));
        for (cid, pin) in buffers.filling.pins.iter().chain(under) {
            match (pin.is_some(), self.inner.has(cid)?) {
                (true, false) => len += 1,
                (false, true) => len -= 1,
                _ => {}
            }
        }
        Ok(len)
    }

    fn list_page(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Pin>, StateError> {
        let buffers = self.read()?;
        let filling = buffers.filling.sorted_keys();
        let writing = buffers.writing.as_ref().map(|w| (w, w.sorted_keys()));
        let buffered = layered(
            buffers.filling.pins_after(&filling, after),
            writing.iter().flat_map(|(w, keys)| w.pins_after(keys, after)),
        );
        pin_page(buffered, after, limit, |after, limit| {
            self.inner.list_page(after, limit)
        })
    }

    fn commit(&self, ops: &[StateOp], meta: Option<&[u8]>) -> Result<(), StateError> {
        self.write_through(Some((ops, meta)))
    }

    fn commit_unsynced(&self, ops: &[StateOp], meta: Option<&[u8]>) -> Result<(), StateError> {
        let full = {
            let mut buffers = self.write()?;
            buffers.filling.apply(ops, meta);
            buffers.filling.keys() > BUFFER_MAX
        };
        self.written_when_full(full)
    }

    fn commit_unsynced_owned(&self, ops: Vec<StateOp>, meta: Option<&[u8]>) -> Result<(), StateError> {
        let full = {
            let mut buffers = self.write()?;
            buffers.filling.apply_owned(ops, meta);
            buffers.filling.keys() > BUFFER_MAX
        };
        self.written_when_full(full)
    }

    fn sync(&self) -> Result<(), StateError> {
        self.write_through(None)
    }

    fn meta(&self) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(meta) = self.read()?.meta() {
            return Ok(Some(meta.clone()));
        }
        self.inner.meta()
    }

    fn reopens(&self) -> u64 {
        self.inner.reopens()
    }

    fn replace_all(
        &self,
        pins: &mut dyn Iterator<Item = Result<Pin, StateError>>,
        meta: &[u8],
    ) -> Result<(), StateError> {
        let _turn = self.writing_turn()?;
        // The buffers' lock is held throughout: no reader sees buffered pins over the new
        // pinset. Tombstones are kept by a replace, and the pins it replaces decide new ones,
        // so what is buffered reaches the store first.
        let mut buffers = self.write()?;
        if !buffers.filling.is_empty() {
            self.inner
                .commit(&buffers.filling.ops(), buffers.filling.meta.as_deref())?;
            buffers.filling = Buffer::default();
        }
        self.inner.replace_all(pins, meta)
    }

    fn tombstones(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Cid>, StateError> {
        let buffers = self.read()?;
        let buffered = layered(
            buffers.filling.tombstones_after(after),
            buffers.writing.iter().flat_map(|w| w.tombstones_after(after)),
        );
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
        // Under the lock: no write moves pins from the buffers to the store while both are
        // taken (a write that lands meanwhile changes nothing the copy does not hold).
        let buffers = self.read()?;
        let mut buffer = buffers.merged();
        buffer.tombstones.clear();
        Ok(Box::new(BufferedView {
            stored: self.inner.view()?,
            buffer,
        }))
    }
}

/// A [`BufferedState::view`]: the store's view with a copy of the buffers over it.
struct BufferedView {
    stored: Box<dyn StateView>,
    /// Their pins and meta.
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
        let keys = self.buffer.sorted_keys();
        pin_page(self.buffer.pins_after(&keys, after), after, limit, |after, limit| {
            self.stored.list_page(after, limit)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::testing::{self, full_listing, sorted_pins, test_cid, test_pin, TroubledStore};
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

    /// Keys that arrive between the pages of a listing, before and after where it stands, join
    /// the buffer's order; a view taken earlier keeps the order it saw.
    #[test]
    fn listings_between_commits_see_the_keys_in_the_stores_order() {
        let store = Arc::new(MemoryState::new());
        let state = BufferedState::new(store.clone());
        state
            .commit(&(0..10).map(test_pin).map(StateOp::Add).collect::<Vec<_>>(), None)
            .unwrap();
        let commit = |numbers: std::ops::Range<u64>| {
            let ops: Vec<StateOp> = numbers.map(test_pin).map(StateOp::Add).collect();
            state.commit_unsynced(&ops, None).unwrap();
        };
        commit(10..30);
        let earlier = state.view().unwrap();
        let mut listed = Vec::new();
        let mut after = None;
        for (round, more) in [30..40, 40..41, 41..60, 60..60].into_iter().enumerate() {
            let page = state.list_page(after.as_ref(), 7).unwrap();
            assert_eq!(page.len(), 7, "page {round}");
            after = page.last().map(|pin| pin.cid);
            listed.extend(page);
            commit(more);
        }
        let expected = sorted_pins(0..60);
        let stand = listed.last().unwrap().cid.to_bytes();
        let mut rest = state.list_page(after.as_ref(), 100).unwrap();
        assert!(
            rest.iter().all(|pin| pin.cid.to_bytes() > stand),
            "the listing goes on from where it stood"
        );
        listed.append(&mut rest);
        assert!(
            listed.windows(2).all(|w| w[0].cid.to_bytes() < w[1].cid.to_bytes()),
            "in the store's order, none twice"
        );
        assert!(listed.iter().all(|pin| expected.contains(pin)));
        assert_eq!(full_listing(&state), expected);
        assert_eq!(
            crate::PinIter::of_view(earlier.as_ref(), 4)
                .map(Result::unwrap)
                .collect::<Vec<_>>(),
            sorted_pins(0..30),
            "the view lists what was there when it was taken"
        );
        state.sync().unwrap();
        assert_eq!(full_listing(store.as_ref()), expected);
    }

    /// A store that refuses the write loses nothing: the buffer stays readable, commits made
    /// after the refusal sit over it, and the next sync writes both.
    #[test]
    fn a_refused_sync_keeps_the_buffer_for_the_next_one() {
        let store = Arc::new(TroubledStore::default());
        let state = BufferedState::new(store.clone());
        state.commit(&[StateOp::Add(test_pin(1))], Some(b"durable")).unwrap();
        state
            .commit_unsynced(
                &[StateOp::Add(test_pin(2)), StateOp::Tombstone(test_cid(7))],
                Some(b"unsynced"),
            )
            .unwrap();
        store.refuse.store(true, Ordering::Relaxed);
        assert!(state.sync().is_err());
        assert!(
            state.commit(&[StateOp::Add(test_pin(3))], Some(b"refused")).is_err(),
            "a refused durable commit fails"
        );
        state
            .commit_unsynced(&[StateOp::Rm(test_cid(1))], Some(b"later"))
            .unwrap();
        store.refuse.store(false, Ordering::Relaxed);
        assert_eq!(
            full_listing(&state),
            vec![test_pin(2)],
            "the refused commit changed nothing"
        );
        assert_eq!(state.meta().unwrap().as_deref(), Some(&b"later"[..]));
        assert_eq!(store.meta().unwrap().as_deref(), Some(&b"durable"[..]));

        state.sync().unwrap();
        assert_eq!(full_listing(store.as_ref()), vec![test_pin(2)]);
        assert_eq!(store.tombstones(None, 10).unwrap(), vec![test_cid(7)]);
        assert_eq!(store.meta().unwrap().as_deref(), Some(&b"later"[..]));
    }

    /// While a sync writes one buffer, commits fill another and readers see both over the
    /// store without waiting for the write.
    #[test]
    fn commits_and_reads_go_on_while_a_sync_writes() {
        let store = Arc::new(TroubledStore::default());
        let state = Arc::new(BufferedState::new(store.clone()));
        state.commit(&[StateOp::Add(test_pin(1))], Some(b"m1")).unwrap();
        state
            .commit_unsynced(&[StateOp::Add(test_pin(2)), StateOp::Rm(test_cid(1))], Some(b"m2"))
            .unwrap();
        let checked = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Inside the sync's write to the store, which holds {+2, -1}; the store itself still
        // has pin 1.
        store.during_next_write({
            let (state, store, checked) = (state.clone(), store.clone(), checked.clone());
            move || {
                assert_eq!(full_listing(store.as_ref()), vec![test_pin(1)]);
                let later = [StateOp::Add(test_pin(3)), StateOp::Tombstone(test_cid(9))];
                state.commit_unsynced(&later, Some(b"m3")).unwrap();
                assert_eq!(full_listing(state.as_ref()), sorted_pins([2, 3]));
                assert_eq!(state.get(&test_cid(1)).unwrap(), None);
                assert_eq!(
                    state.get_many(&[test_cid(2), test_cid(3)]).unwrap(),
                    vec![Some(test_pin(2)), Some(test_pin(3))]
                );
                assert_eq!(state.len().unwrap(), 2);
                assert_eq!(state.meta().unwrap().as_deref(), Some(&b"m3"[..]));
                assert_eq!(state.tombstones(None, 10).unwrap(), vec![test_cid(9)]);
                let view = state.view().unwrap();
                assert_eq!(
                    crate::PinIter::of_view(view.as_ref(), 1)
                        .map(Result::unwrap)
                        .collect::<Vec<_>>(),
                    sorted_pins([2, 3])
                );
                checked.store(true, Ordering::Relaxed);
            }
        });
        state.sync().unwrap();
        assert!(checked.load(Ordering::Relaxed), "the store's write ran the reads");
        assert_eq!(
            full_listing(store.as_ref()),
            vec![test_pin(2)],
            "the sync wrote what it took"
        );
        assert_eq!(full_listing(state.as_ref()), sorted_pins([2, 3]));
        state.sync().unwrap();
        assert_eq!(full_listing(store.as_ref()), sorted_pins([2, 3]));
        assert_eq!(store.meta().unwrap().as_deref(), Some(&b"m3"[..]));
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
