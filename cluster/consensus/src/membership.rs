//! Membership, on the leader: adding a learner, promoting it once caught up, removing a member,
//! finishing a change a previous leader left half done. And what this member knows of the
//! membership: the members, who votes, its own standing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::ServerState;

use cluster_types::ClusterError;

use crate::consensus::LEADER_POLL;
use crate::{node_id_of, Consensus, MemberNode, NodeId, TypeConfig};

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

impl Consensus {
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

    /// Whether `node` votes in every configuration of the membership: a voter that a change
    /// under way (a joint configuration) takes out of the voters, to remove or demote it, does
    /// not. Before openraft first reports, the configurations read from the log at start answer.
    pub fn votes_in_every_configuration(&self, node: NodeId) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let configs = match metrics.membership_config.log_id() {
            None => &self.configs_at_start,
            Some(_) => metrics.membership_config.membership().get_joint_config(),
        };
        !configs.is_empty() && configs.iter().all(|voters| voters.contains(&node))
    }

    /// Whether `node` votes in every configuration of a membership this member has applied
    /// (so committed).
    fn votes_in_committed_membership(&self, node: NodeId) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let Some(membership_at) = metrics.membership_config.log_id() else {
            return self.voters_at_start.contains(&node);
        };
        let applied = metrics
            .last_applied
            .is_some_and(|applied| applied.index >= membership_at.index);
        let configs = metrics.membership_config.membership().get_joint_config();
        applied && !configs.is_empty() && configs.iter().all(|voters| voters.contains(&node))
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
            // The leader itself asking (a wiped member whose join could not commit, elected
            // before it was answered: sim seed 201447 once the join asked again) leads with the
            // whole log. Nothing to demote, and openraft does not let a leader take itself out
            // of the voters.
            if self.is_voter(node) && node != self.node_id {
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
            .await?;
        self.wait_until_listed(node).await;
        Ok(())
    }

    /// Waits, a few seconds at most, until openraft's metrics list `node`. A change is answered
    /// once committed and the metrics that [`Consensus::members`] reads are published a moment
    /// later: a joiner that asked for its promotion right after its join was answered was told
    /// it was no learner of the cluster, and stopped (`bench-ingest` on a busy machine).
    async fn wait_until_listed(&self, node: NodeId) {
        let listed = self
            .raft
            .wait(Some(Duration::from_secs(5)))
            .metrics(
                |metrics| {
                    metrics
                        .membership_config
                        .membership()
                        .nodes()
                        .any(|(id, _)| *id == node)
                },
                "the member added listed in the metrics",
            )
            .await;
        if let Err(e) = listed {
            tracing::warn!("node {node} was added but is not listed yet: {e}");
        }
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
            if self.votes_in_committed_membership(node) {
                return Ok(Promotion::Voter);
            }
            // A voter only in a change not committed yet, which a lost leadership can still
            // undo: the joiner that took it for done stayed a learner for good (sim seed
            // 400610 of the frequent-snapshots workload). It asks again until it is committed.
            let metrics = self.raft.metrics().borrow().clone();
            let matched = metrics
                .replication
                .as_ref()
                .and_then(|replication| replication.get(&node).cloned().flatten())
                .map(|log_id| log_id.index);
            return Ok(Promotion::CatchingUp {
                matched,
                last: metrics.last_log_index.unwrap_or(0),
            });
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
}
