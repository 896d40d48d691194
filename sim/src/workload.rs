//! The seeded random workload: every parameter (members, operation mix, replication factors, faults and
//! their timing) comes from the seed. Operations: pin, unpin, re-pin with new replication
//! factors, pin update (`pin-update`), status, recover, `peers rm` and a new member joining.
//! A safety phase runs them under crashes, restarts, pauses, partitions, one-way link losses,
//! message loss and delay, clock jumps, slow, failing, down, full, hanging or lying IPFS daemons
//! and daemons whose pins silently disappear, checking
//! the safety invariants after every step; a liveness phase removes all faults and requires the
//! cluster to converge within a bound, then checks that no acknowledged pin was lost, no
//! acknowledged unpin undone, and every pin sits on exactly its allocated daemons. A failure
//! prints the seed and the fault plan.
//!
//! The self-healing variant ([`run_self_healing`]) adds three faults: a member lost for good
//! (never restarted; its pins must move to live members), a member whose disk is wiped (it must
//! rejoin, not fork) and a member whose disk fills up, then is freed (it must write again
//! without a restart). Its runs differ from the classic ones, whose seeds stay as they were.

mod faults;

use std::time::Duration;

use cluster_ipfs::FakeIpfsKnobs;
use cluster_types::{Cid, PinOptions};
use madsim::runtime::Handle;

use crate::invariants::{self, Violation};
use crate::{replay_hint, seed, MemberSnapshot, OpKind, Oracle, Outcome, SimCluster, TraceHash};

/// How long a paused member stays paused.
const PAUSE: Duration = Duration::from_secs(3);

/// Simulated time the cluster gets to converge once faults stop.
const LIVENESS_BOUND: Duration = Duration::from_secs(120);

/// madsim's default network: no loss, 1-10 ms per message.
fn clean_network(config: &mut madsim::net::Config) {
    *config = madsim::net::Config::default();
}

fn random(bound: u64) -> u64 {
    cluster_rt::random_u64() % bound.max(1)
}

struct Run {
    cluster: SimCluster,
    oracle: Oracle,
    plan: Vec<String>,
    trace: TraceHash,
    clogged: Option<usize>,
    clogged_links: Vec<(usize, usize)>,
    /// Members a `peers rm` was sent for, until they are seen out of the membership.
    leaving: Vec<usize>,
    /// Whether message loss and delay are switched on.
    lossy: bool,
    /// Whether the self-healing faults (lost for good, wiped) are in the plan.
    self_healing: bool,
    /// Whether Raft snapshots are taken every few entries (members catch up from them).
    frequent_snapshots: bool,
    /// Members whose data folder was wiped.
    wiped: Vec<usize>,
    /// Members lost for good: never restarted, their pins moved by repinning.
    lost: Vec<usize>,
    /// The member whose disk is full, if any.
    full: Option<usize>,
}

impl Run {
    /// Adds a step to the fault plan (printed with a failure; logged as it happens).
    fn note(&mut self, step: String) {
        tracing::info!("fault plan: {step}");
        self.plan.push(step);
    }

    fn fail(&self, what: &str, violations: &[Violation]) -> ! {
        let list: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
        panic!(
            "{what}: {}\n  fault plan: {}\n  {}",
            list.join("\n  "),
            self.plan.join("; "),
            replay_hint()
        );
    }

    fn check_safety(&mut self) {
        let snapshots = self.cluster.snapshots();
        // The trace: what each member applied and what its daemon holds, step by step.
        let step: Vec<String> = snapshots
            .iter()
            .map(|m| format!("{}:{:?}:{}", m.index, m.applied_index, m.daemon_pins.len()))
            .collect();
        self.trace.record(&step.join(" "));
        let mut violations = Vec::new();
        invariants::single_leader_per_term(&snapshots, &mut violations);
        invariants::applied_state_agrees(&snapshots, &mut violations);
        if !violations.is_empty() {
            self.fail("safety invariant broken", &violations);
        }
    }

    fn now(&self) -> String {
        format!("{:.1}s", madsim::time::TimeHandle::current().elapsed().as_secs_f64())
    }

    /// In the self-healing plan, whether every running member votes (no wiped member is still
    /// rejoining): a join then waits. Always true in the classic plan, whose draws stay as
    /// they were.
    fn all_voting(&self) -> bool {
        !self.self_healing
            || self
                .cluster
                .alive()
                .iter()
                .all(|i| self.cluster.is_voter_everywhere(*i))
    }

