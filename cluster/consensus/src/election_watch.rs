//! Election timing of our own, beside openraft's: a voter that has known no leader for a while,
//! or has not heard from its leader for a leader lease, calls an election at a moment of its
//! own, drawn afresh each time.
//!
//! openraft 0.9 draws each member's election timeout once, at start, and checks it only on
//! its tick (1.5 heartbeats, 375 ms by default), longer than the timeout's whole random range
//! (250 ms). Two candidates whose timers line up then campaign on the same tick round after
//! round. Within one term openraft lets the vote for the higher node id replace a vote already
//! given, so a candidate that can never win (a member being removed, whose log is behind the
//! new membership's) can take the other voters' votes every round, and the member that could
//! win loses its leadership to that vote before its first AppendEntries lands: no leader, ever
//! (simulator seed 52455 of `random_workload_with_lost_and_wiped_members_heals`, term 463
//! after 120 s). A timer off the tick, redrawn every round, breaks the lockstep; it waits
//! longer than openraft's own candidate timer, so a healthy election is left to openraft.
//!
//! A follower of openraft 0.9 campaigns only after the leader lease (`election_timeout_max`)
//! plus its own election timeout have passed without news from the leader: 1.25 to 1.5 s with
//! the defaults, rounded up to a tick, after the leader died. The other voters refuse a vote
//! only within the lease of their last news, so a follower that has heard nothing for the
//! lease and a little more calls the election itself: failover takes the lease, not the lease
//! and a timeout. The contact that counts is an AppendEntries this member accepted from the
//! leader it now follows ([`WatchShared::heard`]).
//!
//! Before its first election after news from a leader, the watch asks the other voters how
//! long their logs are ([`VoterProbe`]). A voter with a longer log refuses this
//! member's vote request, and this member, having voted for itself in that term, refuses the
//! longer log's request in turn: a split vote, and the next term a whole patience later
//! (`bench-failover`: 3 runs in 10 took 1.8 to 2.1 s instead of 0.9). So when another voter's
//! log is longer, this member leaves that round to it; again while that voter's term moves (it
//! is campaigning), and no more once it stands still (it cannot stand: it left, or does not
//! count itself a voter), or this member would wait for it forever.
//!
//! openraft 0.9 refuses a vote request from a shorter log without taking its term, so the
//! voter with the longest log learns the others' terms only from the answers to its own
//! requests, and calls its next election one term above its own: at or below the terms the
//! shorter logs reached meanwhile, where it loses again. Voters with shorter logs that went on
//! campaigning kept three live voters of four leaderless for the 120 s of the liveness bound,
//! about 440 terms (sim seeds 2141534599 and 2359521379). So a member whose election was taken
//! by another candidate's vote, and whose log no voter's beats, calls the next one at once: one
//! term above the highest it was just told.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_rt::tokio::time::Instant;
use openraft::raft::VoteRequest;
use openraft::{Raft, Vote};

use crate::owned_task::OwnedTask;
use crate::{LogStore, MemberNode, NodeId, RaftTransport, TypeConfig};

/// What the watch does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A leader is being heard, or this member leads or does not vote: nothing to do.
    Idle,
    /// Call an election at this instant unless something changes meanwhile.
    WaitUntil(Instant),
    /// Call an election now.
    Elect,
}

/// Who leads, as this member sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leader {
    /// No leader is known (an election is under way).
    Unknown,
    /// This member leads.
    Me,
    /// Another member leads; `heard` is when this member last accepted its AppendEntries,
    /// if it has since it started.
    Other { heard: Option<Instant> },
}

/// What the watch waits out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// No leader since `since`.
    Leaderless,
    /// A leader that has not been heard from since `since`.
    Silent,
}

/// The timers the watch derives its patience from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// openraft's `election_timeout_max`, which is also its leader lease.
    pub election_timeout_max: Duration,
    /// openraft's heartbeat interval.
    pub heartbeat: Duration,
}

impl Timing {
    /// After no leader at all: [max, 2 max), longer than openraft's candidate timer, so it
    /// only acts when that one has failed at least once.
    fn leaderless_patience(&self, random: u64) -> Duration {
        self.election_timeout_max + spread(self.election_timeout_max, random)
    }

