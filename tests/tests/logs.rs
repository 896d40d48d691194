//! What a member writes to its log, read by an operator: plain text when stderr is not a
//! terminal, Raft's library quiet unless asked, and an error that repeats (a member down)
//! written once with a count instead of several times a second.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

const SECRET: &str = "6d2e8c1f4b3a59e07c81d2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7";

#[test]
fn a_member_down_is_logged_once_with_a_count_in_plain_text() {
    let mut members = cluster_tests::start_cluster(3, SECRET);
    let dead_peer = members[2].dir.peer_id();
    members[2].process.as_mut().expect("running").kill();
    // Twenty seconds of the leader trying to reach the dead member (before: about 8 lines a
    // second about it).
    std::thread::sleep(Duration::from_secs(20));
    let log = members[0].log();

    assert!(!log.contains('\u{1b}'), "no ANSI escapes in a log file:\n{log}");
    let raft_info: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(" INFO ") && line.contains("openraft"))
        .collect();
    assert!(
        raft_info.is_empty(),
        "openraft logs at WARN unless RUST_LOG asks: {raft_info:#?}"
    );
    let about_dead: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(&dead_peer) || line.contains("Unreachable") || line.contains("unreachable"))
        .collect();
    assert!(
        about_dead.len() <= 12,
        "{} lines about the dead member in 20 s:\n{}",
        about_dead.len(),
        about_dead.join("\n")
    );
}
