//! What operators hit in their first hour with a cluster, each as a scenario: a cluster-wide
//! recover that reaches every member, and liveness metrics that do not wait on a slow daemon.
#![cfg(madsim)]

use std::time::Duration;

use cluster_api::RestBackend;
use cluster_sim::{poll_until, replay_hint, SimCluster};
use cluster_types::{Cid, TrackerStatus};
use madsim::runtime::Handle;

fn cid_of(i: u64) -> Cid {
    Cid::raw_sha256(format!("operator pin {i}").as_bytes())
}

/// `recover` without a CID (`POST /pins/recover`) re-queues the failed items of every member,
/// not only of the member asked, as Go and the ctl help say.
#[madsim::test]
async fn recover_all_reaches_every_member() {
    cluster_sim::scenario!();
    let handle = Handle::current();
    let cluster = SimCluster::start(&handle, 3);
    let leader = cluster.wait_leader(&[0, 1, 2], Duration::from_secs(30)).await;
    let asked = leader;
    let failing = (leader + 1) % 3;
    cluster.members[failing].ipfs.update_knobs(|k| k.error_rate = 1.0);
    let cids: Vec<Cid> = (0..5).map(cid_of).collect();
    for cid in &cids {
        let pinned = cluster.pin(asked, *cid, 3).await;
        assert!(
            matches!(pinned, Some(Ok(_))),
            "pin {cid}: {pinned:?}; {}",
            replay_hint()
        );
    }

    tracing::info!("--- every pin fails on the failing member's daemon");
    let failing_member = cluster.members[failing].cluster().expect("member up");
    let deadline = cluster_rt::now() + Duration::from_secs(60);
    loop {
        let mut errors = 0;
        for cid in &cids {
            if failing_member.tracker().status(cid).await.short.status == TrackerStatus::PinError {
                errors += 1;
            }
        }
        if errors == cids.len() {
            break;
        }
        assert!(
            cluster_rt::now() < deadline,
            "{errors} of {} pins in pin_error; {}",
            cids.len(),
            replay_hint()
        );
        cluster_rt::sleep(Duration::from_millis(500)).await;
    }
    cluster.members[failing].ipfs.update_knobs(|k| k.error_rate = 0.0);

    tracing::info!("--- recover all, asked of another member");
    let via = cluster.members[asked].cluster().expect("member up");
    let mut recovered = RestBackend::recover_all(&*via, false).await;
    let failing_peer = cluster.members[failing].identity.peer_id.to_string();
    let mut requeued = Vec::new();
    while let Some(item) = recovered.recv().await {
        let info = item.unwrap_or_else(|e| panic!("recover all: {e}; {}", replay_hint()));
        if info.peer_map.contains_key(&failing_peer) {
            requeued.push(info.cid);
        }
    }
    requeued.sort();
    let mut expected = cids.clone();
    expected.sort();
    assert_eq!(
        requeued,
        expected,
        "the failing member's items are re-queued and reported; {}",
        replay_hint()
    );
    poll_until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || "the failing member's daemon pins them once recovered".into(),
        || cids.iter().all(|cid| cluster.members[failing].ipfs.has_pin(cid)),
    )
    .await;
}

/// A daemon that takes 9 s to answer `repo/stat` slows the `freespace` metric only: `ping`
/// does not wait for it, so no healthy member ever looks dead and no alert fires.
#[madsim::test]
async fn a_slow_daemon_does_not_make_a_member_look_dead() {
    cluster_sim::scenario!();
    let handle = Handle::current();
    let cluster = SimCluster::start(&handle, 3);
    cluster.wait_leader(&[0, 1, 2], Duration::from_secs(30)).await;
    for member in &cluster.members {
        member
            .ipfs
            .update_knobs(|k| k.repo_stat_latency = Duration::from_secs(9));
    }
    // Several metric lifetimes (30 s) and alert checks (15 s).
    cluster_rt::sleep(Duration::from_secs(180)).await;
    for (i, member) in cluster.members.iter().enumerate() {
        let cluster = member.cluster().expect("member up");
        let alerts: Vec<String> = cluster
            .alerts()
            .iter()
            .map(|a| format!("{} of {}", a.metric.name, a.metric.peer))
            .collect();
        assert!(
            alerts.is_empty(),
            "member {i} raised {} alerts for healthy members, first {:?}; {}",
            alerts.len(),
            alerts.first(),
            replay_hint()
        );
        assert_eq!(
            cluster.fresh_metrics("ping").len(),
            3,
            "member {i} holds a fresh ping of every member; {}",
            replay_hint()
        );
    }
}
