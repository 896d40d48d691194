//! The pinset [`State`]: the shared set of [`Pin`]s that consensus maintains, one per member.
//!
//! Owns: the `State` trait, the [`Disk`] seam its files are opened through, the in-memory store ([`MemoryState`]), the durable redb store
//! ([`RedbState`]) and the conformance suite every store must pass (module `testing`, for this crate's tests
//! and behind the `testing` feature).
//! Does not own: deciding what goes in (consensus applies committed log entries here).
//!
//! Stores also keep one small opaque blob, the consensus *applied meta* (last applied log id
//! and membership), written in the same atomic commit as the pins it describes, so that a
//! member that crashes recovers a state and an applied index that agree.
#![deny(missing_docs)]

mod buffered;
mod disk;
#[cfg(test)]
mod equivalence_test;
mod error;
mod key_filter;
mod memory_state;
mod redb_state;
mod reopening;
mod stored_pin;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use buffered::BufferedState;
pub use disk::{Disk, DiskFile, MemoryDisk, RealDisk};
pub use error::StateError;
pub use memory_state::MemoryState;
pub use redb_state::RedbState;
pub use reopening::{IoFailure, ReopeningDatabase};

use cluster_types::{Cid, Pin};

/// One change to the pinset.
// A `Pin` is large next to a `Cid`, but ops are short-lived (built per log entry, applied, dropped)
// and a `Box` would cost one allocation per pin on the hot apply path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateOp {
    /// Add the pin, or replace the pin with the same CID.
    Add(Pin),
    /// Remove the pin with this CID (no-op when absent).
    Rm(Cid),
    /// Remember that this member's daemon may still hold `cid` although the state no longer
    /// allocates it here (an unpin, or allocations that moved). Local to the member: not part
    /// of the pinset, not in snapshots, untouched by `replace_all`.
    Tombstone(Cid),
    /// The daemon no longer holds `cid` (or should again): forget its tombstone.
    ClearTombstone(Cid),
}

