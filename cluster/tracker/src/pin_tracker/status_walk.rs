//! Statuses of many pins: the whole pinset streamed (the tracker's operations, then a walk of
//! the pinset beside the daemon's listing), and ranges of it for a cluster-wide status, which
//! share one listing of the daemon.

use std::borrow::Borrow;

use super::*;

/// A daemon listing shared by consecutive [`PinTracker::status_range`] calls.
pub(super) struct SharedListing {
    listing: Arc<DaemonListing>,
    mark: u64,
    /// When the listing was complete.
    taken: cluster_rt::tokio::time::Instant,
    /// How long listing the daemon took.
    took: Duration,
    /// When a range last used it.
    used: cluster_rt::tokio::time::Instant,
}

/// A listing that took `took` to make serves a stream of ranges (each asked within the reuse
/// window of the one before) for up to this many times `took`: a daemon with millions of pins
/// takes tens of seconds to list, as long as the reuse window, and a cluster-wide status of
/// all of them would otherwise spend most of its time listing again.
const LISTING_SERVES_STREAM_FACTOR: u32 = 10;

impl SharedListing {
    /// Whether a range asked `now` may use this listing: it is younger than `reuse`, or the
    /// last range used it within `reuse` and it is younger than
    /// [`LISTING_SERVES_STREAM_FACTOR`] times the time it took.
    fn serves(&self, now: cluster_rt::tokio::time::Instant, reuse: Duration) -> bool {
        let age = now.duration_since(self.taken);
        age < reuse
            || (now.duration_since(self.used) < reuse && age < self.took.saturating_mul(LISTING_SERVES_STREAM_FACTOR))
    }
}

