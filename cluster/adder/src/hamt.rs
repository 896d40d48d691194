//! [`ShardedDirectory`]: a directory too large for one block, encoded as a HAMT of UnixFS
//! `HAMTShard` nodes exactly as Kubo builds it (boxo `ipld/unixfs/hamt`, the format of the UnixFS
//! spec's "HAMTDirectory").
//!
//! ```text
//! slot(name, depth) = byte `depth` of murmur3_x64_64(name) big-endian   (256 slots per node)
//! node   = links in slot order; Data = UnixFS { Type: HAMTShard, Data: bitfield,
//!                                               hashType: 0x22, fanout: 256 }
//! link   = "%02X" slot + name   -> the entry (file or directory root), Tsize = its DAG size
//!        | "%02X" slot          -> a child shard,                      Tsize = its DAG size
//! ```
//!
//! A slot holds an entry when exactly one name reaches it, and a child shard one level down
//! when several do. boxo inserts one name at a time and splits a slot on its second name;
//! since the importer only adds, that incremental tree is this one, whatever the insertion
//! order. The bitfield is go-bitfield's: 32 bytes, big-endian (slot `i` is bit `i % 8` of byte
//! `31 - i / 8`), with leading zero bytes dropped.
//!
//! Owns: building the shard nodes of one directory from its entries. Does not own: deciding
//! when to shard (`importer`, Kubo's size estimate) or the entries' own DAGs.

use cid::{Cid, Version};

use crate::murmur3::murmur3_x64_128;
use crate::protobuf::{encode_hamt_shard_unixfs, encode_node, PbLink};
use crate::{AddError, Block};

/// Slots per shard node (boxo `DefaultShardWidth`).
pub(crate) const HAMT_FANOUT: usize = 256;
/// Multicodec of the HAMT hash, murmur3-x64-64 (boxo `HashMurmur3`).
pub(crate) const HAMT_HASH_MURMUR3: u64 = 0x22;
/// Levels a 64-bit hash can address at 8 bits per level. boxo fails with "sharded directory too
/// deep" past the last one, which only two names with equal 64-bit hashes reach.
const DEPTH_MAX: usize = 8;

/// One directory entry as a link: the name it is listed under, and its DAG root.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardEntry<'a> {
    /// The entry name, without the slot prefix.
    pub name: &'a str,
    /// The entry's root CID.
    pub cid: &'a Cid,
    /// Cumulative size of the entry's DAG (the link's Tsize).
    pub size: u64,
}

/// The root shard of a sharded directory: what its parent links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShardedDirectory {
    /// The CID of the root shard node.
    pub cid: Cid,
    /// Cumulative size: every shard block plus the entries' DAG sizes (Kubo's `Size`).
    pub size: u64,
}

/// An entry with the hash that places it.
#[derive(Debug, Clone, Copy)]
struct Hashed<'a> {
    hash: u64,
    entry: ShardEntry<'a>,
}

