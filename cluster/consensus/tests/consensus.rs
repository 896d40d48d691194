//! The consensus component on real storage: openraft's own storage conformance suite against
//! our log store and state machine, and a one-member cluster that commits, crashes (drop
//! without shutdown) and recovers from disk.
#![cfg(not(madsim))]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cluster_consensus::{
    node_id_of, AppliedChange, ApplyObserver, Command, CommandResponse, Consensus, ConsensusDeps, LogStore, MemberNode,
    NoTransport, PinsetStateMachine, RaftConfig, TypeConfig, SYNC_EVERY_OPS,
};
use cluster_state::{MemoryState, RedbState, State};
use cluster_types::{ClusterError, PeerId, Pin, PinOptions};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

#[derive(Default)]
struct Recorder {
    changes: Mutex<Vec<AppliedChange>>,
}

impl ApplyObserver for Recorder {
    fn applied(&self, changes: &[AppliedChange]) {
        self.changes.lock().unwrap().extend_from_slice(changes);
    }
    fn snapshot_installed(&self) {}
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, PinsetStateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, PinsetStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        let state: Arc<dyn State> = Arc::new(MemoryState::new());
        let machine = PinsetStateMachine::new(state, Arc::new(Recorder::default()), dir.path(), Default::default());
        Ok((dir, log, machine))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(Builder).unwrap();
}

fn pin(i: u64) -> Pin {
    cluster_state::testing::test_pin(i)
}

fn peer() -> PeerId {
    PeerId::from_ed25519_seed([9; 32])
}

