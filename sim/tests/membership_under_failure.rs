//! Membership changes when members fail: members joining together, a member that dies while
//! joining, `peers rm` without a quorum, and a member removed while it was away.
#![cfg(madsim)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use cluster_sim::{poll_until, replay_hint, SimCluster};
use cluster_types::{Cid, ClusterError};
use madsim::runtime::Handle;

fn cid_of(i: u64) -> Cid {
    Cid::raw_sha256(format!("membership pin {i}").as_bytes())
}

/// Waits until every running member sees member `i` as a voter.
async fn wait_voter(cluster: &SimCluster, i: usize, limit: Duration) {
    poll_until(
        limit,
        Duration::from_millis(100),
        || format!("member {i} is not a voter everywhere after {limit:?}"),
        || cluster.is_voter_everywhere(i),
    )
    .await;
}

/// Two members started at once, joining through the same member: the leader takes one
/// membership change at a time, and both join at their first attempt.
#[madsim::test]
async fn members_joining_together_both_join_at_once() {
    cluster_sim::scenario!();
    let handle = Handle::current();
    let mut cluster = SimCluster::start(&handle, 3);
    cluster.wait_leader(&[0, 1, 2], Duration::from_secs(30)).await;
    let first = cluster.join_new_member(&handle, 0);
    let second = cluster.join_new_member(&handle, 0);
    wait_voter(&cluster, first, Duration::from_secs(60)).await;
    wait_voter(&cluster, second, Duration::from_secs(60)).await;
    for i in [first, second] {
        assert_eq!(
            cluster.members[i].join_failures.load(Ordering::Relaxed),
            0,
            "member {i} joined at its first attempt; {}",
            replay_hint()
        );
    }
}

/// A member that dies while it joins, before it has caught up, never becomes a voter: the
/// cluster keeps its quorum (here two of three, with one founder down) and commits as before,
/// and the dead learner can be removed at once.
#[madsim::test]
async fn a_member_dying_while_it_joins_never_costs_the_quorum() {
    cluster_sim::scenario!();
    let handle = Handle::current();
    let mut cluster = SimCluster::start(&handle, 3);
    let leader = cluster.wait_leader(&[0, 1, 2], Duration::from_secs(30)).await;
    for i in 0..50 {
        let pinned = cluster.pin(leader, cid_of(i), 2).await;
        assert!(matches!(pinned, Some(Ok(_))), "pin {i}: {pinned:?}; {}", replay_hint());
    }
    let down = (leader + 1) % 3;
    cluster.kill(&handle, down);
    let newcomer = cluster.join_new_member(&handle, leader);
    // The leader never gets through to the newcomer, which then dies: it cannot have caught up.
    let net = madsim::net::NetSim::current();
    net.clog_link(
        cluster.members[leader].node().id(),
        cluster.members[newcomer].node().id(),
    );
    let node = cluster_consensus::node_id_of(&cluster.members[newcomer].identity.peer_id);
    let leading = cluster.members[leader].cluster().expect("leader up");
    poll_until(
        Duration::from_secs(30),
        Duration::from_millis(10),
        || "the newcomer asked to join".into(),
        || leading.consensus().members().iter().any(|(id, _)| *id == node),
    )
    .await;
    cluster_rt::sleep(Duration::from_secs(2)).await;
    cluster.kill(&handle, newcomer);
    let started = cluster_rt::now();
    let pinned = cluster.pin(leader, cid_of(1000), 1).await;
    assert!(
        matches!(pinned, Some(Ok(_))),
        "two of three founders still commit: {pinned:?}; {}",
        replay_hint()
    );
    assert!(
        cluster_rt::now() - started < Duration::from_secs(5),
        "at once; {}",
        replay_hint()
    );
    assert!(
        !leading.consensus().is_voter(node),
        "the dead newcomer is not a voter; {}",
        replay_hint()
    );
    // The leader gave up on the learner: removing it is not held up behind its join.
    let started = cluster_rt::now();
    let removed = cluster.remove_member(leader, newcomer).await.expect("leader up");
    assert!(
        matches!(removed, Ok(())),
        "peers rm of the dead learner: {removed:?}; {}",
        replay_hint()
    );
    assert!(
        cluster_rt::now() - started < Duration::from_secs(30),
        "removed without waiting for its join to time out; {}",
        replay_hint()
    );
}

/// `peers rm` when the cluster has lost its quorum answers a clear error within its deadline,
/// instead of hanging.
#[madsim::test]
async fn peers_rm_without_a_quorum_answers_an_error() {
    cluster_sim::scenario!();
    let handle = Handle::current();
    let mut cluster = SimCluster::start(&handle, 3);
    let leader = cluster.wait_leader(&[0, 1, 2], Duration::from_secs(30)).await;
    for i in 0..20 {
        let pinned = cluster.pin(leader, cid_of(i), 3).await;
        assert!(matches!(pinned, Some(Ok(_))), "pin {i}: {pinned:?}; {}", replay_hint());
    }
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    cluster.kill(&handle, a);
    cluster.kill(&handle, b);
    let started = cluster_rt::now();
    let removed = cluster.remove_member(leader, a).await.expect("the asked member is up");
    let took = cluster_rt::now() - started;
    match removed {
        Err(ClusterError::NoQuorum(message)) => {
            assert!(message.contains("quorum"), "{message}");
        }
        other => panic!("peers rm without a quorum: {other:?}; {}", replay_hint()),
    }
    assert!(
        took < Duration::from_secs(60),
        "answered within its deadline, not after {took:?}; {}",
        replay_hint()
    );
}

/// A member removed while it was down learns it when it comes back: it logs that it was
/// removed and stops, instead of campaigning with ever higher terms.
#[madsim::test]
async fn a_member_removed_while_away_stops_when_it_returns() {
    cluster_sim::scenario!();
    let handle = Handle::current();
    let mut cluster = SimCluster::start(&handle, 3);
    let leader = cluster.wait_leader(&[0, 1, 2], Duration::from_secs(30)).await;
    let away = (leader + 1) % 3;
    let stays = (leader + 2) % 3;
    cluster.kill(&handle, away);
    let removed = cluster.remove_member(leader, away).await.expect("leader up");
    assert!(matches!(removed, Ok(())), "peers rm: {removed:?}; {}", replay_hint());
    cluster_rt::sleep(Duration::from_secs(2)).await;
    let term_before = cluster.members[leader].cluster().unwrap().consensus().current_term();

    cluster.restart(&handle, away);
    let returned = cluster.members[away].wait_up(Duration::from_secs(30)).await;
    poll_until(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || "the returning member never learned it was removed".into(),
        || returned.is_removed(),
    )
    .await;
    let refused = returned.pin(cid_of(2), Default::default()).await;
    assert!(
        matches!(&refused, Err(e) if e.is_fatal()),
        "a removed member refuses writes at once, as fatal: {refused:?}; {}",
        replay_hint()
    );
    cluster_rt::sleep(Duration::from_secs(10)).await;
    for i in [leader, stays] {
        let member = cluster.members[i].cluster().unwrap();
        assert_eq!(
            member.consensus().current_term(),
            term_before,
            "member {i}: no election since the removed member came back; {}",
            replay_hint()
        );
    }
    let pinned = cluster.pin(stays, cid_of(1), 2).await;
    assert!(
        matches!(pinned, Some(Ok(_))),
        "the two remaining commit: {pinned:?}; {}",
        replay_hint()
    );
}
