//! The RPC API between members (Go's `rpc_api.go`): typed [`RpcRequest`]s and
//! [`RpcResponse`]s, the [`Transport`] that carries them, the [`RpcHandler`] each member
//! serves, [`RaftOverRpc`], which carries Raft's messages over any transport, [`LocalShortcut`],
//! which answers a member's calls to itself, and [`RpcForwarder`], which sends writes to the leader.
//!
//! Owns: the request and response types, their wire encoding ([`wire`]) and their routing.
//! Does not own: what a member does with a request (cluster-node implements [`RpcHandler`]) nor
//! production networking (cluster-p2p's libp2p transport). [`SimTransport`] carries requests
//! over madsim's simulated network.
#![deny(missing_docs)]

mod local;
mod raft_over_rpc;
#[cfg(madsim)]
mod sim_transport;
pub mod wire;

pub use local::{LocalShortcut, RpcForwarder};
pub use raft_over_rpc::{MembershipRefusals, RaftOverRpc};
#[cfg(madsim)]
pub use sim_transport::SimTransport;

use std::time::Duration;

use cluster_consensus::{Command, Committed, MemberNode, NodeId, Promotion, TransportFailure, TypeConfig};
use cluster_types::status_codec::PackedStatuses;
pub use cluster_types::PinStatus;
use cluster_types::{Cid, ClusterError, Id, Metric, PeerId, PinInfo, PinInfoShort, RepoGc};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};

/// A request from one member to another.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum RpcRequest {
    /// Raft AppendEntries.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft RequestVote.
    Vote(VoteRequest<NodeId>),
    /// Raft InstallSnapshot (one chunk).
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A write forwarded to the leader (Go `Consensus.LogPin/LogUnpin`).
    Commit(Command),
    /// The member's tracker status of one CID (Go `PinTracker.Status`).
    Status(Cid),
    /// The member's tracker status of the pins in a range of CIDs, for a cluster-wide status
    /// (Go streams `PinTracker.StatusAll` from every member; we ask for one range at a time).
    StatusRange(StatusRange),
    /// [`RpcRequest::StatusRange`] answered as a [`StatusPage`]: the member's own fields once,
    /// and per pin only its status (the caller has the pins from its own state). Callers ask
    /// this one; `StatusRange` is still served for members of earlier versions.
    StatusPage(StatusRange),
    /// Re-queue a failed operation on the member (Go `PinTracker.Recover`).
    Recover(Cid),
    /// Re-queue every failed operation on the member (Go `PinTracker.RecoverAll`); the answer
    /// lists at most [`RECOVER_ALL_LISTED_MAX`] of the items re-queued.
    RecoverAll,
    /// The member's identity (Go `Cluster.ID`).
    Id,
    /// Adds a member to the cluster as a learner (Go `Cluster.PeerAdd`; `PeerPromote` then
    /// makes it a voter). Served by the leader; other members forward it.
    PeerAdd(MemberNode),
    /// Makes a learner that has caught up a voter (the second step of `PeerAdd`); answers how
    /// far it is otherwise. Served by the leader; other members forward it.
    PeerPromote(MemberNode),
    /// Removes a member from the cluster after moving its pins (Go `Cluster.PeerRemove`).
    /// Served by the leader; other members forward it.
    PeerRemove(PeerId),
    /// A member's metric about itself (Go publishes them on pubsub; we send them to each member).
    PushMetric(Metric),
    /// Run the repository GC of the member's IPFS daemon (Go `IPFSConnector.RepoGC`).
    RepoGc,
    /// The IPFS peers the member's daemon is connected to (Go `IPFSConnector.SwarmPeers`).
    SwarmPeers,
    /// The member's daemon's repository size and limit (Go `IPFSConnector.RepoStat`).
    RepoStat,
    /// Store these blocks on the member's daemon (Go `IPFSConnector.BlockStream`, for `/add`).
    BlockPut(Vec<WireBlock>),
    /// Whether this peer is a voter of the member's membership: asked of a known voter by a
    /// member that receives Raft messages from a peer its own membership does not name (one that
    /// joined while it was away).
    Vouch(PeerId),
}

/// The words of a transport failure to a member that is still starting (it answered
/// [`RpcResponse::Starting`]): a caller may try again shortly.
pub const MEMBER_STARTING: &str = "is starting and serves no request yet";

/// Items listed in one member's answer to [`RpcRequest::RecoverAll`]: under the frame limit
/// ([`wire::MAX_FRAME`], 64 MiB) even at a few kilobytes each (a daemon's address list).
pub const RECOVER_ALL_LISTED_MAX: usize = 10_000;

