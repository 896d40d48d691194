//! The Raft state machine: applies committed [`Command`]s to a [`State`] and tells an
//! [`ApplyObserver`] (the tracker) what changed. What each command does to the pinset is
//! decided in `state_machine/apply.rs`; this file owns turns, syncs, the meta and snapshots.
//!
//! The last applied log id and the membership are stored in the State's meta blob, in the same
//! atomic commit as the pins of the batch, so after a crash state and applied index agree and
//! openraft re-applies exactly the entries after it.
//!
//! A snapshot is the store itself: building one syncs the store and keeps only its meta
//! ([`crate::snapshot_file`]). When openraft sends one, its body is written from one consistent
//! read of the store ([`State::view`]) under a meta naming exactly the applies that read holds
//! (at or after the one built), so a member that installs it holds what the sender held at that
//! index, never applies beyond it. The body is a line of applied meta, then one line per pin:
//! the base64 of its binary form ([`pin_codec`]; JSON lines of earlier versions are still read;
//! written and read in `state_machine/snapshot_body.rs`).
//! It is sent and received in chunks and installed from the file as it is read: a snapshot is
//! never whole in memory, nor kept on disk beside the pinset. Bodies kept by earlier versions
//! were *fuzzy* (pins read while applies went on); every command sets or removes one key, or
//! does so only if it still holds what it read, so replaying the entries after such a
//! snapshot's index still ends in the leader's state.
//!
//! A read or write the disk refuses (it is full) is retried until it works, as in the log
//! store: openraft would otherwise stop for good (see [`StorageHealth`]).
//!
//! Applies commit without an fsync of their own ([`State::commit_unsynced`]): the log holds
//! every entry durably, and a crash only means openraft applies again what the state lost. The
//! state is synced every [`SYNC_EVERY_OPS`] changes, in the background
//! (`state_machine/background_sync.rs`), and before a snapshot is built, so the log is never
//! purged past what the state holds durably. A store that loses unsynced applies when a write
//! fails (the database is opened again from its last durable commit; the buffered store in
//! front of it does not lose them) has them applied again from the log before anything else;
//! when another writer's commit (the tracker's) failed, `state_repair` applies them again as
//! soon as the store reports the reopen, rather than at the next entry.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use cluster_state::{IoFailure, PinIter, State, StateError, StateOp, StateView};
use cluster_types::{pin_codec, Cid, Pin};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    CommittedLeaderId, EntryPayload, LogId, Membership, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::snapshot_file::{SnapshotFile, SnapshotFolder, RECEIVING_FILE};
use crate::{Command, CommandResponse, LogStore, MemberNode, NodeId, StorageHealth, TypeConfig};

/// Changes applied without an fsync before the state is synced. A sync writes each B-tree leaf
/// its random CIDs touch once, so more changes a sync write fewer leaves each: with 4,096, a
/// pinset of 300 k pins took 0.84 page writes a change and the sync was a third of a loaded
/// follower's CPU. A crash applies at most this many changes again from the log.
#[cfg(not(madsim))]
pub const SYNC_EVERY_OPS: usize = 32_768;
/// Small in the simulator, whose workloads are: syncs (and their failures on a full disk)
/// then happen beside the applies in every scenario.
#[cfg(madsim)]
pub const SYNC_EVERY_OPS: usize = 64;

/// How [`StorageHealth`] names the pinset store and the snapshot file.
const STORE: &str = "pinset";
const SNAPSHOT_STORE: &str = "raft snapshot";

mod apply;
mod background_sync;

pub(crate) use background_sync::BackgroundSync;
mod snapshot_body;
use apply::Pending;
use snapshot_body::{pin_of_snapshot_line, SnapshotWriteError};

/// One change made to the pinset by an applied entry.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppliedChange {
    /// A pin was added or replaced.
    Pinned {
        /// The pin as now in the state.
        pin: Pin,
        /// The pin it replaced, if any.
        previous: Option<Pin>,
    },
    /// A pin was removed.
    Unpinned {
        /// The removed pin.
        pin: Pin,
    },
}

