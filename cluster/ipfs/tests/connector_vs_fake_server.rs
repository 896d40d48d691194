//! The Kubo connector against the fake Kubo HTTP server: every `IpfsConnector` method over real
//! HTTP on loopback, with the fake's knobs (errors, down, hang, full repo) seen as typed errors,
//! and the server's own Kubo-compatible endpoints (405/404, not-pinned errors, add, block/put).
#![cfg(not(madsim))]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cluster_ipfs::{
    FakeIpfs, FakeKuboServer, IpfsConnector, IpfsError, IpfsPinType, KuboConnector, KuboConnectorConfig,
};
use cluster_types::Cid;
use futures::StreamExt;

const PEER_ID: &str = "12D3KooWFakeKuboServerTests";

struct Fixture {
    fake: Arc<FakeIpfs>,
    server: FakeKuboServer,
    connector: KuboConnector,
}

async fn fixture() -> Fixture {
    fixture_with(Duration::from_secs(2)).await
}

async fn fixture_with(pin_timeout: Duration) -> Fixture {
    let fake = Arc::new(FakeIpfs::new(PEER_ID.into()));
    let server = FakeKuboServer::start(fake.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let node_address = KuboConnectorConfig::address_from_multiaddr(&server.multiaddr()).unwrap();
    let connector = KuboConnector::new(KuboConnectorConfig {
        node_address,
        request_timeout: Duration::from_secs(5),
        pin_timeout,
        unpin_timeout: Duration::from_secs(5),
    });
    Fixture {
        fake,
        server,
        connector,
    }
}

fn cid(i: u32) -> Cid {
    Cid::raw_sha256(format!("connector test {i}").as_bytes())
}

#[tokio::test]
async fn id_version_repo_stat_and_swarm_peers() {
    let f = fixture().await;
    let id = f.connector.id().await.unwrap();
    assert_eq!(id.id, PEER_ID);
    assert_eq!(id.addresses, vec!["/ip4/127.0.0.1/tcp/4001".to_string()]);
    assert!(id.error.is_empty());
    assert_eq!(f.connector.version().await.unwrap(), "0.29.0-fake");

    for i in 0..3 {
        f.connector.pin(&cid(i), -1).await.unwrap();
    }
    let stat = f.connector.repo_stat().await.unwrap();
    assert_eq!(stat.repo_size, 3000);
    assert_eq!(stat.storage_max, 10_000_000_000);

    // Kubo's {"Peers":null} when alone.
    assert!(f.connector.swarm_peers().await.unwrap().is_empty());
    f.fake
        .set_swarm_peers(vec!["12D3KooWPeerA".into(), "12D3KooWPeerB".into()]);
    assert_eq!(
        f.connector.swarm_peers().await.unwrap(),
        vec!["12D3KooWPeerA", "12D3KooWPeerB"]
    );
    assert_eq!(f.fake.calls("id"), 1);
    assert_eq!(f.fake.calls("swarm_peers"), 2);
}

#[tokio::test]
async fn pin_is_idempotent_and_unpin_of_unpinned_succeeds() {
    let f = fixture().await;
    let c = cid(1);
    assert_eq!(f.connector.pin_ls_cid(&c).await.unwrap(), None, "not pinned -> None");

    f.connector.pin(&c, -1).await.unwrap();
    assert_eq!(f.fake.pin_type(&c), Some(IpfsPinType::Recursive));
    assert_eq!(f.connector.pin_ls_cid(&c).await.unwrap(), Some(IpfsPinType::Recursive));

    // Already pinned: a second pin/add is a no-op, with no pin/ls before either.
    f.connector.pin(&c, -1).await.unwrap();
    assert_eq!(f.fake.calls("pin"), 2);
    assert_eq!(f.fake.pin_type(&c), Some(IpfsPinType::Recursive));
    assert_eq!(f.fake.calls("pin_ls_cid"), 2, "only the test's own pin/ls calls");

    f.connector.unpin(&c).await.unwrap();
    assert!(!f.fake.has_pin(&c));
    // The server answers Kubo's "not pinned" 500; the connector treats it as done.
    f.connector.unpin(&c).await.unwrap();
    assert_eq!(f.fake.calls("unpin"), 2);
    assert_eq!(f.connector.pin_ls_cid(&c).await.unwrap(), None);
}

#[tokio::test]
async fn pin_many_sends_its_cids_in_one_request_of_bounded_length() {
    let f = fixture().await;
    let few: Vec<Cid> = (0..5).map(cid).collect();
    f.connector.pin_many(&few, -1).await.unwrap();
    assert_eq!(f.fake.requests("pin/add"), 1);
    assert!(few.iter().all(|c| f.fake.pin_type(c) == Some(IpfsPinType::Recursive)));

    // 300 CIDs of 59 characters: about 19 KB of arguments, sent in three requests of at most
    // 8 KB each (js-ipfs, on Node, refuses request heads over 16 KB).
    let many: Vec<Cid> = (100..400).map(cid).collect();
    f.connector.pin_many(&many, 0).await.unwrap();
    assert_eq!(f.fake.requests("pin/add"), 1 + 3);
    assert!(many.iter().all(|c| f.fake.pin_type(c) == Some(IpfsPinType::Direct)));

    // Kubo stops at the first CID it cannot pin and answers an error for the whole call.
    f.fake.update_knobs(|k| k.repo_full = true);
    let err = f.connector.pin_many(&[cid(500), cid(501)], -1).await.unwrap_err();
    assert!(err.to_string().contains("no space left"), "{err}");
    assert!(!f.fake.has_pin(&cid(500)));
}

#[tokio::test]
async fn direct_and_depth_limited_pins() {
    let f = fixture().await;
    f.connector.pin(&cid(1), 0).await.unwrap();
    f.connector.pin(&cid(2), 3).await.unwrap();
    assert_eq!(f.fake.pin_type(&cid(1)), Some(IpfsPinType::Direct));
    assert_eq!(f.fake.pin_type(&cid(2)), Some(IpfsPinType::Recursive));
    assert_eq!(
        f.connector.pin_ls_cid(&cid(1)).await.unwrap(),
        Some(IpfsPinType::Direct)
    );

    // A direct pin is not a recursive one: pinning recursively upgrades it.
    f.connector.pin(&cid(1), -1).await.unwrap();
    assert_eq!(f.fake.pin_type(&cid(1)), Some(IpfsPinType::Recursive));
    // Direct again over a recursive pin: the daemon decides (the fake re-pins directly; Kubo
    // refuses, the pin being recursive already).
    f.connector.pin(&cid(2), 0).await.unwrap();
    assert_eq!(f.fake.calls("pin"), 4);

    // pin_ls lists recursive pins only.
    let listed: Vec<Cid> = f.connector.pin_ls().await.unwrap().map(|c| c.unwrap()).collect().await;
    assert_eq!(listed, vec![cid(1)]);
}

#[tokio::test]
async fn pin_ls_streams_ten_thousand_pins() {
    let f = fixture().await;
    for i in 0..10_000 {
        f.fake.pin(&cid(i), -1).await.unwrap();
    }
    f.fake.pin(&cid(20_000), 0).await.unwrap();
    let mut stream = f.connector.pin_ls().await.unwrap();
    let mut listed = Vec::new();
    while let Some(item) = stream.next().await {
        listed.push(item.unwrap());
    }
    assert_eq!(listed.len(), 10_000);
    let mut expected = f.fake.pins();
    expected.retain(|c| *c != cid(20_000));
    assert_eq!(
        listed, expected,
        "every recursive pin, in the daemon's order, no direct pin"
    );
}

#[tokio::test]
async fn daemon_errors_become_typed_errors() {
    let f = fixture().await;
    f.fake.update_knobs(|k| k.error_rate = 1.0);
    match f.connector.version().await {
        Err(IpfsError::Daemon { path, code, message }) => {
            assert_eq!(path, "version");
            assert_eq!(code, 500);
            assert!(message.contains("injected"), "{message}");
        }
        other => panic!("expected a daemon error, got {other:?}"),
    }
    let err = f.connector.pin(&cid(1), -1).await.unwrap_err();
    assert!(
        matches!(&err, IpfsError::Daemon { path, .. } if path == "pin/add"),
        "{err}"
    );
    assert!(matches!(
        f.connector.unpin(&cid(1)).await,
        Err(IpfsError::Daemon { .. })
    ));
    assert!(matches!(f.connector.pin_ls().await, Err(IpfsError::Daemon { .. })));
    assert!(
        err.to_string()
            .starts_with("IPFS error (pin/add). Code: 500. Message: "),
        "{err}"
    );

    // About half fail at 0.5 (the read path has no retry for daemon errors).
    f.fake.update_knobs(|k| k.error_rate = 0.5);
    let mut failures = 0;
    for _ in 0..60 {
        if f.connector.version().await.is_err() {
            failures += 1;
        }
    }
    assert!((10..50).contains(&failures), "{failures} of 60");
}

#[tokio::test]
async fn down_daemon_is_unreachable_then_recovers() {
    let f = fixture().await;
    f.fake.update_knobs(|k| k.down = true);
    let err = f.connector.unpin(&cid(1)).await.unwrap_err();
    assert!(matches!(err, IpfsError::Unreachable { .. }), "{err}");
    // Reads retry three times before giving up.
    let before = f.fake.calls("version");
    assert!(matches!(
        f.connector.version().await,
        Err(IpfsError::Unreachable { .. })
    ));
    assert_eq!(f.fake.calls("version") - before, 4);
    assert!(f.connector.consecutive_failures() >= 5);

    f.fake.update_knobs(|k| k.down = false);
    f.connector.pin(&cid(1), -1).await.unwrap();
    assert_eq!(f.connector.consecutive_failures(), 0);
    assert!(f.fake.has_pin(&cid(1)));
}

#[tokio::test]
async fn hung_pin_times_out_after_pin_timeout() {
    let f = fixture_with(Duration::from_millis(300)).await;
    f.fake.update_knobs(|k| k.hang = true);
    let start = cluster_rt::now();
    let err = f.connector.pin(&cid(1), -1).await.unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        matches!(&err, IpfsError::Timeout { path, .. } if path == "pin/add"),
        "{err}"
    );
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(!f.fake.has_pin(&cid(1)));
}