/// Which pins a [`RpcRequest::StatusRange`] asks about: those whose CIDs fall in
/// `(after, through]` in CID byte order (`None`: from the start, to the end), at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusRange {
    /// The range starts after this CID.
    pub after: Option<Cid>,
    /// The range ends with this CID.
    pub through: Option<Cid>,
    /// The most pins one answer covers (the member caps it too).
    pub limit: u32,
    /// Answer with the statuses packed ([`StatusPage::packed`]) rather than listed. Members of
    /// earlier versions ignore it and list them, so a caller reads either.
    #[serde(default, skip_serializing_if = "is_false")]
    pub packed: bool,
}

fn is_false(flag: &bool) -> bool {
    !*flag
}

/// One member's statuses of a range ([`RpcRequest::StatusPage`]): what is the same for every
/// pin once, and per pin what differs.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct StatusPage {
    /// The member's peername.
    pub peername: String,
    /// The member's IPFS daemon peer id (empty when unknown).
    pub ipfs_peer_id: String,
    /// The member's IPFS daemon addresses.
    pub ipfs_peer_addresses: Vec<String>,
    /// The statuses, in CID byte order (listed in JSON).
    pub items: Vec<PinStatus>,
    /// The statuses in their binary form, when the range asked for it ([`StatusRange::packed`]);
    /// then `items` is empty. [`StatusPage::unpack`] moves them to `items`.
    #[serde(default, skip_serializing_if = "PackedStatuses::is_empty")]
    pub packed: PackedStatuses,
    /// Where the member stopped when `limit` pins were read before the end of the range (the
    /// caller asks again from there).
    pub stopped_at: Option<Cid>,
}

impl StatusPage {
    /// The page of a tracker's statuses (all of one member: the member's fields are taken from
    /// the first that has them).
    pub fn of_statuses(statuses: Vec<PinInfo>, stopped_at: Option<Cid>) -> StatusPage {
        let mut page = StatusPage {
            items: Vec::with_capacity(statuses.len()),
            stopped_at,
            ..StatusPage::default()
        };
        for info in statuses {
            let short = info.short;
            if page.peername.is_empty() {
                page.peername = short.peername;
            }
            if page.ipfs_peer_id.is_empty() {
                page.ipfs_peer_id = short.ipfs_peer_id;
            }
            if page.ipfs_peer_addresses.is_empty() {
                page.ipfs_peer_addresses = short.ipfs_peer_addresses;
            }
            page.items.push(PinStatus {
                cid: info.cid,
                status: short.status,
                timestamp: short.timestamp,
                error: short.error,
                attempt_count: short.attempt_count,
                priority_pin: short.priority_pin,
            });
        }
        page
    }

    /// The page of a tracker's statuses given without the member's fields, which `member`
    /// holds ([`cluster_types::PinInfoShort`]'s peername and daemon identity).
    pub fn of_shorts(member: PinInfoShort, statuses: Vec<(Cid, PinInfoShort)>, stopped_at: Option<Cid>) -> StatusPage {
        let items = statuses
            .into_iter()
            .map(|(cid, short)| PinStatus {
                cid,
                status: short.status,
                timestamp: short.timestamp,
                error: short.error,
                attempt_count: short.attempt_count,
                priority_pin: short.priority_pin,
            })
            .collect();
        StatusPage {
            peername: member.peername,
            ipfs_peer_id: member.ipfs_peer_id,
            ipfs_peer_addresses: member.ipfs_peer_addresses,
            items,
            packed: PackedStatuses::default(),
            stopped_at,
        }
    }

    /// The page with its statuses packed.
    pub fn packed(mut self) -> StatusPage {
        self.packed = PackedStatuses(std::mem::take(&mut self.items));
        self
    }

    /// The page with its statuses in `items`, however they came.
    pub fn unpack(mut self) -> StatusPage {
        if !self.packed.is_empty() {
            let packed = std::mem::take(&mut self.packed.0);
            if self.items.is_empty() {
                self.items = packed;
            } else {
                self.items.extend(packed);
            }
        }
        self
    }
}