/// The pinset of one member.
///
/// To ensure correctness:
/// - [`State::commit`] applies all its ops and its meta atomically: after a crash either all are
///   visible or none is. Durable stores make the commit durable (fsync) before returning.
/// - Pins are ordered by the CID's binary form ([`Cid::to_bytes`]); [`State::list_page`] walks that
///   order, so paging with the last CID seen visits every pin exactly once while no writes happen.
/// - Reads never block on a concurrent commit for longer than that commit takes.
pub trait State: Send + Sync + 'static {
    /// The pin with this CID, if present.
    fn get(&self, cid: &Cid) -> Result<Option<Pin>, StateError>;

    /// The pins with these CIDs, in the same order (`None` where absent), read together: a
    /// store may read them all in one transaction (the state machine reads every pin a run of
    /// entries names before applying it).
    fn get_many(&self, cids: &[Cid]) -> Result<Vec<Option<Pin>>, StateError> {
        cids.iter().map(|cid| self.get(cid)).collect()
    }

    /// Whether the CID is in the pinset.
    fn has(&self, cid: &Cid) -> Result<bool, StateError> {
        Ok(self.get(cid)?.is_some())
    }

    /// Number of pins.
    fn len(&self) -> Result<u64, StateError>;

    /// Whether the pinset is empty.
    fn is_empty(&self) -> Result<bool, StateError> {
        Ok(self.len()? == 0)
    }

    /// Up to `limit` pins in CID order, starting strictly after `after` (from the start if `None`).
    /// An empty page means the end.
    fn list_page(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Pin>, StateError>;

    /// Applies `ops` in order and, if given, replaces the applied meta; atomically and durably.
    fn commit(&self, ops: &[StateOp], meta: Option<&[u8]>) -> Result<(), StateError>;

    /// As [`State::commit`], atomically but not yet durably: a crash may lose this commit and
    /// the unsynced ones after it (whole commits, the newest first), never a part of one. The
    /// next [`State::commit`] or [`State::sync`] makes it durable. Consensus applies with it,
    /// since its log already holds every entry durably and replays what a crash lost.
    fn commit_unsynced(&self, ops: &[StateOp], meta: Option<&[u8]>) -> Result<(), StateError> {
        self.commit(ops, meta)
    }

    /// [`State::commit_unsynced`] of ops the caller gives up: a store that keeps them (the
    /// buffer) takes their pins instead of copying them.
    fn commit_unsynced_owned(&self, ops: Vec<StateOp>, meta: Option<&[u8]>) -> Result<(), StateError> {
        self.commit_unsynced(&ops, meta)
    }

    /// Makes every commit so far durable.
    fn sync(&self) -> Result<(), StateError> {
        Ok(())
    }

    /// The applied meta last committed, if any.
    fn meta(&self) -> Result<Option<Vec<u8>>, StateError>;

    /// How many times the store was opened again after an I/O failure (see
    /// [`ReopeningDatabase`]). Each time, the commits not yet synced may be lost, whoever made
    /// the failed one: consensus watches it to apply those again from its log. A store that
    /// never loses a commit answers 0.
    fn reopens(&self) -> u64 {
        0
    }

    /// Replaces the whole pinset and the meta, atomically (installing a snapshot, importing a
    /// pinset). Tombstones are kept, and every CID of the old pinset that the new one lacks, or
    /// holds with other allocations, gets one: a member may hold it on its daemon though no
    /// apply told it to let go (a snapshot says nothing of what changed). The pins are read as
    /// they are stored (a snapshot or an import file is never whole in memory); the first `Err`
    /// among them is returned and nothing changes.
    fn replace_all(
        &self,
        pins: &mut dyn Iterator<Item = Result<Pin, StateError>>,
        meta: &[u8],
    ) -> Result<(), StateError>;

    /// Up to `limit` tombstoned CIDs, in CID order, starting strictly after `after`.
    fn tombstones(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Cid>, StateError>;

    /// A consistent read of the pins and the meta as they are now, unchanged by later commits
    /// (a Raft snapshot's body must hold exactly the applies its meta names).
    fn view(&self) -> Result<Box<dyn StateView>, StateError>;
}

/// What a [`State`] held when [`State::view`] was called.
pub trait StateView: Send + Sync {
    /// The applied meta of the view.
    fn meta(&self) -> Result<Option<Vec<u8>>, StateError>;

    /// As [`State::list_page`], over the view.
    fn list_page(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Pin>, StateError>;
}

/// Reads one page of pins after a CID (a store's or a view's `list_page`).
type PageReader<'a> = Box<dyn Fn(Option<&Cid>, usize) -> Result<Vec<Pin>, StateError> + Send + Sync + 'a>;

/// Iterates over every pin of a state page by page (constant memory), for exports and snapshots.
pub struct PinIter<'a> {
    pages: PageReader<'a>,
    page: std::vec::IntoIter<Pin>,
    last: Option<Cid>,
    page_size: usize,
    done: bool,
}

impl<'a> PinIter<'a> {
    /// Starts at the first pin; `page_size` pins are read per store access.
    pub fn new(state: &'a dyn State, page_size: usize) -> PinIter<'a> {
        assert!(page_size > 0, "page_size must be positive");
        PinIter::over(Box::new(move |after, limit| state.list_page(after, limit)), page_size)
    }

    /// [`PinIter::new`] over a [`StateView`].
    pub fn of_view(view: &'a dyn StateView, page_size: usize) -> PinIter<'a> {
        PinIter::over(Box::new(move |after, limit| view.list_page(after, limit)), page_size)
    }

    fn over(pages: PageReader<'a>, page_size: usize) -> PinIter<'a> {
        assert!(page_size > 0, "page_size must be positive");
        PinIter {
            pages,
            page: Vec::new().into_iter(),
            last: None,
            page_size,
            done: false,
        }
    }
}

impl Iterator for PinIter<'_> {
    type Item = Result<Pin, StateError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(pin) = self.page.next() {
                self.last = Some(pin.cid);
                return Some(Ok(pin));
            }
            if self.done {
                return None;
            }
            match (self.pages)(self.last.as_ref(), self.page_size) {
                Ok(page) => {
                    if page.len() < self.page_size {
                        self.done = true;
                    }
                    if page.is_empty() {
                        return None;
                    }
                    self.page = page.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
