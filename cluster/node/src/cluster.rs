//! [`Cluster`]: one member. Validates and allocates pins, commits them through consensus
//! (forwarding to the leader over RPC when there are other members), answers status from its
//! tracker and the allocated members' trackers, serves other members' RPC requests, and runs
//! the periodic state sync and recover loops.
//!
//! Every `select!` here is `biased` (shutdown first): tokio's random branch order is seeded
//! from a process-wide counter, not from the simulator's seed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_allocator::{Candidate, MetricStore, FREESPACE};
use cluster_api::{RestBackend, ResultStream};
use cluster_consensus::{
    node_id_of, AppliedChange, ApplyObserver, Command, Committed, Consensus, LeaderForwarder, MemberNode, NoTransport,
    NodeId, Promotion, RaftTransport, TransportFailure,
};
use cluster_ipfs::{Bytes, GcEntry, IpfsConnector};
use cluster_rpc::{
    MembershipRefusals, RaftOverRpc, RpcHandler, RpcRequest, RpcResponse, Traffic, Transport, WireBlock,
    MEMBER_STARTING, RECOVER_ALL_LISTED_MAX,
};
use cluster_rt::tokio::sync::{mpsc, watch};
use cluster_state::{Disk, RedbState, State};
use cluster_tracker::{PinTracker, TrackerConfig};
use cluster_types::{
    Alert, Bandwidth, Cid, ClusterError, ConnectGraph, GlobalPinInfo, GlobalRepoGc, Id, IpfsId, Metric, PeerId, Pin,
    PinInfo, PinInfoShort, PinOptions, PinType, RepoGc, RepoGcKey, Timestamp, TrackerStatus, TrackerStatusFilter,
    RPC_PROTOCOL_VERSION, VERSION,
};

use crate::config::validate_replication;
use crate::{DataFolder, Identity, NodeConfig, NodeError};

/// Items buffered between a stream's producer and the REST writer.
const STREAM_BUFFER: usize = 256;
/// Deadline of one member's status answer (Go: 15 s).
const STATUS_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a member's repository GC may take when asked by another. Go allows 24 h
/// (`repogc_timeout`); our libp2p exchanges are bounded at 5 minutes, so a longer GC is reported
/// as an error for that member (the daemon still finishes it).
const REPO_GC_TIMEOUT: Duration = Duration::from_secs(300);

/// Removed keys listed per member in a GC result; the rest are counted, so an answer stays far
/// below the RPC frame limit.
const REPO_GC_KEYS_LISTED: usize = 100_000;

/// How long a member may take to re-queue its failed items when another asks (a recover-all).
const RECOVER_ALL_TIMEOUT: Duration = Duration::from_secs(120);

/// How often the daemon is polled until it first answers.
const IPFS_POLL: Duration = Duration::from_secs(1);
/// Deadline of a membership change (a joining member catches up before it is answered).
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a learner may make no progress catching up before its promotion is given up. Long:
/// a large snapshot is sent whole before the learner's progress moves at all.
const PROMOTION_STALL: Duration = Duration::from_secs(300);
/// How long a learner has to answer before the leader makes it a voter.
const LEARNER_ALIVE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a learner's promotion is asked for while it catches up.
const PROMOTION_POLL: Duration = Duration::from_millis(500);
/// How long `--bootstrap` keeps trying members that cannot be reached (they may be starting),
/// in `wait_for_leader_timeout`s: a minute with Go's default of 15 s.
const JOIN_PATIENCE_LEADER_WAITS: u32 = 4;
/// Pause between two rounds of join attempts.
const JOIN_RETRY: Duration = Duration::from_secs(2);
/// How recent the refusals that show a member was removed while away must be.
const REMOVAL_EVIDENCE_WINDOW: Duration = Duration::from_secs(30);
/// How often a member checks whether it is still in the member list.
const MEMBERSHIP_WATCH: Duration = Duration::from_secs(1);
/// Pins read from the state per page when streaming it.
const STATE_PAGE: usize = 1000;

/// The status reported for a member that could not be asked.
fn cluster_error(message: String) -> PinInfoShort {
    PinInfoShort {
        status: TrackerStatus::ClusterError,
        timestamp: Timestamp::now(),
        error: message,
        ..Default::default()
    }
}

/// What a member is built from.
pub struct ClusterDeps {
    /// The resolved configuration.
    pub config: NodeConfig,
    /// The member's key pair.
    pub identity: Identity,
    /// The locked data folder.
    pub data: DataFolder,
    /// The IPFS daemon.
    pub ipfs: Arc<dyn IpfsConnector>,
    /// How this member reaches the others; `None` for a cluster of one.
    pub rpc: Option<Arc<dyn Transport>>,
    /// The pinset store; `None` opens the redb store in the data folder.
    pub state: Option<Arc<dyn State>>,
    /// Where the pinset and Raft log databases are opened: the real disk, or the simulator's
    /// memory disk that loses unsynced writes in a crash.
    pub disk: Arc<dyn Disk>,
    /// Members to join through (`daemon --bootstrap`): a member that has no Raft state yet does
    /// not start a cluster of its own but waits for [`Cluster::join`].
    pub bootstrap: Vec<String>,
    /// The address other members reach this one at (`/ip4/../tcp/..`); `None` uses the first
    /// `listen_multiaddress`.
    pub advertised_address: Option<String>,
}

/// Forwards applied changes to the tracker without blocking the state machine.
struct TrackerObserver {
    tracker: Arc<PinTracker>,
}

impl ApplyObserver for TrackerObserver {
    fn applied(&self, changes: &[AppliedChange]) {
        for change in changes {
            match change {
                AppliedChange::Pinned { pin, previous } => self.tracker.track(pin, previous.as_ref()),
                AppliedChange::Unpinned { pin } => self.tracker.untrack(&pin.cid),
            }
        }
    }

    fn snapshot_installed(&self) {
        let tracker = self.tracker.clone();
        cluster_rt::spawn(async move {
            if let Err(e) = tracker.sync_state().await {
                tracing::warn!("state sync after snapshot install failed: {e}");
            }
        });
    }
}

/// One cluster member.
pub struct Cluster {
    config: NodeConfig,
    identity: Identity,
    state: Arc<dyn State>,
    consensus: Consensus,
    tracker: Arc<PinTracker>,
    ipfs: Arc<dyn IpfsConnector>,
    shutdown_tx: watch::Sender<bool>,
    /// Becomes true when this member sees itself removed from the cluster.
    removed_tx: watch::Sender<bool>,
    /// Members that refused this member's vote requests as coming from a non-member.
    refusals: MembershipRefusals,
    /// The latest metrics of every member, this one included.
    metrics: Mutex<MetricStore>,
    /// The last traffic sample of `/health/bandwidth`: when, the totals, and the rates then.
    traffic_sample: Mutex<Option<TrafficSample>>,
    data: Mutex<Option<DataFolder>>,
    rpc: Option<Arc<dyn Transport>>,
    /// This member's own record (peer id and advertised address).
    me_member: MemberNode,
    /// The daemon's identity once it answered (for the `ping` metric).
    ipfs_identity: Mutex<Option<IpfsId>>,
    /// Where to join from, if this member started with `--bootstrap`.
    bootstrap: Vec<MemberNode>,
    bug_ack_before_commit: std::sync::atomic::AtomicBool,
    /// This cluster, for streams that outlive a `&self` call.
    me: std::sync::Weak<Cluster>,
}

