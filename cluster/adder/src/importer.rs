//! [`Importer`]: turns the entries of one `/add` upload (files streamed one after the other, and
//! directories) into UnixFS DAGs, with the output Kubo and cluster print, one [`Entry`] per file
//! and per directory.
//!
//! ```text
//! start_file("dir/a.txt") -> FileImport --write(bytes)*--> blocks   (leaves, full nodes)
//!                                       --finish()------> Entry + blocks
//! add_directory("dir/empty")
//! finish() -> Imported { directory blocks, all entries, root }
//! ```
//!
//! The importer keeps one link per added file (the directory tree) and never file contents.
//! Directory nodes are built at [`Importer::finish`], children before parents, each directory's
//! links sorted bytewise by name (go-merkledag sorts links when it encodes a node). A directory
//! whose links Kubo estimates larger than [`ImportOptions::directory_size_max`] is HAMT-sharded
//! instead (`hamt`); its entry is then the root shard, and its `size` counts every shard block.
//!
//! Output order follows cluster's adder (`adder/ipfsadd/add.go`): file entries as each file
//! ends, then directories depth-first, children before parents, siblings by name, and with
//! `wrap_with_directory` the wrapper, named "", last.
//!
//! Root: the wrapper when wrapping; otherwise the top-level entry touched last (cluster adds
//! each top-level entry on its own and keeps the root of the last one).

use std::collections::BTreeMap;

use cid::Cid;

use crate::hamt::{ShardEntry, ShardedDirectory};
use crate::protobuf::{encode_node, encode_unixfs, PbLink, UnixfsType};
use crate::{AddError, Block, FileWriter, ImportOptions};

/// Deepest path accepted; directory nodes are built recursively, one stack frame per level.
pub const PATH_DEPTH_MAX: usize = 1024;

/// One line of add output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's path as uploaded (`dir/a.txt`), or "" for the wrapping directory.
    pub name: String,
    /// The root CID of the entry's DAG.
    pub cid: Cid,
    /// Cumulative serialized DAG size (Kubo's and cluster's `Size`).
    pub size: u64,
    /// File length; for a directory, the total length of the files beneath it.
    pub bytes: u64,
}

/// What [`Importer::finish`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The directory blocks (file blocks were already returned while streaming), children first.
    pub blocks: Vec<Block>,
    /// Every entry in output order: files as they ended, then directories, root last.
    pub entries: Vec<Entry>,
    /// The CID to pin.
    pub root: Cid,
}

/// A file's DAG root, as kept in the tree.
#[derive(Debug, Clone, Copy)]
struct FileRoot {
    cid: Cid,
    size: u64,
    bytes: u64,
}

#[derive(Debug)]
enum TreeNode {
    File(FileRoot),
    Directory(Directory),
}

/// A directory being assembled; `BTreeMap` of `String` orders names bytewise, as Go's
/// `strings.Compare` does.
#[derive(Debug, Default)]
struct Directory {
    children: BTreeMap<String, TreeNode>,
}

/// Imports the entries of one upload. See the module documentation.
#[derive(Debug)]
pub struct Importer {
    options: ImportOptions,
    /// The top-level entries; the wrapping directory when `wrap_with_directory` is set.
    top: Directory,
    /// File entries, in the order the files ended.
    entries: Vec<Entry>,
    /// Name of the top-level entry touched last: the root when not wrapping.
    top_name_last: Option<String>,
}

/// One file being streamed into an [`Importer`]; the importer is borrowed until it ends.
///
/// Dropping it without [`FileImport::finish`] abandons the file: it is left out of the
/// directories (blocks already returned stay valid but unreferenced).
#[derive(Debug)]
pub struct FileImport<'a> {
    importer: &'a mut Importer,
    components: Vec<String>,
    writer: FileWriter,
}

/// A file that ended: its output entry and the last blocks of its DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAdded {
    /// The file's output line.
    pub entry: Entry,
    /// Blocks emitted at the end (last leaf, partial nodes, root), children first.
    pub blocks: Vec<Block>,
}

impl Importer {
    /// An importer for one upload; fails when `options` are out of range.
    pub fn new(options: ImportOptions) -> Result<Importer, AddError> {
        options.validate()?;
        Ok(Importer {
            options,
            top: Directory::default(),
            entries: Vec::new(),
            top_name_last: None,
        })
    }

    /// The options in use.
    pub fn options(&self) -> &ImportOptions {
        &self.options
    }

