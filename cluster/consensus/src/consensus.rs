//! [`Consensus`]: the node's handle on Raft. Commits pin/unpin commands (batched on the
//! leader, forwarded from followers), waits for a leader, serves AppendEntries, compacts the log
//! and shuts down. Membership changes live in `membership.rs`, the election watch in
//! `election_watch.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cluster_state::{Disk, State};
use cluster_types::{Cid, ClusterError, PeerId, Pin};
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use openraft::{Raft, ServerState};

use crate::election_watch::{Timing, WatchShared};
use crate::write_batch::{commit_one, WriteBatcher, WriteFailure};
use crate::{
    node_id_of, raft_error, ApplyObserver, Command, CommandResponse, Committed, ConsensusError, LogStore, MemberNode,
    NodeId, PinsetStateMachine, RaftConfig, RaftTransport, StorageHealth, TransportFailure, TransportNetworkFactory,
    TypeConfig,
};

/// How often a write retries while there is no leader.
pub(crate) const LEADER_POLL: Duration = Duration::from_millis(50);
/// How long a shutdown waits for Raft to stop.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// Sends a write to the leader when this member is not it (the RPC layer implements it).
#[async_trait::async_trait]
pub trait LeaderForwarder: Send + Sync + 'static {
    /// Asks `leader` to commit `command`. `Err(TransportFailure::Unreachable)` means it was
    /// not delivered; any other failure leaves the outcome unknown.
    async fn forward(
        &self,
        leader: &MemberNode,
        command: Command,
    ) -> Result<Result<Committed, ClusterError>, TransportFailure>;
}

/// The consensus component of one member.
#[derive(Clone)]
pub struct Consensus {
    pub(crate) raft: Raft<TypeConfig>,
    pub(crate) node_id: NodeId,
    pub(crate) config: RaftConfig,
    pub(crate) forwarder: Option<Arc<dyn LeaderForwarder>>,
    /// Held by one membership change at a time: openraft refuses a change while another is
    /// under way, so members joining together would otherwise fail all but one.
    pub(crate) membership_turn: Arc<cluster_rt::tokio::sync::Mutex<()>>,
    /// Whether the log and the pinset can be written.
    pub(crate) health: StorageHealth,
    /// The voters in this member's own log when it started: what it is until Raft's core
    /// first reports (its metrics start empty, and a restarted voter must not take itself
    /// for a newcomer meanwhile).
    pub(crate) voters_at_start: BTreeSet<NodeId>,
    /// The voter sets of that membership: two while a change was under way.
    pub(crate) configs_at_start: Vec<BTreeSet<NodeId>>,
    /// Whether this member was a learner of its own log's membership at start: a join cut
    /// short after the learner step.
    pub(crate) learner_at_start: bool,
    /// Group commit of concurrent writes on the leader.
    pub(crate) batcher: Arc<WriteBatcher>,
    /// When this member last accepted the leader's AppendEntries; elections its watch called.
    pub(crate) election_watch: Arc<WatchShared>,
    /// Calls an election when none settles or the leader falls silent (see
    /// `election_watch`); stopped at shutdown or when the last handle of this member's
    /// consensus is dropped.
    pub(crate) election_watch_task: Arc<crate::owned_task::OwnedTask>,
    /// Applies again what the pinset lost to another writer's failed commit (see
    /// `state_repair`); stopped at shutdown or with the last handle.
    state_repair_task: Arc<crate::owned_task::OwnedTask>,
    /// The pinset's periodic sync, waited for at shutdown.
    background_sync: crate::state_machine::BackgroundSync,
    /// What the state machine applied: a write through this member returns once it is.
    applied: crate::state_machine::AppliedIndex,
}

/// What a member's consensus is built from.
pub struct ConsensusDeps<'a> {
    /// This member.
    pub peer: &'a PeerId,
    /// The folder of the durable log.
    pub raft_dir: &'a Path,
    /// Where the log database is opened.
    pub disk: Arc<dyn Disk>,
    /// The pinset the state machine applies to.
    pub state: Arc<dyn State>,
    /// Told of every applied change.
    pub observer: Arc<dyn ApplyObserver>,
    /// How Raft's messages reach the other members.
    pub transport: Arc<dyn RaftTransport>,
    /// Who forwards writes to a remote leader; without one, writes need this member to lead.
    pub forwarder: Option<Arc<dyn LeaderForwarder>>,
    /// Raft's settings.
    pub config: RaftConfig,
}

