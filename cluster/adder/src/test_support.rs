//! Test helpers: Kubo's deterministic test data generator, one-call imports, a CAR writer and a
//! reader for the nodes this crate writes, basic and HAMT-sharded directories included.

use std::collections::HashMap;

use cid::Cid;
use sha2::{Digest, Sha256};

use crate::hamt::hamt_hash;
use crate::protobuf::{decode_node, decode_unixfs, put_varint};
use crate::{Block, FileWriter, ImportOptions, WrittenFile};

/// Kubo's `testutils.DeterministicRandomReader` (test/cli/testutils/random_deterministic.go):
/// the ChaCha20 (RFC 8439) keystream under key `sha256(seed)`, a zero nonce and counter 0.
pub(crate) struct DeterministicBytes {
    key: [u32; 8],
    counter: u32,
    block: [u8; 64],
    used: usize,
}

impl DeterministicBytes {
    pub(crate) fn new(seed: &str) -> DeterministicBytes {
        let digest = Sha256::digest(seed.as_bytes());
        let mut key = [0u32; 8];
        for (word, bytes) in key.iter_mut().zip(digest.chunks_exact(4)) {
            *word = u32::from_le_bytes(bytes.try_into().unwrap());
        }
        DeterministicBytes {
            key,
            counter: 0,
            block: [0; 64],
            used: 64,
        }
    }

    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            if self.used == 64 {
                self.next_block();
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
    }

    fn next_block(&mut self) {
        const CONSTANTS: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];
        let mut initial = [0u32; 16];
        initial[..4].copy_from_slice(&CONSTANTS);
        initial[4..12].copy_from_slice(&self.key);
        initial[12] = self.counter; // Words 13..16 are the zero nonce.
        let mut state = initial;
        for _ in 0..10 {
            quarter_round(&mut state, 0, 4, 8, 12);
            quarter_round(&mut state, 1, 5, 9, 13);
            quarter_round(&mut state, 2, 6, 10, 14);
            quarter_round(&mut state, 3, 7, 11, 15);
            quarter_round(&mut state, 0, 5, 10, 15);
            quarter_round(&mut state, 1, 6, 11, 12);
            quarter_round(&mut state, 2, 7, 8, 13);
            quarter_round(&mut state, 3, 4, 9, 14);
        }
        for (index, word) in state.iter().enumerate() {
            let word = word.wrapping_add(initial[index]);
            self.block[index * 4..index * 4 + 4].copy_from_slice(&word.to_le_bytes());
        }
        self.counter += 1;
        self.used = 0;
    }
}

fn quarter_round(state: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    state[a] = state[a].wrapping_add(state[b]);
    state[d] = (state[d] ^ state[a]).rotate_left(16);
    state[c] = state[c].wrapping_add(state[d]);
    state[b] = (state[b] ^ state[c]).rotate_left(12);
    state[a] = state[a].wrapping_add(state[b]);
    state[d] = (state[d] ^ state[a]).rotate_left(8);
    state[c] = state[c].wrapping_add(state[d]);
    state[b] = (state[b] ^ state[c]).rotate_left(7);
}

/// `count` deterministic bytes from `seed`.
pub(crate) fn deterministic_bytes(count: usize, seed: &str) -> Vec<u8> {
    let mut out = vec![0; count];
    DeterministicBytes::new(seed).fill(&mut out);
    out
}

/// Kubo's `createDeterministicFiles` (test/cli/add_test.go) names: `count` names drawn from
/// `AlphabetEasy` by one deterministic stream, the last one `last_len` long, the others
/// `name_len`. js-ipfs-unixfs `deterministicFilenames` is the same generator.
pub(crate) fn deterministic_names(count: usize, name_len: usize, last_len: usize, seed: &str) -> Vec<String> {
    const ALPHABET_EASY: &[u8] = b"abcdefghijklmnopqrstuvwxyz01234567890-_";
    let mut source = DeterministicBytes::new(seed);
    (0..count)
        .map(|index| {
            let mut raw = vec![0u8; if index + 1 == count { last_len } else { name_len }];
            source.fill(&mut raw);
            raw.iter()
                .map(|byte| ALPHABET_EASY[*byte as usize % ALPHABET_EASY.len()] as char)
                .collect()
        })
        .collect()
}

/// Imports `data` as one file in writes of `write_size` bytes; returns every block and the root.
pub(crate) fn import_bytes(options: &ImportOptions, data: &[u8], write_size: usize) -> (Vec<Block>, WrittenFile) {
    let mut writer = FileWriter::new(options).unwrap();
    let mut blocks = Vec::new();
    for piece in data.chunks(write_size.max(1)) {
        blocks.extend(writer.write(piece));
    }
    let written = writer.finish();
    blocks.extend(written.blocks.iter().cloned());
    (blocks, written)
}

/// A CARv1 stream holding `blocks` under `roots`, encoded as go-car writes it.
pub(crate) fn car_v1(roots: &[Cid], blocks: &[Block]) -> Vec<u8> {
    let mut header = vec![0xa2, 0x65];
    header.extend_from_slice(b"roots");
    assert!(roots.len() < 24);
    header.push(0x80 | roots.len() as u8);
    for root in roots {
        let bytes = root.to_bytes();
        header.extend_from_slice(&[0xd8, 42, 0x58, bytes.len() as u8 + 1, 0x00]);
        header.extend_from_slice(&bytes);
    }
    header.push(0x67);
    header.extend_from_slice(b"version");
    header.push(0x01);
    let mut out = Vec::new();
    put_varint(&mut out, header.len() as u64);
    out.extend_from_slice(&header);
    for block in blocks {
        let cid = block.cid.to_bytes();
        put_varint(&mut out, (cid.len() + block.data.len()) as u64);
        out.extend_from_slice(&cid);
        out.extend_from_slice(&block.data);
    }
    out
}

