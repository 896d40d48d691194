//! Model check: random commit sequences leave [`RedbState`], and [`BufferedState`] over it, exactly
//! like [`MemoryState`].

use proptest::prelude::*;

use crate::testing::{full_listing, test_cid, test_pin, TroubledStore};
use std::sync::Arc;

use crate::{BufferedState, MemoryState, RedbState, State, StateOp};

/// Small CID space so adds, replaces and removes of the same pin collide often.
const CID_SPACE: u64 = 12;

#[derive(Debug, Clone)]
enum Op {
    /// Add pin `index`, named with `version` so a re-add is a visible replacement.
    Add {
        index: u64,
        version: u8,
    },
    Rm {
        index: u64,
    },
    Tombstone {
        index: u64,
    },
    ClearTombstone {
        index: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..CID_SPACE, any::<u8>()).prop_map(|(index, version)| Op::Add { index, version }),
        (0..CID_SPACE).prop_map(|index| Op::Rm { index }),
        (0..CID_SPACE).prop_map(|index| Op::Tombstone { index }),
        (0..CID_SPACE).prop_map(|index| Op::ClearTombstone { index }),
    ]
}

fn commit() -> impl Strategy<Value = (Vec<Op>, Option<Vec<u8>>)> {
    (
        prop::collection::vec(op(), 0..6),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..8)),
    )
}

fn to_state_op(op: &Op) -> StateOp {
    match op {
        Op::Add { index, version } => {
            let mut pin = test_pin(*index);
            pin.options.name = format!("pin-{index}-v{version}");
            StateOp::Add(pin)
        }
        Op::Rm { index } => StateOp::Rm(test_cid(*index)),
        Op::Tombstone { index } => StateOp::Tombstone(test_cid(*index)),
        Op::ClearTombstone { index } => StateOp::ClearTombstone(test_cid(*index)),
    }
}

proptest! {
    // Each commit fsyncs, so fewer cases than the default keep the test quick.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn redb_state_matches_memory_state(commits in prop::collection::vec(commit(), 1..12)) {
        let dir = tempfile::tempdir().unwrap();
        let redb = RedbState::open(&dir.path().join("pinset.redb")).unwrap();
        let memory = MemoryState::new();
        for (ops, meta) in &commits {
            let ops: Vec<StateOp> = ops.iter().map(to_state_op).collect();
            memory.commit(&ops, meta.as_deref()).unwrap();
            redb.commit(&ops, meta.as_deref()).unwrap();
            prop_assert_eq!(redb.len().unwrap(), memory.len().unwrap());
        }
        prop_assert_eq!(full_listing(&redb), full_listing(&memory));
        prop_assert_eq!(redb.meta().unwrap(), memory.meta().unwrap());
        for index in 0..CID_SPACE {
            prop_assert_eq!(redb.get(&test_cid(index)).unwrap(), memory.get(&test_cid(index)).unwrap());
        }
    }

    /// Commits of three kinds (durable, unsynced and owned, unsynced then a sync) through a buffer over
    /// redb read the same as the model after each, in pages of every size, and reach the store.
    #[test]
    fn buffered_redb_state_matches_memory_state(
        commits in prop::collection::vec((commit(), 0..3u8), 1..16),
        page in 1..5usize,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let redb = Arc::new(RedbState::open(&dir.path().join("pinset.redb")).unwrap());
        let buffered = BufferedState::new(redb.clone());
        let memory = MemoryState::new();
        for ((ops, meta), kind) in &commits {
            let ops: Vec<StateOp> = ops.iter().map(to_state_op).collect();
            memory.commit(&ops, meta.as_deref()).unwrap();
            match kind {
                0 => buffered.commit(&ops, meta.as_deref()).unwrap(),
                1 => buffered.commit_unsynced_owned(ops.clone(), meta.as_deref()).unwrap(),
                _ => {
                    buffered.commit_unsynced(&ops, meta.as_deref()).unwrap();
                    buffered.sync().unwrap();
                }
            }
            prop_assert_eq!(buffered.len().unwrap(), memory.len().unwrap());
            let paged: Vec<_> = crate::PinIter::new(&buffered, page).map(Result::unwrap).collect();
            prop_assert_eq!(paged, full_listing(&memory));
            prop_assert_eq!(buffered.tombstones(None, 100).unwrap(), memory.tombstones(None, 100).unwrap());
            prop_assert_eq!(buffered.meta().unwrap(), memory.meta().unwrap());
        }
        for index in 0..CID_SPACE {
            prop_assert_eq!(buffered.get(&test_cid(index)).unwrap(), memory.get(&test_cid(index)).unwrap());
        }
        buffered.sync().unwrap();
        prop_assert_eq!(full_listing(redb.as_ref()), full_listing(&memory));
        prop_assert_eq!(redb.tombstones(None, 100).unwrap(), memory.tombstones(None, 100).unwrap());
    }

    /// The same over a store that refuses some writes, as a full disk does: a refused sync
    /// loses nothing, a refused durable commit changes nothing, and what the buffer holds
    /// reaches the store at the next sync that works.
    #[test]
    fn buffered_state_over_a_refusing_store_matches_memory_state(
        commits in prop::collection::vec((commit(), 0..5u8), 1..24),
        page in 1..5usize,
    ) {
        use std::sync::atomic::Ordering;
        let store = Arc::new(TroubledStore::default());
        let buffered = BufferedState::new(store.clone());
        let memory = MemoryState::new();
        for ((ops, meta), kind) in &commits {
            let ops: Vec<StateOp> = ops.iter().map(to_state_op).collect();
            match kind {
                0 => buffered.commit(&ops, meta.as_deref()).unwrap(),
                1 => buffered.commit_unsynced(&ops, meta.as_deref()).unwrap(),
                2 => {
                    buffered.commit_unsynced(&ops, meta.as_deref()).unwrap();
                    buffered.sync().unwrap();
                }
                3 => {
                    buffered.commit_unsynced(&ops, meta.as_deref()).unwrap();
                    store.refuse.store(true, Ordering::Relaxed);
                    // Refused unless nothing was buffered (the store then has nothing to write).
                    let _ = buffered.sync();
                    store.refuse.store(false, Ordering::Relaxed);
                }
                _ => {
                    store.refuse.store(true, Ordering::Relaxed);
                    prop_assert!(buffered.commit(&ops, meta.as_deref()).is_err());
                    store.refuse.store(false, Ordering::Relaxed);
                    continue;
                }
            }
            memory.commit(&ops, meta.as_deref()).unwrap();
            prop_assert_eq!(buffered.len().unwrap(), memory.len().unwrap());
            let paged: Vec<_> = crate::PinIter::new(&buffered, page).map(Result::unwrap).collect();
            prop_assert_eq!(paged, full_listing(&memory));
            prop_assert_eq!(buffered.tombstones(None, 100).unwrap(), memory.tombstones(None, 100).unwrap());
            prop_assert_eq!(buffered.meta().unwrap(), memory.meta().unwrap());
        }
        buffered.sync().unwrap();
        prop_assert_eq!(full_listing(store.as_ref()), full_listing(&memory));
        prop_assert_eq!(store.tombstones(None, 100).unwrap(), memory.tombstones(None, 100).unwrap());
        prop_assert_eq!(store.meta().unwrap(), memory.meta().unwrap());
    }
}
