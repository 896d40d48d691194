//! The routes of [`FakeKuboServer`](super::FakeKuboServer): which endpoints are served, and one
//! handler per endpoint that decodes the request, asks the `FakeIpfs` and answers in Kubo's shape.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cluster_types::Cid;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::{
    daemon_error, error_reply, fake_error, json_reply, line, multipart_files, set_common_headers, stream_error_frames,
    stream_reply, Query, Reply,
};
use crate::fake_ipfs::FAKE_VERSION;
use crate::{FakeIpfs, GcEntry, IpfsConnector, IpfsError, IpfsPinType};

/// The largest upload accepted by `add` and `block/put`.
const UPLOAD_BYTES_MAX: usize = 64 << 20;
/// How often a running `pin/add?progress=true` reports one more fetched block.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(50);
/// Lines per body chunk of a streamed `pin/ls`.
const PIN_LS_LINES_PER_CHUNK: usize = 1000;
/// The endpoints served; any other path is a 404.
const ENDPOINTS: [&str; 11] = [
    "id",
    "version",
    "pin/add",
    "pin/rm",
    "pin/ls",
    "repo/stat",
    "swarm/peers",
    "add",
    "block/put",
    "repo/gc",
    "resolve",
];

pub(super) async fn handle(fake: Arc<FakeIpfs>, request: Request<Incoming>) -> Reply {
    let endpoint = request
        .uri()
        .path()
        .strip_prefix("/api/v0/")
        .unwrap_or("")
        .trim_end_matches('/');
    let Some(endpoint) = ENDPOINTS.iter().copied().find(|e| *e == endpoint) else {
        return Ok(error_reply(StatusCode::NOT_FOUND, 3, "Not Found"));
    };
    fake.count_request(endpoint);
    if request.method() == Method::OPTIONS {
        // Kubo's CORS preflight answer, for the origin asked about (Kubo allows what its
        // API.HTTPHeaders config allows; the fake allows every origin).
        let mut response = Response::new(Full::new(Bytes::new()).boxed_unsync());
        let headers = response.headers_mut();
        if let Some(origin) = request.headers().get("origin") {
            headers.insert("access-control-allow-origin", origin.clone());
        }
        headers.insert("vary", HeaderValue::from_static("Origin"));
        return Ok(response);
    }
    if request.method() != Method::POST {
        return Ok(error_reply(StatusCode::METHOD_NOT_ALLOWED, 1, "Method Not Allowed"));
    }
    let query = Query::parse(request.uri().query().unwrap_or(""));
    match endpoint {
        "id" => id(&fake).await,
        "version" => version(&fake).await,
        "pin/add" => pin_add(fake, &query).await,
        "pin/rm" => pin_rm(&fake, &query).await,
        "pin/ls" => pin_ls(&fake, &query).await,
        "repo/stat" => repo_stat(&fake, &query).await,
        "swarm/peers" => swarm_peers(&fake).await,
        "repo/gc" => repo_gc(&fake).await,
        "resolve" => match query.get("arg") {
            None => Ok(error_reply(StatusCode::BAD_REQUEST, 1, "argument \"name\" is required")),
            Some(path) => match fake.resolve(path).await {
                Ok(cid) => Ok(json_reply(&json!({"Path": format!("/ipfs/{cid}")}))),
                Err(e) => fake_error(e),
            },
        },
        "add" | "block/put" => upload(&fake, endpoint, &query, request).await,
        _ => Ok(error_reply(StatusCode::NOT_FOUND, 3, "Not Found")),
    }
}

fn pin_type_name(pin_type: IpfsPinType) -> &'static str {
    match pin_type {
        IpfsPinType::Recursive => "recursive",
        IpfsPinType::Direct => "direct",
        IpfsPinType::Indirect => "indirect",
    }
}

async fn id(fake: &FakeIpfs) -> Reply {
    match fake.id().await {
        Ok(id) => Ok(json_reply(&json!({
            "ID": id.id,
            "PublicKey": "",
            "Addresses": id.addresses,
            "AgentVersion": format!("kubo/{FAKE_VERSION}/"),
            "ProtocolVersion": "ipfs/0.1.0",
            "Protocols": [],
        }))),
        Err(e) => fake_error(e),
    }
}

