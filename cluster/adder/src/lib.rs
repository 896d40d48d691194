//! Content import for IPFS Cluster's `POST /add`: bytes in, content-addressed blocks out.
//!
//! Owns: turning uploaded files and directories into UnixFS v1 DAGs whose CIDs are exactly the
//! ones Kubo's `ipfs add` computes (balanced layout, fixed-size chunker, dag-pb and raw leaves,
//! CIDv0 and CIDv1, sha2-256, basic and HAMT-sharded directories), the add output ([`Entry`]:
//! name, cid, size, bytes), and reading CAR uploads (`format=car`) with every block verified
//! against its CID.
//!
//! Does not own: HTTP and multipart parsing, choosing destinations, `block/put` to daemons,
//! pinning, or the `/add` parameters that are not about encoding (`format`, `local`, `shard`,
//! pin options). Everything here is pure and synchronous: no IO, no threads, no clock, no
//! randomness, so it runs unchanged under the simulator.
//!
//! Memory stays bounded by design: a [`FileWriter`] holds one partial chunk and one partial node
//! per tree level and returns blocks as soon as they are final; the [`Importer`] keeps one link
//! per file (a sharded directory's nodes are built from those links at the end); the
//! [`CarDecoder`] buffers at most one section.
//!
//! Layout:
//! - [`ImportOptions`]: `chunker`, `raw-leaves`, `cid-version`, `hash`, `layout`,
//!   `wrap-with-directory`, `hidden`, with Kubo's defaults and implications (and the directory
//!   sharding threshold, settable only in code).
//! - [`FileWriter`]: one file into a balanced DAG, streaming.
//! - [`Importer`], [`FileImport`]: a whole upload (files, directories, wrapping) and its output;
//!   directories over Kubo's 256 KiB estimate become HAMT shards (fanout 256, murmur3) as in Kubo.
//! - [`CarDecoder`], [`CarReader`]: CARv1 (and the CARv1 payload of CARv2), verified.
//! - [`Block`]: what all of them emit. [`AddError`], [`CarError`]: why they refuse.
//!
//! Not supported, refused with an error instead of producing CIDs Kubo would not: rabin and
//! buzhash chunkers, the trickle layout, and hash functions other than sha2-256. Symlinks, file
//! mode and mtime are not imported. Kubo's other directory size estimations (IPIP-499 `block`,
//! `disabled`) and HAMT fanouts are not offered: the defaults (`links`, 256) are built.
#![deny(missing_docs)]

mod add_error;
mod block;
mod car;
mod file_writer;
mod hamt;
mod import_options;
mod importer;
mod murmur3;
mod protobuf;

#[cfg(test)]
mod file_writer_test;
#[cfg(test)]
mod hamt_test;
#[cfg(test)]
mod importer_test;
#[cfg(test)]
mod test_support;

pub use add_error::AddError;
pub use block::{Block, CODEC_DAG_PB, CODEC_RAW, MULTIHASH_IDENTITY, MULTIHASH_SHA2_256};
pub use car::{
    unixfs_file_size, CarDecoder, CarError, CarReader, CarSummary, CAR_HEADER_SIZE_MAX, CAR_SECTION_SIZE_MAX,
};
pub use file_writer::{FileWriter, WrittenFile};
pub use import_options::{
    ImportOptions, CHUNK_SIZE_DEFAULT, CHUNK_SIZE_MAX, DIRECTORY_SIZE_MAX, FILE_LINKS_MAX_DEFAULT,
};
pub use importer::{Entry, FileAdded, FileImport, Imported, Importer, PATH_DEPTH_MAX};