/// Told about every change after it is durable in the state.
///
/// To ensure correctness: implementations must not block or await (they run inside the state
/// machine); they enqueue work and return.
pub trait ApplyObserver: Send + Sync + 'static {
    /// Changes applied, in log order.
    fn applied(&self, changes: &[AppliedChange]);
    /// A snapshot replaced the whole state; the observer should reconcile from scratch.
    fn snapshot_installed(&self);
}

/// What the state machine stores beside the pins.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppliedMeta {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, MemberNode>,
}

/// The applied meta as stored, and as parsed.
type CachedMeta = (Vec<u8>, AppliedMeta);

/// The index of the last entry applied to `state`, read from the state itself (openraft's
/// metrics report it a moment later, after the apply returns).
pub fn applied_index_in(state: &dyn State) -> Option<u64> {
    let bytes = state.meta().ok()??;
    let meta: AppliedMeta = serde_json::from_slice(&bytes).ok()?;
    meta.last_applied.map(|log_id| log_id.index)
}

/// The members of the cluster the pinset in `state` was last applied in; none if it never was.
pub fn applied_members(state: &dyn State) -> Result<Vec<MemberNode>, StateError> {
    Ok(applied_meta_of(state)?
        .membership
        .membership()
        .nodes()
        .map(|(_, node)| node.clone())
        .collect())
}

fn applied_meta_of(state: &dyn State) -> Result<AppliedMeta, StateError> {
    parse_applied_meta(state.meta()?)
}

fn parse_applied_meta(bytes: Option<Vec<u8>>) -> Result<AppliedMeta, StateError> {
    match bytes {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt(format!("applied meta: {e}"))),
        None => Ok(AppliedMeta::default()),
    }
}

/// Replaces the pinset of a stopped member with `pins` (`state import`), as if the member had
/// installed a snapshot taken at a cluster's first log entry, and writes that snapshot's meta
/// into `raft_dir` (an empty folder that becomes the member's Raft folder; the store is the
/// body). Members that import the same pins start the same cluster from it. The
/// cluster is the one `state` was last applied in (its members kept, voters and learners), or
/// `fresh`, all voters, for a member that never was in one. A pin that fails to read fails the
/// import and the pinset is unchanged. Returns the members.
pub fn import_pinset(
    state: &dyn State,
    pins: &mut dyn Iterator<Item = Result<Pin, StateError>>,
    fresh: BTreeMap<NodeId, MemberNode>,
    raft_dir: &Path,
) -> Result<Vec<MemberNode>, StateError> {
    let existing = applied_meta_of(state)?;
    let membership = match existing.membership.membership().nodes().next() {
        Some(_) => existing.membership.membership().clone(),
        None => Membership::new(vec![fresh.keys().copied().collect()], fresh),
    };
    // The log id `Raft::initialize` gives a new cluster's first entry.
    let first = LogId::new(CommittedLeaderId::new(0, 0), 0);
    let meta = AppliedMeta {
        last_applied: Some(first),
        membership: StoredMembership::new(Some(first), membership.clone()),
    };
    let meta_bytes =
        serde_json::to_vec(&meta).map_err(|e| StateError::Storage(format!("encoding the applied meta: {e}")))?;
    state.replace_all(pins, &meta_bytes)?;
    state.sync()?;
    let snapshot = SnapshotMeta {
        last_log_id: Some(first),
        last_membership: meta.membership,
        snapshot_id: "imported".into(),
    };
    SnapshotFolder::new(raft_dir)
        .keep_deferred(&snapshot)
        .map_err(|e| StateError::Io(format!("writing the snapshot in {}: {e}", raft_dir.display())))?;
    Ok(membership.nodes().map(|(_, node)| node.clone()).collect())
}