impl Consensus {
    /// Opens the durable log in `raft_dir` and starts Raft over `state`. The state machine
    /// resumes from what `state` had made durable; openraft re-applies the committed entries after it.
    pub async fn start(deps: ConsensusDeps<'_>) -> Result<Consensus, ConsensusError> {
        let ConsensusDeps {
            peer,
            raft_dir,
            disk,
            state,
            observer,
            transport,
            forwarder,
            config,
        } = deps;
        let node_id = node_id_of(peer);
        let max_append_entries = config.max_append_entries;
        let health = StorageHealth::default();
        let mut log_store = LogStore::open_on(disk, raft_dir, health.clone())?;
        let mut state_machine =
            PinsetStateMachine::new(state, observer, raft_dir, health.clone()).with_log(log_store.clone());
        let tombstoned = state_machine
            .tombstone_unapplied_log_tail()
            .await
            .map_err(|e| ConsensusError::Raft(e.to_string()))?;
        if tombstoned > 0 {
            tracing::info!(
                "{tombstoned} CIDs of log entries not yet applied are tombstoned until the state sync checks them"
            );
        }
        let membership_at_start = openraft::storage::StorageHelper::new(&mut log_store, &mut state_machine)
            .get_membership()
            .await
            .map_err(|e| ConsensusError::Raft(e.to_string()))?;
        let membership_at_start = membership_at_start.effective().membership();
        let voters_at_start = membership_at_start.voter_ids().collect();
        let configs_at_start = membership_at_start.get_joint_config().clone();
        let learner_at_start = membership_at_start.learner_ids().any(|id| id == node_id);
        let openraft_config = config.to_openraft("ipfs-cluster").map_err(ConsensusError::Raft)?;
        let state_repair_task = crate::state_repair::spawn(state_machine.clone());
        let background_sync = state_machine.background_sync();
        let applied = state_machine.applied_index();
        let voter_probe = crate::election_watch::VoterProbe {
            transport: transport.clone(),
            log: log_store.clone(),
        };
        let raft = Raft::new(
            node_id,
            Arc::new(openraft_config),
            TransportNetworkFactory::new(transport),
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| ConsensusError::Raft(e.to_string()))?;
        let openraft_config = raft.config();
        let election_watch = Arc::new(WatchShared::default());
        let election_watch_task = crate::election_watch::spawn(
            raft.clone(),
            node_id,
            Timing {
                election_timeout_max: Duration::from_millis(openraft_config.election_timeout_max),
                heartbeat: Duration::from_millis(openraft_config.heartbeat_interval),
            },
            election_watch.clone(),
            voter_probe,
        );
        Ok(Consensus {
            raft,
            node_id,
            config,
            forwarder,
            membership_turn: Arc::new(cluster_rt::tokio::sync::Mutex::new(())),
            health,
            voters_at_start,
            configs_at_start,
            learner_at_start,
            batcher: Arc::new(WriteBatcher::new(max_append_entries)),
            election_watch,
            election_watch_task: Arc::new(election_watch_task),
            state_repair_task: Arc::new(state_repair_task),
            background_sync,
            applied,
        })
    }

    /// `"<store>: <error>"` while this member's Raft log, pinset or snapshot cannot be written
    /// (its disk is full, say); Raft waits and retries meanwhile, and resumes on its own once
    /// the disk takes writes again.
    pub fn storage_failure(&self) -> Option<String> {
        self.health.failure()
    }

    fn storage_error(reason: String) -> ClusterError {
        ClusterError::storage(
            "this member cannot write to its disk; it resumes on its own once it can",
            reason,
        )
    }

    /// Whether this member has any Raft state (a vote or a log): false on a first start, or
    /// after its `raft` folder was lost.
    pub async fn has_raft_state(&self) -> Result<bool, ConsensusError> {
        self.raft
            .is_initialized()
            .await
            .map_err(|e| ConsensusError::Raft(e.to_string()))
    }

