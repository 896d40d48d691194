//! The `/version` body and the version constants this implementation reports.

use serde::{Deserialize, Serialize};

/// The IPFS Cluster version whose API we implement (reported by `/version` and `/id`).
pub const VERSION: &str = "1.1.6";

/// The inter-member RPC protocol id, as in Go's `version.RPCProtocol`.
pub const RPC_PROTOCOL_VERSION: &str = "/ipfscluster/1.0/rpc";

/// `GET /version` response: `{"version":"1.1.6"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Semver string.
    pub version: String,
}
