//! The REST API of a member (reference §1), served with hyper.
//!
//! Also the IPFS proxy ([`IpfsProxy`], reference §4), which answers pin calls from the cluster and
//! forwards the rest of the Kubo RPC API to the daemon.
//!
//! Owns: routing, query parsing, JSON and NDJSON encoding (with the `X-Stream-Error` trailer),
//! error bodies and status codes, Basic/Bearer authentication with `POST /token` ([`Credentials`])
//! and CORS ([`CorsConfig`]). Does not own cluster logic: every route calls a method of
//! [`RestBackend`], which `cluster-node`'s `Cluster` implements (tests use a mock).
//!
//! The server needs real sockets, so it is compiled only outside the simulator.
#![deny(missing_docs)]

#[cfg(not(madsim))]
mod add_route;
mod auth;
#[cfg(not(madsim))]
mod conn_limits;
mod cors;
#[cfg(not(madsim))]
#[doc(hidden)]
pub mod fuzz_entry;
mod http_limits;
#[cfg(not(madsim))]
mod http_server;
#[cfg(not(madsim))]
mod ipfs_proxy;
#[cfg(not(madsim))]
mod listen;
#[cfg(not(madsim))]
mod multipart;
#[cfg(not(madsim))]
mod ndjson_body;
#[cfg(not(madsim))]
mod rest_request;
#[cfg(not(madsim))]
mod rest_server;
#[cfg(not(madsim))]
mod te_trailers;

pub use auth::Credentials;
pub use cluster_types::HttpAddress;
pub use cors::CorsConfig;
pub use http_limits::{default_max_connections, HttpLimits, MAX_HEADER_BYTES_MIN};
#[cfg(not(madsim))]
pub use ipfs_proxy::{IpfsProxy, IpfsProxyConfig};
#[cfg(not(madsim))]
pub use listen::{ConnectionIo, Listeners, TunnelConnection};
#[cfg(not(madsim))]
pub use rest_server::{RestServer, RestServerConfig};

use cluster_rt::tokio::sync::mpsc;
use std::collections::BTreeMap;

use cluster_types::{
    Alert, Bandwidth, Cid, ClusterError, ConnectGraph, GlobalPinInfo, GlobalRepoGc, Id, LineItem, Metric, PeerId, Pin,
    PinOptions, TrackerStatusFilter,
};

/// A certificate chain and its private key, PEM files (`ssl_cert_file`, `ssl_key_file`): the
/// REST API then serves HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: std::path::PathBuf,
    /// The private key.
    pub key: std::path::PathBuf,
}

/// A stream of results; the sender side ends the stream by dropping. Each item may be an error,
/// which the REST layer reports in the `X-Stream-Error` trailer (or as a 500 before the first item).
pub type ResultStream<T> = mpsc::Receiver<Result<T, ClusterError>>;

/// A [`ResultStream`] of pages: for listings of the whole pinset, where one channel send per item
/// would cost more than writing the item (a `Pin` is ~300 bytes, moved at every hop). Empty pages
/// are allowed and skipped.
pub type PageStream<T> = mpsc::Receiver<Result<Vec<T>, ClusterError>>;

