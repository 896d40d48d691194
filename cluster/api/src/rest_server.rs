//! The HTTP side of the REST API: routing, query parsing and response encoding (JSON, NDJSON with
//! the `X-Stream-Error` trailer, error bodies). Connections are served by [`crate::http_server`].
//!
//! Owns the wire behaviour of reference §1.1–§1.5 for the routes [`RestBackend`] covers. Each route
//! parses and validates all of its input first and calls the backend only when everything is valid.
//!
//! ## Trailers with hyper 1.x (read from `hyper-1.12.0/src/proto/h1/`)
//!
//! - `conn.rs`: when a request head is read, `allow_trailer_fields = headers::te_is_trailers(..)`, i.e.
//!   the request carries `TE: trailers` (any case, possibly in a comma list). `write_trailers` on the
//!   server side returns early ("trailers not allowed to be sent") when that flag is false; the body
//!   then ends with a plain last chunk (`0\r\n\r\n`), so the trailer is silently dropped.
//! - `role.rs`: the `Trailer` response header is written (and parsed into the list of allowed trailer
//!   names) only when the response may be chunked (not HTTP/1.0, not 204/304/1xx, not HEAD).
//! - `encode.rs`: `encode_trailers` only emits fields named in the `Trailer` response header and drops
//!   forbidden names (`Content-Type`, `Content-Length`, ...); `X-Stream-Error` is allowed.
//!
//! hyper offers no switch to send trailers anyway, so every connection is read through
//! [`TrailersForEveryone`](crate::te_trailers), which adds `TE: trailers` to each request head it
//! can frame with certainty: every client gets `X-Stream-Error` (empty when the stream was fine),
//! as Go sends it. Where it cannot (a request with a chunked body earlier on the connection, an
//! HTTP/1.0 client), a stream that saw an error is ended by failing the body instead: hyper then
//! closes the connection without the final zero-length chunk, so the client sees an incomplete
//! response rather than a clean but silently truncated one.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin as StdPin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use cluster_rt::tokio;
use cluster_types::{
    AddedOutput, ApiError, Cid, ClusterError, HttpAddress, JsonLine, PeerId, PinOptions, PinType, Timestamp,
    TrackerStatusFilter, Version, VERSION,
};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, ALLOW, CONTENT_TYPE, LOCATION, TE, TRAILER};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::add_route::{body_stream, collect_all, multipart_boundary, run_add, AddParams};
use crate::auth::{Credentials, Denied};
use crate::conn_limits::HttpLimits;
use crate::cors::CorsConfig;
use crate::http_server::{serve_http, Handler};
use crate::listen::{BoundListener, Listeners, TunnelConnection};
use crate::TlsFiles;
use crate::{RestBackend, ResultStream};

/// At most this many `X-Stream-Error` values are kept per stream; clients (hyper among them) reject
/// trailer sections over 16 KiB, and a stream may fail on every item.
const MAX_STREAM_ERRORS: usize = 10;

/// Each `X-Stream-Error` value is cut to this many bytes, for the same reason.
const MAX_STREAM_ERROR_LEN: usize = 1024;

/// How many stream items one body poll may consume: a frame holds at most this many lines, and a
/// run of errors (which make no line) yields to the runtime after this many.
const MAX_ITEMS_PER_POLL: usize = 256;

/// A streamed body's frame is cut once it holds this many bytes of lines.
const FRAME_TARGET: usize = 64 * 1024;

/// The trailer that carries errors met after a stream started.
const STREAM_ERROR_TRAILER: &str = "x-stream-error";

/// Where the REST API listens and what it adds to every response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestServerConfig {
    /// Listen addresses, TCP or Unix sockets (Go `http_listen_multiaddress`, default
    /// `/ip4/127.0.0.1/tcp/9094`).
    pub listen: Vec<HttpAddress>,
    /// Extra headers set on every response (config `headers`), before `Content-Type`.
    pub headers: Vec<(String, String)>,
    /// `basic_auth_credentials`: when set, every request but `OPTIONS` and `GET /health` must
    /// authenticate (Basic, or a Bearer token from `POST /token`).
    pub credentials: Option<Credentials>,
    /// The `cors_*` keys.
    pub cors: CorsConfig,
    /// `ssl_cert_file` and `ssl_key_file` (PEM): serve HTTPS instead of HTTP.
    pub tls: Option<TlsFiles>,
    /// The timeouts, header size and connection cap (see [`HttpLimits`]).
    pub limits: HttpLimits,
}

