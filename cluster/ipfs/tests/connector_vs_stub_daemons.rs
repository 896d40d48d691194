//! The Kubo connector against scripted stub daemons: js-ipfs reply shapes, pin progress that is
//! slow but steady (no timeout) versus stalled (timeout), mid-stream errors, garbage, and no
//! daemon at all (unreachable, retries, rate limit).
#![cfg(not(madsim))]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use cluster_ipfs::{IpfsConnector, IpfsError, IpfsPinType, KuboConnector, KuboConnectorConfig};
use cluster_types::Cid;
use common::{error, ok, Script, Step, Stub};
use futures::StreamExt;

/// A CIDv1 as js-ipfs writes it (base58btc) and as we write it (base32).
const JS_CID_BASE58: &str = "zb2rhaUZxZXRHcQYpzDT2zt3wtjba3U5LkZr91tXeaRbkFNBr";
const CIDV0: &str = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9";

fn connector(address: SocketAddr, pin_timeout: Duration) -> KuboConnector {
    KuboConnector::new(KuboConnectorConfig {
        node_address: cluster_types::HttpAddress::Tcp(address.to_string()),
        request_timeout: Duration::from_secs(3),
        pin_timeout,
        unpin_timeout: Duration::from_secs(3),
    })
}

fn endpoint(target: &str) -> &str {
    let path = target.split('?').next().unwrap_or("");
    path.strip_prefix("/api/v0/").unwrap_or(path)
}

