//! [`DaemonListing`]: the IPFS daemon's recursive pins, listed once and then looked up in CID
//! byte order, the order the pinset is walked in. A listing of up to [`IN_MEMORY_MAX`] CIDs is
//! kept in memory, sorted in one buffer (about 45 bytes a CID); a longer one goes to a scratch
//! table on disk, so that a state sync or a status walk over a daemon with tens of millions of
//! pins holds one page of them in memory instead of all of them.
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
/// The most CIDs a listing keeps in memory (about 45 MB at most): past it, the listing goes to
/// a scratch table. Written in a table, a million CIDs take a second longer to list, and their
/// lookups cost a read transaction a page.
pub(crate) const IN_MEMORY_MAX: usize = 1 << 20;
/// The most bytes of CIDs a listing keeps in memory: CIDs with long multihashes reach it
/// before [`IN_MEMORY_MAX`].
const IN_MEMORY_BYTES_MAX: usize = 64 << 20;
/// The scratch database's page cache.
const CACHE_BYTES: usize = 8 << 20;

/// Where listings are written: one scratch database per member.
pub struct ListingStore {
    database: ReopeningDatabase,
    next_table: AtomicU64,
    /// [`IN_MEMORY_MAX`], lower in tests.
    in_memory_max: usize,
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
            in_memory_max: IN_MEMORY_MAX,
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

    /// The store with listings of more than `max` CIDs in tables (tests cross the threshold
    /// with few CIDs).
    #[cfg(test)]
    pub(crate) fn with_in_memory_max(mut self, max: usize) -> ListingStore {
        self.in_memory_max = max;
        self
    }

    /// Lists the daemon's recursive pins: in memory, or in a new table once they are more than
    /// [`IN_MEMORY_MAX`].
    pub(crate) async fn list(self: &Arc<Self>, ipfs: &dyn IpfsConnector) -> Result<DaemonListing, ListingError> {
        let mut listing = DaemonListing {
            store: self.clone(),
            keys: Keys::Memory(SortedKeys::default()),
            total: 0,
            matched: AtomicU64::new(0),
        };
        let mut held = SortedKeys::default();
        let mut page = Vec::with_capacity(PAGE);
        let mut stream = ipfs.pin_ls().await.map_err(ListingError::Ipfs)?;
        // Bounded: the daemon's listing is finite and the connector puts a deadline on it.
        while let Some(item) = stream.next().await {
            let cid = item.map_err(ListingError::Ipfs)?;
            if let Keys::Memory(_) = listing.keys {
                if held.len() < self.in_memory_max && held.bytes.len() < IN_MEMORY_BYTES_MAX {
                    held.push(&cid.to_bytes());
                    continue;
                }
                // Too many for memory: what is held goes to a table, and so does the rest.
                let table = format!("listing-{}", self.next_table.fetch_add(1, Ordering::Relaxed));
                listing.keys = Keys::Table(table);
                for key in std::mem::take(&mut held).unsorted() {
                    page.push(key.to_vec());
                    if page.len() == PAGE {
                        listing.write(&page)?;
                        page.clear();
                    }
                }
            }
            page.push(cid.to_bytes());
            if page.len() == PAGE {
                listing.write(&page)?;
                page.clear();
            }
        }
        if let Keys::Table(_) = listing.keys {
            listing.write(&page)?;
            listing.total = listing.len()?;
        } else {
            held.sort();
            listing.total = held.order.len() as u64;
            listing.keys = Keys::Memory(held);
        }
        Ok(listing)
    }
}

/// CIDs (as bytes) in one buffer, and their order: listed as they come, then sorted.
#[derive(Default)]
struct SortedKeys {
    /// The keys, one after the other, in the order they came.
    bytes: Vec<u8>,
    /// Where each key ends in `bytes`.
    ends: Vec<u32>,
    /// Key numbers in key order, without duplicates (after [`SortedKeys::sort`]).
    order: Vec<u32>,
}

