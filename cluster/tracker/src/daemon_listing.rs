//! [`DaemonListing`]: the IPFS daemon's recursive pins, listed once into a scratch table on
//! disk and then looked up in CID byte order, the order the pinset is walked in. A state sync
//! or a status walk over a daemon with millions of pins holds one page of them in memory
//! instead of all of them in a hash set.
//!
//! The scratch database ([`ListingStore`], `<data>/state/daemon-listing.redb`) is written
//! without fsync and with a small page cache: nothing in it needs to survive a crash, and
//! every listing gets a table of its own, dropped with it.

use std::collections::VecDeque;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cluster_ipfs::{IpfsConnector, IpfsError};
use cluster_state::{Disk, ReopeningDatabase, StateError};
use cluster_types::{Cid, ClusterError};
use futures::StreamExt;
use redb::{Durability, ReadableDatabase, TableDefinition, TableHandle};

/// CIDs written per transaction while listing, and read per page while looking up.
const PAGE: usize = 4096;
/// The scratch database's page cache.
const CACHE_BYTES: usize = 8 << 20;

/// Where listings are written: one scratch database per member.
pub struct ListingStore {
    database: ReopeningDatabase,
    next_table: AtomicU64,
}

impl std::fmt::Debug for ListingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ListingStore({})", self.database.path().display())
    }
}

fn storage(what: &str, error: impl Into<redb::Error>) -> ClusterError {
    ClusterError::storage(what, error.into())
}

impl ListingStore {
    /// Opens the scratch database at `path` on `disk`, dropping the tables a crash left.
    pub fn open(disk: Arc<dyn Disk>, path: &Path) -> Result<ListingStore, StateError> {
        let database = ReopeningDatabase::open_with_cache(disk, path, Some(CACHE_BYTES))
            .map_err(|e| StateError::Storage(format!("opening {}: {e}", path.display())))?;
        let store = ListingStore {
            database,
            next_table: AtomicU64::new(0),
        };
        store
            .database
            .with(|db| -> Result<(), redb::Error> {
                let txn = db.begin_write()?;
                let leftovers: Vec<String> = txn.list_tables()?.map(|t| t.name().to_string()).collect();
                for name in leftovers {
                    txn.delete_table(TableDefinition::<&[u8], ()>::new(&name))?;
                }
                txn.commit()?;
                Ok(())
            })
            .map_err(StateError::from)?;
        Ok(store)
    }

    /// Lists the daemon's recursive pins into a new table.
    pub(crate) async fn list(self: &Arc<Self>, ipfs: &dyn IpfsConnector) -> Result<DaemonListing, ListingError> {
        let table = format!("listing-{}", self.next_table.fetch_add(1, Ordering::Relaxed));
        let mut listing = DaemonListing {
            store: self.clone(),
            table,
            total: 0,
            matched: AtomicU64::new(0),
        };
        let mut stream = ipfs.pin_ls().await.map_err(ListingError::Ipfs)?;
        let mut page = Vec::with_capacity(PAGE);
        // Bounded: the daemon's listing is finite and the connector puts a deadline on it.
        while let Some(item) = stream.next().await {
            page.push(item.map_err(ListingError::Ipfs)?.to_bytes());
            if page.len() == PAGE {
                listing.write(&page)?;
                page.clear();
            }
        }
        listing.write(&page)?;
        listing.total = listing.len()?;
        Ok(listing)
    }
}

/// Why a listing could not be taken.
#[derive(Debug)]
pub(crate) enum ListingError {
    /// The daemon did not list its pins.
    Ipfs(IpfsError),
    /// The scratch database failed.
    Storage(ClusterError),
}

impl From<ListingError> for ClusterError {
    fn from(error: ListingError) -> ClusterError {
        match error {
            ListingError::Ipfs(e) => ClusterError::Ipfs(e.to_string()),
            ListingError::Storage(e) => e,
        }
    }
}

/// One listing of the daemon's recursive pins; its table is dropped with it.
pub(crate) struct DaemonListing {
    store: Arc<ListingStore>,
    table: String,
    /// CIDs listed.
    total: u64,
    /// Listed CIDs a lookup found.
    matched: AtomicU64,
}

impl DaemonListing {
    fn definition(&self) -> TableDefinition<'_, &'static [u8], ()> {
        TableDefinition::new(&self.table)
    }

    fn write(&self, page: &[Vec<u8>]) -> Result<(), ListingError> {
        self.store
            .database
            .with(|db| -> Result<(), redb::Error> {
                let mut txn = db.begin_write()?;
                txn.set_durability(Durability::None)?;
                {
                    let mut table = txn.open_table(self.definition())?;
                    for key in page {
                        table.insert(key.as_slice(), ())?;
                    }
                }
                txn.commit()?;
                Ok(())
            })
            .map_err(|e| ListingError::Storage(storage("writing the daemon's pin listing", e)))
    }

    fn len(&self) -> Result<u64, ListingError> {
        use redb::ReadableTableMetadata;
        self.store
            .database
            .with(|db| -> Result<u64, redb::Error> {
                let txn = db.begin_read()?;
                match txn.open_table(self.definition()) {
                    Ok(table) => Ok(table.len()?),
                    Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
                    Err(e) => Err(e.into()),
                }
            })
            .map_err(|e| ListingError::Storage(storage("reading the daemon's pin listing", e)))
    }