async fn version(fake: &FakeIpfs) -> Reply {
    match fake.version().await {
        Ok(version) => Ok(json_reply(&json!({
            "Version": version, "Commit": "", "Repo": "16", "System": "amd64/linux", "Golang": "go1.22.0",
        }))),
        Err(e) => fake_error(e),
    }
}

async fn repo_stat(fake: &FakeIpfs, query: &Query) -> Reply {
    let size_only = match query.flag("size-only", false) {
        Ok(flag) => flag,
        Err(refusal) => return Ok(*refusal.0),
    };
    match fake.repo_stat().await {
        Ok(stat) => {
            let objects = if size_only { 0 } else { fake.pins().len() };
            Ok(json_reply(&json!({
                "RepoSize": stat.repo_size,
                "StorageMax": stat.storage_max,
                "NumObjects": objects,
                "RepoPath": "/fake-kubo",
                "Version": "fs-repo@16",
            })))
        }
        Err(e) => fake_error(e),
    }
}

/// `repo/gc`: one `{"Key":{"/":cid}}` line per removed block, as Kubo streams them.
async fn repo_gc(fake: &FakeIpfs) -> Reply {
    match fake.repo_gc().await {
        Ok(entries) => {
            let frames: Vec<Frame<Bytes>> = entries
                .into_iter()
                .map(|entry| match entry {
                    GcEntry::Removed(cid) => Frame::data(line(&json!({"Key": {"/": cid.to_string()}}))),
                    GcEntry::Error(message) => Frame::data(line(&json!({"Error": message}))),
                })
                .collect();
            Ok(stream_reply(futures::stream::iter(frames)))
        }
        Err(e) => fake_error(e),
    }
}

async fn swarm_peers(fake: &FakeIpfs) -> Reply {
    match fake.swarm_peers().await {
        // Kubo writes `null` for no peers (js-ipfs writes `[]`).
        Ok(peers) if peers.is_empty() => Ok(json_reply(&json!({"Peers": null}))),
        Ok(peers) => {
            let peers: Vec<Value> = peers
                .iter()
                .map(|peer| json!({"Addr": "/ip4/127.0.0.1/tcp/4001", "Peer": peer, "Latency": "", "Muxer": "", "Direction": 0, "Streams": null}))
                .collect();
            Ok(json_reply(&json!({"Peers": peers})))
        }
        Err(e) => fake_error(e),
    }
}

async fn pin_rm(fake: &FakeIpfs, query: &Query) -> Reply {
    let cids = match query.cids() {
        Ok(cids) => cids,
        Err(refusal) => return Ok(*refusal.0),
    };
    let mut removed = Vec::new();
    for (arg, cid) in cids {
        match fake.unpin_reporting(&cid).await {
            Ok(true) => removed.push(arg),
            Ok(false) => return Ok(daemon_error(&format!("{arg} is not pinned or pinned indirectly"))),
            Err(e) => return fake_error(e),
        }
    }
    Ok(json_reply(&json!({"Pins": removed})))
}

