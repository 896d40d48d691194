//! The IPFS proxy (reference §4): an HTTP endpoint that looks like the IPFS daemon's Kubo RPC
//! API, so `ipfs --api`, kubo-rpc-client and friends pointed at it pin through the cluster.
//!
//! Owns: the hijacked endpoints (`add`, `pin/add`, `pin/rm`, `pin/ls`, `pin/update`,
//! `repo/stat`, `repo/gc`, and `block/put`/`dag/put` with `pin=true`), which answer in Kubo's JSON shapes
//! from the cluster, and the reverse proxy that streams every other request to the daemon and
//! its answer back, both ways without buffering. Does not own cluster logic: hijacked calls go
//! through [`RestBackend`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use cluster_ipfs::{uri_authority, DaemonConnector};
use cluster_types::{Cid, ClusterError, HttpAddress, PinMode, PinOptions, VERSION};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST, SERVER, TRAILER};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::add_route::{body_stream, multipart_boundary, run_add, AddParams};
use crate::conn_limits::HttpLimits;
use crate::http_server::{serve_http, Handler};
use crate::listen::{BoundListener, Listeners};
use crate::RestBackend;

/// Largest daemon answer to a `block/put` or `dag/put` we read to learn what to pin.
const PUT_REPLY_LIMIT: usize = 4 << 20;

/// Where the proxy listens and where the daemon is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpfsProxyConfig {
    /// Listen addresses, TCP or Unix sockets (Go default `/ip4/127.0.0.1/tcp/9095`).
    pub listen: Vec<HttpAddress>,
    /// The IPFS daemon's API, `host:port` or a Unix socket (Go `node_multiaddress`, default
    /// 127.0.0.1:5001).
    pub node_address: HttpAddress,
    /// Speak HTTPS to the daemon (Go `node_https`), verifying its certificate against the
    /// system's trusted roots (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured, as in Go).
    pub node_https: bool,
    /// Headers copied from the daemon onto hijacked answers, besides
    /// `Access-Control-Expose-Headers` (Go `extract_headers_extra`).
    pub extract_headers_extra: Vec<String>,
    /// Where those headers are read from (Go `extract_headers_path`, `/api/v0/version`).
    pub extract_headers_path: String,
    /// How long they are kept before being read again; zero keeps them forever.
    pub extract_headers_ttl: std::time::Duration,
    /// The timeouts, header size and connection cap (see [`HttpLimits`]).
    pub limits: HttpLimits,
}

impl IpfsProxyConfig {
    /// Go's defaults for everything but the two addresses.
    pub fn new(listen: Vec<HttpAddress>, node_address: HttpAddress) -> IpfsProxyConfig {
        IpfsProxyConfig {
            listen,
            node_address,
            node_https: false,
            extract_headers_extra: Vec::new(),
            extract_headers_path: "/api/v0/version".into(),
            extract_headers_ttl: std::time::Duration::from_secs(300),
            limits: HttpLimits::proxy_default(),
        }
    }
}

/// CORS headers taken from the daemon's answer to a preflight for the same origin (Go's list).
const CORS_FROM_DAEMON: [&str; 3] = [
    "access-control-allow-origin",
    "vary",
    "access-control-allow-credentials",
];

/// Headers read once from the daemon (then every TTL), always including this one.
const EXTRACTED_ALWAYS: &str = "access-control-expose-headers";

/// A bound, not yet serving, IPFS proxy.
pub struct IpfsProxy {
    listeners: Vec<BoundListener>,
    shared: Arc<Shared>,
    limits: HttpLimits,
}

impl std::fmt::Debug for IpfsProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpfsProxy").field("listeners", &self.listeners).finish()
    }
}

type ProxyBody = BoxBody<Bytes, BodyError>;

/// Why a response body ended early: the daemon's connection failed, or a stream failed for a
/// client that cannot receive the error in a trailer (the body is then cut, never ended cleanly).
type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Plain HTTP or HTTPS, as the URI says, over TCP or a Unix socket, set up within
/// [`DAEMON_CONNECT_TIMEOUT`].
type ProxyConnector = ConnectDeadline<hyper_rustls::HttpsConnector<DaemonConnector>>;

