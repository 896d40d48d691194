//! Every REST route's JSON compared field by field with Go's shapes (reference §1.8, files in
//! `tests/golden/`, see its README): the same keys in the same order, each value of the same
//! JSON type. The backend is a fixed one; what is checked is the wire shape of each route.
#![cfg(not(madsim))]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use cluster_api::{Credentials, HttpAddress, PageStream, RestBackend, RestServer, RestServerConfig, ResultStream};
use cluster_rt::tokio;
use cluster_types::{
    Alert, Bandwidth, Cid, ClusterError, ConnectGraph, GlobalPinInfo, GlobalRepoGc, Id, IpfsId, LineItem, Metric,
    PeerId, Pin, PinInfoShort, PinOptions, RepoGc, RepoGcKey, Timestamp, TrackerStatus, TrackerStatusFilter,
};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use tokio::sync::mpsc;

// ---------------------------------------------------------------------------------------------
// Ordered JSON shapes

/// A JSON value's shape with object keys in document order (serde_json's `Value` sorts them).
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Null,
    Bool,
    Number,
    String,
    Array(Vec<Shape>),
    Object(Vec<(String, Shape)>),
}

impl<'de> serde::Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Shape, D::Error> {
        struct ShapeVisitor;
        impl<'de> Visitor<'de> for ShapeVisitor {
            type Value = Shape;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Shape, E> {
                Ok(Shape::Null)
            }
            fn visit_none<E>(self) -> Result<Shape, E> {
                Ok(Shape::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
                Ok(Shape::Bool)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
                Ok(Shape::Number)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
                Ok(Shape::Number)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
                Ok(Shape::Number)
            }
            fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
                Ok(Shape::String)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Shape::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
                let mut fields = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Shape>()? {
                    fields.push((key, value));
                }
                Ok(Shape::Object(fields))
            }
        }
        deserializer.deserialize_any(ShapeVisitor)
    }
}

