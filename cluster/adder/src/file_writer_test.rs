//! Layout and streaming tests: the streaming [`FileWriter`] against a direct transcription of
//! boxo's recursive balanced builder (`layoutData` + `fillNodeRec`), over many shapes; and the
//! importer's path rules.

use std::iter::Peekable;
use std::slice::Chunks;

use cid::{Cid, Version};

use crate::protobuf::{encode_node, encode_unixfs, PbLink, UnixfsType};
use crate::test_support::{import_bytes, view_node};
use crate::{AddError, Block, ImportOptions, Importer};

/// (cid, tsize, file size) of a model node.
type ModelLink = (Cid, u64, u64);

/// boxo `importer/balanced/builder.go`, recursive and whole-file, as the reference.
struct BalancedModel<'a> {
    chunks: Peekable<Chunks<'a, u8>>,
    options: &'a ImportOptions,
}

impl BalancedModel<'_> {
    fn root(data: &[u8], options: &ImportOptions) -> Cid {
        let mut model = BalancedModel {
            chunks: data.chunks(options.chunk_size).peekable(),
            options,
        };
        if model.chunks.peek().is_none() {
            return model.leaf(&[]).0;
        }
        let first = model.chunks.next().unwrap();
        let mut root = model.leaf(first);
        let mut depth = 1;
        while model.chunks.peek().is_some() {
            root = model.fill(vec![root], depth);
            depth += 1;
        }
        root.0
    }

    fn fill(&mut self, mut children: Vec<ModelLink>, depth: usize) -> ModelLink {
        while children.len() < self.options.file_links_max && self.chunks.peek().is_some() {
            let child = if depth == 1 {
                let chunk = self.chunks.next().unwrap();
                self.leaf(chunk)
            } else {
                self.fill(Vec::new(), depth - 1)
            };
            children.push(child);
        }
        let blocksizes: Vec<u64> = children.iter().map(|child| child.2).collect();
        let unixfs = encode_unixfs(UnixfsType::File, None, Some(blocksizes.iter().sum()), &blocksizes);
        let links: Vec<PbLink<'_>> = children
            .iter()
            .map(|child| PbLink {
                cid: &child.0,
                name: "",
                tsize: child.1,
            })
            .collect();
        let block = Block::dag_pb(encode_node(&links, Some(&unixfs)), self.options.cid_version);
        let tsize = block.data.len() as u64 + children.iter().map(|child| child.1).sum::<u64>();
        (block.cid, tsize, blocksizes.iter().sum())
    }

    fn leaf(&self, chunk: &[u8]) -> ModelLink {
        let block = if self.options.raw_leaves {
            Block::raw(chunk.to_vec())
        } else {
            let data = (!chunk.is_empty()).then_some(chunk);
            let unixfs = encode_unixfs(UnixfsType::File, data, Some(chunk.len() as u64), &[]);
            Block::dag_pb(encode_node(&[], Some(&unixfs)), self.options.cid_version)
        };
        (block.cid, block.data.len() as u64, chunk.len() as u64)
    }
}

#[test]
fn streaming_writer_matches_the_recursive_balanced_builder() {
    let data: Vec<u8> = (0..200u32).map(|index| (index * 7 + 3) as u8).collect();
    for file_links_max in [2, 3, 4, 174] {
        for raw_leaves in [false, true] {
            let options = ImportOptions {
                chunk_size: 1,
                file_links_max,
                raw_leaves,
                ..ImportOptions::default()
            };
            // Every length from 0 to 200 one-byte chunks covers full trees, chains of one-link
            // nodes and exact powers of the fan-out.
            for length in 0..=data.len() {
                let expected = BalancedModel::root(&data[..length], &options);
                let (blocks, written) = import_bytes(&options, &data[..length], 3);
                assert_eq!(
                    written.cid, expected,
                    "links max {file_links_max}, raw {raw_leaves}, {length} chunks"
                );
                assert_eq!(written.bytes, length as u64);
                // Blocks come children first, so the root is last, and the DAG size is the sum.
                assert_eq!(blocks.last().unwrap().cid, written.cid);
                assert_eq!(
                    written.size,
                    blocks.iter().map(|block| block.data.len() as u64).sum::<u64>()
                );
            }
        }
    }
}

