//! A full disk under the simulator: the member refuses writes with the disk's own error, says
//! so in its health and takes no pins; once space is freed it writes again and catches up,
//! without a restart. Before, Raft stopped for good at the first failed write and `/health`
//! still answered 204.
#![cfg(madsim)]

use std::sync::Arc;
use std::time::Duration;

use cluster_sim::{replay_hint, SimCluster};
use cluster_state::PinIter;
use cluster_types::{Cid, Pin, PinOptions};
use madsim::runtime::Handle;

fn cid_of(i: u64) -> Cid {
    Cid::raw_sha256(format!("full disk pin {i}").as_bytes())
}

/// Pins `cid` through `via`, retrying failures (a new leader being elected) for up to `limit`.
async fn pin_until_done(cluster: &SimCluster, via: usize, cid: Cid, options: PinOptions, limit: Duration) -> Pin {
    let deadline = cluster_rt::now() + limit;
    loop {
        match cluster.pin_with(via, cid, options.clone()).await {
            Some(Ok(pin)) => return pin,
            other => assert!(
                cluster_rt::now() < deadline,
                "pin {cid} through member {via} within {limit:?}: last {other:?}; {}",
                replay_hint()
            ),
        }
        cluster_rt::sleep(Duration::from_millis(500)).await;
    }
}

fn replication(n: i32) -> PinOptions {
    PinOptions {
        replication_factor_min: n,
        replication_factor_max: n,
        ..Default::default()
    }
}

fn pins_of(cluster: &cluster_node::Cluster) -> Option<Vec<Pin>> {
    PinIter::new(cluster.state().as_ref(), 1000)
        .collect::<Result<_, _>>()
        .ok()
}

/// The leader's disk fills: the write that meets it fails with "No space left on device", so
/// does every later write through it, and `/health` says why; the other two elect a leader and
/// go on, and allocate nothing to it. Once space is freed it is healthy again, holds the whole
/// pinset and takes writes, as the same running member.
#[madsim::test]
async fn a_leader_whose_disk_fills_refuses_writes_and_heals_without_a_restart() {
    cluster_sim::scenario!();
    let handle = Handle::current();
    let cluster = SimCluster::start_with(
        &handle,
        3,
        |_| serde_json::json!({"informer": {"disk": {"metric_ttl": "10s"}}}),
    );
    let leader = cluster.wait_leader(&[0, 1, 2], Duration::from_secs(30)).await;
    for n in 0..6 {
        pin_until_done(
            &cluster,
            (n % 3) as usize,
            cid_of(n),
            replication(2),
            Duration::from_secs(30),
        )
        .await;
    }
    let full = cluster.members[leader].cluster().expect("up");
    let peer = cluster.members[leader].identity.peer_id;
    cluster.members[leader].disk.fill();

    let refused = cluster.pin_with(leader, cid_of(100), replication(2)).await.expect("up");
    let error = refused.expect_err("a write on a full disk fails").to_string();
    assert!(error.contains("No space left on device"), "{error}; {}", replay_hint());
    let again = cluster.pin_with(leader, cid_of(101), replication(2)).await.expect("up");
    let error = again.expect_err("and so does the next one").to_string();
    assert!(error.contains("No space left on device"), "{error}; {}", replay_hint());
    let why = full.health().expect_err("a member that cannot write is unhealthy");
    assert!(why.contains("No space left on device"), "{why}");

    // The others go on without it; once its invalid free-space metric is in, nothing new is
    // allocated to it.
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    cluster_rt::sleep(Duration::from_secs(12)).await;
    for n in 0..6u64 {
        let via = others[(n % 2) as usize];
        let options = PinOptions {
            replication_factor_min: 1,
            replication_factor_max: 3,
            ..Default::default()
        };
        let pin = pin_until_done(&cluster, via, cid_of(200 + n), options, Duration::from_secs(60)).await;
        assert!(
            !pin.is_allocated_to(&peer),
            "pin {n} allocated to the member with a full disk: {:?}; {}",
            pin.allocations,
            replay_hint()
        );
    }

    cluster.members[leader].disk.free();
    let healthy_by = cluster_rt::now() + Duration::from_secs(30);
    loop {
        let reference = pins_of(&cluster.members[others[0]].cluster().expect("up"));
        if full.health().is_ok() && pins_of(&full).is_some_and(|pins| Some(pins) == reference) {
            break;
        }
        assert!(
            cluster_rt::now() < healthy_by,
            "the freed member is healthy and caught up within 30 s: health {:?}; {}",
            full.health(),
            replay_hint()
        );
        cluster_rt::sleep(Duration::from_millis(250)).await;
    }
    pin_until_done(&cluster, leader, cid_of(300), replication(3), Duration::from_secs(10)).await;
    let now = cluster.members[leader].cluster().expect("up");
    assert!(
        Arc::ptr_eq(&full, &now),
        "healed by the same running member, not a restart"
    );
}