    /// Starts a file at `path` (`/`-separated, relative to the upload). Returns `None` when the
    /// file is hidden and `hidden` is off: its bytes must then be read and dropped.
    ///
    /// Errors when the path is invalid or crosses a file already added.
    pub fn start_file(&mut self, path: &str) -> Result<Option<FileImport<'_>>, AddError> {
        let components = split_path(path)?;
        if !self.options.hidden && is_hidden(&components) {
            return Ok(None);
        }
        self.check_file_path(path, &components)?;
        let writer = FileWriter::new(&self.options)?;
        Ok(Some(FileImport {
            importer: self,
            components,
            writer,
        }))
    }

    /// Adds a directory at `path` and any missing parents; adding one that exists does nothing.
    /// A hidden directory is skipped unless `hidden` is on. Files need no explicit parents.
    pub fn add_directory(&mut self, path: &str) -> Result<(), AddError> {
        let components = split_path(path)?;
        if !self.options.hidden && is_hidden(&components) {
            return Ok(());
        }
        self.directory_mut(path, &components)?;
        self.top_name_last = Some(components[0].clone());
        Ok(())
    }

    /// Builds the directories and returns their blocks, every entry and the root.
    pub fn finish(self) -> Result<Imported, AddError> {
        if self.top.children.is_empty() {
            return Err(AddError::NothingToImport);
        }
        let mut blocks = Vec::new();
        let mut entries = self.entries;
        let root = if self.options.wrap_with_directory {
            build_directory(&self.options, String::new(), &self.top, &mut blocks, &mut entries)?.cid
        } else {
            let mut last = None;
            for (name, node) in &self.top.children {
                let root = match node {
                    TreeNode::File(file) => *file,
                    TreeNode::Directory(directory) => {
                        build_directory(&self.options, name.clone(), directory, &mut blocks, &mut entries)?
                    }
                };
                if self.top_name_last.as_deref() == Some(name.as_str()) {
                    last = Some(root.cid);
                }
            }
            last.expect("the last top-level entry is in the tree")
        };
        assert!(!entries.is_empty(), "every added entry has an output line");
        if self.options.wrap_with_directory {
            assert_eq!(
                entries.last().map(|entry| entry.cid),
                Some(root),
                "the wrapper is output last"
            );
        }
        Ok(Imported { blocks, entries, root })
    }

    /// Fails when a parent of `components` is a file or the path itself is a directory.
    fn check_file_path(&self, path: &str, components: &[String]) -> Result<(), AddError> {
        let mut directory = &self.top;
        let (name, parents) = components.split_last().expect("split_path never returns an empty path");
        for component in parents {
            match directory.children.get(component) {
                None => return Ok(()),
                Some(TreeNode::Directory(child)) => directory = child,
                Some(TreeNode::File(_)) => return Err(AddError::PathConflict { path: path.to_string() }),
            }
        }
        match directory.children.get(name) {
            Some(TreeNode::Directory(_)) => Err(AddError::PathConflict { path: path.to_string() }),
            _ => Ok(()),
        }
    }

    /// The directory at `components`, created with its parents when missing.
    fn directory_mut(&mut self, path: &str, components: &[String]) -> Result<&mut Directory, AddError> {
        let mut directory = &mut self.top;
        for component in components {
            let child = directory
                .children
                .entry(component.clone())
                .or_insert_with(|| TreeNode::Directory(Directory::default()));
            directory = match child {
                TreeNode::Directory(child) => child,
                TreeNode::File(_) => return Err(AddError::PathConflict { path: path.to_string() }),
            };
        }
        Ok(directory)
    }

    fn insert_file(&mut self, path: &str, components: &[String], file: FileRoot) -> Result<(), AddError> {
        let (name, parents) = components.split_last().expect("split_path never returns an empty path");
        let parent = self.directory_mut(path, parents)?;
        if let Some(TreeNode::Directory(_)) = parent.children.get(name) {
            return Err(AddError::PathConflict { path: path.to_string() });
        }
        // A second file at the same path replaces the first, as MFS does.
        parent.children.insert(name.clone(), TreeNode::File(file));
        self.top_name_last = Some(components[0].clone());
        Ok(())
    }
}

