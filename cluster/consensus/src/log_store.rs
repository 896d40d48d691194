//! The durable Raft log: entries, vote, committed id and last purged id in one redb file.
//!
//! Every write but the committed-index hint commits with immediate durability (fsync) before
//! openraft is told it is done:
//! the vote is durable before we answer a vote request, and entries are durable before we
//! acknowledge an append. All entries of one `append` call share one transaction and one
//! fsync; concurrent writes on the leader share entries (see `write_batch`).
//!
//! openraft stops for good at a storage error, so a read or write the disk refuses (it is
//! full) is retried until it works (see [`StorageHealth`]); other errors go to openraft.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};

use cluster_state::{Disk, IoFailure, RealDisk, ReopeningDatabase};

use crate::{ConsensusError, NodeId, StorageHealth, TypeConfig};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";
/// How [`StorageHealth`] names this store.
const STORE: &str = "raft log";

/// The Raft log of one member, in `<data>/raft/log.redb`. Cheap to clone (shares the database).
#[derive(Clone)]
pub struct RedbLogStore {
    database: Arc<ReopeningDatabase>,
    health: StorageHealth,
}

impl Debug for RedbLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedbLogStore({})", self.database.path().display())
    }
}

fn write_error(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

fn read_error(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_logs(&e).into()
}

/// A stored entry or meta value; undecodable bytes are corruption, not a disk failure to retry.
fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, redb::Error> {
    serde_json::from_slice(bytes).map_err(|e| redb::Error::Corrupted(format!("undecodable raft log record: {e}")))
}

/// One Raft log entry as stored on disk, or why the bytes are not one (the fuzz targets read
/// entries through this, as the log store does).
pub fn decode_log_entry(bytes: &[u8]) -> Result<Entry<TypeConfig>, redb::Error> {
    decode(bytes)
}

impl RedbLogStore {
    /// Opens or creates the log database at `path`.
    pub fn open(path: &Path) -> Result<RedbLogStore, ConsensusError> {
        RedbLogStore::open_on(Arc::new(RealDisk), path, StorageHealth::default())
    }

    /// Opens or creates the log database at `path` on `disk`; its write failures are recorded
    /// in `health`.
    pub fn open_on(disk: Arc<dyn Disk>, path: &Path, health: StorageHealth) -> Result<RedbLogStore, ConsensusError> {
        let display = path.display().to_string();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| ConsensusError::LogStore {
                path: display.clone(),
                message: e.to_string(),
            })?;
        }
        let database = ReopeningDatabase::open(disk, path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => ConsensusError::Locked { path: display.clone() },
            other => ConsensusError::LogStore {
                path: display.clone(),
                message: other.to_string(),
            },
        })?;
        let store = RedbLogStore {
            database: Arc::new(database),
            health,
        };
        store
            .write_once(Durability::Immediate, |txn| {
                txn.open_table(LOG)?;
                txn.open_table(META)?;
                Ok(())
            })
            .map_err(|e| ConsensusError::LogStore {
                path: display,
                message: e.to_string(),
            })?;
        Ok(store)
    }

    /// The health its writes report to.
    pub fn health(&self) -> &StorageHealth {
        &self.health
    }

    /// One write transaction, committed with `durability`.
    fn write_once<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, redb::Error> {
        self.database.with(|database| {
            let mut txn = database.begin_write()?;
            txn.set_durability(durability)
                .map_err(|e| redb::Error::from(redb::StorageError::Io(std::io::Error::other(e.to_string()))))?;
            let value = f(&txn)?;
            txn.commit()?;
            Ok(value)
        })
    }

    /// A write transaction, retried until the disk takes it.
    async fn write<T>(
        &self,
        durability: Durability,
        f: impl Fn(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StorageError<NodeId>> {
        self.health
            .retry(STORE, true, redb::Error::is_io_failure, || {
                self.write_once(durability, &f)
            })
            .await
            .map_err(write_error)
    }

    /// A read transaction, retried until the disk gives it.
    async fn read<T>(
        &self,
        f: impl Fn(&redb::ReadTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StorageError<NodeId>> {
        self.health
            .retry(STORE, false, redb::Error::is_io_failure, || {
                self.database.with(|database| f(&database.begin_read()?))
            })
            .await
            .map_err(read_error)
    }

    async fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError<NodeId>> {
        self.read(|txn| match txn.open_table(META)?.get(key)? {
            None => Ok(None),
            Some(bytes) => decode(bytes.value()).map(Some),
        })
        .await
    }

    async fn write_meta<T: serde::Serialize>(
        &self,
        durability: Durability,
        key: &str,
        value: &T,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = serde_json::to_vec(value).map_err(write_error)?;
        self.write(durability, |txn| {
            txn.open_table(META)?.insert(key, bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn last_entry_log_id(&self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        self.read(|txn| match txn.open_table(LOG)?.last()? {
            None => Ok(None),
            Some((_, bytes)) => Ok(Some(decode::<Entry<TypeConfig>>(bytes.value())?.log_id)),
        })
        .await
    }
}

impl RaftLogReader<TypeConfig> for RedbLogStore {
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
            Bound::Included(i) => Bound::Included(*i),
            Bound::Excluded(i) => Bound::Excluded(*i),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.read(|txn| {
            let table = txn.open_table(LOG)?;
            let mut entries = Vec::new();
            for item in table.range((Bound::Included(start), end))? {
                let (_, bytes) = item?;
                entries.push(decode(bytes.value())?);
            }
            Ok(entries)
        })
        .await
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

impl RaftLogStorage<TypeConfig> for RedbLogStore {
    type LogReader = RedbLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged: Option<LogId<NodeId>> = self.read_meta(KEY_LAST_PURGED).await?;
        let last = self.last_entry_log_id().await?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_meta(Durability::Immediate, KEY_VOTE, vote)
            .await
            .map_err(|e| StorageIOError::write_vote(&std::io::Error::other(format!("vote write failed: {e}"))).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.read_meta(KEY_VOTE).await
    }

    /// A hint, not a promise: without an fsync of its own it reaches the disk with the next
    /// durable write. Losing it in a crash only means re-learning the commit index from the
    /// leader; the applied index lives with the state. This saves one fsync per commit.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        self.write_meta(Durability::None, KEY_COMMITTED, &committed).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.read_meta::<Option<LogId<NodeId>>>(KEY_COMMITTED).await?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            encoded.push((entry.log_id.index, serde_json::to_vec(&entry).map_err(write_error)?));
        }
        let result = self
            .write(Durability::Immediate, |txn| {
                let mut table = txn.open_table(LOG)?;
                for (index, bytes) in &encoded {
                    table.insert(*index, bytes.as_slice())?;
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(Durability::Immediate, |txn| {
            let mut table = txn.open_table(LOG)?;
            table.retain_in(log_id.index.., |_, _| false)?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let bytes = serde_json::to_vec(&log_id).map_err(write_error)?;
        self.write(Durability::Immediate, |txn| {
            txn.open_table(META)?.insert(KEY_LAST_PURGED, bytes.as_slice())?;
            let mut table = txn.open_table(LOG)?;
            table.retain_in(..=log_id.index, |_, _| false)?;
            Ok(())
        })
        .await
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

    async fn write_entries(store: &RedbLogStore, indexes: impl Iterator<Item = u64>) {
        let encoded: Vec<(u64, Vec<u8>)> = indexes.map(|i| (i, serde_json::to_vec(&entry(i)).unwrap())).collect();
        store
            .write(Durability::Immediate, |txn| {
                let mut table = txn.open_table(LOG)?;
                for (index, bytes) in &encoded {
                    table.insert(*index, bytes.as_slice())?;
                }
                Ok(())
            })
            .await
            .unwrap();
    }

    fn indexes(entries: &[Entry<TypeConfig>]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn replication_reads_nothing_from_a_purged_index_and_stops_at_a_hole() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RedbLogStore::open(&dir.path().join("log.redb")).unwrap();
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
}
