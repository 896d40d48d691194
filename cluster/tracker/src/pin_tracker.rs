//! [`PinTracker`]: the async shell around the operation table and the decision functions.
//!
//! Owns: the worker tasks that call the daemon, automatic retries, status queries (one CID or
//! the whole pinset, streamed), recovery and the periodic state sync. Does not own: what the
//! pinset is (consensus applies it to the [`State`] and calls [`PinTracker::track`] /
//! [`PinTracker::untrack`]) nor talking to the daemon (the [`IpfsConnector`]).
//!
//! Whole-pinset statuses and ranges live in `pin_tracker/status_walk.rs`, the state sync in
//! `pin_tracker/state_sync.rs`.
//!
//! Concurrency: everything mutable sits in one [`OpTable`] behind a std mutex that is held only
//! for table updates, never across an `.await`. Workers wait on a [`Notify`] per queue kind.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cluster_ipfs::{IpfsConnector, IpfsError, IpfsPinType};
use cluster_rt::tokio::sync::{mpsc, watch, Notify};
use cluster_rt::tokio::task::JoinHandle;
use cluster_state::{PinIter, State, StateOp};
use cluster_types::{
    Cid, ClusterError, IpfsId, PeerId, Pin, PinInfo, PinInfoShort, PinOptions, Timestamp, TrackerStatus,
    TrackerStatusFilter,
};

use crate::config::TrackerConfig;
use crate::daemon_listing::{DaemonListing, ListingCursor, ListingError, ListingStore};
use crate::decision::{
    filter_is_op_only, local_status, needs_daemon, pin_batch_limit, pin_batch_pause, recover_action, retry_backoff,
    should_retry, track_action, wants_pinned, DaemonView, LocalStatus, OpKind, TrackAction, QUEUE_FULL_ERROR,
};
use crate::operation::{Enqueued, Finished, Job, OpTable, Operation};

mod state_sync;
mod status_walk;
pub use state_sync::SyncReport;
use status_walk::SharedListing;

/// Pins read from the state per store access during whole-pinset walks.
const STATE_PAGE_SIZE: usize = 1000;

/// Items buffered in a status/recover stream before the producer waits for the consumer.
const STREAM_BUFFER: usize = 1024;

/// The most pins one [`PinTracker::status_range`] answer covers (a few megabytes of JSON).
pub const STATUS_RANGE_MAX: usize = 10_000;

