//! Errors of pinset stores.

/// A store failed; the operation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The underlying database failed (corruption, a bug).
    #[error("state store error: {0}")]
    Storage(String),
    /// The disk could not be read or written (it is full, say): the store opens its file again
    /// at the next operation, which succeeds once the disk works.
    #[error("state store cannot use its disk: {0}")]
    Io(String),
    /// The data folder is in use by another running member.
    #[error("state store {path} is locked by another process (is another member running with this data folder?)")]
    Locked {
        /// The database file.
        path: String,
    },
    /// A stored pin could not be decoded.
    #[error("corrupt pin in state store: {0}")]
    Corrupt(String),
}
