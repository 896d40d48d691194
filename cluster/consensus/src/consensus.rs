//! [`Consensus`]: the node's handle on Raft. Commits pin/unpin commands, waits for a leader,
//! reports members, and shuts down.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cluster_state::{Disk, State};
use cluster_types::{Cid, ClusterError, PeerId, Pin};
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use openraft::{Raft, ServerState};

use crate::election_jitter::{Timing, WatchShared};
use crate::write_batch::{commit_one, WriteBatcher, WriteFailure};
use crate::{
    node_id_of, raft_error, ApplyObserver, Command, CommandResponse, Committed, ConsensusError, MemberNode, NodeId,
    PinsetStateMachine, RaftConfig, RaftTransport, RedbLogStore, StorageHealth, TransportFailure,
    TransportNetworkFactory, TypeConfig,
};

/// A failed membership change as a cluster error: "not the leader" stays distinguishable.
fn membership_error(error: RaftError<NodeId, ClientWriteError<NodeId, MemberNode>>) -> ClusterError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => ClusterError::NoLeader(format!(
            "this member is not the leader (node {:?} is)",
            forward.leader_id
        )),
        other => ClusterError::Consensus(other.to_string()),
    }
}

/// How often a write retries while there is no leader.
const LEADER_POLL: Duration = Duration::from_millis(50);
/// How long a shutdown waits for Raft to stop.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// How long a membership change waits for one already under way to finish.
const MEMBERSHIP_BUSY_WAIT: Duration = Duration::from_secs(10);
/// A learner this close to the leader's last log index is caught up enough to vote: what is
/// left arrives with the next heartbeats.
pub const PROMOTION_LAG_MAX: u64 = 100;

