//! A real `ipfs-cluster-service` process beside a fake Kubo RPC daemon, driven with the real
//! `ipfs-cluster-ctl`: pin, status, list, unpin, restart, and every bad input of the issue.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

use std::process::Command;
use std::time::Duration;

use cluster_tests::{bin_path, curl, free_port, run, stderr, stdout, wait_until, FakeDaemon, MemberDir};
use cluster_types::Cid;

/// `bytes` in multibase base32 (lower case, no padding), as CIDv1 are written.
fn multibase_base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut text = String::from("b");
    let (mut buffer, mut bits) = (0u32, 0);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            text.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        text.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    text
}

fn cid(i: u32) -> String {
    Cid::raw_sha256(format!("process test {i}").as_bytes()).to_string()
}

fn status_json(member: &MemberDir, cid: &str) -> serde_json::Value {
    let output = member.ctl(&["--enc", "json", "status", cid]);
    assert!(output.status.success(), "status failed: {}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap_or_else(|e| panic!("status json: {e}: {}", stdout(&output)))
}

fn local_status(member: &MemberDir, cid: &str) -> String {
    let json = status_json(member, cid);
    let peer_map = json["peer_map"].as_object().expect("peer_map");
    assert_eq!(peer_map.len(), 1, "one member: {json}");
    peer_map.values().next().unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn pin_status_unpin_and_restart_with_ctl() {
    let daemon = FakeDaemon::start(0);
    let member = MemberDir::init();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);

    // id and version
    let id = member.ctl(&["--enc", "json", "id"]);
    assert!(id.status.success(), "{}", stderr(&id));
    let id: serde_json::Value = serde_json::from_str(&stdout(&id)).unwrap();
    assert_eq!(id["ipfs"]["id"], "12D3KooWFakeDaemonForClusterTests");
    assert_eq!(id["rpc_protocol_version"], "/ipfscluster/1.0/rpc");
    let version = member.ctl(&["version"]);
    assert!(stdout(&version).contains("1.1.6"), "{}", stdout(&version));

    // pin ten CIDs; they reach the daemon
    for i in 0..10 {
        let output = member.ctl(&["pin", "add", "--no-status", "--name", &format!("p{i}"), &cid(i)]);
        assert!(output.status.success(), "pin add: {}", stderr(&output));
    }
    wait_until(Duration::from_secs(20), "10 pins on the daemon", || {
        daemon.fake.pins().len() == 10
    });
    for i in 0..10 {
        wait_until(Duration::from_secs(10), "status pinned", || {
            local_status(&member, &cid(i)) == "pinned"
        });
    }
    let list = member.ctl(&["pin", "ls"]);
    assert!(list.status.success());
    assert_eq!(
        stdout(&list).lines().filter(|l| l.contains(" | ")).count(),
        10,
        "{}",
        stdout(&list)
    );

    // unpin one
    let output = member.ctl(&["pin", "rm", "--no-status", &cid(3)]);
    assert!(output.status.success(), "pin rm: {}", stderr(&output));
    wait_until(Duration::from_secs(10), "unpin on the daemon", || {
        daemon.fake.pins().len() == 9
    });
    assert_eq!(local_status(&member, &cid(3)), "unpinned");

    // restart: the pinset is still there and still pinned
    assert!(
        service.terminate(Duration::from_secs(20)),
        "clean shutdown; log:\n{}",
        service.log()
    );
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon2.log");
    member.wait_ready(&mut service);
    let list = member.ctl(&["--enc", "json", "pin", "ls"]);
    let text = stdout(&list);
    assert_eq!(text.matches("\"cid\"").count(), 9, "{text}");
    assert!(!text.contains(&cid(3)));
    for i in [0, 5, 9] {
        assert_eq!(local_status(&member, &cid(i)), "pinned");
    }

    // SIGKILL, then restart: nothing acknowledged is lost
    let output = member.ctl(&["pin", "add", "--no-status", &cid(100)]);
    assert!(output.status.success());
    service.kill();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon3.log");
    member.wait_ready(&mut service);
    wait_until(Duration::from_secs(10), "pin survives SIGKILL", || {
        local_status(&member, &cid(100)) == "pinned"
    });
    assert!(service.terminate(Duration::from_secs(20)));
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let daemon = FakeDaemon::start(0);
    let member = MemberDir::init();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);
    let base = format!("http://127.0.0.1:{}", member.rest_port);

    // invalid CID: ctl refuses it before sending (exit 1); raw HTTP gets 400 and the Go message
    let output = member.ctl(&["pin", "add", "--no-status", "not-a-cid"]);
    assert_eq!(output.status.code(), Some(1), "{} {}", stdout(&output), stderr(&output));
    assert!(stderr(&output).contains("not-a-cid"), "{}", stderr(&output));
    let (code, body) = curl("POST", &format!("{base}/pins/not-a-cid"));
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("error decoding Cid"), "{body}");

    // unknown status filter: 400
    assert_eq!(curl("GET", &format!("{base}/pins?filter=nonsense")).0, "400");

    // malformed PinOptions: 400 and no pin
    for query in [
        "replication-min=two",
        "expire-at=tomorrow",
        "shard-size=-3",
        "user-allocations=xyz",
    ] {
        assert_eq!(
            curl("POST", &format!("{base}/pins/{}?{query}", cid(1))).0,
            "400",
            "{query}"
        );
    }
    // The client's own errors are 400s (Go answers 500 to some): replication factors that
    // contradict each other, a date that does not exist, an expiry in the past, a path whose
    // CID does not decode, a CID with bytes after it (Go refuses it; it would pin a shorter CID).
    let mut with_trailing_bytes = cid(3).parse::<Cid>().unwrap().to_bytes();
    with_trailing_bytes.push(0);
    let trailing = multibase_base32(&with_trailing_bytes);
    for (method, path) in [
        ("POST", format!("/pins/{}?replication-min=5&replication-max=1", cid(1))),
        ("POST", format!("/pins/{}?expire-at=2031-02-30T00:00:00Z", cid(1))),
        ("POST", format!("/pins/{}?expire-at=2001-01-01T00:00:00Z", cid(1))),
        ("POST", "/pins/ipfs/not-a-cid".to_string()),
        ("POST", "/pins/ipld/bafyNOPE/a/b".to_string()),
        ("DELETE", "/pins/ipfs/not-a-cid".to_string()),
        ("POST", format!("/pins/{trailing}")),
        ("POST", format!("/pins/ipfs/{trailing}")),
    ] {
        let (code, body) = curl(method, &format!("{base}{path}"));
        assert_eq!(code, "400", "{method} {path}: {body}");
    }
    // invalid replication factors: clear errors, nothing pinned
    for args in [vec!["--rmin", "3", "--rmax", "2"], vec!["--replication", "5"]] {
        let mut all = vec!["pin", "add", "--no-status"];
        all.extend(args.iter());
        let c = cid(2);
        all.push(&c);
        let output = member.ctl(&all);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stdout(&output));
    }
    let list = member.ctl(&["--enc", "json", "pin", "ls"]);
    assert!(stdout(&list).trim().is_empty(), "nothing pinned: {}", stdout(&list));
    assert!(daemon.fake.pins().is_empty());

    // unpin of an unknown CID: 404 from the API, exit 2
    let output = member.ctl(&["pin", "rm", "--no-status", &cid(9)]);
    assert_eq!(output.status.code(), Some(2));

    // a second member on the same data folder refuses to start
    let mut second = member.start_daemon(&daemon.multiaddr(), &[], "second.log");
    wait_until(Duration::from_secs(20), "second daemon exits", || {
        second.exit_code().is_some()
    });
    assert_eq!(second.exit_code(), Some(Some(1)));
    assert!(second.log().contains("locked"), "{}", second.log());
    assert!(service.terminate(Duration::from_secs(20)));
}