async fn start(dir: &std::path::Path, observer: Arc<Recorder>) -> (Consensus, Arc<dyn State>) {
    // After a shutdown, openraft's tasks may take a moment to drop their store handles.
    let mut attempts = 0;
    let state: Arc<dyn State> = loop {
        match RedbState::open(&dir.join("pinset.redb")) {
            Ok(state) => break Arc::new(state),
            Err(e) if attempts < 100 => {
                attempts += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("reopening the state: {e}"),
        }
    };
    (start_over(dir, state.clone(), observer).await, state)
}

/// A one-member cluster over `state`, its Raft log in `dir`, initialized with this member as its
/// only voter if new.
async fn start_over(dir: &std::path::Path, state: Arc<dyn State>, observer: Arc<dyn ApplyObserver>) -> Consensus {
    let consensus = Consensus::start(ConsensusDeps {
        peer: &peer(),
        raft_dir: &dir.join("raft"),
        disk: Arc::new(cluster_state::RealDisk),
        state,
        observer,
        transport: Arc::new(NoTransport),
        forwarder: None,
        config: RaftConfig::default(),
    })
    .await
    .unwrap();
    let mut members = BTreeMap::new();
    members.insert(
        node_id_of(&peer()),
        MemberNode {
            peer_id: peer(),
            address: String::new(),
        },
    );
    consensus.initialize_if_new(members).await.unwrap();
    consensus
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_commits_and_recovers_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let (consensus, state) = start(dir.path(), recorder.clone()).await;
    for i in 0..50 {
        let committed = consensus.log_pin(pin(i)).await.unwrap();
        assert_eq!(committed, pin(i));
    }
    for i in 0..10 {
        consensus.log_unpin(pin(i).cid).await.unwrap();
    }
    assert_eq!(consensus.log_unpin(pin(0).cid).await, Err(ClusterError::NotFound));
    assert_eq!(state.len().unwrap(), 40);
    let applied = consensus.last_applied_index().unwrap();
    {
        let changes = recorder.changes.lock().unwrap();
        assert_eq!(changes.len(), 60, "50 pins and 10 unpins observed");
        assert!(matches!(&changes[0], AppliedChange::Pinned { previous: None, .. }));
        assert!(matches!(&changes[50], AppliedChange::Unpinned { .. }));
    }
    consensus.trigger_snapshot().await.unwrap();
    // A "crash": stop Raft without any clean-up of ours, drop everything, reopen.
    consensus.shutdown().await;
    drop(consensus);
    drop(state);

    let recorder = Arc::new(Recorder::default());
    let (consensus, state) = start(dir.path(), recorder.clone()).await;
    assert_eq!(state.len().unwrap(), 40);
    assert!(state.get(&pin(5).cid).unwrap().is_none());
    assert!(state.get(&pin(45).cid).unwrap().is_some());
    consensus
        .wait_for_leader(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert!(consensus.last_applied_index().unwrap() >= applied);
    // Writes work after recovery, and replacing a pin reports the previous one.
    let mut renamed = pin(45);
    renamed.options = PinOptions {
        name: "renamed".into(),
        ..renamed.options.clone()
    };
    consensus.log_pin(renamed.clone()).await.unwrap();
    let changes = recorder.changes.lock().unwrap().clone();
    assert!(matches!(changes.last(), Some(AppliedChange::Pinned { previous: Some(p), .. }) if *p == pin(45)));
    assert_eq!(state.get(&pin(45).cid).unwrap().unwrap().options.name, "renamed");
    consensus.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_store_is_locked_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let _first = LogStore::open(dir.path()).unwrap();
    let err = LogStore::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("locked"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reallocation_applies_only_to_the_pin_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let (consensus, state) = start(dir.path(), Arc::new(Recorder::default())).await;
    let read = consensus.log_pin(pin(1)).await.unwrap();
    let mut moved = read.clone();
    moved.allocations = vec![PeerId::from_ed25519_seed([7; 32])];
    // Unpinned after it was read: the re-allocation must not bring it back.
    consensus.log_unpin(read.cid).await.unwrap();
    assert!(!consensus.log_reallocation(moved.clone(), read.clone()).await.unwrap());
    assert!(state.get(&read.cid).unwrap().is_none());
    // Re-pinned with other options after it was read: those stay.
    let mut renamed = read.clone();
    renamed.options.name = "renamed".into();
    consensus.log_pin(renamed.clone()).await.unwrap();
    assert!(!consensus.log_reallocation(moved.clone(), read.clone()).await.unwrap());
    assert_eq!(state.get(&read.cid).unwrap().unwrap(), renamed);
    // Unchanged since it was read: applied.
    let mut moved = renamed.clone();
    moved.allocations = vec![PeerId::from_ed25519_seed([7; 32])];
    assert!(consensus.log_reallocation(moved.clone(), renamed).await.unwrap());
    assert_eq!(state.get(&read.cid).unwrap().unwrap(), moved);
    consensus.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_applies_in_order_and_an_expiry_only_to_the_pin_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let (consensus, state) = start(dir.path(), recorder.clone()).await;
    let first = consensus.log_pin(pin(1)).await.unwrap();
    let second = consensus.log_pin(pin(2)).await.unwrap();
    let mut renamed = second.clone();
    renamed.options.name = "pinned again".into();
    let mut moved = first.clone();
    moved.allocations = vec![PeerId::from_ed25519_seed([7; 32])];
    let responses = consensus
        .log_batch(vec![
            Command::Reallocate {
                pin: moved.clone(),
                previous: Box::new(first.clone()),
            },
            // Sees the re-allocation just before it in the same entry: not the pin it read.
            Command::Expire {
                previous: first.clone(),
            },
            Command::Pin(renamed.clone()),
            Command::Expire {
                previous: second.clone(),
            },
            Command::Expire {
                previous: renamed.clone(),
            },
            Command::Pin(pin(3)),
        ])
        .await
        .unwrap();
    assert_eq!(
        responses,
        vec![
            CommandResponse::Pinned(moved.clone()),
            CommandResponse::Unchanged,
            CommandResponse::Pinned(renamed.clone()),
            CommandResponse::Unchanged,
            CommandResponse::Unpinned(Some(renamed.clone())),
            CommandResponse::Pinned(pin(3)),
        ]
    );
    assert_eq!(state.get(&first.cid).unwrap(), Some(moved));
    assert_eq!(state.get(&second.cid).unwrap(), None);
    assert!(state.get(&pin(3).cid).unwrap().is_some());
    let changes = recorder.changes.lock().unwrap().clone();
    assert!(matches!(
        changes.last(),
        Some(AppliedChange::Pinned { previous: None, .. })
    ));
    assert!(matches!(&changes[changes.len() - 2], AppliedChange::Unpinned { pin } if *pin == renamed));
    consensus.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_at_survives_a_snapshot_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (consensus, state) = start(dir.path(), Arc::new(Recorder::default())).await;
    let mut expiring = pin(1);
    expiring.options.expire_at = cluster_types::Timestamp::from_unix(2_000_000_000, 5);
    consensus.log_pin(expiring.clone()).await.unwrap();
    consensus.trigger_snapshot().await.unwrap();
    consensus.shutdown().await;
    drop(consensus);
    drop(state);
    let (consensus, state) = start(dir.path(), Arc::new(Recorder::default())).await;
    let read = state.get(&expiring.cid).unwrap().expect("still pinned");
    assert_eq!(read.options.expire_at, expiring.options.expire_at);
    consensus.shutdown().await;
}

/// A pinset whose next commit reaches the store and then reports a disk failure, as when the
/// last fsync of a commit fails after the commit was written.
struct CommitThenFail {
    inner: MemoryState,
    fail_next: std::sync::atomic::AtomicBool,
}

impl State for CommitThenFail {
    fn get(&self, cid: &cluster_types::Cid) -> Result<Option<Pin>, cluster_state::StateError> {
        self.inner.get(cid)
    }
    fn len(&self) -> Result<u64, cluster_state::StateError> {
        self.inner.len()
    }
    fn list_page(
        &self,
        after: Option<&cluster_types::Cid>,
        limit: usize,
    ) -> Result<Vec<Pin>, cluster_state::StateError> {
        self.inner.list_page(after, limit)
    }
    fn commit(&self, ops: &[cluster_state::StateOp], meta: Option<&[u8]>) -> Result<(), cluster_state::StateError> {
        self.inner.commit(ops, meta)?;
        match self.fail_next.swap(false, std::sync::atomic::Ordering::SeqCst) {
            true => Err(cluster_state::StateError::Io("the last fsync failed".into())),
            false => Ok(()),
        }
    }
    fn meta(&self) -> Result<Option<Vec<u8>>, cluster_state::StateError> {
        self.inner.meta()
    }
    fn replace_all(
        &self,
        pins: &mut dyn Iterator<Item = Result<Pin, cluster_state::StateError>>,
        meta: &[u8],
    ) -> Result<(), cluster_state::StateError> {
        self.inner.replace_all(pins, meta)
    }
    fn view(&self) -> Result<Box<dyn cluster_state::StateView>, cluster_state::StateError> {
        self.inner.view()
    }
    fn tombstones(
        &self,
        after: Option<&cluster_types::Cid>,
        limit: usize,
    ) -> Result<Vec<cluster_types::Cid>, cluster_state::StateError> {
        self.inner.tombstones(after, limit)
    }
}

struct Reconciles(Arc<std::sync::atomic::AtomicU32>);

impl ApplyObserver for Reconciles {
    fn applied(&self, _changes: &[AppliedChange]) {}
    fn snapshot_installed(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn entry(index: u64, command: Command) -> openraft::Entry<TypeConfig> {
    openraft::Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 0), index),
        payload: openraft::EntryPayload::Normal(command),
    }
}

/// A commit that reached the disk but reported a failure is not applied twice: the retry
/// answers the entries already applied, applies the rest, and has the tracker reconcile.
#[tokio::test]
async fn an_apply_retried_after_a_commit_that_reached_the_disk_applies_nothing_twice() {
    use openraft::storage::RaftStateMachine;
    let dir = tempfile::tempdir().unwrap();
    let reconciled = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let state = Arc::new(CommitThenFail {
        inner: MemoryState::new(),
        fail_next: std::sync::atomic::AtomicBool::new(false),
    });
    let mut machine = PinsetStateMachine::new(
        state.clone(),
        Arc::new(Reconciles(reconciled.clone())),
        dir.path(),
        Default::default(),
    );
    machine.apply(vec![entry(1, Command::Pin(pin(1)))]).await.unwrap();
    state.fail_next.store(true, std::sync::atomic::Ordering::SeqCst);
    let responses = machine
        .apply(vec![
            entry(2, Command::Pin(pin(2))),
            entry(3, Command::Unpin(pin(1).cid)),
        ])
        .await
        .unwrap();
    assert_eq!(responses.len(), 2, "one response per entry");
    assert_eq!(
        reconciled.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the tracker reconciles"
    );
    assert_eq!(state.list_page(None, 10).unwrap(), vec![pin(2)]);
    assert_eq!(cluster_consensus::applied_index_in(state.as_ref()), Some(3));
    // The next entry applies as usual.
    machine.apply(vec![entry(4, Command::Pin(pin(4)))]).await.unwrap();
    assert_eq!(state.len().unwrap(), 2);
}

/// A member restarted on its data folder knows it is a voter from its own log at once, not
/// only once Raft's core first reports: a restarted member that asked the question too early
/// took itself for a newcomer and joined again through `--bootstrap`, even after it had been
/// removed (the flaky `a_removed_member_stops_when_it_returns…` process test).
#[tokio::test(flavor = "current_thread")]
async fn a_restarted_voter_knows_it_is_a_voter_before_raft_first_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (consensus, state) = start(dir.path(), Arc::new(Recorder::default())).await;
    consensus
        .wait_for_leader(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    consensus.log_pin(pin(1)).await.unwrap();
    consensus.shutdown().await;
    drop(consensus);
    drop(state);

    let state: Arc<dyn State> = Arc::new(RedbState::open(&dir.path().join("pinset.redb")).unwrap());
    let consensus = Consensus::start(ConsensusDeps {
        peer: &peer(),
        raft_dir: &dir.path().join("raft"),
        disk: Arc::new(cluster_state::RealDisk),
        state,
        observer: Arc::new(Recorder::default()),
        transport: Arc::new(NoTransport),
        forwarder: None,
        config: RaftConfig::default(),
    })
    .await
    .unwrap();
    // No await between the start and the question: Raft's core task has not run yet.
    assert!(
        consensus.is_voter(node_id_of(&peer())),
        "a restarted voter took itself for a newcomer"
    );
    assert!(!consensus.is_voter(node_id_of(&PeerId::from_ed25519_seed([8; 32]))));
    consensus.shutdown().await;
}

/// Group commit: writes made together on the leader share log entries, and each caller gets
/// its own answer (a pin its pin, an unpin of an absent CID `NotFound`), as if alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_entries_and_each_gets_its_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let (consensus, state) = start(dir.path(), recorder.clone()).await;
    consensus
        .wait_for_leader(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let before = consensus.last_log_index().unwrap();
    const WRITES: u64 = 400;
    let writes = (0..WRITES).map(|i| {
        let consensus = consensus.clone();
        async move {
            if i % 4 == 3 {
                // Never pinned: each of these must come back NotFound, not another's answer.
                (i, consensus.log_unpin(pin(100_000 + i).cid).await.map(|_| None))
            } else {
                (i, consensus.log_pin(pin(i)).await.map(Some))
            }
        }
    });
    let answers = futures::future::join_all(writes.map(tokio::spawn)).await;
    for answer in answers {
        let (i, answer) = answer.unwrap();
        if i % 4 == 3 {
            assert_eq!(answer, Err(ClusterError::NotFound), "write {i}");
        } else {
            assert_eq!(answer, Ok(Some(pin(i))), "write {i}");
        }
    }
    assert_eq!(state.len().unwrap(), WRITES / 4 * 3);
    let entries = consensus.last_log_index().unwrap() - before;
    assert!(
        entries < WRITES / 2,
        "{WRITES} concurrent writes took {entries} log entries: they were not batched"
    );
    assert_eq!(
        recorder.changes.lock().unwrap().len() as u64,
        WRITES / 4 * 3,
        "one change per pin"
    );
    consensus.shutdown().await;
}

/// A pinset store whose unsynced commits are lost when a sync fails, as redb's are when the
/// disk refuses the sync and the database is opened again from its last durable commit.
struct LosesUnsyncedOnFailedSync {
    live: Mutex<Arc<MemoryState>>,
    durable: Mutex<(Vec<Pin>, Option<Vec<u8>>)>,
    fail_next_sync: std::sync::atomic::AtomicBool,
    /// How many times it lost what was not synced.
    reopens: std::sync::atomic::AtomicU64,
    /// While set, a sync waits (a slow disk).
    hold_syncs: std::sync::atomic::AtomicBool,
    syncs_started: std::sync::atomic::AtomicU32,
}

impl LosesUnsyncedOnFailedSync {
    fn new() -> LosesUnsyncedOnFailedSync {
        LosesUnsyncedOnFailedSync {
            live: Mutex::new(Arc::new(MemoryState::new())),
            durable: Mutex::new((Vec::new(), None)),
            fail_next_sync: std::sync::atomic::AtomicBool::new(false),
            reopens: Default::default(),
            hold_syncs: Default::default(),
            syncs_started: Default::default(),
        }
    }

    fn live(&self) -> Arc<MemoryState> {
        self.live.lock().unwrap().clone()
    }
    fn keep_durable(&self) -> Result<(), cluster_state::StateError> {
        let live = self.live();
        *self.durable.lock().unwrap() = (cluster_state::testing::full_listing(live.as_ref()), live.meta()?);
        Ok(())
    }
}

impl State for LosesUnsyncedOnFailedSync {
    fn get(&self, cid: &cluster_types::Cid) -> Result<Option<Pin>, cluster_state::StateError> {
        self.live().get(cid)
    }
    fn len(&self) -> Result<u64, cluster_state::StateError> {
        self.live().len()
    }
    fn list_page(
        &self,
        after: Option<&cluster_types::Cid>,
        limit: usize,
    ) -> Result<Vec<Pin>, cluster_state::StateError> {
        self.live().list_page(after, limit)
    }
    fn commit(&self, ops: &[cluster_state::StateOp], meta: Option<&[u8]>) -> Result<(), cluster_state::StateError> {
        self.live().commit(ops, meta)?;
        self.keep_durable()
    }
    fn commit_unsynced(
        &self,
        ops: &[cluster_state::StateOp],
        meta: Option<&[u8]>,
    ) -> Result<(), cluster_state::StateError> {
        self.live().commit(ops, meta)
    }
    #[allow(clippy::disallowed_methods)] // The caller's thread: this test is not simulated.
    fn sync(&self) -> Result<(), cluster_state::StateError> {
        self.syncs_started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        while self.hold_syncs.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        if self.fail_next_sync.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.lose_unsynced();
            return Err(cluster_state::StateError::Io("No space left on device".into()));
        }
        self.keep_durable()
    }
    fn meta(&self) -> Result<Option<Vec<u8>>, cluster_state::StateError> {
        self.live().meta()
    }
    fn reopens(&self) -> u64 {
        self.reopens.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn replace_all(
        &self,
        pins: &mut dyn Iterator<Item = Result<Pin, cluster_state::StateError>>,
        meta: &[u8],
    ) -> Result<(), cluster_state::StateError> {
        self.live().replace_all(pins, meta)?;
        self.keep_durable()
    }
    fn view(&self) -> Result<Box<dyn cluster_state::StateView>, cluster_state::StateError> {
        self.live().view()
    }
    fn tombstones(
        &self,
        after: Option<&cluster_types::Cid>,
        limit: usize,
    ) -> Result<Vec<cluster_types::Cid>, cluster_state::StateError> {
        self.live().tombstones(after, limit)
    }
}

/// Applies commit without an fsync each; when the periodic sync fails and the store loses
/// what was not yet synced, the state machine applies it again from the Raft log before going
/// on, and the tracker reconciles. Nothing committed is missing from the pinset afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_lost_by_a_failed_sync_are_applied_again_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let reconciled = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let state = Arc::new(LosesUnsyncedOnFailedSync::new());
    let consensus = start_over(dir.path(), state.clone(), Arc::new(Reconciles(reconciled.clone()))).await;
    consensus
        .wait_for_leader(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let batch = |range: std::ops::Range<u64>| range.map(|i| Command::Pin(pin(i))).collect::<Vec<_>>();
    // Half the sync interval, then past it.
    let (half, total) = (SYNC_EVERY_OPS as u64 / 2, SYNC_EVERY_OPS as u64 * 5 / 4);
    consensus.log_batch(batch(0..half)).await.unwrap();
    assert!(
        state.durable.lock().unwrap().0.is_empty(),
        "applies were not synced one by one"
    );
    // The next apply passes the sync threshold; that sync fails and loses every pin.
    state.fail_next_sync.store(true, std::sync::atomic::Ordering::SeqCst);
    // Its writer hears that the disk failed while it waited (the write may or may not be
    // committed); it was, and the member heals on its own.
    let written = consensus.log_batch(batch(half..total)).await;
    assert!(matches!(&written, Ok(_) | Err(ClusterError::Timeout(_))), "{written:?}");
    // The sync that makes them durable again runs beside the applies: wait for it too.
    for _ in 0..200 {
        let synced = state.durable.lock().unwrap().0.len();
        if consensus.storage_failure().is_none() && state.len().unwrap() == total && synced as u64 == total {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(consensus.storage_failure(), None, "the disk failure is over");
    assert_eq!(state.len().unwrap(), total, "every committed pin is in the pinset");
    assert_eq!(
        state.durable.lock().unwrap().0.len() as u64,
        total,
        "and synced once the disk took it"
    );
    assert!(
        reconciled.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the tracker reconciles"
    );
    consensus.log_pin(pin(total + 1000)).await.unwrap();
    assert_eq!(state.len().unwrap(), total + 1);
    consensus.shutdown().await;
}

/// The periodic sync runs beside the applies: while it writes (slowly here), writes are
/// committed, applied and answered. It used to run inside an apply, and every write of a
/// loaded leader waited for it every few thousand writes (the p99 of `just bench-ingest`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_answered_while_the_periodic_sync_writes() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(LosesUnsyncedOnFailedSync::new());
    state.hold_syncs.store(true, Ordering::SeqCst);
    // A failure below lets the held sync go, so that the test ends.
    struct Release(Arc<LosesUnsyncedOnFailedSync>);
    impl Drop for Release {
        fn drop(&mut self) {
            self.0.hold_syncs.store(false, Ordering::SeqCst);
        }
    }
    let _release = Release(state.clone());
    let consensus = start_over(dir.path(), state.clone(), Arc::new(Recorder::default())).await;
    consensus
        .wait_for_leader(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let total = SYNC_EVERY_OPS as u64 * 5 / 4;
    let batch = (0..total).map(|i| Command::Pin(pin(i))).collect::<Vec<_>>();
    consensus.log_batch(batch).await.unwrap();
    for _ in 0..200 {
        if state.syncs_started.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        state.syncs_started.load(Ordering::SeqCst),
        1,
        "more changes than the sync interval start a sync"
    );
    for i in 0..20 {
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            consensus.log_pin(pin(total + 1000 + i)),
        )
        .await
        .unwrap_or_else(|_| panic!("write {i} waited for the sync"))
        .unwrap();
    }
    assert_eq!(state.len().unwrap(), total + 20);
    assert!(state.durable.lock().unwrap().0.is_empty(), "the sync is still waiting");
    state.hold_syncs.store(false, Ordering::SeqCst);
    for _ in 0..200 {
        if !state.durable.lock().unwrap().0.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        state.durable.lock().unwrap().0.len() as u64 >= total,
        "the sync wrote what it was started for"
    );
    consensus.shutdown().await;
}

/// Found by `random_workload_with_lost_and_wiped_members_heals` (CI seed 3721343459): a member
/// applied its entries without a sync, then another writer's commit failed on a full disk (the
/// tracker clearing a tombstone) and reopened the pinset at its last durable commit, empty. No
/// entry came after the disk had room again, so no apply caught up: the pinset stayed empty for
/// good and the daemon never pinned what the member was allocated. The state machine now
/// applies such losses again from the log as soon as the store reports a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_lost_to_another_writers_failed_commit_come_back_with_no_new_entry() {
    let dir = tempfile::tempdir().unwrap();
    let reconciled = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let state = Arc::new(LosesUnsyncedOnFailedSync::new());
    let consensus = start_over(dir.path(), state.clone(), Arc::new(Reconciles(reconciled.clone()))).await;
    consensus
        .wait_for_leader(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let batch = (0..300).map(|i| Command::Pin(pin(i))).collect::<Vec<_>>();
    consensus.log_batch(batch).await.unwrap();
    assert_eq!(state.len().unwrap(), 300, "applied");
    assert!(state.durable.lock().unwrap().0.is_empty(), "and not yet synced");
    let reconciled_before = reconciled.load(std::sync::atomic::Ordering::SeqCst);

    state.lose_unsynced();
    assert_eq!(state.len().unwrap(), 0, "another writer's failure lost them");
    for _ in 0..200 {
        if state.len().unwrap() == 300 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        state.len().unwrap(),
        300,
        "the lost applies are applied again without waiting for a new entry"
    );
    assert_eq!(state.durable.lock().unwrap().0.len(), 300, "and synced");
    assert!(
        reconciled.load(std::sync::atomic::Ordering::SeqCst) > reconciled_before,
        "the tracker reconciles"
    );
    consensus.log_pin(pin(1000)).await.unwrap();
    assert_eq!(state.len().unwrap(), 301, "applies go on after the repair");
    consensus.shutdown().await;
}

impl LosesUnsyncedOnFailedSync {
    /// A commit failed (this store's sync, or another writer's: the tracker clearing a tombstone
    /// on a full disk, say) and the store was opened again at its last durable commit: what was
    /// not synced is gone.
    fn lose_unsynced(&self) {
        let (pins, meta) = self.durable.lock().unwrap().clone();
        let reopened = MemoryState::new();
        reopened
            .commit(
                &pins.into_iter().map(cluster_state::StateOp::Add).collect::<Vec<_>>(),
                meta.as_deref(),
            )
            .unwrap();
        *self.live.lock().unwrap() = Arc::new(reopened);
        self.reopens.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Found by `random_workload_with_frequent_snapshots_heals` seed 90051: member 0 applied a pin
/// and its daemon pinned it; then, on a full disk, the tracker's failed commit reopened the
/// pinset at its last durable commit, which lost that apply. The pin was unpinned while the
/// disk stayed full, and openraft purged the log up to the snapshot member 0 installed once it
/// had room: the install compared the snapshot with a pinset that had already forgotten the
/// pin, so no tombstone told the tracker to let it go, and the daemon kept it for good. An
/// install now first tombstones the CIDs of every apply not yet synced.
#[tokio::test]
async fn a_snapshot_installed_after_the_pinset_lost_applies_tombstones_what_they_named() {
    use base64::Engine as _;
    use openraft::storage::RaftStateMachine;
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(LosesUnsyncedOnFailedSync::new());
    let log = LogStore::open(dir.path()).unwrap();
    let mut machine = PinsetStateMachine::new(
        state.clone(),
        Arc::new(Recorder::default()),
        dir.path(),
        Default::default(),
    )
    .with_log(log);
    machine
        .apply(vec![entry(0, Command::Pin(pin(1))), entry(1, Command::Pin(pin(2)))])
        .await
        .unwrap();
    assert_eq!(state.len().unwrap(), 2, "applied");
    state.lose_unsynced();
    assert_eq!(state.len().unwrap(), 0, "and lost");

    // The leader's snapshot: pin 2 stays, pin 1 was unpinned meanwhile.
    let mut body = machine.begin_receiving_snapshot().await.unwrap();
    let line =
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(cluster_types::pin_codec::encode_pin(&pin(2), true));
    body.write_all(format!("{{}}\n{line}\n").as_bytes()).await.unwrap();
    let meta = openraft::SnapshotMeta {
        last_log_id: Some(openraft::LogId::new(openraft::CommittedLeaderId::new(5, 0), 100)),
        last_membership: Default::default(),
        snapshot_id: "from the leader".into(),
    };
    machine.install_snapshot(&meta, body).await.unwrap();
    assert_eq!(state.list_page(None, 10).unwrap(), vec![pin(2)]);
    let tombstones = state.tombstones(None, 10).unwrap();
    assert!(
        tombstones.contains(&pin(1).cid),
        "the pin the daemon may hold from the lost apply is tombstoned: {tombstones:?}"
    );
}

/// Found by `bench-ingest` on a busy machine: a member joining a fresh cluster was told "not a
/// learner of this cluster: ask to join first" by the promotion it asked for right after its
/// join was answered, and stopped. `add_learner` answered once the change was committed, but
/// `members`, which the promotion reads, reads openraft's metrics, published a moment later.
/// A learner added is now listed by the time `add_learner` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_is_listed_as_soon_as_its_addition_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (consensus, _state) = start(dir.path(), Arc::new(Recorder::default())).await;
    consensus
        .wait_for_leader(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    for n in 0..40u8 {
        let learner = MemberNode {
            peer_id: PeerId::from_ed25519_seed([100 + n; 32]),
            address: format!("/ip4/127.0.0.1/tcp/{}", 20000 + n as u32),
        };
        let node = node_id_of(&learner.peer_id);
        consensus.add_learner(learner).await.unwrap();
        assert!(
            consensus.members().iter().any(|(id, _)| *id == node),
            "learner {n} is listed once added"
        );
        match consensus.promote_if_caught_up(node).await {
            Ok(_) | Err(ClusterError::Timeout(_)) => {}
            Err(e) => panic!("learner {n}: the promotion asked at once fails: {e}"),
        }
    }
    consensus.shutdown().await;
}
