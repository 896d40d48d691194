//! [`AddError`]: why an import was refused. Every variant is a client error (bad parameters or
//! bad paths in the upload); none means the node is unwell, so callers answer 400, never retry.

/// Why the options or the uploaded entries could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// A chunker other than fixed-size (`rabin…`, `buzhash`, or anything unknown).
    #[error("chunker {chunker} not supported, use size-N")]
    ChunkerNotSupported {
        /// The chunker string as given.
        chunker: String,
    },
    /// A `size-N` chunker whose N is not a number, is 0, or exceeds Kubo's chunk limit.
    #[error("invalid chunker {chunker}: {reason}")]
    InvalidChunker {
        /// The chunker string as given.
        chunker: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A hash function other than sha2-256.
    #[error("hash function {hash} not supported, only sha2-256")]
    HashNotSupported {
        /// The hash name as given.
        hash: String,
    },
    /// `layout=trickle`.
    #[error("trickle layout not supported yet")]
    TrickleNotSupported,
    /// A layout other than `balanced`, `trickle` or empty (cluster's own message).
    #[error("layout parameter is invalid")]
    InvalidLayout {
        /// The layout as given.
        layout: String,
    },
    /// A CID version other than 0 or 1.
    #[error("unsupported CID version {version}")]
    CidVersionNotSupported {
        /// The version as given.
        version: i64,
    },
    /// A boolean or integer query parameter that does not parse (cluster's own message).
    #[error("parameter {name} invalid")]
    InvalidParameter {
        /// The query parameter name.
        name: String,
        /// The value as given.
        value: String,
    },
    /// Options whose fields are out of range when set directly (not via `from_params`).
    #[error("invalid import options: {reason}")]
    InvalidOptions {
        /// What is out of range.
        reason: String,
    },
    /// An entry path that is empty, climbs out with `..`, or is too deep.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file where a directory is needed, or a directory where a file is being written.
    #[error("path {path:?} conflicts with an entry already added")]
    PathConflict {
        /// The path as given.
        path: String,
    },
    /// Two names in one HAMT-sharded directory whose 64-bit murmur3 hashes are equal: the
    /// HAMT runs out of hash bits to tell them apart. Kubo refuses the same upload ("sharded
    /// directory too deep"); real names practically never collide, crafted ones can.
    #[error("directory {path:?} cannot be sharded: names {:?} and {:?} have the same HAMT hash", names[0], names[1])]
    ShardedDirectoryTooDeep {
        /// The directory's path ("" for the wrapper).
        path: String,
        /// Two of the colliding names.
        names: [String; 2],
    },
    /// No file or directory was added (or all were hidden).
    #[error("nothing to import")]
    NothingToImport,
}
