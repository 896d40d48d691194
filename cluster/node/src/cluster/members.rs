//! Who the members are and how to reach them: the member list from consensus, calls to
//! another member over the transport, and the leader.

use super::*;

impl Cluster {
    /// Calls another member over the cluster transport; unreachable when there is none (a
    /// member started without one, as in unit tests).
    pub(super) async fn call_member(
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

    /// Every member with its address.
    pub(super) fn members(&self) -> Vec<MemberNode> {
        let mut members: Vec<MemberNode> = self.consensus.members().into_iter().map(|(_, node)| node).collect();
        members.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        members
    }

    pub(super) fn member_peers(&self) -> Vec<PeerId> {
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

    /// The leader's record, waiting up to `wait_for_leader_timeout` for one; `None` when this
    /// member is the leader.
    pub(super) async fn leader_member(&self) -> Result<Option<MemberNode>, ClusterError> {
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
    pub(super) async fn to_leader(&self, request: RpcRequest, timeout: Duration) -> Result<RpcResponse, ClusterError> {
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
}
