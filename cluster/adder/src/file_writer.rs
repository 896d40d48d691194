//! [`FileWriter`]: streams one file into a balanced UnixFS DAG, exactly as boxo's
//! `importer/balanced` builds it, while holding at most one chunk and one partial node per level.
//!
//! The balanced layout puts every leaf at the same depth, fills nodes left to right with up to
//! `file_links_max` children, and uses the smallest depth that fits. Leaves of a partial last
//! subtree still sit at full depth, so a lone trailing leaf gets a chain of one-link parents:
//!
//! ```text
//! 175 chunks, 174 links max:        root
//!                                  /    \
//!                      node(174 leaves)  node(1 leaf)
//! ```
//!
//! Streaming: a node is final as soon as it has `file_links_max` children (a full node's bytes do
//! not depend on what follows), so full nodes are emitted at once and only partial ones wait for
//! [`FileWriter::finish`]. `levels[i]` holds the links of the partial node whose children are at
//! depth `i` (leaves at 0).

use cid::{Cid, Version};

use crate::protobuf::{encode_node, encode_unixfs, PbLink, UnixfsType};
use crate::{AddError, Block, ImportOptions};

/// One child of a file node: enough to write the parent's link and `blocksizes` entry.
#[derive(Debug, Clone)]
struct FileLink {
    cid: Cid,
    /// Cumulative serialized size of the child DAG (the dag-pb link `Tsize`).
    tsize: u64,
    /// File bytes under the child (the UnixFS `blocksizes` entry).
    file_size: u64,
}

/// A file imported to the end: its root and the blocks [`FileWriter::finish`] still had to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// The root CID (the leaf itself for a single-chunk file).
    pub cid: Cid,
    /// Cumulative serialized DAG size (Kubo's `Size`).
    pub size: u64,
    /// File length in bytes.
    pub bytes: u64,
    /// The blocks emitted by `finish`: the last leaf and the partial nodes, children first.
    pub blocks: Vec<Block>,
}

/// Builds one file's DAG from bytes as they arrive.
///
/// To ensure correctness:
/// - every block returned by [`FileWriter::write`] and in [`WrittenFile::blocks`] must be stored;
///   together they are the whole DAG, children always returned before their parents;
/// - the chunk boundaries depend only on the byte stream, never on how it was split into writes.
#[derive(Debug)]
pub struct FileWriter {
    chunk_size: usize,
    file_links_max: usize,
    raw_leaves: bool,
    cid_version: Version,
    /// Bytes of the chunk being filled (always shorter than `chunk_size` between calls).
    pending: Vec<u8>,
    /// Partial nodes, one per level (see the module doc).
    levels: Vec<Vec<FileLink>>,
    leaf_count: u64,
    bytes: u64,
}

impl FileWriter {
    /// A writer for one file under `options` (validated here).
    pub fn new(options: &ImportOptions) -> Result<FileWriter, AddError> {
        options.validate()?;
        Ok(FileWriter {
            chunk_size: options.chunk_size,
            file_links_max: options.file_links_max,
            raw_leaves: options.raw_leaves,
            cid_version: options.cid_version,
            pending: Vec::new(),
            levels: Vec::new(),
            leaf_count: 0,
            bytes: 0,
        })
    }