/// Reconciles what the state allocates to this member with what its IPFS daemon holds.
///
/// Created with [`PinTracker::new`], started with [`PinTracker::start`], stopped with
/// [`PinTracker::shutdown`] (also on drop).
pub struct PinTracker {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// What the tracker's tasks share.
struct Shared {
    config: TrackerConfig,
    peer: PeerId,
    peername: String,
    ipfs: Arc<dyn IpfsConnector>,
    state: Arc<dyn State>,
    /// Where the daemon's pin listings are written for state syncs and status walks.
    listings: Arc<ListingStore>,
    table: Mutex<OpTable>,
    /// Wakes a pin worker when a pin ticket is queued.
    pin_ready: Notify,
    /// Wakes the unpin worker when an unpin ticket is queued.
    unpin_ready: Notify,
    /// The daemon's identity, for `ipfs_peer_id` in statuses; `None` until a fetch succeeds.
    ipfs_id: Mutex<Option<IpfsId>>,
    /// Whether an identity fetch is running (at most one at a time).
    ipfs_id_fetching: AtomicBool,
    /// Becomes `true` on shutdown; retry timers watch it.
    shutdown: watch::Sender<bool>,
    /// The listing the status ranges share, its mark and when it was taken.
    range_listing: cluster_rt::tokio::sync::Mutex<Option<SharedListing>>,
    /// Whether pins may go to the daemon in batches now.
    batching: Mutex<BatchGate>,
}

/// Pin batches pause after one fails, longer after each further failure in a row.
#[derive(Debug, Default)]
struct BatchGate {
    paused_until: Option<Timestamp>,
    failed_in_a_row: u32,
}

impl PinTracker {
    /// A tracker for member `peer` (named `peername`) over its daemon `ipfs` and the pinset
    /// `state`, listing the daemon's pins into `listings` when it syncs. Nothing runs until
    /// [`PinTracker::start`]; operations tracked before then wait in
    /// the queues.
    pub fn new(
        config: TrackerConfig,
        peer: PeerId,
        peername: String,
        ipfs: Arc<dyn IpfsConnector>,
        state: Arc<dyn State>,
        listings: ListingStore,
    ) -> Arc<PinTracker> {
        let table = Mutex::new(OpTable::new(config.pin_queue_size_max));
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            config,
            peer,
            peername,
            ipfs,
            state,
            listings: Arc::new(listings),
            table,
            pin_ready: Notify::new(),
            unpin_ready: Notify::new(),
            ipfs_id: Mutex::new(None),
            ipfs_id_fetching: AtomicBool::new(false),
            shutdown,
            range_listing: cluster_rt::tokio::sync::Mutex::new(None),
            batching: Mutex::new(BatchGate::default()),
        });
        Arc::new(PinTracker {
            shared,
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Spawns `concurrent_pins` pin workers and one unpin worker, and fetches the daemon's
    /// identity in the background. Idempotent; does nothing after [`PinTracker::shutdown`].
    pub fn start(self: &Arc<Self>) {
        let mut tasks = lock(&self.tasks);
        if !tasks.is_empty() || *self.shared.shutdown.borrow() {
            return;
        }
        for _ in 0..self.shared.config.concurrent_pins.max(1) {
            tasks.push(cluster_rt::spawn(self.shared.clone().worker(OpKind::Pin)));
        }
        tasks.push(cluster_rt::spawn(self.shared.clone().worker(OpKind::Unpin)));
        drop(tasks);
        self.shared.refresh_ipfs_id();
    }

    /// Stops the workers and pending retries. In-flight daemon calls are dropped (the daemon
    /// connection closes, which cancels the request); their operations stay in the table.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }

    /// A pin was committed (replacing `previous`, if any). Never blocks on IO.
    ///
    /// Allocated here: a pin operation is queued (priority queue when fresh). Not allocated here
    /// but it was (or a pin operation exists): an unpin is queued. Meta pins are ignored.
    pub fn track(&self, pin: &Pin, previous: Option<&Pin>) {
        let existing = lock(&self.shared.table).get(&pin.cid).map(|op| op.kind);
        match track_action(pin, previous, &self.shared.peer, existing) {
            TrackAction::Pin => {
                self.shared.enqueue(OpKind::Pin, pin.clone());
            }
            TrackAction::Unpin => {
                self.shared.enqueue(OpKind::Unpin, pin.clone());
            }
            TrackAction::Nothing => {}
        }
    }

    /// An unpin was committed: queues an unpin of `cid` on the daemon (a no-op there when it is
    /// not pinned), cancelling any pin operation for it. Never blocks on IO.
    pub fn untrack(&self, cid: &Cid) {
        let pin = lock(&self.shared.table)
            .get(cid)
            .map(|op| op.pin())
            .unwrap_or_else(|| bare_pin(*cid));
        self.shared.enqueue(OpKind::Unpin, pin);
    }

    /// This member's status for `cid`: the operation's if one exists, else from the state and
    /// the daemon (`pin/ls?arg=`). Daemon and state failures are reported as `cluster_error`.
    pub async fn status(&self, cid: &Cid) -> PinInfo {
        self.shared.status(cid).await
    }

    /// Streams this member's status of every item matching `filter`.
    ///
    /// Filters that only select operation statuses (queued, pinning, unpinning, errors) are
    /// answered from the operation table. Otherwise the daemon's recursive pins are listed once
    /// into memory (about 100 bytes per daemon pin: ~100 MB for a million pins), then the state
    /// is walked page by page, then unpin operations for CIDs no longer in the state follow.
    /// Direct pins, which the recursive listing omits, are looked up one by one.
    ///
    /// Errors: when the daemon cannot list its pins, or the state cannot be read, the stream
    /// carries one `Err` and ends (as Go, where the whole call fails) rather than millions of
    /// `cluster_error` items.
    pub fn status_all(self: &Arc<Self>, filter: TrackerStatusFilter) -> mpsc::Receiver<Result<PinInfo, ClusterError>> {
        self.shared.spawn_status_all(filter)
    }

    /// This member's status of the pins of its state whose CIDs fall in `(after, through]` (CID
    /// byte order; `through: None` is the end), at most `limit` of them (clamped to
    /// 1..=[`STATUS_RANGE_MAX`]), each as [`PinTracker::status_all`] reports it, and of the
    /// operations in that range for CIDs the state no longer has, all in CID byte order. A
    /// cluster-wide status asks every member for one range at a time and merges the answers.
    ///
    /// The range ends early when `limit` pins were read: the second value is then the last CID
    /// covered, where the caller asks again. The daemon's pins are listed once and the listing
    /// is reused by the ranges asked for within [`TrackerConfig::status_listing_reuse`], and
    /// for longer by a stream of ranges when listing took long (see `SharedListing::serves`).
    ///
    /// Errors: the daemon cannot list its pins, or the state cannot be read.
    pub async fn status_range(
        &self,
        after: Option<Cid>,
        through: Option<Cid>,
        limit: usize,
    ) -> Result<(Vec<PinInfo>, Option<Cid>), ClusterError> {
        self.shared.status_range(after, through, limit).await
    }

    /// As [`PinTracker::status_range`], each status without this member's own fields (see
    /// [`PinTracker::member_fields`]) nor the pin's: what a cluster-wide status needs of a
    /// member, at a fraction of the cost of whole `PinInfo`s.
    pub async fn status_range_short(
        &self,
        after: Option<Cid>,
        through: Option<Cid>,
        limit: usize,
    ) -> Result<(Vec<(Cid, PinInfoShort)>, Option<Cid>), ClusterError> {
        self.shared.status_range_short(after, through, limit).await
    }

    /// As [`PinTracker::status_range_short`] for a range whose pins the caller has read from
    /// the state: `pins` are all of the state's pins in `(after, through]` (`through: None`: to
    /// the end), in CID byte order. The member that serves a cluster-wide status has read them
    /// already, and need not read them twice.
    ///
    /// Errors: the daemon cannot list its pins, or the state cannot be read.
    pub async fn status_of_pins_short(
        &self,
        after: Option<Cid>,
        through: Option<Cid>,
        pins: &[Pin],
    ) -> Result<Vec<(Cid, PinInfoShort)>, ClusterError> {
        self.shared.status_of_pins_short(after, through, pins).await
    }

    /// This member's own fields of every status it reports (peername, its daemon's identity),
    /// the rest left at their defaults.
    pub fn member_fields(&self) -> PinInfoShort {
        let mut short = PinInfoShort::default();
        self.shared.add_member_fields(&mut short);
        short
    }

    /// Re-queues `cid` if it is in `pin_error`, `unpin_error` or `unexpectedly_unpinned`, toward
    /// what the state wants now; returns the new status (unchanged for other statuses).
    ///
    /// The attempt count keeps growing across recoveries (as Go), so a pin that keeps failing
    /// stays out of the priority queue; a recovered operation that fails again once it is past
    /// `retry_limit` attempts is not retried automatically, only by the next recover.
    pub async fn recover(&self, cid: &Cid) -> Result<PinInfo, ClusterError> {
        let current = self.shared.status(cid).await;
        match self.shared.recover_from(current.short.status, cid).await? {
            Some(info) => Ok(info),
            None => Ok(current),
        }
    }

    /// Re-queues every failed operation and every unexpectedly unpinned pin, streaming the new
    /// status of each re-queued item only. A failure to list (see [`PinTracker::status_all`])
    /// ends the stream with one `Err`; a failure to re-queue one item (queue full, state read
    /// error) is sent as an `Err` for that item and the stream goes on.
    pub fn recover_all(self: &Arc<Self>) -> mpsc::Receiver<Result<PinInfo, ClusterError>> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let shared = self.shared.clone();
        cluster_rt::spawn(async move {
            let filter = TrackerStatusFilter(
                TrackerStatus::PinError.flag()
                    | TrackerStatus::UnpinError.flag()
                    | TrackerStatus::UnexpectedlyUnpinned.flag(),
            );
            let mut statuses = shared.spawn_status_all(filter);
            while let Some(item) = statuses.recv().await {
                let outcome = match item {
                    Ok(info) => shared.recover_from(info.short.status, &info.cid).await.transpose(),
                    Err(e) => Some(Err(e)),
                };
                if let Some(outcome) = outcome {
                    if tx.send(outcome).await.is_err() {
                        return;
                    }
                }
            }
        });
        rx
    }

    /// The periodic state sync: queues a pin for every pin allocated here that the daemon lacks
    /// and that has no operation (failed ones wait for `recover`). Daemon pins that are not in
    /// the state are counted, never unpinned: they may be the operator's own.
    pub async fn sync_state(&self) -> Result<SyncReport, ClusterError> {
        self.shared.sync_state().await
    }

    /// Operations waiting in the queues (pins and unpins), for the pinqueue informer.
    pub fn queued_count(&self) -> usize {
        lock(&self.shared.table).queued_count()
    }
}

impl Drop for PinTracker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for PinTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinTracker")
            .field("peer", &self.shared.peer)
            .field("peername", &self.shared.peername)
            .field("operations", &lock(&self.shared.table).len())
            .finish()
    }
}

