//! End-to-end tests of the built `ipfs-cluster-ctl` binary against a stub REST API: a tiny hyper
//! server on 127.0.0.1 that answers canned JSON, NDJSON streams (with the `X-Stream-Error`
//! trailer) and errors, and records every request so the tests can check what the client sent.
#![cfg(not(madsim))]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin as StdPin;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cluster_types::{Cid, GlobalPinInfo, Id, IpfsId, PeerId, Pin, PinInfoShort, PinOptions, Timestamp, TrackerStatus};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const CID_A: &str = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9";
const CID_B: &str = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";

// ---------------------------------------------------------------------------------------------
// The stub server.

/// A response body made of canned frames (data chunks, then optional trailers).
struct CannedBody(VecDeque<Frame<Bytes>>);

impl Body for CannedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: StdPin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

/// One canned answer.
#[derive(Clone)]
struct Canned {
    status: u16,
    chunks: Vec<String>,
    /// `Some` = declare and send an `X-Stream-Error` trailer with this value.
    trailer: Option<String>,
    delay: Duration,
}

fn json(status: u16, body: String) -> Canned {
    Canned {
        status,
        chunks: vec![body],
        trailer: None,
        delay: Duration::ZERO,
    }
}

fn stream(items: &[String], trailer: &str) -> Canned {
    let chunks = items.iter().map(|item| format!("{item}\n")).collect();
    Canned {
        status: 200,
        chunks,
        trailer: Some(trailer.to_string()),
        delay: Duration::ZERO,
    }
}

/// What the client sent.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    uri: String,
    te: Option<String>,
    authorization: Option<String>,
}

