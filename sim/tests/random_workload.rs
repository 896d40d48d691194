//! The seeded random workload (see `cluster_sim::workload`), once per seed, and the simulator's
//! self-test with a deliberately injected bug.
#![cfg(madsim)]

use std::time::Duration;

use cluster_sim::invariants;
use cluster_sim::{replay_hint, seed, OpKind, Oracle, SimCluster};
use cluster_types::Cid;
use madsim::runtime::Handle;

#[madsim::test]
async fn random_workload_under_faults_loses_nothing() {
    cluster_sim::scenario!();
    println!("{}", cluster_sim::workload::run().await);
}

/// The same workload with members lost for good and wiped: pins move off the lost member, the
/// wiped one rejoins, nothing acknowledged is lost.
#[madsim::test]
async fn random_workload_with_lost_and_wiped_members_heals() {
    cluster_sim::scenario!();
    println!("{}", cluster_sim::workload::run_self_healing().await);
}

/// The self-healing workload with a Raft snapshot every few entries: lagging, restarted and
/// wiped members catch up from snapshots, whose bodies the leader writes from its store as it
/// sends them.
#[madsim::test]
async fn random_workload_with_frequent_snapshots_heals() {
    cluster_sim::scenario!();
    println!("{}", cluster_sim::workload::run_with_frequent_snapshots().await);
}

/// The simulator's self-test: with a deliberate bug (acknowledge a pin before committing it),
/// crashing the acknowledging member right after the answer loses the pin, and the invariants
/// must say so.
#[madsim::test]
async fn injected_bug_ack_before_commit_is_caught() {
    cluster_sim::scenario!();
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
    println!(
        "seed={} self-test passed: the invariants caught the deliberately injected bug ({})",
        seed(),
        violations[0]
    );
}
