//! [`FakeKuboServer`]: a Kubo RPC HTTP server over a [`FakeIpfs`] (like Go's `test/ipfs_mock.go`),
//! so real `ipfs-cluster-service` processes and the [`KuboConnector`](crate::KuboConnector) can
//! be tested in milliseconds without a real daemon.
//!
//! Owns: the HTTP side (hyper 1, HTTP/1.1, `POST /api/v0/<path>`), Kubo's reply shapes, status
//! codes and error bodies (`500 {"Message","Code":0,"Type":"error"}`), progress streaming of
//! `pin/add`, NDJSON streaming of `pin/ls`, and multipart uploads of `add` and `block/put`.
//! Does not own: the daemon's behaviour; every endpoint calls the `FakeIpfs`, so its knobs act
//! over HTTP too. `down` closes the connection without an answer (the client sees a transport
//! error); `hang` stops the progress lines of `pin/add`.
//!
//! Differences from Kubo, on purpose: `add` does **not** build UnixFS; it stores each uploaded
//! file as one raw block and answers its CIDv1 (raw codec, sha2-256) as `Hash`, and `block/put`
//! does the same whatever `cid-codec`/`mhtype` say. Good enough for a fake: the CIDs are valid
//! and the same bytes always give the same CID.
//!
//! The handler of each endpoint is in `routes`; this file holds the server and the wire helpers
//! they share.

mod routes;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cluster_rt::tokio::net::{TcpListener, TcpStream};
use cluster_rt::tokio::task::{JoinHandle, JoinSet};
use cluster_types::Cid;
use futures::{Stream, StreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};

use crate::{FakeIpfs, IpfsError};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A running fake Kubo daemon; stops on [`FakeKuboServer::shutdown`] or when dropped.
#[derive(Debug)]
pub struct FakeKuboServer {
    local_addr: SocketAddr,
    /// The accept loop; it owns every connection task, so aborting it closes them all.
    task: JoinHandle<()>,
}

impl FakeKuboServer {
    /// Binds `addr` (e.g. `127.0.0.1:0`) and serves `fake` until shut down. Must be called
    /// inside a tokio runtime, which then runs the server.
    pub async fn start(fake: Arc<FakeIpfs>, addr: SocketAddr) -> io::Result<FakeKuboServer> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let task = cluster_rt::spawn(accept_loop(listener, fake));
        Ok(FakeKuboServer { local_addr, task })
    }

    /// The bound address (with the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound address as a multiaddress, e.g. `/ip4/127.0.0.1/tcp/40123`.
    pub fn multiaddr(&self) -> String {
        match self.local_addr {
            SocketAddr::V4(a) => format!("/ip4/{}/tcp/{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("/ip6/{}/tcp/{}", a.ip(), a.port()),
        }
    }

    /// Stops accepting and closes every open connection (idempotent; needs no runtime context).
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

impl Drop for FakeKuboServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Accepts connections until aborted (the server's lifetime is its owner's, hence no bound).
async fn accept_loop(listener: TcpListener, fake: Arc<FakeIpfs>) {
    let mut connections = JoinSet::new();
    loop {
        cluster_rt::tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, fake.clone()));
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!("fake kubo server: accept failed: {e}");
                    cluster_rt::sleep(Duration::from_millis(10)).await;
                }
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, fake: Arc<FakeIpfs>) {
    let service = service_fn(move |request| routes::handle(fake.clone(), request));
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = result {
        // Expected when the fake is `down` (the service refuses) or a client hangs up.
        tracing::debug!("fake kubo server: connection ended: {e}");
    }
}

/// The service's error: the daemon is "down", so hyper closes the connection unanswered.
#[derive(Debug)]
struct DaemonDown(String);

impl std::fmt::Display for DaemonDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fake daemon down: {}", self.0)
    }
}

impl std::error::Error for DaemonDown {}

type Reply = Result<Response<Body>, DaemonDown>;

/// A request refused before reaching the fake (bad option, missing or invalid argument); boxed
/// because a response is large and this is the error side of a `Result`.
#[derive(Debug)]
struct Refusal(Box<Response<Body>>);