struct Stub {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Stub {
    /// Serves `routes`, keyed by `"METHOD /path"` (query excluded); anything else is a 404.
    fn start(routes: Vec<(String, Canned)>) -> Stub {
        let routes: Arc<HashMap<String, Canned>> = Arc::new(routes.into_iter().collect());
        let log = Arc::new(Mutex::new(Vec::new()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let server_log = log.clone();
        runtime.spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let routes = routes.clone();
                let log = server_log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let routes = routes.clone();
                        let log = log.clone();
                        async move { Ok::<_, Infallible>(answer(&routes, &log, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Stub {
            addr,
            log,
            _runtime: runtime,
        }
    }

    fn host(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.addr.port())
    }

    fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// Runs the binary against this stub.
    fn ctl(&self, args: &[&str]) -> Output {
        let mut full = vec!["--host".to_string(), self.host()];
        full.extend(args.iter().map(|a| a.to_string()));
        ctl(&full)
    }
}

async fn answer(
    routes: &HashMap<String, Canned>,
    log: &Mutex<Vec<Recorded>>,
    request: Request<Incoming>,
) -> Response<CannedBody> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    log.lock().unwrap().push(Recorded {
        method: request.method().to_string(),
        uri: request.uri().to_string(),
        te: header("te"),
        authorization: header("authorization"),
    });
    let key = format!("{} {}", request.method(), request.uri().path());
    let canned = routes
        .get(&key)
        .cloned()
        .unwrap_or_else(|| json(404, r#"{"code":404,"message":"not found"}"#.to_string()));
    tokio::time::sleep(canned.delay).await;
    let mut frames: VecDeque<Frame<Bytes>> = canned.chunks.into_iter().map(|c| Frame::data(Bytes::from(c))).collect();
    let mut response = Response::builder()
        .status(canned.status)
        .header("content-type", "application/json");
    if let Some(trailer) = canned.trailer {
        response = response.header("trailer", "X-Stream-Error");
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-stream-error", trailer.parse().unwrap());
        frames.push_back(Frame::trailers(trailers));
    }
    response.body(CannedBody(frames)).unwrap()
}

fn ctl(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipfs-cluster-ctl"))
        .args(args)
        .env_remove("CLUSTER_CREDENTIALS")
        .output()
        .expect("run ipfs-cluster-ctl")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Canned data.

fn peer(seed: u8) -> PeerId {
    PeerId::from_ed25519_seed([seed; 32])
}

fn cid(text: &str) -> Cid {
    text.parse().unwrap()
}

fn sample_id(seed: u8, name: &str) -> Id {
    Id {
        id: peer(seed),
        addresses: vec![format!("/ip4/127.0.0.1/tcp/9096/p2p/{}", peer(seed))],
        cluster_peers: vec![peer(1), peer(2)],
        cluster_peers_addresses: vec![],
        version: "1.1.6".into(),
        commit: String::new(),
        rpc_protocol_version: "/ipfscluster/1.0/rpc".into(),
        error: String::new(),
        ipfs: IpfsId {
            id: "QmIpfsDaemon".into(),
            addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            error: String::new(),
        },
        peername: name.into(),
    }
}

fn sample_pin(text: &str, name: &str) -> Pin {
    let mut pin = Pin::new(
        cid(text),
        PinOptions {
            name: name.into(),
            replication_factor_min: 1,
            replication_factor_max: 1,
            ..Default::default()
        },
    );
    pin.allocations = vec![peer(1)];
    pin.timestamp = "2026-05-11T10:17:41Z".parse().unwrap();
    pin
}

fn sample_status(text: &str, status: TrackerStatus) -> GlobalPinInfo {
    let mut peer_map = BTreeMap::new();
    peer_map.insert(
        peer(1).to_string(),
        PinInfoShort {
            peername: "alpha".into(),
            status,
            timestamp: "2026-05-11T10:17:41Z".parse().unwrap(),
            ..Default::default()
        },
    );
    GlobalPinInfo {
        cid: cid(text),
        name: String::new(),
        allocations: vec![peer(1)],
        origins: vec![],
        created: Timestamp::ZERO,
        metadata: BTreeMap::new(),
        peer_map,
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

fn status_line(text: &str, status: &str) -> String {
    format!("{text}:\n    > alpha                : {status} | 2026-05-11T10:17:41Z | Attempts: 0 | Priority: false\n")
}

fn pin_line(text: &str, name: &str) -> String {
    format!(
        "{text} | {name} | PIN | Repl. Factor: 1--1 | Allocations: [{}] | Recursive | Metadata: no | Exp: ∞ | Added: 2026-05-11 10:17:41\n",
        peer(1)
    )
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn id_prints_the_peer() {
    let stub = Stub::start(vec![(
        "GET /id".to_string(),
        json(200, to_json(&sample_id(1, "alpha"))),
    )]);
    let output = stub.ctl(&["id"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!(
            "{p} | alpha | Sees 1 other peers\n  > Addresses:\n    - /ip4/127.0.0.1/tcp/9096/p2p/{p}\n  > IPFS: QmIpfsDaemon\n    - /ip4/127.0.0.1/tcp/4001\n",
            p = peer(1)
        )
    );
    assert_eq!(stub.requests()[0].uri, "/id");
}

#[test]
fn version_in_text_and_json() {
    let stub = Stub::start(vec![(
        "GET /version".to_string(),
        json(200, r#"{"version":"1.1.6"}"#.into()),
    )]);
    let text = stub.ctl(&["version"]);
    assert_eq!((text.status.code(), stdout(&text)), (Some(0), "1.1.6\n".to_string()));
    let json = stub.ctl(&["--enc", "json", "version"]);
    assert_eq!(
        (json.status.code(), stdout(&json)),
        (Some(0), "{\n    \"version\": \"1.1.6\"\n}\n".to_string())
    );
}

#[test]
fn pin_add_no_status_sends_options_and_prints_the_pin() {
    let stub = Stub::start(vec![(
        format!("POST /pins/ipfs/{CID_A}"),
        json(200, to_json(&sample_pin(CID_A, "photos"))),
    )]);
    let output = stub.ctl(&[
        "pin",
        "add",
        "--rmin",
        "2",
        "--rmax",
        "3",
        "-n",
        "photos",
        "--metadata",
        "k=v",
        "--ns",
        CID_A,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), pin_line(CID_A, "photos"));
    let request = &stub.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.uri,
        format!("/pins/ipfs/{CID_A}?meta-k=v&mode=recursive&name=photos&replication-max=3&replication-min=2&shard-size=0&user-allocations=")
    );
}

#[test]
fn pin_rm_no_status_deletes_the_path() {
    let stub = Stub::start(vec![(
        format!("DELETE /pins/ipfs/{CID_A}"),
        json(200, to_json(&sample_pin(CID_A, "photos"))),
    )]);
    let output = stub.ctl(&["pin", "rm", "--no-status", &format!("/ipfs/{CID_A}")]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), pin_line(CID_A, "photos"));
    assert_eq!(stub.requests()[0].uri, format!("/pins/ipfs/{CID_A}"));
}

#[test]
fn pin_add_fetches_the_status_after_a_second() {
    let stub = Stub::start(vec![
        (
            format!("POST /pins/ipfs/{CID_A}"),
            json(200, to_json(&sample_pin(CID_A, "photos"))),
        ),
        (
            format!("GET /pins/{CID_A}"),
            json(200, to_json(&sample_status(CID_A, TrackerStatus::Pinning))),
        ),
    ]);
    let output = stub.ctl(&["pin", "add", CID_A]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), status_line(CID_A, "PINNING"));
    let uris: Vec<String> = stub.requests().into_iter().map(|r| r.uri).collect();
    assert_eq!(uris[1], format!("/pins/{CID_A}?local=false"));
}

#[test]
fn pin_add_wait_polls_until_pinned() {
    let stub = Stub::start(vec![
        (
            format!("POST /pins/ipfs/{CID_A}"),
            json(200, to_json(&sample_pin(CID_A, "photos"))),
        ),
        (
            format!("GET /pins/{CID_A}"),
            json(200, to_json(&sample_status(CID_A, TrackerStatus::Pinned))),
        ),
    ]);
    let output = stub.ctl(&["pin", "add", "--wait", "--wt", "30s", CID_A]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), status_line(CID_A, "PINNED"));
}

#[test]
fn pin_add_wait_timeout_exits_62() {
    let stub = Stub::start(vec![
        (
            format!("POST /pins/ipfs/{CID_A}"),
            json(200, to_json(&sample_pin(CID_A, "photos"))),
        ),
        (
            format!("GET /pins/{CID_A}"),
            json(200, to_json(&sample_status(CID_A, TrackerStatus::Pinning))),
        ),
    ]);
    let output = stub.ctl(&["pin", "add", "-w", "--wt", "1500ms", CID_A]);
    assert_eq!(output.status.code(), Some(62), "{}", stdout(&output));
    // Go's line first, then what it means for the pin: it stays and is still being pinned.
    assert_eq!(
        stderr(&output),
        format!(
            "error waiting for pin status: context deadline exceeded\n\
             {CID_A} stays in the pinset and the cluster keeps pinning it; follow it with: ipfs-cluster-ctl status {CID_A}\n"
        )
    );
    assert!(stdout(&output).is_empty());
}

#[test]
fn pin_ls_streams_allocations() {
    let pins = [to_json(&sample_pin(CID_A, "a")), to_json(&sample_pin(CID_B, "b"))];
    let stub = Stub::start(vec![("GET /allocations".to_string(), stream(&pins, ""))]);
    let output = stub.ctl(&["pin", "ls"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("{}{}", pin_line(CID_A, "a"), pin_line(CID_B, "b"))
    );
    let request = &stub.requests()[0];
    assert_eq!(request.uri, "/allocations?filter=all");
    assert_eq!(request.te.as_deref(), Some("trailers"));
}

#[test]
fn pin_ls_one_cid_and_api_error_exits_2() {
    let stub = Stub::start(vec![(
        format!("GET /allocations/{CID_A}"),
        json(404, r#"{"code":404,"message":"pin is not part of the pinset"}"#.into()),
    )]);
    let output = stub.ctl(&["pin", "ls", CID_A]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stdout(&output),
        "An error occurred:\n  Code: 404\n  Message: pin is not part of the pinset\n"
    );
    let json = stub.ctl(&["--enc", "json", "pin", "ls", CID_A]);
    assert_eq!(json.status.code(), Some(2));
    assert_eq!(
        stdout(&json),
        "{\n    \"code\": 404,\n    \"message\": \"pin is not part of the pinset\"\n}\n"
    );
}

#[test]
fn status_of_one_cid() {
    let stub = Stub::start(vec![(
        format!("GET /pins/{CID_A}"),
        json(200, to_json(&sample_status(CID_A, TrackerStatus::Pinned))),
    )]);
    let output = stub.ctl(&["status", "--local", CID_A]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), status_line(CID_A, "PINNED"));
    assert_eq!(stub.requests()[0].uri, format!("/pins/{CID_A}?local=true"));
}

#[test]
fn status_of_several_cids_streams() {
    let items = [
        to_json(&sample_status(CID_A, TrackerStatus::Pinned)),
        to_json(&sample_status(CID_B, TrackerStatus::PinQueued)),
    ];
    let stub = Stub::start(vec![("GET /pins".to_string(), stream(&items, ""))]);
    let output = stub.ctl(&["status", CID_A, CID_B]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("{}{}", status_line(CID_A, "PINNED"), status_line(CID_B, "PIN_QUEUED"))
    );
    assert_eq!(
        stub.requests()[0].uri,
        format!("/pins?local=false&filter=&cids={CID_A},{CID_B}")
    );
}

#[test]
fn status_stream_error_trailer_exits_2_after_the_items() {
    let items = [to_json(&sample_status(CID_A, TrackerStatus::PinError))];
    let stub = Stub::start(vec![("GET /pins".to_string(), stream(&items, "peer unreachable"))]);
    let output = stub.ctl(&["status", "--filter", "error"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stdout(&output),
        format!(
            "{}An error occurred:\n  Code: 500\n  Message: peer unreachable\n",
            status_line(CID_A, "PIN_ERROR")
        )
    );
    assert_eq!(stub.requests()[0].uri, "/pins?local=false&filter=error&cids=");
}

#[test]
fn recover_one_and_all() {
    let stub = Stub::start(vec![
        (
            format!("POST /pins/{CID_A}/recover"),
            json(200, to_json(&sample_status(CID_A, TrackerStatus::Pinning))),
        ),
        (
            "POST /pins/recover".to_string(),
            Canned {
                status: 204,
                chunks: vec![],
                trailer: None,
                delay: Duration::ZERO,
            },
        ),
    ]);
    let one = stub.ctl(&["recover", "--local", CID_A]);
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    assert_eq!(stdout(&one), status_line(CID_A, "PINNING"));
    let all = stub.ctl(&["recover"]);
    assert_eq!(all.status.code(), Some(0), "{}", stderr(&all));
    assert_eq!(stdout(&all), "");
    let uris: Vec<String> = stub.requests().into_iter().map(|r| r.uri).collect();
    assert_eq!(
        uris,
        vec![
            format!("/pins/{CID_A}/recover?local=true"),
            "/pins/recover?local=false".to_string()
        ]
    );
}

#[test]
fn peers_ls_in_text_and_json() {
    let mut down = sample_id(2, "beta");
    down.error = "context deadline exceeded".into();
    let items = [to_json(&sample_id(1, "alpha")), to_json(&down)];
    let stub = Stub::start(vec![("GET /peers".to_string(), stream(&items, ""))]);
    let text = stub.ctl(&["peers", "ls"]);
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
    let lines = stdout(&text);
    assert!(
        lines.starts_with(&format!("{} | alpha | Sees 1 other peers\n", peer(1))),
        "{lines}"
    );
    assert!(
        lines.ends_with(&format!("{} | ERROR: context deadline exceeded\n", peer(2))),
        "{lines}"
    );

    let json = stub.ctl(&["--enc", "json", "peers", "ls"]);
    assert_eq!(json.status.code(), Some(0));
    let body = stdout(&json);
    // Two indented objects back to back, not an array.
    assert!(body.starts_with("{\n    \"id\": "), "{body}");
    assert_eq!(body.matches("\n}\n").count(), 2, "{body}");
    let values: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&body)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(values.len(), 2);
    assert_eq!(values[1]["error"], "context deadline exceeded");
}

#[test]
fn nothing_listening_exits_1() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let output = ctl(&["--host".into(), format!("/ip4/127.0.0.1/tcp/{port}"), "id".into()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.starts_with("An error occurred:\n  Code: 0\n  Message: GET "),
        "{text}"
    );
    // Says what a refused connection means, not only that it was refused.
    assert!(
        text.contains(&format!(
            "no cluster member is running at 127.0.0.1:{port} (start one with `ipfs-cluster-service daemon`, or point --host at a running member's REST API)"
        )),
        "{text}"
    );
}

#[test]
fn request_timeout_exits_62() {
    let slow = Canned {
        delay: Duration::from_secs(10),
        ..json(200, r#"{"version":"1.1.6"}"#.into())
    };
    let stub = Stub::start(vec![("GET /version".to_string(), slow)]);
    let output = stub.ctl(&["--timeout", "1", "version"]);
    assert_eq!(output.status.code(), Some(62));
    assert!(
        stderr(&output).contains("context deadline exceeded"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn basic_auth_needs_force_http_and_is_sent() {
    let stub = Stub::start(vec![(
        "GET /version".to_string(),
        json(200, r#"{"version":"1.1.6"}"#.into()),
    )]);
    // Credentials imply HTTPS: against a plain-HTTP server the TLS handshake fails and the
    // credentials are never sent in clear.
    let refused = stub.ctl(&["--basic-auth", "ann:secret", "version"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stub.requests().iter().all(|r| r.authorization.is_none()),
        "credentials sent over plain HTTP"
    );

    let sent = stub.ctl(&["--basic-auth", "ann:secret", "--force-http", "version"]);
    assert_eq!(sent.status.code(), Some(0), "{}", stderr(&sent));
    // base64("ann:secret")
    assert_eq!(
        stub.requests()[0].authorization.as_deref(),
        Some("Basic YW5uOnNlY3JldA==")
    );
}

#[test]
fn help_and_usage_errors() {
    let help = ctl(&["--help".into()]);
    assert_eq!(help.status.code(), Some(0));
    let text = stdout(&help);
    for word in [
        "id",
        "peers",
        "pin",
        "status",
        "recover",
        "version",
        "--host",
        "--encoding",
    ] {
        assert!(text.contains(word), "{word} missing from help:\n{text}");
    }
    let pin_add = ctl(&["pin".into(), "add".into(), "--help".into()]);
    assert_eq!(pin_add.status.code(), Some(0));
    assert!(stdout(&pin_add).contains("--replication-min"), "{}", stdout(&pin_add));

    let version = ctl(&["--version".into()]);
    assert_eq!(
        (version.status.code(), stdout(&version)),
        (Some(0), "ipfs-cluster-ctl version 1.1.6\n".to_string())
    );

    let bad_flag = ctl(&["--no-such-flag".into(), "id".into()]);
    assert_eq!(bad_flag.status.code(), Some(1));
    let bad_cid = ctl(&[
        "--host".into(),
        "/ip4/127.0.0.1/tcp/1".into(),
        "status".into(),
        "nope".into(),
    ]);
    assert_eq!(bad_cid.status.code(), Some(1));
    assert!(
        stderr(&bad_cid).starts_with("error parsing cid: "),
        "{}",
        stderr(&bad_cid)
    );
}

#[test]
fn pin_update_sends_pin_update_to_the_new_path() {
    let stub = Stub::start(vec![(
        format!("POST /pins/ipfs/{CID_B}"),
        json(200, to_json(&sample_pin(CID_B, "v2"))),
    )]);
    let output = stub.ctl(&["pin", "update", "-n", "v2", "--ns", CID_A, CID_B]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), pin_line(CID_B, "v2"));
    let request = &stub.requests()[0];
    assert_eq!(request.method, "POST");
    assert!(
        request.uri.contains(&format!("pin-update={CID_A}")) && request.uri.contains("name=v2"),
        "{}",
        request.uri
    );
    // A bad source CID is refused before any request.
    let output = stub.ctl(&["pin", "update", "nope", CID_B]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn health_metrics_alerts_and_ipfs_gc() {
    let p = peer(1);
    let metric = format!(
        r#"[{{"name":"freespace","peer":"{p}","value":"82854982","expire":9000000000000000000,"valid":true,"weight":82854982,"partitionable":false,"received_at":1}}]"#
    );
    let gc = format!(r#"{{"peer_map":{{"{p}":{{"peer":"{p}","peername":"alpha","keys":[{{"key":"{CID_A}"}}]}}}}}}"#);
    let stub = Stub::start(vec![
        (
            "GET /monitor/metrics".into(),
            json(200, r#"["freespace","ping"]"#.into()),
        ),
        ("GET /monitor/metrics/freespace".into(), json(200, metric)),
        // As our server and Go's: any name answers a list, empty when nothing has it.
        ("GET /monitor/metrics/nosuch".into(), json(200, "[]".into())),
        ("GET /monitor/metrics/pinqueue".into(), json(200, "[]".into())),
        ("GET /health/alerts".into(), json(200, "[]".into())),
        ("POST /ipfs/gc".into(), json(200, gc)),
    ]);
    let output = stub.ctl(&["health", "metrics"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "freespace\nping\n");

    let output = stub.ctl(&["health", "metrics", "freespace"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with(&format!("{p} | freespace: 83 MB | Expires in: ")) && text.ends_with("from now\n"),
        "{text}"
    );

    let output = stub.ctl(&["health", "alerts"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");

    // A metric members publish but nobody reported yet is not an error: it says so.
    let output = stub.ctl(&["health", "metrics", "pinqueue"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "no member has reported pinqueue yet\n");

    // A name the cluster never reported is an error that lists the names it has.
    let output = stub.ctl(&["health", "metrics", "nosuch"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "error reading metrics: no metric named \"nosuch\"; this cluster has: freespace, ping\n"
    );

    let output = stub.ctl(&["ipfs", "gc", "--local"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("alpha          \n  > CIDs:\n    - {CID_A}\n"));
    let uris: Vec<String> = stub.requests().iter().map(|r| r.uri.clone()).collect();
    assert_eq!(
        uris,
        [
            "/monitor/metrics",
            "/monitor/metrics/freespace",
            "/health/alerts",
            "/monitor/metrics/pinqueue",
            "/monitor/metrics",
            "/monitor/metrics/nosuch",
            "/monitor/metrics",
            "/ipfs/gc?local=true"
        ]
    );
}

#[test]
fn health_graph_writes_a_dot_file() {
    let p = peer(1);
    let graph = format!(
        r#"{{"cluster_id":"{p}","id_to_peername":{{"{p}":"alpha"}},"ipfs_links":{{"QmDaemon000001":[]}},"cluster_links":{{"{p}":[]}},"cluster_trust_links":{{"{p}":true}},"cluster_to_ipfs":{{"{p}":"QmDaemon000001"}}}}"#
    );
    let stub = Stub::start(vec![("GET /health/graph".into(), json(200, graph))]);
    let output = stub.ctl(&["health", "graph"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let dot = stdout(&output);
    assert!(dot.starts_with("digraph cluster {\n") && dot.ends_with('}'), "{dot}");
    assert!(dot.contains("C0 -> I0\n"), "{dot}");

    let dir = std::env::temp_dir().join(format!("ctl-graph-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cluster.dot");
    let output = stub.ctl(&["health", "graph", "-f", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), dot);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn completion_scripts_need_no_server() {
    for shell in ["bash", "zsh", "fish"] {
        let output = ctl(&["completion".to_string(), shell.to_string()]);
        assert_eq!(output.status.code(), Some(0), "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        assert!(script.contains("ipfs-cluster-ctl"), "{shell}");
        assert!(script.contains("health"), "{shell} completes subcommands");
    }
    assert_eq!(
        ctl(&["completion".to_string(), "tcsh".to_string()]).status.code(),
        Some(1)
    );
}

/// `ipfs-cluster-ctl completion bash | head` and the like: a reader that goes away ends the
/// command quietly (exit 0), never with a panic.
#[test]
fn a_closed_output_pipe_ends_quietly() {
    let stub = Stub::start(vec![(
        "GET /allocations".into(),
        stream(
            &(0..5000)
                .map(|_| to_json(&sample_pin(CID_A, "photos")))
                .collect::<Vec<_>>(),
            "",
        ),
    )]);
    let runs: Vec<Vec<String>> = vec![
        vec!["completion".into(), "bash".into()],
        vec!["commands".into()],
        vec!["--host".into(), stub.host(), "pin".into(), "ls".into()],
    ];
    for args in runs {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ipfs-cluster-ctl"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run ipfs-cluster-ctl");
        // The reader leaves before the first byte, as `head -c0` would.
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("wait for ipfs-cluster-ctl");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
        assert_eq!(stderr(&output), "", "{args:?}");
    }
}

#[test]
fn add_prints_like_go_when_buffered_quieter_or_empty() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, b"hello").unwrap();
    let file = file.to_str().unwrap().to_string();
    let line =
        |name: &str, cid: &str| format!(r#"{{"name":"{name}","cid":"{cid}","bytes":0,"size":5,"allocations":[]}}"#);
    let lines = [line("a.txt", CID_B), line("", CID_A)];
    let stub = Stub::start(vec![("POST /add".into(), stream(&lines, ""))]);

    // --no-stream: one JSON array at the end; with -Q it holds only the root.
    let all = stub.ctl(&["--enc", "json", "add", "--no-stream", &file]);
    assert_eq!(all.status.code(), Some(0), "{}", stderr(&all));
    let all: serde_json::Value = serde_json::from_str(&stdout(&all)).unwrap();
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    let root = stub.ctl(&["--enc", "json", "add", "--no-stream", "-Q", &file]);
    let root: serde_json::Value = serde_json::from_str(&stdout(&root)).unwrap();
    assert_eq!(root.as_array().map(Vec::len), Some(1), "{root}");
    assert_eq!(root[0]["cid"], CID_A);
    // -Q streamed: only the root's CID.
    let quieter = stub.ctl(&["add", "-Q", &file]);
    assert_eq!(stdout(&quieter), format!("{CID_A}\n"));

    // Nothing added, nothing printed (not even an empty array).
    let empty = Stub::start(vec![("POST /add".into(), stream(&[], ""))]);
    let nothing = empty.ctl(&["--enc", "json", "add", "--no-stream", &file]);
    assert_eq!((nothing.status.code(), stdout(&nothing)), (Some(0), String::new()));

    // Go's footgun check: one CAR file, never wrapped; nothing is sent.
    let sent_before = stub.requests().len();
    let car = stub.ctl(&["add", "--format", "car", &file, &file]);
    assert_eq!(car.status.code(), Some(1));
    assert!(stderr(&car).contains("only a single CAR file"), "{}", stderr(&car));
    assert_eq!(stub.requests().len(), sent_before, "nothing was sent");
}

/// An add that fails after the server reported some entries prints none of them: nothing was
/// pinned, and "added <cid>" would say otherwise. On a terminal, the progress line is cleared
/// before the error is printed.
#[test]
fn a_failed_add_prints_no_added_line_and_ends_its_progress_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, b"hello").unwrap();
    let file = file.to_str().unwrap().to_string();
    let lines = [
        r#"{"name":"a.txt","bytes":262144,"size":0,"allocations":[]}"#.to_string(),
        format!(r#"{{"name":"a.txt","cid":"{CID_B}","bytes":0,"size":5,"allocations":[]}}"#),
    ];
    let stub = Stub::start(vec![(
        "POST /add".into(),
        stream(&lines, "storing blocks on a member: no space left"),
    )]);
    let output = stub.ctl(&["add", &file]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(!text.contains("added"), "{text}");
    assert!(text.contains("no space left"), "{text}");

    // Under a pseudo-terminal (util-linux `script`), the progress line is cleared first.
    let command = format!(
        "{} --host {} add {file}",
        env!("CARGO_BIN_EXE_ipfs-cluster-ctl"),
        stub.host()
    );
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("run script");
    let screen = stdout(&output);
    let progress = screen
        .find("a.txt: ")
        .unwrap_or_else(|| panic!("a progress line: {screen:?}"));
    let cleared = screen[progress..].find("\r\u{1b}[K").map(|at| progress + at);
    let error = screen.find("no space left").expect("the error");
    assert!(
        cleared.is_some_and(|cleared| cleared < error),
        "the progress line is cleared before the error: {screen:?}"
    );
    assert!(!screen.contains("added"), "{screen:?}");
}