    /// Starts a new cluster with `members` unless this member already belongs to one (has a
    /// vote or log). Returns whether it initialized.
    pub async fn initialize_if_new(&self, members: BTreeMap<NodeId, MemberNode>) -> Result<bool, ConsensusError> {
        if self.has_raft_state().await? {
            return Ok(false);
        }
        assert!(
            members.contains_key(&self.node_id),
            "the initial members must include this member"
        );
        self.raft
            .initialize(members)
            .await
            .map_err(|e| ConsensusError::Raft(e.to_string()))?;
        Ok(true)
    }

    /// This member's Raft node id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The underlying openraft handle (for the RPC server that feeds it messages).
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Commits a pin (allocations already set) and returns it as committed.
    pub async fn log_pin(&self, pin: Pin) -> Result<Pin, ClusterError> {
        match self.write(Command::Pin(pin)).await? {
            CommandResponse::Pinned(pin) => Ok(pin),
            other => Err(ClusterError::unexpected_answer("Pin", other)),
        }
    }

    /// Commits `pin` in place of `previous` if the pinset still holds exactly `previous`;
    /// returns whether it did.
    pub async fn log_reallocation(&self, pin: Pin, previous: Pin) -> Result<bool, ClusterError> {
        match self
            .write(Command::Reallocate {
                pin,
                previous: Box::new(previous),
            })
            .await?
        {
            CommandResponse::Pinned(_) => Ok(true),
            CommandResponse::Unchanged => Ok(false),
            other => Err(ClusterError::unexpected_answer("Reallocate", other)),
        }
    }

    /// Commits `commands` as one log entry (one fsync), applied in order, and returns each
    /// one's response.
    pub async fn log_batch(&self, commands: Vec<Command>) -> Result<Vec<CommandResponse>, ClusterError> {
        let count = commands.len();
        match self.write(Command::Batch(commands)).await? {
            CommandResponse::Batch(responses) if responses.len() == count => Ok(responses),
            other => Err(ClusterError::unexpected_answer("Batch", other)),
        }
    }

    /// Commits the removal of a pin and returns the removed pin; `NotFound` if it was absent.
    pub async fn log_unpin(&self, cid: Cid) -> Result<Pin, ClusterError> {
        match self.write(Command::Unpin(cid)).await? {
            CommandResponse::Unpinned(Some(pin)) => Ok(pin),
            CommandResponse::Unpinned(None) => Err(ClusterError::NotFound),
            other => Err(ClusterError::unexpected_answer("Unpin", other)),
        }
    }

    /// Commits `command` only if this member is the leader (serves forwarded writes: never
    /// forwards again, so a write cannot loop between members).
    pub async fn commit_local(&self, command: Command) -> Result<Committed, ClusterError> {
        self.write_with(command, false).await
    }

    /// Commits `command` (here or through the leader). Returns once this member has applied
    /// it too, so a client reading through the member it wrote through sees its write; if that
    /// takes longer than the network timeout, returns anyway: the write is committed.
    async fn write(&self, command: Command) -> Result<CommandResponse, ClusterError> {
        let committed = self.write_with(command, true).await?;
        // Always so on the leader, which answers after applying.
        if self.applied.reached(committed.log_index) {
            return Ok(committed.response);
        }
        let applied = self
            .raft
            .wait(Some(self.config.network_timeout))
            .applied_index_at_least(Some(committed.log_index), "a forwarded write applied here")
            .await;
        if let Err(e) = applied {
            tracing::debug!(index = committed.log_index, "committed but not yet applied here: {e}");
        }
        Ok(committed.response)
    }

