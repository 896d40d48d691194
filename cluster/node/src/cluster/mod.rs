//! [`Cluster`]: one member. Validates and allocates pins, commits them through consensus
//! (forwarding to the leader over RPC when there are other members), answers status from its
//! tracker and the allocated members' trackers, serves other members' RPC requests, and runs
//! the periodic state sync and recover loops.
//!
//! Every `select!` here is `biased` (shutdown first): tokio's random branch order is seeded
//! from a process-wide counter, not from the simulator's seed.
//!
//! Layout (each file one concern, all of them `impl Cluster` over the struct defined here):
//! - `members`: the member list, calls to other members, the leader;
//! - `membership`: join, peer add and remove, removal noticed;
//! - `pinning`, `adding`: pins, allocations and their repair; content added through `/add`;
//! - `metrics`: informers, alerts, traffic;
//! - `queries`: status, recover, identities, GC and graph across members; `status_merge`: the
//!   members' statuses of a range of CIDs merged into one per CID;
//! - `loops`: the daemon watch and the periodic sync and recover passes;
//! - `peerstore`: member addresses; `rpc_handler`, `rest_backend`: the member as served to
//!   other members and to the REST API.

/// The closure a fan-out takes an answer with: the variant's value, or back any other response.
macro_rules! answer_of {
    ($variant:path) => {
        |answer: RpcResponse| match answer {
            $variant(value) => Ok(value),
            other => Err(Box::new(other)),
        }
    };
}

mod adding;
mod loops;
mod members;
mod membership;
mod metrics;
mod peerstore;
mod pinning;
mod queries;
mod rest_backend;
mod rpc_handler;
mod rpc_policy;
mod status_merge;
mod vouching;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_api::{PageStream, RestBackend, ResultStream};
use cluster_consensus::{
    node_id_of, raft_error, AppliedChange, ApplyObserver, Command, CommandResponse, Consensus, ConsensusDeps,
    LeaderForwarder, MemberNode, NoTransport, NodeId, Promotion, RaftTransport, TransportFailure,
};
use cluster_ipfs::{Bytes, GcEntry, IpfsConnector};
use cluster_monitor::informers::{self, Measured};
use cluster_monitor::{Monitor, PING};
use cluster_rpc::{
    LocalShortcut, MembershipRefusals, RaftOverRpc, RpcForwarder, RpcHandler, RpcRequest, RpcResponse, StatusPage,
    StatusRange, Traffic, Transport, WireBlock, MEMBER_STARTING, RECOVER_ALL_LISTED_MAX,
};
use cluster_rt::tokio::sync::{mpsc, watch};
use cluster_state::{BufferedState, Disk, RedbState, State};
use cluster_tracker::{ListingStore, PinTracker};
use cluster_types::{
    Alert, Bandwidth, Cid, ClusterError, ConnectGraph, GlobalPinInfo, GlobalRepoGc, Id, IpfsId, Metric, PeerId, Pin,
    PinInfo, PinInfoShort, PinOptions, PinType, RepoGc, RepoGcKey, Timestamp, TrackerStatus, TrackerStatusFilter,
    RPC_PROTOCOL_VERSION, VERSION,
};

use crate::config::validate_replication;
use crate::{DataFolder, Identity, NodeConfig, NodeError};

use membership::{LEARNER_ALIVE_TIMEOUT, MEMBERSHIP_TIMEOUT, MEMBERSHIP_WATCH};
use metrics::TrafficSample;
pub use peerstore::PEERSTORE_FILE;
use peerstore::{
    bootstrap_members, clear_joining, mark_joining, mark_member, member_of_address, read_peerstore, refuse_to_fork,
    write_peerstore, JOINING_MARKER_FILE, MEMBER_MARKER_FILE,
};
use queries::{spawn_stream, spawn_stream_buffered, PAGES_BUFFER, STATE_PAGE, STATUS_TIMEOUT};
use rpc_handler::{ClusterRpcHandler, OwnRpcHandler};

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

/// How Raft reaches the other members and how writes reach the leader: over the member RPC,
/// or nowhere for a cluster of one.
fn consensus_links(
    rpc: Option<&Arc<dyn Transport>>,
    refusals: &MembershipRefusals,
    forward_timeout: Duration,
) -> (Arc<dyn RaftTransport>, Option<Arc<dyn LeaderForwarder>>) {
    match rpc {
        Some(rpc) => (
            Arc::new(RaftOverRpc::new(rpc.clone(), refusals.clone())),
            Some(Arc::new(RpcForwarder::new(rpc.clone(), forward_timeout))),
        ),
        None => (Arc::new(NoTransport), None),
    }
}

