//! Raft snapshots on disk, never whole in memory: the file a snapshot's body is built into,
//! sent from in chunks and received into chunk by chunk ([`SnapshotFile`], openraft's
//! `SnapshotData`), and the folder that keeps the current one ([`SnapshotFolder`]).
//!
//! A snapshot kept here is only its meta, `snapshot-deferred.json`: the body is written when
//! openraft first reads it (to send it to a member that is behind), from the writer the state
//! machine gives (a consistent view of the pinset), into a file unlinked as soon as it is
//! created, so it leaves the disk when the send ends. The pinset store already holds every pin;
//! a second copy on disk (as earlier versions kept) doubled the bytes per pin and rewrote the
//! whole pinset every `snapshot_threshold` entries.
//!
//! Earlier versions kept `snapshot.json` (the meta) and its body `snapshot-<id>.body`, or one
//! file, `snapshot.ndjson` (the meta on its first line, the body after it, read at an offset):
//! both are still read until a newer snapshot replaces them.
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

/// The current snapshot's meta when its body is written on demand.
const DEFERRED_META_FILE: &str = "snapshot-deferred.json";
/// The current snapshot's meta when its body is kept beside it (earlier versions).
const META_FILE: &str = "snapshot.json";
/// The single-file snapshot of earlier versions.
const LEGACY_FILE: &str = "snapshot.ndjson";
/// A snapshot being built here.
pub(crate) const BUILDING_FILE: &str = "building.tmp";
/// A snapshot being received from the leader.
pub(crate) const RECEIVING_FILE: &str = "receiving.tmp";

/// Writes a deferred snapshot's body into the file it is given.
pub(crate) type BodyWriter = Box<dyn FnOnce(&mut File) -> io::Result<()> + Send + Sync>;

/// A snapshot's body in a file, from byte `base` on (the legacy file's meta line precedes it);
/// or a body still to be written, the first time it is read or sought.
pub struct SnapshotFile {
    file: Option<File>,
    base: u64,
    /// Where the last `start_seek` landed, for `poll_complete`.
    sought: Option<io::Result<u64>>,
    /// A deferred body: the folder its file goes in, and what writes it.
    deferred: Option<(PathBuf, BodyWriter)>,
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("file", &self.file)
            .field("base", &self.base)
            .field("deferred", &self.deferred.as_ref().map(|(dir, _)| dir))
            .finish()
    }
}

impl SnapshotFile {
    fn new(file: File, base: u64) -> io::Result<SnapshotFile> {
        let mut snapshot = SnapshotFile {
            file: Some(file),
            base,
            sought: None,
            deferred: None,
        };
        snapshot.rewind()?;
        Ok(snapshot)
    }

    /// A body that `write` writes, in a file in `dir`, when it is first read or sought.
    pub(crate) fn deferred(dir: &Path, write: BodyWriter) -> SnapshotFile {
        SnapshotFile {
            file: None,
            base: 0,
            sought: None,
            deferred: Some((dir.to_path_buf(), write)),
        }
    }

    /// The body's file, written first if deferred: in a fresh file unlinked at once, so its
    /// bytes leave the disk when this is dropped.
    fn body(&mut self) -> io::Result<&mut File> {
        if let Some((dir, write)) = self.deferred.take() {
            static SENDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let number = SENDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("sending-{number}.tmp"));
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            write(&mut file)?;
            file.seek(SeekFrom::Start(0))?;
            self.file = Some(file);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("a deferred snapshot body failed to be written before"))
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
        let base = self.base;
        self.body()?.seek(SeekFrom::Start(base)).map(|_| ())
    }

    /// The body's lines, from its start, each without its newline (a blank line ends it).
    pub(crate) fn lines(&mut self) -> io::Result<impl Iterator<Item = io::Result<String>> + '_> {
        self.rewind()?;
        Ok(BufReader::new(self.body()?).lines())
    }

    /// Writes what was written durably to disk.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        let file = self.body()?;
        file.flush()?;
        file.sync_all()
    }
}