/// The Raft state machine over a pinset store. Cheap to clone.
#[derive(Clone)]
pub struct PinsetStateMachine {
    state: Arc<dyn State>,
    observer: Arc<dyn ApplyObserver>,
    /// Holds the current snapshot, read when openraft sends it (never kept in memory: it is as
    /// large as the pinset).
    snapshots: SnapshotFolder,
    health: StorageHealth,
    /// Where applies lost by a failed sync are read again; without it, applies are synced.
    log: Option<LogStore>,
    /// Shared by every clone: openraft's applies, its snapshot installs and the repair of
    /// applies lost to another writer's failed commit ([`PinsetStateMachine::repair_lost_applies`])
    /// take turns through it.
    turn: Arc<cluster_rt::tokio::sync::Mutex<ApplyTurn>>,
    /// The applied meta last read or written, with its bytes: every apply reads the meta twice
    /// and it is the same bytes almost always, so a compare replaces parsing it.
    meta_cache: Arc<Mutex<Option<CachedMeta>>>,
    /// The periodic sync, run beside the applies.
    background_sync: BackgroundSync,
    /// Moved at the end of each apply and snapshot install; read by the writes waiting for
    /// their entry.
    applied: AppliedIndex,
}

/// The index of the last entry applied to the pinset (reads see it, the tracker was told),
/// shared with the writers that wait for their entry: openraft answers a write once it is
/// applied but reports that in its metrics only later, and waiting on those clones them and
/// sets a timer every write.
#[derive(Clone, Default)]
pub(crate) struct AppliedIndex(Arc<std::sync::atomic::AtomicU64>);

impl AppliedIndex {
    /// The index plus one: 0 before anything is known applied.
    fn advance(&self, applied: Option<LogId<NodeId>>) {
        if let Some(log_id) = applied {
            self.0.fetch_max(log_id.index + 1, std::sync::atomic::Ordering::Release);
        }
    }

    /// Whether the entry at `index` is applied here. `false` may be stale: ask openraft then.
    pub(crate) fn reached(&self, index: u64) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire) > index
    }
}

fn sm_write_error(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&std::io::Error::other(e.to_string())).into()
}

fn sm_read_error(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&std::io::Error::other(e.to_string())).into()
}

fn snapshot_error(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, &std::io::Error::other(e.to_string())).into()
}

impl PinsetStateMachine {
    /// A state machine over `state`, keeping its latest snapshot in `snapshot_dir`; its write
    /// failures are recorded in `health`.
    pub fn new(
        state: Arc<dyn State>,
        observer: Arc<dyn ApplyObserver>,
        snapshot_dir: &Path,
        health: StorageHealth,
    ) -> PinsetStateMachine {
        PinsetStateMachine {
            state,
            observer,
            snapshots: SnapshotFolder::new(snapshot_dir),
            health,
            log: None,
            turn: Arc::default(),
            meta_cache: Arc::default(),
            background_sync: BackgroundSync::default(),
            applied: AppliedIndex::default(),
        }
    }

    /// Applies without an fsync each, replaying from `log` what a failed sync loses.
    pub fn with_log(mut self, log: LogStore) -> PinsetStateMachine {
        self.log = Some(log);
        self
    }

    /// Applies again, from the log, entries up to `through` that the state lost (a sync the
    /// disk refused reopened it at its last durable commit), and syncs them; the tracker then
    /// reconciles.
    async fn catch_up(&mut self, turn: &mut ApplyTurn, through: u64) -> Result<(), StorageError<NodeId>> {
        loop {
            let applied = self.read_state(|| self.applied_meta()).await?.last_applied;
            let from = match applied {
                Some(log_id) if log_id.index >= through => return Ok(()),
                Some(log_id) => log_id.index + 1,
                None => 0,
            };
            let Some(log) = self.log.as_mut() else {
                return Err(sm_write_error(format!(
                    "the pinset lost the entries {from}..={through} and has no log to apply them from"
                )));
            };
            let missing = openraft::RaftLogReader::try_get_log_entries(log, from..=through).await?;
            if missing.first().map(|e| e.log_id.index) != Some(from) || missing.len() as u64 != through - from + 1 {
                return Err(sm_write_error(format!(
                    "the pinset lost the entries {from}..={through} and the log no longer holds them all"
                )));
            }
            tracing::warn!(
                "the pinset lost {} applied entries to a failed write; applying them again from the raft log",
                missing.len()
            );
            self.write_state(|| self.apply_entries(&missing, false)).await?;
            self.observer.snapshot_installed();
            // A sync that fails again loses them again: the next turn applies them again.
            self.write_state(|| self.state.sync()).await?;
            turn.unsynced_ops = 0;
            turn.unsynced_cids.clear();
        }
    }

