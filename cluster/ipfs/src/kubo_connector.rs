//! [`KuboConnector`]: the Kubo RPC HTTP client of the IPFS daemon beside a member (reference §8).
//!
//! Owns: the requests (`POST http://<node>/api/v0/<path>?<args>`, hyper 1 over plain HTTP/1.1),
//! their deadlines, retries of idempotent reads, the rate limit after repeated transport
//! failures, and turning Kubo's and js-ipfs's replies (their shapes are in
//! [`crate::kubo_replies`]) into typed values and [`IpfsError`]s. Does not own: deciding what to
//! pin or when to retry a failed pin (the tracker).
//!
//! ```text
//! call ──rate limit (after >10 transport failures: 1/s)──> POST ──> status 200? ──> JSON values
//!                                                             │            └─ no: {"Message"} -> Daemon
//!                                                             └─ refused/reset -> Unreachable
//! ```
//! Deadlines: ordinary calls must finish within `request_timeout`; `unpin` within
//! `unpin_timeout`; `pin` only needs to show new progress every `pin_timeout`; a `pin_ls`
//! stream must deliver a chunk every `request_timeout` (its total time follows the consumer).
//! The `pin/add` progress and the `pin/ls` stream are read in `pin_streams`.

mod pin_streams;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::daemon_connector::{uri_authority, DaemonConnector};
use bytes::Bytes;
use cluster_rt::tokio::time::Instant;
use cluster_types::HttpAddress;
use cluster_types::{Cid, IpfsId};
use futures::stream::BoxStream;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::json_stream::JsonStreamDecoder;
use crate::kubo_replies::{
    daemon_error_in_stream, decode_error, is_not_pinned, IdReply, IgnoredReply, PinLsLine, RepoGcLine, RepoStatReply,
    StreamLine, SwarmPeersReply, VersionReply,
};
use crate::{GcEntry, IpfsConnector, IpfsError, IpfsPinType, RepoStat};

/// Retries of an idempotent read that could not reach the daemon (so at most 4 attempts).
const READ_RETRIES: u32 = 3;
/// The first pause between those retries; it doubles each time.
const READ_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// More consecutive transport failures than this rate-limit requests to one per second (Go).
const FAILURES_BEFORE_RATE_LIMIT: u64 = 10;
/// The spacing of requests while rate-limited.
const RATE_LIMIT_INTERVAL: Duration = Duration::from_secs(1);
/// The largest reply read whole (id, version, repo/stat, swarm/peers, pin/ls of one CID).
const REPLY_BYTES_MAX: usize = 16 << 20;
/// The largest error reply read: only its `Message` is needed.
const ERROR_REPLY_BYTES_MAX: usize = 1 << 20;
/// The longest daemon error message kept (bodies that are not Kubo JSON are quoted verbatim).
const ERROR_MESSAGE_CHARS_MAX: usize = 1000;
/// TCP connect deadline: a daemon that does not accept within this is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the daemon's RPC API is and how long calls may take (Go's `ipfs_connector.ipfshttp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KuboConnectorConfig {
    /// The RPC API: `host:port`, e.g. `127.0.0.1:5001`, or a Unix socket (see
    /// [`Self::address_from_multiaddr`]).
    pub node_address: HttpAddress,
    /// Deadline of every call but `pin` and `unpin` (`ipfs_request_timeout`, default 5 min).
    pub request_timeout: Duration,
    /// A pin fails when the daemon reports no new progress for this long (`pin_timeout`,
    /// default 2 min). A slow pin that keeps progressing never times out.
    pub pin_timeout: Duration,
    /// Deadline of an unpin (`unpin_timeout`, default 3 h: unpinning a huge DAG is slow).
    pub unpin_timeout: Duration,
}

impl Default for KuboConnectorConfig {
    fn default() -> KuboConnectorConfig {
        KuboConnectorConfig {
            node_address: HttpAddress::Tcp("127.0.0.1:5001".into()),
            request_timeout: Duration::from_secs(5 * 60),
            pin_timeout: Duration::from_secs(2 * 60),
            unpin_timeout: Duration::from_secs(3 * 3600),
        }
    }
}

