//! The durable Raft log: entries, vote, committed id and last purged id in one redb file.
//!
//! Every write but the committed-index hint commits with immediate durability (fsync) before
//! openraft is told it is done:
//! the vote is durable before we answer a vote request, and entries are durable before we
//! acknowledge an append. All entries of one `append` call share one transaction, so
//! concurrent proposals that openraft batches cost one fsync (group commit).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use cluster_state::{Disk, RealDisk};

use crate::{ConsensusError, NodeId, TypeConfig};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";

/// The Raft log of one member, in `<data>/raft/log.redb`. Cheap to clone (shares the database).
#[derive(Clone)]
pub struct RedbLogStore {
    database: Arc<Database>,
    path: PathBuf,
}

impl Debug for RedbLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedbLogStore({})", self.path.display())
    }
}

fn write_error(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

fn read_error(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_logs(&e).into()
}

impl RedbLogStore {
    /// Opens or creates the log database at `path`.
    pub fn open(path: &Path) -> Result<RedbLogStore, ConsensusError> {
        RedbLogStore::open_on(&RealDisk, path)
    }

    /// Opens or creates the log database at `path` on `disk`.
    pub fn open_on(disk: &dyn Disk, path: &Path) -> Result<RedbLogStore, ConsensusError> {
        let display = path.display().to_string();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| ConsensusError::LogStore {
                path: display.clone(),
                message: e.to_string(),
            })?;
        }
        let database = disk.open_database(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => ConsensusError::Locked { path: display.clone() },
            other => ConsensusError::LogStore {
                path: display.clone(),
                message: other.to_string(),
            },
        })?;
        let store = RedbLogStore {
            database: Arc::new(database),
            path: path.to_path_buf(),
        };
        store
            .write(|txn| {
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

    fn write<T>(&self, f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>) -> Result<T, redb::Error> {
        self.write_with(Durability::Immediate, f)
    }

    fn write_with<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, redb::Error> {
        let mut txn = self.database.begin_write()?;
        txn.set_durability(durability)
            .map_err(|e| redb::Error::from(redb::StorageError::Io(std::io::Error::other(e.to_string()))))?;
        let value = f(&txn)?;
        txn.commit()?;
        Ok(value)
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError<NodeId>> {
        let txn = self.database.begin_read().map_err(read_error)?;
        let table = txn.open_table(META).map_err(read_error)?;
        match table.get(key).map_err(read_error)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(bytes.value()).map(Some).map_err(read_error),
        }
    }

    fn write_meta<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), StorageError<NodeId>> {
        self.write_meta_with(Durability::Immediate, key, value)
    }

    fn write_meta_with<T: serde::Serialize>(
        &self,
        durability: Durability,
        key: &str,
        value: &T,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = serde_json::to_vec(value).map_err(write_error)?;
        self.write_with(durability, |txn| {
            txn.open_table(META)?.insert(key, bytes.as_slice())?;
            Ok(())
        })
        .map_err(write_error)
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        let txn = self.database.begin_read().map_err(read_error)?;
        let table = txn.open_table(LOG).map_err(read_error)?;
        let last = table.last().map_err(read_error)?;
        let log_id = match last {
            None => None,
            Some((_, bytes)) => {
                let entry: Entry<TypeConfig> = serde_json::from_slice(bytes.value()).map_err(read_error)?;
                Some(entry.log_id)
            }
        };
        Ok(log_id)
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
        let txn = self.database.begin_read().map_err(read_error)?;
        let table = txn.open_table(LOG).map_err(read_error)?;
        let mut entries = Vec::new();
        for item in table.range((Bound::Included(start), end)).map_err(read_error)? {
            let (_, bytes) = item.map_err(read_error)?;
            entries.push(serde_json::from_slice(bytes.value()).map_err(read_error)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for RedbLogStore {
    type LogReader = RedbLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged: Option<LogId<NodeId>> = self.read_meta(KEY_LAST_PURGED)?;
        let last = self.last_entry_log_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_meta(KEY_VOTE, vote)
            .map_err(|_| StorageIOError::write_vote(&std::io::Error::other("vote write failed")).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.read_meta(KEY_VOTE)
    }

    /// A hint, not a promise: without an fsync of its own it reaches the disk with the next
    /// durable write. Losing it in a crash only means re-learning the commit index from the
    /// leader; the applied index lives with the state. This saves one fsync per commit.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        self.write_meta_with(Durability::None, KEY_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.read_meta::<Option<LogId<NodeId>>>(KEY_COMMITTED)?.flatten())
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
        let result = self.write(|txn| {
            let mut table = txn.open_table(LOG)?;
            for (index, bytes) in &encoded {
                table.insert(*index, bytes.as_slice())?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                callback.log_io_completed(Err(std::io::Error::other(message.clone())));
                Err(write_error(std::io::Error::other(message)))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(|txn| {
            let mut table = txn.open_table(LOG)?;
            table.retain_in(log_id.index.., |_, _| false)?;
            Ok(())
        })
        .map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let bytes = serde_json::to_vec(&log_id).map_err(write_error)?;
        self.write(|txn| {
            txn.open_table(META)?.insert(KEY_LAST_PURGED, bytes.as_slice())?;
            let mut table = txn.open_table(LOG)?;
            table.retain_in(..=log_id.index, |_, _| false)?;
            Ok(())
        })
        .map_err(write_error)
    }
}