    /// The index of the last entry applied, as it moves (shared by its clones).
    pub(crate) fn applied_index(&self) -> AppliedIndex {
        self.applied.clone()
    }

    /// Its periodic sync (shared by its clones).
    pub(crate) fn background_sync(&self) -> BackgroundSync {
        self.background_sync.clone()
    }

    /// How many times the pinset's store was opened again after a failed commit (see
    /// [`State::reopens`]).
    pub(crate) fn store_reopens(&self) -> u64 {
        self.state.reopens()
    }

    /// Applies again, from the log, what the pinset lost when its store was opened again at
    /// its last durable commit after another writer's commit failed (the tracker's, on a full
    /// disk). An apply repairs its own failures, and catches up before it applies, but an idle
    /// cluster may send no entry for hours: meanwhile the pinset would lack pins it has
    /// committed, and the tracker would not pin them.
    pub(crate) async fn repair_lost_applies(&mut self) -> Result<(), StorageError<NodeId>> {
        let turn_lock = self.turn.clone();
        let mut turn = turn_lock.lock().await;
        match turn.applied_through {
            Some(through) if self.log.is_some() => self.catch_up(&mut turn, through).await,
            _ => Ok(()),
        }
    }

    /// Tombstones every CID named by an entry of this member's log past the state's applied
    /// index, before Raft starts. Such an entry may have been applied and acted on (the daemon
    /// pinned) and then lost with the unsynced applies of a crash; if a snapshot then replaces
    /// the log (openraft truncates a log that conflicts with it, committed entries it did not
    /// know were committed included), nothing else would tell the tracker to let it go. A CID
    /// still allocated here loses its tombstone at the next state sync.
    pub(crate) async fn tombstone_unapplied_log_tail(&mut self) -> Result<usize, StorageError<NodeId>> {
        let from = match self.read_state(|| self.applied_meta()).await?.last_applied {
            Some(log_id) => log_id.index + 1,
            None => 0,
        };
        let Some(log) = self.log.as_mut() else {
            return Ok(0);
        };
        let Some(last) = openraft::storage::RaftLogStorage::get_log_state(log).await?.last_log_id else {
            return Ok(0);
        };
        if last.index < from {
            return Ok(0);
        }
        let entries = openraft::RaftLogReader::try_get_log_entries(log, from..=last.index).await?;
        fn named(command: &Command, ops: &mut Vec<StateOp>) {
            match command {
                Command::Pin(pin) | Command::Reallocate { pin, .. } => ops.push(StateOp::Tombstone(pin.cid)),
                Command::Unpin(cid) => ops.push(StateOp::Tombstone(*cid)),
                Command::Expire { previous } => ops.push(StateOp::Tombstone(previous.cid)),
                Command::Batch(commands) => commands.iter().for_each(|c| named(c, ops)),
            }
        }
        let mut ops = Vec::new();
        for entry in &entries {
            if let EntryPayload::Normal(command) = &entry.payload {
                named(command, &mut ops);
            }
        }
        if !ops.is_empty() {
            self.write_state(|| self.state.commit(&ops, None)).await?;
        }
        Ok(ops.len())
    }

