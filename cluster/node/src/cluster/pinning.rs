//! Pinning: checking options, allocating members, committing pins and unpins, and repairing
//! allocations of departed members or of pins short of their minimum.

use super::*;

impl Cluster {
    /// On the leader: repairs allocations to peers that left the cluster, and of pins short of
    /// their minimum replication, when it becomes the leader, when the membership changes, and
    /// every `state_sync_interval`. `peers rm` moves pins away before it removes the member,
    /// but a pin allocated meanwhile by a member with an older member list (or a leader that
    /// crashed in between) would otherwise keep a departed member; and a removal while too few
    /// members were healthy leaves pins short until candidates come back.
    pub(super) fn spawn_allocation_repair(self: &Arc<Self>) {
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        cluster_rt::spawn(async move {
            let mut was_leader = false;
            let mut last_members = Vec::new();
            let mut last_repair = cluster_rt::now();
            loop {
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(MEMBERSHIP_WATCH) => {}
                }
                let is_leader = cluster.consensus.is_leader();
                let members = cluster.member_peers();
                let due = cluster_rt::now() - last_repair >= cluster.config.cluster.state_sync_interval;
                if is_leader && (!was_leader || members != last_members || due) {
                    last_repair = cluster_rt::now();
                    match cluster.repair_allocations(None).await {
                        Ok(0) => {}
                        Ok(moved) => {
                            tracing::info!("re-allocated {moved} pins of departed members or short of replicas")
                        }
                        Err(e) => tracing::warn!("re-allocating pins of departed members or short of replicas: {e}"),
                    }
                }
                was_leader = is_leader;
                last_members = members;
            }
        });
    }

    /// Gives new allocations to every pin allocated to a peer outside the membership (or to
    /// `leaving`, about to be removed) or short of its minimum replication (when candidates
    /// allow); returns how many pins changed.
    pub(super) async fn repair_allocations(&self, leaving: Option<&PeerId>) -> Result<u64, ClusterError> {
        let mut members = self.member_peers();
        members.retain(|p| Some(p) != leaving);
        let mut after: Option<Cid> = None;
        let mut moved = 0u64;
        loop {
            let page = self
                .state
                .list_page(after.as_ref(), STATE_PAGE)
                .map_err(|e| ClusterError::storage("reading the pinset", e))?;
            let Some(last) = page.last().map(|p| p.cid) else { break };
            for existing in page {
                let Some(need) = cluster_allocator::repair_need(&existing, &members) else {
                    continue;
                };
                let mut current = existing.clone();
                current.allocations = cluster_allocator::surviving_allocations(&existing, &members);
                let mut pin = existing.clone();
                if let Err(e) = self.allocate(&mut pin, &[], Some(&current), leaving) {
                    let max = existing.options.replication_factor_max;
                    match cluster_allocator::fallback_allocations(need, current.allocations, max) {
                        Some(surviving) => {
                            tracing::warn!(cid = %existing.cid, "re-allocating away from departed members: {e}");
                            pin.allocations = surviving;
                        }
                        None => {
                            tracing::debug!(cid = %existing.cid, "under-replicated pin stays so: {e}");
                            continue;
                        }
                    }
                }
                if pin.allocations == existing.allocations {
                    continue;
                }
                if self.consensus.log_reallocation(pin, existing).await? {
                    moved += 1;
                }
            }
            after = Some(last);
        }
        Ok(moved)
    }

    /// The CID an IPFS path names: `/ipfs/<cid>` directly, anything else (`/ipns/<name>`,
    /// sub-paths) through the daemon's `resolve`, as Go does.
    pub async fn resolve_path(&self, path: &str) -> Result<Cid, ClusterError> {
        if let Some(cid) = direct_cid_of_path(path)? {
            return Ok(cid);
        }
        self.ipfs
            .resolve(path)
            .await
            .map_err(|e| ClusterError::Ipfs(format!("error resolving {path}: {e}")))
    }

    /// Checks the options and fills the defaults (Go `setupPin`).
    pub(super) fn prepare_pin(
        &self,
        cid: Cid,
        mut options: PinOptions,
        existing: Option<&Pin>,
    ) -> Result<Pin, ClusterError> {
        if options.replication_factor_min == 0 && options.replication_factor_max == 0 {
            options.replication_factor_min = self.config.cluster.replication_factor_min;
            options.replication_factor_max = self.config.cluster.replication_factor_max;
        } else if options.replication_factor_min == 0 {
            options.replication_factor_min = options.replication_factor_max;
        } else if options.replication_factor_max == 0 {
            options.replication_factor_max = options.replication_factor_min;
        }
        validate_replication(
            options.replication_factor_min as i64,
            options.replication_factor_max as i64,
        )
        .map_err(ClusterError::InvalidArgument)?;
        let now = Timestamp::now();
        if !options.expire_at.is_zero() && options.expire_at <= now {
            return Err(ClusterError::InvalidArgument(format!(
                "pin expiration time {} is in the past",
                options.expire_at
            )));
        }
        let mut pin = Pin::new(cid, options);
        // Go never stores user allocations: they only steer this allocation.
        pin.options.user_allocations = None;
        if let Some(existing) = existing {
            if existing.pin_type != PinType::Data {
                return Err(ClusterError::InvalidArgument(format!(
                    "cannot repin {cid}: it is already pinned with type {:?}",
                    existing.pin_type
                )));
            }
            if existing.max_depth == -1 && pin.max_depth == 0 {
                return Err(ClusterError::InvalidArgument(format!(
                    "cannot repin {cid} as direct: it is pinned recursively; unpin it first"
                )));
            }
        }
        pin.timestamp = now;
        Ok(pin)
    }

    /// Chooses the members that hold `pin` (Go `allocate`): everywhere for -1, else current valid
    /// allocations first, then the user's, then the members with most free space (from the
    /// freespace metrics members publish), up to the maximum. Members whose metric expired or
    /// says the repository is full are left out; members that have not reported yet come last.
    pub(super) fn allocate(
        &self,
        pin: &mut Pin,
        user_allocations: &[PeerId],
        existing: Option<&Pin>,
        excluded: Option<&PeerId>,
    ) -> Result<(), ClusterError> {
        if pin.is_everywhere() {
            pin.allocations.clear();
            return Ok(());
        }
        let mut peers = self.member_peers();
        peers.retain(|p| Some(p) != excluded);
        let candidates = {
            let metrics = self.metrics.lock().expect("metrics lock");
            cluster_allocator::candidates(
                &peers,
                &pin.cid,
                |peer| metrics.latest(FREESPACE, peer),
                Timestamp::now(),
            )
        };
        let current = existing.map(|p| p.allocations.as_slice()).unwrap_or_default();
        let request = cluster_allocator::Request {
            min: pin.options.replication_factor_min as usize,
            max: pin.options.replication_factor_max as usize,
            current,
            priority: user_allocations,
        };
        let chosen = cluster_allocator::allocate(&candidates, &request).map_err(ClusterError::from)?;
        pin.allocations = chosen;
        Ok(())
    }

    /// Pins `cid` cluster-wide and returns the pin as committed.
    pub async fn pin(&self, cid: Cid, options: PinOptions) -> Result<Pin, ClusterError> {
        self.refuse_if_removed()?;
        let user_allocations = options.user_allocations.clone().unwrap_or_default();
        let existing = self
            .state
            .get(&cid)
            .map_err(|e| ClusterError::storage("reading the pinset", e))?;
        // A pin update starts from the allocations of the pin it replaces.
        let allocation_base = match &options.pin_update {
            Some(from) if *from != cid && existing.is_none() => self
                .state
                .get(from)
                .map_err(|e| ClusterError::storage("reading the pinset", e))?,
            _ => existing.clone(),
        };
        let mut pin = self.prepare_pin(cid, options, existing.as_ref())?;
        self.allocate(&mut pin, &user_allocations, allocation_base.as_ref(), None)?;
        if self.bug_ack_before_commit.load(std::sync::atomic::Ordering::Relaxed) {
            // The deliberate bug (see `inject_bug_ack_before_commit`): answer first, commit later.
            let consensus = self.consensus.clone();
            let committing = pin.clone();
            cluster_rt::spawn(async move {
                let _ = consensus.log_pin(committing).await;
            });
            return Ok(pin);
        }
        self.consensus.log_pin(pin).await
    }

    /// Unpins `cid` cluster-wide and returns the removed pin.
    pub async fn unpin(&self, cid: Cid) -> Result<Pin, ClusterError> {
        self.refuse_if_removed()?;
        let existing = self
            .state
            .get(&cid)
            .map_err(|e| ClusterError::storage("reading the pinset", e))?;
        match existing {
            None => Err(ClusterError::NotFound),
            Some(pin) if pin.pin_type != PinType::Data => Err(ClusterError::InvalidArgument(format!(
                "cannot unpin {cid} directly: it is a {:?} pin of a sharded upload",
                pin.pin_type
            ))),
            Some(_) => self.consensus.log_unpin(cid).await,
        }
    }
}

