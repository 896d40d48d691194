//! Operations and the operation table: what the tracker is doing or failed to do, per CID.
//!
//! Owns: [`Operation`] (kind, phase, attempts, priority, error, timestamp, the pin), the
//! [`OpTable`] that maps CIDs to their one current operation and holds the three queues
//! (priority pins, normal pins, unpins), and the [`RecentPins`] log that lets a whole-pinset walk
//! notice pins completed after its daemon snapshot. Synchronous: the tracker keeps one `OpTable`
//! behind a std mutex and never awaits while holding it.
//!
//! Queues hold `(cid, generation)` tickets, not operations. Replacing an operation gives the new
//! one a fresh generation, so the old ticket goes stale and is skipped when popped; that is how a
//! queued operation is cancelled in O(1). An operation already handed to a worker is cancelled
//! through its [`Notify`], which makes the worker drop the daemon call, and its result is
//! discarded because the generation no longer matches.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use cluster_rt::tokio::sync::Notify;
use cluster_types::{pin_codec, Cid, Pin, Timestamp, TrackerStatus};

use crate::config::TrackerConfig;
use crate::decision::{is_priority, op_status, phase_change_allowed, OpKind, OpPhase, OpView, QUEUE_FULL_ERROR};

/// One pin or unpin the tracker is doing, or failed to do, for one CID.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Pin or unpin.
    pub kind: OpKind,
    /// Queued, in progress or failed.
    pub phase: OpPhase,
    /// The pin as committed (a bare pin for an unpin of a CID no longer in the state), in its
    /// binary form ([`pin_codec`]): a `Pin` takes 472 bytes in place and a table slot with one
    /// 632, while a state sync may queue up to a million pins (`max_pin_queue_size`).
    /// [`Operation::pin`] decodes it.
    pin: Box<[u8]>,
    /// Daemon calls made so far; carried over when a failed operation is replaced by one of the
    /// same kind (automatic retry, `recover`, re-commit), as Go does, so that repeatedly failing
    /// pins lose their priority.
    pub attempt_count: u32,
    /// Whether it was queued in the priority queue.
    pub priority_pin: bool,
    /// The daemon's error text in [`OpPhase::Error`], empty otherwise.
    pub error: String,
    /// When the phase last changed.
    pub timestamp: Timestamp,
    /// Unique per operation: queue tickets and worker results carrying another generation are
    /// stale.
    pub(crate) generation: u64,
    /// Set while a worker runs it; notified to make the worker drop the daemon call.
    pub(crate) cancel: Option<Arc<Notify>>,
}

fn encoded(pin: &Pin) -> Box<[u8]> {
    pin_codec::encode_pin(pin, true).into_boxed_slice()
}

impl Operation {
    /// The pin as committed.
    pub fn pin(&self) -> Pin {
        pin_codec::decode_pin(&self.pin, None).expect("an operation's pin decodes: it was encoded here")
    }

    /// The tracker status this operation reports.
    pub fn status(&self) -> TrackerStatus {
        op_status(self.kind, self.phase)
    }

    /// The view the classification functions take.
    pub fn view(&self) -> OpView<'_> {
        OpView {
            kind: self.kind,
            phase: self.phase,
            error: &self.error,
        }
    }

    fn set_phase(&mut self, phase: OpPhase, now: Timestamp) {
        assert!(
            phase_change_allowed(self.phase, phase),
            "{:?} operation of {}: {:?} -> {:?} is not a phase change an operation makes",
            self.kind,
            self.pin().cid,
            self.phase,
            phase
        );
        self.phase = phase;
        self.timestamp = now;
        if phase != OpPhase::Error {
            self.error.clear();
        }
    }

    fn cancel_worker(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            // notify_one stores a permit, so the worker sees it even if not yet waiting.
            cancel.notify_one();
        }
    }
}

/// The outcome of [`OpTable::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new operation was queued.
    Queued {
        /// In the priority queue.
        priority: bool,
    },
    /// An operation of the same kind is already queued or running; nothing changed.
    AlreadyOngoing,
    /// The queue is full: the operation was recorded in its error phase.
    QueueFull,
}

/// What a worker takes from a queue: enough to call the daemon without holding the lock.
#[derive(Debug, Clone)]
pub struct Job {
    /// The CID.
    pub cid: Cid,
    /// The operation's generation when taken.
    pub generation: u64,
    /// Pin or unpin.
    pub kind: OpKind,
    /// The pin (for its depth).
    pub pin: Pin,
    /// Notified when the operation is superseded.
    pub cancel: Arc<Notify>,
}