/// How long the proxy waits for a connection to the daemon, TLS handshake included.
const DAEMON_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connector whose connections must be set up within a deadline: a daemon (or whoever
/// answers at its address) that accepts TCP and then stalls the TLS handshake fails the
/// request instead of hanging it.
#[derive(Clone)]
struct ConnectDeadline<C> {
    inner: C,
    limit: std::time::Duration,
}

impl<C> tower_service::Service<Uri> for ConnectDeadline<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (connecting, limit) = (self.inner.call(uri), self.limit);
        Box::pin(async move {
            match cluster_rt::timeout(limit, connecting).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(format!("no connection to the IPFS daemon within {limit:?}").into()),
            }
        })
    }
}

/// The system's roots are loaded only for `node_https`: a machine without any must still proxy
/// plain HTTP.
fn daemon_connector(node: &HttpAddress, node_https: bool) -> io::Result<ProxyConnector> {
    let inner = DaemonConnector::new(node, DAEMON_CONNECT_TIMEOUT);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = if node_https {
        builder
            .with_provider_and_native_roots(provider)
            .map_err(|e| io::Error::other(format!("node_https: loading the system's trusted certificates: {e}")))?
    } else {
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        builder.with_tls_config(tls)
    };
    Ok(ConnectDeadline {
        inner: builder.https_or_http().enable_http1().wrap_connector(inner),
        limit: DAEMON_CONNECT_TIMEOUT,
    })
}

/// Headers read from the daemon, and when.
type ExtractedHeaders = (std::time::Instant, Vec<(HeaderName, HeaderValue)>);

struct Shared {
    backend: Arc<dyn RestBackend>,
    /// The daemon's address as messages show it.
    node_address: String,
    /// The authority of request URIs and `Host` headers to the daemon.
    node_authority: String,
    /// `http://host:port` or `https://host:port` of the daemon.
    node_base: String,
    client: Client<ProxyConnector, Incoming>,
    /// For the header requests the proxy makes itself (empty bodies).
    plain_client: Client<ProxyConnector, Full<Bytes>>,
    extract_headers: Vec<String>,
    extract_headers_path: String,
    extract_headers_ttl: std::time::Duration,
    /// The extracted headers and when they were read.
    extracted: std::sync::Mutex<Option<ExtractedHeaders>>,
}

impl IpfsProxy {
    /// Binds the listen sockets.
    pub fn bind(config: IpfsProxyConfig, backend: Arc<dyn RestBackend>) -> io::Result<IpfsProxy> {
        let listeners = Listeners::bind(&config.listen)?;
        IpfsProxy::new(config, listeners, backend)
    }