impl KuboConnectorConfig {
    /// The address of `node_multiaddress`: `host:port` of `/ip4/H/tcp/P`, `/ip6/H/tcp/P`
    /// (bracketed) or `/dns4|dns6|dns/H/tcp/P`, or the path of `/unix/<path>`. Other transports
    /// are refused.
    pub fn address_from_multiaddr(text: &str) -> Result<HttpAddress, String> {
        HttpAddress::parse(text)
    }
}

/// The Kubo RPC client; cheap to share behind an `Arc` (calls take `&self`).
pub struct KuboConnector {
    config: KuboConnectorConfig,
    client: Client<DaemonConnector, Full<Bytes>>,
    /// The daemon's address as messages show it.
    address_text: String,
    /// `http://<authority>` of request URIs.
    uri_base: String,
    /// Transport failures since the last request that got an answer.
    consecutive_failures: AtomicU64,
    /// While rate-limited: the earliest time the next request may go out. Each request
    /// reserves its slot under the lock and sleeps outside it.
    next_request_at: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for KuboConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KuboConnector")
            .field("config", &self.config)
            .field("consecutive_failures", &self.consecutive_failures())
            .finish_non_exhaustive()
    }
}

impl KuboConnector {
    /// One `block/put` request with `blocks` as its parts (all of one codec and CID version);
    /// the CIDs the daemon reports stored, in its order.
    async fn block_put_request(&self, blocks: &[(Cid, Bytes)]) -> Result<Vec<Cid>, IpfsError> {
        let path = "block/put";
        let Some((first, _)) = blocks.first() else {
            return Ok(Vec::new());
        };
        let codec = match first.0.codec() {
            0x55 => "raw",
            0x70 => "dag-pb",
            0x71 => "dag-cbor",
            other => {
                return Err(IpfsError::Daemon {
                    path: path.into(),
                    code: 400,
                    message: format!("block/put of codec 0x{other:x} is not supported"),
                })
            }
        };
        let version = if u64::from(first.0.version()) == 0 { "0" } else { "1" };
        // Kubo reads `cid-codec`; js-ipfs reads `format` and `version`.
        let query = [
            ("cid-codec", codec),
            ("format", codec),
            ("version", version),
            ("mhtype", "sha2-256"),
            ("pin", "false"),
        ];
        const BOUNDARY: &str = "cluster-block-boundary-7d1c3f";
        let size: usize = blocks.iter().map(|(_, data)| data.len() + 160).sum();
        let mut body = Vec::with_capacity(size + 40);
        for (_, data) in blocks {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"data\"; filename=\"block\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        let call = async {
            let response = self
                .send_body(path, &query, Some(&content_type), Bytes::from(body))
                .await?;
            let response = self.check_status(path, response).await?;
            read_body(&self.address_text, path, response.into_body(), REPLY_BYTES_MAX).await
        };
        let reply = match cluster_rt::timeout(self.config.request_timeout, call).await {
            Ok(reply) => reply?,
            Err(elapsed) => {
                return Err(IpfsError::Timeout {
                    path: path.into(),
                    message: elapsed.to_string(),
                })
            }
        };
        #[derive(Deserialize)]
        struct BlockPutReply {
            #[serde(rename = "Key")]
            key: String,
        }
        // One JSON object per stored block, one after the other.
        serde_json::Deserializer::from_slice(&reply)
            .into_iter::<BlockPutReply>()
            .map(|line| {
                let line = line.map_err(|e| decode_error(path, e.to_string()))?;
                line.key
                    .parse::<Cid>()
                    .map_err(|e| decode_error(path, format!("bad Key {:?}: {e}", line.key)))
            })
            .collect()
    }