impl SortedKeys {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn push(&mut self, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len() as u32);
    }

    fn key(&self, number: u32) -> &[u8] {
        let number = number as usize;
        let start = if number == 0 { 0 } else { self.ends[number - 1] as usize };
        &self.bytes[start..self.ends[number] as usize]
    }

    /// The keys in the order they came.
    fn unsorted(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.ends.len() as u32).map(|number| self.key(number))
    }

    fn sort(&mut self) {
        let mut order: Vec<u32> = (0..self.ends.len() as u32).collect();
        order.sort_unstable_by(|a, b| self.key(*a).cmp(self.key(*b)));
        order.dedup_by(|a, b| self.key(*a) == self.key(*b));
        self.order = order;
    }

    /// The `n`th key in key order.
    fn nth(&self, n: usize) -> Option<&[u8]> {
        self.order.get(n).map(|number| self.key(*number))
    }

    /// How many keys are at most `key`.
    fn rank_through(&self, key: &[u8]) -> usize {
        self.order.partition_point(|number| self.key(*number) <= key)
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

/// One listing of the daemon's recursive pins; its table, if any, is dropped with it.
pub(crate) struct DaemonListing {
    store: Arc<ListingStore>,
    keys: Keys,
    /// CIDs listed.
    total: u64,
    /// Listed CIDs a lookup found.
    matched: AtomicU64,
}

/// Where a listing's CIDs are.
enum Keys {
    Memory(SortedKeys),
    /// The name of its table in the scratch database.
    Table(String),
}

impl DaemonListing {
    /// Its table; an in-memory listing has none (its name is then one no table has).
    fn definition(&self) -> TableDefinition<'_, &'static [u8], ()> {
        match &self.keys {
            Keys::Table(name) => TableDefinition::new(name),
            Keys::Memory(_) => TableDefinition::new("in memory"),
        }
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
        let after = after.map(|cid| cid.to_bytes());
        let at = match &self.keys {
            Keys::Memory(keys) => At::Memory {
                next: after.as_ref().map_or(0, |after| keys.rank_through(after)),
            },
            Keys::Table(_) => At::Table {
                page: VecDeque::new(),
                after,
                exhausted: false,
            },
        };
        ListingCursor { listing: self, at }
    }

    /// Listed CIDs no lookup asked for: pins the daemon holds that the pinset does not have,
    /// once every pin of the pinset was looked up.
    pub(crate) fn not_looked_up(&self) -> u64 {
        self.total - self.matched.load(Ordering::Relaxed)
    }
}

impl Drop for DaemonListing {
    fn drop(&mut self) {
        let Keys::Table(table) = &self.keys else { return };
        let dropped = self.store.database.with(|db| -> Result<(), redb::Error> {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::None)?;
            txn.delete_table(self.definition())?;
            txn.commit()?;
            Ok(())
        });
        if let Err(e) = dropped {
            tracing::debug!("dropping the daemon's pin listing {table}: {e}");
        }
    }
}

/// Looks a listing up in ascending CID byte order: in memory, or reading its table page by page.
pub(crate) struct ListingCursor<'a> {
    listing: &'a DaemonListing,
    at: At,
}

/// Where a cursor is.
enum At {
    /// The position of the next key in key order.
    Memory { next: usize },
    Table {
        page: VecDeque<Vec<u8>>,
        /// The last key read into `page`.
        after: Option<Vec<u8>>,
        exhausted: bool,
    },
}

