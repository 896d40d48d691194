//! The sans-IO core of the tracker: pure functions that decide, from what the state says, what
//! operation is in flight and what the daemon reports, which status a pin has and what to do.
//!
//! Owns: status classification ([`local_status`]), what `track` and `recover` should enqueue
//! ([`track_action`], [`recover_action`]), the queue-priority rule ([`is_priority`]), the retry
//! rule ([`should_retry`], [`retry_backoff`]), which `status_all` filters the operation map
//! alone can answer ([`filter_is_op_only`]) and which phase changes are allowed
//! ([`phase_change_allowed`]). Nothing here awaits, locks or reads a clock.

use std::time::Duration;

use cluster_ipfs::IpfsPinType;
use cluster_types::{PeerId, Pin, PinType, Timestamp, TrackerStatus, TrackerStatusFilter};

use crate::config::TrackerConfig;

/// Error text of `unexpectedly_unpinned` (as Go).
pub const UNEXPECTEDLY_UNPINNED_ERROR: &str = "the item should be pinned but it is not";

/// Error text of an operation refused because its queue is full (as Go).
pub const QUEUE_FULL_ERROR: &str = "pin/unpin operation queue is full. Try increasing max_pin_queue_size";

/// What an operation does to the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `pin/add`.
    Pin,
    /// `pin/rm`.
    Unpin,
}

/// Where an operation stands. Done operations leave the map, so there is no `Done` phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpPhase {
    /// Waiting in a queue for a worker.
    Queued,
    /// A worker is waiting for the daemon.
    InProgress,
    /// The daemon call failed (or the queue was full); retried automatically or by `recover`.
    Error,
}

/// Whether an operation may move from phase `from` to `to`: a worker takes a queued one, the
/// daemon's failure (or a full queue) puts it in error, a retry or recover queues it again, and
/// a pin batch that failed as a whole hands its pins back to the queue.
/// Done operations leave the map instead of changing phase.
pub fn phase_change_allowed(from: OpPhase, to: OpPhase) -> bool {
    use OpPhase::{Error, InProgress, Queued};
    matches!(
        (from, to),
        (Queued, InProgress) | (Queued, Error) | (InProgress, Error) | (Error, Queued) | (InProgress, Queued)
    )
}

/// What the classification needs to know about an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpView<'a> {
    /// Pin or unpin.
    pub kind: OpKind,
    /// Its phase.
    pub phase: OpPhase,
    /// The error text (meaningful in [`OpPhase::Error`]).
    pub error: &'a str,
}

/// What the daemon said about one CID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonView<'a> {
    /// The daemon was not asked (not needed, see [`needs_daemon`]).
    NotAsked,
    /// The daemon pins it this way.
    Has(IpfsPinType),
    /// The daemon does not pin it.
    Missing,
    /// The daemon could not be asked; the error text.
    Failed(&'a str),
}

/// A classified status with its error text (empty unless an error status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStatus {
    /// The status.
    pub status: TrackerStatus,
    /// Why, for error statuses and `unexpectedly_unpinned`.
    pub error: String,
}

impl LocalStatus {
    fn ok(status: TrackerStatus) -> LocalStatus {
        LocalStatus {
            status,
            error: String::new(),
        }
    }
}

/// The tracker status of an operation in `phase`.
pub fn op_status(kind: OpKind, phase: OpPhase) -> TrackerStatus {
    match (kind, phase) {
        (OpKind::Pin, OpPhase::Queued) => TrackerStatus::PinQueued,
        (OpKind::Pin, OpPhase::InProgress) => TrackerStatus::Pinning,
        (OpKind::Pin, OpPhase::Error) => TrackerStatus::PinError,
        (OpKind::Unpin, OpPhase::Queued) => TrackerStatus::UnpinQueued,
        (OpKind::Unpin, OpPhase::InProgress) => TrackerStatus::Unpinning,
        (OpKind::Unpin, OpPhase::Error) => TrackerStatus::UnpinError,
    }
}

