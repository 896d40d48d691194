//! [`FakeKuboServer`]: a Kubo RPC HTTP server over a [`FakeIpfs`] (like Go's
//! `test/ipfs_mock.go`), so real `ipfs-cluster-service` processes can be tested in
//! milliseconds. `add` and `block/put` hash the uploaded bytes as one raw block (CIDv1, raw,
//! sha2-256): not UnixFS, which is fine for a fake.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use cluster_types::Cid;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

use crate::{FakeIpfs, IpfsConnector, IpfsError, IpfsPinType};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A running fake daemon; stops when shut down or dropped.
pub struct FakeKuboServer {
    local_addr: SocketAddr,
    stop: Option<cluster_rt::tokio::sync::oneshot::Sender<()>>,
}

impl FakeKuboServer {
    /// Binds `address` (e.g. `127.0.0.1:0`) and serves `fake` until shut down.
    pub async fn start(fake: Arc<FakeIpfs>, address: SocketAddr) -> std::io::Result<FakeKuboServer> {
        let listener = cluster_rt::tokio::net::TcpListener::bind(address).await?;
        let local_addr = listener.local_addr()?;
        let (stop_tx, mut stop_rx) = cluster_rt::tokio::sync::oneshot::channel::<()>();
        cluster_rt::spawn(async move {
            loop {
                let accepted = cluster_rt::tokio::select! {
                    _ = &mut stop_rx => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, _)) = accepted else { continue };
                let fake = fake.clone();
                cluster_rt::spawn(async move {
                    let service = service_fn(move |request| handle(fake.clone(), request));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(FakeKuboServer { local_addr, stop: Some(stop_tx) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections.
    pub fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for FakeKuboServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn full(status: StatusCode, value: Value) -> Response<Body> {
    let mut text = value.to_string();
    text.push('\n');
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(text)).boxed_unsync())
        .expect("valid response")
}

fn error(status: StatusCode, message: &str, code: u32) -> Response<Body> {
    full(status, json!({"Message": message, "Code": code, "Type": "error"}))
}

fn ipfs_error(e: IpfsError) -> Response<Body> {
    match e {
        IpfsError::Daemon { message, .. } => error(StatusCode::INTERNAL_SERVER_ERROR, &message, 0),
        other => error(StatusCode::INTERNAL_SERVER_ERROR, &other.to_string(), 0),
    }
}

fn args(request: &Request<Incoming>) -> Vec<(String, String)> {
    request
        .uri()
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn arg<'a>(args: &'a [(String, String)], name: &str) -> Option<&'a str> {
    args.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The first part's content of a multipart/form-data body.
fn first_part(body: &[u8]) -> Option<&[u8]> {
    let start = body.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let rest = &body[start..];
    let end = rest.windows(4).rposition(|w| w == b"\r\n--").unwrap_or(rest.len());
    Some(&rest[..end])
}

async fn handle(fake: Arc<FakeIpfs>, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if request.method() != Method::POST {
        return Ok(error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", 1));
    }
    let path = request.uri().path().trim_start_matches("/api/v0/").to_string();
    let args = args(&request);
    let cid_arg = || -> Result<Cid, Response<Body>> {
        let text = arg(&args, "arg").unwrap_or_default();
        text.parse::<Cid>().map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, &format!("invalid path {text:?}: {e}"), 0))
    };
    let response = match path.as_str() {
        "id" => match fake.id().await {
            Ok(id) => full(StatusCode::OK, json!({"ID": id.id, "Addresses": id.addresses, "AgentVersion": "fake-kubo"})),
            Err(e) => ipfs_error(e),
        },
        "version" => match fake.version().await {
            Ok(v) => full(StatusCode::OK, json!({"Version": v, "Commit": "", "Repo": "15", "System": "fake", "Golang": "none"})),
            Err(e) => ipfs_error(e),
        },
        "pin/add" => match cid_arg() {
            Err(r) => r,
            Ok(cid) => {
                let depth = if arg(&args, "recursive") == Some("false") { 0 } else { -1 };
                let progress = arg(&args, "progress") == Some("true");
                let fake = fake.clone();
                if progress {
                    // Stream a progress line first, then the result (or an error object), like Kubo.
                    let lines = futures::stream::once(async { json!({"Progress": 1}) }).chain(futures::stream::once(
                        async move {
                            match fake.pin(&cid, depth).await {
                                Ok(()) => json!({"Pins": [cid.to_string()]}),
                                Err(IpfsError::Daemon { message, .. }) => json!({"Message": message, "Code": 0, "Type": "error"}),
                                Err(e) => json!({"Message": e.to_string(), "Code": 0, "Type": "error"}),
                            }
                        },
                    ));
                    let frames = lines.map(|v| Ok::<_, Infallible>(Frame::data(Bytes::from(format!("{v}\n")))));
                    Response::builder()
                        .header("Content-Type", "application/json")
                        .header("X-Chunked-Output", "1")
                        .body(BodyExt::boxed_unsync(StreamBody::new(frames)))
                        .expect("valid response")
                } else {
                    match fake.pin(&cid, depth).await {
                        Ok(()) => full(StatusCode::OK, json!({"Pins": [cid.to_string()]})),
                        Err(e) => ipfs_error(e),
                    }
                }
            }
        },
        "pin/rm" => match cid_arg() {
            Err(r) => r,
            Ok(cid) => {
                if !fake.has_pin(&cid) {
                    error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{cid} is not pinned or pinned indirectly"), 0)
                } else {
                    match fake.unpin(&cid).await {
                        Ok(()) => full(StatusCode::OK, json!({"Pins": [cid.to_string()]})),
                        Err(e) => ipfs_error(e),
                    }
                }
            }
        },
        "pin/ls" => pin_ls(&fake, &args).await,
        "repo/stat" => match fake.repo_stat().await {
            Ok(stat) => full(StatusCode::OK, json!({"RepoSize": stat.repo_size, "StorageMax": stat.storage_max, "NumObjects": 0})),
            Err(e) => ipfs_error(e),
        },
        "swarm/peers" => match fake.swarm_peers().await {
            Ok(peers) => full(StatusCode::OK, json!({"Peers": peers.iter().map(|p| json!({"Peer": p})).collect::<Vec<_>>()})),
            Err(e) => ipfs_error(e),
        },
        "add" | "block/put" => {
            let body = match request.into_body().collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => return Ok(error(StatusCode::BAD_REQUEST, &e.to_string(), 0)),
            };
            let data = first_part(&body).unwrap_or(&body);
            let cid = fake.add_block_data(data);
            if path == "add" {
                full(StatusCode::OK, json!({"Name": "file", "Hash": cid.to_string(), "Size": data.len().to_string()}))
            } else {
                full(StatusCode::OK, json!({"Key": cid.to_string(), "Size": data.len()}))
            }
        }
        _ => error(StatusCode::NOT_FOUND, "404 page not found", 0),
    };
    Ok(response)
}

async fn pin_ls(fake: &FakeIpfs, args: &[(String, String)]) -> Response<Body> {
    let stream = arg(args, "stream") == Some("true");
    let wanted = arg(args, "type").unwrap_or("all");
    let matches = |t: IpfsPinType| match wanted {
        "recursive" => t == IpfsPinType::Recursive,
        "direct" => t == IpfsPinType::Direct,
        "indirect" => t == IpfsPinType::Indirect,
        _ => true,
    };
    let name = |t: IpfsPinType| match t {
        IpfsPinType::Recursive => "recursive",
        IpfsPinType::Direct => "direct",
        IpfsPinType::Indirect => "indirect",
    };
    let mut found: Vec<(Cid, IpfsPinType)> = Vec::new();
    if let Some(text) = arg(args, "arg") {
        let Ok(cid) = text.parse::<Cid>() else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("invalid path {text:?}"), 0);
        };
        match fake.pin_ls_cid(&cid).await {
            Err(e) => return ipfs_error(e),
            Ok(Some(t)) if matches(t) => found.push((cid, t)),
            Ok(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("path '{text}' is not pinned"), 0),
        }
    } else {
        if let Err(e) = fake.pin_ls_cid(&Cid::raw_sha256(b"")).await {
            return ipfs_error(e);
        }
        for cid in fake.pins() {
            if let Ok(Some(t)) = fake.pin_ls_cid(&cid).await {
                if matches(t) {
                    found.push((cid, t));
                }
            }
        }
    }
    if stream {
        let mut text = String::new();
        for (cid, t) in found {
            text.push_str(&json!({"Cid": cid.to_string(), "Type": name(t)}).to_string());
            text.push('\n');
        }
        Response::builder()
            .header("Content-Type", "application/json")
            .header("X-Chunked-Output", "1")
            .body(Full::new(Bytes::from(text)).boxed_unsync())
            .expect("valid response")
    } else {
        let keys: serde_json::Map<String, Value> =
            found.into_iter().map(|(cid, t)| (cid.to_string(), json!({"Type": name(t)}))).collect();
        full(StatusCode::OK, json!({"Keys": keys}))
    }
}