impl Refusal {
    fn new(response: Response<Body>) -> Refusal {
        Refusal(Box::new(response))
    }
}

/// The query string, decoded; `arg` may repeat.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(text: &str) -> Query {
        Query(url::form_urlencoded::parse(text.as_bytes()).into_owned().collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean option as Go's `strconv.ParseBool` reads it; a bare `?flag` means true.
    fn flag(&self, name: &str, default: bool) -> Result<bool, Refusal> {
        match self.get(name) {
            None => Ok(default),
            Some("" | "1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(Refusal::new(error_reply(
                StatusCode::BAD_REQUEST,
                1,
                &format!("invalid value {other:?} for option {name:?}: not a bool"),
            ))),
        }
    }

    /// The `arg` values, at least one, each a CID.
    fn cids(&self) -> Result<Vec<(String, Cid)>, Refusal> {
        let args = self.all("arg");
        if args.is_empty() {
            return Err(Refusal::new(error_reply(
                StatusCode::BAD_REQUEST,
                1,
                "argument \"ipfs-path\" is required",
            )));
        }
        args.into_iter()
            .map(|arg| {
                let text = arg.strip_prefix("/ipfs/").unwrap_or(arg);
                match text.parse::<Cid>() {
                    Ok(cid) => Ok((arg.to_string(), cid)),
                    Err(e) => Err(Refusal::new(daemon_error(&format!("invalid path {arg:?}: {e}")))),
                }
            })
            .collect()
    }
}

fn json_reply(value: &Value) -> Response<Body> {
    let mut text = value.to_string();
    text.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(text)).boxed_unsync());
    set_common_headers(response.headers_mut());
    response
}

fn set_common_headers(headers: &mut HeaderMap) {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("server", HeaderValue::from_static("fake-kubo"));
    // As Kubo on every API answer.
    headers.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("X-Stream-Output, X-Chunked-Output, X-Content-Length"),
    );
}

/// Kubo's error body: `{"Message","Code","Type":"error"}` (Code 0 = normal, 1 = client, 3 = not found).
fn error_reply(status: StatusCode, code: u32, message: &str) -> Response<Body> {
    let mut response = json_reply(&json!({"Message": message, "Code": code, "Type": "error"}));
    *response.status_mut() = status;
    response
}

/// A daemon-side failure as Kubo reports it: HTTP 500, Code 0.
fn daemon_error(message: &str) -> Response<Body> {
    error_reply(StatusCode::INTERNAL_SERVER_ERROR, 0, message)
}

/// Maps a `FakeIpfs` error to the wire: `down` drops the connection, the rest are 500s.
fn fake_error(error: IpfsError) -> Reply {
    match error {
        IpfsError::Unreachable { message, .. } => Err(DaemonDown(message)),
        IpfsError::Daemon { message, .. } | IpfsError::Timeout { message, .. } | IpfsError::Decode { message, .. } => {
            Ok(daemon_error(&message))
        }
    }
}

/// A streamed reply: Kubo announces chunked output and the error trailer up front.
fn stream_reply<S>(frames: S) -> Response<Body>
where
    S: Stream<Item = Frame<Bytes>> + Send + 'static,
{
    let body = StreamBody::new(frames.map(Ok::<_, Infallible>)).boxed_unsync();
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    set_common_headers(headers);
    headers.insert("x-chunked-output", HeaderValue::from_static("1"));
    headers.insert("trailer", HeaderValue::from_static("X-Stream-Error"));
    response
}

