//! Serving other members' requests, and this member's own calls to itself. Every request
//! passes the RPC policy first ([`rpc_verdict`]): a refused one is answered
//! [`RpcResponse::Refused`], logged once per peer and counted.

use super::rpc_policy::{kind_of, rpc_verdict, Standing, Verdict};
use super::*;

/// Peers remembered as already warned about: peer ids cost an attacker nothing, so the set is
/// bounded; past it every refusal is only counted.
const WARNED_PEERS_MAX: usize = 1024;

/// Refused RPC calls counted, and the peers already warned about.
#[derive(Debug, Default)]
pub(super) struct RefusedCalls {
    count: std::sync::atomic::AtomicU64,
    warned: Mutex<std::collections::HashSet<PeerId>>,
}

impl Cluster {
    /// What this member's membership says of `peer`.
    pub(super) fn standing_of(&self, peer: &PeerId) -> Standing {
        if *peer == self.identity.peer_id {
            return Standing::Voter;
        }
        let node = node_id_of(peer);
        match self.consensus.standing(node) {
            Some(true) => Standing::Voter,
            Some(false) => Standing::Learner,
            None if self.consensus.has_membership() => Standing::Stranger,
            None => Standing::NoMembershipYet,
        }
    }

    /// Counts a refused call and logs the first one of each peer.
    pub(super) fn refused_call(&self, from: &PeerId, kind: &str, why: &str) {
        self.refused_calls
            .count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let first = {
            let mut warned = self.refused_calls.warned.lock().unwrap_or_else(|e| e.into_inner());
            warned.len() < WARNED_PEERS_MAX && warned.insert(*from)
        };
        if first {
            tracing::warn!(peer = %from, "refused an RPC call ({kind}): {why}; later refusals of this peer are only counted");
        }
    }