/// Opens the redb pinset in the data folder, with unsynced commits (the applies) buffered in
/// memory until the state machine syncs it.
pub(crate) fn open_state(data: &DataFolder, disk: Arc<dyn Disk>) -> Result<Arc<dyn State>, NodeError> {
    let file = data.state_file();
    create_parent(&file)?;
    Ok(Arc::new(BufferedState::new(Arc::new(RedbState::open_on(disk, &file)?))))
}

/// Creates the folder `file` lives in (the real disk holds the simulator's folders too).
fn create_parent(file: &std::path::Path) -> Result<(), NodeError> {
    match file.parent() {
        Some(parent) => std::fs::create_dir_all(parent).map_err(|e| NodeError::Io {
            path: parent.display().to_string(),
            message: e.to_string(),
        }),
        None => Ok(()),
    }
}

/// Opens the scratch database the tracker lists the daemon's pins into.
fn open_listings(data: &DataFolder, disk: Arc<dyn Disk>) -> Result<ListingStore, NodeError> {
    let file = data.daemon_listing_file();
    create_parent(&file)?;
    Ok(ListingStore::open(disk, &file)?)
}

/// The membership a new cluster starts with: this member and `init_peerset`, whose bare peer
/// ids (Go's form) take their addresses from the `peerstore` file.
pub(crate) fn initial_members(
    config: &NodeConfig,
    identity: &Identity,
    data: &DataFolder,
    me_member: &MemberNode,
) -> Result<BTreeMap<NodeId, MemberNode>, NodeError> {
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
                .find(|m| m.peer_id == peer)
                .cloned()
                .ok_or_else(|| {
                    NodeError::Config(format!(
                        "consensus.raft.init_peerset: no address for {peer} in {PEERSTORE_FILE}; list it there as /ip4/<ip>/tcp/<port>/p2p/{peer}"
                    ))
                })?,
            Err(_) => member_of_address(entry)?,
        };
        if member.peer_id != identity.peer_id {
            members.insert(node_id_of(&member.peer_id), member);
        }
    }
    Ok(members)
}