    fn pinned(&self) -> Vec<Cid> {
        self.oracle
            .cids()
            .into_iter()
            .filter(|c| self.oracle.expected(c) == Some(true))
            .collect()
    }

    fn replication(&self) -> i32 {
        let size = self.cluster.in_cluster().len() as u64;
        match random(4) {
            0 => -1,
            r => (r.min(size)) as i32,
        }
    }

    async fn client_operation(&mut self, handle: &Handle, next_cid: &mut u64) {
        let alive = self.cluster.alive();
        let via = alive[random(alive.len() as u64) as usize];
        let pinned = self.pinned();
        let known = self.oracle.cids();
        let members = self.cluster.members.len();
        // The mix, in percent; an operation that cannot run now (nothing pinned yet, no room
        // for another member) becomes a new pin.
        let op = match random(100) {
            0..25 if !pinned.is_empty() => "unpin",
            25..33 if !pinned.is_empty() => "repin",
            33..40 if !pinned.is_empty() => "update",
            40..50 if !known.is_empty() => "status",
            50..55 if !pinned.is_empty() => "recover",
            55..57 if members < 7 && self.leaving.is_empty() && self.all_voting() => "join",
            57..60 => "peers rm",
            _ => "pin",
        };
        let pick = |list: &[Cid]| list[random(list.len() as u64) as usize];
        match op {
            "unpin" => {
                let cid = pick(&pinned);
                let result = self.cluster.unpin(via, cid).await;
                let outcome = self.oracle.record(cid, OpKind::Unpin, result.as_ref());
                self.trace.record(&format!("unpin {cid} via {via}: {outcome:?}"));
            }
            "repin" => {
                // Pinning again with other replication factors moves allocations.
                let cid = pick(&pinned);
                let replication = self.replication();
                let result = self.cluster.pin(via, cid, replication).await;
                let outcome = self.oracle.record(cid, OpKind::Pin, result.as_ref());
                self.trace
                    .record(&format!("repin {cid} x{replication} via {via}: {outcome:?}"));
            }
            "update" => {
                // Pin update: a new CID starts from the allocations of a pinned one.
                let from = pick(&pinned);
                let cid = self.new_cid(next_cid);
                let replication = self.replication();
                let options = PinOptions {
                    replication_factor_min: replication,
                    replication_factor_max: replication,
                    pin_update: Some(Box::new(from)),
                    ..Default::default()
                };
                let result = self.cluster.pin_with(via, cid, options).await;
                let outcome = self.oracle.record(cid, OpKind::Pin, result.as_ref());
                self.trace
                    .record(&format!("update {from} to {cid} x{replication} via {via}: {outcome:?}"));
            }
            "status" => {
                let cid = pick(&known);
                let status = self
                    .cluster
                    .call(via, move |c| async move { c.global_status(cid).await })
                    .await;
                self.trace
                    .record(&format!("status {cid} via {via}: {}", self.summary(cid, status)));
            }
            "recover" => {
                let cid = pick(&pinned);
                let status = self
                    .cluster
                    .call(via, move |c| async move { c.recover_everywhere(cid).await })
                    .await;
                self.trace
                    .record(&format!("recover {cid} via {via}: {}", self.summary(cid, status)));
            }
            "join" => {
                let i = self.cluster.join_new_member(handle, via);
                self.note(format!("{} member {i} joins via {via}", self.now()));
                self.trace.record(&format!("join {i} via {via}"));
            }
            "peers rm" => self.remove_member(via),
            _ => {
                let cid = self.new_cid(next_cid);
                let replication = self.replication();
                let result = self.cluster.pin(via, cid, replication).await;
                let outcome = self.oracle.record(cid, OpKind::Pin, result.as_ref());
                self.trace
                    .record(&format!("pin {cid} x{replication} via {via}: {outcome:?}"));
            }
        }
    }

    fn new_cid(&self, next_cid: &mut u64) -> Cid {
        let cid = Cid::raw_sha256(format!("workload {}", *next_cid).as_bytes());
        *next_cid += 1;
        cid
    }

