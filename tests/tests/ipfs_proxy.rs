//! The IPFS proxy of a running member (reference §4), driven over HTTP with curl as an `ipfs`
//! client would: pin calls land in the cluster's pinset and on the daemon, `pin/ls` answers from
//! the cluster, puts with `pin=true` are pinned cluster-wide, and everything else reaches the
//! daemon unchanged.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

use std::process::Command;
use std::time::Duration;

use cluster_tests::{curl, run, stdout, wait_until, FakeDaemon, MemberDir, TlsFront};

fn cid(i: u32) -> String {
    cluster_types::Cid::raw_sha256(format!("proxy {i}").as_bytes()).to_string()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn in_pinset(member: &MemberDir, cid: &str) -> bool {
    member.ctl(&["pin", "ls", cid]).status.success()
}

#[test]
fn the_proxy_pins_through_the_cluster_and_forwards_the_rest() {
    let daemon = FakeDaemon::start(0);
    let member = MemberDir::init();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);
    let api = format!("http://127.0.0.1:{}/api/v0", member.proxy_port);

    // Not hijacked: answered by the daemon itself.
    let (code, body) = curl("POST", &format!("{api}/version"));
    assert_eq!(code, "200", "{body}");
    assert_eq!(json(&body)["Version"], "0.29.0-fake");
    let (code, body) = curl("POST", &format!("{api}/id"));
    assert_eq!(
        (code.as_str(), json(&body)["ID"].as_str()),
        ("200", Some("12D3KooWFakeDaemonForClusterTests"))
    );

    // pin/add: into the cluster's pinset, then onto the daemon.
    let (code, body) = curl("POST", &format!("{api}/pin/add?arg={}", cid(1)));
    assert_eq!(code, "200", "{body}");
    assert_eq!(json(&body)["Pins"], serde_json::json!([cid(1)]));
    assert!(in_pinset(&member, &cid(1)));
    wait_until(Duration::from_secs(20), "the daemon pins it", || {
        daemon.fake.has_pin(&cid(1).parse().unwrap())
    });
    // The deprecated path form works too.
    let (code, body) = curl("POST", &format!("{api}/pin/add/{}", cid(2)));
    assert_eq!(code, "200", "{body}");
    assert!(in_pinset(&member, &cid(2)));

    // pin/ls answers from the cluster.
    let (code, body) = curl("POST", &format!("{api}/pin/ls?arg={}", cid(1)));
    assert_eq!(code, "200", "{body}");
    assert_eq!(json(&body)["Keys"][cid(1)]["Type"], "recursive");
    let (code, body) = curl("POST", &format!("{api}/pin/ls?stream=true&type=recursive"));
    assert_eq!(code, "200", "{body}");
    let lines: Vec<serde_json::Value> = body.lines().map(json).collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert!(lines.iter().all(|l| l["Type"] == "recursive" && l["Cid"].is_string()));
    let (code, body) = curl("POST", &format!("{api}/pin/ls"));
    assert_eq!(code, "200", "{body}");
    let keys = json(&body)["Keys"].as_object().cloned().unwrap_or_default();
    assert_eq!(keys.len(), 2, "{body}");
    assert!(keys.values().all(|v| v["Type"] == "recursive"), "{body}");
    let (code, body) = curl("POST", &format!("{api}/pin/ls?arg={}&arg={}", cid(1), cid(2)));
    assert_eq!(code, "200", "{body}");
    assert_eq!(json(&body)["Keys"].as_object().map(|k| k.len()), Some(2), "{body}");
    let (code, body) = curl("POST", &format!("{api}/pin/ls?arg={}", cid(9)));
    assert_eq!(code, "500");
    assert_eq!(
        json(&body)["Message"],
        format!("Error: path '{}' is not pinned", cid(9))
    );
    assert_eq!(json(&body)["Type"], "error");

    // A browser's hijacked call gets the CORS headers the daemon would give that origin, and
    // the headers extracted from the daemon; the Server is ours.
    let mut browser = Command::new("curl");
    browser
        .args([
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            "-H",
            "Origin: https://app.example",
        ])
        .arg(format!("{api}/pin/ls?arg={}", cid(1)));
    let head = stdout(&run(browser, Duration::from_secs(30))).to_ascii_lowercase();
    assert!(
        head.contains("access-control-allow-origin: https://app.example"),
        "{head}"
    );
    assert!(
        head.contains("access-control-expose-headers: x-stream-output"),
        "{head}"
    );
    assert!(head.contains("server: ipfs-cluster/ipfsproxy/1.1.6"), "{head}");

    // pin/update: the new CID pinned with the old one's allocations, the old one unpinned.
    let (code, body) = curl("POST", &format!("{api}/pin/update?arg={}&arg={}", cid(2), cid(3)));
    assert_eq!(code, "200", "{body}");
    assert_eq!(json(&body)["Pins"], serde_json::json!([cid(2), cid(3)]));
    assert!(in_pinset(&member, &cid(3)));
    assert!(!in_pinset(&member, &cid(2)));
    // `from` may be a path: the daemon resolves it (here an IPNS name naming the pin of cid 3).
    daemon
        .fake
        .set_resolve("/ipns/current.example", cid(3).parse().unwrap());
    let (code, body) = curl(
        "POST",
        &format!("{api}/pin/update?arg=/ipns/current.example&arg={}", cid(4)),
    );
    assert_eq!(code, "200", "{body}");
    assert_eq!(json(&body)["Pins"], serde_json::json!([cid(3), cid(4)]));
    assert!(in_pinset(&member, &cid(4)));
    assert!(!in_pinset(&member, &cid(3)));

    // block/put with pin=true: stored by the daemon, pinned by the cluster.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("block.bin");
    std::fs::write(&file, b"a block put through the proxy").unwrap();
    let mut put = Command::new("curl");
    put.args(["-s", "-X", "POST", "-F"])
        .arg(format!("data=@{}", file.display()))
        .arg(format!("{api}/block/put?pin=true"));
    let answer = json(&stdout(&run(put, Duration::from_secs(30))));
    let key = answer["Key"].as_str().expect("block/put answers a Key").to_string();
    assert!(in_pinset(&member, &key), "{key} pinned through the cluster");

    // add: a cluster add answered in Kubo's shape, the root pinned in the cluster.
    let hello = dir.path().join("hello.txt");
    std::fs::write(&hello, b"hello ipfs cluster test\n").unwrap();
    let mut add = Command::new("curl");
    add.args(["-s", "-X", "POST", "-F"])
        .arg(format!("file=@{}", hello.display()))
        .arg(format!("{api}/add?pin=true"));
    let answer = json(stdout(&run(add, Duration::from_secs(30))).trim());
    assert_eq!(
        answer,
        serde_json::json!({"Name": "hello.txt", "Hash": "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9", "Size": "32"})
    );
    assert!(in_pinset(&member, "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9"));
    let mut add = Command::new("curl");
    add.args(["-s", "-X", "POST", "-F"])
        .arg(format!("file=@{}", hello.display()))
        .arg(format!("{api}/add?only-hash=true"));
    assert!(stdout(&run(add, Duration::from_secs(30))).contains("only-hash"));

    // repo/stat sums the members' daemons (one here).
    let (code, body) = curl("POST", &format!("{api}/repo/stat"));
    assert_eq!(code, "200", "{body}");
    assert!(json(&body)["StorageMax"].as_u64().unwrap() > 0, "{body}");

    // repo/gc runs through the cluster and streams Kubo's lines.
    let (code, body) = curl("POST", &format!("{api}/repo/gc"));
    assert_eq!(code, "200", "{body}");
    assert!(body.lines().all(|l| json(l)["Key"]["/"].is_string()), "{body}");

    // pin/rm removes from the cluster and then the daemon.
    let (code, body) = curl("POST", &format!("{api}/pin/rm?arg={}", cid(1)));
    assert_eq!(code, "200", "{body}");
    assert_eq!(json(&body)["Pins"], serde_json::json!([cid(1)]));
    assert!(!in_pinset(&member, &cid(1)));
    wait_until(Duration::from_secs(20), "the daemon unpins it", || {
        !daemon.fake.has_pin(&cid(1).parse().unwrap())
    });
    // Errors are 500s with Kubo's error body, as Go's proxy answers them.
    let (code, body) = curl("POST", &format!("{api}/pin/add"));
    assert_eq!(code, "500", "{body}");
    assert_eq!(json(&body)["Type"], "error");
    let (code, body) = curl("POST", &format!("{api}/pin/update?arg={}", cid(1)));
    assert_eq!(code, "400", "{body}");
    assert_eq!(json(&body)["Message"], "argument \"to-path\" is required");
}