#[test]
fn chunking_does_not_depend_on_write_sizes() {
    let data: Vec<u8> = (0..10_000u32).map(|index| (index % 251) as u8).collect();
    let options = ImportOptions {
        chunk_size: 1024,
        file_links_max: 3,
        cid_version: Version::V1,
        ..ImportOptions::default()
    };
    let expected = BalancedModel::root(&data, &options);
    for write_size in [1, 2, 1000, 1023, 1024, 1025, 4096, 10_000] {
        let (blocks, written) = import_bytes(&options, &data, write_size);
        assert_eq!(written.cid, expected, "write size {write_size}");
        // 10 chunks under 3 links per node: depth 3 (27 >= 10), 10 leaves + 4 + 2 + 1 nodes.
        assert_eq!(blocks.len(), 17, "write size {write_size}");
    }
}

#[test]
fn nodes_carry_blocksizes_filesize_and_tsize() {
    let data = vec![7u8; 5000];
    let options = ImportOptions {
        chunk_size: 1024,
        ..ImportOptions::default()
    };
    let (blocks, written) = import_bytes(&options, &data, 5000);
    let root = view_node(blocks.last().unwrap());
    assert_eq!(root.kind, 2);
    assert_eq!(root.filesize, Some(5000));
    assert_eq!(root.blocksizes, vec![1024, 1024, 1024, 1024, 904]);
    for ((cid, name, tsize), leaf) in root.links.iter().zip(&blocks) {
        assert_eq!(*cid, leaf.cid);
        assert!(name.is_empty());
        assert_eq!(*tsize, leaf.data.len() as u64);
    }
    assert_eq!(written.cid.version(), Version::V0);
}

fn add(importer: &mut Importer, path: &str, content: &[u8]) -> Result<(), AddError> {
    let mut file = importer.start_file(path)?.expect("not hidden");
    file.write(content);
    file.finish().map(|_| ())
}

#[test]
fn paths_are_normalized_and_checked() {
    let mut importer = Importer::new(ImportOptions::default()).unwrap();
    add(&mut importer, "/a//./b.txt", b"b").unwrap();
    assert!(matches!(
        add(&mut importer, "a/b.txt/c", b"c"),
        Err(AddError::PathConflict { .. })
    ));
    assert!(matches!(
        importer.add_directory("a/b.txt"),
        Err(AddError::PathConflict { .. })
    ));
    assert!(matches!(importer.start_file("a"), Err(AddError::PathConflict { .. })));
    assert!(matches!(importer.start_file("../x"), Err(AddError::InvalidPath { .. })));
    assert!(matches!(importer.start_file("/./"), Err(AddError::InvalidPath { .. })));
    assert!(matches!(
        importer.start_file(&"d/".repeat(1025)),
        Err(AddError::InvalidPath { .. })
    ));
    let imported = importer.finish().unwrap();
    let names: Vec<&str> = imported.entries.iter().map(|entry| entry.name.as_str()).collect();
    assert_eq!(names, ["a/b.txt", "a"]);
}

#[test]
fn root_is_the_last_top_level_entry_without_wrapping() {
    let mut importer = Importer::new(ImportOptions::default()).unwrap();
    add(&mut importer, "z/one", b"1").unwrap();
    add(&mut importer, "a.txt", b"2").unwrap();
    // An abandoned file leaves no trace.
    let mut abandoned = importer.start_file("gone.txt").unwrap().unwrap();
    abandoned.write(b"partial");
    drop(abandoned);
    let imported = importer.finish().unwrap();
    let a_txt = imported.entries.iter().find(|entry| entry.name == "a.txt").unwrap();
    assert_eq!(imported.root, a_txt.cid);
    assert!(imported.entries.iter().all(|entry| entry.name != "gone.txt"));
    // The directory `z` is still built and output, after the files.
    assert_eq!(imported.entries.last().unwrap().name, "z");
    assert_eq!(imported.blocks.len(), 1);
}

#[test]
fn nothing_to_import_and_hidden_only() {
    assert_eq!(
        Importer::new(ImportOptions::default()).unwrap().finish(),
        Err(AddError::NothingToImport)
    );
    let mut importer = Importer::new(ImportOptions {
        wrap_with_directory: true,
        ..ImportOptions::default()
    })
    .unwrap();
    assert!(importer.start_file("dir/.secret").unwrap().is_none());
    importer.add_directory("dir/.cache").unwrap();
    assert_eq!(importer.finish(), Err(AddError::NothingToImport));
    assert!(Importer::new(ImportOptions {
        chunk_size: 0,
        ..ImportOptions::default()
    })
    .is_err());
}
