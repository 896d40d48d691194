//! Membership under failure with real processes: a member removed while it was down stops when
//! it comes back, saying so, and `peers rm` without a quorum answers a clear error in time.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use cluster_tests::{json_values, stderr, stdout, wait_until};

const SECRET: &str = "0d1c2b3a495867768594a3b2c1d0e9f8a7b6c5d4e3f2011f2e3d4c5b6a798897";

#[test]
fn a_removed_member_stops_when_it_returns_and_peers_rm_needs_a_quorum() {
    let mut members = cluster_tests::start_cluster(3, SECRET);

    // Member 3 goes down and is removed meanwhile.
    let away = members[2].dir.peer_id();
    members[2].process.as_mut().unwrap().kill();
    let output = members[0].ctl(&["peers", "rm", &away]);
    assert!(
        output.status.success(),
        "peers rm: {}{}",
        stdout(&output),
        stderr(&output)
    );
    let peers = json_values(&stdout(&members[0].ctl(&["--enc", "json", "peers", "ls"])));
    assert_eq!(peers.len(), 2, "{peers:?}");

    // It comes back as it was started before: it learns it was removed, says so, and exits.
    let (first, rest) = members.split_at_mut(2);
    let mut process = rest[0].spawn(Some(&first[0]));
    wait_until(Duration::from_secs(90), "the removed member to stop", || {
        process.exit_code().is_some()
    });
    let log = process.log();
    assert!(log.contains("removed from the cluster"), "{log}");
    let peers = json_values(&stdout(&members[0].ctl(&["--enc", "json", "peers", "ls"])));
    assert_eq!(peers.len(), 2, "the two others still form the cluster: {peers:?}");

    // With one of the two left down, there is no quorum: peers rm answers an error in time.
    members[1].process.as_mut().unwrap().kill();
    let started = Instant::now();
    let output = members[0].ctl(&["peers", "rm", &members[1].dir.peer_id()]);
    let took = started.elapsed();
    assert_eq!(
        output.status.code(),
        Some(2),
        "an API error: {}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(stdout(&output).contains("quorum"), "{}", stdout(&output));
    assert!(took < Duration::from_secs(50), "answered in {took:?}");
}