    /// A client for the daemon at `config.node_address`. Does not contact it.
    pub fn new(config: KuboConnectorConfig) -> KuboConnector {
        let connector = DaemonConnector::new(&config.node_address, CONNECT_TIMEOUT.min(config.request_timeout));
        let client = Client::builder(TokioExecutor::new())
            // Without a timer idle pooled connections are never reaped.
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        KuboConnector {
            address_text: config.node_address.to_string(),
            uri_base: format!("http://{}", uri_authority(&config.node_address)),
            config,
            client,
            consecutive_failures: AtomicU64::new(0),
            next_request_at: Mutex::new(None),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &KuboConnectorConfig {
        &self.config
    }

    /// Transport failures since the daemon last answered (above 10, requests are rate-limited).
    pub fn consecutive_failures(&self) -> u64 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    fn unreachable(&self, message: String) -> IpfsError {
        IpfsError::Unreachable {
            address: self.address_text.clone(),
            message,
        }
    }

    /// Sends `POST /api/v0/<path>?<query>` and returns the reply head, whatever its status.
    /// Transport errors become [`IpfsError::Unreachable`]. No deadline here: callers bound it.
    async fn send(&self, path: &str, query: &[(&str, &str)]) -> Result<Response<Incoming>, IpfsError> {
        self.send_body(path, query, None, Bytes::new()).await
    }

    /// [`KuboConnector::send`] with a body of `content_type`.
    async fn send_body(
        &self,
        path: &str,
        query: &[(&str, &str)],
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Response<Incoming>, IpfsError> {
        self.wait_rate_limit().await;
        // The serializer is not `Send`: finish it before any `.await`.
        let query_string = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        let uri = format!("{}/api/v0/{path}?{query_string}", self.uri_base);
        let mut request = Request::builder().method(Method::POST).uri(&uri);
        if let Some(content_type) = content_type {
            request = request.header(hyper::header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| self.unreachable(format!("invalid request URI {uri:?}: {e}")))?;
        match self.client.request(request).await {
            Ok(response) => {
                self.consecutive_failures.store(0, Ordering::Relaxed);
                Ok(response)
            }
            Err(e) => {
                let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
                let message = error_chain(&e);
                tracing::debug!(path, failures, "IPFS daemon unreachable: {message}");
                Err(self.unreachable(message))
            }
        }
    }

    /// After more than [`FAILURES_BEFORE_RATE_LIMIT`] consecutive transport failures, spaces
    /// requests [`RATE_LIMIT_INTERVAL`] apart so a dead daemon is not hammered (Go does this).
    async fn wait_rate_limit(&self) {
        let failures = self.consecutive_failures();
        if failures <= FAILURES_BEFORE_RATE_LIMIT {
            *self.next_request_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return;
        }
        let now = cluster_rt::now();
        let slot = {
            let mut next = self.next_request_at.lock().unwrap_or_else(|p| p.into_inner());
            let slot = next.map_or(now, |at| at.max(now));
            *next = Some(slot + RATE_LIMIT_INTERVAL);
            slot
        };
        if slot > now {
            tracing::warn!("rate-limiting IPFS requests to 1/s after {failures} failed requests");
            cluster_rt::sleep(slot - now).await;
        }
    }

    /// Turns a non-2xx reply into [`IpfsError::Daemon`], reading Kubo's `{"Message"}`.
    async fn check_status(&self, path: &str, response: Response<Incoming>) -> Result<Response<Incoming>, IpfsError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = read_body(&self.address_text, path, response.into_body(), ERROR_REPLY_BYTES_MAX)
            .await
            .unwrap_or_default();
        #[derive(Deserialize)]
        struct ErrorReply {
            #[serde(rename = "Message")]
            message: String,
        }
        let message = match serde_json::from_slice::<ErrorReply>(&body) {
            Ok(reply) => reply.message,
            Err(_) => {
                let text = String::from_utf8_lossy(&body);
                let text = text.trim();
                if text.is_empty() {
                    status.canonical_reason().unwrap_or("no message").to_string()
                } else {
                    text.chars().take(ERROR_MESSAGE_CHARS_MAX).collect()
                }
            }
        };
        Err(IpfsError::Daemon {
            path: path.into(),
            code: status.as_u16(),
            message,
        })
    }

    /// One call whose whole reply is read and decoded as a sequence of JSON values, within
    /// `deadline`.
    async fn call_values<T: DeserializeOwned + StreamLine>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        deadline: Duration,
    ) -> Result<Vec<T>, IpfsError> {
        let call = async {
            let response = self.send(path, query).await?;
            let response = self.check_status(path, response).await?;
            let body = read_body(&self.address_text, path, response.into_body(), REPLY_BYTES_MAX).await?;
            let mut decoder = JsonStreamDecoder::new(REPLY_BYTES_MAX);
            let mut values = decoder.push(&body).map_err(|m| decode_error(path, m))?;
            values.extend(decoder.finish().map_err(|m| decode_error(path, m))?);
            for value in &values {
                daemon_error_in_stream(path, value)?;
            }
            Ok(values)
        };
        match cluster_rt::timeout(deadline, call).await {
            Ok(result) => result,
            Err(elapsed) => Err(IpfsError::Timeout {
                path: path.into(),
                message: elapsed.to_string(),
            }),
        }
    }

    /// One call with a single JSON object reply.
    async fn call_one<T: DeserializeOwned + StreamLine>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        deadline: Duration,
    ) -> Result<T, IpfsError> {
        self.call_values::<T>(path, query, deadline)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| decode_error(path, "empty reply".into()))
    }

