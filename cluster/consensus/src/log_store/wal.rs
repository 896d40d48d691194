//! The Raft log on disk as append-only segment files: each change is a record appended at the
//! end of the newest segment, and a durable change is one write and one fdatasync, where a
//! B-tree commit wrote a dozen scattered pages. Only the index of the entries (where each one
//! is) lives in memory.
//!
//! A segment (`log-<number>.wal`) starts with a checkpoint of the vote, commit hint and last
//! purged id, so the oldest segments can be removed once every entry in them is purged. A
//! record is `[length u32][crc32c u32][kind u8][payload]` (little endian; the length and the
//! checksum cover kind and payload). Opening replays every segment in order. A record that is
//! cut short or fails its checksum ends the newest segment (a write a crash interrupted; no
//! caller was told it was durable) and is cut off; in an older segment it is corruption.
//!
//! The active segment is lengthened ahead of its records, [`PREALLOCATE`] bytes at a time: an
//! fdatasync after a write that changes a file's length commits the length too (ext4 on this
//! project's 2-core machine: 112-140 us, against 82-88 us for a write inside the file), and
//! every log write is on a write's path. Zeros after the last record are that room, not a torn
//! write.

use std::collections::BTreeMap;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cluster_state::{Disk, DiskFile};
use openraft::{LogId, Vote};
use serde::{Deserialize, Serialize};

use crate::NodeId;

const KIND_ENTRY: u8 = 1;
const KIND_VOTE: u8 = 2;
const KIND_COMMITTED: u8 = 3;
const KIND_PURGED: u8 = 4;
const KIND_TRUNCATED: u8 = 5;
const KIND_CHECKPOINT: u8 = 6;

/// Length and checksum before each record's kind and payload.
const HEADER: usize = 8;
/// A record longer than this is garbage, not an entry (entries are batches of pins: a few MB).
const RECORD_MAX: usize = 1 << 30;
/// The entry record's payload before the entry's bytes: index, term and leader's node id.
const ENTRY_PREFIX: usize = 24;
/// More than a checkpoint record can take (its JSON is a few hundred bytes).
const CHECKPOINT_MAX: usize = 4096;
/// How far past its records the active segment is lengthened when a write would pass its end.
const PREALLOCATE: u64 = if cfg!(madsim) { 16 << 10 } else { 1 << 20 };

/// The meta values a segment starts with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Checkpoint {
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
}

/// Where one entry's bytes are.
#[derive(Debug, Clone, Copy)]
struct Location {
    log_id: LogId<NodeId>,
    segment: u64,
    offset: u64,
    len: u32,
}

/// The log of one member (see the module doc). Every method is synchronous; a failed write
/// changes nothing in memory and can be retried as it was.
#[derive(Debug)]
pub(crate) struct Wal {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    segment_bytes: u64,
    segments: BTreeMap<u64, Box<dyn DiskFile>>,
    /// The newest segment, where records are appended.
    active: u64,
    /// Where the next record goes in the active segment: everything before it is durable.
    end: u64,
    /// The active segment's length: past `end`, zeros (or what a failed write left).
    allocated: u64,
    /// The end of the active segment's checkpoint: a segment holding no more never gives way.
    head: u64,
    /// Records written to no file yet: the newest commit hint, waiting for the next durable
    /// write.
    pending: Vec<u8>,
    entries: BTreeMap<u64, Location>,
    meta: Checkpoint,
    _lock: Box<dyn std::fmt::Debug + Send + Sync>,
}

/// The segment files of `dir`, by number.
fn segment_name(number: u64) -> String {
    format!("log-{number:020}.wal")
}

fn segment_number(name: &str) -> Option<u64> {
    name.strip_prefix("log-")?.strip_suffix(".wal")?.parse().ok()
}