#[tokio::test]
async fn slow_but_progressing_pin_does_not_time_out() {
    // The fake reports a block every 50 ms while the pin runs 1 s; the stall timeout is 250 ms.
    let f = fixture_with(Duration::from_millis(250)).await;
    f.fake.update_knobs(|k| k.latency = Duration::from_millis(1000));
    let start = cluster_rt::now();
    f.connector.pin(&cid(1), -1).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(1000));
    assert!(f.fake.has_pin(&cid(1)));
}

#[tokio::test]
async fn full_repo_fails_pins_with_no_space_left() {
    let f = fixture().await;
    f.fake.update_knobs(|k| k.repo_full = true);
    let err = f.connector.pin(&cid(1), -1).await.unwrap_err();
    match &err {
        IpfsError::Daemon { path, code, message } => {
            assert_eq!(path, "pin/add");
            assert_eq!(*code, 500);
            assert!(message.contains("no space left"), "{message}");
        }
        other => panic!("expected a daemon error, got {other:?}"),
    }

    // Failing after progress started: the 200 stream ends with Kubo's error object and trailer.
    f.fake.update_knobs(|k| k.latency = Duration::from_millis(200));
    let err = f.connector.pin(&cid(2), -1).await.unwrap_err();
    assert!(
        matches!(&err, IpfsError::Daemon { path, .. } if path == "pin/add"),
        "{err}"
    );
    assert!(err.to_string().contains("no space left"), "{err}");
    assert!(f.fake.pins().is_empty());
}

