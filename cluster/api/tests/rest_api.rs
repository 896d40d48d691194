//! End-to-end tests of the REST server: a mock [`RestBackend`] behind a real listener on 127.0.0.1,
//! driven by a hyper HTTP/1.1 client. Covers every route's status and JSON shape, input validation
//! (the mock proves a rejected request never reaches the backend), NDJSON streaming with the
//! `X-Stream-Error` trailer, redirects, 404/405 and graceful shutdown.
#![cfg(not(madsim))]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cluster_api::{
    CorsConfig, Credentials, HttpAddress, PageStream, RestBackend, RestServer, RestServerConfig, ResultStream,
    TunnelConnection,
};
use cluster_rt::tokio;
use cluster_types::{
    Alert, Bandwidth, Cid, ClusterError, ConnectGraph, GlobalPinInfo, GlobalRepoGc, Id, IpfsId, JsonLine, LineItem,
    Metric, PeerId, Pin, PinInfoShort, PinOptions, RepoGc, RepoGcKey, Timestamp, TrackerStatus, TrackerStatusFilter,
    WrittenLines, RPC_PROTOCOL_VERSION, VERSION,
};
use http_body_util::{BodyExt, Empty};
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

const DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Mock backend

/// What the mock's streaming methods produce.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// `n` good items.
    Items(usize),
    /// An error before any item.
    ErrorFirst,
    /// `before` items, an error, `after` items.
    ErrorMid { before: usize, after: usize },
}

struct Mock {
    calls: Mutex<Vec<String>>,
    pins: Mutex<BTreeMap<String, Pin>>,
    /// Returned (once) by the next non-streaming call that can fail.
    fail: Mutex<Option<ClusterError>>,
    plan: Mutex<Plan>,
    /// When set, `peers` hands out this receiver instead of following `plan`.
    manual_peers: Mutex<Option<ResultStream<Id>>>,
}

impl Mock {
    fn new() -> Arc<Mock> {
        Arc::new(Mock {
            calls: Mutex::new(Vec::new()),
            pins: Mutex::new(BTreeMap::new()),
            fail: Mutex::new(None),
            plan: Mutex::new(Plan::Items(0)),
            manual_peers: Mutex::new(None),
        })
    }

    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn set_plan(&self, plan: Plan) {
        *self.plan.lock().unwrap() = plan;
    }

    fn fail_next(&self, error: ClusterError) {
        *self.fail.lock().unwrap() = Some(error);
    }

    fn take_failure(&self) -> Result<(), ClusterError> {
        match self.fail.lock().unwrap().take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// A bounded stream following the current plan, fed by a task as the server reads it.
    fn stream<T: Send + 'static>(&self, make: fn(usize) -> T) -> ResultStream<T> {
        let plan = *self.plan.lock().unwrap();
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            let (before, error, after) = match plan {
                Plan::Items(n) => (n, false, 0),
                Plan::ErrorFirst => (0, true, 0),
                Plan::ErrorMid { before, after } => (before, true, after),
            };
            for i in 0..before {
                if tx.send(Ok(make(i))).await.is_err() {
                    return;
                }
            }
            if error && tx.send(Err(ClusterError::Internal("boom".into()))).await.is_err() {
                return;
            }
            for i in before..before + after {
                if tx.send(Ok(make(i))).await.is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// [`Self::stream`] in pages: an empty one first, then pages of up to [`PAGE`] items.
    fn pages<T: Send + 'static>(&self, make: fn(usize) -> T) -> PageStream<T> {
        const PAGE: usize = 2;
        let mut items = self.stream(make);
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            if tx.send(Ok(Vec::new())).await.is_err() {
                return;
            }
            let mut page = Vec::new();
            while let Some(item) = items.recv().await {
                let full = match item {
                    Ok(item) => {
                        page.push(item);
                        page.len() == PAGE
                    }
                    Err(error) => {
                        if !page.is_empty() && tx.send(Ok(std::mem::take(&mut page))).await.is_err() {
                            return;
                        }
                        if tx.send(Err(error)).await.is_err() {
                            return;
                        }
                        false
                    }
                };
                if full && tx.send(Ok(std::mem::take(&mut page))).await.is_err() {
                    return;
                }
            }
            if !page.is_empty() {
                let _ = tx.send(Ok(page)).await;
            }
        });
        rx
    }
}

fn cid(i: usize) -> Cid {
    Cid::raw_sha256(&i.to_le_bytes())
}

fn peer(i: usize) -> PeerId {
    PeerId::from_ed25519_seed([i as u8 + 1; 32])
}

fn make_id(i: usize) -> Id {
    Id {
        id: peer(i),
        addresses: vec![],
        cluster_peers: vec![peer(0)],
        cluster_peers_addresses: vec![],
        version: VERSION.into(),
        commit: String::new(),
        rpc_protocol_version: RPC_PROTOCOL_VERSION.into(),
        error: String::new(),
        ipfs: IpfsId::default(),
        peername: format!("peer{i}"),
    }
}

fn make_metric(name: &str, i: usize) -> Metric {
    Metric {
        name: name.to_string(),
        peer: peer(i),
        value: format!("{}", 1000 * (i + 1)),
        expire: 1_700_000_030_000_000_000,
        valid: true,
        weight: 1000 * (i as i64 + 1),
        partitionable: false,
        received_at: 1_700_000_000_000_000_000,
    }
}

fn make_pin(i: usize) -> Pin {
    Pin::new(cid(i), PinOptions::default())
}

