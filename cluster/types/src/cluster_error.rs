//! The error every cluster operation returns, across the REST API and (later) inter-member RPC.

use serde::{Deserialize, Serialize};

/// Why a cluster operation failed. Serializable so that it crosses RPC unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The CID is not in the shared pinset (REST 404).
    #[error("pin is not part of the pinset")]
    NotFound,
    /// An argument the cluster refused (REST 500, as every backend error in Go; requests that do
    /// not parse are 400s of the REST layer); the text says which argument.
    #[error("{0}")]
    InvalidArgument(String),
    /// Fewer members are available than the replication factor needs.
    #[error("{0}")]
    NotEnoughPeers(String),
    /// No Raft leader within `wait_for_leader_timeout`; retrying later may work.
    #[error("{0}")]
    NoLeader(String),
    /// Too few voters answer for the cluster to commit anything (a majority is down or cut
    /// off); the text says how many and what to do.
    #[error("{0}")]
    NoQuorum(String),
    /// Consensus failed to commit (storage error, shutdown).
    #[error("consensus error: {0}")]
    Consensus(String),
    /// The IPFS daemon failed.
    #[error("{0}")]
    Ipfs(String),
    /// A deadline passed; the operation's outcome is unknown.
    #[error("{0}")]
    Timeout(String),
    /// The member is shutting down.
    #[error("cluster is shutting down")]
    ShuttingDown,
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl ClusterError {
    /// The REST status code for this error (reference §1.3): Go's `SendResponse` answers 404
    /// only for "pin is not part of the pinset", 500 for every other backend error.
    pub fn http_status(&self) -> u16 {
        match self {
            ClusterError::NotFound => 404,
            _ => 500,
        }
    }

    /// The REST error body.
    pub fn to_api_error(&self) -> crate::ApiError {
        crate::ApiError {
            code: self.http_status(),
            message: self.to_string(),
        }
    }
}