fn corrupt(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Appends one framed record to `out`.
fn put_record(out: &mut Vec<u8>, kind: u8, payload: &[&[u8]]) {
    let len = 1 + payload.iter().map(|p| p.len()).sum::<usize>();
    let start = out.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    for part in payload {
        out.extend_from_slice(part);
    }
    let crc = crc32c(&out[start + HEADER..]);
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("raft meta values serialize")
}

fn unjson<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> io::Result<T> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(format!("undecodable {what} record in the raft log: {e}")))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The next record of `bytes` from `offset`: its kind, payload and length, or `None` if what
/// is there is not a whole record with a good checksum.
fn next_record(bytes: &[u8], offset: usize) -> Option<(u8, &[u8], usize)> {
    let header = bytes.get(offset..offset + HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len == 0 || len > RECORD_MAX {
        return None;
    }
    let body = bytes.get(offset + HEADER..offset + HEADER + len)?;
    (crc32c(body) == crc).then(|| (body[0], &body[1..], HEADER + len))
}

impl Wal {
    /// Opens the log in `dir` (taking its lock), replaying every segment; creates it if absent.
    /// `Ok(None)` if another opener holds the lock.
    pub(crate) fn open(disk: Arc<dyn Disk>, dir: &Path, segment_bytes: u64) -> io::Result<Option<Wal>> {
        let Some(lock) = disk.try_lock(&dir.join("log.lock"))? else {
            return Ok(None);
        };
        let mut numbers: Vec<u64> = disk.file_names(dir)?.iter().filter_map(|n| segment_number(n)).collect();
        numbers.sort_unstable();
        let mut wal = Wal {
            disk,
            dir: dir.to_path_buf(),
            segment_bytes,
            segments: BTreeMap::new(),
            active: 0,
            end: 0,
            allocated: 0,
            head: 0,
            pending: Vec::new(),
            entries: BTreeMap::new(),
            meta: Checkpoint::default(),
            _lock: lock,
        };
        for (position, number) in numbers.iter().enumerate() {
            let newest = position + 1 == numbers.len();
            wal.replay_segment(*number, newest)?;
        }
        if wal.segments.is_empty() {
            wal.start_segment(numbers.last().map_or(1, |n| n + 1))?;
        }
        Ok(Some(wal))
    }

    /// Replays one segment into the index and meta. The newest segment's torn tail is cut
    /// off; a newest segment without a whole checkpoint (a crash while starting it) is removed.
    fn replay_segment(&mut self, number: u64, newest: bool) -> io::Result<()> {
        let path = self.dir.join(segment_name(number));
        let file = self.disk.open_file(&path)?;
        let mut bytes =
            vec![0; usize::try_from(file.len()?).map_err(|_| corrupt(format!("{} is too large", path.display())))?];
        file.read_at(0, &mut bytes)?;
        let mut offset = 0;
        let mut head = 0;
        while offset < bytes.len() {
            let Some((kind, payload, len)) = next_record(&bytes, offset) else {
                break;
            };
            if offset == 0 && kind != KIND_CHECKPOINT {
                return Err(corrupt(format!("{} does not start with a checkpoint", path.display())));
            }
            self.replay_record(number, offset as u64, kind, payload)
                .map_err(|e| corrupt(format!("{} at byte {offset}: {e}", path.display())))?;
            offset += len;
            if head == 0 {
                head = offset as u64;
            }
        }
        let preallocated = offset > 0 && bytes[offset..].iter().all(|byte| *byte == 0);
        if offset < bytes.len() && !preallocated {
            // A crash while starting a segment leaves at most a cut checkpoint; more bytes
            // behind a bad first record held records written after it: corruption.
            if !newest || (offset == 0 && bytes.len() > CHECKPOINT_MAX) {
                return Err(corrupt(format!(
                    "{} is corrupt at byte {offset} of {}: the raft log cannot be read",
                    path.display(),
                    bytes.len()
                )));
            }
            tracing::warn!(
                "raft log: cutting {} bytes of an unfinished write off the end of {}",
                bytes.len() - offset,
                path.display()
            );
            file.set_len(offset as u64)?;
            file.sync_data()?;
            bytes.truncate(offset);
        }
        if offset == 0 {
            // Only the newest segment can lack its checkpoint (see above).
            drop(file);
            self.disk.remove_file(&path)?;
            self.disk.sync_dir(&self.dir)?;
            return Ok(());
        }
        self.segments.insert(number, file);
        self.active = number;
        self.end = offset as u64;
        self.allocated = bytes.len() as u64;
        self.head = head;
        Ok(())
    }

    fn replay_record(&mut self, segment: u64, offset: u64, kind: u8, payload: &[u8]) -> io::Result<()> {
        match kind {
            KIND_ENTRY => {
                if payload.len() < ENTRY_PREFIX {
                    return Err(corrupt("a short entry record".into()));
                }
                let log_id = LogId::new(
                    openraft::CommittedLeaderId::new(u64_at(payload, 8), u64_at(payload, 16)),
                    u64_at(payload, 0),
                );
                self.insert_entry(Location {
                    log_id,
                    segment,
                    offset: offset + (HEADER + 1 + ENTRY_PREFIX) as u64,
                    len: (payload.len() - ENTRY_PREFIX) as u32,
                });
            }
            KIND_VOTE => self.meta.vote = Some(unjson(payload, "vote")?),
            KIND_COMMITTED => self.meta.committed = unjson(payload, "committed")?,
            KIND_PURGED => self.apply_purge(unjson(payload, "purged")?),
            KIND_TRUNCATED => {
                let since = u64_at(
                    payload
                        .get(..8)
                        .ok_or_else(|| corrupt("a short truncation record".into()))?,
                    0,
                );
                self.entries.split_off(&since);
            }
            KIND_CHECKPOINT => {
                let checkpoint: Checkpoint = unjson(payload, "checkpoint")?;
                if let Some(purged) = checkpoint.last_purged {
                    self.apply_purge(purged);
                }
                self.meta = checkpoint;
            }
            other => return Err(corrupt(format!("a record of unknown kind {other}"))),
        }
        Ok(())
    }

    /// An entry replaces the one at its index and every later one (as a conflicting append).
    fn insert_entry(&mut self, location: Location) {
        self.entries.split_off(&location.log_id.index);
        self.entries.insert(location.log_id.index, location);
    }

    fn apply_purge(&mut self, upto: LogId<NodeId>) {
        self.entries = self.entries.split_off(&(upto.index + 1));
        self.meta.last_purged = Some(upto);
    }

    /// Creates segment `number` holding only a checkpoint of the meta, durable, and makes it
    /// the active one. The records still pending are in that checkpoint.
    fn start_segment(&mut self, number: u64) -> io::Result<()> {
        let path = self.dir.join(segment_name(number));
        let file = self.disk.open_file(&path)?;
        let mut record = Vec::new();
        put_record(&mut record, KIND_CHECKPOINT, &[&json(&self.meta)]);
        file.set_len(0)?;
        file.write_at(0, &record)?;
        file.sync_data()?;
        self.disk.sync_dir(&self.dir)?;
        self.segments.insert(number, file);
        self.active = number;
        self.end = record.len() as u64;
        self.allocated = self.end;
        self.head = self.end;
        self.pending.clear();
        Ok(())
    }

    /// Appends `records` to the log, with what is pending before them, durably; returns the
    /// segment and offset they start at. A full segment first gives way to a new one.
    fn write_durable(&mut self, records: &[u8]) -> io::Result<(u64, u64)> {
        if self.end + (self.pending.len() + records.len()) as u64 > self.segment_bytes && self.end > self.head {
            let active = &self.segments[&self.active];
            // Cut what a failed write may have left past the end: replay reads to the end.
            active.set_len(self.end)?;
            active.sync_data()?;
            self.start_segment(self.active + 1)?;
        }
        let file = &self.segments[&self.active];
        let start = self.end + self.pending.len() as u64;
        let needed = start + records.len() as u64;
        if needed > self.allocated {
            file.set_len(needed + PREALLOCATE)?;
            self.allocated = needed + PREALLOCATE;
        }
        if !self.pending.is_empty() {
            file.write_at(self.end, &self.pending)?;
        }
        file.write_at(start, records)?;
        file.sync_data()?;
        self.end = start + records.len() as u64;
        self.pending.clear();
        Ok((self.active, start))
    }

    /// Appends entries, each given as its log id and encoded bytes, durably.
    pub(crate) fn append(&mut self, entries: &[(LogId<NodeId>, Vec<u8>)]) -> io::Result<()> {
        let mut records = Vec::with_capacity(entries.iter().map(|(_, b)| b.len() + 64).sum());
        let mut offsets = Vec::with_capacity(entries.len());
        for (log_id, bytes) in entries {
            offsets.push(records.len() as u64 + (HEADER + 1 + ENTRY_PREFIX) as u64);
            put_record(
                &mut records,
                KIND_ENTRY,
                &[
                    &log_id.index.to_le_bytes(),
                    &log_id.leader_id.term.to_le_bytes(),
                    &log_id.leader_id.node_id.to_le_bytes(),
                    bytes,
                ],
            );
        }
        let (segment, start) = self.write_durable(&records)?;
        for ((log_id, bytes), offset) in entries.iter().zip(offsets) {
            self.insert_entry(Location {
                log_id: *log_id,
                segment,
                offset: start + offset,
                len: bytes.len() as u32,
            });
        }
        Ok(())
    }

    /// Saves the vote durably.
    pub(crate) fn save_vote(&mut self, vote: &Vote<NodeId>) -> io::Result<()> {
        let mut record = Vec::new();
        put_record(&mut record, KIND_VOTE, &[&json(vote)]);
        self.write_durable(&record)?;
        self.meta.vote = Some(*vote);
        Ok(())
    }

    /// Records the commit hint; it reaches the disk with the next durable write. Only the
    /// newest hint waits (the pending records are only hints).
    pub(crate) fn save_committed(&mut self, committed: Option<LogId<NodeId>>) {
        self.pending.clear();
        put_record(&mut self.pending, KIND_COMMITTED, &[&json(&committed)]);
        self.meta.committed = committed;
    }

    /// Removes the entries from `since` on, durably.
    pub(crate) fn truncate(&mut self, since: u64) -> io::Result<()> {
        let mut record = Vec::new();
        put_record(&mut record, KIND_TRUNCATED, &[&since.to_le_bytes()]);
        self.write_durable(&record)?;
        self.entries.split_off(&since);
        Ok(())
    }

    /// Removes the entries up to `upto` durably, and the segments that then hold none.
    pub(crate) fn purge(&mut self, upto: LogId<NodeId>) -> io::Result<()> {
        let mut record = Vec::new();
        put_record(&mut record, KIND_PURGED, &[&json(&upto)]);
        self.write_durable(&record)?;
        self.apply_purge(upto);
        self.remove_unused_segments();
        Ok(())
    }

    /// Removes the segments before the oldest that holds a live entry (never the active one).
    /// A failure leaves them for the next purge: replaying them changes nothing.
    fn remove_unused_segments(&mut self) {
        let keep_from = self
            .entries
            .values()
            .next()
            .map_or(self.active, |l| l.segment.min(self.active));
        let unused: Vec<u64> = self.segments.range(..keep_from).map(|(n, _)| *n).collect();
        if unused.is_empty() {
            return;
        }
        for number in unused {
            self.segments.remove(&number);
            if let Err(e) = self.disk.remove_file(&self.dir.join(segment_name(number))) {
                tracing::warn!("raft log: could not remove the purged segment {number}: {e}");
                return;
            }
        }
        if let Err(e) = self.disk.sync_dir(&self.dir) {
            tracing::warn!("raft log: could not sync the removal of purged segments: {e}");
        }
    }

    /// The entries in `range`, each as its log id and encoded bytes, in index order.
    pub(crate) fn read(&self, range: impl RangeBounds<u64>) -> io::Result<Vec<(LogId<NodeId>, Vec<u8>)>> {
        let mut out = Vec::new();
        for location in self.entries.range(range).map(|(_, l)| l) {
            let mut bytes = vec![0; location.len as usize];
            self.segments[&location.segment].read_at(location.offset, &mut bytes)?;
            out.push((location.log_id, bytes));
        }
        Ok(out)
    }

    /// The newest entry's log id.
    pub(crate) fn last_log_id(&self) -> Option<LogId<NodeId>> {
        self.entries.values().next_back().map(|l| l.log_id)
    }

    pub(crate) fn vote(&self) -> Option<Vote<NodeId>> {
        self.meta.vote
    }

    pub(crate) fn committed(&self) -> Option<LogId<NodeId>> {
        self.meta.committed
    }

    pub(crate) fn last_purged(&self) -> Option<LogId<NodeId>> {
        self.meta.last_purged
    }

    /// Replaces the whole log (an import of an older log store), durably: the new content
    /// goes to a new segment, then the older segments are removed.
    pub(crate) fn replace_all(
        &mut self,
        vote: Option<Vote<NodeId>>,
        committed: Option<LogId<NodeId>>,
        last_purged: Option<LogId<NodeId>>,
        entries: &[(LogId<NodeId>, Vec<u8>)],
    ) -> io::Result<()> {
        let previous: Vec<u64> = self.segments.keys().copied().collect();
        self.meta = Checkpoint {
            vote,
            committed,
            last_purged,
        };
        self.entries.clear();
        self.start_segment(self.active + 1)?;
        self.append(entries)?;
        for number in previous {
            self.segments.remove(&number);
            self.disk.remove_file(&self.dir.join(segment_name(number)))?;
        }
        self.disk.sync_dir(&self.dir)
    }

    /// How many segment files the log has (for tests).
    #[cfg(test)]
    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

/// CRC-32C (Castagnoli), the checksum of each record.
fn crc32c(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for byte in bytes {
        crc = TABLE[((crc ^ u32::from(*byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_state::RealDisk;

    fn log_id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(openraft::CommittedLeaderId::new(term, 7), index)
    }

    fn entries(term: u64, indexes: impl IntoIterator<Item = u64>) -> Vec<(LogId<NodeId>, Vec<u8>)> {
        indexes
            .into_iter()
            .map(|i| (log_id(term, i), format!("entry {i} of term {term}").into_bytes()))
            .collect()
    }

    fn open(dir: &Path, segment_bytes: u64) -> Wal {
        Wal::open(Arc::new(RealDisk), dir, segment_bytes).unwrap().unwrap()
    }

    fn indexes(wal: &Wal) -> Vec<u64> {
        wal.read(..).unwrap().iter().map(|(id, _)| id.index).collect()
    }

    /// The bytes of the segment at `path` up to the end of its last whole record.
    fn written(path: &Path) -> Vec<u8> {
        let mut bytes = std::fs::read(path).unwrap();
        let mut offset = 0;
        while let Some((_, _, len)) = next_record(&bytes, offset) {
            offset += len;
        }
        assert!(
            bytes[offset..].iter().all(|byte| *byte == 0),
            "only zeros after the records"
        );
        bytes.truncate(offset);
        bytes
    }

    #[test]
    fn the_active_segment_is_lengthened_ahead_of_its_records_and_reopens_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_name(1));
        let mut wal = open(dir.path(), 4 << 20);
        wal.append(&entries(1, 1..=3)).unwrap();
        let length = std::fs::metadata(&path).unwrap().len();
        assert!(length >= written(&path).len() as u64 + PREALLOCATE, "{length} bytes");
        wal.append(&entries(1, 4..=6)).unwrap();
        wal.save_vote(&Vote::new(2, 7)).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            length,
            "written inside the file"
        );
        drop(wal);
        let mut wal = open(dir.path(), 4 << 20);
        assert_eq!(indexes(&wal), [1, 2, 3, 4, 5, 6]);
        assert_eq!(wal.vote(), Some(Vote::new(2, 7)));
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            length,
            "the zeros are no torn write"
        );
        let before = written(&path).len();
        wal.append(&entries(2, [7])).unwrap();
        assert!(written(&path).len() > before, "the next record follows the last one");
        let wal = open_again(wal, dir.path());
        assert_eq!(indexes(&wal), [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(wal.read(7..).unwrap()[0].1, b"entry 7 of term 2");
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn what_was_written_is_read_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = open(dir.path(), 1 << 20);
        wal.append(&entries(1, 1..=5)).unwrap();
        wal.save_vote(&Vote::new(3, 7)).unwrap();
        wal.truncate(4).unwrap();
        wal.append(&entries(3, 4..=6)).unwrap();
        wal.save_committed(Some(log_id(1, 2)));
        wal.save_committed(Some(log_id(3, 5)));
        wal.purge(log_id(1, 1)).unwrap();
        let before = wal.read(..).unwrap();
        drop(wal);

        let wal = open(dir.path(), 1 << 20);
        assert_eq!(wal.read(..).unwrap(), before);
        assert_eq!(indexes(&wal), [2, 3, 4, 5, 6]);
        assert_eq!(wal.read(4..=4).unwrap(), entries(3, [4]));
        assert_eq!(wal.vote(), Some(Vote::new(3, 7)));
        assert_eq!(wal.committed(), Some(log_id(3, 5)), "the hint went out with the purge");
        assert_eq!(wal.last_purged(), Some(log_id(1, 1)));
        assert_eq!(wal.last_log_id(), Some(log_id(3, 6)));
    }

    #[test]
    fn a_second_opener_is_refused_while_the_first_holds_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let _first = open(dir.path(), 1 << 20);
        assert!(Wal::open(Arc::new(RealDisk), dir.path(), 1 << 20).unwrap().is_none());
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_the_log_goes_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = open(dir.path(), 1 << 20);
        wal.append(&entries(1, 1..=3)).unwrap();
        drop(wal);
        let path = dir.path().join(segment_name(1));
        let full = written(&path);
        for cut in [1, 5, 9, 20] {
            std::fs::write(&path, &full[..full.len() - cut]).unwrap();
            let mut wal = open(dir.path(), 1 << 20);
            assert_eq!(indexes(&wal), [1, 2], "cut {cut} bytes");
            wal.append(&entries(1, [3])).unwrap();
            drop(wal);
            assert_eq!(indexes(&open(dir.path(), 1 << 20)), [1, 2, 3]);
            assert_eq!(written(&path), full);
        }
        // A flipped bit in the last record: the same.
        let mut flipped = full.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert_eq!(indexes(&open(dir.path(), 1 << 20)), [1, 2]);
    }

    #[test]
    fn full_segments_give_way_and_purged_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = open(dir.path(), 400);
        for i in 1..=40 {
            wal.append(&entries(1, [i])).unwrap();
        }
        wal.save_vote(&Vote::new(2, 7)).unwrap();
        let segments = wal.segment_count();
        assert!(segments > 5, "{segments} segments");
        wal.purge(log_id(1, 30)).unwrap();
        assert!(
            wal.segment_count() < segments / 2,
            "{} segments left",
            wal.segment_count()
        );
        drop(wal);
        let mut wal = open(dir.path(), 400);
        assert_eq!(indexes(&wal), (31..=40).collect::<Vec<_>>());
        assert_eq!(
            wal.vote(),
            Some(Vote::new(2, 7)),
            "the vote lives on in the checkpoints"
        );
        assert_eq!(wal.last_purged(), Some(log_id(1, 30)));
        wal.purge(log_id(1, 40)).unwrap();
        assert_eq!(wal.segment_count(), 1);
        drop(wal);
        let wal = open(dir.path(), 400);
        assert_eq!(wal.last_log_id(), None);
        assert_eq!(wal.last_purged(), Some(log_id(1, 40)));
    }

    #[test]
    fn a_corrupt_older_segment_is_an_error_not_a_silent_loss() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = open(dir.path(), 200);
        for i in 1..=10 {
            wal.append(&entries(1, [i])).unwrap();
        }
        drop(wal);
        let path = dir.path().join(segment_name(1));
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() - 3;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = Wal::open(Arc::new(RealDisk), dir.path(), 200).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    #[test]
    fn a_segment_a_crash_left_without_its_checkpoint_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = open(dir.path(), 1 << 20);
        wal.append(&entries(1, 1..=2)).unwrap();
        drop(wal);
        std::fs::write(dir.path().join(segment_name(2)), b"\x10\0\0").unwrap();
        let mut wal = open(dir.path(), 1 << 20);
        assert_eq!(indexes(&wal), [1, 2]);
        assert!(!dir.path().join(segment_name(2)).exists());
        wal.append(&entries(1, [3])).unwrap();
        let mut wal = open_again(wal, dir.path());
        assert_eq!(indexes(&wal), [1, 2, 3]);

        // A bad first record with records behind it is not a cut checkpoint: refused.
        for i in 4..=200 {
            wal.append(&entries(1, [i])).unwrap();
        }
        drop(wal);
        let path = dir.path().join(segment_name(1));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER + 2] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = Wal::open(Arc::new(RealDisk), dir.path(), 1 << 20).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    fn open_again(wal: Wal, dir: &Path) -> Wal {
        drop(wal);
        open(dir, 1 << 20)
    }

    #[test]
    fn replace_all_keeps_only_the_new_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = open(dir.path(), 1 << 20);
        wal.append(&entries(1, 1..=4)).unwrap();
        wal.replace_all(
            Some(Vote::new(5, 7)),
            Some(log_id(5, 9)),
            Some(log_id(4, 7)),
            &entries(5, 8..=9),
        )
        .unwrap();
        let wal = open_again(wal, dir.path());
        assert_eq!(indexes(&wal), [8, 9]);
        assert_eq!(wal.segment_count(), 1);
        assert_eq!(wal.vote(), Some(Vote::new(5, 7)));
        assert_eq!(wal.last_purged(), Some(log_id(4, 7)));
    }

    /// Whatever a crash or a bad disk leaves at the end of the newest segment (cut short, a
    /// flipped byte, garbage over the tail or after it), opening never panics and keeps
    /// exactly the entries whose records lie whole before the damage.
    #[test]
    fn damage_at_the_end_of_the_newest_segment_keeps_every_record_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_name(1));
        let mut wal = open(dir.path(), 1 << 20);
        for i in 1..=40 {
            wal.append(&entries(1, [i])).unwrap();
        }
        drop(wal);
        let pristine = written(&path);
        let mut ends = Vec::new();
        let mut offset = 0;
        while let Some((_, _, len)) = next_record(&pristine, offset) {
            offset += len;
            ends.push(offset);
        }
        assert_eq!(ends.len(), 41, "a checkpoint and 40 entries");
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut random = move |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % below as u64) as usize
        };
        for round in 0..400 {
            let at = ends[0] + random(pristine.len() - ends[0]);
            let mut damaged = pristine.clone();
            let kind = round % 4;
            match kind {
                0 => damaged.truncate(at),
                1 => damaged[at] ^= 1 << random(8),
                2 => damaged[at..].iter_mut().for_each(|b| *b = random(256) as u8),
                _ => damaged.extend((0..1 + random(64)).map(|_| random(256) as u8)),
            }
            std::fs::write(&path, &damaged).unwrap();
            let wal = open(dir.path(), 1 << 20);
            let kept = if kind == 3 {
                40
            } else {
                ends[1..].iter().filter(|end| **end <= at).count()
            };
            assert_eq!(
                indexes(&wal),
                (1..=kept as u64).collect::<Vec<_>>(),
                "round {round}: damage of kind {kind} at byte {at}"
            );
        }
    }
}