#[test]
fn corrupt_config_names_the_file_and_key() {
    let member = MemberDir::init();
    let path = member.path().join("service.json");
    let good = std::fs::read_to_string(&path).unwrap();

    let mut json: serde_json::Value = serde_json::from_str(&good).unwrap();
    json["cluster"]["state_sync_interval"] = "often".into();
    std::fs::write(&path, json.to_string()).unwrap();
    let mut daemon = member.start_daemon("/ip4/127.0.0.1/tcp/1", &[], "bad1.log");
    wait_until(Duration::from_secs(20), "daemon exits", || daemon.exit_code().is_some());
    assert_eq!(daemon.exit_code(), Some(Some(1)));
    let log = daemon.log();
    assert!(log.contains("service.json: cluster.state_sync_interval"), "{log}");

    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let mut daemon = member.start_daemon("/ip4/127.0.0.1/tcp/1", &[], "bad2.log");
    wait_until(Duration::from_secs(20), "daemon exits", || daemon.exit_code().is_some());
    assert!(
        daemon.log().contains("service.json: not valid JSON"),
        "{}",
        daemon.log()
    );

    // init refuses to overwrite without --force
    let mut command = Command::new(bin_path("ipfs-cluster-service"));
    command.arg("--config").arg(member.path()).arg("init");
    let output = run(command, Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--force"), "{}", stderr(&output));
}

#[test]
fn unreachable_ipfs_daemon_is_reported_and_pins_recover_when_it_returns() {
    let port = free_port();
    let member = MemberDir::init();
    let ipfs_address = format!("/ip4/127.0.0.1/tcp/{port}");
    let mut service = member.start_daemon(
        &ipfs_address,
        &[
            ("CLUSTER_PINRECOVERINTERVAL", "2s"),
            ("CLUSTER_STATESYNCINTERVAL", "3s"),
        ],
        "daemon.log",
    );
    member.wait_ready(&mut service);
    let id = member.ctl(&["--enc", "json", "id"]);
    let id: serde_json::Value = serde_json::from_str(&stdout(&id)).unwrap();
    assert!(
        !id["ipfs"]["error"].as_str().unwrap_or_default().is_empty(),
        "ipfs.error is set: {id}"
    );

    let output = member.ctl(&["pin", "add", "--no-status", &cid(1)]);
    assert!(
        output.status.success(),
        "the pin is accepted into the pinset: {}",
        stderr(&output)
    );
    wait_until(Duration::from_secs(30), "pin_error", || {
        local_status(&member, &cid(1)) == "pin_error"
    });

    let daemon = FakeDaemon::start(port);
    wait_until(Duration::from_secs(60), "pinned after the daemon returns", || {
        local_status(&member, &cid(1)) == "pinned"
    });
    assert!(daemon.fake.pins().len() == 1);
    assert!(service.terminate(Duration::from_secs(20)));
}

#[test]
fn https_with_basic_auth_for_ctl_and_curl() {
    let daemon = FakeDaemon::start(0);
    let mut member = MemberDir::init();
    member.enable_https();
    member.set_basic_auth("admin", "s3cret");
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);
    let host = member.host();

    // Credentials imply --https; the self-signed certificate needs --no-check-certificate.
    let ctl = |args: &[&str]| {
        let mut command = std::process::Command::new(bin_path("ipfs-cluster-ctl"));
        command.args(["--host", &host]).args(args);
        run(command, Duration::from_secs(30))
    };
    let ok = ctl(&["--basic-auth", "admin:s3cret", "--no-check-certificate", "version"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(stdout(&ok), "1.1.6\n");
    let unverified = ctl(&["--basic-auth", "admin:s3cret", "version"]);
    assert_eq!(
        unverified.status.code(),
        Some(1),
        "a self-signed certificate is refused by default"
    );
    let said = format!("{}{}", stdout(&unverified), stderr(&unverified));
    assert!(said.to_lowercase().contains("certificate"), "{said}");
    let wrong = ctl(&["--basic-auth", "admin:nope", "--no-check-certificate", "version"]);
    assert_eq!(wrong.status.code(), Some(2), "{}", stdout(&wrong));
    assert!(stdout(&wrong).contains("unauthorized"), "{}", stdout(&wrong));
    let plain = ctl(&["--basic-auth", "admin:s3cret", "--force-http", "version"]);
    assert_eq!(plain.status.code(), Some(1), "plain HTTP to an HTTPS API fails");

    // curl: /health is open, the rest needs the credentials.
    let url = format!("https://127.0.0.1:{}", member.rest_port);
    let mut health = std::process::Command::new("curl");
    health.args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", &format!("{url}/health")]);
    assert_eq!(stdout(&run(health, Duration::from_secs(30))), "204");
    let mut token = std::process::Command::new("curl");
    token.args(["-sk", "-u", "admin:s3cret", "-X", "POST", &format!("{url}/token")]);
    let token: serde_json::Value = serde_json::from_str(&stdout(&run(token, Duration::from_secs(30)))).unwrap();
    let bearer = format!("Authorization: Bearer {}", token["token"].as_str().unwrap());
    let mut id = std::process::Command::new("curl");
    id.args(["-sk", "-H", &bearer, &format!("{url}/id")]);
    let id: serde_json::Value = serde_json::from_str(&stdout(&run(id, Duration::from_secs(30)))).unwrap();
    assert_eq!(id["rpc_protocol_version"], "/ipfscluster/1.0/rpc");
}

#[test]
fn ctl_reaches_the_api_over_a_unix_socket_and_over_libp2p_with_the_secret() {
    let daemon = FakeDaemon::start(0);
    let mut member = MemberDir::init();
    member.set_basic_auth("admin", "s3cret");
    let socket = member.path().join("api.sock");
    let path = member.path().join("service.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["api"]["restapi"]["http_listen_multiaddress"] = serde_json::json!([
        format!("/ip4/127.0.0.1/tcp/{}", member.rest_port),
        format!("/unix{}", socket.display())
    ]);
    let secret = json["cluster"]["secret"]
        .as_str()
        .expect("init writes a secret")
        .to_string();
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);
    assert!(
        service
            .log()
            .contains(&format!("(libp2p-http) listening on {}", member.cluster_address())),
        "the libp2p endpoint is announced; log:\n{}",
        service.log()
    );

    let ctl = |host: &str, extra: &[&str], args: &[&str]| {
        let mut command = Command::new(bin_path("ipfs-cluster-ctl"));
        command.args(["--host", host]).args(extra).args(args);
        run(command, Duration::from_secs(60))
    };
    let auth = ["--basic-auth", "admin:s3cret"];
    let unix_host = format!("/unix{}", socket.display());
    let p2p_host = member.cluster_address();
    let with_secret = ["--basic-auth", "admin:s3cret", "--secret", secret.as_str()];

    // Over the socket: credentials would imply HTTPS on TCP, but not on a socket (as Go).
    let pinned = ctl(&unix_host, &auth, &["pin", "add", "--no-status", &cid(1)]);
    assert!(pinned.status.success(), "pin over unix: {}", stderr(&pinned));
    // Over libp2p: requests with streamed answers and with bodies both work.
    wait_until(Duration::from_secs(20), "pinned, seen over libp2p", || {
        let output = ctl(&p2p_host, &with_secret, &["--enc", "json", "status", &cid(1)]);
        assert!(output.status.success(), "status over libp2p: {}", stderr(&output));
        stdout(&output).contains("\"pinned\"")
    });
    let listed = ctl(&p2p_host, &with_secret, &["pin", "ls"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(stdout(&listed).contains(&cid(1)), "{}", stdout(&listed));
    let second = ctl(&p2p_host, &with_secret, &["pin", "add", "--no-status", &cid(2)]);
    assert!(second.status.success(), "pin over libp2p: {}", stderr(&second));
    let over_unix = ctl(&unix_host, &auth, &["pin", "ls"]);
    assert!(stdout(&over_unix).contains(&cid(2)), "{}", stdout(&over_unix));

    // The API's own authentication still applies on both.
    let anonymous = ctl(&p2p_host, &["--secret", &secret], &["pin", "ls"]);
    assert_eq!(anonymous.status.code(), Some(2), "{}", stdout(&anonymous));
    assert!(stdout(&anonymous).contains("unauthorized"), "{}", stdout(&anonymous));
    // Another secret never gets through the private network.
    let other_secret = "ab".repeat(32);
    let wrong = ctl(&p2p_host, &["--secret", &other_secret], &["id"]);
    assert_eq!(wrong.status.code(), Some(1), "{}", stdout(&wrong));
    let said = format!("{}{}", stdout(&wrong), stderr(&wrong));
    assert!(said.contains("--secret"), "{said}");

    assert!(service.terminate(Duration::from_secs(20)), "daemon stops on SIGTERM");
    assert!(!socket.exists(), "the socket file is removed on shutdown");
}

#[test]
fn a_libp2p_host_of_the_apis_own_answers_without_the_cluster_secret() {
    let daemon = FakeDaemon::start(0);
    let member = MemberDir::init();
    // Another folder's identity serves as the API host's: Go's `id` and `private_key`.
    let other = MemberDir::init();
    let identity: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(other.path().join("identity.json")).unwrap()).unwrap();
    let api_port = free_port();
    let path = member.path().join("service.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["api"]["restapi"]["libp2p_listen_multiaddress"] =
        serde_json::json!([format!("/ip4/127.0.0.1/tcp/{api_port}")]);
    json["api"]["restapi"]["id"] = identity["id"].clone();
    json["api"]["restapi"]["private_key"] = identity["private_key"].clone();
    let secret = json["cluster"]["secret"].as_str().unwrap().to_string();
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);

    let api_host = format!("/ip4/127.0.0.1/tcp/{api_port}/p2p/{}", identity["id"].as_str().unwrap());
    let mut command = Command::new(bin_path("ipfs-cluster-ctl"));
    command.args(["--host", &api_host, "--enc", "json", "id"]);
    let id = run(command, Duration::from_secs(60));
    assert!(id.status.success(), "{}", stderr(&id));
    let id: serde_json::Value = serde_json::from_str(&stdout(&id)).unwrap();
    assert_eq!(id["id"], member.peer_id(), "the API answers for the member");
    // As in Go, the cluster host no longer serves the API then.
    let mut command = Command::new(bin_path("ipfs-cluster-ctl"));
    command.args(["--host", &member.cluster_address(), "--secret", &secret, "id"]);
    let refused = run(command, Duration::from_secs(60));
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    // Connected through the private network, but the protocol is not served there.
    let said = format!("{}{}", stdout(&refused), stderr(&refused));
    assert!(said.contains("does not support /libp2p-http"), "{said}");
}

#[test]
fn the_ipfs_daemon_may_listen_on_a_unix_socket() {
    let daemon = FakeDaemon::start(0);
    let socket = cluster_tests::UnixFront::start(&daemon.address());
    let member = MemberDir::init();
    // Both the connector and the proxy reach the daemon through the socket.
    let mut service = member.start_daemon(&socket.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);

    let id = member.ctl(&["--enc", "json", "id"]);
    let id: serde_json::Value = serde_json::from_str(&stdout(&id)).unwrap();
    assert_eq!(id["ipfs"]["id"], "12D3KooWFakeDaemonForClusterTests", "{id}");
    let output = member.ctl(&["pin", "add", "--no-status", &cid(42)]);
    assert!(output.status.success(), "{}", stderr(&output));
    wait_until(Duration::from_secs(20), "the daemon pins it over the socket", || {
        daemon.fake.has_pin(&cid(42).parse().unwrap())
    });
    let (code, body) = curl(
        "POST",
        &format!("http://127.0.0.1:{}/api/v0/version", member.proxy_port),
    );
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("0.29.0-fake"), "{body}");
}

#[test]
fn without_a_secret_or_credentials_the_api_is_not_offered_over_libp2p() {
    let daemon = FakeDaemon::start(0);
    let member = MemberDir::init();
    member.set_secret("");
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);
    assert!(
        service.log().contains("not served on the cluster host"),
        "the operator is told why; log:\n{}",
        service.log()
    );
    // The cluster host answers (an open network), but not with the API.
    let mut command = Command::new(bin_path("ipfs-cluster-ctl"));
    command.args(["--host", &member.cluster_address(), "id"]);
    let refused = run(command, Duration::from_secs(60));
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    let said = format!("{}{}", stdout(&refused), stderr(&refused));
    assert!(said.contains("does not support /libp2p-http"), "{said}");
    // The loopback HTTP API is untouched.
    assert!(member.ctl(&["id"]).status.success());
}