#[tokio::test]
async fn server_answers_like_kubo() {
    let f = fixture().await;
    let address: SocketAddr = f.server.local_addr();
    let (status, body) = common::raw_request(address, "GET", "/api/v0/version", &[], b"").await;
    assert_eq!(
        (status, body.trim()),
        (405, r#"{"Code":1,"Message":"Method Not Allowed","Type":"error"}"#)
    );
    let (status, _) = common::raw_request(address, "POST", "/api/v0/no/such/thing", &[], b"").await;
    assert_eq!(status, 404);

    let c = cid(7);
    let (status, body) = common::raw_request(address, "POST", &format!("/api/v0/pin/ls?arg={c}"), &[], b"").await;
    assert_eq!(status, 500);
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        error,
        serde_json::json!({"Message": format!("path '{c}' is not pinned"), "Code": 0, "Type": "error"})
    );

    f.fake.pin(&c, -1).await.unwrap();
    f.fake.pin(&cid(8), 0).await.unwrap();
    let (status, body) = common::raw_request(address, "POST", "/api/v0/pin/ls?type=recursive", &[], b"").await;
    assert_eq!(status, 200);
    let keys: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        keys,
        serde_json::json!({"Keys": {c.to_string(): {"Type": "recursive"}}})
    );
    let (_, body) = common::raw_request(address, "POST", "/api/v0/pin/ls?stream=true&type=all", &[], b"").await;
    assert_eq!(body.lines().count(), 2, "{body}");
    let (status, body) = common::raw_request(address, "POST", "/api/v0/pin/ls?type=bogus", &[], b"").await;
    assert_eq!(status, 500, "{body}");
    let (status, body) = common::raw_request(address, "POST", "/api/v0/pin/rm?arg=nonsense", &[], b"").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("invalid path"), "{body}");
    let (status, _) = common::raw_request(address, "POST", "/api/v0/pin/add", &[], b"").await;
    assert_eq!(status, 400, "missing arg");
}

