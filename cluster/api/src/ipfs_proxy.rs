//! The IPFS proxy (reference §4): an HTTP endpoint that looks like the IPFS daemon's Kubo RPC
//! API, so `ipfs --api`, kubo-rpc-client and friends pointed at it pin through the cluster.
//!
//! Owns: the reverse proxy that streams every request it does not hijack to the daemon and its
//! answer back, both ways without buffering, and the routing and headers of hijacked endpoints,
//! whose commands live in `hijacks`. Does not own cluster logic: hijacked calls go through
//! [`RestBackend`].

mod hijacks;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use cluster_ipfs::{uri_authority, DaemonConnector};
use cluster_types::{Cid, ClusterError, HttpAddress, VERSION};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST, SERVER};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::conn_limits::HttpLimits;
use crate::http_server::{serve_http, Handler};
use crate::listen::{BoundListener, Listeners};
use crate::RestBackend;
use hijacks::{add, pin_add, pin_ls, pin_rm, pin_update, put_and_pin, repo_gc, repo_stat};

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