async fn pin_ls(fake: &FakeIpfs, query: &Query) -> Reply {
    let stream = match query.flag("stream", false) {
        Ok(flag) => flag,
        Err(refusal) => return Ok(*refusal.0),
    };
    let wanted = query.get("type").unwrap_or("all");
    let matches: fn(IpfsPinType) -> bool = match wanted {
        "all" => |_| true,
        "recursive" => |t| t == IpfsPinType::Recursive,
        "direct" => |t| t == IpfsPinType::Direct,
        // The fake models no DAGs, so nothing is pinned indirectly.
        "indirect" => |t| t == IpfsPinType::Indirect,
        other => {
            return Ok(daemon_error(&format!(
                "invalid type '{other}', must be one of {{direct, indirect, recursive, all}}"
            )))
        }
    };
    let entries: Vec<(String, IpfsPinType)> = if query.all("arg").is_empty() {
        match fake.pin_ls_typed().await {
            Ok(pins) => pins
                .into_iter()
                .filter(|(_, t)| matches(*t))
                .map(|(cid, t)| (cid.to_string(), t))
                .collect(),
            Err(e) => return fake_error(e),
        }
    } else {
        let cids = match query.cids() {
            Ok(cids) => cids,
            Err(refusal) => return Ok(*refusal.0),
        };
        let mut found = Vec::new();
        for (arg, cid) in cids {
            match fake.pin_ls_cid(&cid).await {
                Ok(Some(t)) if matches(t) => found.push((arg, t)),
                Ok(_) => return Ok(daemon_error(&format!("path '{arg}' is not pinned"))),
                Err(e) => return fake_error(e),
            }
        }
        found
    };
    if !stream {
        let keys: serde_json::Map<String, Value> = entries
            .into_iter()
            .map(|(cid, t)| (cid, json!({"Type": pin_type_name(t)})))
            .collect();
        return Ok(json_reply(&json!({"Keys": keys})));
    }
    // Streamed in chunks of lines, built lazily as the client reads.
    let frames = futures::stream::iter(entries)
        .chunks(PIN_LS_LINES_PER_CHUNK)
        .map(|chunk| {
            use std::fmt::Write;
            let mut text = String::new();
            for (cid, t) in chunk {
                // Written by hand, not through a `Value` per line; an echoed argument is escaped.
                let cid = serde_json::to_string(&cid).unwrap_or_default();
                let _ = writeln!(text, "{{\"Cid\":{cid},\"Type\":\"{}\"}}", pin_type_name(t));
            }
            Frame::data(Bytes::from(text))
        });
    Ok(stream_reply(frames))
}

/// What a running fake pin reports: one more block fetched, or the end.
enum PinEvent {
    Progress(u64),
    Done(Result<(), IpfsError>),
}

/// Drives a `FakeIpfs::pin` and reports a progress step every [`PROGRESS_INTERVAL`] while it
/// runs, except while the `hang` knob is on (a hung pin fetches nothing).
struct PinProgress {
    fake: Arc<FakeIpfs>,
    pin: Pin<Box<dyn Future<Output = Result<(), IpfsError>> + Send>>,
    blocks: u64,
    done: bool,
}

impl PinProgress {
    fn start(fake: Arc<FakeIpfs>, cid: Cid, max_depth: i32) -> PinProgress {
        let pinning = fake.clone();
        let pin = Box::pin(async move { pinning.pin(&cid, max_depth).await });
        PinProgress {
            fake,
            pin,
            blocks: 0,
            done: false,
        }
    }

    async fn next(&mut self) -> Option<PinEvent> {
        if self.done {
            return None;
        }
        // Bounded by the pin future itself: every fake pin ends (a hung one after its pin timeout).
        loop {
            cluster_rt::tokio::select! {
                biased;
                result = &mut self.pin => {
                    self.done = true;
                    return Some(PinEvent::Done(result));
                }
                () = cluster_rt::sleep(PROGRESS_INTERVAL) => {
                    if self.fake.knobs().hang {
                        continue;
                    }
                    self.blocks += 1;
                    return Some(PinEvent::Progress(self.blocks));
                }
            }
        }
    }
}