impl ShardedDirectory {
    /// Builds the shard nodes of the directory at `path` holding `entries` (distinct names),
    /// appends their blocks, children before parents, and returns the root.
    ///
    /// Fails only when two names have the same 64-bit hash, as Kubo does.
    pub(crate) fn build(
        path: &str,
        entries: &[ShardEntry<'_>],
        cid_version: Version,
        blocks: &mut Vec<Block>,
    ) -> Result<ShardedDirectory, AddError> {
        let hashed = entries
            .iter()
            .map(|entry| Hashed {
                hash: hamt_hash(entry.name),
                entry: *entry,
            })
            .collect();
        ShardedDirectory::build_hashed(path, hashed, cid_version, blocks)
    }

    /// [`ShardedDirectory::build`] over entries already hashed (tests inject collisions here).
    fn build_hashed(
        path: &str,
        mut hashed: Vec<Hashed<'_>>,
        cid_version: Version,
        blocks: &mut Vec<Block>,
    ) -> Result<ShardedDirectory, AddError> {
        assert!(!hashed.is_empty(), "only a non-empty directory is sharded");
        // Sorted by hash, the names of one slot are contiguous at every depth and slots come in
        // ascending order. The sort is stable, so equal hashes keep the caller's (name) order
        // and the error below names the same pair every time.
        hashed.sort_by_key(|hashed| hashed.hash);
        build_shard(path, &hashed, 0, cid_version, blocks)
    }
}

/// The hash that places `name`: spaolacci/murmur3 `New64` (seed 0) as boxo uses it, whose
/// big-endian bytes are consumed 8 bits per level, most significant first.
pub(crate) fn hamt_hash(name: &str) -> u64 {
    murmur3_x64_128(name.as_bytes(), 0).0
}

/// The slot of `hash` in a node at `depth` (0 for the root).
fn slot(hash: u64, depth: usize) -> usize {
    hash.to_be_bytes()[depth] as usize
}

/// Encodes the shard node at `depth` over `hashed` (sorted, all sharing the first `depth` hash
/// bytes) and, first, its child shards.
fn build_shard(
    path: &str,
    hashed: &[Hashed<'_>],
    depth: usize,
    cid_version: Version,
    blocks: &mut Vec<Block>,
) -> Result<ShardedDirectory, AddError> {
    let mut bitfield = [0u8; HAMT_FANOUT / 8];
    // (name, cid, tsize) per link, in slot order.
    let mut links: Vec<(String, Cid, u64)> = Vec::new();
    let mut rest = hashed;
    while let Some(first) = rest.first() {
        let index = slot(first.hash, depth);
        let count = rest.iter().take_while(|other| slot(other.hash, depth) == index).count();
        let (group, after) = rest.split_at(count);
        rest = after;
        bitfield[bitfield.len() - 1 - index / 8] |= 1 << (index % 8);
        if let [only] = group {
            links.push((
                format!("{index:02X}{}", only.entry.name),
                *only.entry.cid,
                only.entry.size,
            ));
            continue;
        }
        if depth + 1 == DEPTH_MAX {
            return Err(AddError::ShardedDirectoryTooDeep {
                path: path.to_string(),
                names: [group[0].entry.name.to_string(), group[1].entry.name.to_string()],
            });
        }
        let child = build_shard(path, group, depth + 1, cid_version, blocks)?;
        links.push((format!("{index:02X}"), child.cid, child.size));
    }
    let leading_zeros = bitfield.iter().take_while(|&&byte| byte == 0).count();
    let unixfs = encode_hamt_shard_unixfs(&bitfield[leading_zeros..], HAMT_HASH_MURMUR3, HAMT_FANOUT as u64);
    let pb_links: Vec<PbLink<'_>> = links
        .iter()
        .map(|(name, cid, tsize)| PbLink {
            cid,
            name,
            tsize: *tsize,
        })
        .collect();
    let block = Block::dag_pb(encode_node(&pb_links, Some(&unixfs)), cid_version);
    let size = block.data.len() as u64 + links.iter().map(|(_, _, tsize)| tsize).sum::<u64>();
    let cid = block.cid;
    blocks.push(block);
    Ok(ShardedDirectory { cid, size })
}

#[cfg(test)]
pub(crate) mod test_hooks {
    //! Entry points the tests use to reach what real names cannot (equal 64-bit hashes).
    use super::*;

    /// Builds a sharded directory whose entries are placed by the given hashes.
    pub(crate) fn build_with_hashes(
        entries: &[(u64, ShardEntry<'_>)],
        blocks: &mut Vec<Block>,
    ) -> Result<ShardedDirectory, AddError> {
        let hashed = entries
            .iter()
            .map(|(hash, entry)| Hashed {
                hash: *hash,
                entry: *entry,
            })
            .collect();
        ShardedDirectory::build_hashed("dir", hashed, Version::V0, blocks)
    }
}