/// Whether this member's daemon must hold `pin` (meta pins are never pinned on IPFS).
pub fn wants_pinned(pin: Option<&Pin>, me: &PeerId) -> bool {
    pin.is_some_and(|pin| pin.pin_type != PinType::Meta && pin.is_allocated_to(me))
}

/// Whether classifying a pin with no operation in flight needs the daemon's answer.
pub fn needs_daemon(pin: Option<&Pin>, me: &PeerId) -> bool {
    wants_pinned(pin, me)
}

/// Whether a daemon pin of type `pin_type` satisfies a cluster pin of depth `max_depth`.
///
/// A recursive or depth-limited cluster pin needs a recursive daemon pin (a direct or indirect
/// pin does not keep the DAG); a direct cluster pin is satisfied by a direct or a recursive pin
/// of the same CID. An indirect pin never counts: it lasts only as long as some other pin.
pub fn is_pinned_on_daemon(max_depth: i32, pin_type: IpfsPinType) -> bool {
    match pin_type {
        IpfsPinType::Recursive => true,
        IpfsPinType::Direct => max_depth == 0,
        IpfsPinType::Indirect => false,
    }
}

/// The status of one CID on this member.
///
/// `pin` is the state's pin (`None`: not in the pinset), `op` the operation in flight or failed,
/// `daemon` what the daemon said (only consulted when [`needs_daemon`]). An operation wins over
/// everything else, as in Go: it is the most recent intent.
pub fn local_status(pin: Option<&Pin>, me: &PeerId, op: Option<OpView<'_>>, daemon: DaemonView<'_>) -> LocalStatus {
    if let Some(op) = op {
        let status = op_status(op.kind, op.phase);
        let error = if op.phase == OpPhase::Error {
            op.error.to_string()
        } else {
            String::new()
        };
        return LocalStatus { status, error };
    }
    let pin = match pin {
        None => return LocalStatus::ok(TrackerStatus::Unpinned),
        Some(pin) => pin,
    };
    if pin.pin_type == PinType::Meta {
        return LocalStatus::ok(TrackerStatus::Sharded);
    }
    if !pin.is_allocated_to(me) {
        return LocalStatus::ok(TrackerStatus::Remote);
    }
    match daemon {
        DaemonView::Has(pin_type) if is_pinned_on_daemon(pin.max_depth, pin_type) => {
            LocalStatus::ok(TrackerStatus::Pinned)
        }
        DaemonView::Has(_) | DaemonView::Missing => LocalStatus {
            status: TrackerStatus::UnexpectedlyUnpinned,
            error: UNEXPECTEDLY_UNPINNED_ERROR.to_string(),
        },
        DaemonView::Failed(error) => LocalStatus {
            status: TrackerStatus::ClusterError,
            error: error.to_string(),
        },
        DaemonView::NotAsked => LocalStatus::ok(TrackerStatus::Undefined),
    }
}

/// What `track` should enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackAction {
    /// Nothing to do (meta pin, or remote and never ours).
    Nothing,
    /// Enqueue a pin operation.
    Pin,
    /// Enqueue an unpin operation.
    Unpin,
}

/// What to do when `pin` is committed, replacing `previous`; `existing` is the kind of the
/// operation currently tracked for the CID, if any.
///
/// A pin that is no longer ours is unpinned when it was ours before, or when a pin operation
/// for it exists (covers a state replaced wholesale by a snapshot, where `previous` is unknown).
pub fn track_action(pin: &Pin, previous: Option<&Pin>, me: &PeerId, existing: Option<OpKind>) -> TrackAction {
    if pin.pin_type == PinType::Meta {
        return TrackAction::Nothing;
    }
    if wants_pinned(Some(pin), me) {
        return TrackAction::Pin;
    }
    if wants_pinned(previous, me) || existing == Some(OpKind::Pin) {
        return TrackAction::Unpin;
    }
    TrackAction::Nothing
}

