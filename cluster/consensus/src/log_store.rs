//! The durable Raft log: entries, vote, commit hint and last purged id, in append-only
//! segment files in `<data>/raft/` (see `wal`).
//!
//! Every write but the commit hint is durable (one write, one fdatasync) before openraft is
//! told it is done: the vote before we answer a vote request, entries before we acknowledge an
//! append. All entries of one `append` call share that write; concurrent writes on the leader
//! share entries (see `write_batch`). A log an earlier version kept in `log.redb` is moved
//! into the segments at the first open.
//!
//! openraft stops for good at a storage error, so a read or write the disk refuses (it is
//! full) is retried until it works (see [`StorageHealth`]); other errors go to openraft.

mod wal;

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use cluster_state::{Disk, RealDisk};

use crate::{ConsensusError, NodeId, StorageHealth, TypeConfig};
use wal::Wal;

/// How [`StorageHealth`] names this store.
const STORE: &str = "raft log";

/// A segment gives way to a new one past this size; purged segments are removed whole. The
/// simulator's are small, so that its runs start and remove segments.
const SEGMENT_BYTES: u64 = if cfg!(madsim) { 64 << 10 } else { 16 << 20 };

/// The log file of earlier versions, moved into the segments at the first open.
const REDB_LOG: &str = "log.redb";

/// How many bytes (encoded) of the newest entries stay decoded in memory.
const RECENT_BYTES: usize = 4 << 20;

/// The Raft log of one member. Cheap to clone (shares the log).
#[derive(Clone)]
pub struct LogStore {
    log: Arc<Mutex<Log>>,
    dir: PathBuf,
    health: StorageHealth,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogStore({})", self.dir.display())
    }
}

/// The log on disk and its newest entries, decoded, changed together under one lock.
struct Log {
    wal: Wal,
    recent: Recent,
}

/// The newest entries of the log, decoded, as a run with no gap that ends at the log's last
/// entry (or none). Replication to each follower and the apply each read an entry just
/// appended; decoding it from the disk every time cost more than the append.
#[derive(Default)]
struct Recent {
    entries: std::collections::VecDeque<(Entry<TypeConfig>, usize)>,
    bytes: usize,
}

impl Recent {
    fn push(&mut self, entry: Entry<TypeConfig>, size: usize) {
        self.truncate(entry.log_id.index);
        if self
            .entries
            .back()
            .is_some_and(|(last, _)| last.log_id.index + 1 != entry.log_id.index)
        {
            self.clear();
        }
        self.entries.push_back((entry, size));
        self.bytes += size;
        while self.bytes > RECENT_BYTES && self.entries.len() > 1 {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((_, size)) = self.entries.pop_front() {
            self.bytes -= size;
        }
    }

    /// Drops the entries from `since` on.
    fn truncate(&mut self, since: u64) {
        while self.entries.back().is_some_and(|(e, _)| e.log_id.index >= since) {
            let (_, size) = self.entries.pop_back().expect("checked");
            self.bytes -= size;
        }
    }

    /// Drops the entries up to `upto`.
    fn purge(&mut self, upto: u64) {
        while self.entries.front().is_some_and(|(e, _)| e.log_id.index <= upto) {
            self.pop_front();
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The log's entries in `start..end`, if this run holds every one the log holds there.
    fn get(&self, start: u64, end: u64) -> Option<Vec<Entry<TypeConfig>>> {
        let first = self.entries.front()?.0.log_id.index;
        if start < first {
            return None;
        }
        let from = (start - first) as usize;
        let to = (end.saturating_sub(first) as usize).min(self.entries.len());
        Some(self.entries.range(from.min(to)..to).map(|(e, _)| e.clone()).collect())
    }
}

fn write_error(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

fn read_error(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_logs(&e).into()
}

/// A failure of the disk, worth retrying; undecodable bytes are corruption.
fn is_io_failure(e: &io::Error) -> bool {
    e.kind() != io::ErrorKind::InvalidData
}

/// One Raft log entry as stored on disk, or why the bytes are not one (the fuzz targets read
/// entries through this, as the log store does).
pub fn decode_log_entry(bytes: &[u8]) -> Result<Entry<TypeConfig>, io::Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("undecodable raft log entry: {e}")))
}

fn encode_log_entry(entry: &Entry<TypeConfig>) -> Vec<u8> {
    serde_json::to_vec(entry).expect("raft log entries serialize")
}

impl LogStore {
    /// Opens or creates the log in the folder `dir`.
    pub fn open(dir: &Path) -> Result<LogStore, ConsensusError> {
        LogStore::open_on(Arc::new(RealDisk), dir, StorageHealth::default())
    }