/// A one-member cluster: writes fail with the disk's error while it is full, and the very
/// next writes after space is freed succeed; what was committed before is all there.
#[madsim::test]
async fn a_lone_member_whose_disk_fills_writes_again_once_freed() {
    cluster_sim::scenario!();
    let handle = Handle::current();
    let cluster = SimCluster::start(&handle, 1);
    cluster.wait_leader(&[0], Duration::from_secs(30)).await;
    for n in 0..5 {
        pin_until_done(&cluster, 0, cid_of(n), replication(1), Duration::from_secs(10)).await;
    }
    let member = cluster.members[0].cluster().expect("up");
    cluster.members[0].disk.fill();
    for n in 10..15 {
        let refused = cluster.pin_with(0, cid_of(n), replication(1)).await.expect("up");
        let error = refused.expect_err("a write on a full disk fails").to_string();
        assert!(error.contains("No space left on device"), "{error}; {}", replay_hint());
    }
    assert!(member.health().is_err(), "unhealthy while its disk is full");

    cluster.members[0].disk.free();
    // Raft retries at most a second apart.
    cluster_rt::sleep(Duration::from_secs(2)).await;
    for n in 20..25 {
        let written = cluster.pin_with(0, cid_of(n), replication(1)).await.expect("up");
        assert!(
            written.is_ok(),
            "write {n} after space was freed: {written:?}; {}",
            replay_hint()
        );
    }
    assert_eq!(member.health(), Ok(()));
    let pins = pins_of(&member).expect("readable");
    for n in (0..5).chain(20..25) {
        assert!(
            pins.iter().any(|p| p.cid == cid_of(n)),
            "pin {n} kept; {}",
            replay_hint()
        );
    }
    let now = cluster.members[0].cluster().expect("up");
    assert!(
        Arc::ptr_eq(&member, &now),
        "healed by the same running member, not a restart"
    );
}

/// Found by CI seed 3721343459 of `random_workload_with_lost_and_wiped_members_heals`: a
/// member applied its entries without a sync each; then, on a full disk, another writer's
/// commit failed (the tracker clearing a tombstone) and the pinset was opened again at its last
/// durable commit, without those applies. No entry followed once the disk had room, so no apply
/// caught up: the member's pinset stayed behind for good, and its daemon never got the pins it
/// was allocated. The state machine then learnt to apply such a loss again from its log as soon
/// as the store reports the reopen (tested in `cluster/consensus/tests/consensus.rs`); since the
/// pinset's buffer keeps what a refused write could not write, the loss no longer happens.
#[madsim::test]
async fn a_pinset_another_writer_took_back_is_applied_again_while_no_entry_comes() {
    cluster_sim::scenario!();
    let handle = Handle::current();
    let cluster = SimCluster::start(&handle, 3);
    let leader = cluster.wait_leader(&[0, 1, 2], Duration::from_secs(30)).await;
    for n in 0..6 {
        pin_until_done(&cluster, leader, cid_of(n), replication(3), Duration::from_secs(30)).await;
    }
    let follower = (0..3).find(|i| *i != leader).expect("three members");
    let member = cluster.members[follower].cluster().expect("up");
    let reference = pins_of(&cluster.members[leader].cluster().expect("up")).expect("readable");
    let applied_by = cluster_rt::now() + Duration::from_secs(10);
    while pins_of(&member).as_ref() != Some(&reference) {
        assert!(
            cluster_rt::now() < applied_by,
            "member {follower} applied the pins; {}",
            replay_hint()
        );
        cluster_rt::sleep(Duration::from_millis(100)).await;
    }

    cluster.members[follower].disk.fill();
    // The tracker's kind of write: not an apply.
    let refused = member
        .state()
        .commit(&[cluster_state::StateOp::ClearTombstone(cid_of(1000))], None);
    assert!(refused.is_err(), "a full disk refuses the commit; {}", replay_hint());
    cluster.members[follower].disk.free();
    assert_eq!(
        pins_of(&member).as_ref(),
        Some(&reference),
        "the refused commit lost none of the unsynced applies; {}",
        replay_hint()
    );

    let repaired_by = cluster_rt::now() + Duration::from_secs(10);
    while pins_of(&member).as_ref() != Some(&reference) {
        assert!(
            cluster_rt::now() < repaired_by,
            "member {follower} holds the whole pinset again within 10 s with no new entry: {:?} pins; {}",
            pins_of(&member).map(|pins| pins.len()),
            replay_hint()
        );
        cluster_rt::sleep(Duration::from_millis(100)).await;
    }
    let daemon_by = cluster_rt::now() + Duration::from_secs(30);
    loop {
        let held = cluster.members[follower].ipfs.pins();
        if reference.iter().all(|pin| held.contains(&pin.cid)) {
            break;
        }
        assert!(
            cluster_rt::now() < daemon_by,
            "its daemon holds every pin; {}",
            replay_hint()
        );
        cluster_rt::sleep(Duration::from_millis(250)).await;
    }
}