    /// An idempotent read: retried with backoff while the daemon cannot be reached.
    async fn read_one<T: DeserializeOwned + StreamLine>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, IpfsError> {
        self.retrying(|| self.call_one::<T>(path, query, self.config.request_timeout))
            .await
    }

    async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T, IpfsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, IpfsError>>,
    {
        let mut backoff = READ_RETRY_BACKOFF;
        for _ in 0..READ_RETRIES {
            match attempt().await {
                Err(IpfsError::Unreachable { .. }) => {
                    cluster_rt::sleep(backoff).await;
                    backoff *= 2;
                }
                other => return other,
            }
        }
        attempt().await
    }

    /// `pin/ls?stream=true&arg=<cid>&type=<mode>`: how `cid` is pinned, `None` when the daemon
    /// says it is not pinned (in `mode`).
    async fn pin_ls_arg(&self, cid: &Cid, mode: &str) -> Result<Option<IpfsPinType>, IpfsError> {
        let path = "pin/ls";
        let arg = cid.to_string();
        let query = [("stream", "true"), ("arg", arg.as_str()), ("type", mode)];
        let lines = match self
            .retrying(|| self.call_values::<PinLsLine>(path, &query, self.config.request_timeout))
            .await
        {
            Ok(lines) => lines,
            Err(IpfsError::Daemon { message, .. }) if is_not_pinned(&message) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut entries = Vec::new();
        for line in lines {
            line.entries(path, &mut entries)?;
        }
        // The daemon answers for our argument only, but may spell the CID differently (base58
        // CIDv1 from js-ipfs, CIDv0 for a v1 argument): match by multihash, else take the first.
        let found = entries
            .iter()
            .find(|(other, _)| other.0.hash() == cid.0.hash())
            .or(entries.first())
            .map(|(_, pin_type)| *pin_type);
        Ok(found.flatten())
    }
}

/// Reads a whole body of at most `limit` bytes.
async fn read_body(address: &str, path: &str, mut body: Incoming, limit: usize) -> Result<Vec<u8>, IpfsError> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| IpfsError::Unreachable {
            address: address.into(),
            message: format!("reply of {path} cut: {}", error_chain(&e)),
        })?;
        match frame.into_data() {
            Ok(data) => {
                if bytes.len() + data.len() > limit {
                    return Err(decode_error(path, format!("reply larger than {limit} bytes")));
                }
                bytes.extend_from_slice(&data);
            }
            Err(frame) => check_trailers(path, frame.trailers_ref())?,
        }
    }
    Ok(bytes)
}