/// Where a learner stands on its way to becoming a voter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Promotion {
    /// It votes now.
    Voter,
    /// Still catching up: the last log index the leader has replicated to it (none yet), and
    /// the leader's last log index.
    CatchingUp {
        /// Replicated to the learner so far.
        matched: Option<u64>,
        /// The leader's last log index.
        last: u64,
    },
}

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
    raft: Raft<TypeConfig>,
    node_id: NodeId,
    config: RaftConfig,
    forwarder: Option<Arc<dyn LeaderForwarder>>,
    /// Held by one membership change at a time: openraft refuses a change while another is
    /// under way, so members joining together would otherwise fail all but one.
    membership_turn: Arc<cluster_rt::tokio::sync::Mutex<()>>,
    /// Whether the log and the pinset can be written.
    health: StorageHealth,
    /// The voters in this member's own log when it started: what it is until Raft's core
    /// first reports (its metrics start empty, and a restarted voter must not take itself
    /// for a newcomer meanwhile).
    voters_at_start: BTreeSet<NodeId>,
    /// Whether this member was a learner of its own log's membership at start: a join cut
    /// short after the learner step.
    learner_at_start: bool,
    /// Group commit of concurrent writes on the leader.
    batcher: Arc<WriteBatcher>,
    /// When this member last accepted the leader's AppendEntries; elections its watch called.
    election_watch: Arc<WatchShared>,
    /// Calls an election when none settles or the leader falls silent (see
    /// `election_jitter`); stopped when the last handle of this member's consensus is dropped.
    _election_jitter: Arc<crate::election_jitter::JitterTask>,
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
        let mut log_store = RedbLogStore::open_on(disk, &raft_dir.join("log.redb"), health.clone())?;
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
        let learner_at_start = membership_at_start.learner_ids().any(|id| id == node_id);
        let openraft_config = config.to_openraft("ipfs-cluster").map_err(ConsensusError::Raft)?;
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
        let election_jitter = crate::election_jitter::spawn(
            raft.clone(),
            node_id,
            Timing {
                election_timeout_max: Duration::from_millis(openraft_config.election_timeout_max),
                heartbeat: Duration::from_millis(openraft_config.heartbeat_interval),
            },
            election_watch.clone(),
        );
        Ok(Consensus {
            raft,
            node_id,
            config,
            forwarder,
            membership_turn: Arc::new(cluster_rt::tokio::sync::Mutex::new(())),
            health,
            voters_at_start,
            learner_at_start,
            batcher: Arc::new(WriteBatcher::new(max_append_entries)),
            election_watch,
            _election_jitter: Arc::new(election_jitter),
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
        match self.write(Command::Reallocate { pin, previous }).await? {
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
            cluster_rt::sleep(LEADER_POLL).await;
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
    /// none for a while; see `election_jitter`), against openraft's.
    pub fn elections_called(&self) -> u64 {
        self.election_watch.elections_called()
    }

    /// The current leader, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Every member in the current membership (voters and learners) with its node record.
    pub fn members(&self) -> Vec<(NodeId, MemberNode)> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| (*id, node.clone()))
            .collect()
    }

    /// The membership as openraft reports it, for diagnostics: the log id it was set at, its
    /// voter sets (two while a change is under way) and its learners.
    pub fn membership_summary(&self) -> String {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let config = &metrics.membership_config;
        let learners: Vec<NodeId> = config.membership().learner_ids().collect();
        format!(
            "node {}, vote {}, last log {:?}, applied {:?}, membership at {:?}: voters {:?}, learners {learners:?}",
            self.node_id,
            metrics.vote,
            metrics.last_log_index,
            metrics.last_applied,
            config.log_id(),
            config.membership().get_joint_config()
        )
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

    /// Whether `node` is in the membership as a voter (`Some(true)`) or a learner
    /// (`Some(false)`); `None` if it is not in it. Before openraft first reports, the voters
    /// read from the log at start answer (learners are not known then).
    pub fn standing(&self, node: NodeId) -> Option<bool> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        if metrics.membership_config.log_id().is_none() {
            return self.voters_at_start.contains(&node).then_some(true);
        }
        let membership = metrics.membership_config.membership();
        if membership.voter_ids().any(|id| id == node) {
            Some(true)
        } else if membership.learner_ids().any(|id| id == node) {
            Some(false)
        } else {
            None
        }
    }

    /// Whether this member started as a learner of its own log's membership: it was killed
    /// while it joined, after it was added and before it was promoted.
    pub fn learner_at_start(&self) -> bool {
        self.learner_at_start
    }

    /// Whether this member has a membership at all (it has none while it joins, until the
    /// leader's first entries or snapshot arrive).
    pub fn has_membership(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.membership_config.log_id().is_some() || !self.voters_at_start.is_empty()
    }

    /// Whether `node` is a voter in the current membership.
    pub fn is_voter(&self, node: NodeId) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        if metrics.membership_config.log_id().is_none() {
            // Nothing reported yet (or no membership at all, where the log has none either).
            return self.voters_at_start.contains(&node);
        }
        metrics.membership_config.membership().voter_ids().any(|id| id == node)
    }

    /// Adds a member as a learner (on the leader): it receives the log (or a snapshot) but does
    /// not vote, so it costs no quorum if it dies while catching up. Returns once the change is
    /// committed; [`Consensus::promote_if_caught_up`] makes it a voter later. Idempotent for a
    /// learner; a voter asking again is made a learner until it has caught up.
    pub async fn add_learner(&self, member: MemberNode) -> Result<(), ClusterError> {
        let node = node_id_of(&member.peer_id);
        if let Some((_, known)) = self.members().into_iter().find(|(id, _)| *id == node) {
            if known.peer_id != member.peer_id {
                return Err(ClusterError::InvalidArgument(format!(
                    "peer {} collides with member {} (same raft node id); use another identity",
                    member.peer_id, known.peer_id
                )));
            }
            if self.is_voter(node) {
                // A voter asking to join has no Raft state of its own any more (its folder was
                // lost, or its promotion never reached it). Until it has caught up it must not
                // count toward the quorum: it goes back to being a learner (Raft's log
                // "reverted" on the leader's side, which openraft allows with
                // `loosen-follower-log-revert`), and the joiner's promotion step makes it a
                // voter again once it has.
                tracing::warn!("{member} asks to join but is a voter: a learner again until it has caught up");
                self.require_quorum()?;
                let _turn = self.membership_turn.lock().await;
                // Demoting keeps the removed voter as a learner: a change left half done must
                // not finish that way too (a member `peers rm` was removing would stay a learner).
                self.finish_joint_membership().await?;
                let demoted = BTreeSet::from([node]);
                self.while_change_in_progress(|| {
                    self.raft
                        .change_membership(openraft::ChangeMembers::RemoveVoters(demoted.clone()), true)
                })
                .await?;
                if known.address == member.address {
                    return Ok(());
                }
            }
            if known.address != member.address {
                // A learner asking again from another address: openraft keeps a known node's
                // record on AddNodes, and would go on replicating to the old address.
                self.require_quorum()?;
                let _turn = self.membership_turn.lock().await;
                let nodes = BTreeMap::from([(node, member.clone())]);
                return self
                    .while_change_in_progress(|| {
                        self.raft
                            .change_membership(openraft::ChangeMembers::SetNodes(nodes.clone()), false)
                    })
                    .await;
            }
        }
        self.require_quorum()?;
        let _turn = self.membership_turn.lock().await;
        self.while_change_in_progress(|| self.raft.add_learner(node, member.clone(), false))
            .await
    }

    /// Fails with [`ClusterError::NoQuorum`] unless this member leads and has heard from a
    /// majority of voters within twice the election timeout: a membership change started
    /// without a quorum could never commit, and would hang whoever asked for it.
    pub fn require_quorum(&self) -> Result<(), ClusterError> {
        let metrics = self.raft.metrics().borrow().clone();
        let voters: Vec<NodeId> = metrics.membership_config.membership().voter_ids().collect();
        if voters.len() <= 1 && voters.contains(&self.node_id) {
            return Ok(());
        }
        if metrics.state != ServerState::Leader {
            return Err(ClusterError::NoLeader(
                "this member is not the leader (any more); ask again".into(),
            ));
        }
        let fresh = (self.config.election_timeout * 2).as_millis() as u64;
        match metrics.millis_since_quorum_ack {
            Some(ms) if ms <= fresh => Ok(()),
            heard => Err(ClusterError::NoQuorum(format!(
                "the cluster has no quorum: this leader heard from a majority of its {} voters {}; \
                 a membership change needs a majority to commit: bring members back, then try again",
                voters.len(),
                match heard {
                    Some(ms) => format!("{:.1} s ago", ms as f64 / 1000.0),
                    None => "never this term".to_string(),
                }
            ))),
        }
    }

    /// Makes learner `node` a voter (on the leader) once the leader has replicated to it all but
    /// at most [`PROMOTION_LAG_MAX`] entries of its log; otherwise answers how far it is. A
    /// learner that never answers is never promoted, whoever waits for it.
    pub async fn promote_if_caught_up(&self, node: NodeId) -> Result<Promotion, ClusterError> {
        if self.is_voter(node) {
            return Ok(Promotion::Voter);
        }
        if !self.members().iter().any(|(id, _)| *id == node) {
            return Err(ClusterError::InvalidArgument(format!(
                "node {node} is not a learner of this cluster: ask to join first"
            )));
        }
        self.require_quorum()?;
        // Checked while holding the turn: the wait for it may be long, the learner's progress
        // is read after it.
        let _turn = self.membership_turn.lock().await;
        let metrics = self.raft.metrics().borrow().clone();
        let Some(replication) = metrics.replication.as_ref() else {
            return Err(ClusterError::NoLeader("this member is no longer the leader".into()));
        };
        let last = metrics.last_log_index.unwrap_or(0);
        let matched = replication
            .get(&node)
            .and_then(|m| m.as_ref())
            .map(|log_id| log_id.index);
        let caught_up = matched.is_some_and(|m| m + PROMOTION_LAG_MAX >= last);
        if !caught_up {
            return Ok(Promotion::CatchingUp { matched, last });
        }
        let voters: std::collections::BTreeSet<NodeId> = [node].into_iter().collect();
        self.while_change_in_progress(|| {
            self.raft
                .change_membership(openraft::ChangeMembers::AddVoterIds(voters.clone()), false)
        })
        .await?;
        Ok(Promotion::Voter)
    }

    /// Finishes a membership change that a previous leader left half done (a joint
    /// configuration, as when the leader that was removing a member lost its leadership between
    /// the two steps): the voters of its last configuration stay, the others leave the member
    /// list, as the change meant to. Does nothing unless this member leads, a change was left
    /// half done and this member is not changing the membership itself. Returns whether it did.
    pub async fn finish_interrupted_membership_change(&self) -> Result<bool, ClusterError> {
        if !self.is_leader() {
            return Ok(false);
        }
        let Ok(_turn) = self.membership_turn.try_lock() else {
            return Ok(false);
        };
        self.finish_joint_membership().await
    }

    /// [`Consensus::finish_interrupted_membership_change`], for a caller holding the turn.
    async fn finish_joint_membership(&self) -> Result<bool, ClusterError> {
        let last = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            let joint = metrics.membership_config.membership().get_joint_config();
            if joint.len() < 2 {
                return Ok(false);
            }
            joint.last().cloned().unwrap_or_default()
        };
        tracing::warn!("finishing a membership change left half done by a previous leader: the voters are {last:?}");
        self.while_change_in_progress(|| {
            self.raft
                .change_membership(openraft::ChangeMembers::ReplaceAllVoters(last.clone()), false)
        })
        .await?;
        Ok(true)
    }

    /// Runs a membership change, again while openraft says another one (say, of a previous
    /// leader's term) is still under way, for at most [`MEMBERSHIP_BUSY_WAIT`].
    async fn while_change_in_progress<F, Fut>(&self, change: F) -> Result<(), ClusterError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<
            Output = Result<
                openraft::raft::ClientWriteResponse<TypeConfig>,
                RaftError<NodeId, ClientWriteError<NodeId, MemberNode>>,
            >,
        >,
    {
        let deadline = cluster_rt::now() + MEMBERSHIP_BUSY_WAIT;
        // A change commits like any write; one that cannot (no quorum) must not hang its caller.
        let commit_limit = self.config.wait_for_leader_timeout + self.config.network_timeout;
        loop {
            let attempt = cluster_rt::timeout(commit_limit, change()).await.map_err(|_| {
                ClusterError::Timeout(format!(
                    "the membership change did not commit within {commit_limit:?}; it may or may not be done"
                ))
            })?;
            match attempt {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    openraft::error::ChangeMembershipError::InProgress(busy),
                ))) if cluster_rt::now() < deadline => {
                    tracing::debug!("membership change waits for the one under way: {busy}");
                    cluster_rt::sleep(LEADER_POLL * 4).await;
                }
                Err(e) => return Err(membership_error(e)),
            }
        }
    }

    /// Removes a member (on the leader) from voters and from the member list.
    pub async fn remove_member(&self, node: NodeId) -> Result<(), ClusterError> {
        self.require_quorum()?;
        let _turn = self.membership_turn.lock().await;
        let ids: std::collections::BTreeSet<NodeId> = [node].into_iter().collect();
        // Without `retain`, a removed voter leaves the node list in the same change.
        let change = if self.is_voter(node) {
            openraft::ChangeMembers::RemoveVoters(ids)
        } else if self.members().iter().any(|(id, _)| *id == node) {
            openraft::ChangeMembers::RemoveNodes(ids)
        } else {
            return Ok(());
        };
        self.while_change_in_progress(|| self.raft.change_membership(change.clone(), false))
            .await
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
    /// [`SHUTDOWN_WAIT`] the member stops without it (nothing unwritten was acknowledged).
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
    }
}