impl Shared {
    /// Queues a `kind` operation for `pin` and wakes a worker.
    fn enqueue(&self, kind: OpKind, pin: Pin) -> Enqueued {
        let cid = pin.cid;
        let outcome = lock(&self.table).enqueue(kind, pin, Timestamp::now(), &self.config);
        self.after_enqueue(kind, &cid, outcome);
        outcome
    }

    fn after_enqueue(&self, kind: OpKind, cid: &Cid, outcome: Enqueued) {
        match outcome {
            Enqueued::Queued { .. } => self.ready(kind).notify_one(),
            Enqueued::QueueFull => tracing::error!(%cid, "{kind:?}: {QUEUE_FULL_ERROR}"),
            Enqueued::AlreadyOngoing => {}
        }
    }

    fn ready(&self, kind: OpKind) -> &Notify {
        match kind {
            OpKind::Pin => &self.pin_ready,
            OpKind::Unpin => &self.unpin_ready,
        }
    }

    /// A worker: takes tickets of `kind` forever (until aborted by shutdown).
    async fn worker(self: Arc<Self>, kind: OpKind) {
        loop {
            let now = Timestamp::now();
            let max = match kind {
                OpKind::Pin => pin_batch_limit(&self.config, lock(&self.batching).paused_until, now),
                OpKind::Unpin => 1,
            };
            let mut jobs = {
                let mut table = lock(&self.table);
                let jobs = table.next_jobs(kind, now, max);
                // Pass the baton: a stored Notify permit wakes only one worker, so a worker that
                // found work wakes another while work remains.
                if !jobs.is_empty() && table.tickets(kind) > 0 {
                    self.ready(kind).notify_one();
                }
                jobs
            };
            match jobs.len() {
                0 => self.ready(kind).notified().await,
                1 => self.run(jobs.remove(0)).await,
                _ => self.run_batch(jobs).await,
            }
        }
    }

