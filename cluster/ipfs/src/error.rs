//! Errors from the IPFS daemon.

/// An IPFS daemon call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpfsError {
    /// The daemon could not be reached (connection refused, reset, DNS).
    #[error("IPFS daemon unreachable at {address}: {message}")]
    Unreachable {
        /// The daemon address.
        address: String,
        /// What failed.
        message: String,
    },
    /// The daemon answered with an error (Go: `IPFS error (<path>). Code: N. Message: ...`).
    #[error("IPFS error ({path}). Code: {code}. Message: {message}")]
    Daemon {
        /// The RPC path, e.g. `pin/add`.
        path: String,
        /// The HTTP status code.
        code: u16,
        /// The daemon's `Message`.
        message: String,
    },
    /// The call passed its deadline, or a pin stopped making progress.
    #[error("IPFS {path} timed out: {message}")]
    Timeout {
        /// The RPC path.
        path: String,
        /// What timed out.
        message: String,
    },
    /// The daemon's answer could not be understood.
    #[error("IPFS {path}: unexpected response: {message}")]
    Decode {
        /// The RPC path.
        path: String,
        /// What was wrong.
        message: String,
    },
}