impl TlsFiles {
    /// Loads both files into a TLS acceptor; errors name the file.
    pub(crate) fn acceptor(&self) -> io::Result<tokio_rustls::TlsAcceptor> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let invalid = |path: &std::path::Path, e: &dyn std::fmt::Display| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{}: {e}", path.display()))
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| invalid(&self.cert, &e))?
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(&self.cert, &e))?;
        if certs.is_empty() {
            return Err(invalid(&self.cert, &"no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| invalid(&self.key, &e))?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(&self.cert, &e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| invalid(&self.key, &e))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

impl Default for RestServerConfig {
    fn default() -> Self {
        RestServerConfig {
            listen: vec![HttpAddress::Tcp("127.0.0.1:9094".into())],
            headers: Vec::new(),
            credentials: None,
            cors: CorsConfig::default(),
            tls: None,
            limits: HttpLimits::rest_default(),
        }
    }
}

/// A bound, not yet serving, REST API server.
pub struct RestServer {
    listeners: Vec<BoundListener>,
    tunnel: Option<mpsc::Receiver<TunnelConnection>>,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: HttpLimits,
}

impl std::fmt::Debug for RestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestServer")
            .field("listeners", &self.listeners)
            .finish()
    }
}

/// What every connection's handler needs.
struct Shared {
    backend: Arc<dyn RestBackend>,
    headers: Vec<(HeaderName, HeaderValue)>,
    credentials: Option<Credentials>,
    cors: CorsConfig,
}

impl RestServer {
    /// Binds the listen sockets. Fails on a bind error or an invalid configured header; needs no
    /// runtime (the sockets are registered with the reactor in [`RestServer::serve`]).
    pub fn bind(config: RestServerConfig, backend: Arc<dyn RestBackend>) -> io::Result<RestServer> {
        let listeners = Listeners::bind(&config.listen)?;
        RestServer::new(config, listeners, backend)
    }

    /// A server on sockets bound beforehand (`config.listen` is not read). Fails on an invalid
    /// configured header or TLS file.
    pub fn new(
        config: RestServerConfig,
        listeners: Listeners,
        backend: Arc<dyn RestBackend>,
    ) -> io::Result<RestServer> {
        let mut headers = Vec::with_capacity(config.headers.len());
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid header name {name:?}: {e}"),
                )
            })?;
            let value = HeaderValue::from_str(value).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid value for header {name}: {e}"),
                )
            })?;
            headers.push((name, value));
        }
        let tls = config.tls.as_ref().map(TlsFiles::acceptor).transpose()?;
        Ok(RestServer {
            listeners: listeners.0,
            tunnel: None,
            tls,
            limits: config.limits.clone(),
            shared: Arc::new(Shared {
                backend,
                headers,
                credentials: config.credentials,
                cors: config.cors,
            }),
        })
    }

    /// The first TCP address bound (useful with port 0); `None` when listening on Unix sockets only.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listeners.iter().find_map(BoundListener::tcp_addr)
    }

    /// Every address bound, ports resolved.
    pub fn local_addresses(&self) -> Vec<HttpAddress> {
        self.listeners.iter().map(BoundListener::address).collect()
    }

    /// Also serves the connections that arrive on `connections` (the libp2p-http endpoint), as
    /// plain HTTP, until the server shuts down.
    pub fn with_tunnel(mut self, connections: mpsc::Receiver<TunnelConnection>) -> RestServer {
        self.tunnel = Some(connections);
        self
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish for up
    /// to 5 s, and closes the remaining connections.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let shared = self.shared.clone();
        let handler: Handler<ResponseBody> = Arc::new(move |request| {
            let shared = shared.clone();
            Box::pin(async move { handle(&shared, request).await })
        });
        serve_http(
            self.listeners,
            self.tunnel,
            "REST API",
            self.tls,
            self.limits,
            handler,
            shutdown,
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Routing

/// The path forms a pin route may take after `/pins/` (reference §1.5 `{keyType}`).
const PATH_KEY_TYPES: [&str; 3] = ["ipfs", "ipns", "ipld"];

/// A matched route and its path arguments (still undecoded as CIDs: that is each handler's job).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Id,
    Version,
    Peers,
    StatusAll,
    RecoverAll,
    Recover(String),
    Status(String),
    Pin(String),
    Unpin(String),
    PinPath(String),
    UnpinPath(String),
    Allocations,
    Allocation(String),
    Health,
    PeerAdd,
    PeerRemove(String),
    MetricNames,
    Metrics(String),
    Alerts,
    Graph,
    Bandwidth,
    RepoGc,
    Token,
    Add,
}

/// Why no route matched.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoRoute {
    NotFound,
    /// The path exists but not with this method; the value lists the allowed methods.
    MethodNotAllowed(&'static str),
}

/// Matches a request against the route table. `segments` are the percent-decoded path segments.
pub(crate) fn route(method: &Method, segments: &[String]) -> Result<Route, NoRoute> {
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let only = |allowed: &'static str, m: &Method, r: Route| -> Result<Route, NoRoute> {
        if allowed.split(", ").any(|a| a == m.as_str()) {
            Ok(r)
        } else {
            Err(NoRoute::MethodNotAllowed(allowed))
        }
    };
    match segs.as_slice() {
        ["id"] => only("GET", method, Route::Id),
        ["version"] => only("GET", method, Route::Version),
        ["peers"] => match *method {
            Method::GET => Ok(Route::Peers),
            Method::POST => Ok(Route::PeerAdd),
            _ => Err(NoRoute::MethodNotAllowed("GET, POST")),
        },
        ["peers", peer] => only("DELETE", method, Route::PeerRemove(peer.to_string())),
        ["health"] => only("GET", method, Route::Health),
        ["health", "graph"] => only("GET", method, Route::Graph),
        ["health", "alerts"] => only("GET", method, Route::Alerts),
        ["health", "bandwidth"] => only("GET", method, Route::Bandwidth),
        ["monitor", "metrics"] => only("GET", method, Route::MetricNames),
        ["monitor", "metrics", name] => only("GET", method, Route::Metrics(name.to_string())),
        ["ipfs", "gc"] => only("POST", method, Route::RepoGc),
        ["token"] => only("POST", method, Route::Token),
        ["add"] => only("POST", method, Route::Add),
        ["allocations"] => only("GET", method, Route::Allocations),
        ["allocations", cid] => only("GET", method, Route::Allocation(cid.to_string())),
        ["pins"] => only("GET", method, Route::StatusAll),
        // Checked before `/pins/{cid}` so that `recover` is never taken for a CID.
        ["pins", "recover"] => only("POST", method, Route::RecoverAll),
        ["pins", key_type, rest @ ..] if !rest.is_empty() && PATH_KEY_TYPES.contains(key_type) => {
            let path = format!("/{}/{}", key_type, rest.join("/"));
            match *method {
                Method::POST => Ok(Route::PinPath(path)),
                Method::DELETE => Ok(Route::UnpinPath(path)),
                _ => Err(NoRoute::MethodNotAllowed("POST, DELETE")),
            }
        }
        ["pins", cid, "recover"] => only("POST", method, Route::Recover(cid.to_string())),
        ["pins", cid] => match *method {
            Method::GET => Ok(Route::Status(cid.to_string())),
            Method::POST => Ok(Route::Pin(cid.to_string())),
            Method::DELETE => Ok(Route::Unpin(cid.to_string())),
            _ => Err(NoRoute::MethodNotAllowed("GET, POST, DELETE")),
        },
        _ => Err(NoRoute::NotFound),
    }
}