    /// Looks up CIDs in ascending byte order (the pinset's order); see [`ListingCursor`].
    pub(crate) fn cursor(&self) -> ListingCursor<'_> {
        self.cursor_after(None)
    }

    /// A cursor whose lookups start after `after` (in CID byte order): for a walk over part of
    /// the pinset. Several cursors may read one listing at once.
    pub(crate) fn cursor_after(&self, after: Option<&Cid>) -> ListingCursor<'_> {
        ListingCursor {
            listing: self,
            page: VecDeque::new(),
            after: after.map(|cid| cid.to_bytes()),
            exhausted: false,
        }
    }

    /// Listed CIDs no lookup asked for: pins the daemon holds that the pinset does not have,
    /// once every pin of the pinset was looked up.
    pub(crate) fn not_looked_up(&self) -> u64 {
        self.total - self.matched.load(Ordering::Relaxed)
    }
}

impl Drop for DaemonListing {
    fn drop(&mut self) {
        let dropped = self.store.database.with(|db| -> Result<(), redb::Error> {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::None)?;
            txn.delete_table(self.definition())?;
            txn.commit()?;
            Ok(())
        });
        if let Err(e) = dropped {
            tracing::debug!("dropping the daemon's pin listing {}: {e}", self.table);
        }
    }
}

/// Reads a listing page by page, for lookups in ascending CID byte order.
pub(crate) struct ListingCursor<'a> {
    listing: &'a DaemonListing,
    page: VecDeque<Vec<u8>>,
    /// The last key read into `page`.
    after: Option<Vec<u8>>,
    exhausted: bool,
}

impl ListingCursor<'_> {
    /// Whether the daemon listed `cid`. Lookups must come in ascending CID byte order: keys
    /// before `cid` are passed over for good.
    pub(crate) fn contains(&mut self, cid: &Cid) -> Result<bool, ClusterError> {
        let key = cid.to_bytes();
        loop {
            if self.page.is_empty() && !self.next_page()? {
                return Ok(false);
            }
            let front = self.page.front().expect("a page with keys");
            match front.as_slice().cmp(key.as_slice()) {
                std::cmp::Ordering::Less => {
                    self.page.pop_front();
                }
                std::cmp::Ordering::Equal => {
                    self.page.pop_front();
                    self.listing.matched.fetch_add(1, Ordering::Relaxed);
                    return Ok(true);
                }
                std::cmp::Ordering::Greater => return Ok(false),
            }
        }
    }

    /// Reads the next page; false at the end of the listing.
    fn next_page(&mut self) -> Result<bool, ClusterError> {
        if self.exhausted {
            return Ok(false);
        }
        let after = self.after.take();
        let page = self
            .listing
            .store
            .database
            .with(|db| -> Result<Vec<Vec<u8>>, redb::Error> {
                let txn = db.begin_read()?;
                let table = match txn.open_table(self.listing.definition()) {
                    Ok(table) => table,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                    Err(e) => return Err(e.into()),
                };
                let start = match &after {
                    Some(key) => Bound::Excluded(key.as_slice()),
                    None => Bound::Unbounded,
                };
                let mut keys = Vec::with_capacity(PAGE);
                for entry in table.range::<&[u8]>((start, Bound::Unbounded))?.take(PAGE) {
                    keys.push(entry?.0.value().to_vec());
                }
                Ok(keys)
            })
            .map_err(|e| storage("reading the daemon's pin listing", e))?;
        self.exhausted = page.len() < PAGE;
        self.after = page.last().cloned();
        self.page.extend(page);
        Ok(!self.page.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_ipfs::{FakeIpfs, IpfsConnector};
    use cluster_state::MemoryDisk;

    fn cid(i: u32) -> Cid {
        Cid::raw_sha256(format!("listing {i}").as_bytes())
    }

    #[cluster_rt::tokio::test]
    async fn lookups_in_byte_order_find_what_the_daemon_lists_across_pages() {
        let ipfs = FakeIpfs::new("listing".into());
        // More than two pages, every other CID on the daemon.
        let count = 2 * PAGE as u32 + 100;
        for i in (0..count).filter(|i| i % 2 == 0) {
            ipfs.pin(&cid(i), -1).await.unwrap();
        }
        let store = Arc::new(ListingStore::open(Arc::new(MemoryDisk), Path::new("listing.redb")).unwrap());
        let listing = store.list(&ipfs).await.unwrap();
        let mut sorted: Vec<(Vec<u8>, u32)> = (0..count).map(|i| (cid(i).to_bytes(), i)).collect();
        sorted.sort();
        let mut cursor = listing.cursor();
        let mut found = 0;
        // Every third CID of the pinset is asked about.
        for (n, (_, i)) in sorted.iter().enumerate().filter(|(n, _)| n % 3 != 1) {
            let listed = cursor.contains(&cid(*i)).unwrap();
            assert_eq!(listed, i % 2 == 0, "CID {i} (lookup {n})");
            found += u64::from(listed);
        }
        let asked_on_daemon = sorted
            .iter()
            .enumerate()
            .filter(|(n, (_, i))| n % 3 != 1 && i % 2 == 0)
            .count();
        assert_eq!(found, asked_on_daemon as u64);
        assert_eq!(listing.not_looked_up(), u64::from(count.div_ceil(2)) - found);
    }

    #[cluster_rt::tokio::test]
    async fn an_empty_daemon_lists_nothing_and_tables_go_with_their_listing() {
        let ipfs = FakeIpfs::new("empty".into());
        let store = Arc::new(ListingStore::open(Arc::new(MemoryDisk), Path::new("listing.redb")).unwrap());
        let listing = store.list(&ipfs).await.unwrap();
        assert!(!listing.cursor().contains(&cid(1)).unwrap());
        assert_eq!(listing.not_looked_up(), 0);
        ipfs.pin(&cid(1), -1).await.unwrap();
        let second = store.list(&ipfs).await.unwrap();
        drop(listing);
        drop(second);
        let tables = store
            .database
            .with(|db| -> Result<usize, redb::Error> { Ok(db.begin_read()?.list_tables()?.count()) })
            .unwrap();
        assert_eq!(tables, 0, "every listing's table was dropped");
    }
}