/// The CARv2 form of a CARv1 stream: pragma, header, `padding` zero bytes, payload, fake index.
pub(crate) fn car_v2(v1: &[u8], padding: usize) -> Vec<u8> {
    let mut out = vec![0x0a, 0xa1, 0x67];
    out.extend_from_slice(b"version");
    out.push(0x02);
    let data_offset = 51 + padding as u64;
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&data_offset.to_le_bytes());
    out.extend_from_slice(&(v1.len() as u64).to_le_bytes());
    out.extend_from_slice(&(data_offset + v1.len() as u64).to_le_bytes());
    out.extend(std::iter::repeat_n(0u8, padding));
    out.extend_from_slice(v1);
    out.extend_from_slice(b"an index the decoder must skip");
    out
}

/// A dag-pb node as written by this crate: link (cid, name, tsize) list and UnixFS fields.
#[derive(Debug)]
pub(crate) struct NodeView {
    pub links: Vec<(Cid, String, u64)>,
    pub kind: u64,
    pub data: Option<Vec<u8>>,
    pub filesize: Option<u64>,
    pub blocksizes: Vec<u64>,
    pub hash_type: Option<u64>,
    pub fanout: Option<u64>,
}

pub(crate) fn view_node(block: &Block) -> NodeView {
    let node = decode_node(&block.data).unwrap();
    let unixfs = decode_unixfs(node.data.unwrap()).unwrap();
    let links = node
        .links
        .iter()
        .map(|(hash, name, tsize)| {
            (
                Cid::try_from(*hash).unwrap(),
                String::from_utf8(name.to_vec()).unwrap(),
                *tsize,
            )
        })
        .collect();
    NodeView {
        links,
        kind: unixfs.kind.unwrap(),
        data: unixfs.data.map(<[u8]>::to_vec),
        filesize: unixfs.filesize,
        blocksizes: unixfs.blocksizes,
        hash_type: unixfs.hash_type,
        fanout: unixfs.fanout,
    }
}

/// Blocks by CID.
pub(crate) fn block_index(blocks: &[Block]) -> HashMap<Cid, &Block> {
    blocks.iter().map(|block| (block.cid, block)).collect()
}

/// A HAMT-sharded directory read back.
pub(crate) struct ShardedListing {
    /// The entries (name, cid, tsize), in shard order.
    pub entries: Vec<(String, Cid, u64)>,
    /// Every shard node, the root included.
    pub shards: Vec<Cid>,
}

/// Reads the HAMT-sharded directory at `root` back the way a reader (boxo `NewHamtFromDag`)
/// does, checking every node on the way: UnixFS type, hash and fanout, the bitfield against the
/// link names, each entry's placement against its name's hash, each child shard's Tsize, and
/// that a child shard holds two entries or more.
pub(crate) fn read_sharded_directory(blocks: &HashMap<Cid, &Block>, root: &Cid) -> ShardedListing {
    let mut listing = ShardedListing {
        entries: Vec::new(),
        shards: Vec::new(),
    };
    read_shard(blocks, root, &[], &mut listing);
    listing
}

/// Reads the shard at `cid`, reached through the slots `path`; returns its cumulative size.
fn read_shard(blocks: &HashMap<Cid, &Block>, cid: &Cid, path: &[u8], listing: &mut ShardedListing) -> u64 {
    listing.shards.push(*cid);
    let block = blocks[cid];
    let node = view_node(block);
    assert_eq!((node.kind, node.hash_type, node.fanout), (5, Some(0x22), Some(256)));
    assert!((node.filesize, node.blocksizes.len()) == (None, 0));
    let bitfield = node.data.expect("a shard has a bitfield");
    assert!(
        !bitfield.is_empty() && bitfield[0] != 0,
        "leading zero bytes are trimmed"
    );
    // go-bitfield `FromBytes`: the bytes are the low end of a 32-byte big-endian field.
    let mut padded = [0u8; 32];
    padded[32 - bitfield.len()..].copy_from_slice(&bitfield);
    let set: Vec<u8> = (0..=255u8)
        .filter(|slot| padded[31 - *slot as usize / 8] & (1 << (slot % 8)) != 0)
        .collect();
    let prefixes: Vec<u8> = node
        .links
        .iter()
        .map(|(_, name, _)| u8::from_str_radix(&name[..2], 16).unwrap())
        .collect();
    assert_eq!(set, prefixes, "one bit per link, links in slot order");
    let entries_before = listing.entries.len();
    let mut size = block.data.len() as u64;
    for (child, name, tsize) in &node.links {
        assert_eq!(&name[..2], name[..2].to_uppercase(), "upper-case hex prefix");
        let mut child_path = path.to_vec();
        child_path.push(u8::from_str_radix(&name[..2], 16).unwrap());
        if name.len() == 2 {
            assert_eq!(read_shard(blocks, child, &child_path, listing), *tsize, "shard Tsize");
        } else {
            let hash = hamt_hash(&name[2..]).to_be_bytes();
            assert_eq!(&hash[..child_path.len()], child_path, "{name} is placed by its hash");
            listing.entries.push((name[2..].to_string(), *child, *tsize));
        }
        size += tsize;
    }
    if !path.is_empty() {
        assert!(
            listing.entries.len() - entries_before >= 2,
            "a child shard exists only for a collision"
        );
    }
    size
}