    /// A status answer in the trace. Reads are not linearizable (a member answers from its own
    /// state), so only its shape is checked: it is about the CID asked.
    fn summary(
        &self,
        cid: Cid,
        status: Option<Result<cluster_types::GlobalPinInfo, cluster_types::ClusterError>>,
    ) -> String {
        match status {
            None => "member down".into(),
            Some(Err(e)) => format!("error {}", e.http_status()),
            Some(Ok(info)) => {
                if info.cid != cid {
                    self.fail(
                        "status answered for another CID",
                        &[Violation {
                            invariant: "status",
                            detail: format!("asked {cid}, got {}", info.cid),
                        }],
                    );
                }
                let mut states: Vec<String> = info.peer_map.values().map(|s| format!("{:?}", s.status)).collect();
                states.sort();
                states.join(",")
            }
        }
    }

    /// `peers rm` of a running member, through another, while the cluster keeps at least 3
    /// members and nothing is partitioned (a removal needs a quorum of the new membership).
    fn remove_member(&mut self, via: usize) {
        let members = self.cluster.in_cluster();
        let alive = self.cluster.alive();
        // Not while a member is still joining: it may be joining through the one removed.
        if members.len() <= 3
            || alive.len() != members.len()
            || !self.leaving.is_empty()
            || !alive.iter().all(|i| self.cluster.is_voter_everywhere(*i))
        {
            return;
        }
        let candidates: Vec<usize> = alive
            .iter()
            .copied()
            .filter(|i| *i != via && self.cluster.is_voter_everywhere(*i))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let removed = candidates[random(candidates.len() as u64) as usize];
        self.note(format!("{} peers rm {removed} via {via}", self.now()));
        self.leaving.push(removed);
        let peer = self.cluster.members[removed].identity.peer_id;
        // Sent in the background: the removal moves pins first and may take a while.
        let cluster = self.cluster.members[via].cluster();
        if let Some(cluster) = cluster {
            let node = self.cluster.members[via].node().clone();
            node.spawn(async move {
                if let Err(e) = cluster.peer_remove(peer).await {
                    tracing::info!("peers rm {peer}: {e}");
                }
            });
        }
    }

    /// Stops members that a removal took out of the membership.
    fn settle_removals(&mut self, handle: &Handle) {
        let leaving = std::mem::take(&mut self.leaving);
        for i in leaving {
            if self.cluster.removed_by_consensus(i) {
                self.note(format!("{} member {i} left", self.now()));
                self.trace.record(&format!("left {i}"));
                if self.clogged == Some(i) {
                    madsim::net::NetSim::current().unclog_node(self.cluster.members[i].node().id());
                    self.clogged = None;
                }
                self.cluster.depart(handle, i);
            } else {
                self.leaving.push(i);
            }
        }
    }