/// Starts a new cluster with the initial members on a first start; nothing when this member
/// has a Raft log (the initial peer set and the peerstore are read only then: the peerstore
/// follows the membership since); refuses when its Raft state was lost while it belonged to a
/// cluster.
async fn initialize_unless_lost(
    consensus: &Consensus,
    config: &NodeConfig,
    identity: &Identity,
    data: &DataFolder,
    me_member: &MemberNode,
) -> Result<(), NodeError> {
    if !consensus.has_raft_state().await? {
        let members = initial_members(config, identity, data, me_member)?;
        refuse_to_fork(data, &members, &identity.peer_id)?;
        // Every member of a fixed initial set initializes with the same membership (allowed
        // by Raft: the first election decides).
        consensus.initialize_if_new(members).await?;
    }
    if let Err(e) = mark_member(data.path()) {
        tracing::warn!("writing {}: {e}", data.path().join(MEMBER_MARKER_FILE).display());
    }
    Ok(())
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
    /// Calls this member refused by its RPC policy.
    refused_calls: rpc_handler::RefusedCalls,
    /// What known voters answered about peers sending Raft messages this member's membership
    /// does not expect.
    vouches: Mutex<vouching::Vouches>,
    /// The latest metrics of every member, this one included.
    metrics: Mutex<Monitor>,
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
    /// Joining and not a voter in its own log yet: it refuses vote requests. A member that
    /// lost its Raft state is still a voter in the others' membership until the leader makes
    /// it a learner again; voting with an empty log it could elect a leader that lacks
    /// committed entries.
    joining: std::sync::atomic::AtomicBool,
    /// How many times this member, its join cut short and then dropped, asked to join again.
    joins_asked_again: std::sync::atomic::AtomicU64,
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
        let refusals = MembershipRefusals::default();
        let state = match state {
            Some(state) => state,
            None => open_state(&data, disk.clone())?,
        };
        let listings = open_listings(&data, disk.clone())?;
        let tracker = PinTracker::new(
            config.tracker.clone(),
            identity.peer_id,
            config.cluster.peername.clone(),
            ipfs.clone(),
            state.clone(),
            listings,
        );
        // Calls to this member itself are answered here, never sent over the network.
        let shortcut = rpc.map(|network| LocalShortcut::new(identity.peer_id, network));
        let rpc = shortcut.clone().map(|shortcut| shortcut as Arc<dyn Transport>);
        let (transport, forwarder) = consensus_links(rpc.as_ref(), &refusals, config.raft.network_timeout);
        let consensus = Consensus::start(ConsensusDeps {
            peer: &identity.peer_id,
            raft_dir: &data.raft_dir(),
            disk: disk.clone(),
            state: state.clone(),
            observer: Arc::new(TrackerObserver {
                tracker: tracker.clone(),
            }),
            transport,
            forwarder,
            config: config.raft.clone(),
        })
        .await?;
        let me_member = MemberNode {
            peer_id: identity.peer_id,
            address: advertised_address
                .unwrap_or_else(|| config.cluster.listen_multiaddress.first().cloned().unwrap_or_default()),
        };
        let bootstrap = bootstrap_members(&bootstrap)?;
        if bootstrap.is_empty() {
            initialize_unless_lost(&consensus, &config, &identity, &data, &me_member).await?;
        }
        tracker.start();
        let me = consensus.node_id();
        // Whatever its own log says: killed while the leader replayed the log to it, a member
        // holds the membership from before its demotion, in which it votes (sim seed 2359520668).
        let join_cut_short = data.path().join(JOINING_MARKER_FILE).exists();
        let joining =
            (!bootstrap.is_empty() && !consensus.is_voter(me)) || consensus.learner_at_start() || join_cut_short;
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
            refused_calls: Default::default(),
            vouches: Default::default(),
            metrics: Mutex::new(Monitor::default()),
            ipfs_identity: Mutex::new(None),
            traffic_sample: Mutex::new(None),
            data: Mutex::new(Some(data)),
            rpc,
            me_member,
            joining: std::sync::atomic::AtomicBool::new(joining),
            joins_asked_again: Default::default(),
            bootstrap,
            bug_ack_before_commit: std::sync::atomic::AtomicBool::new(false),
        });
        if let Some(shortcut) = shortcut {
            shortcut.serve(Arc::new(OwnRpcHandler {
                cluster: Arc::downgrade(&cluster),
            }));
        }
        cluster.spawn_loops();
        Ok(cluster)
    }

    /// Resolves once this member has been removed from the cluster.
    pub async fn removed(&self) {
        let mut removed = self.removed_tx.subscribe();
        let _ = removed.wait_for(|r| *r).await;
    }

    /// Whether this member is still joining (started with `--bootstrap`, not yet a voter).
    pub fn is_joining(&self) -> bool {
        self.joining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many times this member, its join cut short and then dropped from the membership,
    /// asked the members it knew to add it again (the simulator's regressions check they took
    /// that path).
    pub fn joins_asked_again(&self) -> u64 {
        self.joins_asked_again.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether this member has been removed from the cluster.
    pub fn is_removed(&self) -> bool {
        *self.removed_tx.borrow()
    }

    /// Whether this member can do its work: its disk takes writes (while it does not, Raft
    /// waits and retries), its Raft node runs and it was not removed. `/health` answers 503
    /// with the reason otherwise, and the member's free-space metric says it takes no pins.
    pub fn health(&self) -> Result<(), String> {
        if let Some(failure) = self.consensus.storage_failure() {
            return Err(format!(
                "cannot write to disk: {failure}; writes resume on their own once it can"
            ));
        }
        if let Err(fatal) = &self.consensus.raft().metrics().borrow().running_state {
            return Err(format!("raft stopped: {fatal}; the member needs a restart"));
        }
        if self.is_removed() {
            return Err("this member was removed from the cluster".into());
        }
        Ok(())
    }

    /// `Fatal` once this member was removed from the cluster: it takes no more writes (they
    /// would wait for a leader it will never hear from again).
    pub(super) fn refuse_if_removed(&self) -> Result<(), ClusterError> {
        match self.is_removed() {
            true => Err(ClusterError::Fatal(
                "this member was removed from the cluster; to join again, start it with --bootstrap".into(),
            )),
            false => Ok(()),
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
        if self.config.cluster.leave_on_shutdown && self.rpc.is_some() && !self.is_removed() {
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
        // Applies are committed without an fsync (the log replays them after a crash): a clean
        // stop leaves the pinset whole on disk, as `state export` reads it.
        if let Err(e) = self.state.sync() {
            tracing::warn!(
                "writing the pinset to disk at shutdown: {e}; the next start applies again from the raft log"
            );
        }
        self.data.lock().expect("data folder lock").take();
    }

    /// Switches on a deliberate bug: pins are acknowledged before they are committed. Only the
    /// simulator's self-test uses it, to prove its invariants catch a lost acknowledged pin.
    pub fn inject_bug_ack_before_commit(&self, on: bool) {
        self.bug_ack_before_commit
            .store(on, std::sync::atomic::Ordering::Relaxed);
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
                .cluster
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
            peername: self.config.cluster.peername.clone(),
        }
    }
}