/// The outcome of [`OpTable::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Success: the operation left the table.
    Done,
    /// Failure recorded; the operation is in its error phase after this many attempts.
    Failed {
        /// Attempts so far.
        attempt_count: u32,
    },
    /// Another operation replaced this one meanwhile: the result was discarded.
    Superseded,
}

/// Successful pin completions, newest last, bounded; see the module doc.
#[derive(Debug)]
pub struct RecentPins {
    sequence: u64,
    order: VecDeque<(u64, Cid)>,
    latest: HashMap<Cid, u64>,
    evicted_through: u64,
    capacity: usize,
}

impl RecentPins {
    /// An empty log keeping at most `capacity` completions.
    pub fn new(capacity: usize) -> RecentPins {
        RecentPins {
            sequence: 0,
            order: VecDeque::new(),
            latest: HashMap::new(),
            evicted_through: 0,
            capacity: capacity.max(1),
        }
    }

    /// Records that a pin of `cid` succeeded.
    pub fn record(&mut self, cid: Cid) {
        self.sequence += 1;
        self.order.push_back((self.sequence, cid));
        self.latest.insert(cid, self.sequence);
        while self.order.len() > self.capacity {
            if let Some((sequence, old)) = self.order.pop_front() {
                self.evicted_through = sequence;
                if self.latest.get(&old) == Some(&sequence) {
                    self.latest.remove(&old);
                }
            }
        }
    }

    /// A mark to compare later completions against.
    pub fn mark(&self) -> u64 {
        self.sequence
    }

    /// Whether a pin of `cid` succeeded after `mark`: `None` if the log no longer reaches back
    /// to `mark` (too many completions since) and the caller must ask the daemon.
    pub fn pinned_since(&self, cid: &Cid, mark: u64) -> Option<bool> {
        if self.evicted_through > mark {
            return None;
        }
        Some(self.latest.get(cid).is_some_and(|&sequence| sequence > mark))
    }
}

/// Every current operation, one per CID, and the queues of tickets.
#[derive(Debug)]
pub struct OpTable {
    ops: HashMap<Cid, Operation>,
    priority: VecDeque<(Cid, u64)>,
    normal: VecDeque<(Cid, u64)>,
    unpin: VecDeque<(Cid, u64)>,
    next_generation: u64,
    queue_size_max: usize,
    /// Successful pins, for whole-pinset walks.
    pub recent: RecentPins,
}

impl OpTable {
    /// An empty table whose pin and unpin queues each hold at most `queue_size_max` tickets.
    pub fn new(queue_size_max: usize) -> OpTable {
        OpTable {
            ops: HashMap::new(),
            priority: VecDeque::new(),
            normal: VecDeque::new(),
            unpin: VecDeque::new(),
            next_generation: 1,
            queue_size_max,
            recent: RecentPins::new(16_384),
        }
    }

    /// The operation for `cid`, if any.
    pub fn get(&self, cid: &Cid) -> Option<&Operation> {
        self.ops.get(cid)
    }

    /// Every operation (cloned: the caller sends them after releasing the lock).
    pub fn snapshot(&self) -> Vec<(Cid, Operation)> {
        self.ops.iter().map(|(cid, op)| (*cid, op.clone())).collect()
    }

    /// The operations (cloned) of the CIDs `keep` selects.
    pub fn matching(&self, keep: impl Fn(&Cid) -> bool) -> Vec<(Cid, Operation)> {
        self.ops
            .iter()
            .filter(|(cid, _)| keep(cid))
            .map(|(cid, op)| (*cid, op.clone()))
            .collect()
    }

    /// Number of operations in the table.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Operations waiting in a queue (pins and unpins).
    pub fn queued_count(&self) -> usize {
        self.ops.values().filter(|op| op.phase == OpPhase::Queued).count()
    }