    /// Pins the jobs of one batch (all of one depth) with one daemon call. All done when it
    /// succeeds; when it fails or takes longer than `pin_batch_timeout`, every pin goes back to
    /// the head of the queue untried and batching pauses, so they are tried one by one. A pin
    /// superseded meanwhile (an unpin) drops the call, since the daemon must not pin it after
    /// the unpin; the others go back to the queue.
    async fn run_batch(self: &Arc<Self>, jobs: Vec<Job>) {
        let cids: Vec<Cid> = jobs.iter().map(|job| job.cid).collect();
        let max_depth = jobs[0].pin.max_depth;
        let call = cluster_rt::timeout(self.config.pin_batch_timeout, self.ipfs.pin_many(&cids, max_depth));
        // The jobs of a batch share one cancel notification (`OpTable::next_jobs`).
        let superseded = jobs[0].cancel.notified();
        // `biased`: check cancellation first, and keep the simulator's schedule deterministic.
        let failure = cluster_rt::tokio::select! {
            biased;
            _ = superseded => None,
            result = call => match result {
                Ok(Ok(())) => {
                    lock(&self.batching).failed_in_a_row = 0;
                    self.refresh_ipfs_id();
                    let now = Timestamp::now();
                    let mut table = lock(&self.table);
                    for job in &jobs {
                        table.finish(job, Ok(()), now);
                    }
                    return;
                }
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {:?}", self.config.pin_batch_timeout)),
            },
        };
        let now = Timestamp::now();
        if let Some(error) = failure {
            let mut gate = lock(&self.batching);
            gate.failed_in_a_row = gate.failed_in_a_row.saturating_add(1);
            let pause = pin_batch_pause(gate.failed_in_a_row);
            gate.paused_until = Some(now.add(pause));
            tracing::info!(
                pins = jobs.len(),
                ?pause,
                "a pin batch failed ({error}); pinning one at a time"
            );
        }
        {
            let mut table = lock(&self.table);
            for job in jobs.iter().rev() {
                table.hand_back(job, now);
            }
        }
        self.ready(OpKind::Pin).notify_one();
    }

