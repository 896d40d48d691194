//! The conformance suite every [`State`] store must pass, and pin helpers for other crates' tests.
//!
//! Compiled for this crate's tests and, for other crates, with the `testing` feature. Checks panic
//! on failure like any test assertion.
//!
//! ```ignore
//! cluster_state::testing::run_conformance_suite(&|| Box::new(MyState::new()));
//! ```

use std::collections::BTreeMap;

use cluster_types::{Cid, PeerId, Pin, PinOptions, Timestamp};

use crate::{PinIter, RedbState, State, StateError, StateOp, StateView};

/// A distinct, deterministic pin for each `i`: CID `Cid::raw_sha256(&i.to_le_bytes())`, a name,
/// metadata, allocations and a timestamp that depend on `i`, so encoding round trips are really
/// exercised.
pub fn test_pin(i: u64) -> Pin {
    let mut options = PinOptions {
        name: format!("pin-{i}"),
        ..PinOptions::default()
    };
    options.metadata.insert("index".to_string(), i.to_string());
    let mut pin = Pin::new(test_cid(i), options);
    // None, one or two of four members, so stores that keep allocations apart are exercised.
    pin.allocations = (0..i % 3)
        .map(|k| PeerId::from_ed25519_seed([((i + k) % 4) as u8 + 1; 32]))
        .collect();
    // Non-zero nanoseconds check that sub-second precision survives storage.
    let nanos = u32::try_from(i % 1_000_000_000).unwrap_or(0);
    pin.timestamp = Timestamp::from_unix(1_700_000_000 + (i % 1_000_000) as i64, nanos);
    pin
}

/// The CID of [`test_pin`]`(i)`.
pub fn test_cid(i: u64) -> Cid {
    Cid::raw_sha256(&i.to_le_bytes())
}

/// [`test_pin`] for each index, sorted by CID binary form: what a full listing of exactly those
/// pins must return.
pub fn sorted_pins(indexes: impl IntoIterator<Item = u64>) -> Vec<Pin> {
    let by_key: BTreeMap<Vec<u8>, Pin> = indexes
        .into_iter()
        .map(|i| (test_cid(i).to_bytes(), test_pin(i)))
        .collect();
    by_key.into_values().collect()
}

/// Every pin of `state` in CID order, read with [`PinIter`]. Panics on a store error.
pub fn full_listing(state: &dyn State) -> Vec<Pin> {
    PinIter::new(state, 64)
        .collect::<Result<Vec<Pin>, StateError>>()
        .expect("listing the state")
}

/// A [`RedbState`] in a fresh temporary folder. Keep the folder guard alive as long as the state:
/// dropping it deletes the folder.
pub fn temp_redb_state() -> (RedbState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("creating a temporary folder");
    let state = RedbState::open(&dir.path().join("pinset.redb")).expect("opening a redb state");
    (state, dir)
}

/// One conformance check, run against a fresh store.
type Check = fn(&dyn State);

/// Runs every check below, each against a fresh, empty store from `make`.
pub fn run_conformance_suite(make: &dyn Fn() -> Box<dyn State>) {
    let checks: [(&str, Check); 16] = [
        ("empty", check_empty),
        ("add_then_get", check_add_then_get),
        ("get_many", check_get_many),
        ("add_same_cid_replaces", check_add_same_cid_replaces),
        ("rm", check_rm),
        ("commit_applies_in_order", check_commit_applies_in_order),
        ("meta", check_meta),
        ("list_page", check_list_page),
        ("pin_iter", check_pin_iter),
        ("replace_all", check_replace_all),
        ("replace_all_empty", check_replace_all_empty),
        ("replace_all_failing", check_replace_all_failing),
        ("replace_all_tombstones_changes", check_replace_all_tombstones_changes),
        ("tombstones", check_tombstones),
        ("view", check_view),
        ("unsynced_commits", check_unsynced_commits),
    ];
    for (name, check) in checks {
        tracing::info!("--- conformance check {name}");
        let state = make();
        check(state.as_ref());
    }
}

fn add(state: &dyn State, pins: impl IntoIterator<Item = Pin>) {
    let ops: Vec<StateOp> = pins.into_iter().map(StateOp::Add).collect();
    state.commit(&ops, None).expect("commit");
}