    fn applied_meta(&self) -> Result<AppliedMeta, StateError> {
        let Some(bytes) = self.state.meta()? else {
            return Ok(AppliedMeta::default());
        };
        let mut cache = self.meta_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cached, meta)) = cache.as_ref() {
            if *cached == bytes {
                return Ok(meta.clone());
            }
        }
        let meta = parse_applied_meta(Some(bytes.clone()))?;
        *cache = Some((bytes, meta.clone()));
        Ok(meta)
    }

    /// Reads from the state, retried while the disk refuses.
    async fn read_state<T>(&self, read: impl FnMut() -> Result<T, StateError>) -> Result<T, StorageError<NodeId>> {
        self.health
            .retry(STORE, false, StateError::is_io_failure, read)
            .await
            .map_err(sm_read_error)
    }

    /// Writes to the state, retried until the disk takes it.
    async fn write_state<T>(&self, write: impl FnMut() -> Result<T, StateError>) -> Result<T, StorageError<NodeId>> {
        self.health
            .retry(STORE, true, StateError::is_io_failure, write)
            .await
            .map_err(sm_write_error)
    }

    /// Runs a snapshot file operation, retried until the disk takes it.
    async fn snapshot_io<T>(&self, io: impl FnMut() -> std::io::Result<T>) -> Result<T, StorageError<NodeId>> {
        self.health
            .retry(SNAPSHOT_STORE, true, |_: &std::io::Error| true, io)
            .await
            .map_err(snapshot_error)
    }
}

/// What the applies of one state machine keep between them, taken in turn.
#[derive(Debug, Default)]
struct ApplyTurn {
    /// The index of the last entry applied (or installed with a snapshot): a reopen of the
    /// store at its last durable commit may have taken the pinset back before it.
    applied_through: Option<u64>,
    /// Changes committed since the last sync.
    unsynced_ops: usize,
    /// The CIDs those changes named (with a log; without one every apply is synced): what a
    /// reopen of the pinset at its last durable commit may have lost after the tracker acted.
    unsynced_cids: Vec<Cid>,
}

impl PinsetStateMachine {
    /// Reads every pin the commands of `entries` name, in one read of the store.
    fn read_named_pins(
        &self,
        entries: &[openraft::Entry<TypeConfig>],
    ) -> Result<impl ExactSizeIterator<Item = (Cid, Option<Pin>)>, StateError> {
        let cids = apply::named_cids(entries);
        let pins = self.state.get_many(&cids)?;
        Ok(cids.into_iter().zip(pins))
    }

    /// Applies `entries` to the state in one commit; returns each entry's response and what
    /// changed. Reads and writes nothing else, so it can run again after a disk failure.
    ///
    /// A commit can fail after it reached the disk (its last fsync failed, say); the `retry`
    /// then finds the entries applied. It answers them with `Nothing` (their writers get an
    /// unexpected answer for a write that was done) and has the tracker reconcile everything,
    /// as after a snapshot, since their changes were never reported.
    fn apply_entries(
        &self,
        entries: &[openraft::Entry<TypeConfig>],
        retry: bool,
    ) -> Result<(Vec<CommandResponse>, Vec<AppliedChange>), StateError> {
        let mut meta = self.applied_meta()?;
        let applied_before = meta.last_applied.map(|log_id| log_id.index);
        if retry && entries.first().is_some_and(|e| Some(e.log_id.index) <= applied_before) {
            tracing::warn!("a commit reported as failed had reached the disk; reconciling the tracker");
            self.observer.snapshot_installed();
            let done: Vec<_> = entries
                .iter()
                .filter(|e| Some(e.log_id.index) <= applied_before)
                .map(|_| CommandResponse::Nothing)
                .collect();
            let (mut responses, changes) = self.apply_entries(&entries[done.len()..], false)?;
            responses.splice(0..0, done);
            return Ok((responses, changes));
        }
        let stored = self.read_named_pins(entries)?;
        let (responses, Pending { ops, changes, .. }) = apply::apply_run(entries, &mut meta, stored);
        let meta_bytes =
            serde_json::to_vec(&meta).map_err(|e| StateError::Storage(format!("encoding the applied meta: {e}")))?;
        self.state.commit_unsynced_owned(ops, Some(&meta_bytes))?;
        *self.meta_cache.lock().unwrap_or_else(|e| e.into_inner()) = Some((meta_bytes, meta));
        Ok((responses, changes))
    }
}