    /// RPC calls refused by the policy since the start.
    pub fn refused_rpc_calls(&self) -> u64 {
        self.refused_calls.count.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Serves this member's calls to itself (through [`LocalShortcut`]): holds the member weakly,
/// since the member holds its transport.
pub(super) struct OwnRpcHandler {
    pub(super) cluster: std::sync::Weak<Cluster>,
}

#[async_trait::async_trait]
impl RpcHandler for OwnRpcHandler {
    async fn handle(&self, from: PeerId, request: RpcRequest) -> RpcResponse {
        match self.cluster.upgrade() {
            Some(cluster) => ClusterRpcHandler { cluster }.handle(from, request).await,
            // Only while the member is being dropped.
            None => RpcResponse::Starting,
        }
    }
}

/// Serves other members' requests.
pub(super) struct ClusterRpcHandler {
    pub(super) cluster: Arc<Cluster>,
}

#[async_trait::async_trait]
impl RpcHandler for ClusterRpcHandler {
    async fn handle(&self, from: PeerId, request: RpcRequest) -> RpcResponse {
        match rpc_verdict(&request, &from, self.cluster.standing_of(&from)) {
            Verdict::Serve => {}
            Verdict::Refuse(why) => {
                self.cluster.refused_call(&from, kind_of(&request), why);
                return RpcResponse::Refused(format!("{}: {why}", kind_of(&request)));
            }
            Verdict::NotAMember => {
                // A candidate with a longer log may know of a change this member missed (its
                // own addition): Raft decides, if a known voter vouches for it. Otherwise (one
                // removed while it was away, or a peer that only holds the secret) it is told
                // so, and its term never reaches Raft.
                let ahead = matches!(&request, RpcRequest::Vote(r)
                    if r.last_log_id.map(|id| id.index) > self.cluster.consensus.last_log_index());
                if !ahead || !self.cluster.vouched_for(&from).await {
                    tracing::info!("refused a vote request from {from}: not a member of this cluster");
                    return RpcResponse::NotAMember;
                }
            }
            Verdict::Vouch => {
                if !self.cluster.vouched_for(&from).await {
                    let why = "Raft replication from a leader no voter of this member's membership vouches for";
                    self.cluster.refused_call(&from, kind_of(&request), why);
                    return RpcResponse::Refused(format!("{}: {why}", kind_of(&request)));
                }
            }
        }
        let raft = self.cluster.consensus.raft();
        match request {
            RpcRequest::AppendEntries(r) => {
                RpcResponse::AppendEntries(self.cluster.consensus.append_entries(r).await.map_err(raft_error))
            }
            RpcRequest::Vote(r) => {
                // Candidates outside the membership were answered by the policy.
                if self.cluster.joining.load(std::sync::atomic::Ordering::Relaxed) {
                    return RpcResponse::Vote(Err(ClusterError::Consensus(
                        "this member is joining and votes only once it has caught up".into(),
                    )));
                }
                RpcResponse::Vote(raft.vote(r).await.map_err(raft_error))
            }
            RpcRequest::InstallSnapshot(r) => {
                RpcResponse::InstallSnapshot(raft.install_snapshot(r).await.map_err(raft_error))
            }
            RpcRequest::Commit(command) => RpcResponse::Commit(self.cluster.consensus.commit_local(command).await),
            RpcRequest::Status(cid) => RpcResponse::Status(self.cluster.tracker.status(&cid).await),
            RpcRequest::StatusRange(range) => RpcResponse::StatusRange(
                self.cluster
                    .tracker
                    .status_range(range.after, range.through, range.limit as usize)
                    .await,
            ),
            RpcRequest::StatusPage(range) => {
                let tracker = &self.cluster.tracker;
                RpcResponse::StatusPage(
                    tracker
                        .status_range_short(range.after, range.through, range.limit as usize)
                        .await
                        .map(|(statuses, stopped_at)| {
                            let page = StatusPage::of_shorts(tracker.member_fields(), statuses, stopped_at);
                            if range.packed {
                                page.packed()
                            } else {
                                page
                            }
                        }),
                )
            }
            RpcRequest::Recover(cid) => RpcResponse::Recover(self.cluster.tracker.recover(&cid).await),
            RpcRequest::RecoverAll => RpcResponse::RecoverAll(self.cluster.recover_all_local().await),
            RpcRequest::Id => RpcResponse::Id(Cluster::id(&self.cluster).await),
            RpcRequest::PushMetric(metric) => {
                self.cluster.metrics.lock().expect("metrics lock").record(metric);
                RpcResponse::PushMetric
            }
            RpcRequest::RepoGc => RpcResponse::RepoGc(self.cluster.repo_gc_local().await),
            RpcRequest::BlockPut(blocks) => RpcResponse::BlockPut(self.cluster.put_blocks_locally(blocks).await),
            RpcRequest::Vouch(peer) => {
                RpcResponse::Vouch(self.cluster.consensus.standing(node_id_of(&peer)) == Some(true))
            }
            RpcRequest::RepoStat => RpcResponse::RepoStat(
                self.cluster
                    .ipfs
                    .repo_stat()
                    .await
                    .map(|stat| (stat.repo_size, stat.storage_max))
                    .map_err(|e| ClusterError::Ipfs(e.to_string())),
            ),
            RpcRequest::SwarmPeers => RpcResponse::SwarmPeers(
                self.cluster
                    .ipfs
                    .swarm_peers()
                    .await
                    .map_err(|e| ClusterError::Ipfs(e.to_string())),
            ),
            request @ (RpcRequest::PeerAdd(_) | RpcRequest::PeerPromote(_) | RpcRequest::PeerRemove(_)) => {
                ClusterRpcHandler::serve_membership(&self.cluster, request).await
            }
        }
    }
}

impl ClusterRpcHandler {
    /// Membership requests: served on the leader, forwarded once by any other member.
    pub(super) async fn serve_membership(cluster: &Cluster, request: RpcRequest) -> RpcResponse {
        let leading = cluster.consensus.is_leader();
        match request {
            RpcRequest::PeerAdd(member) if leading => {
                // Forget what an earlier incarnation of this peer reported.
                cluster
                    .metrics
                    .lock()
                    .expect("metrics lock")
                    .forget(&member.peer_id, Timestamp::now());
                let added = cluster.consensus.add_learner(member.clone()).await.map(|()| member);
                RpcResponse::PeerAdd(added)
            }
            RpcRequest::PeerPromote(member) if leading => {
                let node = node_id_of(&member.peer_id);
                // A learner that caught up and then died still looks caught up: it must answer
                // before it gets a vote.
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
                RpcResponse::PeerPromote(cluster.consensus.promote_if_caught_up(node).await)
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
