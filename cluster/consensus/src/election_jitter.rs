//! Election jitter: a voter that has known no leader for a while calls an election at a moment
//! of its own, drawn afresh each time.
//!
//! openraft 0.9 draws each member's election timeout once, at start, and checks it only on
//! its tick (1.5 heartbeats, 375 ms by default), longer than the timeout's whole random range
//! (250 ms). Two candidates whose timers line up then campaign on the same tick round after
//! round. Within one term openraft lets the vote for the higher node id replace a vote already
//! given, so a candidate that can never win (a member being removed, whose log is behind the
//! new membership's) can take the other voters' votes every round, and the member that could
//! win loses its leadership to that vote before its first AppendEntries lands: no leader, ever
//! (simulator seed 52455 of `random_workload_with_lost_and_wiped_members_heals`, term 463
//! after 120 s). A timer off the tick, redrawn every round, breaks the lockstep. It never fires
//! while a leader is known, and waits longer than openraft's own timer, so a healthy election
//! is left to openraft.

use std::time::Duration;

use cluster_rt::tokio::time::Instant;
use openraft::Raft;

use crate::{NodeId, TypeConfig};

/// What the watch does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A leader is known, or this member does not vote: nothing to do.
    Idle,
    /// No leader since a while; call an election at this instant if there is still none.
    WaitUntil(Instant),
    /// Call an election now.
    Elect,
}

/// Tracks how long this member has known no leader. Pure: the caller passes the time, what
/// the member sees and the random patience of each stretch.
#[derive(Debug, Default)]
pub(crate) struct LeaderlessWatch {
    /// When the current leaderless stretch (or the last election this watch called) began,
    /// and how long it waits from there.
    stretch: Option<(Instant, Duration)>,
}

impl LeaderlessWatch {
    /// The next step, given whether a leader is known and whether this member is one voter
    /// among several (a lone voter elects itself at once). `draw` gives the patience of a new
    /// stretch.
    pub(crate) fn step(
        &mut self,
        now: Instant,
        leader_known: bool,
        votes_among_others: bool,
        draw: impl FnOnce() -> Duration,
    ) -> Step {
        if leader_known || !votes_among_others {
            self.stretch = None;
            return Step::Idle;
        }
        let (since, patience) = *self.stretch.get_or_insert_with(|| (now, draw()));
        let at = since + patience;
        if now < at {
            return Step::WaitUntil(at);
        }
        // The next election, if this one does not settle it, waits a patience of its own.
        self.stretch = None;
        Step::Elect
    }
}

/// A patience drawn uniformly from [`election_timeout_max`, 2 × `election_timeout_max`), to
/// the microsecond: longer than openraft's own candidate timer, so it only acts when that one
/// has failed at least once.
fn draw_patience(election_timeout_max: Duration) -> Duration {
    let range = election_timeout_max.as_micros().max(1) as u64;
    election_timeout_max + Duration::from_micros(cluster_rt::random_u64() % range)
}

/// The running watch; dropping it stops the watch, which holds a handle of Raft that would
/// otherwise keep Raft's core (and its transport) running.
pub(crate) struct JitterTask(cluster_rt::tokio::task::JoinHandle<()>);

impl Drop for JitterTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the watch for `raft` until Raft stops or the returned task is dropped. `poll` bounds
/// how late a change of leader is noticed; the election itself fires at its drawn instant.
pub(crate) fn spawn(
    raft: Raft<TypeConfig>,
    node_id: NodeId,
    election_timeout_max: Duration,
    poll: Duration,
) -> JitterTask {
    JitterTask(cluster_rt::spawn(async move {
        let metrics = raft.metrics();
        let mut watch = LeaderlessWatch::default();
        loop {
            let (leader_known, votes_among_others) = {
                let m = metrics.borrow();
                let membership = m.membership_config.membership();
                let voters = membership.voter_ids().count();
                let votes = membership.voter_ids().any(|id| id == node_id);
                (m.current_leader.is_some(), votes && voters > 1)
            };
            let now = cluster_rt::now();
            match watch.step(now, leader_known, votes_among_others, || {
                draw_patience(election_timeout_max)
            }) {
                Step::Idle => cluster_rt::sleep(poll).await,
                Step::WaitUntil(at) => cluster_rt::sleep((at - now).min(poll)).await,
                Step::Elect => {
                    tracing::info!(
                        "no leader known for a while (term {}): calling an election off openraft's tick",
                        metrics.borrow().current_term
                    );
                    if raft.trigger().elect().await.is_err() {
                        return;
                    }
                }
            }
            // Raft's core has stopped (shutdown, or a fatal storage error).
            if metrics.has_changed().is_err() {
                return;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stretch_without_leader_elects_once_its_patience_has_passed() {
        let t0 = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        let mut watch = LeaderlessWatch::default();
        // (ms after t0, leader known, votes among others, patience if drawn, expected step)
        let table: [(u64, bool, bool, u64, Step); 9] = [
            (0, true, true, 900, Step::Idle),
            (100, false, true, 900, Step::WaitUntil(t0 + ms(1000))),
            // The patience of a stretch is drawn once.
            (500, false, true, 5, Step::WaitUntil(t0 + ms(1000))),
            (1000, false, true, 5, Step::Elect),
            // The next stretch starts at the next look, with a new patience.
            (1010, false, true, 800, Step::WaitUntil(t0 + ms(1810))),
            // A leader ends the stretch; none again starts another.
            (1200, true, true, 1, Step::Idle),
            (1300, false, true, 700, Step::WaitUntil(t0 + ms(2000))),
            // A member that is not one voter among several never calls one.
            (2000, false, false, 1, Step::Idle),
            (2100, false, true, 750, Step::WaitUntil(t0 + ms(2850))),
        ];
        for (i, (at, leader, votes, patience, expected)) in table.into_iter().enumerate() {
            let step = watch.step(t0 + ms(at), leader, votes, || ms(patience));
            assert_eq!(step, expected, "row {i} (at {at} ms)");
        }
    }

    #[test]
    fn the_patience_lies_between_one_and_two_election_timeouts() {
        let max = Duration::from_millis(750);
        for _ in 0..1000 {
            let patience = draw_patience(max);
            assert!(patience >= max && patience < max * 2, "{patience:?}");
        }
        assert_eq!(draw_patience(Duration::ZERO), Duration::ZERO);
    }
}
