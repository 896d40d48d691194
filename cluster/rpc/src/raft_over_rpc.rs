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
}

impl RaftOverRpc {
    /// Raft over `transport`.
    pub fn new(transport: Arc<dyn Transport>) -> RaftOverRpc {
        RaftOverRpc { transport }
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
            RpcResponse::AppendEntries(result) => result.map_err(TransportFailure::Network),
            _ => Err(mismatch("append_entries")),
        }
    }

    async fn vote(
        &self,
        _target: NodeId,
        node: &MemberNode,
        request: VoteRequest<NodeId>,
        timeout: Duration,
    ) -> Result<VoteResponse<NodeId>, TransportFailure> {
        match self.transport.call(node, RpcRequest::Vote(request), timeout).await? {
            RpcResponse::Vote(result) => result.map_err(TransportFailure::Network),
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
            RpcResponse::InstallSnapshot(result) => result.map_err(TransportFailure::Network),
            _ => Err(mismatch("install_snapshot")),
        }
    }
}
