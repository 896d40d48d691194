//! [`KuboConnector`]: the Kubo RPC HTTP client (reference §8). Every call is
//! `POST http://<node>/api/v0/<path>?<args>`; error replies `{"Message",...}` become
//! [`IpfsError::Daemon`]. Copes with js-ipfs: numbers as strings, base58 CIDv1, `{"Peers":[]}`,
//! and a `pin/add` that answers once instead of streaming progress.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cluster_types::{Cid, IpfsId};
use futures::stream::BoxStream;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::Value;

use crate::{IpfsConnector, IpfsError, IpfsPinType, RepoStat};

/// Retries of idempotent reads that could not reach the daemon.
const READ_RETRIES: u32 = 3;
/// First backoff between those retries (doubles).
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// After this many consecutive transport failures, calls are spaced one second apart (as Go).
const FAILURES_BEFORE_RATE_LIMIT: u32 = 10;
/// Largest non-streamed reply we read (a pin/ls of one CID, an id, a repo/stat).
const SMALL_REPLY_MAX: usize = 16 * 1024 * 1024;

/// Where the daemon is and how long calls may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KuboConnectorConfig {
    /// `host:port` of the RPC API.
    pub node_address: String,
    /// Deadline of ordinary calls (`ipfs_request_timeout`).
    pub request_timeout: Duration,
    /// A pin fails when no progress arrives for this long (`pin_timeout`).
    pub pin_timeout: Duration,
    /// Deadline of an unpin (`unpin_timeout`).
    pub unpin_timeout: Duration,
}

impl Default for KuboConnectorConfig {
    fn default() -> Self {
        KuboConnectorConfig {
            node_address: "127.0.0.1:5001".into(),
            request_timeout: Duration::from_secs(300),
            pin_timeout: Duration::from_secs(120),
            unpin_timeout: Duration::from_secs(3 * 3600),
        }
    }
}

impl KuboConnectorConfig {
    /// `host:port` of `/ip4/H/tcp/P`, `/ip6/H/tcp/P` or `/dns*/H/tcp/P`.
    pub fn address_from_multiaddr(text: &str) -> Result<String, String> {
        let address: multiaddr::Multiaddr = text.parse().map_err(|e| format!("invalid multiaddress {text:?}: {e}"))?;
        let mut host = None;
        let mut port = None;
        for protocol in address.iter() {
            match protocol {
                multiaddr::Protocol::Ip4(ip) => host = Some(ip.to_string()),
                multiaddr::Protocol::Ip6(ip) => host = Some(format!("[{ip}]")),
                multiaddr::Protocol::Dns(n) | multiaddr::Protocol::Dns4(n) | multiaddr::Protocol::Dns6(n) => {
                    host = Some(n.to_string())
                }
                multiaddr::Protocol::Tcp(p) => port = Some(p),
                _ => {}
            }
        }
        match (host, port) {
            (Some(h), Some(p)) => Ok(format!("{h}:{p}")),
            _ => Err(format!("{text:?} is not a TCP address")),
        }
    }
}

/// The Kubo RPC client.
pub struct KuboConnector {
    config: KuboConnectorConfig,
    client: Client<HttpConnector, Empty<Bytes>>,
    consecutive_failures: AtomicU32,
}

fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn pin_type_of(text: &str) -> Option<IpfsPinType> {
    match text {
        "recursive" => Some(IpfsPinType::Recursive),
        "direct" => Some(IpfsPinType::Direct),
        "indirect" => Some(IpfsPinType::Indirect),
        _ => None,
    }
}