    /// After the last news from the leader: the lease, a margin for the other voters' last
    /// news (sent with ours), and up to a heartbeat more, so followers do not all campaign at
    /// once.
    fn silence_patience(&self, random: u64) -> Duration {
        self.election_timeout_max + SILENCE_MARGIN + spread(self.heartbeat, random)
    }
}

/// How much later than the lease a silent leader's follower campaigns, at the least: the other
/// voters heard from the leader at about the same time, not at the same instant.
const SILENCE_MARGIN: Duration = Duration::from_millis(20);

/// A duration in [0, `range`), to the microsecond.
fn spread(range: Duration, random: u64) -> Duration {
    Duration::from_micros(random % (range.as_micros().max(1) as u64))
}

/// Tracks how long this member has known no leader, or not heard from it. Pure: the caller
/// passes the time, what the member sees and random numbers.
#[derive(Debug)]
pub(crate) struct LeaderlessWatch {
    timing: Timing,
    /// What is being waited out, since when, and for how long.
    stretch: Option<(Wait, Instant, Duration)>,
    /// When this watch last called an election: a silence is counted from it too, or a
    /// member whose election cannot start (its disk refuses the vote) would call one after
    /// another without pause.
    last_election: Option<Instant>,
}

impl LeaderlessWatch {
    pub(crate) fn new(timing: Timing) -> LeaderlessWatch {
        LeaderlessWatch {
            timing,
            stretch: None,
            last_election: None,
        }
    }

    /// The next step, given who leads and whether this member is one voter among several (a
    /// lone voter elects itself at once). `random` draws the patience of a new stretch.
    pub(crate) fn step(
        &mut self,
        now: Instant,
        leader: Leader,
        votes_among_others: bool,
        random: impl FnOnce() -> u64,
    ) -> Step {
        let (wait, since) = match leader {
            _ if !votes_among_others => return self.idle(),
            Leader::Me | Leader::Other { heard: None } => return self.idle(),
            Leader::Unknown => (Wait::Leaderless, now),
            Leader::Other { heard: Some(heard) } => (Wait::Silent, heard.max(self.last_election.unwrap_or(heard))),
        };
        let (_, began, patience) = match self.stretch {
            Some((current, began, patience)) if current == wait => {
                // A leader heard again moves the stretch; a leaderless one keeps its start.
                let began = if wait == Wait::Silent { since } else { began };
                (wait, began, patience)
            }
            _ => {
                let patience = match wait {
                    Wait::Leaderless => self.timing.leaderless_patience(random()),
                    Wait::Silent => self.timing.silence_patience(random()),
                };
                (wait, since, patience)
            }
        };
        self.stretch = Some((wait, began, patience));
        let at = began + patience;
        if now < at {
            return Step::WaitUntil(at);
        }
        // The next election, if this one does not settle it, waits a patience of its own.
        self.stretch = None;
        self.last_election = Some(now);
        Step::Elect
    }

    fn idle(&mut self) -> Step {
        self.stretch = None;
        Step::Idle
    }
}

/// Asks the other voters for the length of their logs, with a vote request nobody grants.
pub(crate) struct VoterProbe {
    pub(crate) transport: Arc<dyn RaftTransport>,
    pub(crate) log: LogStore,
}

impl VoterProbe {
    /// A voter of `raft`'s membership, other than `node_id`, whose last log id is above this
    /// member's, with its term, if one answers within `timeout`. The request is a vote of term
    /// 0: below every vote a member holds, so it changes nobody's vote, and every answer
    /// carries the voter's vote and last log id.
    async fn longer_log(&self, raft: &Raft<TypeConfig>, node_id: NodeId, timeout: Duration) -> Option<LongerLog> {
        let others: Vec<(NodeId, MemberNode)> = {
            let metrics = raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            membership
                .voter_ids()
                .filter(|id| *id != node_id)
                .filter_map(|id| membership.get_node(&id).map(|node| (id, node.clone())))
                .collect()
        };
        let ours = self.log.last_log_id();
        let request = VoteRequest::new(Vote::new(0, node_id), ours);
        let asks = others.iter().map(|(id, node)| {
            let request = request.clone();
            async move {
                let answer = cluster_rt::timeout(timeout, self.transport.vote(*id, node, request, timeout)).await;
                match answer {
                    Ok(Ok(response)) if response.last_log_id > ours => Some(LongerLog {
                        voter: *id,
                        term: response.vote.leader_id().term,
                    }),
                    _ => None,
                }
            }
        });
        futures::future::join_all(asks).await.into_iter().flatten().next()
    }
}

