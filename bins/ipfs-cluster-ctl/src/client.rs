//! The HTTP side: where the API is (`--host` parsing), credentials, and sending requests with
//! hyper (TCP, TLS, Unix sockets, libp2p). The paths are built in `paths.rs`; answers are read
//! in `answers.rs`, as Go's `api/rest/client/request.go` does.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use cluster_types::ApiError;
use http::header::{AUTHORIZATION, TE};
use http::{Method, Request, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use multiaddr::{Multiaddr, Protocol};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::answers::{api_error_from, decode_value, trailer_error, NdjsonDecoder};
use crate::error::CtlError;

/// Largest non-streamed response body we accept; real answers are a few KiB.
const MAX_BODY_BYTES: usize = 64 << 20;
/// How long to wait for a TCP connection (Go's default dialer uses 30 s too).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One API address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// HTTP or HTTPS over TCP.
    Http {
        /// `host:port` (IPv6 hosts in brackets).
        authority: String,
        /// Whether the address asked for HTTPS (`/https`, `/tls` or `https://`).
        https: bool,
    },
    /// HTTP over a Unix socket (`/unix/<path>`).
    Unix(std::path::PathBuf),
    /// HTTP over a libp2p stream to the member's cluster host (`/ip4/../tcp/9096/p2p/<id>`,
    /// or a `/dnsaddr/<domain>` whose TXT records name it), through the private network keyed
    /// by `--secret`.
    Libp2p(Multiaddr),
}

/// How long to wait for a connection to be made (Go's default dialer uses 30 s too).
const LIBP2P_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Parses `--host`: a comma-separated list of `/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>[/http|/https]`
/// multiaddresses, `http(s)://host:port` URLs, `/unix/<path>` sockets and libp2p peer addresses
/// (`/ip4/<host>/tcp/<port>/p2p/<peer id>`, `/dnsaddr/<domain>`), as Go's client.
pub fn parse_hosts(text: &str) -> Result<Vec<Endpoint>, String> {
    text.split(',').map(str::trim).map(parse_host).collect()
}

/// Parses one `--host` address.
pub fn parse_host(text: &str) -> Result<Endpoint, String> {
    if text.starts_with("http://") || text.starts_with("https://") {
        let url = url::Url::parse(text).map_err(|e| format!("invalid URL {text:?}: {e}"))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("no host in {text:?}"))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("no port in {text:?}"))?;
        return Ok(Endpoint::Http {
            authority: format!("{host}:{port}"),
            https: url.scheme() == "https",
        });
    }
    if let Some(path) = text.strip_prefix("/unix/") {
        // As Go's multiaddr: the path runs to the end of the address.
        if path.is_empty() {
            return Err(format!("{text:?} has no socket path"));
        }
        return Ok(Endpoint::Unix(format!("/{path}").into()));
    }
    let address: Multiaddr = text
        .parse()
        .map_err(|e| format!("invalid multiaddress {text:?}: {e}"))?;
    // Go's IsPeerAddress: a /p2p/ part or a /dnsaddr (its TXT records carry the peer ids).
    if matches!(address.iter().next(), Some(Protocol::Dnsaddr(_))) {
        return Ok(Endpoint::Libp2p(address));
    }
    if address.iter().any(|p| matches!(p, Protocol::P2p(_))) {
        if !matches!(
            address.iter().next(),
            Some(Protocol::Ip4(_) | Protocol::Ip6(_) | Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_))
        ) {
            // Go's client: "APIAddr only includes a Peer ID"; we have no peer routing either.
            return Err(format!(
                "{text:?}: a libp2p address needs /ip4|ip6|dns/<host>/tcp/<port> before /p2p/"
            ));
        }
        return Ok(Endpoint::Libp2p(address));
    }
    let mut parts = address.iter();
    let host = match parts.next() {
        Some(Protocol::Ip4(ip)) => ip.to_string(),
        Some(Protocol::Ip6(ip)) => format!("[{ip}]"),
        Some(Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name)) => name.to_string(),
        _ => {
            return Err(format!(
                "{text:?} must start with /ip4, /ip6, /dns, /dns4, /dns6 or /unix"
            ))
        }
    };
    let port = match parts.next() {
        Some(Protocol::Tcp(port)) => port,
        _ => return Err(format!("{text:?} has no /tcp/<port> after the host")),
    };
    let mut https = false;
    for part in parts {
        match part {
            Protocol::Http => {}
            Protocol::Https | Protocol::Tls => https = true,
            other => return Err(format!("unsupported protocol {other} in {text:?}")),
        }
    }
    Ok(Endpoint::Http {
        authority: format!("{host}:{port}"),
        https,
    })
}