    /// File bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes + self.pending.len() as u64
    }

    /// Takes the next bytes of the file; returns the blocks this completed (leaves and full
    /// nodes), children first. Keeps at most one partial chunk.
    pub fn write(&mut self, mut data: &[u8]) -> Vec<Block> {
        let mut blocks = Vec::new();
        while !data.is_empty() {
            if self.pending.is_empty() && data.len() >= self.chunk_size {
                // Whole chunks straight from the input: no copy into `pending`.
                let (chunk, rest) = data.split_at(self.chunk_size);
                self.add_leaf(chunk.to_vec(), &mut blocks);
                data = rest;
                continue;
            }
            let take = (self.chunk_size - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == self.chunk_size {
                let chunk = std::mem::take(&mut self.pending);
                self.add_leaf(chunk, &mut blocks);
            }
        }
        assert!(
            self.pending.len() < self.chunk_size,
            "a full chunk is never left pending"
        );
        blocks
    }

    /// Ends the file: emits the last leaf and the partial nodes, and returns the root.
    pub fn finish(mut self) -> WrittenFile {
        let mut blocks = Vec::new();
        // The empty file is one empty leaf (boxo `Layout`: `NewLeafNode(nil, TFile)`).
        if !self.pending.is_empty() || self.leaf_count == 0 {
            let chunk = std::mem::take(&mut self.pending);
            self.add_leaf(chunk, &mut blocks);
        }
        let root = if self.leaf_count == 1 {
            // A single-chunk file is its leaf (`layoutData` returns the first leaf as root).
            assert_eq!(self.levels[0].len(), 1);
            self.levels[0].pop().expect("one leaf")
        } else {
            self.collapse_levels(&mut blocks)
        };
        assert_eq!(root.file_size, self.bytes, "the root covers every byte");
        WrittenFile {
            cid: root.cid,
            size: root.tsize,
            bytes: self.bytes,
            blocks,
        }
    }

    /// Builds the partial nodes bottom-up into the root of a tree of minimal depth.
    fn collapse_levels(&mut self, blocks: &mut Vec<Block>) -> FileLink {
        let links_max = self.file_links_max as u64;
        let mut depth = 1;
        let mut capacity = links_max;
        while capacity < self.leaf_count {
            depth += 1;
            capacity = capacity.saturating_mul(links_max);
        }
        self.levels.resize(depth + 1, Vec::new());
        for level in 0..depth - 1 {
            if !self.levels[level].is_empty() {
                let children = std::mem::take(&mut self.levels[level]);
                let link = self.add_internal_node(&children, blocks);
                self.levels[level + 1].push(link);
                assert!(self.levels[level + 1].len() <= self.file_links_max);
            }
        }
        if self.levels[depth - 1].is_empty() {
            // Exactly links_max^depth leaves: the root filled up and was emitted by `write`.
            assert_eq!(capacity, self.leaf_count);
            assert_eq!(self.levels[depth].len(), 1);
            return self.levels[depth].pop().expect("the full root");
        }
        assert!(
            self.levels[depth].is_empty(),
            "a tree of depth {depth} has no node above the root"
        );
        assert!(
            self.levels[depth - 1].len() >= 2,
            "a root of a multi-chunk file has two children or more"
        );
        let children = std::mem::take(&mut self.levels[depth - 1]);
        self.add_internal_node(&children, blocks)
    }

    fn add_leaf(&mut self, chunk: Vec<u8>, blocks: &mut Vec<Block>) {
        assert!(chunk.len() <= self.chunk_size);
        let file_size = chunk.len() as u64;
        let block = if self.raw_leaves {
            Block::raw(chunk)
        } else {
            let data = (!chunk.is_empty()).then_some(chunk.as_slice());
            let unixfs = encode_unixfs(UnixfsType::File, data, Some(file_size), &[]);
            Block::dag_pb(encode_node(&[], Some(&unixfs)), self.cid_version)
        };
        let link = FileLink {
            cid: block.cid,
            tsize: block.data.len() as u64,
            file_size,
        };
        blocks.push(block);
        self.leaf_count += 1;
        self.bytes += file_size;
        self.push_link(0, link, blocks);
    }

    /// Adds a child at `level`, emitting every node this fills, cascading upwards.
    fn push_link(&mut self, mut level: usize, mut link: FileLink, blocks: &mut Vec<Block>) {
        loop {
            if self.levels.len() <= level {
                self.levels.resize(level + 1, Vec::new());
            }
            self.levels[level].push(link);
            if self.levels[level].len() < self.file_links_max {
                return;
            }
            let children = std::mem::take(&mut self.levels[level]);
            link = self.add_internal_node(&children, blocks);
            level += 1;
        }
    }

    /// Encodes a non-leaf file node: links with empty names, `filesize` and `blocksizes`.
    fn add_internal_node(&self, children: &[FileLink], blocks: &mut Vec<Block>) -> FileLink {
        assert!(!children.is_empty() && children.len() <= self.file_links_max);
        let blocksizes: Vec<u64> = children.iter().map(|child| child.file_size).collect();
        let file_size: u64 = blocksizes.iter().sum();
        let unixfs = encode_unixfs(UnixfsType::File, None, Some(file_size), &blocksizes);
        let links: Vec<PbLink<'_>> = children
            .iter()
            .map(|child| PbLink {
                cid: &child.cid,
                name: "",
                tsize: child.tsize,
            })
            .collect();
        let block = Block::dag_pb(encode_node(&links, Some(&unixfs)), self.cid_version);
        let tsize = block.data.len() as u64 + children.iter().map(|child| child.tsize).sum::<u64>();
        let link = FileLink {
            cid: block.cid,
            tsize,
            file_size,
        };
        blocks.push(block);
        link
    }
}
