//! [`CarError`]: why a CAR upload was refused. All but `Io` describe the uploaded bytes (answer
//! 400); `Io` is whatever the reader reported.

use cid::Cid;

/// Why a CAR stream could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CarError {
    /// The underlying reader failed.
    #[error("reading CAR: {0}")]
    Io(#[from] std::io::Error),
    /// A length prefix is not a valid unsigned varint.
    #[error("invalid varint in CAR")]
    InvalidVarint,
    /// The header declares more bytes than the limit.
    #[error("CAR header of {size} bytes exceeds the {max}-byte limit")]
    HeaderTooLarge {
        /// Declared size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The header is not the DAG-CBOR map `{"roots": [CID...], "version": N}`.
    #[error("invalid CAR header: {reason}")]
    InvalidHeader {
        /// What is wrong with it.
        reason: String,
    },
    /// A version other than 1 (or 2 as the outer pragma).
    #[error("unsupported CAR version {version}")]
    UnsupportedVersion {
        /// The version found.
        version: u64,
    },
    /// The CARv2 header is inconsistent (data offset or size out of range).
    #[error("invalid CARv2 header: {reason}")]
    InvalidV2Header {
        /// What is wrong with it.
        reason: String,
    },
    /// A section declares more bytes than the limit.
    #[error("CAR section of {size} bytes exceeds the {max}-byte limit")]
    SectionTooLarge {
        /// Declared size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A section of length 0 (it cannot even hold a CID).
    #[error("empty CAR section")]
    EmptySection,
    /// A section does not start with a valid CID.
    #[error("invalid CID in CAR section: {reason}")]
    InvalidCid {
        /// What is wrong with it.
        reason: String,
    },
    /// A block whose CID uses a hash function this crate cannot verify.
    #[error("block {cid}: hash function 0x{code:x} not supported, only sha2-256 and identity")]
    UnsupportedHash {
        /// The block's CID.
        cid: Cid,
        /// Its multihash code.
        code: u64,
    },
    /// A block whose data does not hash to its CID.
    #[error("block {cid}: data does not match its hash")]
    HashMismatch {
        /// The block's CID.
        cid: Cid,
    },
    /// The stream ended inside the header or a section.
    #[error("CAR stream ends in the middle of the {context}")]
    Truncated {
        /// Where it ended: "header" or "section".
        context: &'static str,
    },
    /// The decoder was used again after it returned an error.
    #[error("CAR decoder already failed")]
    AlreadyFailed,
}