    async fn liveness(&mut self, handle: &Handle) -> Vec<MemberSnapshot> {
        let net = madsim::net::NetSim::current();
        if let Some(victim) = self.clogged.take() {
            net.unclog_node(self.cluster.members[victim].node().id());
        }
        for (a, b) in self.clogged_links.drain(..) {
            net.unclog_link(self.cluster.members[a].node().id(), self.cluster.members[b].node().id());
        }
        net.update_config(clean_network);
        self.lossy = false;
        // Paused members resume on their own after PAUSE.
        cluster_rt::sleep(PAUSE).await;
        for member in &self.cluster.members {
            member.ipfs.set_knobs(FakeIpfsKnobs::default());
        }
        if let Some(full) = self.full {
            self.free_disk_of(full);
        }
        for i in self.cluster.in_cluster() {
            if !self.cluster.alive().contains(&i) && !self.lost.contains(&i) {
                self.cluster.restart(handle, i);
            }
        }
        self.ensure_a_disk_was_lost(handle).await;
        self.note(format!("{} liveness phase", self.now()));
        let deadline = cluster_rt::now() + LIVENESS_BOUND;
        loop {
            self.settle_removals(handle);
            let with_lost = self.cluster.snapshots();
            // The lost members are out of the picture: their pins must have moved.
            let snapshots: Vec<MemberSnapshot> = with_lost
                .iter()
                .filter(|m| !self.lost.contains(&m.index))
                .cloned()
                .collect();
            let mut violations = Vec::new();
            let all_up = snapshots.iter().all(|m| m.alive);
            let agreed = all_up && snapshots.iter().all(|m| m.pins == snapshots[0].pins);
            // A member that joined ends a voter, not a learner stuck half way.
            let learners: Vec<usize> = self
                .cluster
                .in_cluster()
                .into_iter()
                .filter(|i| !self.lost.contains(i) && !self.cluster.is_voter_everywhere(*i))
                .collect();
            invariants::members_healthy_once_faults_stop(&snapshots, &mut violations);
            if agreed && learners.is_empty() {
                if self.frequent_snapshots {
                    invariants::pins_placed_on_allocated_daemons_but_wiped_orphans(
                        &snapshots,
                        &self.wiped,
                        &mut violations,
                    );
                } else {
                    invariants::pins_placed_on_allocated_daemons(&snapshots, &mut violations);
                }
                invariants::replication_restored_on_live_members(&with_lost, &mut violations);
                if violations.is_empty() {
                    return snapshots;
                }
            }
            if cluster_rt::now() >= deadline {
                if !agreed {
                    let sizes: Vec<String> = snapshots
                        .iter()
                        .map(|m| {
                            format!(
                                "member {}: {} pins, applied {:?}, term {:?}{}",
                                m.index,
                                m.pins.len(),
                                m.applied_index,
                                m.term,
                                if m.is_leader { ", leader" } else { "" }
                            )
                        })
                        .collect();
                    // The CIDs not every member holds, and who lacks each.
                    let mut differing = Vec::new();
                    for cid in snapshots
                        .iter()
                        .flat_map(|m| m.pins.iter().map(|p| p.cid))
                        .collect::<std::collections::BTreeSet<_>>()
                    {
                        let lacking: Vec<usize> = snapshots
                            .iter()
                            .filter(|m| !m.pins.iter().any(|p| p.cid == cid))
                            .map(|m| m.index)
                            .collect();
                        if !lacking.is_empty() {
                            differing.push(format!("{cid} not on {lacking:?}"));
                        }
                    }
                    violations.push(Violation {
                        invariant: "liveness",
                        detail: format!(
                            "members did not agree within {LIVENESS_BOUND:?}: {}; {}",
                            sizes.join("; "),
                            differing.join(", ")
                        ),
                    });
                }
                if !learners.is_empty() {
                    let views: Vec<String> = self
                        .cluster
                        .alive()
                        .into_iter()
                        .filter_map(|j| {
                            let cluster = self.cluster.members[j].cluster()?;
                            let consensus = cluster.consensus();
                            Some(format!(
                                "member {j} (term {}{}) {}",
                                consensus.current_term(),
                                if consensus.is_leader() { ", leader" } else { "" },
                                consensus.membership_summary()
                            ))
                        })
                        .collect();
                    violations.push(Violation {
                        invariant: "liveness",
                        detail: format!(
                            "members {learners:?} are not voters everywhere within {LIVENESS_BOUND:?}; memberships: {}",
                            views.join("; ")
                        ),
                    });
                }
                self.fail("no liveness", &violations);
            }
            cluster_rt::sleep(Duration::from_millis(250)).await;
        }
    }
}

async fn safety_phase(handle: &Handle, self_healing: bool, frequent_snapshots: bool) -> Run {
    let size = 3 + random(3) as usize;
    let operations = 30 + random(40);
    let cluster = match (self_healing, frequent_snapshots) {
        // A lost member's pins move 10 + 20 s after its last ping, well inside the liveness bound.
        (true, false) => SimCluster::start_with(handle, size, |_| {
            serde_json::json!({
                "cluster": {"repinning_grace_period": "20s"},
                "informer": {"disk": {"metric_ttl": "10s"}},
            })
        }),
        // A snapshot every few entries and a short log after it: a member that was down or
        // wiped catches up from a snapshot written from the leader's store as it is sent.
        (true, true) => SimCluster::start_with(handle, size, |_| {
            serde_json::json!({
                "cluster": {"repinning_grace_period": "20s"},
                "informer": {"disk": {"metric_ttl": "10s"}},
                "consensus": {"raft": {"snapshot_threshold": 4, "trailing_logs": 2}},
            })
        }),
        (false, _) => SimCluster::start(handle, size),
    };
    let mut run = Run {
        cluster,
        oracle: Oracle::default(),
        plan: vec![format!("members={size} operations={operations}")],
        trace: TraceHash::default(),
        clogged: None,
        clogged_links: Vec::new(),
        leaving: Vec::new(),
        lossy: false,
        self_healing,
        frequent_snapshots,
        wiped: Vec::new(),
        lost: Vec::new(),
        full: None,
    };
    run.cluster
        .wait_leader(&run.cluster.alive(), Duration::from_secs(30))
        .await;
    let mut next_cid = 0;
    for _ in 0..operations {
        if random(5) == 0 {
            run.inject_fault(handle);
        }
        run.client_operation(handle, &mut next_cid).await;
        run.settle_removals(handle);
        run.check_safety();
        cluster_rt::sleep(Duration::from_millis(random(500))).await;
    }
    run
}