/// Basic-auth credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password, possibly empty.
    pub password: String,
}

/// Parses `--basic-auth user[:password]`; an empty user means no credentials (as Go).
pub fn parse_credentials(text: &str) -> Option<Credentials> {
    let (user, password) = text.split_once(':').unwrap_or((text, ""));
    (!user.is_empty()).then(|| Credentials {
        user: user.to_string(),
        password: password.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// Request paths, as the Go client builds them.

// ---------------------------------------------------------------------------------------------
// Decoding.

// ---------------------------------------------------------------------------------------------
// The client.

/// How to reach the API.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Addresses to try in order; the next one is tried only when connecting fails.
    pub endpoints: Vec<Endpoint>,
    /// Basic-auth credentials to send.
    pub credentials: Option<Credentials>,
    /// Deadline for each whole request, body included (`--timeout`); `None` = no deadline.
    pub timeout: Option<Duration>,
    /// Log requests and response codes on stderr (`--debug`).
    pub debug: bool,
    /// Use HTTPS for every endpoint (`--https`, or implied by basic auth).
    pub https: bool,
    /// Accept any server certificate (`--no-check-certificate`).
    pub no_check_certificate: bool,
    /// The cluster secret for libp2p endpoints (`--secret`, 32 bytes); empty for an open network.
    pub secret: Vec<u8>,
}

/// A request body: empty, or an upload streamed from disk.
pub type RequestBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// Makes a fresh upload body and its content type, once per endpoint tried.
pub type Upload<'a> = &'a dyn Fn() -> Result<(RequestBody, String), CtlError>;

fn empty_body() -> RequestBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// `--no-check-certificate`: every server certificate is accepted (signatures are still
/// checked, so the connection is encrypted, but to whoever answers).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A REST API client.
pub struct Client {
    http: hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, RequestBody>,
    /// For `add <url>` downloads: always verifies certificates (`--no-check-certificate` is
    /// about the cluster's API, not about content from elsewhere).
    downloads: hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, RequestBody>,
    /// Connections to libp2p endpoints, made on first use and kept for the command's life.
    tunnels: tokio::sync::Mutex<std::collections::HashMap<Multiaddr, Arc<cluster_p2p::HttpTunnelClient>>>,
    config: ClientConfig,
}

/// Renders an error with its sources: `outer: inner: innermost`.
/// When `error` says nothing listens where the client dialled (a refused connection, a missing
/// socket file), what that means and what to do, for the end of the message.
fn nobody_there_hint(error: &(dyn std::error::Error + 'static), place: &str) -> String {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(inner) = cause {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            ) {
                return format!(
                    "; no cluster member is running at {place} (start one with `ipfs-cluster-service daemon`, or point --host at a running member's REST API)"
                );
            }
        }
        cause = inner.source();
    }
    String::new()
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

impl Client {
    /// A client for `config`. HTTPS verifies the server against the system's trusted roots,
    /// unless `no_check_certificate`.
    pub fn new(config: ClientConfig) -> Result<Client, CtlError> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        // hyper-rustls refuses plain http URIs unless told otherwise; ours say https explicitly.
        connector.enforce_http(false);
        // An upload is many small writes (a part's headers, a small file): with Nagle's
        // algorithm each waits for the server's delayed ACK, 40 ms a file.
        connector.set_nodelay(true);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = if config.no_check_certificate {
            let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| CtlError::local("setting up TLS", e))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            builder.with_tls_config(tls)
        } else {
            builder
                .with_provider_and_native_roots(provider)
                .map_err(|e| CtlError::local("loading the system's trusted certificates", e))?
        };
        let https = builder.https_or_http().enable_http1().wrap_connector(connector.clone());
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https);
        let verifying = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(Arc::new(rustls::crypto::ring::default_provider()))
            .map_err(|e| CtlError::local("loading the system's trusted certificates", e))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let downloads = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(verifying);
        Ok(Client {
            http,
            downloads,
            tunnels: Default::default(),
            config,
        })
    }

    /// Sends a request and decodes a JSON object; `None` for 202/204 (no content).
    pub async fn call<T: DeserializeOwned>(&self, method: Method, path: &str) -> Result<Option<T>, CtlError> {
        self.with_timeout(self.call_inner(method, path)).await
    }

    /// Sends a request whose answer is an NDJSON stream and hands each decoded item to `on_item`
    /// as it arrives.
    pub async fn stream<T, F>(&self, method: Method, path: &str, on_item: F) -> Result<(), CtlError>
    where
        T: DeserializeOwned,
        F: FnMut(T) -> Result<(), CtlError>,
    {
        self.with_timeout(self.stream_inner(method, path, None, on_item)).await
    }

    /// Downloads `url` (http or https, no credentials sent) into the file `dest`, streaming.
    pub async fn download(&self, url: &str, dest: &std::path::Path) -> Result<(), CtlError> {
        use std::io::Write as _;
        let doing = format!("downloading {url}");
        let request = Request::builder()
            .method(Method::GET)
            .uri(url)
            .body(empty_body())
            .map_err(|e| CtlError::local(&doing, e))?;
        let response = self
            .downloads
            .request(request)
            .await
            .map_err(|e| CtlError::local(&doing, error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(CtlError::local(&doing, format!("HTTP {}", response.status())));
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| CtlError::local(&doing, e))?;
        }
        let mut file = std::fs::File::create(dest).map_err(|e| CtlError::local(&doing, e))?;
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| CtlError::local(&doing, error_chain(&e)))?;
            if let Some(data) = frame.data_ref() {
                file.write_all(data).map_err(|e| CtlError::local(&doing, e))?;
            }
        }
        Ok(())
    }

    /// `POST`s an upload and hands each item of the NDJSON answer to `on_item` as it arrives.
    pub async fn upload<T, F>(&self, path: &str, upload: Upload<'_>, on_item: F) -> Result<(), CtlError>
    where
        T: DeserializeOwned,
        F: FnMut(T) -> Result<(), CtlError>,
    {
        self.with_timeout(self.stream_inner(Method::POST, path, Some(upload), on_item))
            .await
    }

    async fn with_timeout<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, CtlError>>,
    ) -> Result<T, CtlError> {
        match self.config.timeout {
            Some(limit) => match tokio::time::timeout(limit, work).await {
                Ok(result) => result,
                Err(_) => Err(CtlError::Deadline {
                    doing: format!("performing request (--timeout {}s)", limit.as_secs()),
                    note: None,
                }),
            },
            None => work.await,
        }
    }

    async fn call_inner<T: DeserializeOwned>(&self, method: Method, path: &str) -> Result<Option<T>, CtlError> {
        let response = self.send(&method, path, false, None).await?;
        let status = response.status();
        let body = read_body(response.into_body()).await?;
        if status.is_client_error() || status.is_server_error() {
            return Err(CtlError::Api(api_error_from(status, &body)));
        }
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let value: Value = serde_json::from_slice(&body).map_err(|e| CtlError::local("decoding response", e))?;
        decode_value(value)
            .map(Some)
            .map_err(|e| CtlError::local("decoding response", e))
    }

    async fn stream_inner<T, F>(
        &self,
        method: Method,
        path: &str,
        upload: Option<Upload<'_>>,
        mut on_item: F,
    ) -> Result<(), CtlError>
    where
        T: DeserializeOwned,
        F: FnMut(T) -> Result<(), CtlError>,
    {
        let response = self.send(&method, path, true, upload).await?;
        let status = response.status();
        if status.is_client_error() || status.is_server_error() {
            let body = read_body(response.into_body()).await?;
            return Err(CtlError::Api(api_error_from(status, &body)));
        }
        if status != StatusCode::OK && status != StatusCode::NO_CONTENT {
            return Err(CtlError::Api(ApiError {
                code: status.as_u16(),
                message: "expected streaming response with code 200/204".into(),
            }));
        }
        let mut body = response.into_body();
        let mut decoder = NdjsonDecoder::default();
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| CtlError::transport(error_chain(&e)))?;
            let frame = match frame.into_data() {
                Ok(data) => {
                    let values = decoder.push(&data).map_err(|e| CtlError::local("decoding stream", e))?;
                    for value in values {
                        let item = decode_value(value).map_err(|e| CtlError::local("decoding stream", e))?;
                        on_item(item)?;
                    }
                    continue;
                }
                Err(frame) => frame,
            };
            if let Ok(map) = frame.into_trailers() {
                trailers = Some(map);
            }
        }
        decoder.finish().map_err(|e| CtlError::local("decoding stream", e))?;
        match trailer_error(trailers.as_ref()) {
            Some(error) => Err(CtlError::Api(error)),
            None => Ok(()),
        }
    }

    /// Sends one request, trying the next endpoint only when the connection could not be made
    /// (so a request is never sent twice).
    async fn send(
        &self,
        method: &Method,
        path: &str,
        stream: bool,
        upload: Option<Upload<'_>>,
    ) -> Result<http::Response<hyper::body::Incoming>, CtlError> {
        let mut last_error = String::from("no API endpoint configured");
        for endpoint in &self.config.endpoints {
            // Unix sockets and libp2p streams get origin-form requests with Go's Host values.
            let (uri, host) = match endpoint {
                Endpoint::Http { authority, https } => {
                    let scheme = if self.config.https || *https { "https" } else { "http" };
                    (format!("{scheme}://{authority}{path}"), None)
                }
                Endpoint::Unix(_) => (path.to_string(), Some("restapi".to_string())),
                // The Host of a libp2p request is the member's peer id, known once connected.
                Endpoint::Libp2p(_) => (path.to_string(), None),
            };
            let shown = match endpoint {
                Endpoint::Http { .. } => uri.clone(),
                Endpoint::Unix(socket) => format!("http+unix://{}{path}", socket.display()),
                Endpoint::Libp2p(address) => format!("libp2p://{address}{path}"),
            };
            let mut request = Request::builder().method(method.clone()).uri(&uri);
            if let Some(host) = &host {
                request = request.header(http::header::HOST, host);
            }
            if let Some(credentials) = &self.config.credentials {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", credentials.user, credentials.password));
                request = request.header(AUTHORIZATION, format!("Basic {token}"));
            }
            if stream {
                // Without it a hyper server does not send the X-Stream-Error trailer.
                request = request.header(TE, "trailers");
            }
            let body = match upload {
                Some(make) => {
                    let (body, content_type) = make()?;
                    request = request.header(http::header::CONTENT_TYPE, content_type);
                    body
                }
                None => empty_body(),
            };
            let request = request.body(body).map_err(|e| CtlError::local("building request", e))?;
            if self.config.debug {
                eprintln!("DEBUG: {method} {shown}");
            }
            let sent = match endpoint {
                Endpoint::Http { authority, .. } => self.http.request(request).await.map_err(|e| Failure {
                    connecting: e.is_connect(),
                    message: format!("{}{}", error_chain(&e), nobody_there_hint(&e, authority)),
                }),
                Endpoint::Unix(socket) => match tokio::net::UnixStream::connect(socket).await {
                    Ok(stream) => send_on(stream, request).await,
                    Err(e) => Err(Failure {
                        connecting: true,
                        message: format!(
                            "dial unix {}: {e}{}",
                            socket.display(),
                            nobody_there_hint(&e, &socket.display().to_string())
                        ),
                    }),
                },
                Endpoint::Libp2p(address) => match self.tunnel_stream(address).await {
                    Ok((stream, peer)) => {
                        let mut request = request;
                        if let Ok(host) = http::HeaderValue::from_str(&peer) {
                            request.headers_mut().insert(http::header::HOST, host);
                        }
                        send_on(stream, request).await
                    }
                    Err(message) => Err(Failure {
                        connecting: true,
                        message,
                    }),
                },
            };
            match sent {
                Ok(response) => {
                    if self.config.debug {
                        eprintln!("DEBUG: response status {}", response.status());
                    }
                    return Ok(response);
                }
                Err(Failure {
                    connecting: true,
                    message,
                }) => last_error = format!("{method} {shown:?}: {message}"),
                Err(Failure { message, .. }) => {
                    return Err(CtlError::transport(format!("{method} {shown:?}: {message}")))
                }
            }
        }
        Err(CtlError::transport(last_error))
    }

    /// A new stream to the libp2p endpoint at `address`, connecting on first use, and the
    /// member's peer id.
    async fn tunnel_stream(&self, address: &Multiaddr) -> Result<(cluster_p2p::HttpStream, String), String> {
        let tunnel = {
            let mut tunnels = self.tunnels.lock().await;
            match tunnels.get(address) {
                Some(tunnel) => tunnel.clone(),
                None => {
                    let tunnel =
                        cluster_p2p::HttpTunnelClient::connect(&self.config.secret, address, LIBP2P_CONNECT_TIMEOUT)
                            .await
                            .map_err(|e| {
                                let hint = if self.config.secret.is_empty() {
                                    " (members of a private cluster need --secret)"
                                } else {
                                    " (is --secret the cluster's secret?)"
                                };
                                format!("{e}{hint}")
                            })?;
                    let tunnel = Arc::new(tunnel);
                    tunnels.insert(address.clone(), tunnel.clone());
                    tunnel
                }
            }
        };
        let stream = tokio::time::timeout(LIBP2P_CONNECT_TIMEOUT, tunnel.open())
            .await
            .map_err(|_| format!("no stream to {} within {LIBP2P_CONNECT_TIMEOUT:?}", tunnel.peer()))?
            .map_err(|e| e.to_string())?;
        Ok((stream, tunnel.peer().to_string()))
    }
}

