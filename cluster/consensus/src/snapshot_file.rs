//! Raft snapshots on disk, never whole in memory: the file a snapshot's body is built into,
//! sent from in chunks and received into chunk by chunk ([`SnapshotFile`], openraft's
//! `SnapshotData`), and the folder that keeps the current one ([`SnapshotFolder`]).
//!
//! The folder holds `snapshot.json` (openraft's meta of the current snapshot) and its body,
//! `snapshot-<id>.body`; the meta is renamed into place last, so it never names a body that is
//! not whole. Earlier versions kept one file, `snapshot.ndjson` (the meta on its first line,
//! the body after it): it is still read, at an offset, until a newer snapshot replaces it.
//!
//! The file's I/O is plain blocking I/O inside `poll`: a local disk, chunks of at most
//! openraft's `snapshot_max_chunk_size`, and nothing that escapes the simulator.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use openraft::SnapshotMeta;

use crate::{MemberNode, NodeId};

/// The current snapshot's meta.
const META_FILE: &str = "snapshot.json";
/// The single-file snapshot of earlier versions.
const LEGACY_FILE: &str = "snapshot.ndjson";
/// A snapshot being built here.
pub(crate) const BUILDING_FILE: &str = "building.tmp";
/// A snapshot being received from the leader.
pub(crate) const RECEIVING_FILE: &str = "receiving.tmp";

/// A snapshot's body in a file, from byte `base` on (the legacy file's meta line precedes it).
#[derive(Debug)]
pub struct SnapshotFile {
    file: File,
    base: u64,
    /// Where the last `start_seek` landed, for `poll_complete`.
    sought: Option<io::Result<u64>>,
}

impl SnapshotFile {
    fn new(file: File, base: u64) -> io::Result<SnapshotFile> {
        let mut snapshot = SnapshotFile {
            file,
            base,
            sought: None,
        };
        snapshot.rewind()?;
        Ok(snapshot)
    }

    /// Creates (or empties) the file at `path` to write a body into.
    pub(crate) fn create(path: &Path) -> io::Result<SnapshotFile> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        SnapshotFile::new(file, 0)
    }

    /// Back to the body's first byte.
    pub(crate) fn rewind(&mut self) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(self.base)).map(|_| ())
    }

    /// The body's lines, from its start, each without its newline (a blank line ends it).
    pub(crate) fn lines(&mut self) -> io::Result<impl Iterator<Item = io::Result<String>> + '_> {
        self.rewind()?;
        Ok(BufReader::new(&mut self.file).lines())
    }

    /// Writes what was written durably to disk.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.sync_all()
    }
}

/// Builds write the body with plain writes.
impl Write for SnapshotFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl tokio::io::AsyncRead for SnapshotFile {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let read = this.file.read(buf.initialize_unfilled())?;
        buf.advance(read);
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for SnapshotFile {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().file.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.get_mut().file.flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.get_mut().file.flush())
    }
}

impl tokio::io::AsyncSeek for SnapshotFile {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let position = match position {
            SeekFrom::Start(offset) => SeekFrom::Start(this.base + offset),
            other => other,
        };
        let base = this.base;
        this.sought = Some(this.file.seek(position).and_then(|at| {
            at.checked_sub(base)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the snapshot's start"))
        }));
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        Poll::Ready(match this.sought.take() {
            Some(result) => result,
            None => this.file.stream_position().map(|at| at.saturating_sub(this.base)),
        })
    }
}

/// The folder of a member's snapshots. Cheap to clone; clones share the lock that keeps a
/// snapshot's meta and the clean-up of older bodies together.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotFolder {
    dir: PathBuf,
    keeping: Arc<Mutex<()>>,
}

impl SnapshotFolder {
    pub(crate) fn new(dir: &Path) -> SnapshotFolder {
        SnapshotFolder {
            dir: dir.to_path_buf(),
            keeping: Arc::default(),
        }
    }

    /// A fresh file named `name` in the folder (created if missing).
    pub(crate) fn scratch(&self, name: &str) -> io::Result<SnapshotFile> {
        std::fs::create_dir_all(&self.dir)?;
        SnapshotFile::create(&self.dir.join(name))
    }

