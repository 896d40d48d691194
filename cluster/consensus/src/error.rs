//! Errors of the consensus component.

use cluster_types::ClusterError;

use crate::NodeId;

/// Consensus could not start or could not commit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsensusError {
    /// The Raft log store failed to open or write.
    #[error("raft log store {path}: {message}")]
    LogStore {
        /// The log database file.
        path: String,
        /// What failed.
        message: String,
    },
    /// The log database is open in another process.
    #[error("raft log store {path} is locked by another process (is another member running with this data folder?)")]
    Locked {
        /// The log database file.
        path: String,
    },
    /// The pinset store failed.
    #[error(transparent)]
    State(#[from] cluster_state::StateError),
    /// openraft refused to start or initialize.
    #[error("raft: {0}")]
    Raft(String),
}

impl From<ConsensusError> for ClusterError {
    fn from(e: ConsensusError) -> ClusterError {
        ClusterError::Consensus(e.to_string())
    }
}

/// A Raft error as a cluster error: a stopped Raft node (a storage failure, a panic) is fatal
/// for this member; any other is a consensus error.
pub fn raft_error<E: std::error::Error>(error: openraft::error::RaftError<NodeId, E>) -> ClusterError {
    match error {
        openraft::error::RaftError::Fatal(fatal) => ClusterError::Fatal(format!("raft stopped: {fatal}")),
        openraft::error::RaftError::APIError(e) => ClusterError::Consensus(e.to_string()),
    }
}
