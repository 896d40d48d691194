//! One member under the simulator: pin 100 CIDs, crash and restart, everything still pinned;
//! the run prints its seed and trace hash, and the same seed gives the same hash.
#![cfg(madsim)]

use std::time::Duration;

use cluster_sim::{replay_hint, seed, SimMember, SimMemberConfig, TraceHash};
use cluster_types::{Cid, PinOptions, TrackerStatus};

fn cid_of(i: u64) -> Cid {
    Cid::raw_sha256(format!("sim pin {i}").as_bytes())
}

async fn wait_all_pinned(member: &SimMember, count: u64, limit: Duration) {
    let deadline = cluster_rt::now() + limit;
    loop {
        let cluster = member.wait_up(limit).await;
        let mut not_pinned = Vec::new();
        for i in 0..count {
            let info = cluster.tracker().status(&cid_of(i)).await;
            if info.short.status != TrackerStatus::Pinned {
                not_pinned.push(format!("{}={}", i, info.short.status));
            }
        }
        if not_pinned.is_empty() {
            return;
        }
        assert!(
            cluster_rt::now() < deadline,
            "{} pins not pinned after {limit:?}: {:?}; {}",
            not_pinned.len(),
            &not_pinned[..not_pinned.len().min(5)],
            replay_hint()
        );
        cluster_rt::sleep(Duration::from_millis(200)).await;
    }
}

#[madsim::test]
async fn one_member_keeps_its_pins_across_a_crash() {
    cluster_sim::scenario!();
    let handle = madsim::runtime::Handle::current();
    let dir = tempfile::tempdir().expect("temp dir");
    let member = SimMember::start(
        &handle,
        SimMemberConfig {
            name: "member-0".into(),
            ip: "10.0.0.1".parse().unwrap(),
            identity_seed: [1; 32],
            data_dir: dir.path().join("member-0"),
            peers: Vec::new(),
            bootstrap: None,
            service: serde_json::Value::Null,
        },
    );
    let mut trace = TraceHash::default();
    let client = handle
        .create_node()
        .name("client")
        .ip("10.0.0.100".parse().unwrap())
        .build();

    tracing::info!("--- pin 100 CIDs");
    let cluster = member.wait_up(Duration::from_secs(30)).await;
    let pinned = client
        .spawn(async move {
            let mut committed = Vec::new();
            for i in 0..100u64 {
                let pin = cluster
                    .pin(cid_of(i), PinOptions::default())
                    .await
                    .expect("pin accepted");
                committed.push(format!("{} {}", pin.cid, pin.timestamp));
            }
            committed
        })
        .await
        .unwrap();
    for line in &pinned {
        trace.record(line);
    }
    wait_all_pinned(&member, 100, Duration::from_secs(60)).await;
    assert_eq!(
        member.ipfs.pins().len(),
        100,
        "the daemon holds every pin; {}",
        replay_hint()
    );

    tracing::info!("--- crash and restart");
    member.kill(&handle);
    cluster_rt::sleep(Duration::from_secs(1)).await;
    member.restart(&handle);
    let cluster = member.wait_up(Duration::from_secs(30)).await;
    assert_eq!(
        cluster.state().len().unwrap(),
        100,
        "state survives the crash; {}",
        replay_hint()
    );
    wait_all_pinned(&member, 100, Duration::from_secs(60)).await;

    tracing::info!("--- the daemon loses pins: the state sync restores them");
    member.ipfs.forget(&cid_of(7));
    member.ipfs.forget(&cid_of(42));
    cluster.tracker().sync_state().await.expect("sync");
    wait_all_pinned(&member, 100, Duration::from_secs(60)).await;

    let mut listing = Vec::new();
    let mut after = None;
    loop {
        let page = cluster.state().list_page(after.as_ref(), 1000).unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|p| p.cid);
        listing.extend(page);
    }
    for pin in &listing {
        trace.record(&serde_json::to_string(pin).unwrap());
    }
    trace.record(&format!("applied={:?}", cluster.consensus().last_applied_index()));
    trace.record(&format!("elapsed={:?}", madsim::time::TimeHandle::current().elapsed()));
    println!("seed={} trace_hash={}", seed(), trace.hex());
}
