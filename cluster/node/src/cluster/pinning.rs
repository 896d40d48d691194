//! Pinning: checking options, allocating members, committing pins and unpins, and repairing
//! allocations of departed members or of pins short of their minimum.

use super::*;

impl Cluster {
    /// On the leader: repairs allocations to peers that left the cluster, to members down past
    /// the repinning grace, and of pins short of their minimum replication, when it becomes the
    /// leader, when the membership or the set of down members changes, and every
    /// `state_sync_interval` (which also removes expired pins). `peers rm` moves pins away
    /// before it removes the member, but a pin allocated meanwhile by a member with an older
    /// member list (or a leader that crashed in between) would otherwise keep a departed member;
    /// and a removal while too few members were healthy leaves pins short until candidates
    /// come back.
    pub(super) fn spawn_allocation_repair(self: &Arc<Self>) {
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        let listening_since = Timestamp::now();
        cluster_rt::spawn(async move {
            let mut was_leader = false;
            let mut last_members = Vec::new();
            let mut last_down = Vec::new();
            let mut last_repair = cluster_rt::now();
            let mut last_expiry = cluster_rt::now();
            loop {
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(MEMBERSHIP_WATCH) => {}
                }
                let is_leader = cluster.consensus.is_leader();
                let members = cluster.member_peers();
                let down = match is_leader {
                    true => cluster.down_for_repinning(&members, listening_since),
                    false => Vec::new(),
                };
                let interval = cluster.config.cluster.state_sync_interval;
                let due = cluster_rt::now() - last_repair >= interval;
                // Its own clock: repairs triggered by changes must not put expiry off.
                let expiry_due = cluster_rt::now() - last_expiry >= interval;
                if is_leader && (!was_leader || members != last_members || down != last_down || due) {
                    last_repair = cluster_rt::now();
                    if down != last_down && !down.is_empty() {
                        tracing::warn!(
                            "members down for longer than the repinning grace, their pins move elsewhere: {}",
                            down.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
                        );
                    }
                    match cluster.repair_allocations(None, &down, true).await {
                        Ok(0) => {}
                        Ok(moved) => {
                            tracing::info!("re-allocated {moved} pins of departed or down members or short of replicas")
                        }
                        Err(e) => {
                            tracing::warn!("re-allocating pins of departed or down members or short of replicas: {e}")
                        }
                    }
                }
                if is_leader && (!was_leader || expiry_due) {
                    last_expiry = cluster_rt::now();
                    match cluster.expire_pins().await {
                        Ok(0) => {}
                        Ok(expired) => tracing::info!("removed {expired} expired pins"),
                        Err(e) => tracing::warn!("removing expired pins: {e}"),
                    }
                }
                was_leader = is_leader;
                last_members = members;
                last_down = down;
            }
        });
    }

    /// The members (other than this one) whose pins move: down past the repinning grace; none
    /// when repinning is disabled.
    fn down_for_repinning(&self, members: &[PeerId], listening_since: Timestamp) -> Vec<PeerId> {
        if self.config.cluster.disable_repinning {
            return Vec::new();
        }
        let others: Vec<PeerId> = members
            .iter()
            .filter(|p| **p != self.identity.peer_id)
            .copied()
            .collect();
        let monitor = self.metrics.lock().expect("metrics lock");
        cluster_monitor::down_members(
            &others,
            |peer| monitor.latest(PING, peer),
            Timestamp::now(),
            |peer| monitor.listening_to_since(peer, listening_since),
            self.config.monitor.metric_ttl,
            self.config.cluster.repinning_grace_period,
        )
    }

    /// Gives new allocations to every pin allocated to a peer outside the membership (or to
    /// `leaving`, about to be removed), to a member in `down`, or short of its minimum
    /// replication (when candidates allow); returns how many pins changed. Changes go through
    /// Raft in batches; with `paced`, at most `repinning_rate` pins a second.
    pub(super) async fn repair_allocations(
        &self,
        leaving: Option<&PeerId>,
        down: &[PeerId],
        paced: bool,
    ) -> Result<u64, ClusterError> {
        let mut members = self.member_peers();
        members.retain(|p| Some(p) != leaving);
        let excluded: Vec<PeerId> = leaving.into_iter().chain(down).copied().collect();
        let mut batch = RepairBatch::new(self.config.cluster.repinning_rate, paced);
        let mut after: Option<Cid> = None;
        loop {
            let page = self
                .state
                .list_page(after.as_ref(), STATE_PAGE)
                .map_err(|e| ClusterError::storage("reading the pinset", e))?;
            let Some(last) = page.last().map(|p| p.cid) else { break };
            for existing in page {
                if let Some(pin) = self.repaired(&existing, &members, down, &excluded) {
                    batch.push(Command::Reallocate {
                        pin,
                        previous: Box::new(existing),
                    });
                    if batch.is_full() {
                        batch.commit(&self.consensus).await?;
                    }
                }
            }
            after = Some(last);
        }
        batch.commit(&self.consensus).await?;
        Ok(batch.changed)
    }

    /// `existing` with repaired allocations, or `None` when it needs no repair or none is
    /// possible yet.
    fn repaired(&self, existing: &Pin, members: &[PeerId], down: &[PeerId], excluded: &[PeerId]) -> Option<Pin> {
        let need = cluster_allocator::repair_need(existing, members, down)?;
        let mut current = existing.clone();
        current.allocations = cluster_allocator::surviving_allocations(existing, members, down);
        let mut pin = existing.clone();
        if let Err(e) = self.allocate(&mut pin, &[], Some(&current), excluded) {
            let max = existing.options.replication_factor_max;
            // Without candidates, a copy on a down member is kept: it may come back.
            let members_only = cluster_allocator::surviving_allocations(existing, members, &[]);
            match cluster_allocator::fallback_allocations(need, members_only, max) {
                Some(surviving) => {
                    tracing::warn!(cid = %existing.cid, "re-allocating away from departed members: {e}");
                    pin.allocations = surviving;
                }
                None => {
                    tracing::debug!(cid = %existing.cid, "pin waits for candidates ({need:?}): {e}");
                    return None;
                }
            }
        }
        (pin.allocations != existing.allocations).then_some(pin)
    }

    /// On the leader: removes every pin whose `expire_at` has passed, in batches; a pin pinned
    /// again meanwhile stays. Returns how many were removed.
    pub(super) async fn expire_pins(&self) -> Result<u64, ClusterError> {
        let now = Timestamp::now();
        let mut batch = RepairBatch::new(self.config.cluster.repinning_rate, false);
        let mut after: Option<Cid> = None;
        loop {
            let page = self
                .state
                .list_page(after.as_ref(), STATE_PAGE)
                .map_err(|e| ClusterError::storage("reading the pinset", e))?;
            let Some(last) = page.last().map(|p| p.cid) else { break };
            for pin in page {
                if pin.is_expired(now) {
                    batch.push(Command::Expire { previous: pin });
                    if batch.is_full() {
                        batch.commit(&self.consensus).await?;
                    }
                }
            }
            after = Some(last);
        }
        batch.commit(&self.consensus).await?;
        Ok(batch.changed)
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
    /// allocations first, then the user's, then the others spread across the tag groups of
    /// `allocate_by` and by most free space inside a group (from the metrics members publish),
    /// up to the maximum. Members whose metric expired or says the repository is full are left
    /// out; members that have not reported yet come last in their group.
    pub(super) fn allocate(
        &self,
        pin: &mut Pin,
        user_allocations: &[PeerId],
        existing: Option<&Pin>,
        excluded: &[PeerId],
    ) -> Result<(), ClusterError> {
        if pin.is_everywhere() {
            pin.allocations.clear();
            return Ok(());
        }
        let mut peers = self.member_peers();
        peers.retain(|p| !excluded.contains(p));
        let candidates = {
            let metrics = self.metrics.lock().expect("metrics lock");
            cluster_allocator::candidates(
                &peers,
                &pin.cid,
                &self.config.allocator.allocate_by,
                |name, peer| metrics.latest(name, peer),
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
            Some(from) if **from != cid && existing.is_none() => self
                .state
                .get(from)
                .map_err(|e| ClusterError::storage("reading the pinset", e))?,
            _ => existing.clone(),
        };
        let mut pin = self.prepare_pin(cid, options, existing.as_ref())?;
        self.allocate(&mut pin, &user_allocations, allocation_base.as_ref(), &[])?;
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

/// Re-allocations or expiries on their way into Raft: one log entry per batch; when paced, a
/// pause after each batch holds the pace at `rate` pins a second.
struct RepairBatch {
    commands: Vec<Command>,
    size: usize,
    rate: u64,
    paced: bool,
    /// Commands that changed the pinset so far.
    changed: u64,
}

impl RepairBatch {
    /// Batches of a tenth of a second's worth at `rate`, at most [`REPAIR_BATCH_MAX`].
    fn new(rate: u64, paced: bool) -> RepairBatch {
        let size = (rate / 10).clamp(1, REPAIR_BATCH_MAX as u64) as usize;
        RepairBatch {
            commands: Vec::with_capacity(size),
            size,
            rate: rate.max(1),
            paced,
            changed: 0,
        }
    }

    fn push(&mut self, command: Command) {
        self.commands.push(command);
    }

    fn is_full(&self) -> bool {
        self.commands.len() >= self.size
    }

    /// Commits what is batched (nothing when empty), counts what changed, and paces.
    async fn commit(&mut self, consensus: &Consensus) -> Result<(), ClusterError> {
        if self.commands.is_empty() {
            return Ok(());
        }
        let commands = std::mem::take(&mut self.commands);
        let count = commands.len() as u64;
        let responses = consensus.log_batch(commands).await?;
        self.changed += responses
            .iter()
            .filter(|r| !matches!(r, CommandResponse::Unchanged))
            .count() as u64;
        if self.paced {
            cluster_rt::sleep(Duration::from_secs_f64(count as f64 / self.rate as f64)).await;
        }
        Ok(())
    }
}

/// The most commands in one repair or expiry log entry.
const REPAIR_BATCH_MAX: usize = 1000;

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
