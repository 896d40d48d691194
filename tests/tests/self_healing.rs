//! Self-healing with real processes: a member killed for good has its pins moved to live
//! members and an alert to show for it; a member whose Raft and state folders were wiped does
//! not start a cluster of its own, and rejoins with `--bootstrap`.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use cluster_tests::{json_values, stderr, stdout, wait_until, ClusterMember as Member};
use cluster_types::Cid;

const SECRET: &str = "5d2c7b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a49382716f5e4";

fn cid(i: u32) -> String {
    Cid::raw_sha256(format!("self-healing process test {i}").as_bytes()).to_string()
}

/// `count` members, the first started alone and the others joined through it.
fn cluster(count: usize, env: &[(&'static str, &'static str)]) -> Vec<Member> {
    let mut members: Vec<Member> = (0..count).map(|_| Member::new(SECRET)).collect();
    for member in &mut members {
        member.env.extend_from_slice(env);
    }
    cluster_tests::join_through_first(&mut members);
    members
}

fn pin(via: &Member, cid: &str, replication: &str) {
    let output = via.ctl(&["pin", "add", "--replication", replication, cid]);
    assert!(
        output.status.success(),
        "pin add {cid}: {}{}",
        stdout(&output),
        stderr(&output)
    );
}

/// Four members, replication 2, one holding allocations killed with SIGKILL: after the grace
/// its pins are allocated to, and pinned on, two live members each, and `health alerts` shows
/// the alert of its expired ping.
#[test]
fn a_killed_member_has_its_pins_moved_and_an_alert_shows_it() {
    let mut members = cluster(
        4,
        &[
            ("CLUSTER_REPINNINGGRACEPERIOD", "3s"),
            ("CLUSTER_DISK_METRICTTL", "4s"),
            ("CLUSTER_PUBSUBMON_CHECKINTERVAL", "1s"),
        ],
    );
    let cids: Vec<String> = (0..12).map(cid).collect();
    for (i, cid) in cids.iter().enumerate() {
        pin(&members[i % 4], cid, "2");
    }
    wait_until(Duration::from_secs(60), "every pin on two daemons", || {
        members.iter().map(|m| m.daemon.fake.pins().len()).sum::<usize>() == 2 * cids.len()
    });
    // The member with most pins that is not the leader goes.
    let lost = (0..4)
        .filter(|i| !members[*i].is_leader())
        .max_by_key(|i| members[*i].daemon.fake.pins().len())
        .expect("followers");
    let lost_peer = members[lost].dir.peer_id();
    let held = members[lost].daemon.fake.pins().len();
    assert!(held > 0, "the killed member holds pins");
    members[lost].process.as_mut().unwrap().kill();
    let via = (lost + 1) % 4;
    let live: Vec<usize> = (0..4).filter(|i| *i != lost).collect();
    wait_until(
        Duration::from_secs(90),
        "every pin allocated and pinned on two live members",
        || {
            let pins = json_values(&stdout(&members[via].ctl(&["--enc", "json", "pin", "ls"])));
            let moved = pins.len() == cids.len()
                && pins.iter().all(|pin| {
                    let allocations = pin["allocations"].as_array().cloned().unwrap_or_default();
                    allocations.len() == 2 && allocations.iter().all(|p| p.as_str() != Some(lost_peer.as_str()))
                });
            moved && live.iter().map(|i| members[*i].daemon.fake.pins().len()).sum::<usize>() == 2 * cids.len()
        },
    );
    let output = members[via].ctl(&["health", "alerts"]);
    assert!(output.status.success(), "health alerts: {}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains(&lost_peer) && text.contains("ping"),
        "the alert names the killed member's ping: {text}"
    );
    let log = members[via].log() + &members.iter().map(|m| m.log()).collect::<String>();
    assert!(
        log.contains("their pins move elsewhere"),
        "the leader says why pins moved"
    );
}

/// A member that joined with `--bootstrap`, whose `raft/` and `state/` folders were deleted,
/// started again as usual: it refuses to start a cluster of its own (before the fix it elected
/// itself and took writes alone), saying how to rejoin; with `--bootstrap` it rejoins and ends
/// with the cluster's pinset.
#[test]
fn a_wiped_member_does_not_fork_and_rejoins_with_bootstrap() {
    let mut members = cluster(3, &[]);
    let cids: Vec<String> = (100..110).map(cid).collect();
    for cid in &cids {
        pin(&members[0], cid, "-1");
    }
    wait_until(Duration::from_secs(60), "the pins on every daemon", || {
        members.iter().all(|m| m.daemon.fake.pins().len() == cids.len())
    });
    // The member writes down who its cluster is while it runs.
    let peerstore = members[2].dir.path().join("peerstore");
    wait_until(Duration::from_secs(10), "the peerstore file", || {
        std::fs::read_to_string(&peerstore).is_ok_and(|text| text.lines().count() == 2)
    });
    let mut process = members[2].process.take().unwrap();
    assert!(process.terminate(Duration::from_secs(20)), "a clean stop");
    for folder in ["raft", "state"] {
        std::fs::remove_dir_all(members[2].dir.path().join(folder)).expect("wipe");
    }

    let mut alone = members[2].spawn(None);
    wait_until(
        Duration::from_secs(60),
        "the wiped member to refuse to start alone",
        || alone.exit_code().is_some(),
    );
    let log = alone.log();
    assert_ne!(alone.exit_code(), Some(Some(0)), "{log}");
    assert!(
        log.contains("--bootstrap") && log.contains("peerstore"),
        "says how to rejoin: {log}"
    );
    assert!(!log.contains("IPFS Cluster member is READY"), "{log}");

    let (first, rest) = members.split_at_mut(1);
    rest[1].start(Some(&first[0]));
    wait_until(
        Duration::from_secs(60),
        "the rejoined member to have the pinset",
        || members[2].pinset().len() == cids.len(),
    );
    let extra = cid(200);
    pin(&members[2], &extra, "-1");
    wait_until(Duration::from_secs(30), "a write through it reaches the others", || {
        members[0].pinset().contains(&extra)
    });
    wait_until(Duration::from_secs(30), "the rejoined member's daemon pins it", || {
        members[2].daemon.fake.pins().len() == cids.len() + 1
    });
}
