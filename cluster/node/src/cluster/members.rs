//! Who the members are and how to reach them: the member list from consensus, calls to
//! another member over the transport, and the leader.

use std::future::Future;

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
        // By the peer id as text, as `peers ls` lists them.
        members.sort_by_cached_key(|m| m.peer_id.to_string());
        members
    }

    pub(super) fn member_peers(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self
            .consensus
            .members()
            .into_iter()
            .map(|(_, node)| node.peer_id)
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
            if !self.consensus.is_leader() {
                // openraft names this member the leader before it leads (or after it stopped):
                // served here, the request would be forwarded back here, over and over, until
                // the stack overflowed (sim seed 3447961555 of the restarted-joiner test).
                return Err(ClusterError::NoLeader(
                    "this member is named the leader but does not lead (yet); ask again".into(),
                ));
            }
            return Ok(Box::pin(ClusterRpcHandler::serve_membership(self, request)).await);
        };
        self.call_member(&leader, request, timeout).await.map_err(|e| match e {
            TransportFailure::Unreachable(e) => ClusterError::NoLeader(format!("leader {leader} unreachable: {e}")),
            TransportFailure::Network(e) => ClusterError::Timeout(format!(
                "no answer from leader {leader} ({e}); the change may or may not be done"
            )),
        })
    }

    /// Asks `members` at once and returns their answers in the same order: this member through
    /// `local` (when it is among them), the others with `request()` over the transport, their
    /// answers taken by `expect` (`answer_of!`, which hands back any other kind of response).
    /// A member that cannot be asked answers `Unreachable`, `NoAnswer` or `UnexpectedAnswer`.
    pub(super) async fn ask_members<T, Local>(
        &self,
        members: Vec<MemberNode>,
        local: Option<Local>,
        request: impl Fn() -> RpcRequest,
        timeout: Duration,
        expect: impl Fn(RpcResponse) -> Result<T, Box<RpcResponse>>,
    ) -> Vec<(MemberNode, Result<T, ClusterError>)>
    where
        Local: Future<Output = T>,
    {
        let mut local = local;
        let (request, expect) = (&request, &expect);
        let asks = members.into_iter().map(|member| {
            let mine = if member.peer_id == self.me_member.peer_id {
                local.take()
            } else {
                None
            };
            async move {
                let answer = match mine {
                    Some(local) => Ok(local.await),
                    None => match self.call_member(&member, request(), timeout).await {
                        Ok(answer) => {
                            expect(answer).map_err(|answer| ClusterError::unexpected_answer(request(), answer))
                        }
                        Err(e) => Err(e.into_error(member.peer_id)),
                    },
                };
                (member, answer)
            }
        });
        futures::future::join_all(asks).await
    }

    /// [`Cluster::ask_members`] over every member, this one answering through `local`.
    pub(super) async fn ask_every_member<T>(
        &self,
        local: impl Future<Output = T>,
        request: impl Fn() -> RpcRequest,
        timeout: Duration,
        expect: impl Fn(RpcResponse) -> Result<T, Box<RpcResponse>>,
    ) -> Vec<(MemberNode, Result<T, ClusterError>)> {
        self.ask_members(self.members(), Some(local), request, timeout, expect)
            .await
    }
}