/// A new store has no pins and no meta.
pub fn check_empty(state: &dyn State) {
    let cid = test_cid(0);
    assert_eq!(state.get(&cid).unwrap(), None);
    assert!(!state.has(&cid).unwrap());
    assert_eq!(state.len().unwrap(), 0);
    assert!(state.is_empty().unwrap());
    assert_eq!(state.meta().unwrap(), None);
    assert!(state.list_page(None, 10).unwrap().is_empty());
    assert!(state.list_page(Some(&cid), 10).unwrap().is_empty());
    // A commit with nothing in it changes nothing.
    state.commit(&[], None).unwrap();
    assert!(state.is_empty().unwrap());
    assert_eq!(state.meta().unwrap(), None);
}

/// An added pin reads back equal, and only it is present.
pub fn check_add_then_get(state: &dyn State) {
    add(state, [test_pin(1)]);
    assert_eq!(state.get(&test_cid(1)).unwrap(), Some(test_pin(1)));
    assert!(state.has(&test_cid(1)).unwrap());
    assert!(!state.has(&test_cid(2)).unwrap());
    assert_eq!(state.get(&test_cid(2)).unwrap(), None);
    assert_eq!(state.len().unwrap(), 1);
    assert!(!state.is_empty().unwrap());
}

/// `get_many` answers as `get` would for each CID, in order, present or absent, repeated or not.
pub fn check_get_many(state: &dyn State) {
    assert_eq!(state.get_many(&[]).unwrap(), Vec::<Option<Pin>>::new());
    add(state, [test_pin(1), test_pin(3), test_pin(4)]);
    let cids: Vec<Cid> = [4, 2, 1, 4, 5, 3].into_iter().map(test_cid).collect();
    let expected: Vec<Option<Pin>> = cids.iter().map(|cid| state.get(cid).unwrap()).collect();
    assert_eq!(state.get_many(&cids).unwrap(), expected);
    assert_eq!(
        expected.iter().filter(|pin| pin.is_some()).count(),
        4,
        "pins 4, 1, 4 and 3 are present: {expected:?}"
    );
}

/// Adding a pin whose CID is present replaces it (no duplicate).
pub fn check_add_same_cid_replaces(state: &dyn State) {
    add(state, [test_pin(1), test_pin(2)]);
    let mut changed = test_pin(1);
    changed.options.name = "renamed".to_string();
    changed.options.replication_factor_min = 2;
    changed.options.replication_factor_max = 3;
    add(state, [changed.clone()]);
    assert_eq!(state.get(&test_cid(1)).unwrap(), Some(changed.clone()));
    assert_eq!(state.len().unwrap(), 2);
    assert_eq!(
        full_listing(state).iter().filter(|pin| pin.cid == test_cid(1)).count(),
        1
    );
}

/// Removing a present pin removes only it; removing an absent one is a no-op.
pub fn check_rm(state: &dyn State) {
    add(state, [test_pin(1), test_pin(2)]);
    state.commit(&[StateOp::Rm(test_cid(1))], None).unwrap();
    assert!(!state.has(&test_cid(1)).unwrap());
    assert_eq!(state.get(&test_cid(1)).unwrap(), None);
    assert_eq!(state.get(&test_cid(2)).unwrap(), Some(test_pin(2)));
    assert_eq!(state.len().unwrap(), 1);
    state
        .commit(&[StateOp::Rm(test_cid(1)), StateOp::Rm(test_cid(99))], None)
        .unwrap();
    assert_eq!(state.len().unwrap(), 1);
    assert_eq!(full_listing(state), vec![test_pin(2)]);
}

/// The ops of one commit apply in order.
pub fn check_commit_applies_in_order(state: &dyn State) {
    let mut second = test_pin(3);
    second.options.name = "second".to_string();
    state
        .commit(
            &[
                StateOp::Add(test_pin(1)),
                StateOp::Rm(test_cid(1)),
                StateOp::Rm(test_cid(2)),
                StateOp::Add(test_pin(2)),
                StateOp::Add(test_pin(3)),
                StateOp::Add(second.clone()),
            ],
            None,
        )
        .unwrap();
    assert!(
        !state.has(&test_cid(1)).unwrap(),
        "add then rm in one commit leaves the pin absent"
    );
    assert_eq!(
        state.get(&test_cid(2)).unwrap(),
        Some(test_pin(2)),
        "rm then add leaves it present"
    );
    assert_eq!(state.get(&test_cid(3)).unwrap(), Some(second), "the last add wins");
    assert_eq!(state.len().unwrap(), 2);
}