fn shape_of(text: &str) -> Shape {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn golden(name: &str) -> Shape {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    shape_of(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Keys that hold peer ids or CIDs, not field names: compared by value shape only.
fn is_map_of_ids(fields: &[(String, Shape)]) -> bool {
    !fields.is_empty()
        && fields
            .iter()
            .all(|(k, _)| k.starts_with("12D3Koo") || k.starts_with("Qm") || k.starts_with('/'))
}

/// Compares `ours` with the golden shape; returns every difference with its path.
fn compare(golden: &Shape, ours: &Shape, path: &str, out: &mut Vec<String>) {
    match (golden, ours) {
        (Shape::Null, _) => {}
        (Shape::Array(g), Shape::Array(o)) => {
            if let (Some(g), Some(o)) = (g.first(), o.first()) {
                compare(g, o, &format!("{path}[0]"), out);
            }
        }
        (Shape::Object(g), Shape::Object(o)) if is_map_of_ids(g) => {
            let template = &g[0].1;
            for (key, value) in o {
                compare(template, value, &format!("{path}.{key}"), out);
            }
        }
        (Shape::Object(g), Shape::Object(o)) => {
            let mut position = 0;
            for (key, value) in g {
                let (name, optional) = match key.strip_suffix('?') {
                    Some(name) => (name, true),
                    None => (key.as_str(), false),
                };
                match o.iter().position(|(k, _)| k == name) {
                    Some(at) => {
                        if at < position {
                            out.push(format!("{path}.{name}: out of Go's order"));
                        }
                        position = at;
                        compare(value, &o[at].1, &format!("{path}.{name}"), out);
                    }
                    None if optional => {}
                    None => out.push(format!("{path}.{name}: missing")),
                }
            }
            for (key, _) in o {
                let known = g.iter().any(|(k, _)| k.trim_end_matches('?') == key);
                if !known {
                    out.push(format!("{path}.{key}: not in Go's shape"));
                }
            }
        }
        (g, o) if std::mem::discriminant(g) == std::mem::discriminant(o) => {}
        (g, o) => out.push(format!("{path}: Go has {g:?}, we have {o:?}")),
    }
}

fn assert_shape(route: &str, golden_file: &str, body: &str) {
    let mut differences = Vec::new();
    compare(&golden(golden_file), &shape_of(body), "", &mut differences);
    assert!(
        differences.is_empty(),
        "{route} differs from Go's {golden_file}:\n  {}\nbody: {body}",
        differences.join("\n  ")
    );
}

#[test]
fn the_comparison_catches_what_it_should() {
    let mut out = Vec::new();
    compare(
        &shape_of(r#"{"a":1,"b":"x","c?":true}"#),
        &shape_of(r#"{"b":"x","a":1}"#),
        "",
        &mut out,
    );
    assert_eq!(out, [".b: out of Go's order"]);
    out.clear();
    compare(&shape_of(r#"{"a":1}"#), &shape_of(r#"{"a":"1","z":0}"#), "", &mut out);
    assert_eq!(out.len(), 2, "{out:?}");
    out.clear();
    compare(
        &shape_of(r#"{"a":null,"c?":true}"#),
        &shape_of(r#"{"a":[1]}"#),
        "",
        &mut out,
    );
    assert!(out.is_empty(), "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// A fixed backend

fn peer(i: u8) -> PeerId {
    PeerId::from_ed25519_seed([i + 1; 32])
}

fn cid(i: u32) -> Cid {
    Cid::raw_sha256(format!("golden {i}").as_bytes())
}

fn id() -> Id {
    Id {
        id: peer(0),
        addresses: vec![format!("/ip4/127.0.0.1/tcp/9096/p2p/{}", peer(0))],
        cluster_peers: vec![peer(0), peer(1)],
        cluster_peers_addresses: Vec::new(),
        version: cluster_types::VERSION.into(),
        commit: String::new(),
        rpc_protocol_version: cluster_types::RPC_PROTOCOL_VERSION.into(),
        error: String::new(),
        ipfs: IpfsId {
            id: "12D3KooWIpfs".into(),
            addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            error: String::new(),
        },
        peername: "peer0".into(),
    }
}

fn pin(i: u32) -> Pin {
    let mut pin = Pin::new(cid(i), PinOptions::default());
    pin.allocations = vec![peer(0)];
    pin.timestamp = Timestamp::from_unix(1_747_000_000, 0);
    pin
}

fn status(i: u32) -> GlobalPinInfo {
    GlobalPinInfo {
        cid: cid(i),
        name: format!("pin{i}"),
        allocations: vec![peer(0)],
        origins: Vec::new(),
        created: Timestamp::from_unix(1_747_000_000, 0),
        metadata: BTreeMap::new(),
        peer_map: BTreeMap::from([(
            peer(0).to_string(),
            PinInfoShort {
                peername: "peer0".into(),
                ipfs_peer_id: "12D3KooWIpfs".into(),
                status: TrackerStatus::Pinned,
                timestamp: Timestamp::from_unix(1_747_000_000, 0),
                ..Default::default()
            },
        )]),
    }
}

fn metric(name: &str) -> Metric {
    Metric {
        name: name.into(),
        peer: peer(0),
        value: "98765432".into(),
        expire: 1_747_000_000_123_456_789,
        valid: true,
        weight: 98_765_432,
        partitionable: false,
        received_at: 1_746_999_970_000_000_000,
    }
}

fn one<T: Send + 'static>(item: T) -> ResultStream<T> {
    let (tx, rx) = mpsc::channel(1);
    tx.try_send(Ok(item)).unwrap();
    rx
}

struct Fixed;

#[async_trait::async_trait]
impl RestBackend for Fixed {
    async fn id(&self) -> Id {
        id()
    }
    async fn peers(&self) -> ResultStream<Id> {
        one(id())
    }
    async fn pin(&self, cid: Cid, options: PinOptions) -> Result<Pin, ClusterError> {
        let mut pin = pin(0);
        pin.cid = cid;
        pin.options = options;
        Ok(pin)
    }
    async fn pin_path(&self, _: String, options: PinOptions) -> Result<Pin, ClusterError> {
        self.pin(cid(0), options).await
    }
    async fn unpin(&self, cid: Cid) -> Result<Pin, ClusterError> {
        if cid == self::cid(9) {
            return Err(ClusterError::NotFound);
        }
        Ok(pin(0))
    }
    async fn unpin_path(&self, _: String) -> Result<Pin, ClusterError> {
        Ok(pin(0))
    }
    async fn allocations(&self, _: u32) -> PageStream<Pin> {
        let (tx, rx) = mpsc::channel(1);
        tx.try_send(Ok(vec![pin(1)])).unwrap();
        rx
    }
    async fn allocation(&self, _: Cid) -> Result<Pin, ClusterError> {
        Ok(pin(1))
    }
    async fn status(&self, _: Cid, _: bool) -> Result<GlobalPinInfo, ClusterError> {
        Ok(status(1))
    }
    async fn status_all(&self, _: TrackerStatusFilter, _: Vec<Cid>, _: bool) -> ResultStream<LineItem<GlobalPinInfo>> {
        one(LineItem::Value(status(2)))
    }
    async fn recover(&self, _: Cid, _: bool) -> Result<GlobalPinInfo, ClusterError> {
        Ok(status(3))
    }
    async fn recover_all(&self, _: bool) -> ResultStream<GlobalPinInfo> {
        one(status(4))
    }
    async fn peer_add(&self, _: PeerId, _: Vec<String>) -> Result<Id, ClusterError> {
        Ok(id())
    }
    async fn metric_names(&self) -> Vec<String> {
        vec!["freespace".into()]
    }
    async fn metrics(&self, name: String) -> Vec<Metric> {
        vec![metric(&name)]
    }
    async fn alerts(&self) -> Vec<Alert> {
        vec![Alert {
            metric: metric("ping"),
            triggered_at: Timestamp::from_unix(1_747_000_001, 123_000_000),
        }]
    }
    async fn connect_graph(&self) -> Result<ConnectGraph, ClusterError> {
        let me = peer(0).to_string();
        Ok(ConnectGraph {
            cluster_id: peer(0),
            id_to_peername: BTreeMap::from([(me.clone(), "peer0".into())]),
            ipfs_links: BTreeMap::from([("12D3KooWIpfs".into(), vec!["12D3KooWOther".into()])]),
            cluster_links: BTreeMap::from([(me.clone(), vec![peer(1)])]),
            cluster_trust_links: BTreeMap::from([(me.clone(), true)]),
            cluster_to_ipfs: BTreeMap::from([(me, "12D3KooWIpfs".into())]),
        })
    }
    async fn bandwidth(&self) -> BTreeMap<String, Bandwidth> {
        BTreeMap::from([(
            "/ipfscluster/1.0/rpc".into(),
            Bandwidth {
                total_in: 1,
                total_out: 2,
                rate_in: 0.5,
                rate_out: 0.25,
            },
        )])
    }
    async fn repo_gc(&self, _: bool) -> Result<GlobalRepoGc, ClusterError> {
        Ok(GlobalRepoGc {
            peer_map: BTreeMap::from([(
                peer(0).to_string(),
                RepoGc {
                    peer: peer(0),
                    peername: "peer0".into(),
                    keys: vec![RepoGcKey {
                        key: Some(cid(5)),
                        error: String::new(),
                    }],
                    error: String::new(),
                },
            )]),
        })
    }
    async fn add_destinations(&self, _: &PinOptions, _: bool) -> Result<Vec<PeerId>, ClusterError> {
        Ok(vec![peer(0)])
    }
    async fn add_blocks(&self, _: &[PeerId], _: Vec<(Cid, Bytes)>) -> Result<(), ClusterError> {
        Ok(())
    }
    async fn add_pin(&self, root: Cid, options: PinOptions, _: Vec<PeerId>) -> Result<Pin, ClusterError> {
        self.pin(root, options).await
    }
}

// ---------------------------------------------------------------------------------------------
// The routes

async fn request(addr: SocketAddr, method: Method, uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> String {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut builder = Request::builder().method(method).uri(uri).header("host", "127.0.0.1");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = sender
        .send_request(builder.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[tokio::test]
async fn every_route_answers_in_gos_shape() {
    let credentials = Credentials(BTreeMap::from([("admin".to_string(), "secret".to_string())]));
    let server = RestServer::bind(
        RestServerConfig {
            listen: vec![HttpAddress::Tcp("127.0.0.1:0".into())],
            credentials: Some(credentials),
            ..RestServerConfig::default()
        },
        Arc::new(Fixed),
    )
    .unwrap();
    let addr = server.local_addr().expect("a TCP listener");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let auth = ("authorization", "Basic YWRtaW46c2VjcmV0");
    let c = cid(0);
    let get = |uri: String| async move { request(addr, Method::GET, &uri, &[auth], Vec::new()).await };
    let post = |uri: String| async move { request(addr, Method::POST, &uri, &[auth], Vec::new()).await };
    let delete = |uri: String| async move { request(addr, Method::DELETE, &uri, &[auth], Vec::new()).await };

    let checks: Vec<(&str, &str, String)> = vec![
        ("GET /id", "id.json", get("/id".into()).await),
        ("GET /version", "version.json", get("/version".into()).await),
        ("GET /peers", "id.json", first_line(&get("/peers".into()).await).into()),
        ("POST /pins/{cid}", "pin.json", post(format!("/pins/{c}?name=x")).await),
        (
            "POST /pins/ipfs/{path}",
            "pin.json",
            post(format!("/pins/ipfs/{c}")).await,
        ),
        ("DELETE /pins/{cid}", "pin.json", delete(format!("/pins/{c}")).await),
        (
            "DELETE /pins/ipfs/{path}",
            "pin.json",
            delete(format!("/pins/ipfs/{c}")).await,
        ),
        (
            "DELETE /pins/{unknown}",
            "error.json",
            delete(format!("/pins/{}", cid(9))).await,
        ),
        (
            "GET /allocations",
            "pin.json",
            first_line(&get("/allocations".into()).await).into(),
        ),
        (
            "GET /allocations/{cid}",
            "pin.json",
            get(format!("/allocations/{c}")).await,
        ),
        (
            "GET /pins",
            "global_pin_info.json",
            first_line(&get("/pins".into()).await).into(),
        ),
        (
            "GET /pins/{cid}",
            "global_pin_info.json",
            get(format!("/pins/{c}")).await,
        ),
        (
            "POST /pins/{cid}/recover",
            "global_pin_info.json",
            post(format!("/pins/{c}/recover")).await,
        ),
        (
            "POST /pins/recover",
            "global_pin_info.json",
            first_line(&post("/pins/recover".into()).await).into(),
        ),
        (
            "GET /monitor/metrics",
            "metric_names.json",
            get("/monitor/metrics".into()).await,
        ),
        (
            "GET /monitor/metrics/{name}",
            "metric.json",
            strip_array(&get("/monitor/metrics/freespace".into()).await),
        ),
        (
            "GET /health/alerts",
            "alert.json",
            strip_array(&get("/health/alerts".into()).await),
        ),
        (
            "GET /health/graph",
            "connect_graph.json",
            get("/health/graph".into()).await,
        ),
        (
            "GET /health/bandwidth",
            "bandwidth.json",
            get("/health/bandwidth".into()).await,
        ),
        ("POST /ipfs/gc", "global_repo_gc.json", post("/ipfs/gc".into()).await),
        ("POST /token", "token.json", post("/token".into()).await),
        ("GET /nope", "error.json", get("/nope".into()).await),
    ];
    let peer_body = format!(r#"{{"peer_id":"{}"}}"#, peer(1));
    let peers_post = request(addr, Method::POST, "/peers", &[auth], peer_body.into_bytes()).await;
    assert_shape("POST /peers", "id.json", &peers_post);
    for (route, file, body) in &checks {
        assert_shape(route, file, body);
    }

    let boundary = "golden-boundary";
    let upload = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hello.txt\"\r\nContent-Type: application/octet-stream\r\n\r\nhello ipfs cluster test\n\r\n--{boundary}--\r\n"
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let added = request(
        addr,
        Method::POST,
        "/add",
        &[auth, ("content-type", &content_type)],
        upload.clone().into_bytes(),
    )
    .await;
    assert_shape("POST /add", "added_output.json", first_line(&added));
    let array = request(
        addr,
        Method::POST,
        "/add?stream-channels=false",
        &[auth, ("content-type", &content_type)],
        upload.into_bytes(),
    )
    .await;
    assert_shape(
        "POST /add?stream-channels=false",
        "added_output.json",
        &strip_array(&array),
    );

    let _ = stop.send(());
    task.await.unwrap();
}

/// The first element of a JSON array, as text.
fn strip_array(text: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    // Re-serializing loses the key order: cut the first element from the text instead.
    let inner = text
        .trim()
        .strip_prefix('[')
        .unwrap_or_else(|| panic!("not an array: {text}"));
    let mut depth = 0;
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' | '[' => depth += 1,
            '}' | ']' => {
                if depth == 0 {
                    return inner[..i].to_string();
                }
                depth -= 1;
                if depth == 0 {
                    return inner[..=i].to_string();
                }
            }
            _ => {}
        }
    }
    panic!("no element in {value}")
}
