//! Three real `ipfs-cluster-service` processes on 127.0.0.1, each with its own config folder,
//! ports and fake IPFS daemon: they join with `--bootstrap`, replicate, survive the leader's
//! SIGKILL, and refuse a member with another secret and bad membership or replication input.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use cluster_tests::{free_port, json_values, stderr, stdout, wait_until, ClusterMember as Member, MemberDir};
use cluster_types::Cid;

const SECRET: &str = "2588b80d5cb05374fa142aed6cbb047d1f4ef8ef15e37eba68c65b9d30df67ed";

fn cid(i: u32) -> String {
    Cid::raw_sha256(format!("multi-process test {i}").as_bytes()).to_string()
}

/// (pinned, remote) counts in `ctl status CID` through `via`.
fn status_counts(via: &Member, cid: &str) -> (usize, usize) {
    let json = via.json(&["status", cid]);
    let peer_map = json["peer_map"].as_object().expect("peer_map");
    let count = |status: &str| peer_map.values().filter(|v| v["status"] == status).count();
    (count("pinned"), count("remote"))
}

#[test]
fn three_processes_join_replicate_and_survive_the_leader_being_killed() {
    let mut members = cluster_tests::start_cluster(3, SECRET);

    // Every member lists the three, with no errors.
    for (i, member) in members.iter().enumerate() {
        let output = member.ctl(&["--enc", "json", "peers", "ls"]);
        assert!(output.status.success(), "peers ls on {i}: {}", stderr(&output));
        let ids = json_values(&stdout(&output));
        assert_eq!(ids.len(), 3, "member {i} lists {ids:?}");
        assert!(ids.iter().all(|id| id["error"] == ""), "member {i}: {ids:?}");
    }

    // Pin through member 3 with replication 2: pinned on two, remote on one.
    let first_cid = cid(1);
    let output = members[2].ctl(&["pin", "add", "--replication", "2", &first_cid]);
    assert!(output.status.success(), "pin add: {}", stderr(&output));
    wait_until(Duration::from_secs(30), "the pin on two members", || {
        status_counts(&members[2], &first_cid) == (2, 1)
    });
    let holders = members.iter().filter(|m| m.daemon.fake.pins().len() == 1).count();
    assert_eq!(holders, 2, "exactly two daemons hold the pin");

    // The members talked: /health/bandwidth counts the RPC traffic.
    let bandwidth = members[2].json(&["health", "bandwidth"]);
    let rpc = &bandwidth["/ipfs-cluster-rs/rpc/1.0.0"];
    assert!(
        rpc["total_in"].as_i64().unwrap_or(0) > 0 && rpc["total_out"].as_i64().unwrap_or(0) > 0,
        "{bandwidth}"
    );
    let text = stdout(&members[2].ctl(&["health", "bandwidth"]));
    assert!(text.contains("/ipfs-cluster-rs/rpc/1.0.0: In: "), "{text}");

    // SIGKILL the leader; a survivor accepts a pin within 5 s.
    let leaders: Vec<usize> = (0..3).filter(|i| members[*i].is_leader()).collect();
    assert_eq!(leaders.len(), 1, "one leader in the logs: {leaders:?}");
    let leader = leaders[0];
    members[leader].process.as_mut().unwrap().kill();
    let killed_at = Instant::now();
    let survivor = (0..3).find(|i| *i != leader).unwrap();
    let second_cid = cid(2);
    let output = members[survivor].ctl(&["pin", "add", "--replication", "2", &second_cid]);
    let took = killed_at.elapsed();
    assert!(
        output.status.success(),
        "pin after the leader was killed: {}\nsurvivor log:\n{}",
        stderr(&output),
        members[survivor].log()
    );
    assert!(took <= Duration::from_secs(5), "the pin after failover took {took:?}");
    println!("leader killed -> pin accepted by a survivor in {took:?}");

    // Restart the killed member: it catches up with the pin made while it was down.
    members[leader].start(None);
    wait_until(Duration::from_secs(30), "the restarted member to catch up", || {
        members[leader].pinset().contains(&second_cid)
    });
    wait_until(Duration::from_secs(30), "the second pin on two members", || {
        status_counts(&members[leader], &second_cid) == (2, 1)
    });

    bad_input(&members);
    stranger_with_another_secret(&members);
}

