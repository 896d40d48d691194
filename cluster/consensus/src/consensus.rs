//! [`Consensus`]: the node's handle on Raft. Commits pin/unpin commands, waits for a leader,
//! reports members, and shuts down.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cluster_state::State;
use cluster_types::{Cid, ClusterError, PeerId, Pin};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{Raft, ServerState};

use crate::{
    node_id_of, ApplyObserver, Command, CommandResponse, ConsensusError, MemberNode, NodeId, PinsetStateMachine,
    RaftConfig, RaftTransport, RedbLogStore, TransportNetworkFactory, TypeConfig,
};

/// How often a write retries while there is no leader.
const LEADER_POLL: Duration = Duration::from_millis(50);

/// The consensus component of one member.
#[derive(Clone)]
pub struct Consensus {
    raft: Raft<TypeConfig>,
    node_id: NodeId,
    config: RaftConfig,
}

impl Consensus {
    /// Opens the durable log in `raft_dir` and starts Raft over `state`. The state machine
    /// resumes from what `state` had made durable; openraft re-applies the committed entries after it.
    pub async fn start(
        peer: &PeerId,
        raft_dir: &Path,
        state: Arc<dyn State>,
        observer: Arc<dyn ApplyObserver>,
        transport: Arc<dyn RaftTransport>,
        config: RaftConfig,
    ) -> Result<Consensus, ConsensusError> {
        let node_id = node_id_of(peer);
        let log_store = RedbLogStore::open(&raft_dir.join("log.redb"))?;
        let state_machine = PinsetStateMachine::new(state, observer, raft_dir);
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
        Ok(Consensus { raft, node_id, config })
    }

    /// Starts a new cluster with `members` unless this member already belongs to one (has a
    /// vote or log). Returns whether it initialized.
    pub async fn initialize_if_new(&self, members: BTreeMap<NodeId, MemberNode>) -> Result<bool, ConsensusError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| ConsensusError::Raft(e.to_string()))?;
        if initialized {
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
            other => Err(ClusterError::Internal(format!("unexpected response to pin: {other:?}"))),
        }
    }

    /// Commits the removal of a pin and returns the removed pin; `NotFound` if it was absent.
    pub async fn log_unpin(&self, cid: Cid) -> Result<Pin, ClusterError> {
        match self.write(Command::Unpin(cid)).await? {
            CommandResponse::Unpinned(Some(pin)) => Ok(pin),
            CommandResponse::Unpinned(None) => Err(ClusterError::NotFound),
            other => Err(ClusterError::Internal(format!(
                "unexpected response to unpin: {other:?}"
            ))),
        }
    }

    async fn write(&self, command: Command) -> Result<CommandResponse, ClusterError> {
        let deadline = cluster_rt::now() + self.config.wait_for_leader_timeout;
        loop {
            let attempt = cluster_rt::timeout(
                self.config.wait_for_leader_timeout + self.config.network_timeout,
                self.raft.client_write(command.clone()),
            )
            .await;
            match attempt {
                Err(_) => {
                    return Err(ClusterError::Timeout(
                        "consensus write timed out; it may or may not be committed".into(),
                    ))
                }
                Ok(Ok(response)) => return Ok(response.data),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                    if let Some(leader) = forward.leader_id {
                        if leader != self.node_id {
                            // Forwarding writes to a remote leader comes with the multi-member RPC layer.
                            return Err(ClusterError::NoLeader(format!(
                                "this member is not the raft leader (leader is node {leader}) and cannot forward writes"
                            )));
                        }
                    }
                }
                Ok(Err(RaftError::APIError(e))) => return Err(ClusterError::Consensus(e.to_string())),
                Ok(Err(RaftError::Fatal(e))) => return Err(ClusterError::Consensus(e.to_string())),
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

    /// The last applied log index (for tests and status).
    pub fn last_applied_index(&self) -> Option<u64> {
        self.raft.metrics().borrow().last_applied.map(|l| l.index)
    }

    /// Asks openraft to build a snapshot now (tests, and `state` commands).
    pub async fn trigger_snapshot(&self) -> Result<(), ClusterError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| ClusterError::Consensus(e.to_string()))
    }

    /// Stops Raft. Pending writes fail.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}
