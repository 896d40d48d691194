//! The HTTP side of the REST API: authentication, CORS, dispatch of each route to the backend,
//! and the responses (JSON, NDJSON streams, error bodies). Routes and their parameters are
//! read in [`crate::rest_request`], response bodies streamed by [`crate::ndjson_body`];
//! connections are served by [`crate::http_server`].
//!
//! Owns the wire behaviour of reference §1.1–§1.5 for the routes [`RestBackend`] covers. Each route
//! parses and validates all of its input first and calls the backend only when everything is valid.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use cluster_rt::tokio;
use cluster_types::{AddedOutput, ApiError, HttpAddress, JsonLine, TrackerStatusFilter, Version, VERSION};
use hyper::body::Incoming;
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
use crate::ndjson_body::{encode_line, first_line, ndjson, ndjson_pages, ResponseBody};
use crate::rest_request::{
    allocation_filter, parse_cid, parse_peer, path_segments, route, Failure, NoRoute, Query, Route,
};
use crate::TlsFiles;
use crate::{PageStream, RestBackend, ResultStream};

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
            shared.stream_pages(backend.allocations(mask).await, trailers).await
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
    let get = |key: &str| query.find(key).map(str::to_string);
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
        let first = items.recv().await.map(|item| {
            item.map_err(|error| error.to_string())
                .and_then(|item| first_line(&item))
        });
        self.stream_opening(first, |line| ndjson(Some(line), items, trailers))
    }

    /// [`Self::stream`] for a stream of pages; empty pages do not count as the first item.
    async fn stream_pages<T: JsonLine + Send + 'static>(
        &self,
        mut pages: PageStream<T>,
        trailers: bool,
    ) -> Response<ResponseBody> {
        let mut page = Vec::new().into_iter();
        let first = loop {
            match pages.recv().await {
                Some(Ok(items)) if items.is_empty() => continue,
                Some(Ok(items)) => {
                    page = items.into_iter();
                    break page.next().map(|item| first_line(&item));
                }
                Some(Err(error)) => break Some(Err(error.to_string())),
                None => break None,
            }
        };
        self.stream_opening(first, |line| ndjson_pages(line, page, pages, trailers))
    }

    /// The response of a stream whose first line is `first` (`None`: the stream is empty).
    fn stream_opening(
        &self,
        first: Option<Result<Bytes, String>>,
        body: impl FnOnce(Bytes) -> ResponseBody,
    ) -> Response<ResponseBody> {
        let mut response = match first {
            None => self.response(StatusCode::NO_CONTENT, ResponseBody::Empty),
            Some(Err(message)) => self.failure(Failure {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message,
            }),
            Some(Ok(line)) => self.response(StatusCode::OK, body(line)),
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
        let mut response = self.response(StatusCode::OK, ndjson(None, items, trailers));
        response
            .headers_mut()
            .insert(TRAILER, HeaderValue::from_static("X-Stream-Error"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_trailers_reads_te_lists() {
        let mut headers = HeaderMap::new();
        assert!(!accepts_trailers(&headers));
        headers.insert(TE, HeaderValue::from_static("gzip, Trailers"));
        assert!(accepts_trailers(&headers));
    }
}