/// Meta is stored with a commit that gives it and kept by commits that do not.
pub fn check_meta(state: &dyn State) {
    state.commit(&[], Some(b"first")).unwrap();
    assert_eq!(state.meta().unwrap().as_deref(), Some(&b"first"[..]));
    assert!(state.is_empty().unwrap());
    add(state, [test_pin(1)]);
    assert_eq!(
        state.meta().unwrap().as_deref(),
        Some(&b"first"[..]),
        "a commit without meta keeps it"
    );
    state.commit(&[StateOp::Rm(test_cid(1))], Some(b"second")).unwrap();
    assert_eq!(state.meta().unwrap().as_deref(), Some(&b"second"[..]));
    assert!(state.is_empty().unwrap());
    // Empty meta is a value, not an absence.
    state.commit(&[], Some(b"")).unwrap();
    assert_eq!(state.meta().unwrap(), Some(Vec::new()));
}

/// An unsynced commit is visible at once, atomically, and stays after a sync and later
/// commits of either kind (what it costs in durability only a crash shows: see the simulator's
/// disk tests).
pub fn check_unsynced_commits(state: &dyn State) {
    state
        .commit_unsynced(&[StateOp::Add(test_pin(1)), StateOp::Add(test_pin(2))], Some(b"one"))
        .unwrap();
    assert_eq!(state.len().unwrap(), 2);
    assert_eq!(state.meta().unwrap().as_deref(), Some(&b"one"[..]));
    state
        .commit_unsynced(&[StateOp::Rm(test_cid(1))], Some(b"two"))
        .unwrap();
    state.sync().unwrap();
    add(state, [test_pin(3)]);
    state.commit_unsynced(&[], None).unwrap();
    assert_eq!(full_listing(state), sorted_pins([2, 3]));
    assert_eq!(state.meta().unwrap().as_deref(), Some(&b"two"[..]));
}

/// Pages follow CID byte order, respect `limit`, start strictly after `after` and end with an
/// empty page; paging visits every pin exactly once.
pub fn check_list_page(state: &dyn State) {
    // A CIDv0 (multihash first byte 0x12) sorts after every CIDv1 (first byte 0x01) in binary
    // order, unlike in text order; it checks that stores order by bytes.
    let v0: Cid = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9"
        .parse()
        .expect("valid CIDv0");
    let v0_pin = Pin::new(v0, PinOptions::default());
    // Added in reverse and in two commits so insertion order is not the answer.
    add(state, (25..50).rev().map(test_pin));
    add(
        state,
        std::iter::once(v0_pin.clone()).chain((0..25).rev().map(test_pin)),
    );

    let mut expected = sorted_pins(0..50);
    expected.push(v0_pin);
    let keys: Vec<Vec<u8>> = expected.iter().map(|pin| pin.cid.to_bytes()).collect();
    assert!(
        keys.windows(2).all(|pair| pair[0] < pair[1]),
        "expected listing must be in byte order"
    );

    assert_eq!(
        state.list_page(None, 1000).unwrap(),
        expected,
        "one big page is the whole pinset in order"
    );
    assert!(
        state.list_page(None, 0).unwrap().is_empty(),
        "limit 0 gives an empty page"
    );

    let limit = 7;
    let mut seen = Vec::new();
    let mut after: Option<Cid> = None;
    for round in 0.. {
        assert!(round <= expected.len(), "paging does not end");
        let page = state.list_page(after.as_ref(), limit).unwrap();
        assert!(page.len() <= limit, "page of {} exceeds limit {limit}", page.len());
        if page.is_empty() {
            break;
        }
        if seen.len() + limit <= expected.len() {
            assert_eq!(page.len(), limit, "only the last page may be short");
        }
        after = page.last().map(|pin| pin.cid);
        seen.extend(page);
    }
    assert_eq!(seen, expected, "paging visits every pin exactly once, in order");

    let last = expected.last().map(|pin| pin.cid);
    assert!(
        state.list_page(last.as_ref(), 10).unwrap().is_empty(),
        "nothing after the last pin"
    );
    let middle = expected[20].cid;
    assert_eq!(
        state.list_page(Some(&middle), 3).unwrap(),
        expected[21..24].to_vec(),
        "after is exclusive"
    );

    // `after` need not be present: the page starts at the first key above it.
    state.commit(&[StateOp::Rm(middle)], None).unwrap();
    assert_eq!(state.list_page(Some(&middle), 2).unwrap(), expected[21..23].to_vec());
}