/// A voter whose log is longer than this member's, and its term when it said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LongerLog {
    voter: NodeId,
    term: u64,
}

/// Whether this member leaves the election it would call to `longer`, having last left one to
/// `last` (since the last news from a leader): the first time, and again only while that
/// voter's term moves, which it does when it campaigns.
fn leave_to(longer: Option<LongerLog>, last: Option<LongerLog>) -> bool {
    match (longer, last) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(now), Some(before)) => now.voter != before.voter || now.term > before.term,
    }
}

/// Whether an election this member called for `called_term` was taken by another candidate's
/// vote: no leader is known, and this member's vote is now another's, not committed, of that
/// term or a later one. (Its vote still below `called_term` means the election never began.)
fn taken_by_another_vote(called_term: u64, vote: &Vote<NodeId>, leader: Option<NodeId>, me: NodeId) -> bool {
    leader.is_none()
        && !vote.is_committed()
        && vote.leader_id().term >= called_term
        && vote.leader_id().voted_for() != Some(me)
}

/// What the watch shares with the member: when it last accepted an AppendEntries, and from
/// which leader; how many elections the watch called.
#[derive(Debug, Default)]
pub(crate) struct WatchShared {
    contact: Mutex<Option<(NodeId, Instant)>>,
    elections_called: AtomicU64,
}

impl WatchShared {
    /// Notes an AppendEntries accepted from `leader`.
    pub(crate) fn heard(&self, leader: NodeId) {
        *self.contact.lock().expect("leader contact lock") = Some((leader, cluster_rt::now()));
    }

    /// When `leader` was last heard from, if it was since this member started.
    fn last_from(&self, leader: NodeId) -> Option<Instant> {
        match *self.contact.lock().expect("leader contact lock") {
            Some((heard_from, at)) if heard_from == leader => Some(at),
            _ => None,
        }
    }

    /// How many elections the watch called.
    pub(crate) fn elections_called(&self) -> u64 {
        self.elections_called.load(Ordering::Relaxed)
    }
}

