//! The state sync: walks the pinset beside a listing of the daemon's pins, queues what the
//! daemon lacks, and unpins what tombstones name or what the pinset allocates elsewhere.

use super::*;

/// What one [`PinTracker::sync_state`] found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Pins in the state.
    pub pins_checked: u64,
    /// Of those, pins this member must hold.
    pub pins_allocated: u64,
    /// Allocated pins skipped because an operation (queued, running or failed) exists for them.
    pub with_operation: u64,
    /// Allocated pins missing from the daemon for which a pin operation was queued.
    pub pins_queued: u64,
    /// Allocated pins missing from the daemon left for the next sync: the pin queue was full.
    pub queue_full: u64,
    /// Direct pins whose daemon lookup failed (left alone until the next sync).
    pub daemon_errors: u64,
    /// Recursive daemon pins that are not in the state (left alone: they may be the operator's).
    pub daemon_only: u64,
    /// Unpins queued for tombstones (unpins committed but maybe never done on the daemon).
    pub unpins_queued: u64,
    /// Unpins queued for pins the daemon holds that the state allocates elsewhere (their
    /// allocations moved while no tombstone said so here: a Raft snapshot carries none).
    pub moved_unpins_queued: u64,
}

impl Shared {
    pub(super) async fn sync_state(self: &Arc<Self>) -> Result<SyncReport, ClusterError> {
        let (listing, mark) = self.daemon_listing().await?;
        let mut listed = listing.cursor();
        let mut report = SyncReport::default();
        for item in PinIter::new(&*self.state, STATE_PAGE_SIZE) {
            let pin = item.map_err(|e| ClusterError::storage("reading the pinset", e))?;
            report.pins_checked += 1;
            // Every pin is looked up, in order, so that what is left counts the daemon's own.
            let on_daemon = listed.contains(&pin.cid)?;
            if report.pins_checked % STATE_PAGE_SIZE as u64 == 0 {
                cluster_rt::tokio::task::yield_now().await;
            }
            if !wants_pinned(Some(&pin), &self.peer) {
                if on_daemon {
                    self.unpin_moved(pin, &mut report)?;
                }
                continue;
            }
            report.pins_allocated += 1;
            if lock(&self.table).get(&pin.cid).is_some() {
                report.with_operation += 1;
                continue;
            }
            if on_daemon {
                continue;
            }
            match self.daemon_view_of(&pin, false, mark).await {
                DaemonOwned::Has(pin_type) if crate::decision::is_pinned_on_daemon(pin.max_depth, pin_type) => continue,
                DaemonOwned::Failed(error) => {
                    tracing::debug!(cid = %pin.cid, "state sync: daemon lookup failed: {error}");
                    report.daemon_errors += 1;
                    continue;
                }
                _ => {}
            }
            let cid = pin.cid;
            let outcome = {
                let mut table = lock(&self.table);
                // Checked again under the lock: an operation may have started since.
                if table.get(&cid).is_some() {
                    report.with_operation += 1;
                    continue;
                }
                // Left for the next sync rather than recorded in error: a member that must pin
                // millions would hold an operation for each.
                if !table.has_room(OpKind::Pin) {
                    report.queue_full += 1;
                    continue;
                }
                table.enqueue(OpKind::Pin, pin, Timestamp::now(), &self.config)
            };
            self.after_enqueue(OpKind::Pin, &cid, outcome);
            match outcome {
                Enqueued::Queued { .. } => report.pins_queued += 1,
                Enqueued::QueueFull => report.queue_full += 1,
                Enqueued::AlreadyOngoing => report.with_operation += 1,
            }
        }
        drop(listed);
        report.daemon_only = listing.not_looked_up();
        drop(listing);
        self.sync_tombstones(&mut report).await?;
        if report.pins_queued > 0 {
            tracing::info!(
                "state sync: re-queued {} pins missing from the daemon",
                report.pins_queued
            );
        }
        if report.moved_unpins_queued > 0 {
            tracing::info!(
                "state sync: queued the unpin of {} daemon pins now allocated to other members",
                report.moved_unpins_queued
            );
        }
        if report.queue_full > 0 {
            tracing::info!(
                "state sync: the pin queue is full (max_pin_queue_size); {} more pins missing from the daemon wait for the next state sync",
                report.queue_full
            );
        }
        Ok(report)
    }
}

impl Shared {
    /// Queues the unpin of `pin`, which the daemon holds but the state allocates elsewhere,
    /// unless an operation exists for it or the state, read again, wants it here now.
    fn unpin_moved(&self, pin: Pin, report: &mut SyncReport) -> Result<(), ClusterError> {
        let cid = pin.cid;
        if lock(&self.table).get(&cid).is_some() {
            return Ok(());
        }
        // Read again: an apply may have allocated it here since the page was read, and queued
        // its pin, which this unpin would cancel.
        let now = self
            .state
            .get(&cid)
            .map_err(|e| ClusterError::storage("reading the pinset", e))?;
        if now.as_ref().is_some_and(|p| wants_pinned(Some(p), &self.peer)) {
            return Ok(());
        }
        let outcome = {
            let mut table = lock(&self.table);
            if table.get(&cid).is_some() {
                return Ok(());
            }
            table.enqueue(OpKind::Unpin, now.unwrap_or(pin), Timestamp::now(), &self.config)
        };
        self.after_enqueue(OpKind::Unpin, &cid, outcome);
        if matches!(outcome, Enqueued::Queued { .. }) {
            report.moved_unpins_queued += 1;
        }
        Ok(())
    }

    /// Finishes unpins that the state machine recorded but that may never have reached the
    /// daemon (a crash, a daemon that was down): every tombstone whose CID is not allocated here
    /// any more gets an unpin queued; tombstones of CIDs allocated here again are dropped.
    async fn sync_tombstones(self: &Arc<Self>, report: &mut SyncReport) -> Result<(), ClusterError> {
        let read_error = |e: cluster_state::StateError| ClusterError::storage("reading tombstones", e);
        let mut after: Option<Cid> = None;
        loop {
            let page = self
                .state
                .tombstones(after.as_ref(), STATE_PAGE_SIZE)
                .map_err(read_error)?;
            let Some(last) = page.last().copied() else {
                return Ok(());
            };
            for cid in page {
                let pin = self.state.get(&cid).map_err(read_error)?;
                if pin.as_ref().is_some_and(|p| wants_pinned(Some(p), &self.peer)) {
                    if let Err(e) = self.state.commit(&[StateOp::ClearTombstone(cid)], None) {
                        tracing::warn!(%cid, "clearing a tombstone failed: {e}");
                    }
                    continue;
                }
                if lock(&self.table).get(&cid).is_some() {
                    continue;
                }
                let outcome = lock(&self.table).enqueue(OpKind::Unpin, bare_pin(cid), Timestamp::now(), &self.config);
                self.after_enqueue(OpKind::Unpin, &cid, outcome);
                if matches!(outcome, Enqueued::Queued { .. }) {
                    report.unpins_queued += 1;
                }
            }
            after = Some(last);
            cluster_rt::tokio::task::yield_now().await;
        }
    }
}