    /// Makes the daemon call of `job` and records the outcome.
    async fn run(self: &Arc<Self>, job: Job) {
        let call = async {
            match job.kind {
                OpKind::Pin => self.ipfs.pin(&job.cid, job.pin.max_depth).await,
                OpKind::Unpin => self.ipfs.unpin(&job.cid).await,
            }
        };
        // `biased`: check cancellation first, and keep the simulator's schedule deterministic.
        let result = cluster_rt::tokio::select! {
            biased;
            _ = job.cancel.notified() => {
                tracing::debug!(cid = %job.cid, "{:?} superseded: daemon call dropped", job.kind);
                return;
            }
            result = call => result,
        };
        if result.is_ok() {
            self.refresh_ipfs_id();
            if job.kind == OpKind::Unpin {
                // The daemon no longer holds it: the unpin the state machine asked for is done.
                // Not synced on its own: a crash that loses the clear leaves the tombstone, and
                // the next state sync unpins again, which the daemon answers at once.
                if let Err(e) = self.state.commit_unsynced(&[StateOp::ClearTombstone(job.cid)], None) {
                    tracing::warn!(cid = %job.cid, "clearing the unpin tombstone failed: {e}");
                }
            }
        }
        let finished = lock(&self.table).finish(&job, result.map_err(|e| e.to_string()), Timestamp::now());
        if let Finished::Failed { attempt_count } = finished {
            if should_retry(attempt_count, self.config.retry_limit) {
                let delay = retry_backoff(attempt_count, self.config.retry_backoff_base);
                tracing::info!(cid = %job.cid, attempt_count, ?delay, "{:?} failed; retrying", job.kind);
                self.schedule_retry(job.cid, job.generation, delay);
            } else {
                tracing::warn!(cid = %job.cid, attempt_count, "{:?} failed; waiting for recover", job.kind);
            }
        }
    }

    /// Re-queues the failed operation `(cid, generation)` after `delay`, unless superseded.
    fn schedule_retry(self: &Arc<Self>, cid: Cid, generation: u64, delay: Duration) {
        let shared = self.clone();
        let mut shutdown = self.shutdown.subscribe();
        cluster_rt::spawn(async move {
            cluster_rt::tokio::select! {
                biased;
                _ = shutdown.wait_for(|stopped| *stopped) => return,
                _ = cluster_rt::sleep(delay) => {}
            }
            let retried = lock(&shared.table).retry(&cid, generation, Timestamp::now(), &shared.config);
            if let Some((kind, outcome)) = retried {
                shared.after_enqueue(kind, &cid, outcome);
            }
        });
    }