    async fn write_with(&self, command: Command, may_forward: bool) -> Result<Committed, ClusterError> {
        // Refused at once: Raft here waits for the disk, and the write would only time out.
        if let Some(reason) = self.health.failure() {
            return Err(Consensus::storage_error(reason));
        }
        let deadline = cluster_rt::now() + self.config.wait_for_leader_timeout;
        let commit = |command| commit_one(&self.raft, command);
        loop {
            let attempt = cluster_rt::timeout(
                self.config.wait_for_leader_timeout + self.config.network_timeout,
                async {
                    // Biased: no random draw, so the simulator's runs stay as they were.
                    cluster_rt::tokio::select! {
                        biased;
                        written = self.batcher.write(
                            command.clone(),
                            self.is_leader(),
                            &commit,
                        ) => Ok(written),
                        reason = self.health.failed() => Err(reason),
                    }
                },
            )
            .await;
            let written = match attempt {
                Err(_) => {
                    return Err(ClusterError::Timeout(
                        "consensus write timed out; it may or may not be committed".into(),
                    ))
                }
                Ok(Err(reason)) => {
                    return Err(ClusterError::Timeout(format!(
                        "this member cannot write to its disk ({reason}); the write may or may not be committed"
                    )))
                }
                Ok(Ok(written)) => written,
            };
            match written {
                Ok(committed) => return Ok(committed),
                Err(WriteFailure::Abandoned) => {
                    return Err(ClusterError::Timeout(
                        "the write's batch was given up half way; it may or may not be committed".into(),
                    ))
                }
                Err(WriteFailure::Unexpected(response)) => {
                    return Err(ClusterError::unexpected_answer("a batch of writes", response))
                }
                Err(WriteFailure::Raft(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                    match (forward.leader_id, forward.leader_node, &self.forwarder) {
                        (Some(leader), Some(node), Some(forwarder)) if leader != self.node_id && may_forward => {
                            match forwarder.forward(&node, command.clone()).await {
                                // It lost the leadership on the way (members elected at once
                                // after a leader's death) and wrote nothing: ask the next one
                                // (sim seed 3833417450 of the five-member failover).
                                Ok(Err(ClusterError::NoLeader(why))) => {
                                    tracing::debug!("forwarded write refused by {node}: {why}")
                                }
                                Ok(result) => return result,
                                // Not delivered: the leader may be gone; wait for the next one.
                                Err(TransportFailure::Unreachable(e)) => {
                                    tracing::debug!("forwarding to leader {node} failed: {e}")
                                }
                                Err(TransportFailure::Network(e)) => {
                                    return Err(ClusterError::Timeout(format!(
                                        "forwarded write to leader {node} got no answer ({e}); it may or may not be committed"
                                    )))
                                }
                            }
                        }
                        (Some(leader), _, _) if leader != self.node_id && !may_forward => {
                            return Err(ClusterError::NoLeader(format!(
                                "this member is not the leader (node {leader} is)"
                            )));
                        }
                        _ => {}
                    }
                }
                Err(WriteFailure::Raft(RaftError::APIError(e))) => return Err(ClusterError::Consensus(e.to_string())),
                Err(WriteFailure::Raft(fatal @ RaftError::Fatal(_))) => return Err(raft_error(fatal)),
            }
            if cluster_rt::now() >= deadline {
                return Err(ClusterError::NoLeader(format!(
                    "no raft leader after waiting {}",
                    cluster_types::duration::format(self.config.wait_for_leader_timeout)
                )));
            }
            // Tried again as soon as this member's view of the leader changes (after a
            // leader's death: first none, then the new one), at the latest after LEADER_POLL: a
            // write waiting for a new leader does not wait out a poll after the election. Only a
            // change seen while waiting counts: openraft's metrics may lag its answers, and an
            // attempt must not follow another at once on a difference between the two.
            let mut metrics = self.raft.metrics();
            let known = metrics.borrow_and_update().current_leader;
            let stopped = cluster_rt::timeout(LEADER_POLL, metrics.wait_for(|metrics| metrics.current_leader != known))
                .await
                .is_ok_and(|changed| changed.is_err());
            if stopped {
                cluster_rt::sleep(LEADER_POLL).await;
            }
        }
    }

    /// Waits until some member is leader; returns its node id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, ClusterError> {
        let deadline = cluster_rt::now() + timeout;
        loop {
            if let Some(leader) = self.raft.metrics().borrow().current_leader {
                return Ok(leader);
            }
            if cluster_rt::now() >= deadline {
                return Err(ClusterError::NoLeader(format!(
                    "no raft leader after waiting {}",
                    cluster_types::duration::format(timeout)
                )));
            }
            cluster_rt::sleep(LEADER_POLL).await;
        }
    }