async fn pin_add(fake: Arc<FakeIpfs>, query: &Query) -> Reply {
    let cids = match query.cids() {
        Ok(cids) => cids,
        Err(refusal) => return Ok(*refusal.0),
    };
    let (recursive, progress) = match (query.flag("recursive", true), query.flag("progress", false)) {
        (Ok(r), Ok(p)) => (r, p),
        (Err(refusal), _) | (_, Err(refusal)) => return Ok(*refusal.0),
    };
    let max_depth = match (recursive, query.get("max-depth")) {
        (false, _) => 0,
        (true, None) => -1,
        (true, Some(text)) => match text.parse::<i32>() {
            Ok(depth) => depth,
            Err(_) => {
                return Ok(error_reply(
                    StatusCode::BAD_REQUEST,
                    1,
                    &format!("invalid max-depth {text:?}"),
                ))
            }
        },
    };
    let args: Vec<String> = cids.iter().map(|(arg, _)| arg.clone()).collect();
    if !progress || cids.len() != 1 {
        let plain: Vec<Cid> = cids.iter().map(|(_, cid)| *cid).collect();
        if let Err(e) = fake.pin_many(&plain, max_depth).await {
            return fake_error(e);
        }
        return Ok(json_reply(&json!({"Pins": args})));
    }
    let cid = cids[0].1;
    let mut events = PinProgress::start(fake, cid, max_depth);
    // Like Kubo, answer the status only with the first output: a pin that fails before any
    // progress is a plain 500, one that fails later ends the 200 stream with an error.
    let first = match events.next().await {
        Some(PinEvent::Progress(blocks)) => blocks,
        Some(PinEvent::Done(Ok(()))) | None => return Ok(json_reply(&json!({"Pins": args}))),
        Some(PinEvent::Done(Err(e))) => return fake_error(e),
    };
    let rest = futures::stream::unfold(events, |mut events| async move {
        let event = events.next().await?;
        Some((event, events))
    });
    let frames = futures::stream::once(async move { PinEvent::Progress(first) })
        .chain(rest)
        .flat_map(move |event| {
            let frames: VecDeque<Frame<Bytes>> = match event {
                PinEvent::Progress(blocks) => [Frame::data(line(&json!({"Progress": blocks})))].into(),
                PinEvent::Done(Ok(())) => [Frame::data(line(&json!({"Pins": args})))].into(),
                PinEvent::Done(Err(e)) => stream_error_frames(&e.to_string()).into(),
            };
            futures::stream::iter(frames)
        });
    Ok(stream_reply(frames))
}

/// `add` and `block/put`: every file part of the multipart body becomes one raw block.
async fn upload(fake: &FakeIpfs, endpoint: &'static str, query: &Query, request: Request<Incoming>) -> Reply {
    let is_add = endpoint == "add";
    // Kubo pins what `add` adds unless told not to; `block/put` pins only when asked.
    let pin = match query.flag("pin", is_add) {
        Ok(pin) => pin,
        Err(refusal) => return Ok(*refusal.0),
    };
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match Limited::new(request.into_body(), UPLOAD_BYTES_MAX).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return Ok(daemon_error(&format!("reading the upload: {e}"))),
    };
    let parts = match multipart_files(&content_type, &body) {
        Ok(parts) if !parts.is_empty() => parts,
        Ok(_) => {
            return Ok(error_reply(
                StatusCode::BAD_REQUEST,
                1,
                "file argument 'data' is required",
            ))
        }
        Err(message) => return Ok(error_reply(StatusCode::BAD_REQUEST, 1, &message)),
    };
    let method = if is_add { "add" } else { "block_put" };
    let mut text = String::new();
    for part in parts {
        // block/put: Kubo reads `cid-codec`, js-ipfs `format` and `version`.
        let codec = if is_add {
            None
        } else {
            let name = query.get("cid-codec").or(query.get("format")).unwrap_or("raw");
            let code = match name {
                "dag-pb" | "protobuf" => 0x70,
                "dag-cbor" | "cbor" => 0x71,
                _ => 0x55,
            };
            Some((code, query.get("version") == Some("0")))
        };
        let cid = match fake.put_block(method, &part.data, pin, codec).await {
            Ok(cid) => cid,
            Err(e) => return fake_error(e),
        };
        let value = if is_add {
            let name = part
                .filename
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| cid.to_string());
            // Kubo writes the add Size as a string.
            json!({"Name": name, "Hash": cid.to_string(), "Size": part.data.len().to_string()})
        } else {
            json!({"Key": cid.to_string(), "Size": part.data.len()})
        };
        text.push_str(&value.to_string());
        text.push('\n');
    }
    let mut response = Response::new(Full::new(Bytes::from(text)).boxed_unsync());
    set_common_headers(response.headers_mut());
    Ok(response)
}