    /// Fetches the daemon's identity in the background unless known or already being fetched.
    fn refresh_ipfs_id(self: &Arc<Self>) {
        if lock(&self.ipfs_id).is_some() || self.ipfs_id_fetching.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.clone();
        cluster_rt::spawn(async move {
            match shared.ipfs.id().await {
                Ok(id) => *lock(&shared.ipfs_id) = Some(id),
                Err(e) => tracing::debug!("IPFS daemon identity unknown: {e}"),
            }
            shared.ipfs_id_fetching.store(false, Ordering::Release);
        });
    }

    /// A status report with this member's identity.
    fn info(&self, cid: Cid, pin: Option<&Pin>, short: PinInfoShort) -> PinInfo {
        let mut short = short;
        self.add_member_fields(&mut short);
        PinInfo::new(cid, self.peer, pin, short)
    }

    /// Fills in this member's own fields of a status: its peername and its daemon's identity.
    fn add_member_fields(&self, short: &mut PinInfoShort) {
        short.peername = self.peername.clone();
        if let Some(id) = lock(&self.ipfs_id).as_ref() {
            short.ipfs_peer_id = id.id.clone();
            short.ipfs_peer_addresses = id.addresses.clone();
        }
    }

    fn op_info(&self, cid: Cid, op: &Operation) -> PinInfo {
        self.info(cid, Some(&op.pin()), op_short(op))
    }

    fn local_info(&self, cid: Cid, pin: Option<&Pin>, local: LocalStatus) -> PinInfo {
        self.info(cid, pin, local_short(local))
    }

    /// The operation's status for `cid`, if an operation exists.
    fn op_status_of(&self, cid: &Cid) -> Option<PinInfo> {
        let op = lock(&self.table).get(cid).cloned()?;
        Some(self.op_info(*cid, &op))
    }

    async fn status(self: &Arc<Self>, cid: &Cid) -> PinInfo {
        if let Some(info) = self.op_status_of(cid) {
            return info;
        }
        let pin = match self.state.get(cid) {
            Ok(pin) => pin,
            Err(e) => {
                let local = LocalStatus {
                    status: TrackerStatus::ClusterError,
                    error: e.to_string(),
                };
                return self.local_info(*cid, None, local);
            }
        };
        let daemon = if needs_daemon(pin.as_ref(), &self.peer) {
            DaemonOwned::from_answer(self.pin_ls_cid(cid).await)
        } else {
            DaemonOwned::NotAsked
        };
        // An operation may have started while the daemon answered: it is the newer truth.
        if let Some(info) = self.op_status_of(cid) {
            return info;
        }
        let local = local_status(pin.as_ref(), &self.peer, None, daemon.view());
        self.local_info(*cid, pin.as_ref(), local)
    }

    async fn pin_ls_cid(self: &Arc<Self>, cid: &Cid) -> Result<Option<IpfsPinType>, IpfsError> {
        let answer = self.ipfs.pin_ls_cid(cid).await;
        if answer.is_ok() {
            self.refresh_ipfs_id();
        }
        answer
    }

    /// The daemon's recursive pins, and a [`crate::operation::RecentPins`] mark taken before
    /// listing (pins completed after it may be missing from the listing).
    async fn daemon_listing(self: &Arc<Self>) -> Result<(DaemonListing, u64), ListingError> {
        let mark = lock(&self.table).recent.mark();
        let listing = self.listings.list(self.ipfs.as_ref()).await?;
        self.refresh_ipfs_id();
        Ok((listing, mark))
    }

