//! Raft's messages over a [`Transport`]: adapts the RPC layer to consensus' `RaftTransport`.

use std::sync::Arc;
use std::time::Duration;

use cluster_consensus::{MemberNode, NodeId, RaftTransport, TransportFailure, TypeConfig};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};

use crate::{RpcRequest, RpcResponse, Transport};

/// Carries Raft messages as [`RpcRequest`]s.
#[derive(Clone)]
pub struct RaftOverRpc {
    transport: Arc<dyn Transport>,
    refusals: MembershipRefusals,
}

impl RaftOverRpc {
    /// Raft over `transport`; vote requests that members refuse because this member is not
    /// one of theirs are recorded in `refusals`.
    pub fn new(transport: Arc<dyn Transport>, refusals: MembershipRefusals) -> RaftOverRpc {
        RaftOverRpc { transport, refusals }
    }
}

/// The members that answered this member's vote requests with [`RpcResponse::NotAMember`], and
/// when: evidence that it was removed from the cluster while it was away.
#[derive(Debug, Clone, Default)]
pub struct MembershipRefusals(
    Arc<std::sync::Mutex<std::collections::BTreeMap<NodeId, cluster_rt::tokio::time::Instant>>>,
);

impl MembershipRefusals {
    fn record(&self, member: NodeId) {
        let now = cluster_rt::now();
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(member, now);
    }

    /// Forgets every refusal: those a member met while it was still a learner (joining, its
    /// old log listing it as a voter) say nothing of its removal once it votes.
    pub fn forget(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The members that refused within `window` before now.
    pub fn recent(&self, window: Duration) -> Vec<NodeId> {
        let now = cluster_rt::now();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, at)| now.duration_since(**at) <= window)
            .map(|(member, _)| *member)
            .collect()
    }
}

fn mismatch(what: &str) -> TransportFailure {
    TransportFailure::Network(format!("mismatched RPC response to {what}"))
}

#[async_trait::async_trait]
impl RaftTransport for RaftOverRpc {
    async fn append_entries(
        &self,
        _target: NodeId,
        node: &MemberNode,
        request: AppendEntriesRequest<TypeConfig>,
        timeout: Duration,
    ) -> Result<AppendEntriesResponse<NodeId>, TransportFailure> {
        match self
            .transport
            .call(node, RpcRequest::AppendEntries(request), timeout)
            .await?
        {
            RpcResponse::AppendEntries(result) => result.map_err(|e| TransportFailure::Network(e.to_string())),
            _ => Err(mismatch("append_entries")),
        }
    }

    async fn vote(
        &self,
        target: NodeId,
        node: &MemberNode,
        request: VoteRequest<NodeId>,
        timeout: Duration,
    ) -> Result<VoteResponse<NodeId>, TransportFailure> {
        match self.transport.call(node, RpcRequest::Vote(request), timeout).await? {
            RpcResponse::Vote(result) => result.map_err(|e| TransportFailure::Network(e.to_string())),
            RpcResponse::NotAMember => {
                self.refusals.record(target);
                Err(TransportFailure::Network(format!(
                    "{node} does not count this member among the cluster's members"
                )))
            }
            _ => Err(mismatch("vote")),
        }
    }

    async fn install_snapshot(
        &self,
        _target: NodeId,
        node: &MemberNode,
        request: InstallSnapshotRequest<TypeConfig>,
        timeout: Duration,
    ) -> Result<InstallSnapshotResponse<NodeId>, TransportFailure> {
        match self
            .transport
            .call(node, RpcRequest::InstallSnapshot(request), timeout)
            .await?
        {
            RpcResponse::InstallSnapshot(result) => result.map_err(|e| TransportFailure::Network(e.to_string())),
            _ => Err(mismatch("install_snapshot")),
        }
    }
}