/// Kubo reports an error that happens after a streamed reply started in the `X-Stream-Error` trailer.
fn check_trailers(path: &str, trailers: Option<&http::HeaderMap>) -> Result<(), IpfsError> {
    let Some(value) = trailers.and_then(|t| t.get("x-stream-error")) else {
        return Ok(());
    };
    let message = String::from_utf8_lossy(value.as_bytes()).trim().to_string();
    if message.is_empty() {
        return Ok(());
    }
    Err(IpfsError::Daemon {
        path: path.into(),
        code: 500,
        message,
    })
}

/// The message of an error and all its sources (hyper's own message alone is "client error (Connect)").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    // Bounded: error chains are short, but do not trust a cyclic one.
    for _ in 0..8 {
        let Some(cause) = source else { break };
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[async_trait::async_trait]
impl IpfsConnector for KuboConnector {
    async fn id(&self) -> Result<IpfsId, IpfsError> {
        let reply: IdReply = self.read_one("id", &[]).await?;
        Ok(IpfsId {
            id: reply.id,
            addresses: reply.addresses.unwrap_or_default(),
            error: String::new(),
        })
    }

    /// `pin/add` alone. Go's connector asks `pin/ls` first, but a `pin/add` of a CID already
    /// pinned that way is a quick no-op in Kubo and js-ipfs, and the tracker asks to pin only
    /// what its daemon does not list: the extra request per pin was a third of the tracker's
    /// and the daemon's work under load.
    async fn pin(&self, cid: &Cid, max_depth: i32) -> Result<(), IpfsError> {
        self.pin_add(std::slice::from_ref(cid), max_depth).await
    }

    async fn pin_many(&self, cids: &[Cid], max_depth: i32) -> Result<(), IpfsError> {
        self.pin_add(cids, max_depth).await
    }

    async fn unpin(&self, cid: &Cid) -> Result<(), IpfsError> {
        let arg = cid.to_string();
        match self
            .call_values::<IgnoredReply>("pin/rm", &[("arg", arg.as_str())], self.config.unpin_timeout)
            .await
        {
            Ok(_) => Ok(()),
            // Kubo: "not pinned or pinned indirectly"; js-ipfs: "... is not pinned".
            Err(IpfsError::Daemon { message, .. }) if is_not_pinned(&message) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn pin_ls_cid(&self, cid: &Cid) -> Result<Option<IpfsPinType>, IpfsError> {
        // Kubo and js-ipfs both accept type=all (their default) and name the type found.
        self.pin_ls_arg(cid, "all").await
    }

    async fn pin_ls(&self) -> Result<BoxStream<'static, Result<Cid, IpfsError>>, IpfsError> {
        self.pin_ls_stream().await
    }

    async fn repo_stat(&self) -> Result<RepoStat, IpfsError> {
        let reply: RepoStatReply = self.read_one("repo/stat", &[("size-only", "true")]).await?;
        Ok(RepoStat {
            repo_size: reply.repo_size,
            storage_max: reply.storage_max,
        })
    }

    async fn swarm_peers(&self) -> Result<Vec<String>, IpfsError> {
        let reply: SwarmPeersReply = self.read_one("swarm/peers", &[]).await?;
        Ok(reply.peers.unwrap_or_default().into_iter().map(|p| p.peer).collect())
    }

    async fn version(&self) -> Result<String, IpfsError> {
        let reply: VersionReply = self.read_one("version", &[]).await?;
        Ok(reply.version)
    }

    async fn resolve(&self, path: &str) -> Result<Cid, IpfsError> {
        #[derive(Deserialize)]
        struct ResolveReply {
            #[serde(rename = "Path")]
            path: String,
        }
        impl StreamLine for ResolveReply {
            fn stream_error(&self) -> Option<&str> {
                None
            }
        }
        let reply: ResolveReply = self
            .read_one("resolve", &[("arg", path), ("recursive", "true")])
            .await?;
        let text = reply.path.strip_prefix("/ipfs/").unwrap_or(&reply.path);
        text.split('/')
            .next()
            .unwrap_or("")
            .parse::<Cid>()
            .map_err(|e| decode_error("resolve", format!("bad Path {:?}: {e}", reply.path)))
    }

    async fn block_put(&self, cid: &Cid, data: Bytes) -> Result<(), IpfsError> {
        let stored = self.block_put_request(&[(*cid, data)]).await?;
        match stored.first() {
            // Daemons may answer another CID version or codec (js-ipfs); the hash must match.
            Some(key) if key.0.hash() == cid.0.hash() => Ok(()),
            Some(key) => Err(decode_error(
                "block/put",
                format!("the daemon stored {key}, which is not the block {cid}"),
            )),
            None => Err(decode_error("block/put", format!("the daemon did not store {cid}"))),
        }
    }

    async fn block_put_many(&self, blocks: Vec<(Cid, Bytes)>) -> Result<(), IpfsError> {
        // One request per codec and CID version (the query sets them for every part).
        let mut groups: BTreeMap<(u64, u64), Vec<(Cid, Bytes)>> = BTreeMap::new();
        for (cid, data) in blocks {
            groups
                .entry((cid.0.codec(), u64::from(cid.0.version())))
                .or_default()
                .push((cid, data));
        }
        for group in groups.into_values() {
            let stored: BTreeSet<Vec<u8>> = self
                .block_put_request(&group)
                .await?
                .iter()
                .map(|key| key.0.hash().to_bytes())
                .collect();
            // A daemon that took only the first part of a request (js-ipfs) gets the rest one
            // by one.
            for (cid, data) in group {
                if !stored.contains(&cid.0.hash().to_bytes()) {
                    self.block_put(&cid, data).await?;
                }
            }
        }
        Ok(())
    }

    async fn repo_gc(&self) -> Result<Vec<GcEntry>, IpfsError> {
        // Not retried: a GC is not idempotent in what it reports. Go's `repogc_timeout` is 24 h.
        let lines = self.call_values::<RepoGcLine>("repo/gc", &[], REPO_GC_TIMEOUT).await?;
        lines
            .into_iter()
            .filter_map(|line| match (line.key, line.error) {
                (_, Some(error)) if !error.is_empty() => Some(Ok(GcEntry::Error(error))),
                (Some(key), _) => Some(
                    key.cid
                        .parse::<Cid>()
                        .map(GcEntry::Removed)
                        .map_err(|e| decode_error("repo/gc", format!("bad key {:?}: {e}", key.cid))),
                ),
                _ => None,
            })
            .collect()
    }
}

/// Deadline of a repository GC (Go `repogc_timeout`).
const REPO_GC_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiaddresses_become_host_port() {
        let ok = |text: &str| KuboConnectorConfig::address_from_multiaddr(text).unwrap().to_string();
        assert_eq!(ok("/ip4/127.0.0.1/tcp/5001"), "127.0.0.1:5001");
        assert_eq!(ok("/ip6/::1/tcp/5001"), "[::1]:5001");
        assert_eq!(ok("/dns4/ipfs.example/tcp/5001"), "ipfs.example:5001");
        assert_eq!(ok("/dns6/ipfs.example/tcp/5001"), "ipfs.example:5001");
        assert_eq!(ok("/dns/ipfs/tcp/80"), "ipfs:80");
        assert_eq!(ok("/unix/run/ipfs/api.sock"), "/unix/run/ipfs/api.sock");
        for bad in [
            "",
            "127.0.0.1:5001",
            "/ip4/127.0.0.1",
            "/ip4/127.0.0.1/udp/5001",
            "/unix/",
            "/tcp/5001",
        ] {
            assert!(
                KuboConnectorConfig::address_from_multiaddr(bad).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn defaults_match_go() {
        let config = KuboConnectorConfig::default();
        assert_eq!(config.node_address, HttpAddress::Tcp("127.0.0.1:5001".into()));
        assert_eq!(config.request_timeout, Duration::from_secs(300));
        assert_eq!(config.pin_timeout, Duration::from_secs(120));
        assert_eq!(config.unpin_timeout, Duration::from_secs(10800));
    }
}