    /// A proxy on sockets bound beforehand (`config.listen` is not read).
    pub fn new(config: IpfsProxyConfig, listeners: Listeners, backend: Arc<dyn RestBackend>) -> io::Result<IpfsProxy> {
        let listeners = listeners.0;
        let connector = daemon_connector(&config.node_address, config.node_https)?;
        let client = Client::builder(TokioExecutor::new()).build(connector.clone());
        let plain_client = Client::builder(TokioExecutor::new()).build(connector);
        let scheme = if config.node_https { "https" } else { "http" };
        let mut extract_headers = vec![EXTRACTED_ALWAYS.to_string()];
        extract_headers.extend(config.extract_headers_extra.iter().map(|h| h.to_ascii_lowercase()));
        Ok(IpfsProxy {
            listeners,
            limits: config.limits.clone(),
            shared: Arc::new(Shared {
                backend,
                node_base: format!("{scheme}://{}", uri_authority(&config.node_address)),
                node_authority: uri_authority(&config.node_address).to_string(),
                node_address: config.node_address.to_string(),
                client,
                plain_client,
                extract_headers,
                extract_headers_path: config.extract_headers_path,
                extract_headers_ttl: config.extract_headers_ttl,
                extracted: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The first TCP address bound; `None` when listening on Unix sockets only.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listeners.iter().find_map(BoundListener::tcp_addr)
    }

    /// Every address bound, ports resolved.
    pub fn local_addresses(&self) -> Vec<HttpAddress> {
        self.listeners.iter().map(BoundListener::address).collect()
    }

    /// Serves until `shutdown` completes (see the REST server for the shutdown steps).
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        let shared = self.shared.clone();
        let handler: Handler<ProxyBody> = Arc::new(move |request| {
            let shared = shared.clone();
            Box::pin(async move { handle(&shared, request).await })
        });
        serve_http(self.listeners, None, "IPFS proxy", None, self.limits, handler, shutdown).await;
    }
}

/// A hijacked endpoint's failure: Kubo's error body and status.
#[derive(Debug)]
struct KuboError {
    status: StatusCode,
    message: String,
}

impl KuboError {
    /// Go's `ipfsErrorResponder(w, message, -1)`: a 500, whatever went wrong (bad arguments
    /// included).
    fn new(message: impl Into<String>) -> KuboError {
        KuboError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// The only 400s Go's proxy answers: `pin/update`'s missing arguments.
    fn missing(argument: &str) -> KuboError {
        KuboError {
            status: StatusCode::BAD_REQUEST,
            message: format!("argument \"{argument}\" is required"),
        }
    }
}

impl From<ClusterError> for KuboError {
    fn from(error: ClusterError) -> KuboError {
        KuboError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: error.to_string(),
        }
    }
}

type Hijacked = Result<Response<ProxyBody>, KuboError>;

/// The endpoint names the proxy answers itself (after `/api/v0/`).
fn hijacked_command(path: &str) -> Option<(&'static str, Option<String>)> {
    let command = path.strip_prefix("/api/v0/")?.trim_end_matches('/');
    for name in [
        "pin/add",
        "pin/rm",
        "pin/ls",
        "pin/update",
        "repo/stat",
        "repo/gc",
        "block/put",
        "dag/put",
        "add",
    ] {
        if command == name {
            return Some((name, None));
        }
        // `/pin/add/<arg>`: Go accepts the argument in the path too.
        if let Some(arg) = command.strip_prefix(name).and_then(|rest| rest.strip_prefix('/')) {
            if name.starts_with("pin/") && !arg.is_empty() {
                return Some((name, Some(arg.to_string())));
            }
        }
    }
    None
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<ProxyBody> {
    let hijackable = matches!(*request.method(), Method::POST | Method::GET | Method::PUT);
    let hijack = if hijackable {
        hijacked_command(request.uri().path())
    } else {
        None
    };
    let Some((command, path_arg)) = hijack else {
        return forward(shared, request).await;
    };
    let query: Vec<(String, String)> = url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    // Only puts that pin are the cluster's business.
    let pinning_put = query.iter().any(|(k, v)| k == "pin" && is_true(Some(v)));
    if matches!(command, "block/put" | "dag/put") && !pinning_put {
        return forward(shared, request).await;
    }
    let origin = request.headers().get("origin").cloned();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut response = hijacked(shared, request, query, command, path_arg).await;
    daemon_headers(shared, &mut response, origin, &method, &path).await;
    response
}

/// Answers a hijacked endpoint (Kubo's error shape on failure).
async fn hijacked(
    shared: &Shared,
    request: Request<Incoming>,
    query: Vec<(String, String)>,
    command: &'static str,
    path_arg: Option<String>,
) -> Response<ProxyBody> {
    let get = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let mut args: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "arg")
        .map(|(_, v)| v.clone())
        .collect();
    if let Some(arg) = path_arg {
        tracing::warn!("IPFS proxy: {command}/<arg> is deprecated; use ?arg=");
        args.insert(0, arg);
    }
    let result = match command {
        "pin/add" => pin_add(shared, &args, get("type")).await,
        "pin/rm" => pin_rm(shared, &args).await,
        "pin/ls" => pin_ls(shared, &args, is_true(get("stream")) || is_true(get("s"))).await,
        "pin/update" => pin_update(shared, &args, get("unpin") != Some("false")).await,
        "repo/stat" => repo_stat(shared).await,
        "repo/gc" => repo_gc(shared, is_true(get("stream-errors"))).await,
        "add" => add(shared, &query, request).await,
        _ => put_and_pin(shared, request, command).await,
    };
    result.unwrap_or_else(|e| kubo_error(e.status, &e.message))
}

/// Go's header handling of hijacked answers: CORS headers as the daemon would send them for
/// this origin (asked with a preflight), the extracted headers (cached), then our own
/// `Content-Type` and `Server`.
async fn daemon_headers(
    shared: &Shared,
    response: &mut Response<ProxyBody>,
    origin: Option<HeaderValue>,
    method: &Method,
    path: &str,
) {
    // Only browsers send an Origin; other clients need no CORS headers, nor the round trip.
    if let Some(origin) = origin {
        let preflight = Request::builder()
            .method(Method::OPTIONS)
            .uri(format!("{}{path}", shared.node_base))
            .header("origin", origin)
            .header("access-control-request-method", method.as_str())
            .body(Full::new(Bytes::new()));
        if let Ok(preflight) = preflight {
            match shared.plain_client.request(preflight).await {
                Ok(answer) => {
                    for name in CORS_FROM_DAEMON {
                        if let Some(value) = answer.headers().get(name) {
                            response
                                .headers_mut()
                                .insert(HeaderName::from_static(name), value.clone());
                        }
                    }
                }
                Err(e) => tracing::debug!("IPFS proxy: CORS preflight to the daemon failed: {e}"),
            }
        }
    }
    for (name, value) in extracted_headers(shared).await {
        response.headers_mut().insert(name, value);
    }
    set_proxy_headers(response);
}

/// The headers read from the daemon's `extract_headers_path`, kept for the TTL.
async fn extracted_headers(shared: &Shared) -> Vec<(HeaderName, HeaderValue)> {
    let cached = shared.extracted.lock().expect("header cache lock").clone();
    if let Some((at, headers)) = &cached {
        if shared.extract_headers_ttl.is_zero() || at.elapsed() < shared.extract_headers_ttl {
            return headers.clone();
        }
    }
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{}{}", shared.node_base, shared.extract_headers_path))
        .body(Full::new(Bytes::new()));
    let Ok(request) = request else {
        return Vec::new();
    };
    let answer = match shared.plain_client.request(request).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::debug!("IPFS proxy: reading headers from the daemon failed: {e}");
            // Keep serving what we had, if anything.
            return cached.map(|(_, headers)| headers).unwrap_or_default();
        }
    };
    let headers: Vec<(HeaderName, HeaderValue)> = shared
        .extract_headers
        .iter()
        .filter_map(|name| {
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            let value = answer.headers().get(&name)?.clone();
            Some((name, value))
        })
        .collect();
    *shared.extracted.lock().expect("header cache lock") = Some((std::time::Instant::now(), headers.clone()));
    headers
}

fn is_true(value: Option<&str>) -> bool {
    matches!(value, Some("true" | "1" | "t" | "T" | "TRUE" | "True"))
}

/// Kubo's error body `{"Message","Code":0,"Type":"error"}`.
fn kubo_error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let mut response = json_response(&json!({"Message": message, "Code": 0, "Type": "error"}));
    *response.status_mut() = status;
    response
}

fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

fn json_response(value: &Value) -> Response<ProxyBody> {
    let mut text = value.to_string();
    text.push('\n');
    let mut response = Response::new(full(text));
    set_proxy_headers(&mut response);
    response
}

fn set_proxy_headers(response: &mut Response<ProxyBody>) {
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(server) = HeaderValue::from_str(&format!("ipfs-cluster/ipfsproxy/{VERSION}")) {
        headers.insert(SERVER, server);
    }
}

/// An IPFS path for an argument: kept when it is `/ipfs|ipns|ipld/...`, else `/ipfs/<arg>`.
fn ipfs_path(arg: &str) -> String {
    if arg.starts_with('/') {
        arg.to_string()
    } else {
        format!("/ipfs/{arg}")
    }
}

/// The CID an argument names directly (`<cid>` or `/ipfs/<cid>`), without resolving.
fn direct_cid(arg: &str) -> Result<Cid, KuboError> {
    let text = arg.strip_prefix("/ipfs/").unwrap_or(arg);
    let text = text.split('/').next().unwrap_or("");
    text.parse::<Cid>()
        .map_err(|e| KuboError::new(format!("invalid path {arg:?}: {e}")))
}

fn require_args(args: &[String], command: &str) -> Result<(), KuboError> {
    if args.is_empty() {
        return Err(KuboError::new(format!(
            "argument \"ipfs-path\" is required for {command}"
        )));
    }
    Ok(())
}