/// What the REST API needs from the cluster.
///
/// To ensure correctness:
/// - Streams are bounded channels: implementations must produce items as they are read, never
///   collect a whole pinset first.
/// - `pin` and `unpin` return only after the change is committed to the shared state.
#[async_trait::async_trait]
pub trait RestBackend: Send + Sync + 'static {
    /// `GET /id`: this member's identity (asks the IPFS daemon each time).
    async fn id(&self) -> Id;

    /// `GET /health`: `Ok` when the member can do its work (204), else why not (503).
    async fn health(&self) -> Result<(), String> {
        Ok(())
    }

    /// `GET /peers`: the identity of every member.
    async fn peers(&self) -> ResultStream<Id>;

    /// `POST /pins/{cid}`: pins and returns the committed pin.
    async fn pin(&self, cid: Cid, options: PinOptions) -> Result<Pin, ClusterError>;

    /// `POST /pins/{ipfs|ipns|ipld}/{path}`: resolves the path, then pins.
    async fn pin_path(&self, path: String, options: PinOptions) -> Result<Pin, ClusterError>;

    /// `DELETE /pins/{cid}`: unpins and returns the removed pin.
    async fn unpin(&self, cid: Cid) -> Result<Pin, ClusterError>;

    /// The CID an IPFS path names, resolved by the daemon (the IPFS proxy's `pin/update`).
    async fn resolve_path(&self, path: String) -> Result<Cid, ClusterError> {
        let _ = path;
        Err(ClusterError::unsupported("resolving paths"))
    }

    /// `DELETE /pins/{ipfs|ipns|ipld}/{path}`: resolves the path, then unpins.
    async fn unpin_path(&self, path: String) -> Result<Pin, ClusterError>;

    /// `GET /allocations`: every pin in the shared state whose type flag is in `type_mask`, a
    /// page at a time.
    async fn allocations(&self, type_mask: u32) -> PageStream<Pin>;

    /// `GET /allocations/{cid}`: the pin from the shared state.
    async fn allocation(&self, cid: Cid) -> Result<Pin, ClusterError>;

    /// `GET /pins/{cid}`: status on every allocated member (only this one if `local`).
    async fn status(&self, cid: Cid, local: bool) -> Result<GlobalPinInfo, ClusterError>;

    /// `GET /pins`: status of every pin that matches `filter`; only the listed CIDs when `cids`
    /// is non-empty. A backend that writes statuses faster than it builds them sends runs of
    /// lines ([`LineItem::Written`]).
    async fn status_all(
        &self,
        filter: TrackerStatusFilter,
        cids: Vec<Cid>,
        local: bool,
    ) -> ResultStream<LineItem<GlobalPinInfo>>;

    /// `POST /pins/{cid}/recover`: re-queues a failed pin or unpin.
    async fn recover(&self, cid: Cid, local: bool) -> Result<GlobalPinInfo, ClusterError>;

    /// `POST /pins/recover`: re-queues every failed item; streams only those re-queued.
    async fn recover_all(&self, local: bool) -> ResultStream<GlobalPinInfo>;

    /// `POST /peers`: adds `peer` as a voting member and returns its identity. `addresses`
    /// (an extension of Go's body) says where to reach a peer the cluster has not met.
    async fn peer_add(&self, peer: PeerId, addresses: Vec<String>) -> Result<Id, ClusterError> {
        let _ = (peer, addresses);
        Err(ClusterError::unsupported("adding peers"))
    }

    /// `DELETE /peers/{peer}`: moves the peer's pins elsewhere and removes it from the cluster.
    async fn peer_remove(&self, peer: PeerId) -> Result<(), ClusterError> {
        let _ = peer;
        Err(ClusterError::unsupported("removing peers"))
    }

    /// `GET /monitor/metrics`: the names of the metrics the monitor holds, sorted.
    async fn metric_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// `GET /monitor/metrics/{name}`: the latest unexpired metric `name` of every member.
    async fn metrics(&self, name: String) -> Vec<Metric> {
        let _ = name;
        Vec::new()
    }

    /// `GET /health/alerts`: alerts raised for expired metrics, newest first.
    async fn alerts(&self) -> Vec<Alert> {
        Vec::new()
    }

    /// `GET /health/graph`: who is connected to whom.
    async fn connect_graph(&self) -> Result<ConnectGraph, ClusterError> {
        Err(ClusterError::unsupported("the connectivity graph"))
    }

    /// `GET /health/bandwidth`: traffic per protocol.
    async fn bandwidth(&self) -> BTreeMap<String, Bandwidth> {
        BTreeMap::new()
    }

    /// `POST /add`, before the upload is read: the members whose daemons receive the blocks
    /// (only this member with `local`).
    async fn add_destinations(&self, options: &PinOptions, local: bool) -> Result<Vec<PeerId>, ClusterError> {
        let _ = (options, local);
        Err(ClusterError::unsupported("adding content"))
    }

    /// `POST /add`: stores blocks on every destination's daemon.
    async fn add_blocks(&self, destinations: &[PeerId], blocks: Vec<(Cid, bytes::Bytes)>) -> Result<(), ClusterError> {
        let _ = (destinations, blocks);
        Err(ClusterError::unsupported("adding content"))
    }

    /// `POST /add`: pins the added root, allocated first to the destinations.
    async fn add_pin(&self, root: Cid, options: PinOptions, destinations: Vec<PeerId>) -> Result<Pin, ClusterError> {
        let _ = (root, options, destinations);
        Err(ClusterError::unsupported("adding content"))
    }

    /// The IPFS proxy's `repo/stat`: `(RepoSize, StorageMax)` summed over every member's daemon.
    async fn repo_stat_all(&self) -> Result<(u64, u64), ClusterError> {
        Err(ClusterError::unsupported("reading repository stats"))
    }

    /// `POST /ipfs/gc`: runs the IPFS daemons' repository GC (only this member's if `local`).
    async fn repo_gc(&self, local: bool) -> Result<GlobalRepoGc, ClusterError> {
        let _ = local;
        Err(ClusterError::unsupported("repository GC"))
    }
}
