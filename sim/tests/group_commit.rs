//! Group commit under a crash: hundreds of writes share Raft entries on the leader, and the
//! leader is killed while batches are in flight. Every write answered as committed is in every
//! member's pinset afterwards, each caller got the answer for its own pin, and nothing that was
//! never asked for was pinned. And the pins of a burst reach each daemon in shared `pin/add`
//! calls.
#![cfg(madsim)]

use std::collections::BTreeSet;
use std::time::Duration;

use cluster_sim::{poll_until, replay_hint, SimCluster};
use cluster_state::PinIter;
use cluster_types::{Cid, ClusterError, PinOptions};
use madsim::runtime::Handle;

const WRITES: u64 = 300;

fn cid_of(i: u64) -> Cid {
    Cid::raw_sha256(format!("group commit pin {i}").as_bytes())
}

fn pinset(cluster: &SimCluster, i: usize) -> Option<BTreeSet<Cid>> {
    let member = cluster.members[i].cluster()?;
    PinIter::new(member.state().as_ref(), 1000)
        .map(|pin| pin.map(|pin| pin.cid))
        .collect::<Result<_, _>>()
        .ok()
}

#[madsim::test]
async fn a_leader_killed_in_the_middle_of_a_batch_loses_no_acknowledged_pin() {
    cluster_sim::scenario!();
    let handle = Handle::current();
    let mut cluster = SimCluster::start(&handle, 3);
    let leader = cluster.wait_leader(&[0, 1, 2], Duration::from_secs(30)).await;
    let follower = (leader + 1) % 3;
    let entries_before = cluster.members[follower]
        .cluster()
        .and_then(|c| c.consensus().last_log_index())
        .unwrap_or(0);

    // Two writes in three go to the leader, the third through a follower (forwarded).
    let writes: Vec<_> = (0..WRITES)
        .map(|i| {
            let via = if i % 3 == 2 { follower } else { leader };
            let member = cluster.members[via].cluster().expect("up");
            let options = PinOptions {
                name: format!("write {i}"),
                ..Default::default()
            };
            cluster.members[via]
                .node()
                .spawn(async move { member.pin(cid_of(i), options).await })
        })
        .collect();
    // Killed once three to five entries (two lone writes, then batches) are in the follower's log, and a moment later (the seed
    // picks both): batches are being committed.
    let log_index = |cluster: &SimCluster| {
        cluster.members[follower]
            .cluster()
            .and_then(|c| c.consensus().last_log_index())
            .unwrap_or(0)
    };
    let entries_first = 3 + cluster_rt::random_u64() % 3;
    poll_until(
        Duration::from_secs(30),
        Duration::from_micros(500),
        || "nothing committed".into(),
        || log_index(&cluster) >= entries_before + entries_first,
    )
    .await;
    cluster_rt::sleep(Duration::from_micros(cluster_rt::random_u64() % 5_000)).await;
    let entries_at_kill = log_index(&cluster) - entries_before;
    cluster.members[leader].kill(&handle);

    let mut acknowledged = Vec::new();
    for (i, write) in writes.into_iter().enumerate() {
        let i = i as u64;
        match write.await {
            Ok(Ok(pin)) => {
                assert_eq!(
                    (pin.cid, pin.options.name.as_str()),
                    (cid_of(i), format!("write {i}").as_str()),
                    "write {i} was answered with another write's pin; {}",
                    replay_hint()
                );
                acknowledged.push(i);
            }
            // Unknown outcome: the member it went through or the leader died on the way.
            Ok(Err(ClusterError::Timeout(_) | ClusterError::NoLeader(_))) | Err(_) => {}
            Ok(Err(other)) => panic!("write {i} failed with {other:?}; {}", replay_hint()),
        }
    }
    cluster.restart(&handle, leader);
    cluster.wait_leader(&[0, 1, 2], Duration::from_secs(60)).await;
    // A write after the restart: every member then applies everything committed before it.
    let last = loop {
        match cluster.pin(follower, cid_of(WRITES), 3).await {
            Some(Ok(pin)) => break pin,
            _ => cluster_rt::sleep(Duration::from_millis(200)).await,
        }
    };
    let asked: BTreeSet<Cid> = (0..=WRITES).map(cid_of).collect();
    let deadline = cluster_rt::now() + Duration::from_secs(60);
    for i in 0..3 {
        let held = loop {
            match pinset(&cluster, i) {
                Some(held) if held.contains(&last.cid) => break held,
                _ => {
                    assert!(
                        cluster_rt::now() < deadline,
                        "member {i} did not catch up; {}",
                        replay_hint()
                    );
                    cluster_rt::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        for n in &acknowledged {
            assert!(
                held.contains(&cid_of(*n)),
                "member {i} lost acknowledged write {n}; {}",
                replay_hint()
            );
        }
        assert!(
            held.is_subset(&asked),
            "member {i} holds a pin nobody asked for; {}",
            replay_hint()
        );
    }
    // Not one entry per write: fewer entries were added (elections' blank entries and the last
    // write included) than writes committed.
    let committed = pinset(&cluster, follower).expect("up").len() as u64;
    let entries = log_index(&cluster) - entries_before;
    assert!(
        entries < committed,
        "{committed} writes committed in {entries} log entries: nothing was batched; {}",
        replay_hint()
    );
    let unknown = WRITES as usize - acknowledged.len();
    println!(
        "seed={} acknowledged={} unknown={unknown} committed={committed} entries={entries} entries_at_kill={entries_at_kill} (group commit, leader killed)",
        cluster_sim::seed(),
        acknowledged.len()
    );
}

#[madsim::test]
async fn a_burst_of_pins_reaches_every_daemon_in_fewer_calls_than_pins() {
    cluster_sim::scenario!();
    let handle = Handle::current();
    let cluster = SimCluster::start(&handle, 3);
    let leader = cluster.wait_leader(&[0, 1, 2], Duration::from_secs(30)).await;
    let member = cluster.members[leader].cluster().expect("up");
    let writes: Vec<_> = (0..WRITES)
        .map(|i| {
            let member = member.clone();
            let options = PinOptions {
                replication_factor_min: 3,
                replication_factor_max: 3,
                ..Default::default()
            };
            cluster.members[leader]
                .node()
                .spawn(async move { member.pin(cid_of(i), options).await })
        })
        .collect();
    for (i, write) in writes.into_iter().enumerate() {
        if let Err(e) = write.await.expect("the write's task ran") {
            panic!("write {i} failed: {e:?}; {}", replay_hint());
        }
    }
    let asked: BTreeSet<Cid> = (0..WRITES).map(cid_of).collect();
    for (i, sim_member) in cluster.members.iter().enumerate() {
        let ipfs = &sim_member.ipfs;
        let held = || asked.iter().filter(|cid| ipfs.has_pin(cid)).count();
        poll_until(
            Duration::from_secs(60),
            Duration::from_millis(100),
            || format!("member {i}'s daemon holds {} of the {WRITES} pins", held()),
            || held() == asked.len(),
        )
        .await;
        let calls = ipfs.calls("pin");
        assert!(
            calls < WRITES,
            "member {i}'s daemon got {calls} pin calls for {WRITES} pins: nothing was batched; {}",
            replay_hint()
        );
        println!(
            "seed={} member {i}: {WRITES} pins in {calls} daemon calls",
            cluster_sim::seed()
        );
    }
}