/// Every other status comes as a run of one line already written, as a cluster-wide status's do.
fn make_status_item(i: usize) -> LineItem<GlobalPinInfo> {
    if i.is_multiple_of(2) {
        return LineItem::Value(make_global(i));
    }
    let mut lines = WrittenLines::default();
    lines.push_with(|out| make_global(i).write_json(out)).unwrap();
    LineItem::Written(lines)
}

fn make_global(i: usize) -> GlobalPinInfo {
    let mut peer_map = BTreeMap::new();
    peer_map.insert(
        peer(0).to_string(),
        PinInfoShort {
            peername: "peer0".into(),
            status: TrackerStatus::Pinned,
            ..Default::default()
        },
    );
    GlobalPinInfo {
        cid: cid(i),
        name: format!("pin{i}"),
        allocations: vec![],
        origins: vec![],
        created: Timestamp::ZERO,
        metadata: BTreeMap::new(),
        peer_map,
    }
}

#[async_trait::async_trait]
impl RestBackend for Mock {
    async fn health(&self) -> Result<(), String> {
        self.take_failure().map_err(|e| e.to_string())
    }

    async fn id(&self) -> Id {
        self.record("id".into());
        make_id(0)
    }

    async fn metric_names(&self) -> Vec<String> {
        self.record("metric_names".into());
        vec!["freespace".into(), "ping".into()]
    }

    async fn metrics(&self, name: String) -> Vec<Metric> {
        self.record(format!("metrics {name}"));
        vec![make_metric(&name, 0), make_metric(&name, 1)]
    }

    async fn alerts(&self) -> Vec<Alert> {
        self.record("alerts".into());
        vec![Alert {
            metric: make_metric("ping", 2),
            triggered_at: Timestamp::from_unix(1_700_000_000, 0),
        }]
    }

    async fn connect_graph(&self) -> Result<ConnectGraph, ClusterError> {
        self.record("graph".into());
        self.take_failure()?;
        Ok(ConnectGraph {
            cluster_id: peer(0),
            id_to_peername: BTreeMap::from([(peer(0).to_string(), "a".into())]),
            ipfs_links: BTreeMap::from([("ipfs-0".into(), vec!["ipfs-1".into()])]),
            cluster_links: BTreeMap::from([(peer(0).to_string(), vec![peer(1)])]),
            cluster_trust_links: BTreeMap::from([(peer(0).to_string(), true)]),
            cluster_to_ipfs: BTreeMap::from([(peer(0).to_string(), "ipfs-0".into())]),
        })
    }

    async fn bandwidth(&self) -> BTreeMap<String, Bandwidth> {
        self.record("bandwidth".into());
        BTreeMap::from([(
            "/ipfscluster/1.0/rpc".into(),
            Bandwidth {
                total_in: 10,
                total_out: 20,
                rate_in: 1.5,
                rate_out: 2.5,
            },
        )])
    }

    async fn repo_gc(&self, local: bool) -> Result<GlobalRepoGc, ClusterError> {
        self.record(format!("repo_gc local={local}"));
        self.take_failure()?;
        Ok(GlobalRepoGc {
            peer_map: BTreeMap::from([(
                peer(0).to_string(),
                RepoGc {
                    peer: peer(0),
                    peername: "a".into(),
                    keys: vec![RepoGcKey {
                        key: Some(cid(3)),
                        error: String::new(),
                    }],
                    error: String::new(),
                },
            )]),
        })
    }

    async fn peers(&self) -> ResultStream<Id> {
        self.record("peers".into());
        if let Some(rx) = self.manual_peers.lock().unwrap().take() {
            return rx;
        }
        self.stream(make_id)
    }

    async fn pin(&self, cid: Cid, options: PinOptions) -> Result<Pin, ClusterError> {
        self.record(format!(
            "pin {cid} name={} rmin={}",
            options.name, options.replication_factor_min
        ));
        self.take_failure()?;
        let mut pin = Pin::new(cid, options);
        pin.timestamp = Timestamp::from_unix(1_700_000_000, 0);
        self.pins.lock().unwrap().insert(cid.to_string(), pin.clone());
        Ok(pin)
    }

    async fn pin_path(&self, path: String, options: PinOptions) -> Result<Pin, ClusterError> {
        self.record(format!("pin_path {path} name={}", options.name));
        self.take_failure()?;
        let cid = path
            .strip_prefix("/ipfs/")
            .and_then(|rest| rest.parse::<Cid>().ok())
            .ok_or_else(|| ClusterError::Ipfs(format!("cannot resolve {path}")))?;
        let pin = Pin::new(cid, options);
        self.pins.lock().unwrap().insert(cid.to_string(), pin.clone());
        Ok(pin)
    }

    async fn unpin(&self, cid: Cid) -> Result<Pin, ClusterError> {
        self.record(format!("unpin {cid}"));
        self.take_failure()?;
        self.pins
            .lock()
            .unwrap()
            .remove(&cid.to_string())
            .ok_or(ClusterError::NotFound)
    }

    async fn unpin_path(&self, path: String) -> Result<Pin, ClusterError> {
        self.record(format!("unpin_path {path}"));
        self.take_failure()?;
        let key = path.strip_prefix("/ipfs/").unwrap_or(&path).to_string();
        self.pins.lock().unwrap().remove(&key).ok_or(ClusterError::NotFound)
    }

    async fn allocations(&self, type_mask: u32) -> PageStream<Pin> {
        self.record(format!("allocations {type_mask}"));
        self.pages(make_pin)
    }

    async fn allocation(&self, cid: Cid) -> Result<Pin, ClusterError> {
        self.record(format!("allocation {cid}"));
        self.take_failure()?;
        self.pins
            .lock()
            .unwrap()
            .get(&cid.to_string())
            .cloned()
            .ok_or(ClusterError::NotFound)
    }

