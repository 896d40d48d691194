//! `GET /id`: who a member is, its cluster peers and its IPFS daemon.

use serde::{Deserialize, Serialize};

use crate::PeerId;

/// A member's identity (`GET /id`, and each line of `GET /peers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Id {
    /// Cluster peer id.
    pub id: PeerId,
    /// The member's libp2p addresses (with `/p2p/<id>`).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Peer ids of every member.
    #[serde(default)]
    pub cluster_peers: Vec<PeerId>,
    /// Addresses of the other members.
    #[serde(default)]
    pub cluster_peers_addresses: Vec<String>,
    /// Software version.
    #[serde(default)]
    pub version: String,
    /// Build commit (empty, as in Go release builds).
    #[serde(default)]
    pub commit: String,
    /// `/ipfscluster/1.0/rpc`.
    #[serde(default)]
    pub rpc_protocol_version: String,
    /// Error reaching this member, empty when fine.
    #[serde(default)]
    pub error: String,
    /// The member's IPFS daemon.
    #[serde(default)]
    pub ipfs: IpfsId,
    /// Human-readable member name.
    #[serde(default)]
    pub peername: String,
}

/// The IPFS daemon beside a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IpfsId {
    /// The daemon's peer id; omitted when the daemon could not be reached.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The daemon's swarm addresses.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Error reaching the daemon, empty when fine.
    #[serde(default)]
    pub error: String,
}