    /// Makes the body written to the scratch file `scratch` (synced by the caller) the current
    /// snapshot, described by `meta`, and removes older ones.
    pub(crate) fn keep(&self, scratch: &str, meta: &SnapshotMeta<NodeId, MemberNode>) -> io::Result<()> {
        let _keeping = self.keeping.lock().unwrap_or_else(|e| e.into_inner());
        let body = body_name(&meta.snapshot_id);
        std::fs::rename(self.dir.join(scratch), self.dir.join(&body))?;
        let temp = self.dir.join(format!("{META_FILE}.tmp"));
        let mut file = File::create(&temp)?;
        serde_json::to_writer(&mut file, meta)?;
        file.sync_all()?;
        std::fs::rename(&temp, self.dir.join(META_FILE))?;
        File::open(&self.dir)?.sync_all()?;
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            let older_body = name.starts_with("snapshot-") && name.ends_with(".body") && *name != body;
            if older_body || name == LEGACY_FILE {
                let _ = std::fs::remove_file(self.dir.join(&*name));
            }
        }
        Ok(())
    }

    /// The current snapshot's meta and body, if there is one that reads.
    pub(crate) fn current(&self) -> Option<(SnapshotMeta<NodeId, MemberNode>, SnapshotFile)> {
        let _keeping = self.keeping.lock().unwrap_or_else(|e| e.into_inner());
        match std::fs::read(self.dir.join(META_FILE)) {
            Ok(bytes) => {
                let read = serde_json::from_slice::<SnapshotMeta<NodeId, MemberNode>>(&bytes)
                    .map_err(io::Error::other)
                    .and_then(|meta| {
                        let body = File::open(self.dir.join(body_name(&meta.snapshot_id)))?;
                        Ok((meta, SnapshotFile::new(body, 0)?))
                    });
                return read
                    .inspect_err(|e| tracing::warn!("ignoring unreadable raft snapshot in {}: {e}", self.dir.display()))
                    .ok();
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!("ignoring unreadable raft snapshot in {}: {e}", self.dir.display());
                return None;
            }
        }
        let file = File::open(self.dir.join(LEGACY_FILE)).ok()?;
        let mut first_line = Vec::new();
        let read = BufReader::new(&file)
            .read_until(b'\n', &mut first_line)
            .map_err(|e| e.to_string())
            .and_then(|_| serde_json::from_slice(first_line.trim_ascii_end()).map_err(|e| e.to_string()))
            .and_then(|meta| {
                SnapshotFile::new(file, first_line.len() as u64)
                    .map(|body| (meta, body))
                    .map_err(|e| e.to_string())
            });
        read.inspect_err(|e| tracing::warn!("ignoring unreadable raft snapshot in {}: {e}", self.dir.display()))
            .ok()
    }
}

/// The body file of snapshot `id`: ids come from other members, so only safe characters stay.
fn body_name(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    format!("snapshot-{safe}.body")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

    fn meta(id: &str) -> SnapshotMeta<NodeId, MemberNode> {
        SnapshotMeta {
            last_log_id: None,
            last_membership: Default::default(),
            snapshot_id: id.into(),
        }
    }

    fn body_of(folder: &SnapshotFolder) -> (String, String) {
        let (meta, mut file) = folder.current().expect("a current snapshot");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file.file, &mut text).unwrap();
        (meta.snapshot_id, text)
    }

    #[test]
    fn a_kept_snapshot_is_current_and_replaces_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let folder = SnapshotFolder::new(dir.path());
        assert!(folder.current().is_none());
        for (id, body) in [("T1-N7-10-5", "first\n"), ("../T2/N7 20", "second\n")] {
            let mut file = folder.scratch(BUILDING_FILE).unwrap();
            file.file.write_all(body.as_bytes()).unwrap();
            file.sync().unwrap();
            folder.keep(BUILDING_FILE, &meta(id)).unwrap();
            assert_eq!(body_of(&folder), (id.to_string(), body.to_string()));
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["snapshot-___T2_N7_20.body", "snapshot.json"]);
    }

    #[test]
    fn the_single_file_snapshot_of_earlier_versions_is_read_after_its_meta_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut legacy = serde_json::to_vec(&meta("old-1")).unwrap();
        legacy.extend_from_slice(b"\n{\"applied\":1}\nAAAA\n");
        std::fs::write(dir.path().join(LEGACY_FILE), legacy).unwrap();
        let folder = SnapshotFolder::new(dir.path());
        let (_, mut file) = folder.current().unwrap();
        let lines: Vec<String> = file.lines().unwrap().map(Result::unwrap).collect();
        assert_eq!(lines, ["{\"applied\":1}", "AAAA"]);
        assert_eq!(
            body_of(&folder),
            ("old-1".to_string(), "{\"applied\":1}\nAAAA\n".to_string())
        );
        // A newer snapshot replaces it.
        folder.scratch(BUILDING_FILE).unwrap().sync().unwrap();
        folder.keep(BUILDING_FILE, &meta("new-2")).unwrap();
        assert!(!dir.path().join(LEGACY_FILE).exists());
        assert_eq!(body_of(&folder).0, "new-2");
    }

    #[test]
    fn an_unreadable_meta_means_no_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META_FILE), b"{not json").unwrap();
        assert!(SnapshotFolder::new(dir.path()).current().is_none());
        std::fs::write(dir.path().join(META_FILE), serde_json::to_vec(&meta("gone")).unwrap()).unwrap();
        assert!(
            SnapshotFolder::new(dir.path()).current().is_none(),
            "its body is missing"
        );
    }

    #[cfg(not(madsim))]
    #[tokio::test]
    async fn reads_writes_and_seeks_as_openraft_does_relative_to_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"META\nbody bytes").unwrap();
        let mut file = SnapshotFile::new(File::options().read(true).write(true).open(&path).unwrap(), 5).unwrap();
        assert_eq!(file.seek(SeekFrom::Start(5)).await.unwrap(), 5);
        let mut rest = String::new();
        file.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "bytes");
        assert_eq!(file.seek(SeekFrom::End(0)).await.unwrap(), 10);
        assert!(file.seek(SeekFrom::Current(-11)).await.is_err());
        // A receiver writes each chunk at its offset.
        let mut received = SnapshotFile::create(&dir.path().join("r")).unwrap();
        received.seek(SeekFrom::Start(0)).await.unwrap();
        AsyncWriteExt::write_all(&mut received, b"abc").await.unwrap();
        received.seek(SeekFrom::Start(3)).await.unwrap();
        AsyncWriteExt::write_all(&mut received, b"def\n").await.unwrap();
        AsyncWriteExt::flush(&mut received).await.unwrap();
        let lines: Vec<String> = received.lines().unwrap().map(Result::unwrap).collect();
        assert_eq!(lines, ["abcdef"]);
    }
}