/// What `recover` should enqueue for a CID with `status`; `pin` is the state's current pin.
///
/// Failed operations and lost pins are re-queued toward what the state wants *now* (a pin that
/// failed and has since been moved elsewhere is unpinned, not pinned again). Other statuses are
/// left alone: queued and in-progress operations are already on their way.
pub fn recover_action(status: TrackerStatus, pin: Option<&Pin>, me: &PeerId) -> TrackAction {
    match status {
        TrackerStatus::PinError | TrackerStatus::UnpinError | TrackerStatus::UnexpectedlyUnpinned => {
            if wants_pinned(pin, me) {
                TrackAction::Pin
            } else {
                TrackAction::Unpin
            }
        }
        _ => TrackAction::Nothing,
    }
}

/// Whether a pin operation goes to the priority queue: the pin was committed less than
/// `priority_pin_max_age` before `now` and has been tried at most `priority_pin_max_retries`
/// times. A pin with the zero timestamp (never stamped) is never a priority pin.
pub fn is_priority(pin_timestamp: Timestamp, now: Timestamp, attempt_count: u32, config: &TrackerConfig) -> bool {
    !pin_timestamp.is_zero()
        && pin_timestamp.add(config.priority_pin_max_age) > now
        && attempt_count <= config.priority_pin_max_retries
}

/// Whether an operation that failed after `attempt_count` attempts is retried automatically.
pub fn should_retry(attempt_count: u32, retry_limit: u32) -> bool {
    attempt_count < retry_limit
}

/// How long to wait before retrying an operation that failed after `attempt_count` attempts:
/// `base * 2^(attempt_count - 1)`, capped at [`TrackerConfig::RETRY_BACKOFF_MAX`].
pub fn retry_backoff(attempt_count: u32, base: Duration) -> Duration {
    let exponent = attempt_count.saturating_sub(1).min(31);
    base.saturating_mul(1u32 << exponent)
        .min(TrackerConfig::RETRY_BACKOFF_MAX)
}

/// How many pins a worker may send to the daemon in one call at `now`: one while batching is
/// paused (until `paused_until`) or configured off, else `pin_batch_max`.
pub fn pin_batch_limit(config: &TrackerConfig, paused_until: Option<Timestamp>, now: Timestamp) -> usize {
    match paused_until {
        Some(until) if now < until => 1,
        _ => config.pin_batch_max.max(1),
    }
}

/// How long pins go to the daemon one at a time after the `failed_in_a_row`-th pin batch in a
/// row failed or timed out (a daemon that must fetch the content over the network pins a batch
/// one CID after the other, which is slower than pinning them side by side):
/// [`TrackerConfig::BATCH_PAUSE_MIN`] doubling up to [`TrackerConfig::BATCH_PAUSE_MAX`].
pub fn pin_batch_pause(failed_in_a_row: u32) -> Duration {
    let exponent = failed_in_a_row.saturating_sub(1).min(31);
    TrackerConfig::BATCH_PAUSE_MIN
        .saturating_mul(1u32 << exponent)
        .min(TrackerConfig::BATCH_PAUSE_MAX)
}

/// Statuses the operation map alone can report.
///
/// `cluster_error` is included: locally it only comes from a failed per-CID daemon lookup, which
/// an op-only answer does not make (in the global view it means "member unreachable", which the
/// caller fills in, not the tracker).
const OP_ONLY_MASK: u32 = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 6) | (1 << 9) | (1 << 10);

