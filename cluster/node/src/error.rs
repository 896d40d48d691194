//! Errors that stop a member from starting.

/// Why a member could not be configured or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A configuration file is missing, unreadable or invalid; the text names the file and key.
    #[error("{0}")]
    Config(String),
    /// The data folder is in use by another running member.
    #[error("data folder {path} is locked by another running member (lock file {lock})")]
    Locked {
        /// The data folder.
        path: String,
        /// The lock file.
        lock: String,
    },
    /// Reading or writing the data folder failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or folder.
        path: String,
        /// What failed.
        message: String,
    },
    /// The pinset store failed to open.
    #[error(transparent)]
    State(#[from] cluster_state::StateError),
    /// Consensus failed to start.
    #[error(transparent)]
    Consensus(#[from] cluster_consensus::ConsensusError),
}
