//! Members beside each other and beside other processes on one host: a member's folder is its
//! own while it runs, every listener is bound before the member joins, and a busy port stops
//! start-up at once with the address and what to change.
#![allow(clippy::disallowed_methods)]

use std::process::Command;
use std::time::{Duration, Instant};

use cluster_tests::{bin_path, json_values, run, stderr, stdout, wait_until, ClusterMember, FakeDaemon, MemberDir};

/// `init --force` in the folder of a running member refuses: it would replace the identity and
/// configuration under the member's feet.
#[test]
fn init_force_refuses_the_folder_of_a_running_member() {
    let daemon = FakeDaemon::start(0);
    let member = MemberDir::init();
    let mut process = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut process);
    let identity_before = std::fs::read_to_string(member.path().join("identity.json")).unwrap();
    let service_before = std::fs::read_to_string(member.path().join("service.json")).unwrap();

    let mut init = Command::new(bin_path("ipfs-cluster-service"));
    init.arg("--config").arg(member.path()).args(["init", "--force"]);
    let output = run(init, Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(1), "stdout: {}", stdout(&output));
    let message = stderr(&output);
    assert!(
        message.contains("a running member uses") && message.contains("stop it first"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(member.path().join("identity.json")).unwrap(),
        identity_before
    );
    assert_eq!(
        std::fs::read_to_string(member.path().join("service.json")).unwrap(),
        service_before
    );
    assert!(member.ctl(&["id"]).status.success(), "the member still answers");

    // Once stopped, --force rewrites the folder.
    assert!(process.terminate(Duration::from_secs(20)), "{}", process.log());
    let mut init = Command::new(bin_path("ipfs-cluster-service"));
    init.arg("--config").arg(member.path()).args(["init", "--force"]);
    let output = run(init, Duration::from_secs(30));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_ne!(
        std::fs::read_to_string(member.path().join("identity.json")).unwrap(),
        identity_before
    );
}

const SECRET: &str = "5a1f0c3b2e4d6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";

/// Points one listener of `member`'s service.json at `port` (`rest`, `proxy` or `cluster`).
fn set_port(member: &MemberDir, listener: &str, port: u16) {
    let path = member.path().join("service.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let address = format!("/ip4/127.0.0.1/tcp/{port}");
    match listener {
        "rest" => json["api"]["restapi"]["http_listen_multiaddress"] = address.into(),
        "proxy" => json["api"]["ipfsproxy"]["listen_multiaddress"] = address.into(),
        "cluster" => json["cluster"]["listen_multiaddress"] = serde_json::json!([address]),
        other => panic!("no listener {other}"),
    }
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

/// A second member configured with a port the first one holds fails at once, naming the address
/// and what to change, and never joins: the first member keeps committing alone.
#[test]
fn a_busy_port_stops_start_up_before_joining() {
    let mut first = ClusterMember::new(SECRET);
    first.start(None);
    let taken = [
        ("proxy", first.dir.proxy_port),
        ("rest", first.dir.rest_port),
        // libp2p listens with SO_REUSEPORT: without a check, two members shared this port.
        ("cluster", first.dir.cluster_port),
    ];
    for (listener, port) in taken {
        let mut second = ClusterMember::new(SECRET);
        set_port(&second.dir, listener, port);
        let started = Instant::now();
        let mut process = second.spawn(Some(&first));
        wait_until(Duration::from_secs(15), "the second member to exit", || {
            process.exit_code().is_some()
        });
        let log = process.log();
        assert_eq!(process.exit_code(), Some(Some(1)), "{listener}: {log}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{listener}: failed at once, not after joining"
        );
        assert!(
            log.contains(&format!("127.0.0.1:{port}")),
            "{listener}: names the address: {log}"
        );
        assert!(log.contains("in use"), "{listener}: {log}");
        assert!(log.contains("service.json"), "{listener}: says what to change: {log}");
        assert!(!log.contains("joining the cluster"), "{listener}: never joined: {log}");
        let peers = json_values(&stdout(&first.ctl(&["--enc", "json", "peers", "ls"])));
        assert_eq!(peers.len(), 1, "{listener}: still a cluster of one: {peers:?}");
    }
    let output = first.ctl(&[
        "pin",
        "add",
        "--no-status",
        "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9",
    ]);
    assert!(
        output.status.success(),
        "the first member still commits: {}",
        stderr(&output)
    );
}

/// The listen addresses `init` wrote: REST, proxy, pinning service, cluster.
fn written_ports(dir: &std::path::Path) -> [u16; 4] {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("service.json")).unwrap()).unwrap();
    let port = |value: &serde_json::Value| -> u16 {
        let text = value.as_str().or_else(|| value[0].as_str()).unwrap_or("");
        text.rsplit('/').next().and_then(|p| p.parse().ok()).unwrap_or(0)
    };
    [
        port(&json["api"]["restapi"]["http_listen_multiaddress"]),
        port(&json["api"]["ipfsproxy"]["listen_multiaddress"]),
        port(&json["api"]["pinsvcapi"]["http_listen_multiaddress"]),
        port(&json["cluster"]["listen_multiaddress"]),
    ]
}