/// The CID a path names directly: `Some` for `/ipfs/<cid>` or `/ipld/<cid>` (Go resolves these
/// without asking the daemon), `None` when the daemon must resolve it (`/ipns/...`, sub-paths).
pub(super) fn direct_cid_of_path(path: &str) -> Result<Option<Cid>, ClusterError> {
    let trimmed = path.trim_end_matches('/');
    let mut parts = trimmed.trim_start_matches('/').split('/');
    let namespace = parts.next().unwrap_or_default();
    let first = parts.next().unwrap_or_default();
    let deeper = parts.next().is_some();
    match namespace {
        "ipns" if !first.is_empty() => Ok(None),
        "ipfs" | "ipld" => {
            let cid = first
                .parse::<Cid>()
                .map_err(|e| ClusterError::InvalidArgument(format!("error decoding Cid: {e}")))?;
            Ok((!deeper).then_some(cid))
        }
        _ => Err(ClusterError::InvalidArgument(format!(
            "error parsing path: {path:?}: not an /ipfs/, /ipns/ or /ipld/ path"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_cid_paths_need_no_daemon() {
        let cid = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9";
        assert_eq!(
            direct_cid_of_path(&format!("/ipfs/{cid}"))
                .unwrap()
                .unwrap()
                .to_string(),
            cid
        );
        assert_eq!(direct_cid_of_path(&format!("/ipfs/{cid}/a")).unwrap(), None);
        assert_eq!(direct_cid_of_path("/ipns/example.com").unwrap(), None);
        assert!(matches!(
            direct_cid_of_path("/ipfs/nope"),
            Err(ClusterError::InvalidArgument(_))
        ));
        assert!(matches!(
            direct_cid_of_path("/swarm/x"),
            Err(ClusterError::InvalidArgument(_))
        ));
    }
}