impl Cluster {
    /// Opens the state, starts consensus and the tracker, and the background loops. A member
    /// starts even if its IPFS daemon is down: pins then fail and are retried.
    pub async fn start(deps: ClusterDeps) -> Result<Arc<Cluster>, NodeError> {
        let ClusterDeps {
            config,
            identity,
            data,
            ipfs,
            rpc,
            state,
            disk,
            bootstrap,
            advertised_address,
        } = deps;
        let advertised_address = advertised_address
            .or_else(|| config.listen_multiaddress.first().cloned())
            .unwrap_or_default();
        let refusals = MembershipRefusals::default();
        let raft_transport: Arc<dyn RaftTransport> = match &rpc {
            Some(rpc) => Arc::new(RaftOverRpc::new(rpc.clone(), refusals.clone())),
            None => Arc::new(NoTransport),
        };
        let state: Arc<dyn State> = match state {
            Some(state) => state,
            None => {
                let file = data.state_file();
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| NodeError::Io {
                        path: parent.display().to_string(),
                        message: e.to_string(),
                    })?;
                }
                Arc::new(RedbState::open_on(disk.as_ref(), &file)?)
            }
        };
        let tracker_config = TrackerConfig {
            concurrent_pins: config.concurrent_pins,
            priority_pin_max_age: config.priority_pin_max_age,
            priority_pin_max_retries: config.priority_pin_max_retries,
            pin_queue_size_max: config.pin_queue_size_max,
            ..TrackerConfig::default()
        };
        let tracker = PinTracker::new(
            tracker_config,
            identity.peer_id,
            config.peername.clone(),
            ipfs.clone(),
            state.clone(),
        );
        let observer = Arc::new(TrackerObserver {
            tracker: tracker.clone(),
        });
        let consensus = Consensus::start(
            &identity.peer_id,
            &data.raft_dir(),
            disk.as_ref(),
            state.clone(),
            observer,
            raft_transport,
            config.raft.clone(),
        )
        .await?;
        if let Some(rpc) = &rpc {
            consensus.set_forwarder(Arc::new(RpcForwarder {
                rpc: rpc.clone(),
                timeout: config.raft.network_timeout,
            }));
        }
        let me_member = MemberNode {
            peer_id: identity.peer_id.to_string(),
            address: advertised_address,
        };
        let mut members = BTreeMap::new();
        members.insert(node_id_of(&identity.peer_id), me_member.clone());
        let peerstore = read_peerstore(&data.path().join(PEERSTORE_FILE));
        for entry in &config.init_peerset {
            if entry.parse::<PeerId>().is_ok_and(|peer| peer == identity.peer_id) {
                continue;
            }
            let member = match entry.parse::<PeerId>() {
                // Go's form: a bare peer id, its address in the `peerstore` file.
                Ok(peer) => peerstore
                    .iter()
                    .find(|m| m.peer_id == peer.to_string())
                    .cloned()
                    .ok_or_else(|| {
                        NodeError::Config(format!(
                            "consensus.raft.init_peerset: no address for {peer} in {PEERSTORE_FILE}; list it there as /ip4/<ip>/tcp/<port>/p2p/{peer}"
                        ))
                    })?,
                Err(_) => member_of_address(entry)?,
            };
            let peer: PeerId = member.peer_id.parse().expect("checked by member_of_address");
            if peer != identity.peer_id {
                members.insert(node_id_of(&peer), member);
            }
        }
        let bootstrap = bootstrap
            .iter()
            .map(|address| member_of_address(address).map_err(|e| NodeError::Config(format!("--bootstrap: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if bootstrap.is_empty() {
            // Every member of a fixed initial set initializes with the same membership (allowed
            // by Raft: the first election decides); a member that already has a log skips this.
            consensus.initialize_if_new(members).await?;
        }
        tracker.start();
        let (shutdown_tx, _) = watch::channel(false);
        let cluster = Arc::new_cyclic(|me| Cluster {
            me: me.clone(),
            config,
            identity,
            state,
            consensus,
            tracker,
            ipfs,
            shutdown_tx,
            removed_tx: watch::channel(false).0,
            refusals,
            metrics: Mutex::new(MetricStore::default()),
            ipfs_identity: Mutex::new(None),
            traffic_sample: Mutex::new(None),
            data: Mutex::new(Some(data)),
            rpc,
            me_member,
            bootstrap,
            bug_ack_before_commit: std::sync::atomic::AtomicBool::new(false),
        });
        cluster.spawn_loops();
        Ok(cluster)
    }

    fn spawn_loops(self: &Arc<Self>) {
        self.spawn_ipfs_watch();
        self.spawn_membership_watch();
        self.spawn_allocation_repair();
        self.spawn_informer();
        self.spawn_alert_checker();
        // First sync once a leader exists: re-queues pins the daemon lost while we were down.
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        cluster_rt::spawn(async move {
            let wait = cluster
                .consensus
                .wait_for_leader(cluster.config.raft.wait_for_leader_timeout);
            cluster_rt::tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                result = wait => if let Err(e) = result { tracing::warn!("startup: {e}") },
            }
            cluster.sync_once("startup").await;
            loop {
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(cluster.config.state_sync_interval) => cluster.sync_once("periodic").await,
                }
            }
        });
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        cluster_rt::spawn(async move {
            loop {
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(cluster.config.pin_recover_interval) => {
                        let mut recovered = cluster.tracker.recover_all();
                        let mut count = 0u64;
                        while let Some(item) = recovered.recv().await {
                            if item.is_ok() {
                                count += 1;
                            }
                        }
                        if count > 0 {
                            tracing::info!("recover: re-queued {count} items");
                        }
                    }
                }
            }
        });
    }

    /// Watches the member list: once this member has been in it and then is not, it was
    /// removed (`peers rm`); [`Cluster::removed`] tells the daemon to stop (Go `watchPeers`).
    /// Also logs when this member becomes the leader.
    fn spawn_membership_watch(self: &Arc<Self>) {
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        cluster_rt::spawn(async move {
            let me = cluster.consensus.node_id();
            let mut was_member = false;
            let mut was_leader = false;
            loop {
                let is_leader = cluster.consensus.is_leader();
                if is_leader && !was_leader {
                    // Operators (and the process tests) find the leader in the logs.
                    tracing::info!(
                        "this member is now the raft leader (term {})",
                        cluster.consensus.current_term()
                    );
                }
                was_leader = is_leader;
                let members = cluster.consensus.members();
                let is_member = members.iter().any(|(id, _)| *id == me);
                let removed = if was_member && !is_member {
                    Some("its own log says so".to_string())
                } else {
                    cluster.removed_while_away(&members)
                };
                if let Some(how) = removed {
                    tracing::warn!(
                        "this member was removed from the cluster ({how}): stopping; to join again, start it \
                         on an empty data folder (or init a new one) with --bootstrap <a member's address>"
                    );
                    let _ = cluster.removed_tx.send(true);
                    return;
                }
                was_member |= is_member;
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(MEMBERSHIP_WATCH) => {}
                }
            }
        });
    }

    /// Whether this member was removed while it was away: it has no leader, and most of the
    /// other voters of its own (stale) view refused its vote requests because they no longer
    /// count it as a member. A majority is needed: a member that lags behind a join could
    /// refuse a voter it does not know yet, but a majority of voters has every committed one.
    fn removed_while_away(&self, members: &[(NodeId, MemberNode)]) -> Option<String> {
        if self.consensus.leader().is_some() {
            return None;
        }
        let me = self.consensus.node_id();
        let others: Vec<NodeId> = members
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| *id != me && self.consensus.is_voter(*id))
            .collect();
        let refused: Vec<NodeId> = self
            .refusals
            .recent(REMOVAL_EVIDENCE_WINDOW)
            .into_iter()
            .filter(|id| others.contains(id))
            .collect();
        (!others.is_empty() && refused.len() * 2 > others.len()).then(|| {
            format!(
                "{} of the {} other members no longer count it as a member",
                refused.len(),
                others.len()
            )
        })
    }

    /// On the leader: repairs allocations to peers that left the cluster, and of pins short of
    /// their minimum replication, when it becomes the leader, when the membership changes, and
    /// every `state_sync_interval`. `peers rm` moves pins away before it removes the member,
    /// but a pin allocated meanwhile by a member with an older member list (or a leader that
    /// crashed in between) would otherwise keep a departed member; and a removal while too few
    /// members were healthy leaves pins short until candidates come back.
    fn spawn_allocation_repair(self: &Arc<Self>) {
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
                let due = cluster_rt::now() - last_repair >= cluster.config.state_sync_interval;
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
    async fn repair_allocations(&self, leaving: Option<&PeerId>) -> Result<u64, ClusterError> {
        let mut members = self.member_peers();
        members.retain(|p| Some(p) != leaving);
        let mut after: Option<Cid> = None;
        let mut moved = 0u64;
        loop {
            let page = self
                .state
                .list_page(after.as_ref(), STATE_PAGE)
                .map_err(|e| ClusterError::Internal(e.to_string()))?;
            let Some(last) = page.last().map(|p| p.cid) else { break };
            for existing in page {
                if existing.is_everywhere() {
                    continue;
                }
                let departed = existing.allocations.iter().any(|p| !members.contains(p));
                let short = existing.allocations.len() < existing.options.replication_factor_min.max(0) as usize;
                if !departed && !short {
                    continue;
                }
                let mut current = existing.clone();
                current.allocations.retain(|p| members.contains(p));
                let mut pin = existing.clone();
                if let Err(e) = self.allocate(&mut pin, &[], Some(&current), leaving) {
                    if !departed {
                        // Still not enough candidates for a short pin: try again next round.
                        tracing::debug!(cid = %existing.cid, "under-replicated pin stays so: {e}");
                        continue;
                    }
                    tracing::warn!(cid = %existing.cid, "re-allocating away from departed members: {e}");
                    pin.allocations = current.allocations;
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

    /// Every `monitor_check_interval`, raises an alert for each member whose latest metric has
    /// expired without a newer one (Go's monitor checker); `/health/alerts` lists them.
    fn spawn_alert_checker(self: &Arc<Self>) {
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        cluster_rt::spawn(async move {
            loop {
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(cluster.config.monitor_check_interval) => {}
                }
                let raised = cluster
                    .metrics
                    .lock()
                    .expect("metrics lock")
                    .check_expired(Timestamp::now());
                for alert in raised {
                    tracing::warn!(
                        peer = %alert.metric.peer,
                        "alert: metric {} expired without a newer one",
                        alert.metric.name
                    );
                }
            }
        });
    }

    /// RPC traffic of this member (Go reports libp2p's per-protocol counters): totals since
    /// start and rates over the time since the previous reading (kept if that was under 1 s).
    pub fn bandwidth(&self) -> BTreeMap<String, Bandwidth> {
        let Some(rpc) = &self.rpc else {
            return BTreeMap::new();
        };
        let totals = rpc.traffic();
        let now = cluster_rt::now();
        let mut sample = self.traffic_sample.lock().expect("traffic lock");
        let rates = match *sample {
            Some(previous) if now.duration_since(previous.at) < Duration::from_secs(1) => previous.rates,
            Some(previous) => {
                let seconds = now.duration_since(previous.at).as_secs_f64();
                let rates = (
                    totals.bytes_in.saturating_sub(previous.totals.bytes_in) as f64 / seconds,
                    totals.bytes_out.saturating_sub(previous.totals.bytes_out) as f64 / seconds,
                );
                *sample = Some(TrafficSample { at: now, totals, rates });
                rates
            }
            None => {
                *sample = Some(TrafficSample {
                    at: now,
                    totals,
                    rates: (0.0, 0.0),
                });
                (0.0, 0.0)
            }
        };
        BTreeMap::from([(
            cluster_rpc::wire::PROTOCOL.to_string(),
            Bandwidth {
                total_in: totals.bytes_in.min(i64::MAX as u64) as i64,
                total_out: totals.bytes_out.min(i64::MAX as u64) as i64,
                rate_in: rates.0,
                rate_out: rates.1,
            },
        )])
    }

    /// The alerts raised so far, newest first.
    pub fn alerts(&self) -> Vec<Alert> {
        self.metrics.lock().expect("metrics lock").alerts()
    }

    /// Publishes this member's metrics every half `metric_ttl`, as Go's informers do, in two
    /// loops: the liveness metrics (`ping`, tags, `pinqueue`) never wait on the IPFS daemon, so a
    /// slow `repo/stat` cannot make a healthy member look dead; `freespace` is measured on its
    /// own, again after a quarter `metric_ttl` when the daemon failed to answer.
    fn spawn_informer(self: &Arc<Self>) {
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        cluster_rt::spawn(async move {
            loop {
                cluster.publish_liveness();
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(cluster.config.metric_ttl / 2) => {}
                }
            }
        });
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        cluster_rt::spawn(async move {
            loop {
                let next = if cluster.publish_freespace().await {
                    cluster.config.metric_ttl / 2
                } else {
                    cluster.config.metric_ttl / 4
                };
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(next) => {}
                }
            }
        });
    }

    /// A metric about this member, measured now and valid for `metric_ttl`.
    fn own_metric(&self, name: String, value: String, weight: i64, partitionable: bool) -> Metric {
        let now = Timestamp::now();
        Metric {
            name,
            peer: self.identity.peer_id,
            value,
            expire: now.add(self.config.metric_ttl).unix_nanos(),
            valid: true,
            weight,
            partitionable,
            received_at: now.unix_nanos(),
        }
    }

    /// Measures and publishes every metric of this member (Go's informers: `freespace` from
    /// `repo/stat`, `ping`, one `tag:<name>` per configured tag, `pinqueue`). Returns whether
    /// free space could be measured.
    pub async fn publish_metrics(&self) -> bool {
        self.publish_liveness();
        self.publish_freespace().await
    }

    /// Publishes `ping`, the tags and `pinqueue`: what this member knows without asking the
    /// daemon.
    fn publish_liveness(&self) {
        let ipfs = self.ipfs_identity.lock().expect("ipfs identity lock").clone();
        let mut ping = serde_json::json!({ "peer_name": self.config.peername });
        if let Some(ipfs) = ipfs {
            ping["ipfs_id"] = ipfs.id.into();
            ping["ipfs_addresses"] = ipfs.addresses.into();
        }
        let mut metrics = vec![self.own_metric("ping".into(), ping.to_string(), 0, false)];
        for (name, value) in &self.config.tags {
            metrics.push(self.own_metric(format!("tag:{name}"), value.clone(), 0, true));
        }
        let queued = self.tracker.queued_count() as u64;
        let weight = -((queued / self.config.pinqueue_weight_bucket_size) as i64);
        metrics.push(self.own_metric("pinqueue".into(), queued.to_string(), weight, false));
        self.publish(metrics);
    }

    /// Measures free space through the daemon's `repo/stat` and publishes it; returns whether
    /// the daemon answered. The metric's lifetime starts when the answer came, not when it was
    /// asked.
    async fn publish_freespace(&self) -> bool {
        match self.ipfs.repo_stat().await {
            Ok(stat) => {
                let free = stat.storage_max.saturating_sub(stat.repo_size);
                let mut freespace = self.own_metric(
                    FREESPACE.into(),
                    free.to_string(),
                    free.min(i64::MAX as u64) as i64,
                    false,
                );
                freespace.valid = free > 0;
                self.publish(vec![freespace]);
                true
            }
            Err(e) => {
                tracing::debug!("freespace informer: {e}");
                false
            }
        }
    }

    /// Records `metrics` and sends them to every other member without waiting for them.
    fn publish(&self, metrics: Vec<Metric>) {
        let mut store = self.metrics.lock().expect("metrics lock");
        for metric in &metrics {
            store.record(metric.clone());
        }
        drop(store);
        let Some(rpc) = &self.rpc else { return };
        for member in self.members() {
            if member.peer_id == self.me_member.peer_id {
                continue;
            }
            let (rpc, metrics, timeout) = (rpc.clone(), metrics.clone(), self.config.raft.network_timeout);
            cluster_rt::spawn(async move {
                for metric in metrics {
                    if let Err(e) = rpc.call(&member, RpcRequest::PushMetric(metric), timeout).await {
                        tracing::debug!("sending metrics to {member}: {e:?}");
                        return;
                    }
                }
            });
        }
    }

    /// Every member's latest metric named `name` that has not expired.
    pub fn fresh_metrics(&self, name: &str) -> Vec<Metric> {
        self.metrics.lock().expect("metrics lock").fresh(name, Timestamp::now())
    }

    /// The names of every metric this member has received, sorted.
    pub fn metric_names(&self) -> Vec<String> {
        self.metrics.lock().expect("metrics lock").names()
    }

    /// Runs this member's daemon's repository GC; failures are reported inside the result.
    pub async fn repo_gc_local(&self) -> RepoGc {
        let mut result = RepoGc {
            peer: self.identity.peer_id,
            peername: self.config.peername.clone(),
            keys: Vec::new(),
            error: String::new(),
        };
        match self.ipfs.repo_gc().await {
            Ok(mut entries) => {
                let unlisted = entries.len().saturating_sub(REPO_GC_KEYS_LISTED);
                entries.truncate(REPO_GC_KEYS_LISTED);
                if unlisted > 0 {
                    entries.push(GcEntry::Error(format!("{unlisted} more keys removed, not listed")));
                }
                result.keys = entries
                    .into_iter()
                    .map(|entry| match entry {
                        GcEntry::Removed(cid) => RepoGcKey {
                            key: Some(cid),
                            error: String::new(),
                        },
                        GcEntry::Error(error) => RepoGcKey { key: None, error },
                    })
                    .collect();
            }
            Err(e) => result.error = e.to_string(),
        }
        result
    }

    /// Runs the repository GC on every member's daemon at once (Go `RepoGC`); a member that
    /// cannot be reached is reported with its error.
    pub async fn repo_gc_everywhere(&self) -> GlobalRepoGc {
        let asks = self.members().into_iter().filter_map(|member| {
            let peer = member.peer_id.parse::<PeerId>().ok()?;
            Some(async move {
                if peer == self.identity.peer_id {
                    return self.repo_gc_local().await;
                }
                let answer = self.call_member(&member, RpcRequest::RepoGc, REPO_GC_TIMEOUT).await;
                match answer {
                    Ok(RpcResponse::RepoGc(gc)) => gc,
                    other => RepoGc {
                        peer,
                        peername: String::new(),
                        keys: Vec::new(),
                        error: match other {
                            Err(e) => format!("{e:?}"),
                            Ok(answer) => format!("unexpected answer {answer:?}"),
                        },
                    },
                }
            })
        });
        let results = futures::future::join_all(asks).await;
        GlobalRepoGc {
            peer_map: results.into_iter().map(|gc| (gc.peer.to_string(), gc)).collect(),
        }
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
            .map_err(|e| ClusterError::Internal(format!("error resolving {path}: {e}")))
    }

    /// Calls another member over the cluster transport; unreachable when there is none (a
    /// member started without one, as in unit tests).
    async fn call_member(
        &self,
        member: &MemberNode,
        request: RpcRequest,
        timeout: Duration,
    ) -> Result<RpcResponse, TransportFailure> {
        match &self.rpc {
            Some(rpc) => rpc.call(member, request, timeout).await,
            None => Err(TransportFailure::Unreachable("no transport".into())),
        }
    }

    /// Stores blocks on this member's daemon (as few `block/put` requests as the daemon allows);
    /// the first failure is returned.
    pub async fn put_blocks_locally(&self, blocks: Vec<WireBlock>) -> Result<(), String> {
        let count = blocks.len();
        let blocks = blocks.into_iter().map(|block| (block.cid, block.data.into())).collect();
        self.ipfs
            .block_put_many(blocks)
            .await
            .map_err(|e| format!("block/put of {count} blocks: {e}"))
    }

    /// The members whose daemons receive an upload's blocks (Go `BlockAllocate`): the pin's
    /// allocations for a placeholder CID (every member when pinned everywhere), or only this
    /// member with `local`.
    pub fn add_destinations(&self, options: &PinOptions, local: bool) -> Result<Vec<PeerId>, ClusterError> {
        if local {
            return Ok(vec![self.identity.peer_id]);
        }
        // The content's CID is not known before the upload is read: rank members for a random one.
        let mut seed = [0u8; 16];
        cluster_rt::fill_random(&mut seed);
        let placeholder = Cid::raw_sha256(&seed);
        let mut pin = self.prepare_pin(placeholder, options.clone(), None)?;
        let user_allocations = options.user_allocations.clone().unwrap_or_default();
        self.allocate(&mut pin, &user_allocations, None, None)?;
        if pin.is_everywhere() {
            return Ok(self.member_peers());
        }
        Ok(pin.allocations)
    }

    /// Stores blocks on every destination's daemon at once; fails if any destination fails.
    pub async fn add_blocks(&self, destinations: &[PeerId], blocks: Vec<(Cid, Bytes)>) -> Result<(), ClusterError> {
        let wire: Vec<WireBlock> = blocks
            .into_iter()
            .map(|(cid, data)| WireBlock {
                cid,
                data: data.to_vec(),
            })
            .collect();
        let members = self.members();
        let puts = destinations.iter().map(|peer| {
            let wire = wire.clone();
            let member = members.iter().find(|m| m.peer_id == peer.to_string()).cloned();
            async move {
                if *peer == self.identity.peer_id {
                    return self.put_blocks_locally(wire).await;
                }
                let Some(member) = member else {
                    return Err(format!("{peer} is not a member"));
                };
                match self
                    .call_member(&member, RpcRequest::BlockPut(wire), self.config.ipfs_request_timeout)
                    .await
                {
                    Ok(RpcResponse::BlockPut(result)) => result,
                    other => Err(format!("{other:?}")),
                }
            }
        });
        for (peer, result) in destinations.iter().zip(futures::future::join_all(puts).await) {
            result.map_err(|e| ClusterError::Internal(format!("storing blocks on {peer}: {e}")))?;
        }
        Ok(())
    }

    /// Pins an added root, allocated first to the members that received its blocks.
    pub async fn add_pin(
        &self,
        root: Cid,
        mut options: PinOptions,
        destinations: Vec<PeerId>,
    ) -> Result<Pin, ClusterError> {
        options.user_allocations = Some(destinations);
        self.pin(root, options).await
    }

    /// Who is connected to whom (Go `ConnectGraph`): every member answering `id` is linked to the
    /// members it lists, and each daemon to its swarm peers.
    pub async fn connect_graph(&self) -> ConnectGraph {
        let ids = self.peers_list().await;
        let mut graph = ConnectGraph {
            cluster_id: self.identity.peer_id,
            id_to_peername: BTreeMap::new(),
            ipfs_links: BTreeMap::new(),
            cluster_links: BTreeMap::new(),
            cluster_trust_links: BTreeMap::new(),
            cluster_to_ipfs: BTreeMap::new(),
        };
        let members = self.members();
        for id in &ids {
            let key = id.id.to_string();
            graph.id_to_peername.insert(key.clone(), id.peername.clone());
            // Every Raft member is trusted.
            graph.cluster_trust_links.insert(key.clone(), true);
            if !id.error.is_empty() {
                continue;
            }
            let links: Vec<PeerId> = id.cluster_peers.iter().filter(|p| **p != id.id).copied().collect();
            graph.cluster_links.insert(key.clone(), links);
            if id.ipfs.id.is_empty() {
                continue;
            }
            graph.cluster_to_ipfs.insert(key.clone(), id.ipfs.id.clone());
            let swarm = if id.id == self.identity.peer_id {
                self.ipfs.swarm_peers().await.map_err(|e| e.to_string())
            } else {
                match members.iter().find(|m| m.peer_id == key) {
                    Some(member) => match self.call_member(member, RpcRequest::SwarmPeers, STATUS_TIMEOUT).await {
                        Ok(RpcResponse::SwarmPeers(peers)) => peers,
                        other => Err(format!("{other:?}")),
                    },
                    None => Err(format!("{key} is not a member")),
                }
            };
            match swarm {
                Ok(peers) => {
                    graph.ipfs_links.insert(id.ipfs.id.clone(), peers);
                }
                Err(e) => tracing::debug!(peer = %key, "swarm peers for the graph: {e}"),
            }
        }
        graph
    }

    /// Resolves once this member has been removed from the cluster.
    pub async fn removed(&self) {
        let mut removed = self.removed_tx.subscribe();
        let _ = removed.wait_for(|r| *r).await;
    }

    /// Whether this member has been removed from the cluster.
    pub fn is_removed(&self) -> bool {
        *self.removed_tx.borrow()
    }

    /// Polls the IPFS daemon's `id` every second until it answers (Go waits for it at start; we
    /// start anyway and report the error in `/id`). When it comes back after failures, failed
    /// pins are re-queued at once instead of at the next recover interval.
    fn spawn_ipfs_watch(self: &Arc<Self>) {
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        cluster_rt::spawn(async move {
            let mut failures: u64 = 0;
            loop {
                match cluster.ipfs.id().await {
                    Ok(id) => {
                        tracing::info!("IPFS daemon is ready (peer id {})", id.id);
                        *cluster.ipfs_identity.lock().expect("ipfs identity lock") = Some(id);
                        break;
                    }
                    Err(e) => {
                        if failures.is_multiple_of(30) {
                            tracing::warn!("IPFS daemon not reachable yet: {e}");
                        }
                        failures += 1;
                    }
                }
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(IPFS_POLL) => {}
                }
            }
            if failures > 0 {
                let mut recovered = cluster.tracker.recover_all();
                while recovered.recv().await.is_some() {}
            }
        });
    }

    async fn sync_once(&self, why: &str) {
        match self.tracker.sync_state().await {
            Ok(report) => tracing::debug!("{why} state sync: {report:?}"),
            Err(e) => tracing::warn!("{why} state sync failed: {e}"),
        }
    }

    /// This member's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.identity.peer_id
    }

    /// The handler that answers other members' requests (the transport serves it).
    pub fn rpc_handler(self: &Arc<Self>) -> Arc<dyn RpcHandler> {
        Arc::new(ClusterRpcHandler { cluster: self.clone() })
    }

    /// Every member with its address.
    fn members(&self) -> Vec<MemberNode> {
        let mut members: Vec<MemberNode> = self.consensus.members().into_iter().map(|(_, node)| node).collect();
        members.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        members
    }

    /// The status of `cid` on every member: allocated members are asked (over RPC when remote),
    /// the others are `remote` without asking (Go `globalPinInfoCid`).
    pub async fn global_status(&self, cid: Cid) -> Result<GlobalPinInfo, ClusterError> {
        let local = self.tracker.status(&cid).await;
        let pin = self
            .state
            .get(&cid)
            .map_err(|e| ClusterError::Internal(e.to_string()))?;
        let mut global = GlobalPinInfo {
            cid,
            name: String::new(),
            allocations: Vec::new(),
            origins: Vec::new(),
            created: Timestamp::ZERO,
            metadata: Default::default(),
            peer_map: Default::default(),
        };
        global.add(local);
        let Some(rpc) = &self.rpc else { return Ok(global) };
        // Allocated members are asked at once; a slow one costs its own timeout, not the sum.
        let mut asks = Vec::new();
        for member in self.members() {
            let Ok(peer) = member.peer_id.parse::<PeerId>() else {
                continue;
            };
            if peer == self.identity.peer_id {
                continue;
            }
            let status = match &pin {
                None => TrackerStatus::Unpinned,
                Some(pin) if !pin.is_allocated_to(&peer) => TrackerStatus::Remote,
                Some(_) => {
                    asks.push(async move {
                        let answer = rpc.call(&member, RpcRequest::Status(cid), STATUS_TIMEOUT).await;
                        (peer, answer)
                    });
                    continue;
                }
            };
            global.peer_map.insert(
                peer.to_string(),
                PinInfoShort {
                    status,
                    timestamp: Timestamp::now(),
                    ..Default::default()
                },
            );
        }
        for (peer, answer) in futures::future::join_all(asks).await {
            match answer {
                Ok(RpcResponse::Status(info)) => global.add(info),
                Ok(other) => {
                    global
                        .peer_map
                        .insert(peer.to_string(), cluster_error(format!("unexpected answer {other:?}")));
                }
                Err(e) => {
                    global
                        .peer_map
                        .insert(peer.to_string(), cluster_error(format!("{e:?}")));
                }
            }
        }
        Ok(global)
    }

    /// The identity of every member: this one directly, the others over RPC; an unreachable
    /// member is listed with its peer id and the error (Go `IDStream`).
    pub async fn peers_list(&self) -> Vec<Id> {
        // Every member is asked at once; the list keeps the member order.
        let asks = self.members().into_iter().filter_map(|member| {
            let peer = member.peer_id.parse::<PeerId>().ok()?;
            Some(async move {
                if peer == self.identity.peer_id {
                    return self.id().await;
                }
                let answer = self.call_member(&member, RpcRequest::Id, STATUS_TIMEOUT).await;
                match answer {
                    Ok(RpcResponse::Id(id)) => id,
                    other => Id {
                        id: peer,
                        addresses: vec![format!("{}/p2p/{peer}", member.address)],
                        cluster_peers: Vec::new(),
                        cluster_peers_addresses: Vec::new(),
                        version: String::new(),
                        commit: String::new(),
                        rpc_protocol_version: String::new(),
                        error: match other {
                            Err(e) => format!("{e:?}"),
                            Ok(answer) => format!("unexpected answer {answer:?}"),
                        },
                        ipfs: IpfsId::default(),
                        peername: String::new(),
                    },
                }
            })
        });
        futures::future::join_all(asks).await
    }

    /// Every member's status of every pin (or of `cids`), one [`Cluster::global_status`] per CID,
    /// streamed in state order. Costs one status call per allocated remote member per pin: fine
    /// for the small Raft clusters this serves; a per-member streaming merge is the scalable form.
    pub fn global_status_stream(
        self: Arc<Self>,
        filter: TrackerStatusFilter,
        cids: Vec<Cid>,
    ) -> ResultStream<GlobalPinInfo> {
        spawn_stream(move |tx| {
            Box::pin(async move {
                let send = |info: Result<GlobalPinInfo, ClusterError>| {
                    let keep = info.as_ref().map(|i| i.matches(filter)).unwrap_or(true);
                    let tx = tx.clone();
                    async move { !keep || tx.send(info).await.is_ok() }
                };
                if !cids.is_empty() {
                    for cid in cids {
                        if !send(self.global_status(cid).await).await {
                            return;
                        }
                    }
                    return;
                }
                let mut after: Option<Cid> = None;
                loop {
                    let page = match self.state.list_page(after.as_ref(), STATE_PAGE) {
                        Ok(page) => page,
                        Err(e) => {
                            let _ = tx.send(Err(ClusterError::Internal(e.to_string()))).await;
                            return;
                        }
                    };
                    let Some(last) = page.last().map(|p| p.cid) else { return };
                    for pin in page {
                        if !send(self.global_status(pin.cid).await).await {
                            return;
                        }
                    }
                    after = Some(last);
                }
            })
        })
    }

    /// Re-queues a failed `cid` on every member allocated to it, then reports the global status.
    pub async fn recover_everywhere(&self, cid: Cid) -> Result<GlobalPinInfo, ClusterError> {
        let pin = self
            .state
            .get(&cid)
            .map_err(|e| ClusterError::Internal(e.to_string()))?;
        for member in self.members() {
            let Ok(peer) = member.peer_id.parse::<PeerId>() else {
                continue;
            };
            if pin.as_ref().is_some_and(|p| !p.is_allocated_to(&peer)) {
                continue;
            }
            if peer == self.identity.peer_id {
                self.tracker.recover(&cid).await?;
            } else if let Some(rpc) = &self.rpc {
                if let Err(e) = rpc.call(&member, RpcRequest::Recover(cid), STATUS_TIMEOUT).await {
                    tracing::debug!(%cid, "recover on {} failed: {e:?}", member.peer_id);
                }
            }
        }
        self.global_status(cid).await
    }

    /// This member's side of a cluster-wide recover (Go `PinTracker.RecoverAll`): re-queues
    /// every failed item; returns the first [`RECOVER_ALL_LISTED_MAX`] of them, with their new
    /// status, and how many were re-queued in all. An item that cannot be re-queued is logged.
    pub async fn recover_all_local(&self) -> Result<(Vec<PinInfo>, u64), ClusterError> {
        let mut recovered = self.tracker.recover_all();
        let mut listed = Vec::new();
        let mut requeued = 0u64;
        let mut first_error = None;
        while let Some(item) = recovered.recv().await {
            match item {
                Ok(info) => {
                    requeued += 1;
                    if listed.len() < RECOVER_ALL_LISTED_MAX {
                        listed.push(info);
                    }
                }
                Err(e) => {
                    tracing::warn!("recover: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if requeued == 0 => Err(e),
            _ => Ok((listed, requeued)),
        }
    }

    /// Re-queues the failed items of every member at once (Go `RecoverAll`) and streams the
    /// items re-queued anywhere, one [`GlobalPinInfo`] per CID; a member that could not be asked
    /// is reported with its error in every item.
    pub fn recover_all_everywhere(self: Arc<Self>) -> ResultStream<GlobalPinInfo> {
        spawn_stream(move |tx| {
            Box::pin(async move {
                let asks = self.members().into_iter().filter_map(|member| {
                    let peer = member.peer_id.parse::<PeerId>().ok()?;
                    let cluster = self.clone();
                    Some(async move {
                        if peer == cluster.identity.peer_id {
                            return (peer, cluster.recover_all_local().await);
                        }
                        let answer = cluster
                            .call_member(&member, RpcRequest::RecoverAll, RECOVER_ALL_TIMEOUT)
                            .await;
                        let result = match answer {
                            Ok(RpcResponse::RecoverAll(result)) => result,
                            Ok(other) => Err(ClusterError::Internal(format!("unexpected answer {other:?}"))),
                            Err(e) => Err(ClusterError::Internal(format!("{e:?}"))),
                        };
                        (peer, result)
                    })
                });
                let mut merged: BTreeMap<Cid, GlobalPinInfo> = BTreeMap::new();
                let mut failed = Vec::new();
                for (peer, answer) in futures::future::join_all(asks).await {
                    let (items, requeued) = match answer {
                        Ok(answer) => answer,
                        Err(e) => {
                            failed.push((peer, e.to_string()));
                            continue;
                        }
                    };
                    if requeued > items.len() as u64 {
                        tracing::info!("recover: {peer} re-queued {requeued} items; {} are listed", items.len());
                    }
                    for info in items {
                        match merged.entry(info.cid) {
                            std::collections::btree_map::Entry::Vacant(entry) => {
                                entry.insert(info.into_global());
                            }
                            std::collections::btree_map::Entry::Occupied(mut entry) => entry.get_mut().add(info),
                        }
                    }
                }
                if merged.is_empty() && !failed.is_empty() {
                    let reasons: Vec<String> = failed.iter().map(|(peer, e)| format!("{peer}: {e}")).collect();
                    let _ = tx
                        .send(Err(ClusterError::Internal(format!(
                            "recover failed on {}",
                            reasons.join("; ")
                        ))))
                        .await;
                    return;
                }
                for mut global in merged.into_values() {
                    for (peer, error) in &failed {
                        global.peer_map.insert(peer.to_string(), cluster_error(error.clone()));
                    }
                    if tx.send(Ok(global)).await.is_err() {
                        return;
                    }
                }
            })
        })
    }

    /// The consensus component (tests and the simulator inspect it).
    pub fn consensus(&self) -> &Consensus {
        &self.consensus
    }

    /// The pinset store.
    pub fn state(&self) -> &Arc<dyn State> {
        &self.state
    }

    /// The tracker.
    pub fn tracker(&self) -> &Arc<PinTracker> {
        &self.tracker
    }

    /// The resolved configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Stops the loops, the tracker and Raft, and releases the data folder lock. With
    /// `leave_on_shutdown`, first removes this member from the cluster.
    pub async fn shutdown(&self) {
        if self.config.leave_on_shutdown && self.rpc.is_some() && !self.is_removed() {
            let leaving = cluster_rt::timeout(
                self.config.raft.wait_for_leader_timeout * 2,
                self.peer_remove(self.identity.peer_id),
            )
            .await;
            match leaving {
                Ok(Ok(())) => tracing::info!("left the cluster"),
                Ok(Err(e)) => tracing::warn!("leaving the cluster failed: {e}"),
                Err(_) => tracing::warn!("leaving the cluster timed out"),
            }
        }
        let _ = self.shutdown_tx.send(true);
        self.tracker.shutdown();
        self.consensus.shutdown().await;
        self.data.lock().expect("data folder lock").take();
    }

    fn member_peers(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self
            .consensus
            .members()
            .into_iter()
            .filter_map(|(_, node)| node.peer_id.parse().ok())
            .collect();
        if !peers.contains(&self.identity.peer_id) {
            peers.push(self.identity.peer_id);
        }
        peers.sort();
        peers
    }

    /// Checks the options and fills the defaults (Go `setupPin`).
    fn prepare_pin(&self, cid: Cid, mut options: PinOptions, existing: Option<&Pin>) -> Result<Pin, ClusterError> {
        if options.replication_factor_min == 0 && options.replication_factor_max == 0 {
            options.replication_factor_min = self.config.replication_factor_min;
            options.replication_factor_max = self.config.replication_factor_max;
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
    fn allocate(
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
        let now = Timestamp::now();
        let candidates: Vec<Candidate> = {
            let metrics = self.metrics.lock().expect("metrics lock");
            peers
                .iter()
                .filter_map(|peer| {
                    let free_space = match metrics.latest(FREESPACE, peer) {
                        // Never reported (just started or joined): a candidate after the others.
                        None => None,
                        // Expired (likely down) or full: not a candidate, as in Go.
                        Some(m) if m.is_expired(now) || !m.valid => return None,
                        Some(m) => Some(m.value.parse::<u64>().unwrap_or(0)),
                    };
                    Some(Candidate {
                        peer: *peer,
                        free_space,
                        tie_break: rendezvous_rank(&pin.cid, peer),
                    })
                })
                .collect()
        };
        let current = existing.map(|p| p.allocations.as_slice()).unwrap_or_default();
        let request = cluster_allocator::Request {
            min: pin.options.replication_factor_min as usize,
            max: pin.options.replication_factor_max as usize,
            current,
            priority: user_allocations,
        };
        let chosen = cluster_allocator::allocate(&candidates, &request)
            .map_err(|e| ClusterError::NotEnoughPeers(e.to_string()))?;
        pin.allocations = chosen;
        Ok(())
    }

    /// Pins `cid` cluster-wide and returns the pin as committed.
    pub async fn pin(&self, cid: Cid, options: PinOptions) -> Result<Pin, ClusterError> {
        let user_allocations = options.user_allocations.clone().unwrap_or_default();
        let existing = self
            .state
            .get(&cid)
            .map_err(|e| ClusterError::Internal(e.to_string()))?;
        // A pin update starts from the allocations of the pin it replaces.
        let allocation_base = match &options.pin_update {
            Some(from) if *from != cid && existing.is_none() => self
                .state
                .get(from)
                .map_err(|e| ClusterError::Internal(e.to_string()))?,
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

    /// Switches on a deliberate bug: pins are acknowledged before they are committed. Only the
    /// simulator's self-test uses it, to prove its invariants catch a lost acknowledged pin.
    pub fn inject_bug_ack_before_commit(&self, on: bool) {
        self.bug_ack_before_commit
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Unpins `cid` cluster-wide and returns the removed pin.
    pub async fn unpin(&self, cid: Cid) -> Result<Pin, ClusterError> {
        let existing = self
            .state
            .get(&cid)
            .map_err(|e| ClusterError::Internal(e.to_string()))?;
        match existing {
            None => Err(ClusterError::NotFound),
            Some(pin) if pin.pin_type != PinType::Data => Err(ClusterError::InvalidArgument(format!(
                "cannot unpin {cid} directly: it is a {:?} pin of a sharded upload",
                pin.pin_type
            ))),
            Some(_) => self.consensus.log_unpin(cid).await,
        }
    }

    /// The leader's record, waiting up to `wait_for_leader_timeout` for one; `None` when this
    /// member is the leader.
    async fn leader_member(&self) -> Result<Option<MemberNode>, ClusterError> {
        let leader = self
            .consensus
            .wait_for_leader(self.config.raft.wait_for_leader_timeout)
            .await?;
        if leader == self.consensus.node_id() {
            return Ok(None);
        }
        self.consensus
            .members()
            .into_iter()
            .find(|(id, _)| *id == leader)
            .map(|(_, node)| Some(node))
            .ok_or_else(|| ClusterError::NoLeader(format!("the leader (node {leader}) is not in the member list")))
    }

    /// Sends a membership request to the leader (or serves it here when this member leads).
    async fn to_leader(&self, request: RpcRequest, timeout: Duration) -> Result<RpcResponse, ClusterError> {
        let Some(leader) = self.leader_member().await? else {
            return Ok(Box::pin(ClusterRpcHandler::serve_membership(self, request)).await);
        };
        let rpc = self
            .rpc
            .as_ref()
            .ok_or_else(|| ClusterError::Internal("no transport to reach the leader".into()))?;
        rpc.call(&leader, request, timeout).await.map_err(|e| match e {
            TransportFailure::Unreachable(e) => ClusterError::NoLeader(format!("leader {leader} unreachable: {e}")),
            TransportFailure::Network(e) => ClusterError::Timeout(format!(
                "no answer from leader {leader} ({e}); the change may or may not be done"
            )),
        })
    }

    /// Adds `member` to the cluster (Go `PeerAdd`): as a learner until it has caught up, then
    /// as a voter. Served by the leader; other members forward it.
    pub async fn peer_add(&self, member: MemberNode) -> Result<MemberNode, ClusterError> {
        let peer: PeerId = member
            .peer_id
            .parse()
            .map_err(|e| ClusterError::InvalidArgument(format!("peer id {:?}: {e}", member.peer_id)))?;
        if member.address.is_empty() {
            if let Some((_, known)) = self
                .consensus
                .members()
                .into_iter()
                .find(|(_, n)| n.peer_id == member.peer_id)
            {
                return Ok(known);
            }
            return Err(ClusterError::InvalidArgument(format!(
                "peer {peer} is not a member and no address is known for it: start it with --bootstrap <an address of this cluster>"
            )));
        }
        let added = match self
            .to_leader(RpcRequest::PeerAdd(member.clone()), MEMBERSHIP_TIMEOUT)
            .await?
        {
            RpcResponse::PeerAdd(result) => result?,
            other => {
                return Err(ClusterError::Internal(format!(
                    "unexpected answer to peer add: {other:?}"
                )))
            }
        };
        self.wait_promoted(&member, None).await?;
        Ok(added)
    }

    /// Asks the leader (through `through`, else directly) to make `member` a voter until it is
    /// one: it must first catch up as a learner. Fails when it makes no progress for
    /// [`PROMOTION_STALL`] (it died, or cannot be reached): it then stays a learner, which
    /// costs no quorum, until it asks to join again.
    async fn wait_promoted(&self, member: &MemberNode, through: Option<&MemberNode>) -> Result<(), ClusterError> {
        let mut best = None;
        let mut progress_at = cluster_rt::now();
        loop {
            let request = RpcRequest::PeerPromote(member.clone());
            let answer = match (through, &self.rpc) {
                (Some(through), Some(rpc)) => rpc
                    .call(through, request, MEMBERSHIP_TIMEOUT)
                    .await
                    .map_err(|e| ClusterError::NoLeader(format!("{through}: {e:?}"))),
                _ => self.to_leader(request, MEMBERSHIP_TIMEOUT).await,
            };
            let why = match answer {
                Ok(RpcResponse::PeerPromote(Ok(Promotion::Voter))) => return Ok(()),
                Ok(RpcResponse::PeerPromote(Ok(Promotion::CatchingUp { matched, last }))) => {
                    if matched > best {
                        best = matched;
                        progress_at = cluster_rt::now();
                    }
                    format!("caught up to {matched:?} of {last}")
                }
                Ok(RpcResponse::PeerPromote(Err(e @ ClusterError::InvalidArgument(_)))) => return Err(e),
                Ok(RpcResponse::PeerPromote(Err(e))) | Err(e) => e.to_string(),
                Ok(other) => format!("unexpected answer {other:?}"),
            };
            if cluster_rt::now() - progress_at >= PROMOTION_STALL {
                return Err(ClusterError::Timeout(format!(
                    "{member} made no progress catching up for {PROMOTION_STALL:?} ({why}); it stays a learner, \
                     which does not vote, until it joins again"
                )));
            }
            tracing::debug!("{member} is not a voter yet: {why}");
            cluster_rt::sleep(PROMOTION_POLL).await;
        }
    }

    /// Removes `peer` from the cluster (Go `PeerRemove`): first moves the pins allocated to it
    /// to other members, then removes it from Raft. Served by the leader. Removing a peer that
    /// is not a member succeeds and changes nothing, as Go's Raft `RemovePeer`, so scripts may
    /// repeat it; the leader decides, since another member's view may lag behind a join.
    pub async fn peer_remove(&self, peer: PeerId) -> Result<(), ClusterError> {
        match self.to_leader(RpcRequest::PeerRemove(peer), MEMBERSHIP_TIMEOUT).await? {
            RpcResponse::PeerRemove(result) => result,
            other => Err(ClusterError::Internal(format!(
                "unexpected answer to peer rm: {other:?}"
            ))),
        }
    }

    /// Joins the cluster through the `--bootstrap` members, in order, unless this member
    /// already belongs to one. Call it once the transport serves this member's handler: the
    /// leader sends it the log (or a snapshot) before answering.
    pub async fn join(&self) -> Result<(), ClusterError> {
        if self.bootstrap.is_empty() {
            return Ok(());
        }
        // A voter in its own log's membership. Not openraft's `is_initialized`: that is true as
        // soon as any leader's heartbeat set our vote, and a join cut short after the learner
        // step must be sent again to be promoted.
        if self.consensus.is_voter(self.consensus.node_id()) {
            tracing::info!("already a cluster member; --bootstrap ignored");
            return Ok(());
        }
        let rpc = self
            .rpc
            .as_ref()
            .ok_or_else(|| ClusterError::Internal("no transport to join with".into()))?;
        // Members started together: the bootstrap member may not listen yet, or still be
        // starting, or the cluster between two leaders. They are tried again for a while;
        // anything else (a refusal, a failed handshake: another secret) is final.
        let patience = self.config.raft.wait_for_leader_timeout * JOIN_PATIENCE_LEADER_WAITS;
        let deadline = cluster_rt::now() + patience;
        loop {
            let mut failures = Vec::new();
            let mut answered = false;
            for through in &self.bootstrap {
                tracing::info!("joining the cluster through {through}");
                let answer = rpc
                    .call(through, RpcRequest::PeerAdd(self.me_member.clone()), MEMBERSHIP_TIMEOUT)
                    .await;
                match answer {
                    Ok(RpcResponse::PeerAdd(Ok(_))) => {
                        tracing::info!("catching up as a learner before voting");
                        self.wait_promoted(&self.me_member, Some(through)).await?;
                        self.consensus
                            .wait_for_leader(self.config.raft.wait_for_leader_timeout)
                            .await?;
                        tracing::info!("joined the cluster through {through}");
                        self.publish_metrics().await;
                        return Ok(());
                    }
                    Ok(RpcResponse::PeerAdd(Err(e))) => {
                        // Between two leaders, or without a quorum for now: worth another try.
                        answered |= !matches!(
                            e,
                            ClusterError::NoLeader(_) | ClusterError::NoQuorum(_) | ClusterError::Timeout(_)
                        );
                        failures.push(format!("{through}: {e}"));
                    }
                    Ok(other) => {
                        answered = true;
                        failures.push(format!("{through}: unexpected answer {other:?}"));
                    }
                    Err(e) => {
                        // Someone answered the dial (a handshake that failed: another secret),
                        // unless nothing listens there yet or the member is still starting.
                        answered |= !not_up_yet(&e);
                        failures.push(format!("{through}: {e:?}"));
                    }
                }
            }
            if answered || cluster_rt::now() >= deadline {
                return Err(ClusterError::Internal(format!(
                    "could not join the cluster: {}",
                    failures.join("; ")
                )));
            }
            tracing::warn!(
                "no bootstrap member reachable yet ({}); trying again for up to {patience:?}",
                failures.join("; ")
            );
            cluster_rt::sleep(JOIN_RETRY).await;
        }
    }

    /// The leader's side of `peer rm`: re-allocates every pin held by `peer`, then removes it.
    async fn remove_member_as_leader(&self, peer: PeerId) -> Result<(), ClusterError> {
        if !self
            .consensus
            .members()
            .iter()
            .any(|(_, n)| n.peer_id == peer.to_string())
        {
            tracing::info!("{peer} is not among the cluster's members: nothing to remove");
            return Ok(());
        }
        // Moving pins and the removal are Raft writes: without a quorum, say so at once, or
        // when a write times out for lack of one.
        self.consensus.require_quorum()?;
        let no_quorum_first = |e: ClusterError| match (self.consensus.require_quorum(), &e) {
            (Err(ClusterError::NoQuorum(why)), ClusterError::Timeout(_)) => ClusterError::NoQuorum(format!(
                "{why} (what was already written stays in the log and is done if the members come back)"
            )),
            (Err(no_quorum @ ClusterError::NoQuorum(_)), _) => no_quorum,
            _ => e,
        };
        let moved = self.repair_allocations(Some(&peer)).await.map_err(no_quorum_first)?;
        tracing::info!("moved {moved} pins away from {peer}; removing it from the cluster");
        self.metrics.lock().expect("metrics lock").forget(&peer);
        self.consensus
            .remove_member(node_id_of(&peer))
            .await
            .map_err(no_quorum_first)?;
        // Pins allocated to the peer while it was leaving.
        let late = self.repair_allocations(None).await?;
        if late > 0 {
            tracing::info!("moved {late} more pins allocated to {peer} while it was leaving");
        }
        Ok(())
    }

    /// This member's identity, asking the IPFS daemon for its own.
    pub async fn id(&self) -> Id {
        let ipfs = match self.ipfs.id().await {
            Ok(id) => id,
            Err(e) => IpfsId {
                id: String::new(),
                addresses: Vec::new(),
                error: e.to_string(),
            },
        };
        let peer = self.identity.peer_id;
        Id {
            id: peer,
            addresses: self
                .config
                .listen_multiaddress
                .iter()
                .map(|a| format!("{a}/p2p/{peer}"))
                .collect(),
            cluster_peers: self.member_peers(),
            cluster_peers_addresses: Vec::new(),
            version: VERSION.to_string(),
            commit: String::new(),
            rpc_protocol_version: RPC_PROTOCOL_VERSION.to_string(),
            error: String::new(),
            ipfs,
            peername: self.config.peername.clone(),
        }
    }
}

/// Whether a call failed because the member is not up yet: nothing listens at its address (the
/// operating system's "connection refused", as the transports report it), or it answered that
/// it is still starting.
fn not_up_yet(failure: &TransportFailure) -> bool {
    match failure {
        TransportFailure::Unreachable(message) => {
            message.to_ascii_lowercase().contains("connection refused") || message.contains(MEMBER_STARTING)
        }
        TransportFailure::Network(_) => false,
    }
}

/// One reading of the transport's traffic counters.
#[derive(Debug, Clone, Copy)]
struct TrafficSample {
    at: cluster_rt::tokio::time::Instant,
    totals: Traffic,
    rates: (f64, f64),
}

/// FNV-1a 64 of the CID and member bytes: the member's rank for this CID among members with equal
/// free space, so equal members share pins evenly (rendezvous hashing).
fn rendezvous_rank(cid: &Cid, peer: &PeerId) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in cid.to_bytes().into_iter().chain(peer.to_bytes()) {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The file of known member addresses beside service.json (Go's `peerstore`: one multiaddress
/// with `/p2p/<peer id>` per line).
pub const PEERSTORE_FILE: &str = "peerstore";

/// The member records in a peerstore file; a missing file or bad lines give nothing (warned).
fn read_peerstore(path: &std::path::Path) -> Vec<MemberNode> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| match member_of_address(line) {
            Ok(member) => Some(member),
            Err(e) => {
                tracing::warn!("{}: ignoring {line:?}: {e}", path.display());
                None
            }
        })
        .collect()
}

/// A member record from an `init_peerset` address (`/ip4/../tcp/../p2p/<peer id>`).
fn member_of_address(address: &str) -> Result<MemberNode, NodeError> {
    let parsed: multiaddr::Multiaddr = address
        .parse()
        .map_err(|e| NodeError::Config(format!("consensus.raft.init_peerset: {address:?}: {e}")))?;
    let peer = parsed
        .iter()
        .find_map(|p| match p {
            multiaddr::Protocol::P2p(peer) => Some(peer.to_string()),
            _ => None,
        })
        .ok_or_else(|| {
            NodeError::Config(format!(
                "consensus.raft.init_peerset: {address:?} has no /p2p/<peer id>"
            ))
        })?;
    peer.parse::<PeerId>()
        .map_err(|e| NodeError::Config(format!("consensus.raft.init_peerset: {address:?}: {e}")))?;
    let without_peer: multiaddr::Multiaddr = parsed
        .iter()
        .filter(|p| !matches!(p, multiaddr::Protocol::P2p(_)))
        .collect();
    Ok(MemberNode {
        peer_id: peer,
        address: without_peer.to_string(),
    })
}

/// Forwards writes to the leader over RPC.
struct RpcForwarder {
    rpc: Arc<dyn Transport>,
    timeout: std::time::Duration,
}

#[async_trait::async_trait]
impl LeaderForwarder for RpcForwarder {
    async fn forward(
        &self,
        leader: &MemberNode,
        command: Command,
    ) -> Result<Result<Committed, ClusterError>, TransportFailure> {
        match self.rpc.call(leader, RpcRequest::Commit(command), self.timeout).await? {
            RpcResponse::Commit(result) => Ok(result),
            other => Err(TransportFailure::Network(format!(
                "unexpected answer to a forwarded write: {other:?}"
            ))),
        }
    }
}

/// Serves other members' requests.
struct ClusterRpcHandler {
    cluster: Arc<Cluster>,
}

#[async_trait::async_trait]
impl RpcHandler for ClusterRpcHandler {
    async fn handle(&self, request: RpcRequest) -> RpcResponse {
        let raft = self.cluster.consensus.raft();
        match request {
            RpcRequest::AppendEntries(r) => {
                RpcResponse::AppendEntries(raft.append_entries(r).await.map_err(|e| e.to_string()))
            }
            RpcRequest::Vote(r) => {
                // A candidate this member does not count as a member, and whose log is not
                // ahead of this member's (one removed while it was away), is told so, and its
                // term never reaches Raft. A candidate with a longer log may know of a change
                // this member missed (its own addition): Raft decides as usual.
                let candidate = r.vote.leader_id().voted_for();
                let members = self.cluster.consensus.members();
                let stranger =
                    candidate.is_some_and(|c| !members.is_empty() && !members.iter().any(|(id, _)| *id == c));
                let theirs = r.last_log_id.map(|log_id| log_id.index);
                let not_ahead = theirs <= self.cluster.consensus.last_log_index();
                if stranger && not_ahead {
                    tracing::info!("refused a vote request from node {candidate:?}: not a member of this cluster");
                    return RpcResponse::NotAMember;
                }
                RpcResponse::Vote(raft.vote(r).await.map_err(|e| e.to_string()))
            }
            RpcRequest::InstallSnapshot(r) => {
                RpcResponse::InstallSnapshot(raft.install_snapshot(r).await.map_err(|e| e.to_string()))
            }
            RpcRequest::Commit(command) => RpcResponse::Commit(self.cluster.consensus.commit_local(command).await),
            RpcRequest::Status(cid) => RpcResponse::Status(self.cluster.tracker.status(&cid).await),
            RpcRequest::Recover(cid) => RpcResponse::Recover(self.cluster.tracker.recover(&cid).await),
            RpcRequest::RecoverAll => RpcResponse::RecoverAll(self.cluster.recover_all_local().await),
            RpcRequest::Id => RpcResponse::Id(Cluster::id(&self.cluster).await),
            RpcRequest::PushMetric(metric) => {
                self.cluster.metrics.lock().expect("metrics lock").record(metric);
                RpcResponse::PushMetric
            }
            RpcRequest::RepoGc => RpcResponse::RepoGc(self.cluster.repo_gc_local().await),
            RpcRequest::BlockPut(blocks) => RpcResponse::BlockPut(self.cluster.put_blocks_locally(blocks).await),
            RpcRequest::RepoStat => RpcResponse::RepoStat(
                self.cluster
                    .ipfs
                    .repo_stat()
                    .await
                    .map(|stat| (stat.repo_size, stat.storage_max))
                    .map_err(|e| e.to_string()),
            ),
            RpcRequest::SwarmPeers => {
                RpcResponse::SwarmPeers(self.cluster.ipfs.swarm_peers().await.map_err(|e| e.to_string()))
            }
            request @ (RpcRequest::PeerAdd(_) | RpcRequest::PeerPromote(_) | RpcRequest::PeerRemove(_)) => {
                ClusterRpcHandler::serve_membership(&self.cluster, request).await
            }
        }
    }
}

impl ClusterRpcHandler {
    /// Membership requests: served on the leader, forwarded once by any other member.
    async fn serve_membership(cluster: &Cluster, request: RpcRequest) -> RpcResponse {
        let leading = cluster.consensus.is_leader();
        match request {
            RpcRequest::PeerAdd(member) if leading => {
                // Forget what an earlier incarnation of this peer reported.
                if let Ok(peer) = member.peer_id.parse::<PeerId>() {
                    cluster.metrics.lock().expect("metrics lock").forget(&peer);
                }
                let added = cluster.consensus.add_learner(member.clone()).await.map(|()| member);
                RpcResponse::PeerAdd(added)
            }
            RpcRequest::PeerPromote(member) if leading => {
                let promoted = match member.peer_id.parse::<PeerId>() {
                    Ok(peer) => {
                        let node = node_id_of(&peer);
                        // A learner that caught up and then died still looks caught up: it must
                        // answer before it gets a vote.
                        if !cluster.consensus.is_voter(node) {
                            let alive = cluster
                                .call_member(&member, RpcRequest::Id, LEARNER_ALIVE_TIMEOUT)
                                .await;
                            if let Err(e) = alive {
                                let answer = Err(ClusterError::Timeout(format!(
                                    "{member} does not answer ({e:?}); not promoted"
                                )));
                                return RpcResponse::PeerPromote(answer);
                            }
                        }
                        cluster.consensus.promote_if_caught_up(node).await
                    }
                    Err(e) => Err(ClusterError::InvalidArgument(format!(
                        "peer id {:?}: {e}",
                        member.peer_id
                    ))),
                };
                RpcResponse::PeerPromote(promoted)
            }
            // Not the leader: forwarded once, as it is.
            request @ (RpcRequest::PeerAdd(_) | RpcRequest::PeerPromote(_)) => {
                let adding = matches!(request, RpcRequest::PeerAdd(_));
                match Box::pin(cluster.to_leader(request, MEMBERSHIP_TIMEOUT)).await {
                    Ok(answer) => answer,
                    Err(e) if adding => RpcResponse::PeerAdd(Err(e)),
                    Err(e) => RpcResponse::PeerPromote(Err(e)),
                }
            }
            RpcRequest::PeerRemove(peer) if leading => {
                RpcResponse::PeerRemove(cluster.remove_member_as_leader(peer).await)
            }
            RpcRequest::PeerRemove(peer) => RpcResponse::PeerRemove(Box::pin(cluster.peer_remove(peer)).await),
            other => RpcResponse::PeerRemove(Err(ClusterError::Internal(format!(
                "not a membership request: {other:?}"
            )))),
        }
    }
}

/// Parses `/ipfs/<cid>` paths; deeper paths need the daemon's `resolve`, not supported yet.
/// The CID a path names directly: `Some` for `/ipfs/<cid>` or `/ipld/<cid>` (Go resolves these
/// without asking the daemon), `None` when the daemon must resolve it (`/ipns/...`, sub-paths).
fn direct_cid_of_path(path: &str) -> Result<Option<Cid>, ClusterError> {
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

fn spawn_stream<T: Send + 'static>(
    producer: impl FnOnce(mpsc::Sender<Result<T, ClusterError>>) -> futures::future::BoxFuture<'static, ()>,
) -> ResultStream<T> {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    cluster_rt::spawn(producer(tx));
    rx
}

#[async_trait::async_trait]
impl RestBackend for Cluster {
    async fn id(&self) -> Id {
        Cluster::id(self).await
    }

    async fn peer_add(&self, peer: PeerId, addresses: Vec<String>) -> Result<Id, ClusterError> {
        let address = match addresses.first() {
            None => String::new(),
            Some(text) => {
                let with_peer = format!("{}/p2p/{peer}", text.trim_end_matches(&format!("/p2p/{peer}")));
                member_of_address(&with_peer)
                    .map_err(|e| ClusterError::InvalidArgument(format!("address {text:?}: {e}")))?
                    .address
            }
        };
        let member = self
            .peer_add(MemberNode {
                peer_id: peer.to_string(),
                address,
            })
            .await?;
        if peer == self.identity.peer_id {
            return Ok(Cluster::id(self).await);
        }
        let rpc = self
            .rpc
            .as_ref()
            .ok_or_else(|| ClusterError::Internal("no transport".into()))?;
        match rpc.call(&member, RpcRequest::Id, STATUS_TIMEOUT).await {
            Ok(RpcResponse::Id(id)) => Ok(id),
            other => Err(ClusterError::Internal(format!(
                "peer {peer} was added but did not answer: {other:?}"
            ))),
        }
    }

    async fn peer_remove(&self, peer: PeerId) -> Result<(), ClusterError> {
        Cluster::peer_remove(self, peer).await
    }

    async fn metric_names(&self) -> Vec<String> {
        Cluster::metric_names(self)
    }

    async fn metrics(&self, name: String) -> Vec<Metric> {
        self.fresh_metrics(&name)
    }

    async fn alerts(&self) -> Vec<Alert> {
        Cluster::alerts(self)
    }

    async fn bandwidth(&self) -> BTreeMap<String, Bandwidth> {
        Cluster::bandwidth(self)
    }

    async fn connect_graph(&self) -> Result<ConnectGraph, ClusterError> {
        Ok(Cluster::connect_graph(self).await)
    }

    async fn add_destinations(&self, options: &PinOptions, local: bool) -> Result<Vec<PeerId>, ClusterError> {
        Cluster::add_destinations(self, options, local)
    }

    async fn add_blocks(&self, destinations: &[PeerId], blocks: Vec<(Cid, Bytes)>) -> Result<(), ClusterError> {
        Cluster::add_blocks(self, destinations, blocks).await
    }

    async fn add_pin(&self, root: Cid, options: PinOptions, destinations: Vec<PeerId>) -> Result<Pin, ClusterError> {
        Cluster::add_pin(self, root, options, destinations).await
    }

    async fn repo_stat_all(&self) -> Result<(u64, u64), ClusterError> {
        let asks = self.members().into_iter().map(|member| async move {
            if member.peer_id == self.me_member.peer_id {
                return self
                    .ipfs
                    .repo_stat()
                    .await
                    .map(|stat| (stat.repo_size, stat.storage_max))
                    .map_err(|e| e.to_string());
            }
            match self.call_member(&member, RpcRequest::RepoStat, STATUS_TIMEOUT).await {
                Ok(RpcResponse::RepoStat(answer)) => answer.map_err(|e| format!("{}: {e}", member.peer_id)),
                other => Err(format!("{}: {other:?}", member.peer_id)),
            }
        });
        let mut total = (0u64, 0u64);
        for answer in futures::future::join_all(asks).await {
            // As Go: a member that cannot answer is logged and left out of the sum.
            match answer {
                Ok((size, max)) => total = (total.0.saturating_add(size), total.1.saturating_add(max)),
                Err(e) => tracing::warn!("repo/stat: a member did not answer: {e}"),
            }
        }
        Ok(total)
    }

    async fn repo_gc(&self, local: bool) -> Result<GlobalRepoGc, ClusterError> {
        if local {
            let gc = self.repo_gc_local().await;
            return Ok(GlobalRepoGc {
                peer_map: BTreeMap::from([(gc.peer.to_string(), gc)]),
            });
        }
        Ok(self.repo_gc_everywhere().await)
    }

    async fn peers(&self) -> ResultStream<Id> {
        // Members are few (Raft clusters stay small); ask them one by one as Go's IDStream does.
        let ids = self.peers_list().await;
        let (tx, rx) = mpsc::channel(ids.len().max(1));
        for id in ids {
            let _ = tx.send(Ok(id)).await;
        }
        rx
    }

    async fn pin(&self, cid: Cid, options: PinOptions) -> Result<Pin, ClusterError> {
        Cluster::pin(self, cid, options).await
    }

    async fn pin_path(&self, path: String, options: PinOptions) -> Result<Pin, ClusterError> {
        let cid = self.resolve_path(&path).await?;
        Cluster::pin(self, cid, options).await
    }

    async fn unpin(&self, cid: Cid) -> Result<Pin, ClusterError> {
        Cluster::unpin(self, cid).await
    }

    async fn unpin_path(&self, path: String) -> Result<Pin, ClusterError> {
        let cid = self.resolve_path(&path).await?;
        Cluster::unpin(self, cid).await
    }

    async fn resolve_path(&self, path: String) -> Result<Cid, ClusterError> {
        Cluster::resolve_path(self, &path).await
    }

    async fn allocations(&self, type_mask: u32) -> ResultStream<Pin> {
        let state = self.state.clone();
        spawn_stream(move |tx| {
            Box::pin(async move {
                let mut after: Option<Cid> = None;
                loop {
                    let page = match state.list_page(after.as_ref(), STATE_PAGE) {
                        Ok(page) => page,
                        Err(e) => {
                            let _ = tx.send(Err(ClusterError::Internal(e.to_string()))).await;
                            return;
                        }
                    };
                    let done = page.len() < STATE_PAGE;
                    after = page.last().map(|p| p.cid);
                    for pin in page {
                        if pin.pin_type.flag() & type_mask != 0 && tx.send(Ok(pin)).await.is_err() {
                            return;
                        }
                    }
                    if done {
                        return;
                    }
                }
            })
        })
    }

    async fn allocation(&self, cid: Cid) -> Result<Pin, ClusterError> {
        self.state
            .get(&cid)
            .map_err(|e| ClusterError::Internal(e.to_string()))?
            .ok_or(ClusterError::NotFound)
    }

    async fn status(&self, cid: Cid, local: bool) -> Result<GlobalPinInfo, ClusterError> {
        if local {
            return Ok(self.tracker.status(&cid).await.into_global());
        }
        self.global_status(cid).await
    }

    async fn status_all(
        &self,
        filter: TrackerStatusFilter,
        cids: Vec<Cid>,
        local: bool,
    ) -> ResultStream<GlobalPinInfo> {
        // A cluster of one answers from its tracker's stream, not pin by pin.
        if !local && self.rpc.is_some() && self.consensus.members().len() > 1 {
            if let Some(me) = self.me.upgrade() {
                return me.global_status_stream(filter, cids);
            }
        }
        if cids.is_empty() {
            let mut local = self.tracker.status_all(filter);
            return spawn_stream(move |tx| {
                Box::pin(async move {
                    while let Some(item) = local.recv().await {
                        if tx.send(item.map(|info| info.into_global())).await.is_err() {
                            return;
                        }
                    }
                })
            });
        }
        let tracker = self.tracker.clone();
        spawn_stream(move |tx| {
            Box::pin(async move {
                for cid in cids {
                    let info = tracker.status(&cid).await.into_global();
                    if info.matches(filter) && tx.send(Ok(info)).await.is_err() {
                        return;
                    }
                }
            })
        })
    }

    async fn recover(&self, cid: Cid, local: bool) -> Result<GlobalPinInfo, ClusterError> {
        if local || self.rpc.is_none() {
            return self.tracker.recover(&cid).await.map(|info| info.into_global());
        }
        self.recover_everywhere(cid).await
    }

    async fn recover_all(&self, local: bool) -> ResultStream<GlobalPinInfo> {
        if !local && self.rpc.is_some() {
            if let Some(me) = self.me.upgrade() {
                return me.recover_all_everywhere();
            }
        }
        let mut local = self.tracker.recover_all();
        spawn_stream(move |tx| {
            Box::pin(async move {
                while let Some(item) = local.recv().await {
                    if tx.send(item.map(|info| info.into_global())).await.is_err() {
                        return;
                    }
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peerstore_lines_become_member_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PEERSTORE_FILE);
        let peer = PeerId::from_ed25519_seed([4; 32]);
        std::fs::write(&path, format!("/ip4/10.0.0.4/tcp/9096/p2p/{peer}\n\nnot an address\n")).unwrap();
        let members = read_peerstore(&path);
        assert_eq!(
            members,
            vec![MemberNode {
                peer_id: peer.to_string(),
                address: "/ip4/10.0.0.4/tcp/9096".into()
            }]
        );
        assert!(read_peerstore(&dir.path().join("missing")).is_empty());
    }

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