/// js-ipfs 0.66 reply shapes (external-peers.md §1).
fn js_ipfs(target: &str) -> Script {
    match endpoint(target) {
        "id" => {
            ok(r#"{"ID":"12D3KooWJfgts1mq","PublicKey":"CAESIIOA","Addresses":[],"AgentVersion":"js-ipfs/0.18.1"}"#)
        }
        "version" => ok(r#"{"Version":"0.18.1","Commit":"","Repo":"12","ipfs-core":"0.18.1"}"#),
        "repo/stat" => {
            ok(r#"{"NumObjects":"2","RepoSize":"1326","RepoPath":"/r","Version":"12","StorageMax":"9007199254740991"}"#)
        }
        "swarm/peers" => ok(r#"{"Peers":[]}"#),
        "pin/ls" if target.contains("arg=") => ok(&format!(r#"{{"Type":"recursive","Cid":"{JS_CID_BASE58}"}}"#)),
        // Stream lines without a trailing newline after the last one.
        "pin/ls" => (
            200,
            vec![
                Step::Send(format!("{{\"Type\":\"recursive\",\"Cid\":\"{JS_CID_BASE58}\"}}\n")),
                Step::Send(format!("{{\"Type\":\"recursive\",\"Cid\":\"{CIDV0}\"}}")),
            ],
        ),
        "pin/rm" => error(500, &format!("Failed to remove pin: {CIDV0} is not pinned")),
        // One reply when done, progress=true or not, naming the CID in base58.
        "pin/add" => ok(&format!(r#"{{"Pins":["{JS_CID_BASE58}"]}}"#)),
        _ => error(404, "Not Found"),
    }
}

#[tokio::test]
async fn copes_with_js_ipfs_shapes() {
    let stub = Stub::start(js_ipfs).await;
    let c = connector(stub.address, Duration::from_secs(1));
    let id = c.id().await.unwrap();
    assert_eq!(id.id, "12D3KooWJfgts1mq");
    assert!(id.addresses.is_empty());
    assert_eq!(c.version().await.unwrap(), "0.18.1");
    let stat = c.repo_stat().await.unwrap();
    assert_eq!((stat.repo_size, stat.storage_max), (1326, 9_007_199_254_740_991));
    assert!(c.swarm_peers().await.unwrap().is_empty());

    let ours: Cid = JS_CID_BASE58.parse().unwrap();
    assert!(ours.to_string().starts_with("bafkrei"));
    // The daemon answers base58 for our base32 argument: same CID.
    assert_eq!(c.pin_ls_cid(&ours).await.unwrap(), Some(IpfsPinType::Recursive));
    // Already pinned recursively: pin/add answers at once.
    c.pin(&ours, -1).await.unwrap();

    let listed: Vec<Cid> = c.pin_ls().await.unwrap().map(|r| r.unwrap()).collect().await;
    assert_eq!(listed, vec![ours, CIDV0.parse().unwrap()]);
    // js-ipfs's "... is not pinned" on pin/rm counts as unpinned.
    c.unpin(&CIDV0.parse().unwrap()).await.unwrap();
}

#[tokio::test]
async fn non_stream_keys_shape_and_pin_add_without_progress() {
    let stub = Stub::start(|target: &str| match endpoint(target) {
        // A daemon that ignores stream=true: one {"Keys":..} object, split over chunks.
        "pin/ls" if !target.contains("arg=") => (
            200,
            vec![
                Step::Send(format!("{{\"Keys\":{{\"{CIDV0}\":{{\"Type\":\"recursive\"}},")),
                Step::Send(format!("\"{JS_CID_BASE58}\":{{\"Type\":\"recursive\"}}}}}}")),
            ],
        ),
        "pin/ls" => error(500, "path is not pinned"),
        // js-ipfs ignores progress=true and answers once, when done.
        "pin/add" => (
            200,
            vec![
                Step::Sleep(Duration::from_millis(100)),
                Step::Send(format!("{{\"Pins\":[\"{CIDV0}\"]}}")),
            ],
        ),
        _ => error(404, "Not Found"),
    })
    .await;
    let c = connector(stub.address, Duration::from_secs(1));
    let mut listed: Vec<Cid> = c.pin_ls().await.unwrap().map(|r| r.unwrap()).collect().await;
    listed.sort();
    let mut expected: Vec<Cid> = vec![CIDV0.parse().unwrap(), JS_CID_BASE58.parse().unwrap()];
    expected.sort();
    assert_eq!(listed, expected);
    c.pin(&CIDV0.parse().unwrap(), -1).await.unwrap();
    assert_eq!(c.pin_ls_cid(&CIDV0.parse().unwrap()).await.unwrap(), None);
}

/// A pin/add reply of `count` progress lines `interval` apart, then Pins (if `finish`).
fn progress_script(count: u64, interval: Duration, repeat_same: bool, finish: bool) -> Script {
    let mut steps = Vec::new();
    for i in 1..=count {
        let value = if repeat_same { 1 } else { i };
        steps.push(Step::Send(format!("{{\"Progress\":{value}}}\n")));
        steps.push(Step::Sleep(interval));
    }
    if finish {
        steps.push(Step::Send(format!("{{\"Pins\":[\"{CIDV0}\"],\"Progress\":{count}}}\n")));
    } else {
        steps.push(Step::Sleep(Duration::from_secs(30)));
    }
    (200, steps)
}

#[tokio::test]
async fn slow_steady_progress_succeeds_but_a_stall_times_out() {
    let cid: Cid = CIDV0.parse().unwrap();
    // 12 steps of 100 ms: 1.2 s in all, far beyond the 300 ms stall timeout.
    let steady = Stub::start(|target: &str| match endpoint(target) {
        "pin/ls" => error(500, "not pinned"),
        _ => progress_script(12, Duration::from_millis(100), false, true),
    })
    .await;
    let start = cluster_rt::now();
    connector(steady.address, Duration::from_millis(300))
        .pin(&cid, -1)
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(1200), "{:?}", start.elapsed());

    // Two steps, then silence.
    let stalled = Stub::start(|target: &str| match endpoint(target) {
        "pin/ls" => error(500, "not pinned"),
        _ => progress_script(2, Duration::from_millis(50), false, false),
    })
    .await;
    let start = cluster_rt::now();
    let err = connector(stalled.address, Duration::from_millis(300))
        .pin(&cid, -1)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, IpfsError::Timeout { path, .. } if path == "pin/add"),
        "{err}"
    );
    assert!(err.to_string().contains("stuck at 2"), "{err}");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(350) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );

    // Lines keep coming but the count does not grow: that is no progress either.
    let treading = Stub::start(|target: &str| match endpoint(target) {
        "pin/ls" => error(500, "not pinned"),
        _ => progress_script(40, Duration::from_millis(50), true, true),
    })
    .await;
    let err = connector(treading.address, Duration::from_millis(300))
        .pin(&cid, -1)
        .await
        .unwrap_err();
    assert!(matches!(err, IpfsError::Timeout { .. }), "{err}");

    // No answer at all (not even headers) within the stall timeout.
    let silent = Stub::start(|target: &str| match endpoint(target) {
        "pin/ls" => error(500, "not pinned"),
        _ => (200, vec![Step::Sleep(Duration::from_secs(30))]),
    })
    .await;
    let err = connector(silent.address, Duration::from_millis(200))
        .pin(&cid, -1)
        .await
        .unwrap_err();
    assert!(matches!(err, IpfsError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn stream_errors_trailers_and_garbage() {
    let stub = Stub::start(|target: &str| match endpoint(target) {
        // A listing that fails half-way: Kubo's error object, then the trailer.
        "pin/ls" => (
            200,
            vec![
                Step::Send(format!("{{\"Cid\":\"{CIDV0}\",\"Type\":\"recursive\"}}\n")),
                Step::Send("{\"Message\":\"datastore closed\",\"Code\":0,\"Type\":\"error\"}\n".into()),
                Step::Trailer("X-Stream-Error", "datastore closed".into()),
            ],
        ),
        "version" => ok("this is not json"),
        "repo/stat" => ok(r#"{"RepoSize":"many","StorageMax":1}"#),
        "id" => (502, vec![Step::Send("<html>bad gateway</html>".into())]),
        _ => error(404, "Not Found"),
    })
    .await;
    let c = connector(stub.address, Duration::from_secs(1));
    let items: Vec<Result<Cid, IpfsError>> = c.pin_ls().await.unwrap().collect().await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap(), &CIDV0.parse::<Cid>().unwrap());
    assert!(
        matches!(&items[1], Err(IpfsError::Daemon { message, .. }) if message == "datastore closed"),
        "{items:?}"
    );

    // pin/ls?arg= gets the same error reply: a daemon error, not "unpinned".
    let err = c.pin_ls_cid(&CIDV0.parse().unwrap()).await.unwrap_err();
    assert!(
        matches!(&err, IpfsError::Daemon { message, .. } if message == "datastore closed"),
        "{err}"
    );

    assert!(matches!(c.version().await, Err(IpfsError::Decode { .. })));
    assert!(matches!(c.repo_stat().await, Err(IpfsError::Decode { .. })));
    match c.id().await {
        Err(IpfsError::Daemon { code: 502, message, .. }) => assert_eq!(message, "<html>bad gateway</html>"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn trailer_error_fails_a_pin() {
    let stub = Stub::start(|target: &str| match endpoint(target) {
        "pin/ls" => error(500, "not pinned"),
        _ => (
            200,
            vec![
                Step::Send("{\"Progress\":1}\n".into()),
                Step::Trailer("X-Stream-Error", "disk died".into()),
            ],
        ),
    })
    .await;
    let err = connector(stub.address, Duration::from_secs(1))
        .pin(&CIDV0.parse().unwrap(), -1)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, IpfsError::Daemon { message, .. } if message == "disk died"),
        "{err}"
    );
}

#[tokio::test]
async fn nothing_listening_is_unreachable_with_retries_then_rate_limited() {
    let address = common::dead_address().await;
    let c = connector(address, Duration::from_secs(1));
    // A read: 1 attempt + 3 retries after 100 + 200 + 400 ms.
    let start = cluster_rt::now();
    match c.version().await {
        Err(IpfsError::Unreachable { address: a, message }) => {
            assert_eq!(a, address.to_string());
            assert!(message.to_lowercase().contains("connect"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_millis(700), "{:?}", start.elapsed());
    assert_eq!(c.consecutive_failures(), 4);

    // Writes are not retried.
    for _ in 0..7 {
        assert!(matches!(
            c.unpin(&CIDV0.parse().unwrap()).await,
            Err(IpfsError::Unreachable { .. })
        ));
    }
    assert_eq!(c.consecutive_failures(), 11);
    // Past 10 consecutive failures, requests go out at most once a second.
    let start = cluster_rt::now();
    for _ in 0..3 {
        assert!(c.unpin(&CIDV0.parse().unwrap()).await.is_err());
    }
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
}