    /// Whether the daemon holds `pin`, given whether the listing has it and its mark: listed,
    /// or pinned by us after the listing began; direct pins (not in the recursive listing) and
    /// pins the recent log cannot vouch for are looked up.
    async fn daemon_view_of(self: &Arc<Self>, pin: &Pin, listed: bool, mark: u64) -> DaemonOwned {
        if pin.max_depth != 0 {
            if listed {
                return DaemonOwned::Has(IpfsPinType::Recursive);
            }
            let pinned_since = lock(&self.table).recent.pinned_since(&pin.cid, mark);
            match pinned_since {
                Some(true) => return DaemonOwned::Has(IpfsPinType::Recursive),
                Some(false) => return DaemonOwned::Missing,
                None => {}
            }
        }
        DaemonOwned::from_answer(self.pin_ls_cid(&pin.cid).await)
    }

    /// Re-queues `cid`, whose status is `status`, per [`recover_action`]; `None` if nothing was
    /// re-queued.
    async fn recover_from(self: &Arc<Self>, status: TrackerStatus, cid: &Cid) -> Result<Option<PinInfo>, ClusterError> {
        let pin = self
            .state
            .get(cid)
            .map_err(|e| ClusterError::storage("reading the pinset", e))?;
        let outcome = match recover_action(status, pin.as_ref(), &self.peer) {
            TrackAction::Nothing => return Ok(None),
            TrackAction::Pin => match pin {
                Some(pin) => {
                    // A pin with no operation (unexpectedly unpinned) is not given one in error
                    // when the queue is full: millions may wait so for the next state sync.
                    let mut table = lock(&self.table);
                    if table.get(cid).is_none() && !table.has_room(OpKind::Pin) {
                        return Err(ClusterError::QueueFull);
                    }
                    drop(table);
                    self.enqueue(OpKind::Pin, pin)
                }
                None => return Ok(None),
            },
            TrackAction::Unpin => {
                let pin = pin
                    .or_else(|| lock(&self.table).get(cid).map(|op| op.pin()))
                    .unwrap_or_else(|| bare_pin(*cid));
                self.enqueue(OpKind::Unpin, pin)
            }
        };
        if outcome == Enqueued::QueueFull {
            return Err(ClusterError::QueueFull);
        }
        tracing::info!(%cid, "recover: re-queued ({status})");
        Ok(Some(self.status(cid).await))
    }
}

/// An owned [`DaemonView`] (the error text outlives the lookup).
enum DaemonOwned {
    NotAsked,
    Has(IpfsPinType),
    Missing,
    Failed(String),
}

impl DaemonOwned {
    fn from_answer(answer: Result<Option<IpfsPinType>, IpfsError>) -> DaemonOwned {
        match answer {
            Ok(Some(pin_type)) => DaemonOwned::Has(pin_type),
            Ok(None) => DaemonOwned::Missing,
            Err(e) => DaemonOwned::Failed(e.to_string()),
        }
    }

    fn view(&self) -> DaemonView<'_> {
        match self {
            DaemonOwned::NotAsked => DaemonView::NotAsked,
            DaemonOwned::Has(pin_type) => DaemonView::Has(*pin_type),
            DaemonOwned::Missing => DaemonView::Missing,
            DaemonOwned::Failed(error) => DaemonView::Failed(error),
        }
    }
}

/// The pin recorded for an unpin of a CID whose pin is no longer known.
fn bare_pin(cid: Cid) -> Pin {
    Pin::new(cid, PinOptions::default())
}

/// Locks `mutex`, ignoring poisoning: every critical section leaves its data consistent before
/// anything that could panic, so a poisoned lock still holds a valid table.
/// An operation's status, without the member's own fields.
fn op_short(op: &Operation) -> PinInfoShort {
    PinInfoShort {
        status: op.status(),
        timestamp: op.timestamp,
        error: op.error.clone(),
        attempt_count: op.attempt_count,
        priority_pin: op.priority_pin,
        ..PinInfoShort::default()
    }
}

/// A status found from the state and the daemon, without the member's own fields.
fn local_short(local: LocalStatus) -> PinInfoShort {
    PinInfoShort {
        status: local.status,
        error: local.error,
        timestamp: Timestamp::now(),
        ..Default::default()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