    async fn status(&self, cid: Cid, local: bool) -> Result<GlobalPinInfo, ClusterError> {
        self.record(format!("status {cid} local={local}"));
        self.take_failure()?;
        let mut info = make_global(0);
        info.cid = cid;
        Ok(info)
    }

    async fn status_all(
        &self,
        filter: TrackerStatusFilter,
        cids: Vec<Cid>,
        local: bool,
    ) -> ResultStream<LineItem<GlobalPinInfo>> {
        let cids: Vec<String> = cids.iter().map(|c| c.to_string()).collect();
        self.record(format!(
            "status_all filter={} cids={} local={local}",
            filter.0,
            cids.join(",")
        ));
        self.stream(make_status_item)
    }

    async fn recover(&self, cid: Cid, local: bool) -> Result<GlobalPinInfo, ClusterError> {
        self.record(format!("recover {cid} local={local}"));
        self.take_failure()?;
        let mut info = make_global(0);
        info.cid = cid;
        Ok(info)
    }

    async fn recover_all(&self, local: bool) -> ResultStream<GlobalPinInfo> {
        self.record(format!("recover_all local={local}"));
        self.stream(make_global)
    }
}

// ---------------------------------------------------------------------------------------------
// Server and client helpers

struct Running {
    addr: SocketAddr,
    mock: Arc<Mock>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task did not panic");
    }
}

fn start() -> Running {
    start_with(RestServerConfig {
        listen: vec![HttpAddress::Tcp("127.0.0.1:0".into())],
        headers: vec![
            ("X-Custom".into(), "yes".into()),
            ("Access-Control-Allow-Origin".into(), "*".into()),
        ],
        ..RestServerConfig::default()
    })
}

fn start_with(config: RestServerConfig) -> Running {
    let mock = Mock::new();
    let server = RestServer::bind(config, mock.clone()).expect("bind");
    let addr = server.local_addr().expect("a TCP listener");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        mock,
        shutdown: Some(tx),
        task,
    }
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("bad JSON {:?}: {e}", self.body))
    }

    fn lines(&self) -> Vec<Value> {
        let text = std::str::from_utf8(&self.body).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "NDJSON ends with a newline: {text:?}"
        );
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts a JSON error body with this status and returns its message.
    fn error(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        let body = self.json();
        assert_eq!(body["code"], status, "{body}");
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        body["message"].as_str().unwrap().to_string()
    }
}

async fn connect(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

fn build(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    let mut builder = Request::builder().method(method).uri(uri).header("host", "127.0.0.1");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Empty::new()).unwrap()
}

/// Sends one request; `Err` when the response body fails (e.g. the connection is cut mid-body).
async fn try_send(
    addr: SocketAddr,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, hyper::Error> {
    let mut sender = connect(addr).await;
    tokio::time::timeout(DEADLINE, async {
        let response = sender.send_request(build(method, uri, headers)).await?;
        let (parts, body) = response.into_parts();
        let collected = body.collect().await?;
        let trailers = collected.trailers().cloned();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body: collected.to_bytes(),
            trailers,
        })
    })
    .await
    .expect("request deadline")
}

async fn send(addr: SocketAddr, method: Method, uri: &str) -> Reply {
    try_send(addr, method, uri, &[]).await.expect("response")
}

async fn send_te(addr: SocketAddr, method: Method, uri: &str) -> Reply {
    try_send(addr, method, uri, &[("te", "trailers")])
        .await
        .expect("response")
}

fn stream_error_trailer(reply: &Reply) -> Vec<String> {
    let trailers = reply.trailers.as_ref().expect("trailers received");
    trailers
        .get_all("x-stream-error")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn id_version_health_and_common_headers() {
    let server = start();
    let reply = send(server.addr, Method::GET, "/id").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-custom"), Some("yes"));
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    let id = reply.json();
    assert_eq!(id["id"], peer(0).to_string());
    assert_eq!(id["rpc_protocol_version"], RPC_PROTOCOL_VERSION);
    assert!(
        reply.body.ends_with(b"}\n"),
        "JSON then newline, like Go's json.Encoder"
    );

    let reply = send(server.addr, Method::GET, "/version").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), serde_json::json!({ "version": VERSION }));

    let reply = send(server.addr, Method::GET, "/health").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("x-custom"), Some("yes"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(server.mock.calls(), vec!["id"]);

    // A member that cannot work says so, and why.
    server.mock.fail_next(ClusterError::Fatal("raft stopped".into()));
    let reply = send(server.addr, Method::GET, "/health").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.json(),
        serde_json::json!({"code": 503, "message": "this member cannot serve requests: raft stopped"})
    );
    server.stop().await;
}