    /// Opens or creates the log in the folder `dir` on `disk`; its write failures are
    /// recorded in `health`.
    pub fn open_on(disk: Arc<dyn Disk>, dir: &Path, health: StorageHealth) -> Result<LogStore, ConsensusError> {
        let failed = |message: String| ConsensusError::LogStore {
            path: dir.display().to_string(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
        let mut wal = Wal::open(disk.clone(), dir, SEGMENT_BYTES)
            .map_err(|e| failed(e.to_string()))?
            .ok_or_else(|| ConsensusError::Locked {
                path: dir.display().to_string(),
            })?;
        let names = disk.file_names(dir).map_err(|e| failed(e.to_string()))?;
        if names.iter().any(|name| name == REDB_LOG) {
            let redb_log = dir.join(REDB_LOG);
            import_redb_log(&disk, &redb_log, &mut wal).map_err(|e| failed(format!("moving {REDB_LOG}: {e}")))?;
            disk.remove_file(&redb_log)
                .and_then(|()| disk.sync_dir(dir))
                .map_err(|e| failed(e.to_string()))?;
            tracing::info!("the raft log of {} moved into its segment files", redb_log.display());
        }
        Ok(LogStore {
            log: Arc::new(Mutex::new(Log {
                wal,
                recent: Recent::default(),
            })),
            dir: dir.to_path_buf(),
            health,
        })
    }

    /// The health its writes report to.
    pub fn health(&self) -> &StorageHealth {
        &self.health
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A write, retried until the disk takes it.
    async fn write<T>(&self, f: impl Fn(&mut Log) -> io::Result<T>) -> Result<T, io::Error> {
        self.health
            .retry(STORE, true, is_io_failure, || f(&mut self.log()))
            .await
    }

    /// A read, retried until the disk gives it.
    async fn read<T>(&self, f: impl Fn(&Log) -> io::Result<T>) -> Result<T, StorageError<NodeId>> {
        self.health
            .retry(STORE, false, is_io_failure, || f(&self.log()))
            .await
            .map_err(read_error)
    }
}

impl LogStore {
    /// The id of the last entry, or of the last one purged when none is left.
    pub(crate) fn last_log_id(&self) -> Option<LogId<NodeId>> {
        let wal = &self.log().wal;
        wal.last_log_id().or(wal.last_purged())
    }

    /// Appends `entries` durably, retried until the disk takes them.
    async fn append_now(&self, entries: Vec<Entry<TypeConfig>>) -> Result<(), io::Error> {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let encoded: Vec<(LogId<NodeId>, Vec<u8>)> = entries
            .iter()
            .map(|entry| (entry.log_id, encode_log_entry(entry)))
            .collect();
        // Taken by the attempt that succeeds, under the same lock as its write.
        let decoded = Mutex::new(Some(entries));
        self.write(|log| {
            log.wal.append(&encoded)?;
            let entries = decoded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_default();
            for (entry, (_, bytes)) in entries.into_iter().zip(&encoded) {
                log.recent.push(entry, bytes.len());
            }
            Ok(())
        })
        .await
    }
}

/// Moves the log an earlier version kept in redb at `path` into `wal`, replacing what it held.
fn import_redb_log(disk: &Arc<dyn Disk>, path: &Path, wal: &mut Wal) -> Result<(), Box<dyn std::error::Error>> {
    const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
    const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    let database = disk.open_database(path)?;
    let txn = database.begin_read()?;
    let meta = |key: &str| -> Result<Option<Vec<u8>>, redb::Error> {
        match txn.open_table(META) {
            Ok(table) => Ok(table.get(key)?.map(|bytes| bytes.value().to_vec())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    };
    let vote: Option<Vote<NodeId>> = meta("vote")?.map(|b| serde_json::from_slice(&b)).transpose()?;
    let committed: Option<LogId<NodeId>> = meta("committed")?
        .map(|b| serde_json::from_slice::<Option<LogId<NodeId>>>(&b))
        .transpose()?
        .flatten();
    let last_purged: Option<LogId<NodeId>> = meta("last_purged")?.map(|b| serde_json::from_slice(&b)).transpose()?;
    let mut entries = Vec::new();
    match txn.open_table(LOG) {
        Ok(table) => {
            for item in table.iter()? {
                let (_, bytes) = item?;
                let bytes = bytes.value().to_vec();
                entries.push((decode_log_entry(&bytes)?.log_id, bytes));
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(e.into()),
    }
    wal.replace_all(vote, committed, last_purged, &entries)?;
    Ok(())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        };
        if let Some(entries) = self.log().recent.get(start, end) {
            return Ok(entries);
        }
        let stored = self.read(|log| log.wal.read(start..end)).await?;
        stored
            .iter()
            .map(|(_, bytes)| decode_log_entry(bytes).map_err(read_error))
            .collect()
    }

    /// What the leader's replication sends after `prev_log_id` = `start - 1`: the entries from
    /// `start` on, without a hole, or none. A purge that ran while replication decided what to
    /// send leaves `start` gone, and the entries after the purge, sent after that
    /// `prev_log_id`, would leave a hole in the follower's log (sim seed 200326 of the
    /// frequent-snapshots workload: the follower's Raft stopped). On an empty answer openraft
    /// waits 10 ms and looks again, and sends a snapshot.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let mut entries = self.try_get_log_entries(start..end).await?;
        let run = entries
            .iter()
            .zip(start..)
            .take_while(|(entry, expected)| entry.log_id.index == *expected)
            .count();
        entries.truncate(run);
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let wal = &self.log().wal;
        let last_purged = wal.last_purged();
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: wal.last_log_id().or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(|log| log.wal.save_vote(vote))
            .await
            .map_err(|e| StorageIOError::write_vote(&io::Error::other(format!("vote write failed: {e}"))).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.log().wal.vote())
    }

    /// A hint, not a promise: without an fsync of its own it reaches the disk with the next
    /// durable write. Losing it in a crash only means re-learning the commit index from the
    /// leader; the applied index lives with the state. This saves one fsync per commit.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        self.log().wal.save_committed(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.log().wal.committed())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        match self.append_now(entries.into_iter().collect()).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(write_error(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(|log| {
            log.wal.truncate(log_id.index)?;
            log.recent.truncate(log_id.index);
            Ok(())
        })
        .await
        .map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(|log| {
            log.wal.purge(log_id)?;
            log.recent.purge(log_id.index);
            Ok(())
        })
        .await
        .map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 0), index),
            payload: openraft::EntryPayload::Blank,
        }
    }

    async fn write_entries(store: &LogStore, indexes: impl Iterator<Item = u64>) {
        let encoded: Vec<(LogId<NodeId>, Vec<u8>)> = indexes
            .map(|i| (entry(i).log_id, encode_log_entry(&entry(i))))
            .collect();
        store.write(|log| log.wal.append(&encoded)).await.unwrap();
    }

    fn indexes(entries: &[Entry<TypeConfig>]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn replication_reads_nothing_from_a_purged_index_and_stops_at_a_hole() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        write_entries(&store, 1..=10).await;
        assert_eq!(
            indexes(&store.limited_get_log_entries(3, 8).await.unwrap()),
            [3, 4, 5, 6, 7]
        );
        // Purged up to 5 while a replication read was on its way: nothing, not 6 and 7 after
        // a prev_log_id of 2. Other reads still get what is left.
        store
            .purge(LogId::new(openraft::CommittedLeaderId::new(1, 0), 5))
            .await
            .unwrap();
        assert!(store.limited_get_log_entries(3, 8).await.unwrap().is_empty());
        assert_eq!(indexes(&store.try_get_log_entries(3..8).await.unwrap()), [6, 7]);
        assert_eq!(
            indexes(&store.limited_get_log_entries(6, 100).await.unwrap()),
            [6, 7, 8, 9, 10]
        );
        // A hole ends the run.
        write_entries(&store, 12..=13).await;
        assert_eq!(
            indexes(&store.limited_get_log_entries(8, 14).await.unwrap()),
            [8, 9, 10]
        );
    }

    #[tokio::test]
    async fn a_log_kept_in_redb_by_an_earlier_version_moves_into_the_segments() {
        let dir = tempfile::tempdir().unwrap();
        let vote = Vote::new(4, 2);
        let purged = LogId::new(openraft::CommittedLeaderId::new(1, 0), 2);
        {
            const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
            const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
            let database = redb::Database::create(dir.path().join(REDB_LOG)).unwrap();
            let txn = database.begin_write().unwrap();
            {
                let mut log = txn.open_table(LOG).unwrap();
                for i in 3..=6 {
                    log.insert(i, encode_log_entry(&entry(i)).as_slice()).unwrap();
                }
                let mut meta = txn.open_table(META).unwrap();
                meta.insert("vote", serde_json::to_vec(&vote).unwrap().as_slice())
                    .unwrap();
                meta.insert("last_purged", serde_json::to_vec(&purged).unwrap().as_slice())
                    .unwrap();
                meta.insert(
                    "committed",
                    serde_json::to_vec(&Some(entry(5).log_id)).unwrap().as_slice(),
                )
                .unwrap();
            }
            txn.commit().unwrap();
        }
        let check = |mut store: LogStore| async move {
            assert_eq!(indexes(&store.try_get_log_entries(..).await.unwrap()), [3, 4, 5, 6]);
            assert_eq!(store.read_vote().await.unwrap(), Some(vote));
            assert_eq!(store.read_committed().await.unwrap(), Some(entry(5).log_id));
            let state = store.get_log_state().await.unwrap();
            assert_eq!(state.last_purged_log_id, Some(purged));
            assert_eq!(state.last_log_id, Some(entry(6).log_id));
        };
        check(LogStore::open(dir.path()).unwrap()).await;
        assert!(!dir.path().join(REDB_LOG).exists(), "the old file is gone once moved");
        check(LogStore::open(dir.path()).unwrap()).await;
    }

    #[tokio::test]
    async fn reads_of_the_newest_entries_answer_what_the_disk_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        let of_term = |term: u64, index: u64| Entry::<TypeConfig> {
            log_id: LogId::new(openraft::CommittedLeaderId::new(term, 0), index),
            payload: openraft::EntryPayload::Blank,
        };
        store
            .append_now((1..=10).map(|i| of_term(1, i)).collect())
            .await
            .unwrap();
        store.truncate(of_term(1, 8).log_id).await.unwrap();
        store
            .append_now((8..=12).map(|i| of_term(2, i)).collect())
            .await
            .unwrap();
        // A conflicting append without a truncate first replaces the tail too.
        store.append_now(vec![of_term(3, 12)]).await.unwrap();
        store.purge(of_term(1, 3).log_id).await.unwrap();
        for (start, end) in [(0, 20), (1, 5), (4, 4), (4, 9), (7, 13), (12, 13), (13, 20), (9, 11)] {
            let cached = store.try_get_log_entries(start..end).await.unwrap();
            let on_disk: Vec<Entry<TypeConfig>> = store
                .read(|log| log.wal.read(start..end))
                .await
                .unwrap()
                .iter()
                .map(|(_, bytes)| decode_log_entry(bytes).unwrap())
                .collect();
            assert_eq!(cached, on_disk, "{start}..{end}");
        }
        let all = store.try_get_log_entries(..).await.unwrap();
        assert_eq!(
            all.iter()
                .map(|e| (e.log_id.leader_id.term, e.log_id.index))
                .collect::<Vec<_>>(),
            [
                (1, 4),
                (1, 5),
                (1, 6),
                (1, 7),
                (2, 8),
                (2, 9),
                (2, 10),
                (2, 11),
                (3, 12)
            ]
        );
    }
}