#[test]
fn node_https_reaches_the_daemon_over_tls_and_verifies_its_certificate() {
    let daemon = FakeDaemon::start(0);
    let front = TlsFront::start(&daemon.address());
    let member = MemberDir::init();
    let path = member.path().join("service.json");
    let mut config = json(&std::fs::read_to_string(&path).unwrap());
    config["api"]["ipfsproxy"]["node_https"] = true.into();
    std::fs::write(&path, config.to_string()).unwrap();
    let cert_file = front.cert_file.to_str().unwrap().to_string();
    let proxy_node = front.multiaddr();
    let env = [
        ("CLUSTER_IPFSPROXY_NODEMULTIADDRESS", proxy_node.as_str()),
        ("SSL_CERT_FILE", cert_file.as_str()),
    ];
    let mut service = member.start_daemon(&daemon.multiaddr(), &env, "daemon.log");
    member.wait_ready(&mut service);
    let api = format!("http://127.0.0.1:{}/api/v0", member.proxy_port);

    // Forwarded over HTTPS to the daemon, and hijacked calls read its headers the same way.
    let (code, body) = curl("POST", &format!("{api}/version"));
    assert_eq!(code, "200", "{body}");
    assert_eq!(json(&body)["Version"], "0.29.0-fake");
    let (code, body) = curl("POST", &format!("{api}/pin/add?arg={}", cid(7)));
    assert_eq!(code, "200", "{body}");
    assert!(in_pinset(&member, &cid(7)));
    assert!(service.terminate(Duration::from_secs(20)));

    // A certificate nobody vouches for is refused: the trusted roots are now another
    // certificate's, so the front is an impostor.
    let other = TlsFront::start("127.0.0.1:9");
    let other_cert = other.cert_file.to_str().unwrap().to_string();
    let mut service = member.start_daemon(
        &daemon.multiaddr(),
        &[
            ("CLUSTER_IPFSPROXY_NODEMULTIADDRESS", proxy_node.as_str()),
            ("SSL_CERT_FILE", other_cert.as_str()),
        ],
        "daemon-untrusted.log",
    );
    member.wait_ready(&mut service);
    let (code, body) = curl("POST", &format!("{api}/version"));
    assert_ne!(code, "200", "{body}");
    assert!(body.to_lowercase().contains("certificate"), "{code} {body}");
}