/// Joining nowhere, removing a stranger, and invalid replication factors: nothing changed, and
/// clear errors with non-zero exit codes where Go gives them.
fn bad_input(members: &[Member]) {
    let pinset_before = members[0].pinset();

    // A --bootstrap address where nobody listens: the daemon tries for a while (members
    // started together wait for each other), then exits with an error.
    let nowhere = format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", free_port(), members[0].dir.peer_id());
    assert_join_refused(Member::new(SECRET), &nowhere);

    // Removing a peer that is not a member succeeds and changes nothing, as in Go (scripts may
    // repeat a removal); a malformed peer id is an error.
    let stranger_id = MemberDir::init().peer_id();
    let peers_before = stdout(&members[0].ctl(&["--enc", "json", "peers", "ls"]))
        .matches("\"cluster_peers\"")
        .count();
    let output = members[0].ctl(&["peers", "rm", &stranger_id]);
    assert!(output.status.success(), "{}", stderr(&output));
    let peers_after = stdout(&members[0].ctl(&["--enc", "json", "peers", "ls"]))
        .matches("\"cluster_peers\"")
        .count();
    assert_eq!(peers_before, peers_after);
    let output = members[0].ctl(&["peers", "rm", "not-a-peer-id"]);
    assert!(!output.status.success());

    // Replication factors: min > max, negative other than -1, larger than the cluster.
    for (args, expected) in [
        (vec!["--rmin", "3", "--rmax", "2"], "replication_factor_min"),
        (vec!["--rmin", "-2", "--rmax", "-2"], "replication"),
        (vec!["--replication", "4"], "not enough peers"),
    ] {
        let mut all = vec!["pin", "add"];
        all.extend(args.iter().copied());
        let target = cid(99);
        all.push(&target);
        let output = members[0].ctl(&all);
        let text = format!("{}{}", stdout(&output), stderr(&output));
        assert!(!output.status.success(), "{args:?} was accepted: {text}");
        assert!(text.to_lowercase().contains(expected), "{args:?}: {text}");
    }
    for member in members {
        let ids = member.ctl(&["--enc", "json", "peers", "ls"]);
        assert_eq!(json_values(&stdout(&ids)).len(), 3);
    }
    assert_eq!(members[0].pinset(), pinset_before, "bad input changed the pinset");
}

/// Starts `member` with `--bootstrap address` and checks that it gives up: exit code 1 and
/// "could not join the cluster" in its log.
fn assert_join_refused(mut member: Member, address: &str) {
    member.runs += 1;
    let mut process = member.dir.start_daemon_with(
        &member.daemon.multiaddr(),
        &["--bootstrap", address],
        &[("CLUSTER_RAFT_WAITFORLEADERTIMEOUT", "10s")],
        "daemon-join.log",
    );
    // Four times wait_for_leader_timeout (10 s here) while nothing listens, then it gives up.
    wait_until(Duration::from_secs(80), "the joining daemon to give up", || {
        process.exit_code().is_some()
    });
    assert_eq!(process.exit_code(), Some(Some(1)), "log:\n{}", process.log());
    assert!(
        process.log().contains("could not join the cluster"),
        "log:\n{}",
        process.log()
    );
}

/// A member with another secret cannot join, and the cluster does not list it.
fn stranger_with_another_secret(members: &[Member]) {
    let other_secret = "ff".repeat(32);
    assert_join_refused(Member::new(&other_secret), &members[0].dir.cluster_address());
    for member in members {
        let ids = member.ctl(&["--enc", "json", "peers", "ls"]);
        assert_eq!(json_values(&stdout(&ids)).len(), 3);
    }
    // The members saw the stranger's connection fail at the private network handshake.
    assert!(
        members.iter().any(|m| m.log().contains("refused a connection")),
        "no member logged the refused connection"
    );
}