async fn pin_add(shared: &Shared, args: &[String], kind: Option<&str>) -> Hijacked {
    require_args(args, "pin/add")?;
    let mut pins = Vec::new();
    for arg in args {
        // Cluster defaults for replication; Go ignores `recursive=false` and reads `type`.
        let options = PinOptions {
            mode: if kind == Some("direct") {
                PinMode::Direct
            } else {
                PinMode::Recursive
            },
            ..PinOptions::default()
        };
        let pin = shared.backend.pin_path(ipfs_path(arg), options).await?;
        pins.push(pin.cid.to_string());
    }
    Ok(json_response(&json!({ "Pins": pins })))
}

async fn pin_rm(shared: &Shared, args: &[String]) -> Hijacked {
    require_args(args, "pin/rm")?;
    let mut pins = Vec::new();
    for arg in args {
        let pin = shared.backend.unpin_path(ipfs_path(arg)).await?;
        pins.push(pin.cid.to_string());
    }
    Ok(json_response(&json!({ "Pins": pins })))
}

/// `pin/ls`, from the cluster's shared state (not the daemon).
async fn pin_ls(shared: &Shared, args: &[String], stream: bool) -> Hijacked {
    // Listing everything streams the pinset as it is read (it may hold millions of pins), in
    // either shape; the `Keys` object is written out piece by piece.
    if args.is_empty() {
        let mut all = shared.backend.allocations(u32::MAX).await;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BodyError>>(16);
        cluster_rt::spawn(async move {
            let mut first = true;
            if !stream
                && tx
                    .send(Ok(Frame::data(Bytes::from_static(b"{\"Keys\":{"))))
                    .await
                    .is_err()
            {
                return;
            }
            while let Some(pin) = all.recv().await {
                let Ok(pin) = pin else {
                    // The body is already under way: end it without the closing brace, so the
                    // client sees broken JSON rather than a short list.
                    return;
                };
                let piece = pin_ls_piece(&pin, stream, first);
                first = false;
                if tx.send(Ok(Frame::data(Bytes::from(piece)))).await.is_err() {
                    return;
                }
            }
            if !stream {
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"}}\n")))).await;
            }
        });
        let frames = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        let mut response = Response::new(BodyExt::boxed(StreamBody::new(frames)));
        set_proxy_headers(&mut response);
        return Ok(response);
    }
    let mut text = String::new();
    if !stream {
        text.push_str("{\"Keys\":{");
    }
    for (i, arg) in args.iter().enumerate() {
        let cid = direct_cid(arg)?;
        match shared.backend.allocation(cid).await {
            Ok(pin) => text.push_str(&pin_ls_piece(&pin, stream, i == 0)),
            Err(ClusterError::NotFound) => {
                return Err(KuboError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: format!("Error: path '{arg}' is not pinned"),
                })
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !stream {
        text.push_str("}}\n");
    }
    let mut response = Response::new(full(text));
    set_proxy_headers(&mut response);
    Ok(response)
}

/// One pin of `pin/ls`: an NDJSON line `{"Cid","Type"}`, or one `"<cid>":{"Type":"recursive"}`
/// member of the `Keys` object (Go always says "recursive" there).
fn pin_ls_piece(pin: &cluster_types::Pin, stream: bool, first: bool) -> String {
    if stream {
        let kind = if pin.options.mode == PinMode::Direct {
            "direct"
        } else {
            "recursive"
        };
        let mut line = json!({"Cid": pin.cid.to_string(), "Type": kind}).to_string();
        line.push('\n');
        return line;
    }
    let separator = if first { "" } else { "," };
    format!("{separator}\"{}\":{{\"Type\":\"recursive\"}}", pin.cid)
}

async fn pin_update(shared: &Shared, args: &[String], unpin: bool) -> Hijacked {
    let (from, to) = match args {
        [] => return Err(KuboError::missing("from-path")),
        [_] => return Err(KuboError::missing("to-path")),
        [from, to, ..] => (from, to),
    };
    // As Go: `from` may be any path; the daemon resolves it.
    let from_cid = shared
        .backend
        .resolve_path(ipfs_path(from))
        .await
        .map_err(|e| KuboError::new(e.to_string()))?;
    let options = PinOptions {
        pin_update: Some(from_cid),
        ..PinOptions::default()
    };
    let pin = shared.backend.pin_path(ipfs_path(to), options).await?;
    // Updating a pin to itself changes nothing (Kubo's pinner does the same).
    if unpin && pin.cid != from_cid {
        shared.backend.unpin(from_cid).await?;
    }
    Ok(json_response(
        &json!({ "Pins": [from_cid.to_string(), pin.cid.to_string()] }),
    ))
}

/// `repo/stat`: sizes summed over every member's daemon.
async fn repo_stat(shared: &Shared) -> Hijacked {
    let (repo_size, storage_max) = shared.backend.repo_stat_all().await?;
    // Go answers only the two sizes; kubo-rpc-client also reads NumObjects, RepoPath and
    // Version. Objects are not counted (that is the slow part of repo/stat): 0.
    Ok(json_response(&json!({
        "RepoSize": repo_size,
        "StorageMax": storage_max,
        "NumObjects": 0,
        "RepoPath": "",
        "Version": ""
    })))
}

/// `repo/gc`: a cluster-wide GC, one `{"Key":{"/":cid}}` line per removed block. Errors go inline
/// with `stream-errors=true`, else in the `X-Stream-Error` trailer (sent to clients that accept
/// trailers).
async fn repo_gc(shared: &Shared, stream_errors: bool) -> Hijacked {
    let gc = shared.backend.repo_gc(false).await?;
    let mut text = String::new();
    let mut errors = Vec::new();
    for result in gc.peer_map.values() {
        if !result.error.is_empty() {
            errors.push(format!("{}: {}", result.peer, result.error));
        }
        for key in &result.keys {
            if let Some(cid) = &key.key {
                text.push_str(&json!({"Key": {"/": cid.to_string()}}).to_string());
                text.push('\n');
            } else if !key.error.is_empty() {
                errors.push(key.error.clone());
            }
        }
    }
    if stream_errors {
        for error in &errors {
            text.push_str(&json!({"Error": error}).to_string());
            text.push('\n');
        }
        errors.clear();
    }
    let mut trailers = hyper::HeaderMap::new();
    let joined = errors.join("; ");
    trailers.insert(
        "x-stream-error",
        HeaderValue::from_str(&joined).unwrap_or_else(|_| HeaderValue::from_static("repo gc failed")),
    );
    let frames: Vec<Result<Frame<Bytes>, BodyError>> =
        vec![Ok(Frame::data(Bytes::from(text))), Ok(Frame::trailers(trailers))];
    let body = BodyExt::boxed(StreamBody::new(futures::stream::iter(frames)));
    let mut response = Response::new(body);
    set_proxy_headers(&mut response);
    response
        .headers_mut()
        .insert(TRAILER, HeaderValue::from_static("X-Stream-Error"));
    Ok(response)
}

/// `add`: a cluster add (blocks to the allocated members, then a cluster pin) answered in
/// Kubo's shape, one `{"Name","Hash","Size"}` line per entry. Kubo's `pin=false` means no pin,
/// `trickle=true` the trickle layout; `only-hash` is refused, as in Go.
async fn add(shared: &Shared, query: &[(String, String)], request: Request<Incoming>) -> Hijacked {
    let get = |key: &str| -> Option<String> {
        let value = |k: &str| query.iter().find(|(name, _)| name == k).map(|(_, v)| v.clone());
        match key {
            // Go: only `pin=false` turns pinning off.
            "no-pin" => value("pin").map(|pin| (pin == "false").to_string()),
            "layout" if is_true(value("trickle").as_deref()) => Some("trickle".into()),
            // Kubo streams NDJSON whatever it is asked.
            "stream-channels" => Some("true".into()),
            other => value(other),
        }
    };
    if is_true(get("only-hash").as_deref()) {
        return Err(KuboError::new("only-hash is not supported by the cluster proxy"));
    }
    let pin = PinOptions::from_query(
        query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        cluster_types::Timestamp::now(),
    )
    .map_err(|e| KuboError::new(e.to_string()))?;
    let params = AddParams::parse(&get, pin).map_err(KuboError::new)?;
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let boundary = multipart_boundary(content_type.as_deref()).map_err(KuboError::new)?;
    // A client that did not ask for trailers itself would take a clean end for success.
    let trailers = crate::te_trailers::client_asked_for_trailers(request.headers());
    let destinations = shared.backend.add_destinations(&params.pin, params.local).await?;
    let mut lines = run_add(
        shared.backend.clone(),
        params,
        destinations,
        body_stream(request.into_body()),
        boundary,
    );
    // A failure before the first line is a plain 500, which every client sees.
    let first = match lines.recv().await {
        None => None,
        Some(Ok(line)) => Some(line),
        Some(Err(e)) => return Err(KuboError::from(e)),
    };
    // Then the lines as they come; a later error goes in the trailer for a client that asked
    // for trailers, and cuts the body for any other (it never ends cleanly).
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BodyError>>(16);
    cluster_rt::spawn(async move {
        let mut next = first.map(Ok);
        loop {
            let line = match next.take() {
                Some(line) => line,
                None => {
                    let received = tokio::select! {
                        line = lines.recv() => line,
                        // The client left: dropping `lines` stops the add.
                        () = tx.closed() => return,
                    };
                    match received {
                        Some(line) => line,
                        None => return,
                    }
                }
            };
            let frame = match line {
                Ok(line) => Ok(Frame::data(kubo_add_line(&line))),
                Err(e) if trailers => {
                    let mut trailer = hyper::HeaderMap::new();
                    trailer.insert(
                        "x-stream-error",
                        HeaderValue::from_str(&e.to_string())
                            .unwrap_or_else(|_| HeaderValue::from_static("add failed")),
                    );
                    Ok(Frame::trailers(trailer))
                }
                Err(e) => Err(BodyError::from(format!(
                    "add failed (the client takes no trailers): {e}"
                ))),
            };
            let last = !matches!(frame, Ok(ref f) if f.is_data());
            if tx.send(frame).await.is_err() || last {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    set_proxy_headers(&mut response);
    let headers = response.headers_mut();
    headers.insert(TRAILER, HeaderValue::from_static("X-Stream-Error"));
    headers.insert("x-chunked-output", HeaderValue::from_static("1"));
    Ok(response)
}

/// One line of Kubo's add output (Go's `ipfsAddResp`): `Hash`, `Bytes` and `Size` are left out
/// when empty or zero.
fn kubo_add_line(line: &cluster_types::AddedOutput) -> Bytes {
    let mut value = json!({ "Name": line.name });
    if let Some(cid) = line.cid {
        value["Hash"] = json!(cid.to_string());
    }
    if line.bytes != 0 {
        value["Bytes"] = json!(line.bytes);
    }
    if line.size != 0 {
        value["Size"] = json!(line.size.to_string());
    }
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

/// `block/put` / `dag/put` with `pin=true`: the daemon stores the data (asked not to pin), then
/// every CID it reports is pinned through the cluster; the daemon's answer is relayed, and pins
/// that failed are reported in the `X-Stream-Error` trailer, as Go (which goes on after one).
///
/// Go forwards `block/put` with `pin=true` to the daemon, which then also pins the block
/// itself, outside the cluster's allocations; we ask it not to, for both commands.
async fn put_and_pin(shared: &Shared, request: Request<Incoming>, command: &str) -> Hijacked {
    let (mut parts, body) = request.into_parts();
    let query: Vec<(String, String)> = url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .filter(|(k, _)| k != "pin")
        .chain(std::iter::once(("pin".to_string(), "false".to_string())))
        .collect();
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&query)
        .finish();
    parts.uri = format!("{}?{encoded}", parts.uri.path())
        .parse::<Uri>()
        .map_err(|e| KuboError::new(e.to_string()))?;
    let response = send_to_daemon(shared, Request::from_parts(parts, body))
        .await
        .map_err(|message| KuboError {
            status: StatusCode::BAD_GATEWAY,
            message,
        })?;
    let (parts, body) = response.into_parts();
    let bytes = http_body_util::Limited::new(body, PUT_REPLY_LIMIT)
        .collect()
        .await
        .map_err(|e| KuboError {
            status: StatusCode::BAD_GATEWAY,
            message: format!("reading the daemon's {command} answer: {e}"),
        })?
        .to_bytes();
    if !parts.status.is_success() {
        return Ok(Response::from_parts(parts, full(bytes)));
    }
    let mut errors = Vec::new();
    for line in serde_json::Deserializer::from_slice(&bytes).into_iter::<Value>() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                errors.push(e.to_string());
                break;
            }
        };
        // block/put: {"Key": cid}; dag/put: {"Cid": {"/": cid}}.
        let cid = line
            .get("Key")
            .and_then(Value::as_str)
            .or_else(|| line.get("Cid").and_then(|c| c.get("/")).and_then(Value::as_str));
        if let Some(cid) = cid.and_then(|c| c.parse::<Cid>().ok()) {
            if let Err(e) = shared.backend.pin(cid, PinOptions::default()).await {
                tracing::warn!("IPFS proxy: {command} pin=true: pinning {cid}: {e}");
                errors.push(format!("{cid}: {e}"));
            }
        }
    }
    let mut trailers = hyper::HeaderMap::new();
    trailers.insert(
        "x-stream-error",
        HeaderValue::from_str(&errors.join("; ")).unwrap_or_else(|_| HeaderValue::from_static("pinning failed")),
    );
    let frames = futures::stream::iter([Ok::<_, BodyError>(Frame::data(bytes)), Ok(Frame::trailers(trailers))]);
    let mut response = Response::from_parts(parts, BodyExt::boxed(StreamBody::new(frames)));
    let headers = response.headers_mut();
    // The daemon's length does not frame a body with trailers.
    headers.remove(hyper::header::CONTENT_LENGTH);
    headers.insert(TRAILER, HeaderValue::from_static("X-Stream-Error"));
    Ok(response)
}

/// Sends a request to the daemon, keeping method, path, query, headers and body.
async fn send_to_daemon(shared: &Shared, request: Request<Incoming>) -> Result<Response<Incoming>, String> {
    let (mut parts, body) = request.into_parts();
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let uri = format!("{}{path_and_query}", shared.node_base);
    parts.uri = uri.parse::<Uri>().map_err(|e| format!("bad URI {uri:?}: {e}"))?;
    if let Ok(host) = HeaderValue::from_str(&shared.node_authority) {
        parts.headers.insert(HOST, host);
    }
    shared
        .client
        .request(Request::from_parts(parts, body))
        .await
        .map_err(|e| {
            // The sources say why: refused, a certificate not trusted, ...
            let mut message = format!("the IPFS daemon at {} did not answer: {e}", shared.node_address);
            let mut source = std::error::Error::source(&e);
            while let Some(inner) = source {
                message.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            message
        })
}

/// The reverse proxy: the request goes to the daemon as is, the answer comes back streamed.
async fn forward(shared: &Shared, request: Request<Incoming>) -> Response<ProxyBody> {
    match send_to_daemon(shared, request).await {
        Ok(response) => response.map(|body| body.map_err(BodyError::from).boxed()),
        Err(message) => kubo_error(StatusCode::BAD_GATEWAY, &message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hijacked_commands_and_path_arguments() {
        assert_eq!(hijacked_command("/api/v0/pin/add"), Some(("pin/add", None)));
        assert_eq!(hijacked_command("/api/v0/pin/ls/"), Some(("pin/ls", None)));
        assert_eq!(
            hijacked_command("/api/v0/pin/add/QmX"),
            Some(("pin/add", Some("QmX".to_string())))
        );
        assert_eq!(hijacked_command("/api/v0/repo/stat"), Some(("repo/stat", None)));
        assert_eq!(hijacked_command("/api/v0/block/put"), Some(("block/put", None)));
        assert_eq!(hijacked_command("/api/v0/block/get"), None);
        assert_eq!(hijacked_command("/api/v0/add"), Some(("add", None)));
        assert_eq!(hijacked_command("/api/v0/version"), None);
        assert_eq!(hijacked_command("/pin/add"), None);
    }

    #[test]
    fn paths_and_direct_cids() {
        let cid = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9";
        assert_eq!(ipfs_path(cid), format!("/ipfs/{cid}"));
        assert_eq!(ipfs_path("/ipns/name"), "/ipns/name");
        assert_eq!(direct_cid(cid).unwrap().to_string(), cid);
        assert_eq!(direct_cid(&format!("/ipfs/{cid}/a")).unwrap().to_string(), cid);
        assert!(direct_cid("nonsense").is_err());
    }
}