#[test]
fn init_gives_every_listener_its_own_port() {
    let dir = tempfile::tempdir().unwrap();
    let mut init = Command::new(bin_path("ipfs-cluster-service"));
    init.arg("--config").arg(dir.path()).args(["init", "--randomports"]);
    let output = run(init, Duration::from_secs(30));
    assert!(output.status.success(), "{}", stderr(&output));
    let ports = written_ports(dir.path());
    for (i, port) in ports.iter().enumerate() {
        assert!(![0, 9094, 9095, 9096, 9097].contains(port), "{ports:?}");
        assert!(!ports[i + 1..].contains(port), "all different: {ports:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let mut init = Command::new(bin_path("ipfs-cluster-service"));
    init.arg("--config")
        .arg(dir.path())
        .args(["init", "--port-base", "9494"])
        .env("CLUSTER_IPFSHTTP_NODEMULTIADDRESS", "/ip4/127.0.0.1/tcp/5401");
    let output = run(init, Duration::from_secs(30));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(written_ports(dir.path()), [9494, 9495, 9497, 9496]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("service.json")).unwrap()).unwrap();
    // The environment is written down, and the proxy follows the connector to the same daemon.
    assert_eq!(
        json["ipfs_connector"]["ipfshttp"]["node_multiaddress"],
        "/ip4/127.0.0.1/tcp/5401"
    );
    assert_eq!(json["api"]["ipfsproxy"]["node_multiaddress"], "/ip4/127.0.0.1/tcp/5401");

    let mut id = Command::new(bin_path("ipfs-cluster-service"));
    id.arg("--config").arg(dir.path()).arg("id");
    let output = run(id, Duration::from_secs(30));
    assert!(output.status.success(), "{}", stderr(&output));
    let identity: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("identity.json")).unwrap()).unwrap();
    assert_eq!(stdout(&output).trim(), identity["id"].as_str().unwrap());
}

/// Members started together: one whose bootstrap member does not listen yet keeps trying for a
/// while, then joins, instead of giving up at once.
#[test]
fn a_member_started_before_its_bootstrap_member_waits_for_it() {
    let mut first = ClusterMember::new(SECRET);
    let mut second = ClusterMember::new(SECRET);
    let process = second.spawn(Some(&first));
    second.process = Some(process);
    std::thread::sleep(Duration::from_secs(3));
    first.start(None);
    second.dir.wait_ready(second.process.as_mut().unwrap());
    let peers = json_values(&stdout(&second.ctl(&["--enc", "json", "peers", "ls"])));
    assert_eq!(peers.len(), 2, "{peers:?}\n{}", second.log());
    assert!(
        second.log().contains("no bootstrap member reachable yet"),
        "{}",
        second.log()
    );
}