/// Whether `status_all(filter)` can be answered from the operation map alone, without walking
/// the state and listing the daemon's pins (queued, pinning, unpinning, error filters).
pub fn filter_is_op_only(filter: TrackerStatusFilter) -> bool {
    !filter.is_any() && filter.0 & !OP_ONLY_MASK == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_types::{Cid, PinOptions};

    fn me() -> PeerId {
        PeerId::from_ed25519_seed([1; 32])
    }

    #[test]
    fn operations_move_only_along_their_lifecycle() {
        use OpPhase::{Error, InProgress, Queued};
        // (from, to, allowed)
        let table = [
            (Queued, InProgress, true),
            (Queued, Error, true),
            (InProgress, Error, true),
            (Error, Queued, true),
            (Queued, Queued, false),
            (InProgress, Queued, true),
            (InProgress, InProgress, false),
            (Error, InProgress, false),
            (Error, Error, false),
        ];
        for (from, to, allowed) in table {
            assert_eq!(phase_change_allowed(from, to), allowed, "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn pin_batches_pause_after_a_failure_and_back_off() {
        let config = TrackerConfig::default();
        let now = Timestamp::from_unix(1_800_000_000, 0);
        let later = |secs: u64| now.add(Duration::from_secs(secs));
        // (paused until, now, limit)
        let table = [
            (None, now, config.pin_batch_max),
            (Some(later(30)), now, 1),
            (Some(later(30)), later(29), 1),
            (Some(later(30)), later(30), config.pin_batch_max),
            (Some(now), later(1), config.pin_batch_max),
        ];
        for (paused_until, at, limit) in table {
            assert_eq!(
                pin_batch_limit(&config, paused_until, at),
                limit,
                "{paused_until:?} at {at:?}"
            );
        }
        let off = TrackerConfig {
            pin_batch_max: 0,
            ..TrackerConfig::default()
        };
        assert_eq!(pin_batch_limit(&off, None, now), 1, "0 means one pin per call");

        // (failed in a row, pause)
        let table = [(0, 30), (1, 30), (2, 60), (3, 120), (5, 480), (6, 600), (40, 600)];
        for (failed, secs) in table {
            assert_eq!(
                pin_batch_pause(failed),
                Duration::from_secs(secs),
                "after {failed} failures"
            );
        }
    }

    fn other() -> PeerId {
        PeerId::from_ed25519_seed([2; 32])
    }

    fn pin_for(peers: Vec<PeerId>) -> Pin {
        let mut pin = Pin::new(Cid::raw_sha256(b"decision"), PinOptions::default());
        pin.allocations = peers;
        pin
    }

    #[test]
    fn op_mask_matches_status_flags() {
        let op_statuses = [
            TrackerStatus::ClusterError,
            TrackerStatus::PinError,
            TrackerStatus::UnpinError,
            TrackerStatus::Pinning,
            TrackerStatus::Unpinning,
            TrackerStatus::PinQueued,
            TrackerStatus::UnpinQueued,
        ];
        let mask = op_statuses.iter().fold(0, |m, s| m | s.flag());
        assert_eq!(mask, OP_ONLY_MASK);
    }

    #[test]
    fn op_statuses() {
        assert_eq!(op_status(OpKind::Pin, OpPhase::Queued), TrackerStatus::PinQueued);
        assert_eq!(op_status(OpKind::Pin, OpPhase::InProgress), TrackerStatus::Pinning);
        assert_eq!(op_status(OpKind::Pin, OpPhase::Error), TrackerStatus::PinError);
        assert_eq!(op_status(OpKind::Unpin, OpPhase::Queued), TrackerStatus::UnpinQueued);
        assert_eq!(op_status(OpKind::Unpin, OpPhase::InProgress), TrackerStatus::Unpinning);
        assert_eq!(op_status(OpKind::Unpin, OpPhase::Error), TrackerStatus::UnpinError);
    }

    #[test]
    fn an_operation_wins_over_state_and_daemon() {
        let pin = pin_for(vec![me()]);
        let op = OpView {
            kind: OpKind::Pin,
            phase: OpPhase::Error,
            error: "boom",
        };
        let status = local_status(Some(&pin), &me(), Some(op), DaemonView::Has(IpfsPinType::Recursive));
        assert_eq!(
            status,
            LocalStatus {
                status: TrackerStatus::PinError,
                error: "boom".into()
            }
        );
        let queued = OpView {
            kind: OpKind::Unpin,
            phase: OpPhase::Queued,
            error: "stale",
        };
        let status = local_status(None, &me(), Some(queued), DaemonView::NotAsked);
        assert_eq!(status, LocalStatus::ok(TrackerStatus::UnpinQueued));
    }

    #[test]
    fn classification_without_operation() {
        let mine = pin_for(vec![me(), other()]);
        let theirs = pin_for(vec![other()]);
        let mut meta = pin_for(vec![]);
        meta.pin_type = PinType::Meta;
        let me = me();
        assert_eq!(
            local_status(None, &me, None, DaemonView::NotAsked).status,
            TrackerStatus::Unpinned
        );
        assert_eq!(
            local_status(Some(&meta), &me, None, DaemonView::NotAsked).status,
            TrackerStatus::Sharded
        );
        assert_eq!(
            local_status(Some(&theirs), &me, None, DaemonView::NotAsked).status,
            TrackerStatus::Remote
        );
        assert!(!needs_daemon(Some(&theirs), &me) && !needs_daemon(Some(&meta), &me) && !needs_daemon(None, &me));
        assert!(needs_daemon(Some(&mine), &me));
        let pinned = local_status(Some(&mine), &me, None, DaemonView::Has(IpfsPinType::Recursive));
        assert_eq!(pinned, LocalStatus::ok(TrackerStatus::Pinned));
        let lost = local_status(Some(&mine), &me, None, DaemonView::Missing);
        assert_eq!(lost.status, TrackerStatus::UnexpectedlyUnpinned);
        assert_eq!(lost.error, UNEXPECTEDLY_UNPINNED_ERROR);
        let down = local_status(Some(&mine), &me, None, DaemonView::Failed("connection refused"));
        assert_eq!(
            down,
            LocalStatus {
                status: TrackerStatus::ClusterError,
                error: "connection refused".into()
            }
        );
    }

    #[test]
    fn empty_allocations_and_everywhere_pins_are_ours() {
        let everywhere = pin_for(vec![]);
        assert!(wants_pinned(Some(&everywhere), &me()));
        let mut replicated_everywhere = pin_for(vec![other()]);
        replicated_everywhere.options.replication_factor_min = -1;
        replicated_everywhere.options.replication_factor_max = -1;
        assert!(wants_pinned(Some(&replicated_everywhere), &me()));
    }

    #[test]
    fn daemon_pin_types_against_depth() {
        assert!(is_pinned_on_daemon(-1, IpfsPinType::Recursive));
        assert!(!is_pinned_on_daemon(-1, IpfsPinType::Direct));
        assert!(!is_pinned_on_daemon(-1, IpfsPinType::Indirect));
        assert!(is_pinned_on_daemon(0, IpfsPinType::Direct));
        assert!(is_pinned_on_daemon(0, IpfsPinType::Recursive));
        assert!(!is_pinned_on_daemon(0, IpfsPinType::Indirect));
        assert!(is_pinned_on_daemon(3, IpfsPinType::Recursive));
        assert!(!is_pinned_on_daemon(3, IpfsPinType::Direct));
        let mut direct = pin_for(vec![me()]);
        direct.max_depth = 0;
        let status = local_status(Some(&direct), &me(), None, DaemonView::Has(IpfsPinType::Indirect));
        assert_eq!(status.status, TrackerStatus::UnexpectedlyUnpinned);
    }

    #[test]
    fn track_actions() {
        let me = me();
        let mine = pin_for(vec![me]);
        let theirs = pin_for(vec![other()]);
        let mut meta = pin_for(vec![]);
        meta.pin_type = PinType::Meta;
        assert_eq!(track_action(&mine, None, &me, None), TrackAction::Pin);
        assert_eq!(
            track_action(&mine, Some(&theirs), &me, Some(OpKind::Unpin)),
            TrackAction::Pin
        );
        assert_eq!(track_action(&theirs, None, &me, None), TrackAction::Nothing);
        assert_eq!(
            track_action(&theirs, Some(&theirs), &me, Some(OpKind::Unpin)),
            TrackAction::Nothing
        );
        assert_eq!(track_action(&theirs, Some(&mine), &me, None), TrackAction::Unpin);
        assert_eq!(track_action(&theirs, None, &me, Some(OpKind::Pin)), TrackAction::Unpin);
        assert_eq!(track_action(&meta, Some(&mine), &me, None), TrackAction::Nothing);
    }

    #[test]
    fn recover_actions_follow_the_current_state() {
        let me = me();
        let mine = pin_for(vec![me]);
        let theirs = pin_for(vec![other()]);
        assert_eq!(
            recover_action(TrackerStatus::PinError, Some(&mine), &me),
            TrackAction::Pin
        );
        assert_eq!(
            recover_action(TrackerStatus::UnexpectedlyUnpinned, Some(&mine), &me),
            TrackAction::Pin
        );
        assert_eq!(
            recover_action(TrackerStatus::PinError, Some(&theirs), &me),
            TrackAction::Unpin
        );
        assert_eq!(recover_action(TrackerStatus::UnpinError, None, &me), TrackAction::Unpin);
        assert_eq!(
            recover_action(TrackerStatus::UnpinError, Some(&mine), &me),
            TrackAction::Pin
        );
        for status in [
            TrackerStatus::Pinned,
            TrackerStatus::Pinning,
            TrackerStatus::PinQueued,
            TrackerStatus::Remote,
            TrackerStatus::ClusterError,
            TrackerStatus::Unpinned,
        ] {
            assert_eq!(
                recover_action(status, Some(&mine), &me),
                TrackAction::Nothing,
                "{status}"
            );
        }
    }

    #[test]
    fn priority_rule() {
        let config = TrackerConfig::default();
        let now = Timestamp::from_unix(1_800_000_000, 0);
        let fresh = Timestamp::from_unix(1_800_000_000 - 3600, 0);
        let old = Timestamp::from_unix(1_800_000_000 - 25 * 3600, 0);
        assert!(is_priority(fresh, now, 0, &config));
        assert!(is_priority(fresh, now, 5, &config));
        assert!(!is_priority(fresh, now, 6, &config));
        assert!(!is_priority(old, now, 0, &config));
        assert!(!is_priority(Timestamp::ZERO, now, 0, &config));
    }

    #[test]
    fn retry_rule_and_backoff() {
        assert!(should_retry(1, 3) && should_retry(2, 3));
        assert!(!should_retry(3, 3) && !should_retry(4, 3) && !should_retry(1, 0));
        let base = Duration::from_secs(1);
        assert_eq!(retry_backoff(1, base), Duration::from_secs(1));
        assert_eq!(retry_backoff(2, base), Duration::from_secs(2));
        assert_eq!(retry_backoff(4, base), Duration::from_secs(8));
        assert_eq!(retry_backoff(7, base), Duration::from_secs(60));
        assert_eq!(retry_backoff(u32::MAX, base), Duration::from_secs(60));
        assert_eq!(retry_backoff(0, Duration::from_millis(10)), Duration::from_millis(10));
    }

    #[test]
    fn op_only_filters() {
        let parse = |text: &str| TrackerStatusFilter::parse(text).unwrap();
        assert!(filter_is_op_only(parse("queued")));
        assert!(filter_is_op_only(parse("error")));
        assert!(filter_is_op_only(parse("pinning,unpinning,pin_queued")));
        assert!(!filter_is_op_only(TrackerStatusFilter::ANY));
        assert!(!filter_is_op_only(parse("pinned")));
        assert!(!filter_is_op_only(parse("error,unexpectedly_unpinned")));
        assert!(!filter_is_op_only(parse("remote")));
    }
}