impl FileImport<'_> {
    /// Takes the next bytes of the file; returns the blocks this completed, children first.
    pub fn write(&mut self, data: &[u8]) -> Vec<Block> {
        self.writer.write(data)
    }

    /// File bytes received so far (for progress output).
    pub fn bytes(&self) -> u64 {
        self.writer.bytes()
    }

    /// Ends the file: returns its entry and last blocks, and records it in its directory.
    pub fn finish(self) -> Result<FileAdded, AddError> {
        let written = self.writer.finish();
        let path = self.components.join("/");
        let root = FileRoot {
            cid: written.cid,
            size: written.size,
            bytes: written.bytes,
        };
        self.importer.insert_file(&path, &self.components, root)?;
        let entry = Entry {
            name: path,
            cid: written.cid,
            size: written.size,
            bytes: written.bytes,
        };
        self.importer.entries.push(entry.clone());
        Ok(FileAdded {
            entry,
            blocks: written.blocks,
        })
    }
}

/// Splits a path into components, dropping empty and `.` ones; refuses `..` and empty paths.
fn split_path(path: &str) -> Result<Vec<String>, AddError> {
    let invalid = |reason: &str| AddError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let mut components = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(invalid("'..' is not allowed")),
            _ => components.push(component.to_string()),
        }
    }
    if components.is_empty() {
        return Err(invalid("empty path"));
    }
    if components.len() > PATH_DEPTH_MAX {
        return Err(invalid(&format!("deeper than {PATH_DEPTH_MAX} components")));
    }
    Ok(components)
}

/// Hidden: a name below the top level starts with `.`. The top-level entries are what the user
/// named explicitly, which Kubo and cluster's client add even when hidden (`ipfs add .hello.txt`).
fn is_hidden(components: &[String]) -> bool {
    components.iter().skip(1).any(|component| component.starts_with('.'))
}

/// Encodes `directory` and, first, every directory below it; appends their blocks and entries.
fn build_directory(
    options: &ImportOptions,
    path: String,
    directory: &Directory,
    blocks: &mut Vec<Block>,
    entries: &mut Vec<Entry>,
) -> Result<FileRoot, AddError> {
    let mut children = Vec::with_capacity(directory.children.len());
    for (name, node) in &directory.children {
        let child = match node {
            TreeNode::File(file) => *file,
            TreeNode::Directory(subdirectory) => {
                let child_path = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}/{name}")
                };
                build_directory(options, child_path, subdirectory, blocks, entries)?
            }
        };
        children.push((name.as_str(), child));
    }
    let (cid, size) = if needs_sharding(options, &children) {
        let shard_entries: Vec<ShardEntry<'_>> = children
            .iter()
            .map(|(name, child)| ShardEntry {
                name,
                cid: &child.cid,
                size: child.size,
            })
            .collect();
        let root = ShardedDirectory::build(&path, &shard_entries, options.cid_version, blocks)?;
        (root.cid, root.size)
    } else {
        encode_basic_directory(options, &children, blocks)
    };
    let bytes = children.iter().map(|(_, child)| child.bytes).sum();
    let root = FileRoot { cid, size, bytes };
    entries.push(Entry {
        name: path,
        cid,
        size,
        bytes,
    });
    Ok(root)
}

/// Kubo's switch to a HAMT (boxo `needsToSwitchByLinkSize`): the sum of name and CID byte
/// lengths, strictly greater than the threshold. Kubo checks it as each entry is added; an
/// import only adds, so the estimate only grows and the final one decides.
fn needs_sharding(options: &ImportOptions, children: &[(&str, FileRoot)]) -> bool {
    let estimated_size: u64 = children
        .iter()
        .map(|(name, child)| (name.len() + child.cid.encoded_len()) as u64)
        .sum();
    estimated_size > options.directory_size_max
}

/// Encodes a basic (single-block) directory over `children`, sorted by name; appends the block
/// and returns its CID and cumulative size.
fn encode_basic_directory(
    options: &ImportOptions,
    children: &[(&str, FileRoot)],
    blocks: &mut Vec<Block>,
) -> (Cid, u64) {
    let links: Vec<PbLink<'_>> = children
        .iter()
        .map(|(name, child)| PbLink {
            cid: &child.cid,
            name,
            tsize: child.size,
        })
        .collect();
    let unixfs = encode_unixfs(UnixfsType::Directory, None, None, &[]);
    let block = Block::dag_pb(encode_node(&links, Some(&unixfs)), options.cid_version);
    let size = block.data.len() as u64 + children.iter().map(|(_, child)| child.size).sum::<u64>();
    let cid = block.cid;
    blocks.push(block);
    (cid, size)
}