#[tokio::test]
async fn pin_status_allocation_unpin_by_cid() {
    let server = start();
    let c = cid(7);
    let reply = send(
        server.addr,
        Method::POST,
        &format!("/pins/{c}?name=hello%20world&replication=2"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let pin = reply.json();
    assert_eq!(pin["cid"], c.to_string());
    assert_eq!(pin["name"], "hello world");
    assert_eq!(pin["replication_factor_min"], 2);
    assert_eq!(pin["type"], "pin");
    // serde_json's Value sorts keys, so check the order on the raw bytes.
    assert!(
        reply.body.starts_with(b"{\"replication_factor_min\":2,"),
        "PinOptions fields come first"
    );

    let reply = send(server.addr, Method::GET, &format!("/allocations/{c}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["cid"], c.to_string());

    let reply = send(server.addr, Method::GET, &format!("/pins/{c}?local=true")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let info = reply.json();
    assert_eq!(info["cid"], c.to_string());
    assert_eq!(info["peer_map"][peer(0).to_string()]["status"], "pinned");

    let reply = send(server.addr, Method::POST, &format!("/pins/{c}/recover?local=true")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["cid"], c.to_string());

    let reply = send(server.addr, Method::DELETE, &format!("/pins/{c}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["cid"], c.to_string());

    // Gone now: the backend's NotFound is a 404 with Go's message.
    let reply = send(server.addr, Method::DELETE, &format!("/pins/{c}")).await;
    assert_eq!(reply.error(404), "pin is not part of the pinset");
    let reply = send(server.addr, Method::GET, &format!("/allocations/{c}")).await;
    assert_eq!(reply.error(404), "pin is not part of the pinset");

    assert_eq!(
        server.mock.calls(),
        vec![
            format!("pin {c} name=hello world rmin=2"),
            format!("allocation {c}"),
            format!("status {c} local=true"),
            format!("recover {c} local=true"),
            format!("unpin {c}"),
            format!("unpin {c}"),
            format!("allocation {c}"),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn pin_and_unpin_by_path() {
    let server = start();
    let c = cid(3);
    // What ipfs-cluster-ctl sends for `pin add <cid>`.
    let reply = send(
        server.addr,
        Method::POST,
        &format!("/pins/ipfs/{c}?name=p&mode=recursive"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json()["cid"], c.to_string());
    assert_eq!(reply.json()["name"], "p");

    let reply = send(server.addr, Method::DELETE, &format!("/pins/ipfs/{c}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["cid"], c.to_string());

    // Deeper and other key types reach the backend as full paths, percent-decoded.
    let reply = send(server.addr, Method::POST, "/pins/ipns/my%20site.example/sub/dir").await;
    assert_eq!(reply.error(500), "cannot resolve /ipns/my site.example/sub/dir");
    let reply = send(server.addr, Method::DELETE, "/pins/ipld/abc").await;
    assert_eq!(reply.error(404), "pin is not part of the pinset");

    assert_eq!(
        server.mock.calls(),
        vec![
            format!("pin_path /ipfs/{c} name=p"),
            format!("unpin_path /ipfs/{c}"),
            "pin_path /ipns/my site.example/sub/dir name=".to_string(),
            "unpin_path /ipld/abc".to_string(),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_input_is_400_and_never_reaches_the_backend() {
    let server = start();
    let c = cid(1);
    let cases: Vec<(Method, String, &str)> = vec![
        (Method::POST, "/pins/notacid".into(), "error decoding Cid: "),
        (Method::GET, "/pins/notacid".into(), "error decoding Cid: "),
        (Method::DELETE, "/pins/notacid".into(), "error decoding Cid: "),
        (Method::GET, "/allocations/notacid".into(), "error decoding Cid: "),
        (Method::POST, "/pins/notacid/recover".into(), "error decoding Cid: "),
        (
            Method::POST,
            format!("/pins/{c}?replication-min=abc"),
            "parameter replication-min invalid",
        ),
        (
            Method::POST,
            format!("/pins/{c}?expire-in=0s"),
            "expire-in must be at least 1s",
        ),
        (
            Method::POST,
            format!("/pins/{c}?user-allocations=nope"),
            "error decoding user-allocations",
        ),
        (
            Method::POST,
            format!("/pins/ipfs/{c}?shard-size=-1"),
            "parameter shard-size invalid",
        ),
        (
            Method::DELETE,
            format!("/pins/{c}?expire-at=yesterday"),
            "expire-at is not a valid RFC3339 time",
        ),
        (Method::GET, "/pins?filter=bogus".into(), "invalid filter value"),
        (Method::GET, format!("/pins?cids={c},bad"), "error decoding Cid: "),
        (Method::GET, "/allocations?filter=bogus".into(), "invalid filter value"),
        (Method::GET, "/pins/%FF".into(), "error parsing path"),
    ];
    for (method, uri, want) in cases {
        let reply = send(server.addr, method.clone(), &uri).await;
        let message = reply.error(400);
        assert!(
            message.starts_with(want),
            "{method} {uri}: {message:?} should start with {want:?}"
        );
        assert_eq!(reply.header("x-custom"), Some("yes"));
    }
    assert!(server.mock.calls().is_empty(), "{:?}", server.mock.calls());
    server.stop().await;
}

#[tokio::test]
async fn backend_errors_map_to_their_status() {
    let server = start();
    let c = cid(2);
    server.mock.fail_next(ClusterError::Internal("disk on fire".into()));
    let reply = send(server.addr, Method::POST, &format!("/pins/{c}")).await;
    assert_eq!(reply.error(500), "disk on fire");
    server
        .mock
        .fail_next(ClusterError::InvalidArgument("bad replication".into()));
    let reply = send(server.addr, Method::POST, &format!("/pins/{c}")).await;
    // Go answers every backend error but "not found" with 500, refusals included; a request
    // that is wrong in itself is the client's error here: 400.
    assert_eq!(reply.error(400), "bad replication");
    server.mock.fail_next(ClusterError::NotFound);
    let reply = send(server.addr, Method::GET, &format!("/pins/{c}")).await;
    assert_eq!(reply.error(404), "pin is not part of the pinset");
    server.stop().await;
}

/// A huge peer id or CID in the URL is refused by its length, before any decoding, and the
/// error does not echo it back whole.
#[tokio::test]
async fn overlong_peer_ids_and_cids_are_refused_by_length() {
    let server = start();
    // Within max_header_bytes (4096), so the handler sees them and refuses them by length.
    let long = "1".repeat(3_000);
    let reply = send(server.addr, Method::DELETE, &format!("/peers/{long}")).await;
    let message = reply.error(400);
    assert!(message.contains("too long: 3000 characters"), "{message}");
    assert!(reply.body.len() < 1000, "{} bytes", reply.body.len());
    let reply = send(server.addr, Method::POST, &format!("/pins/z{long}")).await;
    let message = reply.error(400);
    assert!(message.contains("too long"), "{message}");
    assert!(reply.body.len() < 1000, "{} bytes", reply.body.len());
    // Longer heads never reach it: 431, as Go answers past max_header_bytes.
    let longer = "1".repeat(60_000);
    let reply = send(server.addr, Method::DELETE, &format!("/peers/{longer}")).await;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "{reply:?}");
    server.stop().await;
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_trailing_slashes() {
    let server = start();
    for uri in ["/nope", "/", "/pins/a/b/c", "/id/extra", "/api/v0/id"] {
        let reply = send(server.addr, Method::GET, uri).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(
            reply.json(),
            serde_json::json!({"code": 404, "message": "not found"}),
            "{uri}"
        );
    }

    let c = cid(1);
    for (method, uri, allow) in [
        (Method::PUT, format!("/pins/{c}"), "GET, POST, DELETE"),
        (Method::GET, "/pins/recover".to_string(), "POST"),
        (Method::GET, format!("/pins/ipfs/{c}"), "POST, DELETE"),
        (Method::POST, "/id".to_string(), "GET"),
        (Method::DELETE, "/allocations".to_string(), "GET"),
        (Method::GET, format!("/pins/{c}/recover"), "POST"),
    ] {
        let reply = send(server.addr, method.clone(), &uri).await;
        assert_eq!(reply.error(405), "method not allowed", "{method} {uri}");
        assert_eq!(reply.header("allow"), Some(allow), "{method} {uri}");
    }

    let reply = send(server.addr, Method::GET, "/pins/?filter=pinned&local=true").await;
    assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(reply.header("location"), Some("/pins?filter=pinned&local=true"));
    let reply = send(server.addr, Method::POST, &format!("/pins/ipfs/{c}/")).await;
    assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(reply.header("location"), Some(format!("/pins/ipfs/{c}").as_str()));
    assert!(server.mock.calls().is_empty(), "{:?}", server.mock.calls());
    server.stop().await;
}

#[tokio::test]
async fn ndjson_streams_every_item_with_an_empty_trailer() {
    let server = start();
    server.mock.set_plan(Plan::Items(3));
    let c1 = cid(1);
    let c2 = cid(2);
    let reply = send_te(
        server.addr,
        Method::GET,
        &format!("/pins?filter=pinned,error&cids={c1}%2C{c2}&local=true"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("trailer"), Some("X-Stream-Error"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-custom"), Some("yes"));
    let lines = reply.lines();
    assert_eq!(lines.len(), 3);
    for (i, line) in lines.iter().enumerate() {
        let info: GlobalPinInfo = serde_json::from_value(line.clone()).unwrap();
        assert_eq!(info, make_global(i));
    }
    assert_eq!(stream_error_trailer(&reply), vec![String::new()]);

    // Three pages after an empty one, the last one short.
    server.mock.set_plan(Plan::Items(5));
    let reply = send_te(server.addr, Method::GET, "/allocations?filter=pin,shard-pin").await;
    assert_eq!(reply.status, StatusCode::OK);
    let pins: Vec<Pin> = reply
        .lines()
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    assert_eq!(pins, (0..5).map(make_pin).collect::<Vec<_>>());

    server.mock.set_plan(Plan::Items(4));
    let reply = send_te(server.addr, Method::GET, "/peers").await;
    assert_eq!(reply.status, StatusCode::OK);
    let ids: Vec<Id> = reply
        .lines()
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    assert_eq!(ids, (0..4).map(make_id).collect::<Vec<_>>());

    server.mock.set_plan(Plan::Items(2));
    let reply = send(server.addr, Method::POST, "/pins/recover?local=true").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.lines().len(), 2);
    // Go sends the trailer to every client, empty when all went well; so do we.
    assert_eq!(stream_error_trailer(&reply), vec![String::new()]);

    let filter = TrackerStatusFilter::parse("pinned,error").unwrap().0;
    assert_eq!(
        server.mock.calls(),
        vec![
            format!("status_all filter={filter} cids={c1},{c2} local=true"),
            "allocations 18".to_string(),
            "peers".to_string(),
            "recover_all local=true".to_string(),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn empty_stream_is_204_and_error_first_is_500() {
    let server = start();
    server.mock.set_plan(Plan::Items(0));
    for (method, uri) in [
        (Method::GET, "/pins"),
        (Method::GET, "/allocations"),
        (Method::GET, "/peers"),
        (Method::POST, "/pins/recover"),
    ] {
        let reply = send_te(server.addr, method.clone(), uri).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{method} {uri}");
        assert!(reply.body.is_empty(), "{method} {uri}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }

    server.mock.set_plan(Plan::ErrorFirst);
    for (method, uri) in [
        (Method::GET, "/pins"),
        (Method::GET, "/allocations?filter=all"),
        (Method::GET, "/peers"),
        (Method::POST, "/pins/recover"),
    ] {
        let reply = send_te(server.addr, method.clone(), uri).await;
        assert_eq!(reply.error(500), "boom", "{method} {uri}");
        assert_eq!(reply.header("trailer"), Some("X-Stream-Error"));
    }
    server.stop().await;
}

/// Statuses sent as values and as runs of lines written ahead make the same NDJSON.
#[tokio::test]
async fn statuses_written_ahead_stream_as_their_values_would() {
    let server = start();
    server.mock.set_plan(Plan::Items(5));
    let reply = send_te(server.addr, Method::GET, "/pins").await;
    assert_eq!(reply.status, StatusCode::OK);
    let got: Vec<GlobalPinInfo> = reply
        .lines()
        .into_iter()
        .map(|line| serde_json::from_value(line).unwrap())
        .collect();
    assert_eq!(got, (0..5).map(make_global).collect::<Vec<_>>());
    server.stop().await;
}

#[tokio::test]
async fn mid_stream_error_goes_to_the_trailer() {
    let server = start();
    server.mock.set_plan(Plan::ErrorMid { before: 2, after: 1 });
    let reply = send_te(server.addr, Method::GET, "/allocations").await;
    assert_eq!(reply.status, StatusCode::OK);
    // Items after the error still arrive; the error is reported at the end.
    assert_eq!(reply.lines().len(), 3);
    assert_eq!(stream_error_trailer(&reply), vec!["boom".to_string()]);

    // `te` with several tokens, any case.
    let reply = try_send(server.addr, Method::GET, "/pins", &[("te", "deflate, Trailers")])
        .await
        .unwrap();
    assert_eq!(stream_error_trailer(&reply), vec!["boom".to_string()]);
    server.stop().await;
}

#[tokio::test]
async fn mid_stream_error_reaches_clients_that_did_not_ask_for_trailers() {
    let server = start();
    server.mock.set_plan(Plan::ErrorMid { before: 2, after: 0 });
    let reply = send(server.addr, Method::GET, "/pins").await;
    assert_eq!(reply.lines().len(), 2);
    assert_eq!(stream_error_trailer(&reply), vec!["boom".to_string()]);

    // A clean stream without TE ends normally, with the empty trailer.
    server.mock.set_plan(Plan::Items(2));
    let reply = send(server.addr, Method::GET, "/pins").await;
    assert_eq!(reply.lines().len(), 2);
    assert_eq!(stream_error_trailer(&reply), vec![String::new()]);
    server.stop().await;
}

/// Where the request framing cannot be followed (a chunked request body earlier on the
/// connection), the old guarantee holds: a failed stream is cut, never cleanly truncated.
#[tokio::test]
async fn after_a_chunked_request_a_failed_stream_is_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start();
    server.mock.set_plan(Plan::ErrorMid { before: 1, after: 0 });
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let first = format!(
        "POST /pins/{} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        cid(1)
    );
    stream.write_all(first.as_bytes()).await.unwrap();
    stream
        .write_all(b"GET /pins HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut all)).await;
    let text = String::from_utf8_lossy(&all);
    // The second response never ends with the final zero-length chunk.
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    assert!(!text.contains("x-stream-error: boom"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn stream_items_are_sent_as_produced() {
    let server = start();
    let (tx, rx) = mpsc::channel(1);
    *server.mock.manual_peers.lock().unwrap() = Some(rx);
    tx.send(Ok(make_id(0))).await.unwrap();

    let mut sender = connect(server.addr).await;
    let response = tokio::time::timeout(
        DEADLINE,
        sender.send_request(build(Method::GET, "/peers", &[("te", "trailers")])),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    // The first line arrives while the backend's stream is still open.
    let frame = tokio::time::timeout(DEADLINE, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first: Id = serde_json::from_slice(frame.data_ref().unwrap()).unwrap();
    assert_eq!(first, make_id(0));

    tx.send(Ok(make_id(1))).await.unwrap();
    let frame = tokio::time::timeout(DEADLINE, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let second: Id = serde_json::from_slice(frame.data_ref().unwrap()).unwrap();
    assert_eq!(second, make_id(1));

    tx.send(Err(ClusterError::Timeout("peer X did not answer".into())))
        .await
        .unwrap();
    drop(tx);
    let rest = tokio::time::timeout(DEADLINE, body.collect()).await.unwrap().unwrap();
    let trailers = rest.trailers().cloned().expect("trailers");
    assert!(rest.to_bytes().is_empty());
    assert_eq!(trailers.get("x-stream-error").unwrap(), "peer X did not answer");
    server.stop().await;
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let server = start();
    let mut sender = connect(server.addr).await;
    for uri in ["/version", "/health", "/nope", "/id"] {
        sender.ready().await.unwrap();
        let response = tokio::time::timeout(DEADLINE, sender.send_request(build(Method::GET, uri, &[])))
            .await
            .unwrap()
            .unwrap();
        response.into_body().collect().await.unwrap();
    }
    assert_eq!(server.mock.calls(), vec!["id"]);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_streams_finish_then_stops_accepting() {
    let server = start();
    let (tx, rx) = mpsc::channel(1);
    *server.mock.manual_peers.lock().unwrap() = Some(rx);
    tx.send(Ok(make_id(0))).await.unwrap();

    let mut sender = connect(server.addr).await;
    let response = tokio::time::timeout(DEADLINE, sender.send_request(build(Method::GET, "/peers", &[])))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let addr = server.addr;
    let stopping = tokio::spawn(server.stop());

    // The response in flight still completes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!stopping.is_finished(), "serve waits for the stream in flight");
    tx.send(Ok(make_id(1))).await.unwrap();
    drop(tx);
    let body = tokio::time::timeout(DEADLINE, response.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(body.iter().filter(|b| **b == b'\n').count(), 2);
    tokio::time::timeout(DEADLINE, stopping).await.unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[tokio::test]
async fn invalid_configured_header_fails_bind() {
    let config = RestServerConfig {
        listen: vec![HttpAddress::Tcp("127.0.0.1:0".into())],
        headers: vec![("Bad Header".into(), "x".into())],
        ..RestServerConfig::default()
    };
    let error = RestServer::bind(config, Mock::new()).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(
        RestServerConfig::default().listen,
        vec![HttpAddress::Tcp("127.0.0.1:9094".into())]
    );
}

#[tokio::test]
async fn shutdown_is_bounded_when_a_stream_never_ends() {
    let server = start();
    let (tx, rx) = mpsc::channel(1);
    *server.mock.manual_peers.lock().unwrap() = Some(rx);
    tx.send(Ok(make_id(0))).await.unwrap();
    let mut sender = connect(server.addr).await;
    let response = tokio::time::timeout(DEADLINE, sender.send_request(build(Method::GET, "/peers", &[])))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let started = std::time::Instant::now();
    // `tx` stays open: the stream would run forever.
    server.stop().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(8),
        "took {took:?}"
    );
    // The client sees the connection closed mid-body.
    assert!(tokio::time::timeout(DEADLINE, response.into_body().collect())
        .await
        .unwrap()
        .is_err());
    drop(tx);
}

#[tokio::test]
async fn monitor_and_health_routes_have_go_shapes() {
    let server = start();
    let reply = send(server.addr, Method::GET, "/monitor/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), serde_json::json!(["freespace", "ping"]));

    let reply = send(server.addr, Method::GET, "/monitor/metrics/freespace").await;
    assert_eq!(reply.status, StatusCode::OK);
    let metrics = reply.json();
    assert_eq!(metrics.as_array().unwrap().len(), 2);
    // Go's field order, checked on the raw text (serde_json's Value sorts keys).
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    let first = &text[..text.find('}').unwrap()];
    let positions: Vec<usize> = [
        "name",
        "peer",
        "value",
        "expire",
        "valid",
        "weight",
        "partitionable",
        "received_at",
    ]
    .iter()
    .map(|k| {
        first
            .find(&format!("\"{k}\":"))
            .unwrap_or_else(|| panic!("{k} missing in {first}"))
    })
    .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "field order of {first}");
    assert_eq!(metrics[0]["expire"], 1_700_000_030_000_000_000i64);

    let reply = send(server.addr, Method::GET, "/health/alerts").await;
    assert_eq!(reply.status, StatusCode::OK);
    let alert = &reply.json()[0];
    assert_eq!(alert["name"], "ping");
    assert!(alert["triggered_at"].as_str().unwrap().starts_with("2023-11-14T"));

    let reply = send(server.addr, Method::GET, "/health/graph").await;
    assert_eq!(reply.status, StatusCode::OK);
    let graph = reply.json();
    assert_eq!(graph["cluster_id"], peer(0).to_string());
    assert_eq!(graph["cluster_links"][peer(0).to_string()][0], peer(1).to_string());
    assert_eq!(graph["cluster_to_ipfs"][peer(0).to_string()], "ipfs-0");
    assert_eq!(graph["ipfs_links"]["ipfs-0"][0], "ipfs-1");

    let reply = send(server.addr, Method::GET, "/health/bandwidth").await;
    assert_eq!(
        reply.json(),
        serde_json::json!({"/ipfscluster/1.0/rpc": {"total_in": 10, "total_out": 20, "rate_in": 1.5, "rate_out": 2.5}})
    );

    let reply = send(server.addr, Method::POST, "/ipfs/gc?local=true").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json()["peer_map"][peer(0).to_string()]["keys"][0]["key"],
        cid(3).to_string()
    );
    let reply = send(server.addr, Method::GET, "/ipfs/gc").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    // Anything but exactly "true" is cluster-wide, as Go compares it.
    let reply = send(server.addr, Method::POST, "/ipfs/gc?local=True").await;
    assert_eq!(reply.status, StatusCode::OK);
    server.mock.fail_next(ClusterError::Internal("daemon gone".into()));
    let reply = send(server.addr, Method::POST, "/ipfs/gc").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.json()["message"], "daemon gone");

    assert_eq!(
        server.mock.calls(),
        vec![
            "metric_names",
            "metrics freespace",
            "alerts",
            "graph",
            "bandwidth",
            "repo_gc local=true",
            "repo_gc local=false",
            "repo_gc local=false"
        ]
    );
    server.stop().await;
}

fn with_auth() -> RestServerConfig {
    RestServerConfig {
        listen: vec![HttpAddress::Tcp("127.0.0.1:0".into())],
        credentials: Some(Credentials(BTreeMap::from([(
            "admin".to_string(),
            "s3cret".to_string(),
        )]))),
        ..RestServerConfig::default()
    }
}

fn basic(user_pass: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass))
}

#[tokio::test]
async fn basic_auth_guards_every_route_but_health_and_options() {
    let server = start_with(with_auth());
    let reply = send(server.addr, Method::GET, "/id").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.json(),
        serde_json::json!({"code": 401, "message": "unauthorized: no auth provided"})
    );
    let challenges: Vec<&str> = reply
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        challenges,
        [
            r#"Bearer realm="Restricted IPFS Cluster API""#,
            r#"Basic realm="Restricted IPFS Cluster API""#
        ]
    );

    let wrong = basic("admin:nope");
    let reply = try_send(server.addr, Method::GET, "/id", &[("authorization", &wrong)])
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["message"], "unauthorized: access denied");

    let good = basic("admin:s3cret");
    let reply = try_send(server.addr, Method::GET, "/id", &[("authorization", &good)])
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);

    // Open without credentials.
    assert_eq!(
        send(server.addr, Method::GET, "/health").await.status,
        StatusCode::NO_CONTENT
    );
    // Unknown routes are guarded too (no probing without credentials).
    assert_eq!(
        send(server.addr, Method::GET, "/nope").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.mock.calls(), vec!["id"]);
    server.stop().await;
}

#[tokio::test]
async fn token_from_basic_auth_works_as_bearer() {
    let server = start_with(with_auth());
    let good = basic("admin:s3cret");
    let reply = try_send(server.addr, Method::POST, "/token", &[("authorization", &good)])
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let token = reply.json()["token"].as_str().unwrap().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    let bearer = format!("Bearer {token}");
    let reply = try_send(server.addr, Method::GET, "/version", &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);

    let reply = try_send(
        server.addr,
        Method::GET,
        "/version",
        &[("authorization", "Bearer e30.e30.AAAA")],
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["message"], "unauthorized: invalid token");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer realm="Restricted IPFS Cluster API", error="invalid_token""#)
    );
    server.stop().await;

    // Without configured credentials there is nothing to issue tokens for.
    let open = start();
    let reply = send(open.addr, Method::POST, "/token").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["message"], "unauthorized");
    open.stop().await;
}

#[tokio::test]
async fn cors_preflight_and_exposed_headers() {
    let mut config = with_auth();
    config.cors = CorsConfig {
        allowed_methods: vec!["GET".into(), "POST".into()],
        allowed_headers: vec!["Authorization".into()],
        max_age: Duration::from_secs(60),
        ..CorsConfig::default()
    };
    let server = start_with(config);
    // Preflights carry no credentials and are answered before authentication.
    let reply = try_send(
        server.addr,
        Method::OPTIONS,
        "/pins/abc",
        &[
            ("origin", "https://ui.example"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "authorization"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert_eq!(reply.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(reply.header("access-control-allow-headers"), Some("authorization"));
    assert_eq!(reply.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(reply.header("access-control-max-age"), Some("60"));

    // A method that is not allowed gets no allow headers.
    let reply = try_send(
        server.addr,
        Method::OPTIONS,
        "/pins/abc",
        &[
            ("origin", "https://ui.example"),
            ("access-control-request-method", "DELETE"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(reply.header("access-control-allow-origin"), None);

    let good = basic("admin:s3cret");
    let reply = try_send(
        server.addr,
        Method::GET,
        "/version",
        &[("origin", "https://ui.example"), ("authorization", &good)],
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        reply.header("access-control-expose-headers"),
        Some("Content-Type, X-Stream-Output, X-Chunked-Output, X-Content-Length")
    );
    // Go authenticates before CORS: a 401 carries no CORS headers.
    let reply = try_send(
        server.addr,
        Method::GET,
        "/version",
        &[("origin", "https://ui.example")],
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    server.stop().await;
}

/// The client end of a connection handed to the server through its tunnel. A tunnelled
/// connection is any byte stream: here one end of an in-memory pipe.
async fn tunnelled(tunnel: &mpsc::Sender<TunnelConnection>) -> tokio::io::DuplexStream {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    tunnel
        .send(TunnelConnection {
            io: Box::new(server_end),
            peer: "12D3KooWtest".into(),
        })
        .await
        .unwrap();
    client_end
}

/// One request over an already open stream; the body collected.
async fn send_over<S>(io: S, path: &str) -> (StatusCode, Bytes)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = tokio::time::timeout(DEADLINE, sender.send_request(build(Method::GET, path, &[])))
        .await
        .expect("answer in time")
        .expect("answer");
    let status = response.status();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    (status, body)
}

#[tokio::test]
async fn serves_on_unix_sockets_and_tunnelled_streams_beside_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let config = RestServerConfig {
        listen: vec![
            HttpAddress::Tcp("127.0.0.1:0".into()),
            HttpAddress::Unix(socket.clone()),
        ],
        ..RestServerConfig::default()
    };
    let server = RestServer::bind(config, Mock::new()).expect("bind");
    let addresses = server.local_addresses();
    assert_eq!(addresses.len(), 2);
    assert_eq!(addresses[1], HttpAddress::Unix(socket.clone()));
    let addr = server.local_addr().expect("a TCP listener");
    let (tunnel_tx, tunnel_rx) = mpsc::channel(4);
    let server = server.with_tunnel(tunnel_rx);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = stop_rx.await;
    }));

    let (status, body) = send_over(TcpStream::connect(addr).await.unwrap(), "/version").await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let over_unix = send_over(tokio::net::UnixStream::connect(&socket).await.unwrap(), "/version").await;
    assert_eq!(over_unix, (status, body.clone()));
    let over_tunnel = send_over(tunnelled(&tunnel_tx).await, "/version").await;
    assert_eq!(over_tunnel, (status, body));

    stop_tx.send(()).unwrap();
    tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
    assert!(!socket.exists(), "the socket file is removed on shutdown");
}

#[tokio::test]
async fn a_tunnelled_client_that_closes_its_sending_side_still_gets_the_answer() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mock = Mock::new();
    let (tx, rx) = mpsc::channel(1);
    *mock.manual_peers.lock().unwrap() = Some(rx);
    let (tunnel_tx, tunnel_rx) = mpsc::channel(1);
    let config = RestServerConfig {
        listen: vec![HttpAddress::Tcp("127.0.0.1:0".into())],
        ..RestServerConfig::default()
    };
    let server = RestServer::bind(config, mock.clone())
        .expect("bind")
        .with_tunnel(tunnel_rx);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = stop_rx.await;
    }));
    let mut client = tunnelled(&tunnel_tx).await;
    client
        .write_all(b"GET /peers HTTP/1.1\r\nHost: cluster\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // The request is out; the answer is not ready yet when the server reads this EOF.
    client.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.send(Ok(make_id(0))).await.unwrap();
    drop(tx);
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, client.read_to_end(&mut answer))
        .await
        .expect("answer in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains(&make_id(0).id.to_string()), "{answer}");
    stop_tx.send(()).unwrap();
    tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
}
