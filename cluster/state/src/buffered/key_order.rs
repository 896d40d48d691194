//! A buffer's keys in the store's order (the CID's binary form), kept unsorted as commits add
//! them and sorted when a listing or the sync's write asks.

use std::sync::Arc;

use cluster_types::Cid;

/// Keys (a CID's binary form) and their CIDs, in key order.
pub(super) type SortedKeys = Vec<(Box<[u8]>, Cid)>;

/// A buffer's keys in the store's order, sorted only when asked: a tree kept in order on every
/// new key was most of what a buffered commit cost (4.7 % of a loaded follower's CPU), and only
/// listings and the sync's write read the order.
#[derive(Default, Clone)]
pub(super) struct KeyOrder {
    /// Shared with the listings reading it; copied only when one still holds it as new keys
    /// merge in.
    pub(super) sorted: Arc<SortedKeys>,
    /// Keys not in `sorted` yet, as they came.
    pub(super) added: Vec<Cid>,
}

impl KeyOrder {
    /// Every key in order: the added ones sorted and merged in.
    pub(super) fn sorted(&mut self) -> Arc<SortedKeys> {
        if !self.added.is_empty() {
            let mut added: SortedKeys = self
                .added
                .drain(..)
                .map(|cid| (cid.to_bytes().into_boxed_slice(), cid))
                .collect();
            added.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let sorted = Arc::make_mut(&mut self.sorted);
            *sorted = merge_sorted(std::mem::take(sorted), added);
        }
        self.sorted.clone()
    }
}

/// Two runs in key order (no key in both) as one.
fn merge_sorted(older: SortedKeys, newer: SortedKeys) -> SortedKeys {
    if older.is_empty() {
        return newer;
    }
    let mut merged = Vec::with_capacity(older.len() + newer.len());
    let mut older = older.into_iter().peekable();
    let mut newer = newer.into_iter().peekable();
    loop {
        let next = match (older.peek(), newer.peek()) {
            (Some(o), Some(n)) if o.0 < n.0 => older.next(),
            (Some(_), Some(_)) => newer.next(),
            (Some(_), None) => older.next(),
            (None, _) => newer.next(),
        };
        match next {
            Some(key) => merged.push(key),
            None => return merged,
        }
    }
}

/// The order behind a lock nobody panics under (its work is sorting and copying).
pub(super) fn key_order<G: std::ops::DerefMut<Target = KeyOrder>>(locked: std::sync::LockResult<G>) -> G {
    locked.unwrap_or_else(std::sync::PoisonError::into_inner)
}