#[tokio::test]
async fn add_and_block_put_store_raw_blocks() {
    let f = fixture().await;
    let address = f.server.local_addr();
    let body = b"--BoUnD\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hello.txt\"\r\n\
Content-Type: application/octet-stream\r\n\r\nhello cluster\r\n--BoUnD--\r\n";
    let headers = [("Content-Type", "multipart/form-data; boundary=BoUnD")];
    let (status, reply) = common::raw_request(address, "POST", "/api/v0/add", &headers, body).await;
    assert_eq!(status, 200, "{reply}");
    let expected = Cid::raw_sha256(b"hello cluster");
    let reply: serde_json::Value = serde_json::from_str(reply.trim()).unwrap();
    assert_eq!(
        reply,
        serde_json::json!({"Name": "hello.txt", "Hash": expected.to_string(), "Size": "13"})
    );
    assert!(f.fake.has_block(&expected));
    assert!(f.fake.has_pin(&expected), "add pins by default");

    let body = b"--BoUnD\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\nraw block\r\n--BoUnD--\r\n";
    let (status, reply) = common::raw_request(
        address,
        "POST",
        "/api/v0/block/put?cid-codec=raw&mhtype=sha2-256",
        &headers,
        body,
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let block = Cid::raw_sha256(b"raw block");
    let reply: serde_json::Value = serde_json::from_str(reply.trim()).unwrap();
    assert_eq!(reply, serde_json::json!({"Key": block.to_string(), "Size": 9}));
    assert!(f.fake.has_block(&block));
    assert!(!f.fake.has_pin(&block), "block/put does not pin unless asked");
    assert_eq!(f.fake.calls("add"), 1);
    assert_eq!(f.fake.calls("block_put"), 1);

    let (status, _) = common::raw_request(address, "POST", "/api/v0/add", &[], b"plain").await;
    assert_eq!(status, 400, "not multipart");
}

#[tokio::test]
async fn shutdown_closes_the_server() {
    let f = fixture().await;
    f.connector.version().await.unwrap();
    f.server.shutdown();
    // Let the aborted accept loop and its connections wind down.
    cluster_rt::sleep(Duration::from_millis(50)).await;
    let err = f.connector.unpin(&cid(1)).await.unwrap_err();
    assert!(matches!(err, IpfsError::Unreachable { .. }), "{err}");
}

#[tokio::test]
async fn block_put_stores_blocks_under_their_codec_and_repo_gc_collects_the_unpinned() {
    let f = fixture().await;
    // A raw block and a dag-pb CIDv0 block (the shape the importer makes).
    let raw = Cid::raw_sha256(b"raw block");
    f.connector
        .block_put(&raw, cluster_ipfs::Bytes::from_static(b"raw block"))
        .await
        .unwrap();
    assert!(f.fake.has_block(&raw));
    let data = b"\x0a\x04\x08\x02\x18\x00"; // any bytes: the fake does not parse them
    let v1 = Cid::raw_sha256(data);
    let v0 = Cid(cid::Cid::new_v0(*v1.0.hash()).unwrap());
    f.connector
        .block_put(&v0, cluster_ipfs::Bytes::from_static(data))
        .await
        .unwrap();
    assert!(f.fake.has_block(&v0), "stored as dag-pb CIDv0");

    // A daemon that stores other content than asked is an error, not a silent success.
    let wrong = Cid::raw_sha256(b"something else");
    let error = f
        .connector
        .block_put(&wrong, cluster_ipfs::Bytes::from_static(b"raw block"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not the block"), "{error}");

    // GC: the pinned block stays, the others go, each reported once.
    f.connector.pin(&raw, -1).await.unwrap();
    let removed = f.connector.repo_gc().await.unwrap();
    assert!(removed.contains(&cluster_ipfs::GcEntry::Removed(v0)), "{removed:?}");
    assert!(!removed.contains(&cluster_ipfs::GcEntry::Removed(raw)));
    assert!(f.fake.has_block(&raw) && !f.fake.has_block(&v0));
    f.fake.update_knobs(|k| k.down = true);
    assert!(matches!(
        f.connector.repo_gc().await,
        Err(IpfsError::Unreachable { .. })
    ));
}

#[tokio::test]
async fn many_blocks_go_in_one_request_per_codec() {
    let f = fixture().await;
    let mut blocks = Vec::new();
    for i in 0..50u32 {
        let data = format!("raw block {i}");
        blocks.push((Cid::raw_sha256(data.as_bytes()), cluster_ipfs::Bytes::from(data)));
    }
    for i in 0..20u32 {
        let data = format!("dag-pb block {i}");
        let v1 = Cid::raw_sha256(data.as_bytes());
        let v0 = Cid(cid::Cid::new_v0(*v1.0.hash()).unwrap());
        blocks.push((v0, cluster_ipfs::Bytes::from(data)));
    }
    let cids: Vec<Cid> = blocks.iter().map(|(cid, _)| *cid).collect();
    f.connector.block_put_many(blocks).await.unwrap();
    assert!(cids.iter().all(|cid| f.fake.has_block(cid)));
    assert_eq!(f.fake.calls("block_put"), 70, "every block stored");
    assert_eq!(
        f.fake.requests("block/put"),
        2,
        "one request per codec, not one per block"
    );
}

#[tokio::test]
async fn resolve_answers_plain_paths_names_and_refuses_unknown_ones() {
    let f = fixture().await;
    let c = cid(1);
    assert_eq!(f.connector.resolve(&format!("/ipfs/{c}")).await.unwrap(), c);
    f.fake.set_resolve("/ipns/site.example", cid(2));
    assert_eq!(f.connector.resolve("/ipns/site.example").await.unwrap(), cid(2));
    let error = f.connector.resolve("/ipns/nobody.example").await.unwrap_err();
    assert!(error.to_string().contains("could not resolve"), "{error}");
}

#[tokio::test]
async fn the_kubo_connector_over_the_fake_server_passes_the_conformance_suite() {
    let f = fixture().await;
    cluster_ipfs::testing::run_conformance_suite(&f.connector, "kubo-over-fake").await;
}
