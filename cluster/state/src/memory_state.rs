//! [`MemoryState`]: the pinset held in memory, for tests, the simulator and as the reference
//! behaviour the durable store is checked against.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use cluster_types::{Cid, Pin};

use crate::{State, StateError, StateOp, StateView};

/// A pinset in a `BTreeMap` keyed by the CID's binary form, so iteration order is the order
/// [`State::list_page`] promises. Nothing survives a drop.
///
/// Pins and meta sit behind one lock so that a commit is atomic for readers: they see all of
/// it or none of it.
pub struct MemoryState {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    pins: BTreeMap<Vec<u8>, Pin>,
    meta: Option<Vec<u8>>,
    tombstones: BTreeMap<Vec<u8>, Cid>,
}

impl MemoryState {
    /// An empty pinset with no meta.
    pub fn new() -> MemoryState {
        MemoryState {
            inner: RwLock::new(Inner::default()),
        }
    }

    // A poisoned lock means a thread panicked while holding it; nothing we do under the write
    // lock can panic half-way through a commit, but we still refuse to read a state we cannot
    // vouch for rather than propagate the panic.
    fn read(&self) -> Result<RwLockReadGuard<'_, Inner>, StateError> {
        self.inner
            .read()
            .map_err(|_| StateError::Storage("in-memory state lock poisoned".into()))
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Inner>, StateError> {
        self.inner
            .write()
            .map_err(|_| StateError::Storage("in-memory state lock poisoned".into()))
    }
}

impl Default for MemoryState {
    fn default() -> Self {
        MemoryState::new()
    }
}

impl fmt::Debug for MemoryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pins = self.inner.read().map(|inner| inner.pins.len()).ok();
        f.debug_struct("MemoryState").field("pins", &pins).finish()
    }
}

impl State for MemoryState {
    fn get(&self, cid: &Cid) -> Result<Option<Pin>, StateError> {
        Ok(self.read()?.pins.get(&cid.to_bytes()).cloned())
    }

    fn has(&self, cid: &Cid) -> Result<bool, StateError> {
        Ok(self.read()?.pins.contains_key(&cid.to_bytes()))
    }

    fn len(&self) -> Result<u64, StateError> {
        Ok(self.read()?.pins.len() as u64)
    }

    fn list_page(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Pin>, StateError> {
        let after_key = after.map(Cid::to_bytes);
        let start = match &after_key {
            Some(key) => Bound::Excluded(key.as_slice()),
            None => Bound::Unbounded,
        };
        let inner = self.read()?;
        let page = inner
            .pins
            .range::<[u8], _>((start, Bound::Unbounded))
            .take(limit)
            .map(|(_, pin)| pin.clone());
        Ok(page.collect())
    }

    fn commit(&self, ops: &[StateOp], meta: Option<&[u8]>) -> Result<(), StateError> {
        // Keys are computed before taking the lock to keep the critical section short.
        let keyed: Vec<(Vec<u8>, &StateOp)> = ops
            .iter()
            .map(|op| match op {
                StateOp::Add(pin) => (pin.cid.to_bytes(), op),
                StateOp::Rm(cid) | StateOp::Tombstone(cid) | StateOp::ClearTombstone(cid) => (cid.to_bytes(), op),
            })
            .collect();
        let mut inner = self.write()?;
        for (key, op) in keyed {
            match op {
                StateOp::Add(pin) => {
                    inner.pins.insert(key, pin.clone());
                }
                StateOp::Rm(_) => {
                    inner.pins.remove(&key);
                }
                StateOp::Tombstone(cid) => {
                    inner.tombstones.insert(key, *cid);
                }
                StateOp::ClearTombstone(_) => {
                    inner.tombstones.remove(&key);
                }
            }
        }
        if let Some(meta) = meta {
            inner.meta = Some(meta.to_vec());
        }
        Ok(())
    }

    fn meta(&self) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.read()?.meta.clone())
    }

    fn replace_all(
        &self,
        pins: &mut dyn Iterator<Item = Result<Pin, StateError>>,
        meta: &[u8],
    ) -> Result<(), StateError> {
        // The new map is built outside the lock (the iterator may be slow, e.g. a snapshot being
        // received) and swapped in at once, so readers never see a half-installed pinset.
        let fresh: BTreeMap<Vec<u8>, Pin> = pins
            .map(|pin| pin.map(|pin| (pin.cid.to_bytes(), pin)))
            .collect::<Result<_, _>>()?;
        let mut inner = self.write()?;
        let changed: Vec<(Vec<u8>, Cid)> = inner
            .pins
            .iter()
            .filter(|(key, old)| {
                fresh
                    .get(*key)
                    .is_none_or(|new| new.allocations != old.allocations || new.is_everywhere() != old.is_everywhere())
            })
            .map(|(key, old)| (key.clone(), old.cid))
            .collect();
        inner.tombstones.extend(changed);
        inner.pins = fresh;
        inner.meta = Some(meta.to_vec());
        Ok(())
    }

    fn view(&self) -> Result<Box<dyn StateView>, StateError> {
        // A copy: this store serves tests and small pinsets.
        let inner = self.read()?;
        let copy = MemoryState::new();
        {
            let mut copied = copy.write()?;
            copied.pins = inner.pins.clone();
            copied.meta = inner.meta.clone();
        }
        Ok(Box::new(MemoryView(copy)))
    }

    fn tombstones(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Cid>, StateError> {
        let inner = self.read()?;
        let start = match after {
            Some(cid) => std::ops::Bound::Excluded(cid.to_bytes()),
            None => std::ops::Bound::Unbounded,
        };
        Ok(inner
            .tombstones
            .range((start, std::ops::Bound::Unbounded))
            .take(limit)
            .map(|(_, cid)| *cid)
            .collect())
    }
}

/// A [`MemoryState::view`]: a copy.
struct MemoryView(MemoryState);

impl StateView for MemoryView {
    fn meta(&self) -> Result<Option<Vec<u8>>, StateError> {
        self.0.meta()
    }

    fn list_page(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Pin>, StateError> {
        self.0.list_page(after, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn memory_state_passes_the_conformance_suite() {
        testing::run_conformance_suite(&|| Box::new(MemoryState::new()));
    }

    #[test]
    fn default_is_empty_without_meta() {
        let state = MemoryState::default();
        assert!(state.is_empty().unwrap());
        assert_eq!(state.meta().unwrap(), None);
        assert!(format!("{state:?}").contains("MemoryState"));
    }
}