/// An add through the proxy that fails is visible to a plain client that never asked for
/// trailers: a 500 with Kubo's error when nothing was streamed yet, and a cut (broken chunked)
/// body when lines had gone out. Before, the answer was a 200 with a Hash and a clean end, and
/// nothing was stored.
#[test]
fn a_failed_add_through_the_proxy_is_an_error_for_plain_clients() {
    let daemon = FakeDaemon::start(0);
    let member = MemberDir::init();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);
    let api = format!("http://127.0.0.1:{}/api/v0", member.proxy_port);
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.txt");
    std::fs::write(&small, b"stored nowhere\n").unwrap();
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![7u8; 3 << 20]).unwrap();
    daemon.fake.update_knobs(|k| k.down = true);

    // Nothing streamed yet: a 500 and Kubo's error body.
    let mut command = Command::new("curl");
    command
        .args(["-s", "-w", "\n%{http_code}", "-X", "POST", "-F"])
        .arg(format!("file=@{}", small.display()))
        .arg(format!("{api}/add"));
    let text = stdout(&run(command, Duration::from_secs(60)));
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    assert_eq!(code, "500", "{body}");
    assert!(!body.contains("\"Hash\""), "{body}");
    assert!(json(body)["Message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");

    // Progress lines went out first; a client that did not ask for trailers (curl -F, with a
    // Content-Length or chunked upload) gets a body cut before its end, which curl reports
    // (exit 18, or 56 when the unread upload makes the close a reset), and never a Hash.
    for extra in [&[][..], &["-H", "Transfer-Encoding: chunked"][..]] {
        let mut command = Command::new("curl");
        command
            .args(["-s", "-S", "-X", "POST"])
            .args(extra)
            .arg("-F")
            .arg(format!("file=@{}", big.display()))
            .arg(format!("{api}/add?progress=true"));
        let output = run(command, Duration::from_secs(60));
        let text = stdout(&output);
        assert!(
            text.contains("\"Bytes\""),
            "{extra:?}: progress lines came first: {text}"
        );
        assert!(!text.contains("\"Hash\""), "{extra:?}: {text}");
        assert!(
            matches!(output.status.code(), Some(18 | 56)),
            "{extra:?}: curl sees a cut body, not a clean end: {:?} {}",
            output.status.code(),
            cluster_tests::stderr(&output)
        );
    }
    assert!(daemon.fake.pins().is_empty());

    // An add the cluster cannot place (5 copies on one member) is a 500 before anything streams.
    daemon.fake.update_knobs(|k| k.down = false);
    let mut command = Command::new("curl");
    command
        .args(["-s", "-w", "\n%{http_code}", "-X", "POST", "-F"])
        .arg(format!("file=@{}", small.display()))
        .arg(format!("{api}/add?replication-min=5&replication-max=5"));
    let text = stdout(&run(command, Duration::from_secs(60)));
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    assert_eq!(code, "500", "{body}");
    assert!(!body.contains("\"Hash\""), "{body}");
}