    /// Whether this member is the leader now.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// The node this member's current vote is for (itself when it leads), if it voted.
    pub fn voted_for(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().vote.leader_id().voted_for()
    }

    /// The current Raft term of this member.
    pub fn current_term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// Serves a leader's AppendEntries (replication or heartbeat), noting the contact.
    pub async fn append_entries(
        &self,
        request: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        let leader = request.vote.leader_id().voted_for();
        let response = self.raft.append_entries(request).await?;
        if let (Some(leader), false) = (leader, matches!(response, AppendEntriesResponse::HigherVote(_))) {
            self.election_watch.heard(leader);
        }
        Ok(response)
    }

    /// How many elections this member's own watch called (a leader silent for its lease, or
    /// none for a while; see `election_watch`), against openraft's.
    pub fn elections_called(&self) -> u64 {
        self.election_watch.elections_called()
    }

    /// The current leader, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// The last applied log index (for tests and status).
    pub fn last_applied_index(&self) -> Option<u64> {
        self.raft.metrics().borrow().last_applied.map(|l| l.index)
    }

    /// The index of the last entry in this member's log.
    pub fn last_log_index(&self) -> Option<u64> {
        self.raft.metrics().borrow().last_log_index
    }

    /// Waits (up to the network timeout) until this member has applied every entry now in its
    /// log, so what a change made through the leader wrote is visible here; returns anyway on
    /// time out: the entries are committed and apply later. A change the leader made without
    /// answering through `write` (a membership change) needs it for read-your-writes.
    pub async fn apply_own_log(&self) {
        let Some(last) = self.last_log_index() else { return };
        let applied = self
            .raft
            .wait(Some(self.config.network_timeout))
            .applied_index_at_least(Some(last), "this member's log applied")
            .await;
        if let Err(e) = applied {
            tracing::debug!(index = last, "log not yet applied here: {e}");
        }
    }

    /// Asks openraft to build a snapshot now (tests, and `state` commands).
    pub async fn trigger_snapshot(&self) -> Result<(), ClusterError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| ClusterError::Consensus(e.to_string()))
    }

    /// Builds a snapshot and purges the log it covers; returns the purged-up-to index. Raft does
    /// this by itself every `snapshot_interval` entries; tests and `state` commands force it.
    pub async fn compact_log(&self) -> Result<Option<u64>, ClusterError> {
        let applied = self.last_applied_index();
        self.trigger_snapshot().await?;
        let mut metrics = self.raft.metrics();
        let deadline = cluster_rt::now() + Duration::from_secs(30);
        loop {
            let snapshot = metrics.borrow().snapshot.map(|l| l.index);
            if let Some(upto) = snapshot.filter(|index| Some(*index) >= applied) {
                self.raft
                    .trigger()
                    .purge_log(upto)
                    .await
                    .map_err(|e| ClusterError::Consensus(e.to_string()))?;
                return Ok(Some(upto));
            }
            if cluster_rt::now() >= deadline {
                return Err(ClusterError::Timeout("no snapshot within 30s".into()));
            }
            let _ = cluster_rt::timeout(Duration::from_millis(100), metrics.changed()).await;
        }
    }

    /// The last log index covered by this member's snapshot (built here or installed from the
    /// leader), if it has one.
    pub fn snapshot_index(&self) -> Option<u64> {
        self.raft.metrics().borrow().snapshot.map(|l| l.index)
    }

    /// Stops Raft. Pending writes fail. Raft waiting for a full disk cannot stop: after
    /// `SHUTDOWN_WAIT` the member stops without it (nothing unwritten was acknowledged).
    pub async fn shutdown(&self) {
        match cluster_rt::timeout(SHUTDOWN_WAIT, self.raft.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("raft shutdown: {e}"),
            Err(_) => tracing::warn!(
                "raft did not stop within {}{}; stopping without it",
                cluster_types::duration::format(SHUTDOWN_WAIT),
                self.health
                    .failure()
                    .map(|failure| format!(" (it waits for its disk: {failure})"))
                    .unwrap_or_default()
            ),
        }
        self.election_watch_task.stop().await;
        self.state_repair_task.stop().await;
        self.background_sync.finish().await;
    }
}