/// Why a request got no response, and whether it never reached the server (the next endpoint
/// may then be tried without sending the request twice).
struct Failure {
    connecting: bool,
    message: String,
}

/// Sends `request` as the only one on a new HTTP/1.1 connection over `io`.
async fn send_on<S>(io: S, request: Request<RequestBody>) -> Result<http::Response<hyper::body::Incoming>, Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| Failure {
            connecting: true,
            message: error_chain(&e),
        })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender.send_request(request).await.map_err(|e| Failure {
        connecting: false,
        message: error_chain(&e),
    })
}

async fn read_body(mut body: hyper::body::Incoming) -> Result<Vec<u8>, CtlError> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CtlError::transport(error_chain(&e)))?;
        if let Some(data) = frame.data_ref() {
            if bytes.len() + data.len() > MAX_BODY_BYTES {
                return Err(CtlError::local(
                    "reading response",
                    format!("body larger than {MAX_BODY_BYTES} bytes"),
                ));
            }
            bytes.extend_from_slice(data);
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(authority: &str, https: bool) -> Endpoint {
        Endpoint::Http {
            authority: authority.into(),
            https,
        }
    }

    #[test]
    fn hosts_parse_from_multiaddrs_and_urls() {
        assert_eq!(
            parse_host("/ip4/127.0.0.1/tcp/9094").unwrap(),
            endpoint("127.0.0.1:9094", false)
        );
        assert_eq!(parse_host("/ip6/::1/tcp/9094").unwrap(), endpoint("[::1]:9094", false));
        assert_eq!(
            parse_host("/dns4/cluster.example/tcp/80/http").unwrap(),
            endpoint("cluster.example:80", false)
        );
        assert_eq!(
            parse_host("/dns/cluster.example/tcp/443/https").unwrap(),
            endpoint("cluster.example:443", true)
        );
        assert_eq!(parse_host("/dns6/h/tcp/1").unwrap(), endpoint("h:1", false));
        assert_eq!(
            parse_host("http://localhost:9094").unwrap(),
            endpoint("localhost:9094", false)
        );
        assert_eq!(parse_host("http://[::1]:9094/").unwrap(), endpoint("[::1]:9094", false));
        assert_eq!(parse_host("https://h").unwrap(), endpoint("h:443", true));
        assert_eq!(
            parse_hosts("/ip4/10.0.0.1/tcp/9094,/ip4/10.0.0.2/tcp/9094").unwrap(),
            vec![endpoint("10.0.0.1:9094", false), endpoint("10.0.0.2:9094", false)]
        );
        assert_eq!(
            parse_host("/unix/run/cluster/api.sock").unwrap(),
            Endpoint::Unix("/run/cluster/api.sock".into())
        );
        let peer = "/ip4/1.2.3.4/tcp/9096/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
        assert_eq!(parse_host(peer).unwrap(), Endpoint::Libp2p(peer.parse().unwrap()));
        assert_eq!(
            parse_host("/dnsaddr/cluster.example").unwrap(),
            Endpoint::Libp2p("/dnsaddr/cluster.example".parse().unwrap())
        );
    }

    #[test]
    fn bad_hosts_are_refused() {
        for bad in [
            "",
            "localhost:9094",
            "/ip4/127.0.0.1",
            "/ip4/127.0.0.1/udp/9094",
            "/tcp/9094",
            "/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
            "/unix/",
            "/ip4/127.0.0.1/tcp/9094,",
        ] {
            assert!(parse_hosts(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn credentials_split_like_go() {
        assert_eq!(
            parse_credentials("ann:se:cret"),
            Some(Credentials {
                user: "ann".into(),
                password: "se:cret".into()
            })
        );
        assert_eq!(
            parse_credentials("ann"),
            Some(Credentials {
                user: "ann".into(),
                password: String::new()
            })
        );
        assert_eq!(parse_credentials(""), None);
    }
}