impl RaftStateMachine<TypeConfig> for PinsetStateMachine {
    type SnapshotBuilder = PinsetStateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, MemberNode>), StorageError<NodeId>> {
        let meta = self.read_state(|| self.applied_meta()).await?;
        let mut turn = self.turn.lock().await;
        let index = meta.last_applied.map(|log_id| log_id.index);
        turn.applied_through = turn.applied_through.max(index);
        Ok((meta.last_applied, meta.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(Vec::new());
        };
        let (first, last) = (first.log_id.index, last.log_id.index);
        if let Some(failure) = self.background_sync.take_failure() {
            return Err(sm_write_error(format!("syncing the pinset: {failure}")));
        }
        let turn_lock = self.turn.clone();
        let mut turn = turn_lock.lock().await;
        let (responses, changes) = loop {
            if self.log.is_some() && first > 0 {
                self.catch_up(&mut turn, first - 1).await?;
            }
            let mut attempt = 0;
            let applied = self
                .write_state(|| {
                    attempt += 1;
                    // A failed commit reopens the store at its last durable commit, which may
                    // lose earlier unsynced applies too: applying these entries on top would
                    // skip them for good (sim seed 7000558 of the self-healing workload lost a
                    // pin on one member so). Catch up from the log first.
                    if attempt > 1 && self.log.is_some() {
                        let applied = self.applied_meta()?.last_applied.map(|log_id| log_id.index);
                        if applied.map_or(first > 0, |index| index + 1 < first) {
                            return Ok(None);
                        }
                    }
                    self.apply_entries(&entries, attempt > 1).map(Some)
                })
                .await?;
            if let Some(applied) = applied {
                break applied;
            }
        };
        if !changes.is_empty() {
            self.observer.applied(&changes);
        }
        // After the tracker heard of it: a write through this member returns at this point.
        self.applied.advance(entries.last().map(|entry| entry.log_id));
        turn.applied_through = Some(last);
        if self.log.is_some() {
            turn.unsynced_cids.extend(changes.iter().map(|change| match change {
                AppliedChange::Pinned { pin, .. } | AppliedChange::Unpinned { pin } => pin.cid,
            }));
        }
        turn.unsynced_ops += changes.len().max(1);
        if self.log.is_none() {
            self.write_state(|| self.state.sync()).await?;
            turn.unsynced_ops = 0;
        } else if turn.unsynced_ops >= SYNC_EVERY_OPS
            && self
                .background_sync
                .start(&self.state, &self.health, STORE, &mut turn.unsynced_cids)
        {
            turn.unsynced_ops = 0;
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError<NodeId>> {
        let file = self.snapshot_io(|| self.snapshots.scratch(RECEIVING_FILE)).await?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, MemberNode>,
        snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError<NodeId>> {
        let mut file = *snapshot;
        let applied = AppliedMeta {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let meta_bytes = serde_json::to_vec(&applied).map_err(snapshot_error)?;
        self.snapshot_io(|| file.sync()).await?;
        // The install compares the snapshot with the pinset to tombstone what it drops. Applies
        // the pinset lost (another writer's failed commit reopened it at its last durable
        // commit) are not in it, though the daemon may have acted on them, and openraft may
        // have purged their log entries already: the CIDs of every apply not yet synced are
        // tombstoned first (sim seed 90051 of the frequent-snapshots workload).
        let turn_lock = self.turn.clone();
        let mut turn = turn_lock.lock().await;
        let unsynced = turn
            .unsynced_cids
            .iter()
            .chain(&self.background_sync.pending_cids())
            .copied()
            .collect::<Vec<_>>();
        if !unsynced.is_empty() {
            let ops: Vec<StateOp> = unsynced.iter().map(|cid| StateOp::Tombstone(*cid)).collect();
            self.write_state(|| self.state.commit(&ops, None)).await?;
            turn.unsynced_cids.clear();
        }
        // The first line is the sender's applied meta; openraft's `meta` is authoritative. A
        // corrupt line fails the install before the state changes (`replace_all` commits only
        // a whole pinset).
        let snapshot_id = &meta.snapshot_id;
        self.health
            .retry(STORE, true, SnapshotWriteError::is_io_failure, || {
                let mut pins = file
                    .lines()?
                    .skip(1)
                    .take_while(|line| line.as_ref().map_or(true, |line| !line.is_empty()))
                    .enumerate()
                    .map(|(number, line)| {
                        let line = line.map_err(|e| StateError::Io(format!("reading snapshot {snapshot_id}: {e}")))?;
                        pin_of_snapshot_line(&line)
                            .map_err(|e| StateError::Corrupt(format!("snapshot {snapshot_id} at pin {number}: {e}")))
                    });
                self.state.replace_all(&mut pins, &meta_bytes)?;
                Ok(())
            })
            .await
            .map_err(sm_write_error)?;
        turn.applied_through = meta.last_log_id.map(|log_id| log_id.index);
        drop(file);
        self.snapshot_io(|| self.snapshots.keep_deferred(meta)).await?;
        self.observer.snapshot_installed();
        self.applied.advance(meta.last_log_id);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        match self.snapshots.current() {
            None => Ok(None),
            Some((meta, Some(body))) => Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(body),
            })),
            Some((kept, None)) => self
                .read_state(|| self.current_view_snapshot(kept.clone()))
                .await
                .map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_state::MemoryState;
    use cluster_types::{PeerId, PinOptions};

    fn pin(n: u8) -> Pin {
        let mut pin = Pin::new(
            Cid::raw_sha256(&[n]),
            PinOptions {
                name: format!("pin {n}"),
                ..Default::default()
            },
        );
        pin.allocations = vec![PeerId::from_ed25519_seed([n; 32])];
        pin
    }

    struct Unobserved;
    impl ApplyObserver for Unobserved {
        fn applied(&self, _: &[AppliedChange]) {}
        fn snapshot_installed(&self) {}
    }

    fn machine(dir: &Path, pins: std::ops::Range<u8>) -> (Arc<MemoryState>, PinsetStateMachine) {
        let state = Arc::new(MemoryState::new());
        let ops: Vec<StateOp> = pins.map(pin).map(StateOp::Add).collect();
        state.commit(&ops, None).unwrap();
        let machine = PinsetStateMachine::new(state.clone(), Arc::new(Unobserved), dir, StorageHealth::default());
        (state, machine)
    }

    fn listing(state: &MemoryState) -> Vec<Pin> {
        PinIter::new(state, 100).map(Result::unwrap).collect()
    }

    /// Tells, at each apply it hears of, which indexes the applied index had reached then.
    struct ReachedWhenTold {
        index: std::sync::OnceLock<AppliedIndex>,
        told: Mutex<Vec<Vec<bool>>>,
    }
    impl ApplyObserver for ReachedWhenTold {
        fn applied(&self, _: &[AppliedChange]) {
            let index = self.index.get().expect("set before the applies");
            let reached = (1..=4).map(|n| index.reached(n)).collect();
            self.told.lock().unwrap().push(reached);
        }
        fn snapshot_installed(&self) {}
    }

    /// The applied index a write waits for moves with every apply, to its last entry, once the
    /// tracker was told of it (a write returns at that point).
    #[cfg(not(madsim))]
    #[tokio::test]
    async fn the_applied_index_is_the_last_entry_applied_once_the_tracker_heard() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(MemoryState::new());
        let observer = Arc::new(ReachedWhenTold {
            index: Default::default(),
            told: Default::default(),
        });
        let mut machine =
            PinsetStateMachine::new(state.clone(), observer.clone(), dir.path(), StorageHealth::default());
        let applied = machine.applied_index();
        observer.index.set(applied.clone()).ok().unwrap();
        assert!(!applied.reached(0), "nothing applied yet");
        let entry = |index: u64, n: u8| openraft::Entry::<TypeConfig> {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: openraft::EntryPayload::Normal(Command::Pin(pin(n))),
        };
        machine.apply([entry(1, 1), entry(2, 2), entry(3, 3)]).await.unwrap();
        assert!(applied.reached(3) && !applied.reached(4));
        assert_eq!(listing(&state).len(), 3, "applied when reached");
        machine.apply([entry(4, 4)]).await.unwrap();
        assert!(applied.reached(4) && !applied.reached(5));
        assert_eq!(
            *observer.told.lock().unwrap(),
            [[false; 4], [true, true, true, false]],
            "each apply reached only after the tracker was told"
        );
    }

    /// What openraft does with a snapshot: the leader builds it and reads it in chunks, the
    /// follower writes the chunks at their offsets and installs it; then a corrupt one.
    #[cfg(not(madsim))]
    #[tokio::test]
    async fn a_snapshot_goes_through_files_and_a_corrupt_one_changes_nothing() {
        use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
        let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (_, mut leader) = machine(leader_dir.path(), 0..40);
        let (follower_state, mut follower) = machine(follower_dir.path(), 100..103);
        let built = leader.build_snapshot().await.unwrap();
        let files = |dir: &Path| -> Vec<String> {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(files(leader_dir.path()), ["snapshot-deferred.json"], "no body on disk");
        let mut sent = leader.get_current_snapshot().await.unwrap().expect("kept");
        // Sent as the store is now, under the meta of exactly that (here, the one built).
        assert_eq!(
            (&sent.meta.last_log_id, &sent.meta.last_membership),
            (&built.meta.last_log_id, &built.meta.last_membership)
        );
        let mut received = follower.begin_receiving_snapshot().await.unwrap();
        let mut offset = 0u64;
        loop {
            let mut chunk = vec![0; 100];
            sent.snapshot.seek(std::io::SeekFrom::Start(offset)).await.unwrap();
            let n = sent.snapshot.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            received.seek(std::io::SeekFrom::Start(offset)).await.unwrap();
            AsyncWriteExt::write_all(&mut received, &chunk[..n]).await.unwrap();
            offset += n as u64;
        }
        follower.install_snapshot(&sent.meta, received).await.unwrap();
        let mut expected: Vec<Pin> = (0..40).map(pin).collect();
        expected.sort_by_key(|p| p.cid.to_bytes());
        assert_eq!(listing(&follower_state), expected);
        let current = follower.get_current_snapshot().await.unwrap().expect("kept");
        assert_eq!(current.meta.last_log_id, sent.meta.last_log_id);
        assert_eq!(
            files(follower_dir.path()),
            ["snapshot-deferred.json"],
            "the received body is not kept"
        );

        // A line that is no pin: the install fails and the state stays as it was.
        let mut corrupt = follower.begin_receiving_snapshot().await.unwrap();
        let body = format!(
            "{{}}\n{}\nnot a pin\n",
            STANDARD_NO_PAD.encode(pin_codec::encode_pin(&pin(200), true))
        );
        AsyncWriteExt::write_all(&mut corrupt, body.as_bytes()).await.unwrap();
        let mut meta = sent.meta.clone();
        meta.snapshot_id = "corrupt-1".into();
        let error = follower.install_snapshot(&meta, corrupt).await.unwrap_err();
        assert!(error.to_string().contains("at pin 1"), "{error}");
        assert_eq!(listing(&follower_state).len(), 40);
        assert_eq!(
            follower.get_current_snapshot().await.unwrap().unwrap().meta.last_log_id,
            sent.meta.last_log_id
        );
    }
}
