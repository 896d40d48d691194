//! Test helpers: Kubo's deterministic test data generator, one-call imports, a CAR writer and a
//! reader for the nodes this crate writes.

use cid::Cid;
use sha2::{Digest, Sha256};

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
    pub filesize: Option<u64>,
    pub blocksizes: Vec<u64>,
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
        filesize: unixfs.filesize,
        blocksizes: unixfs.blocksizes,
    }
}