/// [`PinIter`] walks a large pinset page by page, in order, once.
pub fn check_pin_iter(state: &dyn State) {
    const COUNT: u64 = 2_500;
    add(state, (0..COUNT).map(test_pin));
    assert_eq!(state.len().unwrap(), COUNT);
    let listed: Vec<Pin> = PinIter::new(state, 100).collect::<Result<_, _>>().unwrap();
    assert_eq!(listed.len() as u64, COUNT);
    assert_eq!(listed, sorted_pins(0..COUNT));
    // A page size that divides the count exactly, and one that does not.
    assert_eq!(PinIter::new(state, 2_500).count() as u64, COUNT);
    assert_eq!(PinIter::new(state, 333).count() as u64, COUNT);
}

/// `replace_all` leaves exactly the given pins and the given meta.
pub fn check_replace_all(state: &dyn State) {
    state
        .commit(
            &(0..30).map(|i| StateOp::Add(test_pin(i))).collect::<Vec<_>>(),
            Some(b"before"),
        )
        .unwrap();
    // Overlapping range: 20..30 stay, 0..20 go, 30..45 arrive.
    state
        .replace_all(&mut (20..45).map(|i| Ok(test_pin(i))), b"after")
        .unwrap();
    assert_eq!(state.len().unwrap(), 25);
    assert!(!state.has(&test_cid(0)).unwrap());
    assert_eq!(state.get(&test_cid(44)).unwrap(), Some(test_pin(44)));
    assert_eq!(full_listing(state), sorted_pins(20..45));
    assert_eq!(state.meta().unwrap().as_deref(), Some(&b"after"[..]));
    // The store keeps working normally afterwards.
    state
        .commit(&[StateOp::Add(test_pin(1)), StateOp::Rm(test_cid(20))], None)
        .unwrap();
    assert_eq!(full_listing(state), sorted_pins((21..45).chain([1])));
}

/// `replace_all` with no pins empties the store but still sets the meta.
pub fn check_replace_all_empty(state: &dyn State) {
    add(state, (0..10).map(test_pin));
    state.replace_all(&mut std::iter::empty(), b"snapshot").unwrap();
    assert!(state.is_empty().unwrap());
    assert!(state.list_page(None, 10).unwrap().is_empty());
    assert_eq!(state.meta().unwrap().as_deref(), Some(&b"snapshot"[..]));
}

/// `replace_all` whose pins fail part way (a corrupt snapshot line, a bad import line) returns
/// that error and changes nothing: neither pins nor meta.
pub fn check_replace_all_failing(state: &dyn State) {
    state
        .commit(
            &(0..10).map(|i| StateOp::Add(test_pin(i))).collect::<Vec<_>>(),
            Some(b"before"),
        )
        .unwrap();
    let mut pins = (20..30)
        .map(|i| Ok(test_pin(i)))
        .chain([Err(StateError::Corrupt("line 11".into()))])
        .chain((30..35).map(|i| Ok(test_pin(i))));
    match state.replace_all(&mut pins, b"after") {
        Err(StateError::Corrupt(why)) => assert_eq!(why, "line 11"),
        other => panic!("expected the pins' error, got {other:?}"),
    }
    assert_eq!(full_listing(state), sorted_pins(0..10));
    assert_eq!(state.meta().unwrap().as_deref(), Some(&b"before"[..]));
}

/// `replace_all` over a pinset tombstones the CIDs it removes and those whose allocations it
/// changes, and nothing else; tombstones already there stay; a failed one tombstones nothing.
pub fn check_replace_all_tombstones_changes(state: &dyn State) {
    let allocated = |i: u64, seed: u8| {
        let mut pin = test_pin(i);
        pin.allocations = vec![cluster_types::PeerId::from_ed25519_seed([seed; 32])];
        pin
    };
    add(state, (0..10).map(|i| allocated(i, 1)));
    state.commit(&[StateOp::Tombstone(test_cid(99))], None).unwrap();
    let mut failing = [Ok(allocated(3, 1)), Err(StateError::Corrupt("bad".into()))].into_iter();
    assert!(state.replace_all(&mut failing, b"failed").is_err());
    assert_eq!(state.tombstones(None, 100).unwrap(), [test_cid(99)]);
    // 0..3 go, 3..7 stay as they were, 7 and 8 move to another member, 9 stays with another
    // name, 10..12 arrive.
    let mut new = (3..7)
        .map(|i| allocated(i, 1))
        .chain([allocated(7, 2), allocated(8, 2)])
        .chain([{
            let mut renamed = allocated(9, 1);
            renamed.options.name = "renamed".into();
            renamed
        }])
        .chain((10..12).map(|i| allocated(i, 3)))
        .map(Ok);
    state.replace_all(&mut new, b"after").unwrap();
    let mut expected: Vec<Cid> = [0, 1, 2, 7, 8, 99].into_iter().map(test_cid).collect();
    expected.sort_by_key(|c| c.to_bytes());
    assert_eq!(state.tombstones(None, 100).unwrap(), expected);
    assert_eq!(state.len().unwrap(), 9);
    assert_eq!(state.get(&test_cid(9)).unwrap().unwrap().options.name, "renamed");
    assert!(!state.has(&test_cid(0)).unwrap());
}

