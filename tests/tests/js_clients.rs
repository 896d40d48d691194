//! Real third-party JavaScript clients against a running 3-member cluster (installed from npm by
//! `just jsclients-install`, versions pinned in tests/jsclients/package-lock.json):
//! - `@nftstorage/ipfs-cluster` 5.0.1 (nft.storage, web3.storage) drives every method it has
//!   through the REST API, with basic auth;
//! - `kubo-rpc-client` 7.1.0 adds and pins through the IPFS proxy;
//! - js-libp2p 2.10 (TCP, private network, noise, yamux) reaches the REST API's libp2p-http
//!   endpoint: a libp2p stack written apart from ours, as go-libp2p is for Go's ctl.
//!
//! Then the cluster itself is asked whether what the clients did is there.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cluster_tests::{run, stderr, stdout, wait_until, FakeDaemon, MemberDir, Process};

const SECRET: &str = "7d2b0a4f9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a7c9e1b3d";

fn jsclients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("jsclients")
}

fn node(script: &str, args: &[String]) -> (bool, String) {
    let dir = jsclients_dir();
    assert!(
        ["@nftstorage/ipfs-cluster", "kubo-rpc-client", "libp2p"]
            .iter()
            .all(|package| dir.join("node_modules").join(package).exists()),
        "the JS clients are not installed: run `just jsclients-install`"
    );
    let mut command = Command::new("node");
    command.current_dir(&dir).arg(script).args(args);
    let output = run(command, Duration::from_secs(180));
    let text = format!("{}{}", stdout(&output), stderr(&output));
    (output.status.success(), text)
}

/// The CIDs listed on the script's `<label> a b c` line.
fn listed(output: &str, label: &str) -> Vec<String> {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no {label} line in:\n{output}"))
        .split(' ')
        .map(str::to_string)
        .collect()
}

struct Member {
    dir: MemberDir,
    daemon: FakeDaemon,
    process: Process,
}

fn start(mut dir: MemberDir, bootstrap: Option<&Member>, auth: bool) -> Member {
    dir.set_secret(SECRET);
    if auth {
        dir.set_basic_auth("cluster", "s3cret");
    }
    let daemon = FakeDaemon::start(0);
    let address = bootstrap.map(|m| m.dir.cluster_address());
    let mut args = Vec::new();
    if let Some(address) = &address {
        args.extend(["--bootstrap", address.as_str()]);
    }
    let mut process = dir.start_daemon_with(
        &daemon.multiaddr(),
        &args,
        &[("CLUSTER_RAFT_WAITFORLEADERTIMEOUT", "10s")],
        "daemon.log",
    );
    dir.wait_ready(&mut process);
    Member { dir, daemon, process }
}

fn in_pinset(member: &Member, cid: &str) -> bool {
    member.dir.ctl(&["pin", "ls", cid]).status.success()
}

#[test]
fn nftstorage_and_kubo_rpc_clients_work_against_a_three_member_cluster() {
    let first = start(MemberDir::init(), None, true);
    let second = start(MemberDir::init(), Some(&first), false);
    let third = start(MemberDir::init(), Some(&first), false);
    let members = [&first, &second, &third];
    wait_until(Duration::from_secs(30), "three members everywhere", || {
        members.iter().all(|m| {
            let output = m.dir.ctl(&["--enc", "json", "id"]);
            let id: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap_or_default();
            id["cluster_peers"].as_array().map(Vec::len) == Some(3)
        })
    });

    let rest = format!("http://127.0.0.1:{}", first.dir.rest_port);
    let (success, output) = node("cluster-client.mjs", &[rest, "cluster:s3cret".into()]);
    println!("{output}");
    assert!(
        success,
        "@nftstorage/ipfs-cluster failed; daemon log:\n{}",
        first.process.log()
    );
    for cid in listed(&output, "pinned") {
        for member in members {
            assert!(in_pinset(member, &cid), "{cid} missing from a member's pinset");
        }
    }

    // Through a member without auth: the proxy needs none.
    let proxy = format!("http://127.0.0.1:{}", second.dir.proxy_port);
    let (success, output) = node("kubo-client.mjs", &[proxy]);
    println!("{output}");
    assert!(success, "kubo-rpc-client failed; daemon log:\n{}", second.process.log());
    let added = &listed(&output, "pinned")[0];
    let removed = &listed(&output, "unpinned")[0];
    for member in members {
        assert!(
            in_pinset(member, added),
            "{added} added through the proxy is in the cluster"
        );
        assert!(!in_pinset(member, removed), "{removed} removed through the proxy");
    }
    // The content reached a daemon: added blocks are stored where the pin is allocated.
    let cid: cluster_types::Cid = added.parse().unwrap();
    wait_until(Duration::from_secs(30), "the added content pinned on a daemon", || {
        members
            .iter()
            .any(|m| m.daemon.fake.has_pin(&cid) && m.daemon.fake.has_block(&cid))
    });
}

#[test]
fn js_libp2p_reaches_the_rest_api_over_libp2p_http_with_the_cluster_secret() {
    let member = start(MemberDir::init(), None, true);
    let address = member.dir.cluster_address();
    let request = |secret: &str, method: &str, path: &str, credentials: Option<&str>| {
        let mut args = vec![
            address.clone(),
            secret.to_string(),
            method.to_string(),
            path.to_string(),
        ];
        args.extend(credentials.map(str::to_string));
        node("libp2p-http-client.mjs", &args)
    };

    let (success, output) = request(SECRET, "GET", "/version", Some("cluster:s3cret"));
    assert!(success, "{output}");
    assert!(output.starts_with("HTTP/1.1 200 OK\r\n"), "{output}");
    assert!(output.trim_end().ends_with(r#"{"version":"1.1.6"}"#), "{output}");

    // A write with its answer, then seen by the cluster.
    let cid = cluster_types::Cid::raw_sha256(b"pinned over js-libp2p").to_string();
    let (success, output) = request(
        SECRET,
        "POST",
        &format!("/pins/{cid}?name=from-js-libp2p"),
        Some("cluster:s3cret"),
    );
    assert!(success && output.starts_with("HTTP/1.1 200 OK"), "{output}");
    assert!(output.contains(r#""name":"from-js-libp2p""#), "{output}");
    assert!(in_pinset(&member, &cid), "{cid} pinned over libp2p is in the pinset");

    // The API's own authentication applies on this endpoint too.
    let (success, output) = request(SECRET, "GET", "/id", None);
    assert!(success && output.starts_with("HTTP/1.1 401"), "{output}");
    // Another secret does not get through the private network.
    let (success, output) = request(&"0f".repeat(32), "GET", "/version", Some("cluster:s3cret"));
    assert!(!success, "{output}");
}