/// Builds write the body with plain writes.
impl Write for SnapshotFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.body()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.body()?.flush()
    }
}

impl tokio::io::AsyncRead for SnapshotFile {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let read = this.body()?.read(buf.initialize_unfilled())?;
        buf.advance(read);
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for SnapshotFile {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().body().and_then(|file| file.write(buf)))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.get_mut().body().and_then(|file| file.flush()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.get_mut().body().and_then(|file| file.flush()))
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
        this.sought = Some(this.body().and_then(|file| file.seek(position)).and_then(|at| {
            at.checked_sub(base)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the snapshot's start"))
        }));
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        Poll::Ready(match this.sought.take() {
            Some(result) => result,
            None => {
                let base = this.base;
                this.body()
                    .and_then(|file| file.stream_position())
                    .map(|at| at.saturating_sub(base))
            }
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

    /// The folder's path.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh file named `name` in the folder (created if missing).
    pub(crate) fn scratch(&self, name: &str) -> io::Result<SnapshotFile> {
        std::fs::create_dir_all(&self.dir)?;
        SnapshotFile::create(&self.dir.join(name))
    }

    /// Makes `meta` the current snapshot, its body to be written on demand, and removes older
    /// snapshots (and the scratch files of earlier builds and receipts).
    pub(crate) fn keep_deferred(&self, meta: &SnapshotMeta<NodeId, MemberNode>) -> io::Result<()> {
        let _keeping = self.keeping.lock().unwrap_or_else(|e| e.into_inner());
        std::fs::create_dir_all(&self.dir)?;
        let temp = self.dir.join(format!("{DEFERRED_META_FILE}.tmp"));
        let mut file = File::create(&temp)?;
        serde_json::to_writer(&mut file, meta)?;
        file.sync_all()?;
        std::fs::rename(&temp, self.dir.join(DEFERRED_META_FILE))?;
        File::open(&self.dir)?.sync_all()?;
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            let older = (name.starts_with("snapshot-") && name.ends_with(".body"))
                || name == LEGACY_FILE
                || name == META_FILE
                || name == BUILDING_FILE
                || name == RECEIVING_FILE;
            if older {
                let _ = std::fs::remove_file(self.dir.join(&*name));
            }
        }
        Ok(())
    }

    /// The current snapshot's meta and body (`None`: written on demand), if there is one that
    /// reads.
    pub(crate) fn current(&self) -> Option<(SnapshotMeta<NodeId, MemberNode>, Option<SnapshotFile>)> {
        let _keeping = self.keeping.lock().unwrap_or_else(|e| e.into_inner());
        match std::fs::read(self.dir.join(DEFERRED_META_FILE)) {
            Ok(bytes) => {
                return serde_json::from_slice(&bytes)
                    .inspect_err(|e| tracing::warn!("ignoring unreadable raft snapshot in {}: {e}", self.dir.display()))
                    .ok()
                    .map(|meta| (meta, None));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!("ignoring unreadable raft snapshot in {}: {e}", self.dir.display());
                return None;
            }
        }
        self.current_of_earlier_versions()
            .map(|(meta, body)| (meta, Some(body)))
    }

    /// A snapshot kept with its body, as earlier versions did.
    fn current_of_earlier_versions(&self) -> Option<(SnapshotMeta<NodeId, MemberNode>, SnapshotFile)> {
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
        let (meta, file) = folder.current().expect("a current snapshot");
        let mut text = String::new();
        std::io::Read::read_to_string(file.expect("a kept body").file.as_mut().unwrap(), &mut text).unwrap();
        (meta.snapshot_id, text)
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A snapshot of the previous version (meta and body files) is read until a deferred one
    /// replaces it; then only the deferred meta is left, whatever scratch files were there.
    #[test]
    fn a_deferred_snapshot_replaces_kept_bodies_and_scratch_files() {
        let dir = tempfile::tempdir().unwrap();
        let folder = SnapshotFolder::new(dir.path());
        assert!(folder.current().is_none());
        std::fs::write(
            dir.path().join(META_FILE),
            serde_json::to_vec(&meta("../T1 N7")).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join(body_name("../T1 N7")), b"first\n").unwrap();
        assert_eq!(body_of(&folder), ("../T1 N7".to_string(), "first\n".to_string()));
        for scratch in [BUILDING_FILE, RECEIVING_FILE, LEGACY_FILE] {
            std::fs::write(dir.path().join(scratch), b"left over").unwrap();
        }
        folder.keep_deferred(&meta("T2-N7-20")).unwrap();
        let (current, body) = folder.current().unwrap();
        assert_eq!(current.snapshot_id, "T2-N7-20");
        assert!(body.is_none(), "written on demand");
        assert_eq!(names_in(dir.path()), [DEFERRED_META_FILE]);
        folder.keep_deferred(&meta("T3-N7-30")).unwrap();
        assert_eq!(folder.current().unwrap().0.snapshot_id, "T3-N7-30");
    }

    #[test]
    fn the_single_file_snapshot_of_earlier_versions_is_read_after_its_meta_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut legacy = serde_json::to_vec(&meta("old-1")).unwrap();
        legacy.extend_from_slice(b"\n{\"applied\":1}\nAAAA\n");
        std::fs::write(dir.path().join(LEGACY_FILE), legacy).unwrap();
        let folder = SnapshotFolder::new(dir.path());
        let (_, file) = folder.current().unwrap();
        let lines: Vec<String> = file.unwrap().lines().unwrap().map(Result::unwrap).collect();
        assert_eq!(lines, ["{\"applied\":1}", "AAAA"]);
        assert_eq!(
            body_of(&folder),
            ("old-1".to_string(), "{\"applied\":1}\nAAAA\n".to_string())
        );
        // A newer snapshot replaces it.
        folder.keep_deferred(&meta("new-2")).unwrap();
        assert!(!dir.path().join(LEGACY_FILE).exists());
        assert_eq!(folder.current().unwrap().0.snapshot_id, "new-2");
    }

    /// A deferred body is written once, when first read, into a file that is already unlinked:
    /// nothing is left on disk when it is dropped.
    #[test]
    fn a_deferred_body_is_written_when_first_read_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = writes.clone();
        let mut body = SnapshotFile::deferred(
            dir.path(),
            Box::new(move |file| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                file.write_all(b"meta\npin 1\npin 2\n")
            }),
        );
        assert_eq!(
            writes.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "not before it is read"
        );
        let lines: Vec<String> = body.lines().unwrap().map(Result::unwrap).collect();
        assert_eq!(lines, ["meta", "pin 1", "pin 2"]);
        let again: Vec<String> = body.lines().unwrap().map(Result::unwrap).collect();
        assert_eq!(again, lines);
        assert_eq!(writes.load(std::sync::atomic::Ordering::SeqCst), 1, "written once");
        assert!(
            names_in(dir.path()).is_empty(),
            "unlinked at once: {:?}",
            names_in(dir.path())
        );
        let failing = SnapshotFile::deferred(dir.path(), Box::new(|_| Err(io::Error::other("disk full"))));
        let mut failing = failing;
        assert!(failing.lines().is_err());
        assert!(failing.lines().is_err(), "a failed body stays failed");
    }

    #[test]
    fn an_unreadable_meta_means_no_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META_FILE), b"{not json").unwrap();
        assert!(SnapshotFolder::new(dir.path()).current().is_none());
        std::fs::write(dir.path().join(DEFERRED_META_FILE), b"{not json").unwrap();
        assert!(SnapshotFolder::new(dir.path()).current().is_none());
        std::fs::remove_file(dir.path().join(DEFERRED_META_FILE)).unwrap();
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