impl Shared {
    pub(super) fn spawn_status_all(
        self: &Arc<Self>,
        filter: TrackerStatusFilter,
    ) -> mpsc::Receiver<Result<PinInfo, ClusterError>> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let shared = self.clone();
        cluster_rt::spawn(async move {
            if filter_is_op_only(filter) {
                shared.stream_operations(filter, &tx).await;
            } else {
                shared.stream_walk(filter, &tx).await;
            }
        });
        rx
    }

    async fn stream_operations(&self, filter: TrackerStatusFilter, tx: &mpsc::Sender<Result<PinInfo, ClusterError>>) {
        let operations = lock(&self.table).snapshot();
        for (cid, op) in operations {
            if filter.matches(op.status()) && tx.send(Ok(self.op_info(cid, &op))).await.is_err() {
                return;
            }
        }
    }

    async fn stream_walk(
        self: &Arc<Self>,
        filter: TrackerStatusFilter,
        tx: &mpsc::Sender<Result<PinInfo, ClusterError>>,
    ) {
        let (listing, mark) = match self.daemon_listing().await {
            Ok(listing) => listing,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        let mut listed = listing.cursor();
        let mut reported_ops = HashSet::new();
        for (index, item) in PinIter::new(&*self.state, STATE_PAGE_SIZE).enumerate() {
            let pin = match item {
                Ok(pin) => pin,
                Err(e) => {
                    let _ = tx.send(Err(ClusterError::storage("reading the pinset", e))).await;
                    return;
                }
            };
            let info = match self.walked_status(&pin, &mut listed, mark).await {
                Ok((info, from_op)) => {
                    if from_op {
                        reported_ops.insert(pin.cid);
                    }
                    info
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            if filter.matches(info.short.status) && tx.send(Ok(info)).await.is_err() {
                return;
            }
            if index % STATE_PAGE_SIZE == STATE_PAGE_SIZE - 1 {
                // Let other tasks run between pages when every item was filtered out.
                cluster_rt::tokio::task::yield_now().await;
            }
        }
        // Operations for CIDs no longer in the state (unpins in flight or failed).
        let operations = lock(&self.table).snapshot();
        for (cid, op) in operations {
            if reported_ops.contains(&cid) || !filter.matches(op.status()) {
                continue;
            }
            if matches!(self.state.has(&cid), Ok(false)) && tx.send(Ok(self.op_info(cid, &op))).await.is_err() {
                return;
            }
        }
    }

    /// The status of `pin` met in a walk of the state: its operation's if one exists (then
    /// `true`), else from the daemon `listed` (taken at `mark`).
    async fn walked_status(
        self: &Arc<Self>,
        pin: &Pin,
        listed: &mut ListingCursor<'_>,
        mark: u64,
    ) -> Result<(PinInfo, bool), ClusterError> {
        Ok(match self.walked_short(pin, listed, mark).await? {
            (short, Some(op)) => (self.info(pin.cid, Some(&op.pin()), short), true),
            (short, None) => (self.info(pin.cid, Some(pin), short), false),
        })
    }

    /// As [`Shared::walked_status`], without the member's own fields nor the pin's: the status,
    /// and the operation it came from if any.
    async fn walked_short(
        self: &Arc<Self>,
        pin: &Pin,
        listed: &mut ListingCursor<'_>,
        mark: u64,
    ) -> Result<(PinInfoShort, Option<Operation>), ClusterError> {
        if let Some(op) = lock(&self.table).get(&pin.cid).cloned() {
            return Ok((op_short(&op), Some(op)));
        }
        let daemon = if needs_daemon(Some(pin), &self.peer) {
            let on_daemon = listed.contains(&pin.cid)?;
            self.daemon_view_of(pin, on_daemon, mark).await
        } else {
            DaemonOwned::NotAsked
        };
        let local = local_status(Some(pin), &self.peer, None, daemon.view());
        Ok((local_short(local), None))
    }

    /// The listing for status ranges: the shared one while it serves (see
    /// [`SharedListing::serves`]), else a new one.
    async fn range_listing(self: &Arc<Self>) -> Result<(Arc<DaemonListing>, u64), ClusterError> {
        let mut shared = self.range_listing.lock().await;
        let now = cluster_rt::now();
        if let Some(current) = shared.as_mut() {
            if current.serves(now, self.config.status_listing_reuse) {
                current.used = now;
                return Ok((current.listing.clone(), current.mark));
            }
        }
        // The old table goes before the new one is written.
        *shared = None;
        let (listing, mark) = self.daemon_listing().await?;
        let listing = Arc::new(listing);
        let taken = cluster_rt::now();
        *shared = Some(SharedListing {
            listing: listing.clone(),
            mark,
            taken,
            took: taken.duration_since(now),
            used: taken,
        });
        Ok((listing, mark))
    }

    /// The statuses of the range `(after, through]` as full [`PinInfo`]s (see
    /// [`Shared::status_range_short`]).
    pub(super) async fn status_range(
        self: &Arc<Self>,
        after: Option<Cid>,
        through: Option<Cid>,
        limit: usize,
    ) -> Result<(Vec<PinInfo>, Option<Cid>), ClusterError> {
        let (items, stopped_at) = self.range_items(after, through, limit).await?;
        let infos = items.into_iter().map(|item| {
            let pin = item.op.as_ref().map(|op| op.pin()).or(item.pin);
            self.info(item.cid, pin.as_ref(), item.short)
        });
        Ok((infos.collect(), stopped_at))
    }

    /// The statuses of the range `(after, through]`, each without the member's own fields
    /// (the same for all: [`Shared::add_member_fields`]) nor the pin's: what a cluster-wide
    /// status takes from each member, without building and dropping a whole `PinInfo` per pin.
    pub(super) async fn status_range_short(
        self: &Arc<Self>,
        after: Option<Cid>,
        through: Option<Cid>,
        limit: usize,
    ) -> Result<(Vec<(Cid, PinInfoShort)>, Option<Cid>), ClusterError> {
        let (items, stopped_at) = self.range_items(after, through, limit).await?;
        Ok((
            items.into_iter().map(|item| (item.cid, item.short)).collect(),
            stopped_at,
        ))
    }

    /// As [`Shared::status_range_short`] for a range whose pins the caller has read from the
    /// state: `pins` are all of the state's pins in `(after, through]`, in CID byte order.
    pub(super) async fn status_of_pins_short(
        self: &Arc<Self>,
        after: Option<Cid>,
        through: Option<Cid>,
        pins: &[Pin],
    ) -> Result<Vec<(Cid, PinInfoShort)>, ClusterError> {
        let upper_key = through.map(|cid| cid.to_bytes());
        let items = self.walk_range(after, upper_key, pins.iter().collect()).await?;
        Ok(items.into_iter().map(|item| (item.cid, item.short)).collect())
    }

    async fn range_items(
        self: &Arc<Self>,
        after: Option<Cid>,
        through: Option<Cid>,
        limit: usize,
    ) -> Result<(Vec<RangeItem<Pin>>, Option<Cid>), ClusterError> {
        let limit = limit.clamp(1, STATUS_RANGE_MAX);
        let storage = |e| ClusterError::storage("reading the pinset", e);
        let after_key = after.map(|cid| cid.to_bytes());
        let through_key = through.map(|cid| cid.to_bytes());
        if let (Some(after), Some(through)) = (&after_key, &through_key) {
            if after >= through {
                return Ok((Vec::new(), None));
            }
        }
        let mut pins = self.state.list_page(after.as_ref(), limit).map_err(storage)?;
        let read = pins.len();
        if let Some(through) = &through_key {
            // In CID byte order: only the tail can lie past the range.
            if pins.last().is_some_and(|pin| pin.cid.to_bytes() > *through) {
                let inside = pins.partition_point(|pin| pin.cid.to_bytes() <= *through);
                pins.truncate(inside);
            }
        }
        // Every pin read lies in the range and the page is full: the range goes on after it,
        // unless the last pin is the range's upper bound (a cluster-wide status asks for ranges
        // that end on the last pin of its own page).
        let stopped_at = match pins.last() {
            Some(last) if read == limit && pins.len() == limit && through != Some(last.cid) => Some(last.cid),
            _ => None,
        };
        let upper_key = stopped_at.map(|cid| cid.to_bytes()).or(through_key);
        Ok((self.walk_range(after, upper_key, pins).await?, stopped_at))
    }

    /// The statuses of `pins`, the state's pins in the range from `after` (excluded) to the key
    /// `upper_key` (included; `None`: to the end), with the operations in that range for CIDs
    /// the state lacks, in CID byte order.
    async fn walk_range<P: Borrow<Pin>>(
        self: &Arc<Self>,
        after: Option<Cid>,
        upper_key: Option<Vec<u8>>,
        pins: Vec<P>,
    ) -> Result<Vec<RangeItem<P>>, ClusterError> {
        let storage = |e| ClusterError::storage("reading the pinset", e);
        let after_key = after.map(|cid| cid.to_bytes());
        let in_range = |key: &[u8]| {
            after_key.as_ref().is_none_or(|after| key > after.as_slice())
                && upper_key.as_ref().is_none_or(|upper| key <= upper.as_slice())
        };
        // Operations in the range for CIDs the state does not have (unpins in flight or failed).
        // Usually there are none: the set of the page's CIDs is built only when there are.
        let candidates = lock(&self.table).matching(|cid| in_range(&cid.to_bytes()));
        let in_state: HashSet<Cid> = if candidates.is_empty() {
            HashSet::new()
        } else {
            pins.iter().map(|pin| pin.borrow().cid).collect()
        };
        let mut others = Vec::with_capacity(candidates.len());
        for (cid, op) in candidates {
            if !in_state.contains(&cid) && !self.state.has(&cid).map_err(storage)? {
                let item = RangeItem {
                    cid,
                    short: op_short(&op),
                    pin: None,
                    op: Some(op),
                };
                others.push((cid.to_bytes(), item));
            }
        }
        others.sort_by(|a, b| a.0.cmp(&b.0));

        let mut items = Vec::with_capacity(pins.len() + others.len());
        let mut others = others.into_iter().peekable();
        if !pins.is_empty() {
            let (listing, mark) = self.range_listing().await?;
            let mut listed = listing.cursor_after(after.as_ref());
            for pin in pins {
                let cid = pin.borrow().cid;
                let (short, op) = self.walked_short(pin.borrow(), &mut listed, mark).await?;
                // Both lists are sorted and disjoint: merged in CID byte order.
                if others.peek().is_some() {
                    let key = cid.to_bytes();
                    while let Some((_, other)) = others.next_if(|(other_key, _)| *other_key < key) {
                        items.push(other);
                    }
                }
                items.push(RangeItem {
                    cid,
                    short,
                    pin: Some(pin),
                    op,
                });
            }
        }
        items.extend(others.map(|(_, item)| item));
        Ok(items)
    }
}

/// One pin of a status range: its CID, its status without the member's fields, the state's pin
/// (none for a CID the state lacks) and the operation the status came from, if any (whose pin
/// a full status shows; a short one needs neither). `P`: the pin, owned or borrowed.
struct RangeItem<P> {
    cid: Cid,
    short: PinInfoShort,
    pin: Option<P>,
    op: Option<Operation>,
}