impl ListingCursor<'_> {
    /// Whether the daemon listed `cid`. Lookups must come in ascending CID byte order: keys
    /// before `cid` are passed over for good.
    pub(crate) fn contains(&mut self, cid: &Cid) -> Result<bool, ClusterError> {
        let key = cid.to_bytes();
        let found = match (&mut self.at, &self.listing.keys) {
            (At::Memory { next }, Keys::Memory(keys)) => loop {
                match keys.nth(*next).map(|listed| listed.cmp(key.as_slice())) {
                    Some(std::cmp::Ordering::Less) => *next += 1,
                    Some(std::cmp::Ordering::Equal) => {
                        *next += 1;
                        break true;
                    }
                    Some(std::cmp::Ordering::Greater) | None => break false,
                }
            },
            _ => self.contains_in_table(&key)?,
        };
        if found {
            self.listing.matched.fetch_add(1, Ordering::Relaxed);
        }
        Ok(found)
    }

    fn contains_in_table(&mut self, key: &[u8]) -> Result<bool, ClusterError> {
        loop {
            if self.next_page_if_empty()? {
                return Ok(false);
            }
            let At::Table { page, .. } = &mut self.at else {
                return Ok(false);
            };
            let front = page.front().expect("a page with keys");
            match front.as_slice().cmp(key) {
                std::cmp::Ordering::Less => {
                    page.pop_front();
                }
                std::cmp::Ordering::Equal => {
                    page.pop_front();
                    return Ok(true);
                }
                std::cmp::Ordering::Greater => return Ok(false),
            }
        }
    }

    /// Reads the next page of the table when the current one is used up; true at the end of
    /// the listing.
    fn next_page_if_empty(&mut self) -> Result<bool, ClusterError> {
        let At::Table { page, after, exhausted } = &mut self.at else {
            return Ok(true);
        };
        if !page.is_empty() {
            return Ok(false);
        }
        if *exhausted {
            return Ok(true);
        }
        let start_after = after.take();
        let read = self
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
                let start = match &start_after {
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
        *exhausted = read.len() < PAGE;
        *after = read.last().cloned();
        page.extend(read);
        Ok(page.is_empty())
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

    /// Listings in memory, in a table, and moved to a table halfway.
    fn stores() -> Vec<(&'static str, Arc<ListingStore>)> {
        [
            ("in memory", IN_MEMORY_MAX),
            ("in a table", 0),
            ("moved to a table", PAGE + 7),
        ]
        .into_iter()
        .map(|(name, max)| {
            let store = ListingStore::open(Arc::new(MemoryDisk), Path::new("listing.redb"))
                .unwrap()
                .with_in_memory_max(max);
            (name, Arc::new(store))
        })
        .collect()
    }

    #[cluster_rt::tokio::test]
    async fn lookups_in_byte_order_find_what_the_daemon_lists_across_pages() {
        let ipfs = FakeIpfs::new("listing".into());
        // More than two pages, every other CID on the daemon.
        let count = 2 * PAGE as u32 + 100;
        for i in (0..count).filter(|i| i % 2 == 0) {
            ipfs.pin(&cid(i), -1).await.unwrap();
        }
        for (name, store) in stores() {
            lookups_find_what_the_daemon_lists(name, &store, &ipfs, count).await;
        }
    }

    async fn lookups_find_what_the_daemon_lists(name: &str, store: &Arc<ListingStore>, ipfs: &FakeIpfs, count: u32) {
        let listing = store.list(ipfs).await.unwrap();
        assert_eq!(listing.total, u64::from(count.div_ceil(2)), "{name}");
        let mut sorted: Vec<(Vec<u8>, u32)> = (0..count).map(|i| (cid(i).to_bytes(), i)).collect();
        sorted.sort();
        let mut cursor = listing.cursor();
        let mut found = 0;
        // Every third CID of the pinset is asked about.
        for (n, (_, i)) in sorted.iter().enumerate().filter(|(n, _)| n % 3 != 1) {
            let listed = cursor.contains(&cid(*i)).unwrap();
            assert_eq!(listed, i % 2 == 0, "{name}: CID {i} (lookup {n})");
            found += u64::from(listed);
        }
        let asked_on_daemon = sorted
            .iter()
            .enumerate()
            .filter(|(n, (_, i))| n % 3 != 1 && i % 2 == 0)
            .count();
        assert_eq!(found, asked_on_daemon as u64, "{name}");
        assert_eq!(listing.not_looked_up(), u64::from(count.div_ceil(2)) - found, "{name}");
        // A cursor that starts after a listed key, and one after an unlisted one.
        for start in [10, 11] {
            let after = sorted[start].0.clone();
            let mut cursor = listing.cursor_after(Some(&Cid::from_bytes(&after).unwrap()));
            let rest: Vec<u32> = sorted[start + 1..].iter().map(|(_, i)| *i).collect();
            let listed: Vec<u32> = rest
                .iter()
                .copied()
                .filter(|i| cursor.contains(&cid(*i)).unwrap())
                .collect();
            let expected: Vec<u32> = rest.into_iter().filter(|i| i % 2 == 0).collect();
            assert_eq!(listed, expected, "{name}: after lookup {start}");
        }
    }

    #[cluster_rt::tokio::test]
    async fn an_empty_daemon_lists_nothing_and_tables_go_with_their_listing() {
        for (name, store) in stores() {
            empty_then_one(name, &store).await;
        }
    }

    async fn empty_then_one(name: &str, store: &Arc<ListingStore>) {
        let ipfs = FakeIpfs::new("empty".into());
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
        assert_eq!(tables, 0, "{name}: every listing's table was dropped");
    }
}