fn is_not_pinned(message: &str) -> bool {
    message.to_lowercase().contains("not pinned")
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl KuboConnector {
    /// A client for the daemon at `config.node_address`. Does not contact it.
    pub fn new(config: KuboConnectorConfig) -> KuboConnector {
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build_http();
        KuboConnector { config, client, consecutive_failures: AtomicU32::new(0) }
    }

    fn url(&self, path: &str, args: &[(&str, &str)]) -> String {
        let query: Vec<String> = args.iter().map(|(k, v)| format!("{}={}", k, encode(v))).collect();
        format!("http://{}/api/v0/{path}?{}", self.config.node_address, query.join("&"))
    }

    fn unreachable(&self, message: impl std::fmt::Display) -> IpfsError {
        IpfsError::Unreachable { address: self.config.node_address.clone(), message: message.to_string() }
    }

    /// Sends the request and returns the response once its head arrived; error statuses are
    /// turned into `Daemon` errors here.
    async fn send(&self, path: &str, args: &[(&str, &str)], deadline: Duration) -> Result<hyper::Response<Incoming>, IpfsError> {
        if self.consecutive_failures.load(Ordering::Relaxed) > FAILURES_BEFORE_RATE_LIMIT {
            cluster_rt::sleep(Duration::from_secs(1)).await;
        }
        let request = hyper::Request::post(self.url(path, args))
            .body(Empty::<Bytes>::new())
            .map_err(|e| IpfsError::Decode { path: path.into(), message: e.to_string() })?;
        let response = match cluster_rt::timeout(deadline, self.client.request(request)).await {
            Err(_) => return Err(IpfsError::Timeout { path: path.into(), message: format!("no answer within {deadline:?}") }),
            Ok(Err(e)) => {
                self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
                let mut message = e.to_string();
                if let Some(source) = std::error::Error::source(&e) {
                    message = format!("{message}: {source}");
                }
                return Err(self.unreachable(message));
            }
            Ok(Ok(response)) => response,
        };
        self.consecutive_failures.store(0, Ordering::Relaxed);
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = read_limited(response.into_body(), 64 * 1024).await.unwrap_or_default();
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("Message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        Err(IpfsError::Daemon { path: path.into(), code: status.as_u16(), message })
    }

    /// One call with a small JSON reply.
    async fn call(&self, path: &str, args: &[(&str, &str)], deadline: Duration) -> Result<Bytes, IpfsError> {
        let start = cluster_rt::now();
        let response = self.send(path, args, deadline).await?;
        let remaining = deadline.saturating_sub(cluster_rt::now() - start);
        match cluster_rt::timeout(remaining, read_limited(response.into_body(), SMALL_REPLY_MAX)).await {
            Err(_) => Err(IpfsError::Timeout { path: path.into(), message: "reply body too slow".into() }),
            Ok(Err(message)) => Err(IpfsError::Decode { path: path.into(), message }),
            Ok(Ok(body)) => Ok(body),
        }
    }

    /// An idempotent read: retried when the daemon cannot be reached.
    async fn read(&self, path: &str, args: &[(&str, &str)]) -> Result<Bytes, IpfsError> {
        let mut backoff = RETRY_BACKOFF;
        let mut attempt = 0;
        loop {
            match self.call(path, args, self.config.request_timeout).await {
                Err(IpfsError::Unreachable { .. }) if attempt < READ_RETRIES => {
                    attempt += 1;
                    cluster_rt::sleep(backoff).await;
                    backoff *= 2;
                }
                other => return other,
            }
        }
    }

    fn json(path: &str, body: &[u8]) -> Result<Value, IpfsError> {
        serde_json::from_slice(body).map_err(|e| IpfsError::Decode { path: path.into(), message: e.to_string() })
    }
}

async fn read_limited(mut body: Incoming, limit: usize) -> Result<Bytes, String> {
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(data) = frame.data_ref() {
            if buffer.len() + data.len() > limit {
                return Err(format!("reply larger than {limit} bytes"));
            }
            buffer.extend_from_slice(data);
        }
    }
    Ok(buffer.freeze())
}

/// Splits a body into JSON values as they arrive (NDJSON, or one object).
struct JsonLines {
    body: Incoming,
    buffer: BytesMut,
    done: bool,
}

impl JsonLines {
    fn new(body: Incoming) -> JsonLines {
        JsonLines { body, buffer: BytesMut::new(), done: false }
    }

    /// The next complete value; `Ok(None)` at the end.
    async fn next(&mut self) -> Result<Option<Value>, String> {
        loop {
            if let Some(newline) = self.buffer.iter().position(|b| *b == b'\n') {
                let line = self.buffer.split_to(newline + 1);
                let text = std::str::from_utf8(&line).map_err(|e| e.to_string())?.trim();
                if text.is_empty() {
                    continue;
                }
                return serde_json::from_str(text).map(Some).map_err(|e| format!("{e}: {text}"));
            }
            if self.done {
                let text = std::str::from_utf8(&self.buffer).map_err(|e| e.to_string())?.trim().to_string();
                self.buffer.clear();
                if text.is_empty() {
                    return Ok(None);
                }
                return serde_json::from_str(&text).map(Some).map_err(|e| format!("{e}: {text}"));
            }
            match self.body.frame().await {
                None => self.done = true,
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        if self.buffer.len() + data.len() > SMALL_REPLY_MAX {
                            return Err("line too long".into());
                        }
                        self.buffer.extend_from_slice(data);
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct IdReply {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Addresses", default)]
    addresses: Option<Vec<String>>,
}

#[async_trait::async_trait]
impl IpfsConnector for KuboConnector {
    async fn id(&self) -> Result<IpfsId, IpfsError> {
        let body = self.read("id", &[]).await?;
        let reply: IdReply =
            serde_json::from_slice(&body).map_err(|e| IpfsError::Decode { path: "id".into(), message: e.to_string() })?;
        Ok(IpfsId { id: reply.id, addresses: reply.addresses.unwrap_or_default(), error: String::new() })
    }

    async fn pin(&self, cid: &Cid, max_depth: i32) -> Result<(), IpfsError> {
        let text = cid.to_string();
        let mode = if max_depth == 0 { "direct" } else { "recursive" };
        if let Ok(Some(found)) = self.pin_ls_typed(&text, mode).await {
            if found == IpfsPinType::Recursive || max_depth == 0 {
                return Ok(());
            }
        }
        let depth = max_depth.to_string();
        let mut args = vec![("arg", text.as_str()), ("progress", "true")];
        match max_depth {
            0 => args.push(("recursive", "false")),
            d if d > 0 => {
                args.push(("recursive", "true"));
                args.push(("max-depth", depth.as_str()));
            }
            _ => args.push(("recursive", "true")),
        }
        let path = "pin/add";
        // The deadline for the reply head is the stall timeout too: a daemon that does not even
        // start answering makes no progress.
        let response = self.send(path, &args, self.config.pin_timeout).await?;
        let mut lines = JsonLines::new(response.into_body());
        let mut last_progress: Option<u64> = None;
        loop {
            let next = match cluster_rt::timeout(self.config.pin_timeout, lines.next()).await {
                Err(_) => {
                    return Err(IpfsError::Timeout {
                        path: path.into(),
                        message: format!(
                            "no progress pinning {text} for {} (last progress {last_progress:?})",
                            cluster_types::duration::format(self.config.pin_timeout)
                        ),
                    })
                }
                Ok(Err(message)) => return Err(IpfsError::Decode { path: path.into(), message }),
                Ok(Ok(next)) => next,
            };
            let Some(value) = next else {
                return Err(IpfsError::Decode { path: path.into(), message: "reply ended without Pins".into() });
            };
            if let Some(message) = value.get("Message").and_then(Value::as_str) {
                return Err(IpfsError::Daemon { path: path.into(), code: 500, message: message.to_string() });
            }
            if value.get("Pins").is_some_and(|p| !p.is_null()) {
                return Ok(());
            }
            if let Some(progress) = value.get("Progress").and_then(number) {
                last_progress = Some(progress);
            }
        }
    }

    async fn unpin(&self, cid: &Cid) -> Result<(), IpfsError> {
        let text = cid.to_string();
        match self.call("pin/rm", &[("arg", &text)], self.config.unpin_timeout).await {
            Ok(_) => Ok(()),
            Err(IpfsError::Daemon { message, .. }) if is_not_pinned(&message) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn pin_ls_cid(&self, cid: &Cid) -> Result<Option<IpfsPinType>, IpfsError> {
        self.pin_ls_typed(&cid.to_string(), "all").await
    }

    async fn pin_ls(&self) -> Result<BoxStream<'static, Result<Cid, IpfsError>>, IpfsError> {
        let response = self.send("pin/ls", &[("stream", "true"), ("type", "recursive")], self.config.request_timeout).await?;
        let lines = JsonLines::new(response.into_body());
        let stream = futures::stream::unfold((lines, Vec::<Cid>::new()), |(mut lines, mut pending)| async move {
            loop {
                if let Some(cid) = pending.pop() {
                    return Some((Ok(cid), (lines, pending)));
                }
                let value = match lines.next().await {
                    Ok(Some(value)) => value,
                    Ok(None) => return None,
                    Err(message) => {
                        lines.done = true;
                        lines.buffer.clear();
                        return Some((Err(IpfsError::Decode { path: "pin/ls".into(), message }), (lines, pending)));
                    }
                };
                if let Some(text) = value.get("Cid").and_then(Value::as_str) {
                    match text.parse::<Cid>() {
                        Ok(cid) => return Some((Ok(cid), (lines, pending))),
                        Err(e) => {
                            let error = IpfsError::Decode { path: "pin/ls".into(), message: format!("{text}: {e}") };
                            return Some((Err(error), (lines, pending)));
                        }
                    }
                }
                // A daemon that ignored stream=true answers {"Keys":{cid:{"Type"}}} once.
                if let Some(keys) = value.get("Keys").and_then(Value::as_object) {
                    pending = keys.keys().filter_map(|k| k.parse::<Cid>().ok()).collect();
                    pending.reverse();
                }
            }
        });
        Ok(stream.boxed())
    }

    async fn repo_stat(&self) -> Result<RepoStat, IpfsError> {
        let body = self.read("repo/stat", &[("size-only", "true")]).await?;
        let value = Self::json("repo/stat", &body)?;
        let field = |name: &str| {
            value.get(name).and_then(number).ok_or_else(|| IpfsError::Decode {
                path: "repo/stat".into(),
                message: format!("missing {name}"),
            })
        };
        Ok(RepoStat { repo_size: field("RepoSize")?, storage_max: field("StorageMax")? })
    }

    async fn swarm_peers(&self) -> Result<Vec<String>, IpfsError> {
        let body = self.read("swarm/peers", &[]).await?;
        let value = Self::json("swarm/peers", &body)?;
        Ok(value
            .get("Peers")
            .and_then(Value::as_array)
            .map(|peers| peers.iter().filter_map(|p| p.get("Peer").and_then(Value::as_str).map(str::to_string)).collect())
            .unwrap_or_default())
    }

    async fn version(&self) -> Result<String, IpfsError> {
        let body = self.read("version", &[]).await?;
        let value = Self::json("version", &body)?;
        Ok(value.get("Version").and_then(Value::as_str).unwrap_or_default().to_string())
    }
}

impl KuboConnector {
    /// `pin/ls?arg=<cid>&type=<mode>&stream=true`; "not pinned" answers are `None`.
    async fn pin_ls_typed(&self, cid: &str, mode: &str) -> Result<Option<IpfsPinType>, IpfsError> {
        let body = match self.read("pin/ls", &[("arg", cid), ("type", mode), ("stream", "true")]).await {
            Ok(body) => body,
            Err(IpfsError::Daemon { message, .. }) if is_not_pinned(&message) => return Ok(None),
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&body);
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let value = Self::json("pin/ls", line.as_bytes())?;
            if let Some(found) = value.get("Type").and_then(Value::as_str).and_then(pin_type_of) {
                return Ok(Some(found));
            }
            if let Some(keys) = value.get("Keys").and_then(Value::as_object) {
                let found = keys.values().find_map(|v| v.get("Type").and_then(Value::as_str).and_then(pin_type_of));
                return Ok(found);
            }
        }
        Ok(None)
    }
}