/// Runs the watch for `raft` until Raft stops or the returned task is dropped (it holds a
/// handle of Raft that would otherwise keep Raft's core and its transport running). It looks
/// every `timing.heartbeat`, and sleeps no longer than until the election it would call.
pub(crate) fn spawn(
    raft: Raft<TypeConfig>,
    node_id: NodeId,
    timing: Timing,
    shared: std::sync::Arc<WatchShared>,
    voters: VoterProbe,
) -> OwnedTask {
    OwnedTask::new(cluster_rt::spawn(async move {
        let metrics = raft.metrics();
        let mut watch = LeaderlessWatch::new(timing);
        // When this member last left an election to a voter with a longer log, and to which
        // (see `leave_to`); forgotten once it hears from a leader again.
        let mut deferred: Option<(Instant, LongerLog)> = None;
        loop {
            let (leader, votes_among_others, term) = {
                let m = metrics.borrow();
                let membership = m.membership_config.membership();
                let voters = membership.voter_ids().count();
                let votes = membership.voter_ids().any(|id| id == node_id);
                // A silent leader is only called out by a settled voter: one in every half of
                // the membership, whose entry it has applied. A member still joining (promoted
                // in a change the others may not know yet) that campaigned had its vote
                // requests refused as a stranger's and took itself for removed (sim seed
                // 200957 of the classic workload).
                let settled = membership.get_joint_config().iter().all(|half| half.contains(&node_id))
                    && m.last_applied.map(|id| id.index) >= m.membership_config.log_id().map(|id| id.index);
                let leader = match m.current_leader {
                    None => Leader::Unknown,
                    Some(id) if id == node_id => Leader::Me,
                    Some(id) => Leader::Other {
                        heard: if settled { shared.last_from(id) } else { None },
                    },
                };
                (leader, votes && voters > 1, m.current_term)
            };
            let now = cluster_rt::now();
            if let Some((at, _)) = deferred {
                let news = match leader {
                    Leader::Me => true,
                    Leader::Other { heard: Some(heard) } => heard > at,
                    _ => false,
                };
                if news {
                    deferred = None;
                }
            }
            match watch.step(now, leader, votes_among_others, cluster_rt::random_u64) {
                Step::Idle => cluster_rt::sleep(timing.heartbeat).await,
                Step::WaitUntil(at) => cluster_rt::sleep((at - now).min(timing.heartbeat)).await,
                Step::Elect => {
                    let longer = voters.longer_log(&raft, node_id, timing.heartbeat / 2).await;
                    if leave_to(longer, deferred.map(|(_, to)| to)) {
                        let to = longer.expect("left only to a longer log");
                        tracing::info!(
                            "no leader heard (term {term}), but voter {} has a longer log (term {}): leaving this election to it",
                            to.voter,
                            to.term
                        );
                        deferred = Some((now, to));
                        // The watch waits a new patience before it calls the next one.
                        cluster_rt::sleep(timing.heartbeat).await;
                        continue;
                    }
                    match leader {
                        Leader::Other { heard: Some(heard) } => tracing::info!(
                            "nothing from the leader for {} (term {term}): calling an election",
                            cluster_types::duration::format(now - heard)
                        ),
                        _ => tracing::info!(
                            "no leader known for a while (term {term}): calling an election off openraft's tick"
                        ),
                    }
                    shared.elections_called.fetch_add(1, Ordering::Relaxed);
                    if raft.trigger().elect().await.is_err() {
                        return;
                    }
                    // Raft's core takes the election from here. A vote round trip later, see
                    // whether another candidate's vote took it.
                    let glance = timing.heartbeat / 5;
                    cluster_rt::sleep(glance).await;
                    let taken = {
                        let m = metrics.borrow();
                        taken_by_another_vote(term + 1, &m.vote, m.current_leader, node_id).then_some(m.current_term)
                    };
                    if let Some(taken_at) = taken {
                        if longer.is_none() && voters.longer_log(&raft, node_id, timing.heartbeat / 2).await.is_none() {
                            tracing::info!(
                                "election of term {} taken by another candidate's vote of term {taken_at}, and no voter's log is longer: calling the next one at once",
                                term + 1
                            );
                            shared.elections_called.fetch_add(1, Ordering::Relaxed);
                            if raft.trigger().elect().await.is_err() {
                                return;
                            }
                        }
                    }
                    cluster_rt::sleep(timing.heartbeat - glance).await;
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

    const TIMING: Timing = Timing {
        election_timeout_max: Duration::from_millis(750),
        heartbeat: Duration::from_millis(250),
    };

    #[test]
    fn elections_are_called_once_the_drawn_patience_has_passed() {
        use Leader::*;
        let t0 = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        let heard = |n: u64| Other {
            heard: Some(t0 + ms(n)),
        };
        let mut watch = LeaderlessWatch::new(TIMING);
        // (ms after t0, leader, votes among others, random, expected step). A random value r
        // gives a leaderless patience of 750 + r ms and a silence patience of 770 + r ms
        // (r < 250), in microseconds here.
        let table: Vec<(u64, Leader, bool, u64, Step)> = vec![
            (0, Me, true, 0, Step::Idle),
            (10, Other { heard: None }, true, 0, Step::Idle),
            // No leader from 100 ms: patience 750 + 150 ms, drawn once per stretch.
            (100, Unknown, true, 150_000, Step::WaitUntil(t0 + ms(1000))),
            (500, Unknown, true, 5, Step::WaitUntil(t0 + ms(1000))),
            (1000, Unknown, true, 5, Step::Elect),
            // The next stretch starts at the next look, with a new patience.
            (1010, Unknown, true, 50_000, Step::WaitUntil(t0 + ms(1810))),
            // A leader ends it. Heard at 1200 ms: patience 770 + 30 ms from its last news,
            // which moves with every AppendEntries and keeps its patience.
            (1200, heard(1200), true, 30_000, Step::WaitUntil(t0 + ms(2000))),
            (1300, heard(1250), true, 7, Step::WaitUntil(t0 + ms(2050))),
            (2049, heard(1250), true, 7, Step::WaitUntil(t0 + ms(2050))),
            (2050, heard(1250), true, 7, Step::Elect),
            // An election that changed nothing (the vote could not be written, say): the
            // silence counts from it, not from the leader's last news.
            (2060, heard(1250), true, 100_000, Step::WaitUntil(t0 + ms(2920))),
            (2920, heard(1250), true, 100_000, Step::Elect),
            // A member that is not one voter among several never calls one.
            (3000, Unknown, false, 1, Step::Idle),
            (3100, heard(1250), false, 1, Step::Idle),
            (3200, Unknown, true, 0, Step::WaitUntil(t0 + ms(3950))),
        ];
        for (i, (at, leader, votes, random, expected)) in table.into_iter().enumerate() {
            let step = watch.step(t0 + ms(at), leader, votes, || random);
            assert_eq!(step, expected, "row {i} (at {at} ms)");
        }
    }

    #[test]
    fn an_election_is_left_to_a_longer_log_while_its_term_moves() {
        let longer = |voter: NodeId, term: u64| Some(LongerLog { voter, term });
        // (longer log found now, last one left to, leave this election to it)
        let table = [
            (None, None, false),
            (None, longer(4, 10), false),
            (longer(4, 10), None, true),
            // It campaigned since: its term moved.
            (longer(4, 11), longer(4, 10), true),
            // It stands still: this member campaigns itself.
            (longer(4, 10), longer(4, 10), false),
            // Another voter, newly longer.
            (longer(2, 10), longer(4, 12), true),
        ];
        for (i, (now, last, expected)) in table.into_iter().enumerate() {
            assert_eq!(leave_to(now, last), expected, "row {i}: {now:?} after {last:?}");
        }
    }

    #[test]
    fn an_election_is_taken_by_another_vote_of_its_term_or_later_without_a_leader() {
        let me = 4;
        let vote = |term, node, committed| {
            let mut vote = Vote::new(term, node);
            if committed {
                vote.commit();
            }
            vote
        };
        // (called for term, vote now, leader known, taken)
        let table = [
            // Another candidate's vote of the same term, or of a later one (the answers to
            // this member's requests carried it).
            (456, vote(456, 0, false), None, true),
            (456, vote(458, 2, false), None, true),
            // Still campaigning, or it won.
            (456, vote(456, me, false), None, false),
            (456, vote(456, me, true), Some(me), false),
            // Another won: a leader.
            (456, vote(457, 0, true), Some(0), false),
            // The election never began: the vote is older than it.
            (456, vote(455, 0, false), None, false),
        ];
        for (i, (called, vote, leader, expected)) in table.into_iter().enumerate() {
            assert_eq!(
                taken_by_another_vote(called, &vote, leader, me),
                expected,
                "row {i}: called for {called}, vote {vote}, leader {leader:?}"
            );
        }
    }

    #[test]
    fn patience_stays_within_its_bounds() {
        for random in [0, 1, 249_999, 250_000, 749_999, u64::MAX] {
            let leaderless = TIMING.leaderless_patience(random);
            assert!(
                leaderless >= Duration::from_millis(750) && leaderless < Duration::from_millis(1500),
                "{leaderless:?}"
            );
            let silence = TIMING.silence_patience(random);
            assert!(
                silence >= Duration::from_millis(770) && silence < Duration::from_millis(1020),
                "{silence:?}"
            );
        }
        let zero = Timing {
            election_timeout_max: Duration::ZERO,
            heartbeat: Duration::ZERO,
        };
        assert_eq!(zero.leaderless_patience(7), Duration::ZERO);
    }
}