    /// Starts a `kind` operation for `pin.cid`, replacing (and cancelling) any operation of the
    /// other kind or any failed one. A queued or running operation of the same kind is kept
    /// (a queued pin takes the newer `pin`, so a changed depth is honoured).
    pub fn enqueue(&mut self, kind: OpKind, pin: Pin, now: Timestamp, config: &TrackerConfig) -> Enqueued {
        let cid = pin.cid;
        let mut attempt_count = 0;
        if let Some(existing) = self.ops.get_mut(&cid) {
            if existing.kind == kind && existing.phase != OpPhase::Error {
                if existing.phase == OpPhase::Queued && kind == OpKind::Pin {
                    existing.pin = encoded(&pin);
                }
                return Enqueued::AlreadyOngoing;
            }
            if existing.kind == kind {
                attempt_count = existing.attempt_count;
            }
            existing.cancel_worker();
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let priority = kind == OpKind::Pin && is_priority(pin.timestamp, now, attempt_count, config);
        let mut op = Operation {
            kind,
            phase: OpPhase::Queued,
            pin: encoded(&pin),
            attempt_count,
            priority_pin: priority,
            error: String::new(),
            timestamp: now,
            generation,
            cancel: None,
        };
        let outcome = self.push_ticket(&mut op, cid);
        self.ops.insert(cid, op);
        outcome
    }

    /// Puts a ticket for `op` in its queue, or marks it failed when the queue is full.
    fn push_ticket(&mut self, op: &mut Operation, cid: Cid) -> Enqueued {
        if self.queue_len(op.kind) >= self.queue_size_max {
            self.compact(op.kind);
        }
        if self.queue_len(op.kind) >= self.queue_size_max {
            op.set_phase(OpPhase::Error, op.timestamp);
            op.error = QUEUE_FULL_ERROR.to_string();
            return Enqueued::QueueFull;
        }
        let ticket = (cid, op.generation);
        match (op.kind, op.priority_pin) {
            (OpKind::Pin, true) => self.priority.push_back(ticket),
            (OpKind::Pin, false) => self.normal.push_back(ticket),
            (OpKind::Unpin, _) => self.unpin.push_back(ticket),
        }
        Enqueued::Queued {
            priority: op.priority_pin,
        }
    }

    /// Tickets in the `kind` queues, stale ones included (a cheap hint that work may remain).
    pub fn tickets(&self, kind: OpKind) -> usize {
        self.queue_len(kind)
    }

    fn queue_len(&self, kind: OpKind) -> usize {
        match kind {
            OpKind::Pin => self.priority.len() + self.normal.len(),
            OpKind::Unpin => self.unpin.len(),
        }
    }

    /// Whether a `kind` operation would be queued now rather than fail with a full queue.
    pub fn has_room(&mut self, kind: OpKind) -> bool {
        if self.queue_len(kind) >= self.queue_size_max {
            self.compact(kind);
        }
        self.queue_len(kind) < self.queue_size_max
    }

    /// Drops stale tickets, so that cancelled operations do not count against the queue size.
    fn compact(&mut self, kind: OpKind) {
        let ops = &self.ops;
        let live = |ticket: &(Cid, u64)| is_live(ops, ticket);
        match kind {
            OpKind::Pin => {
                self.priority.retain(live);
                self.normal.retain(live);
            }
            OpKind::Unpin => self.unpin.retain(live),
        }
    }

    /// Takes the next live `kind` ticket (priority pins first) and moves its operation in
    /// progress; `None` when the queue has no live ticket.
    pub fn next_job(&mut self, kind: OpKind, now: Timestamp) -> Option<Job> {
        loop {
            let ticket = match kind {
                OpKind::Pin => self.priority.pop_front().or_else(|| self.normal.pop_front()),
                OpKind::Unpin => self.unpin.pop_front(),
            }?;
            if !is_live(&self.ops, &ticket) {
                continue;
            }
            let op = self.ops.get_mut(&ticket.0)?;
            let cancel = Arc::new(Notify::new());
            op.set_phase(OpPhase::InProgress, now);
            op.attempt_count = op.attempt_count.saturating_add(1);
            op.cancel = Some(cancel.clone());
            return Some(Job {
                cid: ticket.0,
                generation: ticket.1,
                kind: op.kind,
                pin: op.pin(),
                cancel,
            });
        }
    }

    /// Takes up to `max` live `kind` tickets in queue order, as [`OpTable::next_job`] does, for
    /// one daemon call: all of one depth, so the batch ends before a pin of another depth
    /// (which goes back to the head of its queue). The jobs of a batch share one cancel
    /// [`Notify`]: superseding any of them drops the call.
    pub fn next_jobs(&mut self, kind: OpKind, now: Timestamp, max: usize) -> Vec<Job> {
        let mut jobs: Vec<Job> = Vec::new();
        while jobs.len() < max.max(1) {
            let Some(job) = self.next_job(kind, now) else { break };
            if jobs
                .first()
                .is_some_and(|first| first.pin.max_depth != job.pin.max_depth)
            {
                self.hand_back(&job, now);
                break;
            }
            jobs.push(job);
        }
        if jobs.len() > 1 {
            let cancel = jobs[0].cancel.clone();
            for job in &mut jobs[1..] {
                job.cancel = cancel.clone();
                if let Some(op) = self.ops.get_mut(&job.cid) {
                    op.cancel = Some(cancel.clone());
                }
            }
        }
        jobs
    }

    /// Puts `job`'s operation back at the head of its queue as if it had not been taken (its
    /// attempt is not counted): a batch that failed as a whole hands its pins back to be tried
    /// one by one. Nothing happens when the operation was superseded meanwhile.
    pub fn hand_back(&mut self, job: &Job, now: Timestamp) {
        let Some(op) = self.ops.get_mut(&job.cid) else { return };
        if op.generation != job.generation || op.phase != OpPhase::InProgress {
            return;
        }
        op.set_phase(OpPhase::Queued, now);
        op.attempt_count = op.attempt_count.saturating_sub(1);
        op.cancel = None;
        let ticket = (job.cid, job.generation);
        match (op.kind, op.priority_pin) {
            (OpKind::Pin, true) => self.priority.push_front(ticket),
            (OpKind::Pin, false) => self.normal.push_front(ticket),
            (OpKind::Unpin, _) => self.unpin.push_front(ticket),
        }
    }

    /// Records the daemon's answer for `job`; `Err` carries the daemon's error text.
    pub fn finish(&mut self, job: &Job, result: Result<(), String>, now: Timestamp) -> Finished {
        let current = match self.ops.get_mut(&job.cid) {
            Some(op) if op.generation == job.generation && op.phase == OpPhase::InProgress => op,
            _ => return Finished::Superseded,
        };
        current.cancel = None;
        match result {
            Ok(()) => {
                if job.kind == OpKind::Pin {
                    self.recent.record(job.cid);
                }
                self.ops.remove(&job.cid);
                Finished::Done
            }
            Err(error) => {
                current.set_phase(OpPhase::Error, now);
                current.error = error;
                Finished::Failed {
                    attempt_count: current.attempt_count,
                }
            }
        }
    }

    /// Re-queues the failed operation `(cid, generation)` for an automatic retry, unless it was
    /// superseded or recovered meanwhile. Returns the operation's kind and the outcome, `None`
    /// if nothing was re-queued.
    pub fn retry(
        &mut self,
        cid: &Cid,
        generation: u64,
        now: Timestamp,
        config: &TrackerConfig,
    ) -> Option<(OpKind, Enqueued)> {
        let mut op = match self.ops.remove(cid) {
            Some(op) if op.generation == generation && op.phase == OpPhase::Error => op,
            Some(other) => {
                self.ops.insert(*cid, other);
                return None;
            }
            None => return None,
        };
        op.set_phase(OpPhase::Queued, now);
        op.priority_pin = op.kind == OpKind::Pin && is_priority(op.pin().timestamp, now, op.attempt_count, config);
        let outcome = self.push_ticket(&mut op, *cid);
        let kind = op.kind;
        self.ops.insert(*cid, op);
        Some((kind, outcome))
    }
}

fn is_live(ops: &HashMap<Cid, Operation>, ticket: &(Cid, u64)) -> bool {
    ops.get(&ticket.0)
        .is_some_and(|op| op.generation == ticket.1 && op.phase == OpPhase::Queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_types::PinOptions;
    use std::time::Duration;

    const NOW: Timestamp = Timestamp::ZERO;

    fn now() -> Timestamp {
        Timestamp::from_unix(1_800_000_000, 0)
    }

    fn pin(n: u32, fresh: bool) -> Pin {
        let mut pin = Pin::new(Cid::raw_sha256(&n.to_be_bytes()), PinOptions::default());
        pin.timestamp = if fresh {
            Timestamp::from_unix(1_800_000_000 - 10, 0)
        } else {
            NOW
        };
        pin
    }

    #[test]
    fn priority_tickets_are_taken_first() {
        let config = TrackerConfig::default();
        let mut table = OpTable::new(10);
        assert_eq!(
            table.enqueue(OpKind::Pin, pin(1, false), now(), &config),
            Enqueued::Queued { priority: false }
        );
        assert_eq!(
            table.enqueue(OpKind::Pin, pin(2, true), now(), &config),
            Enqueued::Queued { priority: true }
        );
        assert_eq!(table.queued_count(), 2);
        let first = table.next_job(OpKind::Pin, now()).unwrap();
        assert_eq!(first.cid, pin(2, true).cid);
        let op = table.get(&first.cid).unwrap();
        assert_eq!((op.status(), op.attempt_count), (TrackerStatus::Pinning, 1));
        assert_eq!(table.next_job(OpKind::Pin, now()).unwrap().cid, pin(1, false).cid);
        assert!(table.next_job(OpKind::Pin, now()).is_none());
        assert!(table.next_job(OpKind::Unpin, now()).is_none());
    }

    #[test]
    fn a_batch_takes_tickets_in_order_and_stops_at_another_depth() {
        let config = TrackerConfig::default();
        let mut table = OpTable::new(10);
        let mut direct = pin(3, false);
        direct.max_depth = 0;
        for p in [pin(1, true), pin(2, false), direct.clone(), pin(4, false)] {
            table.enqueue(OpKind::Pin, p, now(), &config);
        }
        let batch = table.next_jobs(OpKind::Pin, now(), 10);
        let cids: Vec<Cid> = batch.iter().map(|job| job.cid).collect();
        assert_eq!(
            cids,
            vec![pin(1, true).cid, pin(2, false).cid],
            "priority first, then up to the direct pin"
        );
        let op = table.get(&direct.cid).unwrap();
        assert_eq!(
            (op.status(), op.attempt_count),
            (TrackerStatus::PinQueued, 0),
            "handed back untried"
        );
        assert_eq!(
            table.next_jobs(OpKind::Pin, now(), 10)[0].cid,
            direct.cid,
            "and taken next"
        );
        assert_eq!(table.next_jobs(OpKind::Pin, now(), 1).len(), 1, "max bounds the batch");
        assert!(table.next_jobs(OpKind::Pin, now(), 10).is_empty());
    }

    #[test]
    fn a_handed_back_batch_is_taken_again_in_its_order_without_counting_the_attempt() {
        let config = TrackerConfig::default();
        let mut table = OpTable::new(10);
        for n in 1..=3 {
            table.enqueue(OpKind::Pin, pin(n, false), now(), &config);
        }
        let batch = table.next_jobs(OpKind::Pin, now(), 2);
        // Superseded meanwhile: an unpin replaces the second pin, whose hand-back does nothing.
        table.enqueue(OpKind::Unpin, pin(2, false), now(), &config);
        for job in batch.iter().rev() {
            table.hand_back(job, now());
        }
        assert_eq!(
            table.get(&pin(2, false).cid).unwrap().status(),
            TrackerStatus::UnpinQueued
        );
        let again: Vec<(Cid, u32)> = table
            .next_jobs(OpKind::Pin, now(), 1)
            .iter()
            .map(|job| (job.cid, table.get(&job.cid).unwrap().attempt_count))
            .collect();
        assert_eq!(again, vec![(pin(1, false).cid, 1)]);
        assert_eq!(table.next_job(OpKind::Pin, now()).unwrap().cid, pin(3, false).cid);
        assert!(table.next_job(OpKind::Pin, now()).is_none());
    }

    #[test]
    fn same_kind_is_deduplicated_other_kind_replaces() {
        let config = TrackerConfig::default();
        let mut table = OpTable::new(10);
        let p = pin(1, false);
        table.enqueue(OpKind::Pin, p.clone(), now(), &config);
        assert_eq!(
            table.enqueue(OpKind::Pin, p.clone(), now(), &config),
            Enqueued::AlreadyOngoing
        );
        let job = table.next_job(OpKind::Pin, now()).unwrap();
        assert_eq!(
            table.enqueue(OpKind::Pin, p.clone(), now(), &config),
            Enqueued::AlreadyOngoing
        );
        assert_eq!(
            table.enqueue(OpKind::Unpin, p.clone(), now(), &config),
            Enqueued::Queued { priority: false }
        );
        assert_eq!(table.get(&p.cid).unwrap().status(), TrackerStatus::UnpinQueued);
        // The running pin was told to stop and its late result is ignored.
        assert_eq!(table.finish(&job, Ok(()), now()), Finished::Superseded);
        assert_eq!(table.get(&p.cid).unwrap().status(), TrackerStatus::UnpinQueued);
        let unpin = table.next_job(OpKind::Unpin, now()).unwrap();
        assert_eq!(table.finish(&unpin, Ok(()), now()), Finished::Done);
        assert!(table.is_empty());
    }

    #[cluster_rt::tokio::test]
    async fn cancelled_worker_is_notified() {
        let config = TrackerConfig::default();
        let mut table = OpTable::new(10);
        let p = pin(1, false);
        table.enqueue(OpKind::Pin, p.clone(), now(), &config);
        let job = table.next_job(OpKind::Pin, now()).unwrap();
        table.enqueue(OpKind::Unpin, p, now(), &config);
        cluster_rt::timeout(Duration::from_secs(5), job.cancel.notified())
            .await
            .expect("cancel notified");
    }

    #[test]
    fn failures_keep_attempts_and_retry_requeues() {
        let config = TrackerConfig {
            retry_limit: 3,
            ..TrackerConfig::default()
        };
        let mut table = OpTable::new(10);
        let p = pin(1, false);
        table.enqueue(OpKind::Pin, p.clone(), now(), &config);
        let job = table.next_job(OpKind::Pin, now()).unwrap();
        assert_eq!(
            table.finish(&job, Err("boom".into()), now()),
            Finished::Failed { attempt_count: 1 }
        );
        let op = table.get(&p.cid).unwrap();
        assert_eq!((op.status(), op.error.as_str()), (TrackerStatus::PinError, "boom"));
        assert_eq!(table.queued_count(), 0);
        // A stale generation does not re-queue.
        assert_eq!(table.retry(&p.cid, job.generation + 100, now(), &config), None);
        assert_eq!(
            table.retry(&p.cid, job.generation, now(), &config),
            Some((OpKind::Pin, Enqueued::Queued { priority: false }))
        );
        assert_eq!(table.get(&p.cid).unwrap().error, "");
        let job = table.next_job(OpKind::Pin, now()).unwrap();
        assert_eq!(
            table.finish(&job, Err("boom".into()), now()),
            Finished::Failed { attempt_count: 2 }
        );
        // A new pin of the same kind after a failure keeps counting.
        table.enqueue(OpKind::Pin, p.clone(), now(), &config);
        assert_eq!(table.get(&p.cid).unwrap().attempt_count, 2);
        // The other kind starts from zero.
        table.enqueue(OpKind::Unpin, p.clone(), now(), &config);
        assert_eq!(table.get(&p.cid).unwrap().attempt_count, 0);
    }

    #[test]
    fn full_queue_records_an_error_and_stale_tickets_do_not_count() {
        let config = TrackerConfig::default();
        let mut table = OpTable::new(2);
        table.enqueue(OpKind::Pin, pin(1, false), now(), &config);
        table.enqueue(OpKind::Pin, pin(2, true), now(), &config);
        assert_eq!(
            table.enqueue(OpKind::Pin, pin(3, false), now(), &config),
            Enqueued::QueueFull
        );
        let op = table.get(&pin(3, false).cid).unwrap();
        assert_eq!(
            (op.status(), op.error.as_str()),
            (TrackerStatus::PinError, QUEUE_FULL_ERROR)
        );
        // The unpin queue is separate.
        assert_eq!(
            table.enqueue(OpKind::Unpin, pin(4, false), now(), &config),
            Enqueued::Queued { priority: false }
        );
        // Replacing pin 1 by an unpin leaves a stale pin ticket, which compaction drops.
        assert_eq!(
            table.enqueue(OpKind::Unpin, pin(1, false), now(), &config),
            Enqueued::Queued { priority: false }
        );
        assert_eq!(
            table.enqueue(OpKind::Pin, pin(3, false), now(), &config),
            Enqueued::Queued { priority: false }
        );
        assert_eq!(table.queued_count(), 4);
    }

    #[test]
    fn recent_pins_reach_back_or_say_unknown() {
        let mut recent = RecentPins::new(2);
        let (a, b, c) = (pin(1, false).cid, pin(2, false).cid, pin(3, false).cid);
        recent.record(a);
        let mark = recent.mark();
        assert_eq!(recent.pinned_since(&a, mark), Some(false));
        recent.record(b);
        assert_eq!(recent.pinned_since(&b, mark), Some(true));
        assert_eq!(recent.pinned_since(&c, mark), Some(false));
        recent.record(c);
        recent.record(a);
        assert_eq!(recent.pinned_since(&c, mark), None);
    }
}
