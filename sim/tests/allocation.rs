//! Where pins go in a whole cluster: `allocator.balanced.allocate_by` spreads copies across tag
//! groups (one copy per group for replication 3 over three groups).
#![cfg(madsim)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cluster_sim::{replay_hint, SimCluster};
use cluster_types::{Cid, PinOptions};
use madsim::runtime::Handle;

const GROUPS: [&str; 3] = ["eu", "us", "asia"];

fn cid_of(i: u64) -> Cid {
    Cid::raw_sha256(format!("allocation pin {i}").as_bytes())
}

/// Six members, two per group; every pin of replication 3 lands once in each group, whichever
/// member the write goes through.
#[madsim::test]
async fn replication_three_over_three_tag_groups_puts_one_copy_in_each() {
    cluster_sim::scenario!();
    let handle = Handle::current();
    let group_of = |i: usize| GROUPS[i % GROUPS.len()];
    let cluster = SimCluster::start_with(
        &handle,
        6,
        |i| serde_json::json!({"informer": {"tags": {"tags": {"group": group_of(i)}}}}),
    );
    let all: Vec<usize> = (0..6).collect();
    cluster.wait_leader(&all, Duration::from_secs(30)).await;
    // Every member's tag and free space known to every member, so none counts as ungrouped.
    let deadline = cluster_rt::now() + Duration::from_secs(30);
    for i in &all {
        let member = cluster.members[*i].cluster().expect("up");
        while member.fresh_metrics("tag:group").len() < 6 || member.fresh_metrics("freespace").len() < 6 {
            assert!(
                cluster_rt::now() < deadline,
                "member {i} learns every member's metrics; {}",
                replay_hint()
            );
            cluster_rt::sleep(Duration::from_millis(200)).await;
        }
    }
    let group_of_peer: BTreeMap<_, _> = all
        .iter()
        .map(|i| (cluster.members[*i].identity.peer_id, group_of(*i)))
        .collect();
    let options = PinOptions {
        replication_factor_min: 3,
        replication_factor_max: 3,
        ..Default::default()
    };
    for n in 0..30u64 {
        let via = (n as usize) % 6;
        let pin = cluster.members[via]
            .cluster()
            .expect("up")
            .pin(cid_of(n), options.clone())
            .await
            .unwrap_or_else(|e| panic!("pin {n} through member {via}: {e}; {}", replay_hint()));
        let groups: BTreeSet<&str> = pin.allocations.iter().map(|p| group_of_peer[p]).collect();
        assert_eq!(
            (pin.allocations.len(), groups.len()),
            (3, 3),
            "pin {n}: one copy per group, got {:?}; {}",
            pin.allocations.iter().map(|p| group_of_peer[p]).collect::<Vec<_>>(),
            replay_hint()
        );
    }
}