/// Splits an absolute path into percent-decoded segments. `None` for a path that is not absolute
/// or does not decode to UTF-8.
pub(crate) fn path_segments(path: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    rest.split('/')
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Request handling

/// A request rejected before reaching the backend, or a backend error: status and message.
pub(crate) struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn bad_request(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<ClusterError> for Failure {
    fn from(error: ClusterError) -> Failure {
        Failure {
            status: StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: error.to_string(),
        }
    }
}

/// Parsed query string: pairs in order, form-decoded (`+` is a space, as in Go's `url.ParseQuery`).
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(query: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `key` (Go's `Values.Get`); empty when absent.
    pub(crate) fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn pin_options(&self) -> Result<PinOptions, Failure> {
        PinOptions::from_query(self.pairs(), Timestamp::now()).map_err(|e| Failure::bad_request(e.to_string()))
    }

    /// `local`: exactly `true`, as Go's handlers compare it; any other value means cluster-wide.
    fn local(&self) -> bool {
        self.get("local") == "true"
    }
}

fn parse_cid(text: &str) -> Result<Cid, Failure> {
    text.parse::<Cid>()
        .map_err(|e| Failure::bad_request(format!("error decoding Cid: {e}")))
}

/// `/allocations?filter=`: empty selects everything; a list naming no known type is a 400, like Go.
pub(crate) fn allocation_filter(text: &str) -> Result<u32, Failure> {
    let mut names = text.split(',').map(str::trim).filter(|n| !n.is_empty()).peekable();
    if names.peek().is_some()
        && !names.any(|n| matches!(n, "pin" | "meta-pin" | "clusterdag-pin" | "shard-pin" | "all"))
    {
        return Err(Failure::bad_request("invalid filter value"));
    }
    Ok(PinType::filter_mask(text))
}

/// Whether the client accepts trailers (`TE: trailers`), the condition hyper applies (module docs).
fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("trailers"))
}

/// Answers one request; never fails (errors become JSON error responses). Authentication comes
/// first (OPTIONS is exempt, and a 401 carries no CORS headers), then CORS (preflights stop
/// there), then routing, as Go layers its handlers.
async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<ResponseBody> {
    let user = match authenticate(shared, &request) {
        Ok(user) => user,
        Err(denied) => {
            let mut response = shared.failure(Failure {
                status: StatusCode::UNAUTHORIZED,
                message: denied.message().into(),
            });
            for challenge in denied.challenges() {
                append_header(&mut response, "www-authenticate", &challenge);
            }
            return response;
        }
    };
    let origin = header_text(request.headers(), "origin");
    let method = request.method().clone();
    let preflight_method = header_text(request.headers(), "access-control-request-method");
    if method == Method::OPTIONS {
        if let Some(wanted) = preflight_method {
            let requested_headers = header_text(request.headers(), "access-control-request-headers");
            let mut response = shared.response(StatusCode::NO_CONTENT, ResponseBody::Empty);
            response.headers_mut().remove(CONTENT_TYPE);
            for (name, value) in shared
                .cors
                .preflight(origin.as_deref(), &wanted, requested_headers.as_deref())
            {
                append_header(&mut response, name, &value);
            }
            return response;
        }
    }
    let mut response = route_request(shared, request, user).await;
    for (name, value) in shared.cors.actual(origin.as_deref(), method.as_str()) {
        append_header(&mut response, name, &value);
    }
    response
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn append_header(response: &mut Response<ResponseBody>, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(HeaderName::from_static(name), value);
    }
}

/// The authenticated user (`None` when auth is off or the request is exempt).
fn authenticate(shared: &Shared, request: &Request<Incoming>) -> Result<Option<String>, Denied> {
    let Some(credentials) = &shared.credentials else {
        return Ok(None);
    };
    if request.method() == Method::OPTIONS || (request.method() == Method::GET && request.uri().path() == "/health") {
        return Ok(None);
    }
    let authorization = header_text(request.headers(), "authorization");
    credentials.check(authorization.as_deref()).map(Some)
}

/// Routes an authenticated request.
async fn route_request(shared: &Shared, request: Request<Incoming>, user: Option<String>) -> Response<ResponseBody> {
    let path = request.uri().path();
    let raw_query = request.uri().query();

    // Go's strictSlashHandler: `/pins/` -> 307 `/pins`, keeping the query.
    if path.len() > 1 && path.ends_with('/') {
        let mut location = path[..path.len() - 1].to_string();
        if let Some(q) = raw_query {
            location.push('?');
            location.push_str(q);
        }
        return match HeaderValue::from_str(&location) {
            Ok(location) => {
                let mut response = shared.response(StatusCode::TEMPORARY_REDIRECT, ResponseBody::Empty);
                response.headers_mut().insert(LOCATION, location);
                response
            }
            Err(_) => shared.failure(Failure::bad_request("invalid path")),
        };
    }

    let Some(segments) = path_segments(path) else {
        return shared.failure(Failure::bad_request("error parsing path: invalid percent-encoding"));
    };
    let route = match route(request.method(), &segments) {
        Ok(route) => route,
        Err(NoRoute::NotFound) => {
            return shared.failure(Failure {
                status: StatusCode::NOT_FOUND,
                message: "not found".into(),
            })
        }
        Err(NoRoute::MethodNotAllowed(allowed)) => {
            let mut response = shared.failure(Failure {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: "method not allowed".into(),
            });
            response.headers_mut().insert(ALLOW, HeaderValue::from_static(allowed));
            return response;
        }
    };
    let query = Query::parse(raw_query);
    let trailers = accepts_trailers(request.headers());
    if route == Route::Add {
        return match add(shared, &query, request, trailers).await {
            Ok(response) => response,
            Err(failure) => shared.failure(failure),
        };
    }
    let body = if matches!(route, Route::PeerAdd) {
        match read_small_body(request.into_body()).await {
            Ok(body) => body,
            Err(failure) => return shared.failure(failure),
        }
    } else {
        Bytes::new()
    };
    match dispatch(shared, route, &query, &body, trailers, user).await {
        Ok(response) => response,
        Err(failure) => shared.failure(failure),
    }
}

/// Validates the route's input, calls the backend and encodes its answer.
async fn dispatch(
    shared: &Shared,
    route: Route,
    query: &Query,
    body: &[u8],
    trailers: bool,
    user: Option<String>,
) -> Result<Response<ResponseBody>, Failure> {
    let backend = &shared.backend;
    Ok(match route {
        Route::Id => shared.json(StatusCode::OK, &backend.id().await),
        Route::Version => shared.json(
            StatusCode::OK,
            &Version {
                version: VERSION.to_string(),
            },
        ),
        Route::Health => match backend.health().await {
            Ok(()) => shared.response(StatusCode::NO_CONTENT, ResponseBody::Empty),
            Err(reason) => shared.failure(Failure {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: reason,
            }),
        },
        Route::Peers => shared.stream(backend.peers().await, trailers).await,
        Route::StatusAll => {
            let filter = TrackerStatusFilter::parse(query.get("filter"))
                .map_err(|_| Failure::bad_request("invalid filter value"))?;
            let cids = query
                .get("cids")
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(parse_cid)
                .collect::<Result<Vec<_>, _>>()?;
            let local = query.local();
            shared
                .stream(backend.status_all(filter, cids, local).await, trailers)
                .await
        }
        Route::RecoverAll => {
            let local = query.local();
            shared.stream(backend.recover_all(local).await, trailers).await
        }
        Route::Recover(cid) => {
            let cid = parse_cid(&cid)?;
            let local = query.local();
            shared.json(StatusCode::OK, &backend.recover(cid, local).await?)
        }
        Route::Status(cid) => {
            let cid = parse_cid(&cid)?;
            let local = query.local();
            shared.json(StatusCode::OK, &backend.status(cid, local).await?)
        }
        Route::Pin(cid) => {
            let cid = parse_cid(&cid)?;
            let options = query.pin_options()?;
            shared.json(StatusCode::OK, &backend.pin(cid, options).await?)
        }
        Route::Unpin(cid) => {
            let cid = parse_cid(&cid)?;
            // Go parses (and ignores) pin options here; a malformed query is still refused.
            query.pin_options()?;
            shared.json(StatusCode::OK, &backend.unpin(cid).await?)
        }
        Route::PinPath(path) => {
            let options = query.pin_options()?;
            shared.json(StatusCode::OK, &backend.pin_path(path, options).await?)
        }
        Route::UnpinPath(path) => shared.json(StatusCode::OK, &backend.unpin_path(path).await?),
        Route::Allocations => {
            let mask = allocation_filter(query.get("filter"))?;
            shared.stream(backend.allocations(mask).await, trailers).await
        }
        Route::Allocation(cid) => {
            let cid = parse_cid(&cid)?;
            shared.json(StatusCode::OK, &backend.allocation(cid).await?)
        }
        Route::PeerAdd => {
            let request: PeerAddBody = serde_json::from_slice(body)
                .map_err(|e| Failure::bad_request(format!("error decoding request body: {e}")))?;
            let peer = parse_peer(&request.peer_id)?;
            shared.json(StatusCode::OK, &backend.peer_add(peer, request.addresses).await?)
        }
        Route::PeerRemove(peer) => {
            let peer = parse_peer(&peer)?;
            backend.peer_remove(peer).await?;
            shared.response(StatusCode::NO_CONTENT, ResponseBody::Empty)
        }
        Route::MetricNames => shared.json(StatusCode::OK, &backend.metric_names().await),
        Route::Metrics(name) => shared.json(StatusCode::OK, &backend.metrics(name).await),
        Route::Alerts => shared.json(StatusCode::OK, &backend.alerts().await),
        Route::Graph => shared.json(StatusCode::OK, &backend.connect_graph().await?),
        Route::Bandwidth => shared.json(StatusCode::OK, &backend.bandwidth().await),
        Route::RepoGc => {
            let local = query.local();
            shared.json(StatusCode::OK, &backend.repo_gc(local).await?)
        }
        // Answered before dispatch (it needs the request body).
        Route::Add => return Err(Failure::bad_request("add needs a multipart body")),
        Route::Token => match user.and_then(|u| shared.credentials.as_ref()?.issue_token(&u)) {
            Some(token) => shared.json(StatusCode::OK, &serde_json::json!({ "token": token })),
            // Tokens exist only with basic auth configured (Go answers the same).
            None => {
                return Err(Failure {
                    status: StatusCode::UNAUTHORIZED,
                    message: "unauthorized".into(),
                })
            }
        },
    })
}

/// `POST /add`: checks every parameter and the body's type, chooses where the blocks go, then
/// streams the output lines (NDJSON), or answers them as one JSON array when
/// `stream-channels=false`.
async fn add(
    shared: &Shared,
    query: &Query,
    request: Request<Incoming>,
    trailers: bool,
) -> Result<Response<ResponseBody>, Failure> {
    let pin = query.pin_options()?;
    let get = |key: &str| query.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let params = AddParams::parse(&get, pin).map_err(Failure::bad_request)?;
    let content_type = header_text(request.headers(), "content-type");
    let boundary = multipart_boundary(content_type.as_deref()).map_err(Failure::bad_request)?;
    let destinations = shared.backend.add_destinations(&params.pin, params.local).await?;
    let stream_channels = params.stream_channels;
    let lines = run_add(
        shared.backend.clone(),
        params,
        destinations,
        body_stream(request.into_body()),
        boundary,
    );
    let mut response = if stream_channels {
        shared.stream_from_the_start(lines, trailers)
    } else {
        let all = collect_all(lines).await?;
        // Go encodes an empty result as `null`.
        if all.is_empty() {
            shared.json(StatusCode::OK, &Option::<Vec<AddedOutput>>::None)
        } else {
            shared.json(StatusCode::OK, &all)
        }
    };
    let headers = response.headers_mut();
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    // Go asks the client to close: the upload may not have been read to its end.
    headers.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    if stream_channels {
        headers.insert("x-chunked-output", HeaderValue::from_static("1"));
    }
    Ok(response)
}

/// The body of `POST /peers`: Go's `{"peer_id": ..}`, plus optional addresses to dial.
#[derive(serde::Deserialize)]
struct PeerAddBody {
    peer_id: String,
    #[serde(default)]
    addresses: Vec<String>,
}

/// User input quoted in an error: at most 100 characters of it.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(100) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

fn parse_peer(text: &str) -> Result<PeerId, Failure> {
    text.parse::<PeerId>()
        .map_err(|e| Failure::bad_request(format!("error decoding peer ID {:?}: {e}", shortened(text))))
}

/// Request bodies of routes that take JSON are small; larger ones are refused, not buffered.
const SMALL_BODY_LIMIT: usize = 64 * 1024;

async fn read_small_body(body: Incoming) -> Result<Bytes, Failure> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, SMALL_BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(Failure::bad_request(format!("error reading request body: {e}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Response encoding

impl Shared {
    /// A response with the configured headers and `Content-Type: application/json` (which wins over
    /// a configured one, as in Go where it is set last).
    fn response(&self, status: StatusCode, body: ResponseBody) -> Response<ResponseBody> {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }

    /// One JSON value followed by a newline (Go's `json.Encoder` output).
    fn json<T: Serialize>(&self, status: StatusCode, value: &T) -> Response<ResponseBody> {
        match encode_line(value) {
            Ok(line) => self.response(status, ResponseBody::Full(Some(line))),
            Err(message) => self.failure(Failure {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message,
            }),
        }
    }

    /// The `{"code","message"}` error body.
    fn failure(&self, failure: Failure) -> Response<ResponseBody> {
        let body = ApiError {
            code: failure.status.as_u16(),
            message: failure.message,
        };
        let line = encode_line(&body).unwrap_or_else(|_| Bytes::from_static(b"{\"code\":500,\"message\":\"\"}\n"));
        self.response(failure.status, ResponseBody::Full(Some(line)))
    }

    /// An NDJSON stream response (reference §1.4). Waits for the first item to choose the status:
    /// 204 when the stream is empty, 500 when it starts with an error, else 200 and the items as
    /// they come.
    async fn stream<T: JsonLine + Send + 'static>(
        &self,
        mut items: ResultStream<T>,
        trailers: bool,
    ) -> Response<ResponseBody> {
        let mut response = match items.recv().await {
            None => self.response(StatusCode::NO_CONTENT, ResponseBody::Empty),
            Some(Err(error)) => self.failure(Failure {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: error.to_string(),
            }),
            Some(Ok(item)) => match first_line(&item) {
                Ok(first) => self.response(
                    StatusCode::OK,
                    ResponseBody::Stream(Box::new(NdjsonBody {
                        first: Some(first),
                        source: Box::new(ChannelSource(items)),
                        errors: Vec::new(),
                        omitted_errors: 0,
                        trailers,
                        source_ended: false,
                        finished: false,
                    })),
                ),
                Err(message) => self.failure(Failure {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message,
                }),
            },
        };
        response
            .headers_mut()
            .insert(TRAILER, HeaderValue::from_static("X-Stream-Error"));
        response
    }

    /// A 200 NDJSON stream at once, whatever comes (Go's `/add`): even the first error, or no
    /// item at all, goes in the `X-Stream-Error` trailer.
    fn stream_from_the_start<T: JsonLine + Send + 'static>(
        &self,
        items: ResultStream<T>,
        trailers: bool,
    ) -> Response<ResponseBody> {
        let mut response = self.response(
            StatusCode::OK,
            ResponseBody::Stream(Box::new(NdjsonBody {
                first: None,
                source: Box::new(ChannelSource(items)),
                errors: Vec::new(),
                omitted_errors: 0,
                trailers,
                source_ended: false,
                finished: false,
            })),
        );
        response
            .headers_mut()
            .insert(TRAILER, HeaderValue::from_static("X-Stream-Error"));
        response
    }
}

/// Appends compact JSON plus `\n` to `out`; on error `out` is as it was.
fn append_line<T: JsonLine>(out: &mut Vec<u8>, value: &T) -> Result<(), String> {
    let start = out.len();
    match value.write_json(out) {
        Ok(()) => {
            out.push(b'\n');
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(format!("error encoding response: {e}"))
        }
    }
}

/// The first line of a stream.
fn first_line<T: JsonLine>(value: &T) -> Result<Bytes, String> {
    let mut line = Vec::new();
    append_line(&mut line, value)?;
    Ok(Bytes::from(line))
}

/// Compact JSON plus `\n`.
fn encode_line<T: Serialize>(value: &T) -> Result<Bytes, String> {
    let mut line = serde_json::to_vec(value).map_err(|e| format!("error encoding response: {e}"))?;
    line.push(b'\n');
    Ok(Bytes::from(line))
}

/// Makes an error message a valid header value: control characters become spaces, and long
/// messages are cut at a character boundary.
fn header_safe(message: &str) -> HeaderValue {
    let mut end = message.len().min(MAX_STREAM_ERROR_LEN);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let cleaned: String = message[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    HeaderValue::from_str(&cleaned).unwrap_or_else(|_| HeaderValue::from_static("stream error"))
}

/// The body of every response.
enum ResponseBody {
    Empty,
    Full(Option<Bytes>),
    Stream(Box<NdjsonBody>),
}

/// Why a streamed body was cut short (see the module docs: no trailer could carry the error).
#[derive(Debug, thiserror::Error)]
#[error("stream failed and the client does not accept trailers: {0}")]
struct StreamAborted(String);

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = StreamAborted;

    fn poll_frame(
        self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.get_mut() {
            ResponseBody::Empty => Poll::Ready(None),
            ResponseBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ResponseBody::Stream(stream) => stream.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Empty => true,
            ResponseBody::Full(data) => data.is_none(),
            ResponseBody::Stream(stream) => stream.finished,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Empty | ResponseBody::Full(None) => SizeHint::with_exact(0),
            ResponseBody::Full(Some(data)) => SizeHint::with_exact(data.len() as u64),
            // Unknown length: hyper uses chunked encoding, which trailers need.
            ResponseBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// Where NDJSON lines come from; object-safe so the body need not be generic.
trait LineSource: Send {
    /// Appends the next encoded line to `out`; or gives an error message, or `None` at the end.
    fn poll_line_into(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Poll<Option<Result<(), String>>>;
}

struct ChannelSource<T>(ResultStream<T>);

impl<T: JsonLine + Send> LineSource for ChannelSource<T> {
    fn poll_line_into(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Poll<Option<Result<(), String>>> {
        self.0.poll_recv(cx).map(|item| {
            item.map(|result| match result {
                Ok(value) => append_line(out, &value),
                Err(error) => Err(error.to_string()),
            })
        })
    }
}

/// An NDJSON body: one line per item, produced as the backend yields them (never buffered), then
/// the `X-Stream-Error` trailer.
struct NdjsonBody {
    first: Option<Bytes>,
    source: Box<dyn LineSource>,
    errors: Vec<String>,
    omitted_errors: usize,
    /// Whether the client sent `TE: trailers`.
    trailers: bool,
    /// The source said it has no more lines (the trailers are still to go).
    source_ended: bool,
    finished: bool,
}

impl NdjsonBody {
    fn record_error(&mut self, message: String) {
        tracing::warn!(error = %message, "REST API: error in a streamed response");
        if self.errors.len() < MAX_STREAM_ERRORS {
            self.errors.push(message);
        } else {
            self.omitted_errors += 1;
        }
    }

    fn trailer_map(&self) -> HeaderMap {
        let name = HeaderName::from_static(STREAM_ERROR_TRAILER);
        let mut map = HeaderMap::new();
        if self.errors.is_empty() {
            // Always present, empty when fine (Go does this for browser clients).
            map.insert(name.clone(), HeaderValue::from_static(""));
        }
        for error in &self.errors {
            map.append(name.clone(), header_safe(error));
        }
        if self.omitted_errors > 0 {
            map.append(
                name,
                header_safe(&format!("{} more errors omitted", self.omitted_errors)),
            );
        }
        map
    }

    /// The lines ready now, up to [`FRAME_TARGET`] bytes, go out as one frame (one chunk, one
    /// write), so a fast source is not written a line at a time; a slow one is not waited for.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StreamAborted>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if self.finished {
            return Poll::Ready(None);
        }
        let mut batch = Vec::new();
        let mut waiting = false;
        for _ in 0..MAX_ITEMS_PER_POLL {
            match self.source.poll_line_into(cx, &mut batch) {
                Poll::Pending => {
                    waiting = true;
                    break;
                }
                Poll::Ready(Some(Ok(()))) => {
                    if batch.len() >= FRAME_TARGET {
                        break;
                    }
                }
                // Later items still go out; the error is reported at the end.
                Poll::Ready(Some(Err(message))) => self.record_error(message),
                Poll::Ready(None) => {
                    self.source_ended = true;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(batch)))));
        }
        if self.source_ended {
            self.finished = true;
            if !self.errors.is_empty() && !self.trailers {
                return Poll::Ready(Some(Err(StreamAborted(self.errors.join("; ")))));
            }
            return Poll::Ready(Some(Ok(Frame::trailers(self.trailer_map()))));
        }
        if !waiting {
            // Only errors so far in this poll: let other tasks run, then continue.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(path: &str) -> Vec<String> {
        path_segments(path).unwrap()
    }

    #[test]
    fn routes_match_reference_table() {
        let cid = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9";
        assert_eq!(route(&Method::POST, &segs("/pins/recover")), Ok(Route::RecoverAll));
        assert_eq!(
            route(&Method::GET, &segs("/pins/recover")),
            Err(NoRoute::MethodNotAllowed("POST"))
        );
        assert_eq!(
            route(&Method::POST, &segs(&format!("/pins/{cid}/recover"))),
            Ok(Route::Recover(cid.into()))
        );
        assert_eq!(
            route(&Method::POST, &segs(&format!("/pins/ipfs/{cid}/a/b"))),
            Ok(Route::PinPath(format!("/ipfs/{cid}/a/b")))
        );
        assert_eq!(
            route(&Method::DELETE, &segs("/pins/ipns/example.com")),
            Ok(Route::UnpinPath("/ipns/example.com".into()))
        );
        assert_eq!(
            route(&Method::GET, &segs("/pins/ipld")),
            Ok(Route::Status("ipld".into()))
        );
        assert_eq!(route(&Method::GET, &segs("/")), Err(NoRoute::NotFound));
        assert_eq!(route(&Method::GET, &segs("/pins/a/b/c")), Err(NoRoute::NotFound));
        assert_eq!(
            route(&Method::PUT, &segs("/health")),
            Err(NoRoute::MethodNotAllowed("GET"))
        );
    }

    #[test]
    fn path_segments_decode_percent_escapes() {
        assert_eq!(segs("/pins/ipns/a%20b+c"), vec!["pins", "ipns", "a b+c"]);
        assert_eq!(path_segments("/pins/%FF"), None);
        assert_eq!(path_segments("*"), None);
        assert_eq!(segs("/"), Vec::<String>::new());
    }

    #[test]
    fn local_is_exactly_true_as_in_go() {
        for (text, want) in [
            ("", false),
            ("true", true),
            ("1", false),
            ("True", false),
            ("yes", false),
        ] {
            let q = Query::parse(Some(&format!("local={text}")));
            assert_eq!(q.local(), want, "{text}");
        }
        assert!(!Query::parse(None).local());
    }

    #[test]
    fn allocation_filter_rejects_only_unknown_lists() {
        assert_eq!(allocation_filter("").ok(), Some(2 | 4 | 8 | 16));
        assert_eq!(allocation_filter("pin").ok(), Some(2));
        assert_eq!(allocation_filter("pin,bogus").ok(), Some(2));
        assert!(allocation_filter("bogus").is_err());
    }

    #[test]
    fn header_safe_strips_controls_and_truncates() {
        assert_eq!(header_safe("a\nb\r\tc").to_str().unwrap(), "a b  c");
        let long = "é".repeat(MAX_STREAM_ERROR_LEN);
        assert!(header_safe(&long).len() <= MAX_STREAM_ERROR_LEN);
    }

    #[test]
    fn accepts_trailers_reads_te_lists() {
        let mut headers = HeaderMap::new();
        assert!(!accepts_trailers(&headers));
        headers.insert(TE, HeaderValue::from_static("gzip, Trailers"));
        assert!(accepts_trailers(&headers));
    }
}