/// A view keeps the pins and meta of its moment through later commits and a `replace_all`.
pub fn check_view(state: &dyn State) {
    state
        .commit(
            &(0..5).map(|i| StateOp::Add(test_pin(i))).collect::<Vec<_>>(),
            Some(b"five"),
        )
        .unwrap();
    let view = state.view().unwrap();
    state
        .commit(&[StateOp::Add(test_pin(7)), StateOp::Rm(test_cid(0))], Some(b"later"))
        .unwrap();
    let listed: Vec<Pin> = PinIter::of_view(view.as_ref(), 2).map(Result::unwrap).collect();
    assert_eq!(listed, sorted_pins(0..5));
    assert_eq!(view.meta().unwrap().as_deref(), Some(&b"five"[..]));
    state
        .replace_all(&mut (20..23).map(|i| Ok(test_pin(i))), b"replaced")
        .unwrap();
    assert_eq!(view.list_page(None, 100).unwrap(), sorted_pins(0..5));
    assert_eq!(full_listing(state), sorted_pins(20..23));
    drop(view);
    assert_eq!(state.view().unwrap().meta().unwrap().as_deref(), Some(&b"replaced"[..]));
}

/// Tombstones are set and cleared with commits, listed in CID order with paging, never
/// visible as pins, and kept across `replace_all`.
pub fn check_tombstones(state: &dyn State) {
    assert!(state.tombstones(None, 10).unwrap().is_empty());
    let cids: Vec<Cid> = (0..5).map(test_cid).collect();
    let ops: Vec<StateOp> = cids.iter().map(|c| StateOp::Tombstone(*c)).collect();
    state.commit(&ops, None).unwrap();
    assert!(state.is_empty().unwrap(), "tombstones are not pins");
    let mut sorted = cids.clone();
    sorted.sort_by_key(|c| c.to_bytes());
    assert_eq!(state.tombstones(None, 10).unwrap(), sorted);
    assert_eq!(state.tombstones(Some(&sorted[1]), 2).unwrap(), sorted[2..4].to_vec());
    state
        .commit(
            &[
                StateOp::ClearTombstone(sorted[0]),
                StateOp::ClearTombstone(test_cid(99)),
            ],
            None,
        )
        .unwrap();
    assert_eq!(state.tombstones(None, 10).unwrap(), sorted[1..].to_vec());
    state.replace_all(&mut [Ok(test_pin(7))].into_iter(), b"m").unwrap();
    assert_eq!(
        state.tombstones(None, 10).unwrap(),
        sorted[1..].to_vec(),
        "replace_all keeps tombstones"
    );
}

/// A [`crate::MemoryState`] on a troubled disk: its commits fail while `refuse` is set, as a
/// full disk's do, and the next one first runs what [`TroubledStore::during_next_write`] gave
/// it, as if others went on while a slow disk wrote.
#[derive(Default)]
pub struct TroubledStore {
    store: crate::MemoryState,
    /// Set: every commit and replace fails.
    pub refuse: std::sync::atomic::AtomicBool,
    during_next_write: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl TroubledStore {
    /// Runs `meanwhile` inside the next commit or replace, on its thread, before it writes.
    pub fn during_next_write(&self, meanwhile: impl FnOnce() + Send + 'static) {
        *self.during_next_write.lock().unwrap() = Some(Box::new(meanwhile));
    }

    fn check(&self) -> Result<(), StateError> {
        let meanwhile = self.during_next_write.lock().unwrap().take();
        if let Some(meanwhile) = meanwhile {
            meanwhile();
        }
        match self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
            true => Err(StateError::Io("disk full".into())),
            false => Ok(()),
        }
    }
}

impl State for TroubledStore {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_pins_are_distinct_and_deterministic() {
        assert_eq!(test_pin(5), test_pin(5));
        let cids: std::collections::BTreeSet<Vec<u8>> = (0..1000).map(|i| test_cid(i).to_bytes()).collect();
        assert_eq!(cids.len(), 1000);
        assert_eq!(test_pin(5).cid, test_cid(5));
    }
}
