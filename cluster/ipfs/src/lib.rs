//! The IPFS daemon beside a member, behind the [`IpfsConnector`] trait.
//!
//! Owns: the trait and its error type; `KuboConnector`, the Kubo RPC HTTP client used in
//! production (`cfg(not(madsim))`, reference §8). Behind the `testing` feature (and in this
//! crate's tests): `FakeIpfs`, an in-process daemon with fault knobs for the simulator and unit
//! tests; `FakeKuboServer`, a Kubo RPC HTTP server over a `FakeIpfs` (like Go's
//! `test/ipfs_mock.go`) for fast tests of real processes; and `testing`, the conformance suite
//! every connector and fake must pass.
//! Does not own: deciding what to pin (the tracker does).
#![deny(missing_docs)]

#[cfg(not(madsim))]
mod daemon_connector;
mod error;
#[cfg(any(test, feature = "testing"))]
mod fake_ipfs;
#[cfg(all(not(madsim), any(test, feature = "testing")))]
mod fake_kubo_server;
#[cfg(not(madsim))]
mod json_stream;
#[cfg(not(madsim))]
mod kubo_connector;
#[cfg(not(madsim))]
mod kubo_replies;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use bytes::Bytes;
#[cfg(not(madsim))]
pub use daemon_connector::{uri_authority, DaemonConnector, DaemonStream};
pub use error::IpfsError;
#[cfg(any(test, feature = "testing"))]
pub use fake_ipfs::{FakeIpfs, FakeIpfsKnobs};
#[cfg(all(not(madsim), any(test, feature = "testing")))]
pub use fake_kubo_server::FakeKuboServer;
#[cfg(not(madsim))]
pub use kubo_connector::{KuboConnector, KuboConnectorConfig};

use cluster_types::{Cid, IpfsId};
use futures::stream::BoxStream;

/// How a CID is pinned on the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpfsPinType {
    /// The whole DAG.
    Recursive,
    /// Only the root block.
    Direct,
    /// Pinned because a recursive pin includes it.
    Indirect,
}

/// The daemon's repository usage (`repo/stat?size-only=true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RepoStat {
    /// Bytes used.
    pub repo_size: u64,
    /// Bytes allowed.
    pub storage_max: u64,
}

/// What the tracker and the cluster need from an IPFS daemon.
///
/// To ensure correctness:
/// - Every call has a deadline: none may hang forever, whatever the daemon does.
/// - `pin` returns only once the daemon reports the pin done; it fails with
///   [`IpfsError::Timeout`] when the daemon stops making progress for the pin timeout (not when
///   the pin merely takes long).
/// - `unpin` of a CID that is not pinned succeeds (unpin is idempotent).
/// - CIDs coming back from the daemon are returned decoded, so a base58 CIDv1 from js-ipfs
///   equals the base32 one we sent.
#[async_trait::async_trait]
pub trait IpfsConnector: Send + Sync + 'static {
    /// The daemon's identity (`id`).
    async fn id(&self) -> Result<IpfsId, IpfsError>;

    /// Pins `cid` with `max_depth` (-1 recursive, 0 direct, N limited).
    async fn pin(&self, cid: &Cid, max_depth: i32) -> Result<(), IpfsError>;

    /// Pins every CID of `cids` with `max_depth` in one daemon call where the daemon takes
    /// several (`pin/add` with one `arg` each; Kubo pins them one after the other, so one slow
    /// CID delays the rest). `Ok` means all are pinned; after an error each may or may not be.
    /// The default pins them one by one, stopping at the first failure.
    async fn pin_many(&self, cids: &[Cid], max_depth: i32) -> Result<(), IpfsError> {
        for cid in cids {
            self.pin(cid, max_depth).await?;
        }
        Ok(())
    }

    /// Unpins `cid`; succeeds if it was not pinned.
    async fn unpin(&self, cid: &Cid) -> Result<(), IpfsError>;

    /// How `cid` is pinned, `None` if not pinned.
    async fn pin_ls_cid(&self, cid: &Cid) -> Result<Option<IpfsPinType>, IpfsError>;

    /// Every recursive pin of the daemon, streamed (it may hold millions).
    async fn pin_ls(&self) -> Result<BoxStream<'static, Result<Cid, IpfsError>>, IpfsError>;

    /// Repository size and limit.
    async fn repo_stat(&self) -> Result<RepoStat, IpfsError>;

    /// Peer ids of the daemon's swarm peers.
    async fn swarm_peers(&self) -> Result<Vec<String>, IpfsError>;

    /// The CID an IPFS path names (`/ipns/<name>`, `/ipfs/<cid>/sub/path`), as `ipfs resolve`.
    async fn resolve(&self, path: &str) -> Result<Cid, IpfsError>;

    /// The daemon's version string.
    async fn version(&self) -> Result<String, IpfsError>;

    /// Runs the repository garbage collector; one entry per removed block or per error met.
    async fn repo_gc(&self) -> Result<Vec<GcEntry>, IpfsError>;

    /// Stores one block (`block/put`, not pinned); fails if the daemon stores other content.
    async fn block_put(&self, cid: &Cid, data: bytes::Bytes) -> Result<(), IpfsError>;

    /// Stores blocks, in any order (`block/put` of several at once where the daemon takes them:
    /// one request instead of one per block); the first failure is returned. The default stores
    /// them one by one.
    async fn block_put_many(&self, blocks: Vec<(Cid, bytes::Bytes)>) -> Result<(), IpfsError> {
        for (cid, data) in blocks {
            self.block_put(&cid, data).await?;
        }
        Ok(())
    }
}

/// One line of a repository GC: a removed block, or an error the daemon reported for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcEntry {
    /// The block was removed.
    Removed(Cid),
    /// The daemon's error text.
    Error(String),
}