/// `init --peers` writes Go's layout: peer ids in `init_peerset`, addresses in `peerstore`.
#[test]
fn init_peers_writes_peer_ids_and_a_peerstore() {
    let dir = tempfile::tempdir().unwrap();
    let other = MemberDir::init();
    let address = other.cluster_address();
    let mut command = std::process::Command::new(cluster_tests::bin_path("ipfs-cluster-service"));
    command
        .arg("--config")
        .arg(dir.path())
        .args(["init", "--peers", &address]);
    let output = cluster_tests::run(command, Duration::from_secs(30));
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("service.json")).unwrap()).unwrap();
    assert_eq!(
        json["consensus"]["raft"]["init_peerset"],
        serde_json::json!([other.peer_id()])
    );
    let peerstore = std::fs::read_to_string(dir.path().join("peerstore")).unwrap();
    assert_eq!(peerstore.trim(), address);

    let mut command = std::process::Command::new(cluster_tests::bin_path("ipfs-cluster-service"));
    command.arg("--config").arg(tempfile::tempdir().unwrap().path()).args([
        "init",
        "--peers",
        "/ip4/127.0.0.1/tcp/9096",
    ]);
    let output = cluster_tests::run(command, Duration::from_secs(30));
    assert!(!output.status.success());
    assert!(stderr(&output).contains("no /p2p/"), "{}", stderr(&output));
}

/// `daemon --leave` removes the member on a clean shutdown; `POST /peers` adds it back.
#[test]
fn a_member_leaves_on_shutdown_and_post_peers_adds_it_back() {
    let mut first = Member::new(SECRET);
    first.start(None);
    let mut second = Member::new(SECRET);
    let address = first.dir.cluster_address();
    second.runs += 1;
    let mut process = second.dir.start_daemon_with(
        &second.daemon.multiaddr(),
        &["--bootstrap", &address, "--leave"],
        &[],
        "daemon-leave.log",
    );
    second.dir.wait_ready(&mut process);
    let member_count = |via: &Member| json_values(&stdout(&via.ctl(&["--enc", "json", "peers", "ls"]))).len();
    assert_eq!(member_count(&first), 2);

    assert!(
        process.terminate(Duration::from_secs(30)),
        "clean exit; log:\n{}",
        process.log()
    );
    assert!(process.log().contains("left the cluster"), "log:\n{}", process.log());
    wait_until(Duration::from_secs(10), "the first member to list only itself", || {
        member_count(&first) == 1
    });

    // The member that left starts again (it keeps its state, outside the cluster) and is added
    // back through the REST API of the first.
    second.start(None);
    let body = serde_json::json!({
        "peer_id": second.dir.peer_id(),
        "addresses": [format!("/ip4/127.0.0.1/tcp/{}", second.dir.cluster_port)],
    });
    let (code, answer) = cluster_tests::curl_with_body(
        "POST",
        &format!("http://127.0.0.1:{}/peers", first.dir.rest_port),
        &body.to_string(),
    );
    assert_eq!(code, "200", "{answer}");
    let id: serde_json::Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(id["id"], second.dir.peer_id(), "{answer}");
    wait_until(Duration::from_secs(10), "both members listed again", || {
        member_count(&first) == 2 && member_count(&second) == 2
    });
    let pin = cid(7);
    let output = second.ctl(&["pin", "add", "--replication", "2", &pin]);
    assert!(
        output.status.success(),
        "pin through the re-added member: {}",
        stderr(&output)
    );

    // A peer id nobody knows, without addresses: a clear error (400: the request cannot work;
    // Go's backend answers 500 to every refusal), nothing added.
    let stranger = MemberDir::init().peer_id();
    let (code, body) = cluster_tests::curl_with_body(
        "POST",
        &format!("http://127.0.0.1:{}/peers", first.dir.rest_port),
        &serde_json::json!({ "peer_id": stranger }).to_string(),
    );
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("--bootstrap"), "{body}");
    assert_eq!(member_count(&first), 2);

    // `ctl peers rm` through the first: the member is gone and the pin moved off it.
    let output = first.ctl(&["peers", "rm", &second.dir.peer_id()]);
    assert!(output.status.success(), "peers rm: {}", stderr(&output));
    assert_eq!(member_count(&first), 1);
    // Usually at once (the member peers rm went through applies its log first), but about one
    // run in six here still read the old allocations for a moment; the cause is not found yet
    // (see the issue 16 note), so the test waits for it rather than flaking.
    let moved = || first.json(&["pin", "ls", &pin])["allocations"] == serde_json::json!([first.dir.peer_id()]);
    if !moved() {
        eprintln!("pin ls right after peers rm still lists the removed member; waiting");
        wait_until(Duration::from_secs(10), "the pin moved off the removed member", moved);
    }
}
