//! The seeded workload: every parameter (members, operation mix, replication factors, faults and
//! their timing) comes from the seed. A safety phase runs client operations under crashes,
//! restarts, pauses, partitions, one-way link losses and slow, failing, down or full IPFS
//! daemons, checking the safety invariants after every step; a liveness phase
//! removes all faults and requires the cluster to converge within a bound, then checks that no
//! acknowledged pin was lost, no acknowledged unpin undone, and every pin sits on exactly its
//! allocated daemons. A failure prints the seed and the fault plan.
#![cfg(madsim)]

use std::time::Duration;

use cluster_ipfs::FakeIpfsKnobs;
use cluster_sim::invariants::{self, Violation};
use cluster_sim::{replay_hint, seed, MemberSnapshot, OpKind, Oracle, SimCluster, TraceHash};
use cluster_types::Cid;
use madsim::runtime::Handle;

/// How long a paused member stays paused.
const PAUSE: Duration = Duration::from_secs(3);

/// Simulated time the cluster gets to converge once faults stop.
const LIVENESS_BOUND: Duration = Duration::from_secs(120);

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
}

impl Run {
    fn fail(&self, what: &str, violations: &[Violation]) -> ! {
        let list: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
        panic!(
            "{what}: {}\n  fault plan: {}\n  {}",
            list.join("\n  "),
            self.plan.join("; "),
            replay_hint()
        );
    }