/// A block in an RPC: its CID and its bytes (base64 in the JSON frame).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WireBlock {
    /// The block's CID.
    pub cid: Cid,
    /// The block's bytes.
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// The answer to an [`RpcRequest`], variant for variant.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum RpcResponse {
    /// Raft AppendEntries result.
    AppendEntries(Result<AppendEntriesResponse<NodeId>, ClusterError>),
    /// Raft RequestVote result.
    Vote(Result<VoteResponse<NodeId>, ClusterError>),
    /// Raft InstallSnapshot result.
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, ClusterError>),
    /// The committed result of a forwarded write, with its log index.
    Commit(Result<Committed, ClusterError>),
    /// A tracker status.
    Status(PinInfo),
    /// The statuses of a range in CID byte order, and where the member stopped when `limit`
    /// pins were read before the end of the range (the caller asks again from there).
    StatusRange(Result<(Vec<PinInfo>, Option<Cid>), ClusterError>),
    /// The statuses of a range as one page.
    StatusPage(Result<StatusPage, ClusterError>),
    /// The status after a recover.
    Recover(Result<PinInfo, ClusterError>),
    /// The new status of the items a recover-all re-queued (the first
    /// [`RECOVER_ALL_LISTED_MAX`]; every item is re-queued), and how many were re-queued in all.
    RecoverAll(Result<(Vec<PinInfo>, u64), ClusterError>),
    /// A member's identity.
    Id(Id),
    /// The added member's record as the cluster now knows it.
    PeerAdd(Result<MemberNode, ClusterError>),
    /// Whether the learner votes now, or how far it has caught up.
    PeerPromote(Result<Promotion, ClusterError>),
    /// Whether the member was removed.
    PeerRemove(Result<(), ClusterError>),
    /// The metric was recorded.
    PushMetric,
    /// The member's GC result (errors inside).
    RepoGc(RepoGc),
    /// The daemon's swarm peers, or why they could not be listed.
    SwarmPeers(Result<Vec<String>, ClusterError>),
    /// `(RepoSize, StorageMax)`, or why they could not be read.
    RepoStat(Result<(u64, u64), ClusterError>),
    /// Whether every block was stored.
    BlockPut(Result<(), ClusterError>),
    /// Whether the peer asked about is a voter of the answering member's membership.
    Vouch(bool),
    /// The member is starting and serves no request yet; the transport turns this into an
    /// `Unreachable` failure whose text contains [`MEMBER_STARTING`].
    Starting,
    /// A Raft request from a node that is not in the answering member's membership (for
    /// example one removed while it was away): refused without reaching Raft, so it cannot
    /// raise the cluster's term.
    NotAMember,
    /// The caller may not make this call (the member's RPC policy), and why.
    Refused(String),
}

/// Serves requests from other members.
///
/// To ensure correctness: `handle` must answer with the response variant of the request, or
/// [`RpcResponse::Refused`].
#[async_trait::async_trait]
pub trait RpcHandler: Send + Sync + 'static {
    /// Answers one request from `from`, the peer the transport authenticated (this member
    /// itself for its own calls).
    async fn handle(&self, from: PeerId, request: RpcRequest) -> RpcResponse;
}

/// Carries requests to other members, addressed by their Raft member record (peer id and
/// address).
///
/// To ensure correctness: every call returns within `timeout`. A request may be lost (the
/// outcome is then unknown to the caller); it is never delivered twice. A transport must
/// authenticate the peer it reaches: the answer comes from `to.peer_id` or the call fails.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Bytes received and sent by this member's RPC since it started (zero if not counted).
    fn traffic(&self) -> Traffic {
        Traffic::default()
    }

    /// Sends `request` to the member `to` and waits for its answer.
    async fn call(
        &self,
        to: &MemberNode,
        request: RpcRequest,
        timeout: Duration,
    ) -> Result<RpcResponse, TransportFailure>;
}

/// Totals of a transport's traffic, for `/health/bandwidth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
}

/// `ip:port` of a `/ip4/<ip>/tcp/<port>[/p2p/<id>]` member address.
pub fn socket_address(address: &str) -> Result<std::net::SocketAddr, TransportFailure> {
    let parsed: multiaddr::Multiaddr = address
        .parse()
        .map_err(|e| TransportFailure::Unreachable(format!("bad member address {address:?}: {e}")))?;
    let mut ip = None;
    let mut port = None;
    for protocol in parsed.iter() {
        match protocol {
            multiaddr::Protocol::Ip4(v4) => ip = Some(std::net::IpAddr::V4(v4)),
            multiaddr::Protocol::Ip6(v6) => ip = Some(std::net::IpAddr::V6(v6)),
            multiaddr::Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) => Ok(std::net::SocketAddr::new(ip, port)),
        _ => Err(TransportFailure::Unreachable(format!(
            "member address {address:?} has no /ip4|ip6/../tcp/..."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_addresses_parse() {
        assert_eq!(
            socket_address("/ip4/10.0.0.2/tcp/9096").unwrap().to_string(),
            "10.0.0.2:9096"
        );
        assert!(socket_address("/ip4/10.0.0.2/udp/9096").is_err());
        assert!(socket_address("nonsense").is_err());
    }
}