fn line(value: &Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

/// The frames that end a stream with an error: Kubo's error object, then the trailer.
fn stream_error_frames(message: &str) -> Vec<Frame<Bytes>> {
    let mut trailers = HeaderMap::new();
    let value = HeaderValue::from_str(message).unwrap_or_else(|_| HeaderValue::from_static("error"));
    trailers.insert("x-stream-error", value);
    vec![
        Frame::data(line(&json!({"Message": message, "Code": 0, "Type": "error"}))),
        Frame::trailers(trailers),
    ]
}

/// One uploaded file of a multipart/form-data body.
#[derive(Debug, PartialEq)]
struct FilePart {
    filename: Option<String>,
    data: Vec<u8>,
}

/// The file parts of a `multipart/form-data` body; directory parts
/// (`Content-Type: application/x-directory`) are skipped.
fn multipart_files(content_type: &str, body: &[u8]) -> Result<Vec<FilePart>, String> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|param| param.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("not a multipart body (Content-Type {content_type:?})"))?;
    let delimiter = format!("--{boundary}").into_bytes();
    let mut position = find(body, &delimiter, 0).ok_or("multipart body without its boundary")?;
    let mut parts = Vec::new();
    // Bounded: every pass moves `position` forward past a delimiter.
    loop {
        position += delimiter.len();
        if body[position..].starts_with(b"--") {
            return Ok(parts);
        }
        let headers_start = position + if body[position..].starts_with(b"\r\n") { 2 } else { 0 };
        let headers_end = find(body, b"\r\n\r\n", headers_start).ok_or("multipart part without headers end")?;
        let headers = String::from_utf8_lossy(&body[headers_start..headers_end]);
        let data_start = headers_end + 4;
        let mut closing = b"\r\n".to_vec();
        closing.extend_from_slice(&delimiter);
        let data_end = find(body, &closing, data_start).ok_or("multipart part without closing boundary")?;
        let mut filename = None;
        let mut directory = false;
        for header in headers.lines() {
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            match name.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => filename = disposition_filename(value),
                "content-type" => directory = value.trim() == "application/x-directory",
                _ => {}
            }
        }
        if !directory {
            parts.push(FilePart {
                filename,
                data: body[data_start..data_end].to_vec(),
            });
        }
        position = data_end + 2;
    }
}

/// `filename` (else `name`) of a `Content-Disposition: form-data; name="file"; filename="a.txt"`.
fn disposition_filename(value: &str) -> Option<String> {
    let mut name = None;
    for param in value.split(';').map(str::trim) {
        if let Some(filename) = param.strip_prefix("filename=") {
            return Some(filename.trim_matches('"').to_string());
        }
        if let Some(n) = param.strip_prefix("name=") {
            name = Some(n.trim_matches('"').to_string());
        }
    }
    name
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_parses_files_and_skips_directories() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"dir\"\r\n\
Content-Type: application/x-directory\r\n\r\n\r\n--XyZ\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"dir/a.txt\"\r\n\r\nhello\r\n--XyZ--\r\n";
        let parts = multipart_files("multipart/form-data; boundary=\"XyZ\"", body).unwrap();
        assert_eq!(
            parts,
            vec![FilePart {
                filename: Some("dir/a.txt".into()),
                data: b"hello".to_vec()
            }]
        );

        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhel\r\nlo\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\nbin\r\n--XyZ--\r\n";
        let parts = multipart_files("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(
            parts,
            vec![
                FilePart {
                    filename: Some("a.txt".into()),
                    data: b"hel\r\nlo".to_vec()
                },
                FilePart {
                    filename: Some("data".into()),
                    data: b"bin".to_vec()
                },
            ]
        );
    }

    #[test]
    fn multipart_refuses_bad_bodies() {
        assert!(multipart_files("application/json", b"{}").is_err());
        assert!(multipart_files("multipart/form-data; boundary=B", b"no boundary here").is_err());
        assert!(multipart_files(
            "multipart/form-data; boundary=B",
            b"--B\r\nContent-Disposition: x\r\n\r\nunterminated"
        )
        .is_err());
        assert_eq!(
            multipart_files("multipart/form-data; boundary=B", b"--B--\r\n").unwrap(),
            vec![]
        );
    }

    #[test]
    fn query_flags_read_like_go() {
        let query = Query::parse("a=true&b=0&c&d=maybe&arg=x&arg=y");
        assert!(query.flag("a", false).unwrap());
        assert!(!query.flag("b", true).unwrap());
        assert!(query.flag("c", false).unwrap());
        assert!(query.flag("missing", true).unwrap());
        assert!(query.flag("d", true).is_err());
        assert_eq!(query.all("arg"), vec!["x", "y"]);
    }
}