    fn check_safety(&self) {
        let snapshots = self.cluster.snapshots();
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

    fn inject_fault(&mut self, handle: &Handle) {
        let size = self.cluster.members.len();
        let alive = self.cluster.alive();
        let majority = size / 2 + 1;
        let net = madsim::net::NetSim::current();
        let pick = |list: &[usize]| list[random(list.len() as u64) as usize];
        match random(9) {
            0 if alive.len() > majority => {
                let victim = pick(&alive);
                self.plan.push(format!("{} kill {victim}", self.now()));
                self.cluster.kill(handle, victim);
                if self.clogged == Some(victim) {
                    net.unclog_node(self.cluster.members[victim].node().id());
                    self.clogged = None;
                }
            }
            1 => {
                if let Some(dead) = (0..size).find(|i| !alive.contains(i)) {
                    self.plan.push(format!("{} restart {dead}", self.now()));
                    self.cluster.restart(handle, dead);
                }
            }
            2 if self.clogged.is_none() && alive.len() > majority => {
                let victim = pick(&alive);
                self.plan.push(format!("{} partition {victim}", self.now()));
                net.clog_node(self.cluster.members[victim].node().id());
                self.clogged = Some(victim);
            }
            3 => {
                if let Some(victim) = self.clogged.take() {
                    self.plan.push(format!("{} heal {victim}", self.now()));
                    net.unclog_node(self.cluster.members[victim].node().id());
                }
            }
            4 if size >= 2 => {
                // One-way: messages from a to b are lost, b to a still arrive.
                let a = random(size as u64) as usize;
                let b = (a + 1 + random(size as u64 - 1) as usize) % size;
                self.plan.push(format!("{} clog link {a}->{b}", self.now()));
                net.clog_link(self.cluster.members[a].node().id(), self.cluster.members[b].node().id());
                self.clogged_links.push((a, b));
            }
            5 => {
                if let Some((a, b)) = self.clogged_links.pop() {
                    self.plan.push(format!("{} unclog link {a}->{b}", self.now()));
                    net.unclog_link(self.cluster.members[a].node().id(), self.cluster.members[b].node().id());
                }
            }
            6 => {
                let member = random(size as u64) as usize;
                let (what, change): (&str, fn(&mut FakeIpfsKnobs)) = match random(4) {
                    0 => ("slow", |k| k.latency = Duration::from_secs(3)),
                    1 => ("failing", |k| k.error_rate = 0.5),
                    2 => ("down", |k| k.down = true),
                    _ => ("full", |k| k.repo_full = true),
                };
                self.plan.push(format!("{} daemon {member} {what}", self.now()));
                self.cluster.members[member].ipfs.update_knobs(change);
            }
            7 => {
                let member = random(size as u64) as usize;
                self.plan.push(format!("{} daemon {member} ok", self.now()));
                self.cluster.members[member].ipfs.set_knobs(FakeIpfsKnobs::default());
            }
            8 if alive.len() > majority => {
                // A long GC pause or a stalled VM: the member stops, then resumes as if nothing happened.
                let victim = pick(&alive);
                self.plan.push(format!("{} pause {victim} 3s", self.now()));
                let id = self.cluster.members[victim].node().id();
                handle.pause(id);
                let resumer = handle.clone();
                cluster_rt::spawn(async move {
                    cluster_rt::sleep(PAUSE).await;
                    resumer.resume(id);
                });
            }
            _ => {}
        }
    }

    async fn client_operation(&mut self, next_cid: &mut u64) {
        let alive = self.cluster.alive();
        let via = alive[random(alive.len() as u64) as usize];
        let pinned: Vec<Cid> = self
            .oracle
            .cids()
            .into_iter()
            .filter(|c| self.oracle.expected(c) == Some(true))
            .collect();
        if random(10) < 3 && !pinned.is_empty() {
            let cid = pinned[random(pinned.len() as u64) as usize];
            let result = self.cluster.unpin(via, cid).await;
            let outcome = self.oracle.record(cid, OpKind::Unpin, result.as_ref());
            self.trace.record(&format!("unpin {cid} via {via}: {outcome:?}"));
        } else {
            let cid = Cid::raw_sha256(format!("workload {}", *next_cid).as_bytes());
            *next_cid += 1;
            let size = self.cluster.members.len() as u64;
            let replication = match random(4) {
                0 => -1,
                r => (r.min(size)) as i32,
            };
            let result = self.cluster.pin(via, cid, replication).await;
            let outcome = self.oracle.record(cid, OpKind::Pin, result.as_ref());
            self.trace
                .record(&format!("pin {cid} x{replication} via {via}: {outcome:?}"));
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
        // Paused members resume on their own after PAUSE.
        cluster_rt::sleep(PAUSE).await;
        for member in &self.cluster.members {
            member.ipfs.set_knobs(FakeIpfsKnobs::default());
        }
        for i in 0..self.cluster.members.len() {
            if !self.cluster.alive().contains(&i) {
                self.cluster.restart(handle, i);
            }
        }
        self.plan.push(format!("{} liveness phase", self.now()));
        let deadline = cluster_rt::now() + LIVENESS_BOUND;
        loop {
            let snapshots = self.cluster.snapshots();
            let mut violations = Vec::new();
            let all_up = snapshots.iter().all(|m| m.alive);
            let agreed = all_up && snapshots.iter().all(|m| m.pins == snapshots[0].pins);
            if agreed {
                invariants::pins_placed_on_allocated_daemons(&snapshots, &mut violations);
                if violations.is_empty() {
                    return snapshots;
                }
            }
            if cluster_rt::now() >= deadline {
                if !agreed {
                    let sizes: Vec<usize> = snapshots.iter().map(|m| m.pins.len()).collect();
                    violations.push(Violation {
                        invariant: "liveness",
                        detail: format!("members did not agree within {LIVENESS_BOUND:?}: pinset sizes {sizes:?}"),
                    });
                }
                self.fail("no liveness", &violations);
            }
            cluster_rt::sleep(Duration::from_millis(250)).await;
        }
    }
}

async fn run_workload(handle: &Handle) -> Run {
    let size = 3 + random(3) as usize;
    let operations = 30 + random(40);
    let mut run = Run {
        cluster: SimCluster::start(handle, size),
        oracle: Oracle::default(),
        plan: vec![format!("members={size} operations={operations}")],
        trace: TraceHash::default(),
        clogged: None,
        clogged_links: Vec::new(),
    };
    run.cluster
        .wait_leader(&run.cluster.alive(), Duration::from_secs(30))
        .await;
    let mut next_cid = 0;
    for _ in 0..operations {
        if random(5) == 0 {
            run.inject_fault(handle);
        }
        run.client_operation(&mut next_cid).await;
        run.check_safety();
        cluster_rt::sleep(Duration::from_millis(random(500))).await;
    }
    run
}

#[madsim::test]
async fn random_workload_under_faults_loses_nothing() {
    let handle = Handle::current();
    let mut run = run_workload(&handle).await;
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
    let done = run
        .oracle
        .ops()
        .iter()
        .filter(|op| op.outcome == cluster_sim::Outcome::Done)
        .count();
    println!(
        "seed={} ops={} acknowledged={done} faults=[{}] simulated={:.1}s trace_hash={}",
        seed(),
        run.oracle.ops().len(),
        run.plan.join("; "),
        madsim::time::TimeHandle::current().elapsed().as_secs_f64(),
        run.trace.hex()
    );
}

/// The simulator's self-test: with a deliberate bug (acknowledge a pin before committing it),
/// crashing the acknowledging member right after the answer loses the pin, and the invariants
/// must say so.
#[madsim::test]
async fn injected_bug_ack_before_commit_is_caught() {
    let handle = Handle::current();
    let mut cluster = SimCluster::start(&handle, 3);
    let leader = cluster.wait_leader(&[0, 1, 2], Duration::from_secs(30)).await;
    let follower = (leader + 1) % 3;
    cluster.members[follower]
        .cluster()
        .unwrap()
        .inject_bug_ack_before_commit(true);
    let mut oracle = Oracle::default();
    let cid = Cid::raw_sha256(b"acknowledged, then lost");
    // Cut the follower off so its deferred commit cannot reach the leader before it crashes.
    let net = madsim::net::NetSim::current();
    let follower_node = cluster.members[follower].node().id();
    net.clog_node(follower_node);
    let result = cluster.pin(follower, cid, 2).await;
    assert!(matches!(result, Some(Ok(_))), "the buggy member acknowledges at once");
    oracle.record(cid, OpKind::Pin, result.as_ref());
    cluster.kill(&handle, follower);
    net.unclog_node(follower_node);
    cluster_rt::sleep(Duration::from_secs(2)).await;
    cluster.restart(&handle, follower);
    cluster_rt::sleep(Duration::from_secs(10)).await;
    let snapshots = cluster.snapshots();
    let mut violations = Vec::new();
    invariants::acknowledged_pins_kept(&snapshots, &oracle, &mut violations);
    let holders: Vec<(usize, bool, Option<u64>)> = snapshots
        .iter()
        .map(|m| (m.index, m.pins.iter().any(|p| p.cid == cid), m.applied_index))
        .collect();
    assert!(
        !violations.is_empty(),
        "the invariants missed a lost acknowledged pin (leader {leader}, follower {follower}, holders {holders:?}); {}",
        replay_hint()
    );
    println!("seed={} injected bug caught: {}", seed(), violations[0]);
}
