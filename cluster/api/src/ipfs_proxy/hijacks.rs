//! The IPFS API commands the proxy answers itself (`pin/*`, `repo/*`, `add`, and
//! `block/put`/`dag/put` with `pin=true`), from the cluster and in Kubo's JSON shapes.

use bytes::Bytes;
use cluster_types::{Cid, ClusterError, PinMode, PinOptions};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE, TRAILER};
use hyper::{Request, Response, StatusCode, Uri};
use serde_json::{json, Value};

use super::{
    direct_cid, full, ipfs_path, is_true, json_response, send_to_daemon, set_proxy_headers, BodyError, Hijacked,
    KuboError, Shared,
};
use crate::add_route::{body_stream, multipart_boundary, run_add, AddParams};

/// Largest daemon answer to a `block/put` or `dag/put` we read to learn what to pin.
const PUT_REPLY_LIMIT: usize = 4 << 20;

fn require_args(args: &[String], command: &str) -> Result<(), KuboError> {
    if args.is_empty() {
        return Err(KuboError::new(format!(
            "argument \"ipfs-path\" is required for {command}"
        )));
    }
    Ok(())
}

pub(super) async fn pin_add(shared: &Shared, args: &[String], kind: Option<&str>) -> Hijacked {
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

pub(super) async fn pin_rm(shared: &Shared, args: &[String]) -> Hijacked {
    require_args(args, "pin/rm")?;
    let mut pins = Vec::new();
    for arg in args {
        let pin = shared.backend.unpin_path(ipfs_path(arg)).await?;
        pins.push(pin.cid.to_string());
    }
    Ok(json_response(&json!({ "Pins": pins })))
}

/// `pin/ls`, from the cluster's shared state (not the daemon).
pub(super) async fn pin_ls(shared: &Shared, args: &[String], stream: bool) -> Hijacked {
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
            while let Some(page) = all.recv().await {
                let Ok(page) = page else {
                    // The body is already under way: end it without the closing brace, so the
                    // client sees broken JSON rather than a short list.
                    return;
                };
                if page.is_empty() {
                    continue;
                }
                let mut pieces = String::new();
                for pin in &page {
                    pieces.push_str(&pin_ls_piece(pin, stream, first));
                    first = false;
                }
                if tx.send(Ok(Frame::data(Bytes::from(pieces)))).await.is_err() {
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

pub(super) async fn pin_update(shared: &Shared, args: &[String], unpin: bool) -> Hijacked {
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
        pin_update: Some(Box::new(from_cid)),
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
pub(super) async fn repo_stat(shared: &Shared) -> Hijacked {
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
pub(super) async fn repo_gc(shared: &Shared, stream_errors: bool) -> Hijacked {
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
pub(super) async fn add(shared: &Shared, query: &[(String, String)], request: Request<Incoming>) -> Hijacked {
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
pub(super) async fn put_and_pin(shared: &Shared, request: Request<Incoming>, command: &str) -> Hijacked {
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