/// The test that runs [`run`] for `MADSIM_TEST_SEED`, which `just sim-replay S` reruns.
pub const RANDOM_WORKLOAD_TEST: &str = "random_workload_under_faults_loses_nothing";

/// The test that runs [`run_self_healing`].
pub const SELF_HEALING_WORKLOAD_TEST: &str = "random_workload_with_lost_and_wiped_members_heals";

/// [`run`] with members lost for good and wiped in the fault plan.
pub async fn run_self_healing() -> String {
    crate::begin_scenario(SELF_HEALING_WORKLOAD_TEST);
    run_plan(true, false).await
}

/// The test that runs [`run_with_frequent_snapshots`].
pub const SNAPSHOT_WORKLOAD_TEST: &str = "random_workload_with_frequent_snapshots_heals";

/// [`run_self_healing`] with a Raft snapshot every few entries, so that members catch up from
/// snapshots rather than from the log.
pub async fn run_with_frequent_snapshots() -> String {
    crate::begin_scenario(SNAPSHOT_WORKLOAD_TEST);
    run_plan(true, true).await
}

/// One whole run for the current seed: the safety phase, the liveness phase, then the
/// client-visible invariants. Panics (with the seed, the fault plan and how to replay) on any
/// violation; returns the line every run prints, with its trace hash.
pub async fn run() -> String {
    // Regression tests run a seed of this workload on a thread of their own.
    crate::begin_scenario(RANDOM_WORKLOAD_TEST);
    run_plan(false, false).await
}

async fn run_plan(self_healing: bool, frequent_snapshots: bool) -> String {
    let handle = Handle::current();
    let mut run = safety_phase(&handle, self_healing, frequent_snapshots).await;
    let converged = run.liveness(&handle).await;
    let mut violations = Vec::new();
    invariants::acknowledged_pins_kept(&converged, &run.oracle, &mut violations);
    invariants::unpins_not_resurrected(&converged, &run.oracle, &mut violations);
    if !violations.is_empty() {
        run.fail("client-visible invariant broken", &violations);
    }
    for member in &converged {
        run.trace
            .record(&format!("member {} pins {}", member.index, member.pins.len()));
    }
    for pin in &converged[0].pins {
        run.trace.record(&format!("final {} {:?}", pin.cid, pin.allocations));
    }
    let done = run.oracle.ops().iter().filter(|op| op.outcome == Outcome::Done).count();
    format!(
        "seed={} ops={} acknowledged={done} faults=[{}] simulated={:.1}s trace_hash={}",
        seed(),
        run.oracle.ops().len(),
        run.plan.join("; "),
        madsim::time::TimeHandle::current().elapsed().as_secs_f64(),
        run.trace.hex()
    )
}

/// Runs [`run`] under a fresh simulator with a fixed `seed`, outside `#[madsim::test]` (which
/// takes its seed from the environment): regression tests pin the seed that found their bug.
pub fn run_seed(seed: u64) -> String {
    run_seed_of(seed, false, false)
}

/// [`run_seed`] for [`run_self_healing`].
pub fn run_self_healing_seed(seed: u64) -> String {
    run_seed_of(seed, true, false)
}

/// [`run_seed`] for [`run_with_frequent_snapshots`].
pub fn run_with_frequent_snapshots_seed(seed: u64) -> String {
    run_seed_of(seed, true, true)
}

fn run_seed_of(seed: u64, self_healing: bool, frequent_snapshots: bool) -> String {
    crate::run_seed(seed, move || async move {
        match (self_healing, frequent_snapshots) {
            (true, true) => run_with_frequent_snapshots().await,
            (true, false) => run_self_healing().await,
            (false, _) => run().await,
        }
    })
}
