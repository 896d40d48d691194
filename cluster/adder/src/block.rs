//! [`Block`]: one content-addressed block, the unit both the importer and the CAR reader emit,
//! plus the codec and multihash constants and CID constructors they share.

use cid::{Cid, Version};
use multihash::Multihash;
use sha2::{Digest, Sha256};

/// Multicodec of raw blocks (raw leaves).
pub const CODEC_RAW: u64 = 0x55;
/// Multicodec of dag-pb blocks (UnixFS nodes).
pub const CODEC_DAG_PB: u64 = 0x70;
/// Multihash code of sha2-256, the only hash this crate computes.
pub const MULTIHASH_SHA2_256: u64 = 0x12;
/// Multihash code of the identity "hash" (the digest is the data itself).
pub const MULTIHASH_IDENTITY: u64 = 0x00;

/// One block: its CID and the exact bytes the CID hashes.
#[derive(Clone, PartialEq, Eq)]
pub struct Block {
    /// The block's content identifier.
    pub cid: Cid,
    /// The serialized block (what `block/put` stores).
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Blocks are up to megabytes: print the CID and length, not the bytes.
        f.debug_struct("Block")
            .field("cid", &self.cid.to_string())
            .field("len", &self.data.len())
            .finish()
    }
}

impl Block {
    /// A raw-codec block (CIDv1 `raw`, sha2-256): what a raw leaf is.
    ///
    /// Raw blocks are CIDv1 even when the DAG is CIDv0: boxo's `NewRawNodeWPrefix` switches the
    /// codec to raw, which a v0 prefix cannot express, so Kubo's `--raw-leaves` with CIDv0 gives a
    /// `Qm…` root over `bafk…` leaves.
    pub(crate) fn raw(data: Vec<u8>) -> Block {
        let cid = Cid::new_v1(CODEC_RAW, sha2_256_multihash(&data));
        Block { cid, data }
    }

    /// A dag-pb block under the given CID version.
    pub(crate) fn dag_pb(data: Vec<u8>, version: Version) -> Block {
        let hash = sha2_256_multihash(&data);
        let cid = match version {
            Version::V0 => Cid::new_v0(hash).expect("a sha2-256 multihash is a valid CIDv0"),
            Version::V1 => Cid::new_v1(CODEC_DAG_PB, hash),
        };
        Block { cid, data }
    }
}

/// The sha2-256 multihash of `data`.
pub(crate) fn sha2_256_multihash(data: &[u8]) -> Multihash<64> {
    let digest = Sha256::digest(data);
    Multihash::wrap(MULTIHASH_SHA2_256, &digest).expect("a 32-byte digest fits in 64 bytes")
}
