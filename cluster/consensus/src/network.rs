//! How Raft messages reach other members: a [`RaftTransport`] (libp2p in production, the
//! simulator's network under madsim) adapted to openraft's network traits.
//!
//! A one-member cluster uses [`NoTransport`]: it never has anyone to talk to.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};

use cluster_types::{MemberNode, TransportFailure};

use crate::{NodeId, TypeConfig};

/// Delivers Raft messages to other members.
///
/// To ensure correctness: every call returns within `timeout`; a message may be lost but is
/// never delivered twice as two different requests.
#[async_trait::async_trait]
pub trait RaftTransport: Send + Sync + 'static {
    /// Sends AppendEntries to `target`.
    async fn append_entries(
        &self,
        target: NodeId,
        node: &MemberNode,
        request: AppendEntriesRequest<TypeConfig>,
        timeout: Duration,
    ) -> Result<AppendEntriesResponse<NodeId>, TransportFailure>;

    /// Sends a vote request to `target`.
    async fn vote(
        &self,
        target: NodeId,
        node: &MemberNode,
        request: VoteRequest<NodeId>,
        timeout: Duration,
    ) -> Result<VoteResponse<NodeId>, TransportFailure>;

    /// Sends one snapshot chunk to `target`.
    async fn install_snapshot(
        &self,
        target: NodeId,
        node: &MemberNode,
        request: InstallSnapshotRequest<TypeConfig>,
        timeout: Duration,
    ) -> Result<InstallSnapshotResponse<NodeId>, TransportFailure>;
}

/// The transport of a one-member cluster: every peer is unreachable.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTransport;

#[async_trait::async_trait]
impl RaftTransport for NoTransport {
    async fn append_entries(
        &self,
        _target: NodeId,
        node: &MemberNode,
        _request: AppendEntriesRequest<TypeConfig>,
        _timeout: Duration,
    ) -> Result<AppendEntriesResponse<NodeId>, TransportFailure> {
        Err(TransportFailure::Unreachable(format!("no transport to {node}")))
    }

    async fn vote(
        &self,
        _target: NodeId,
        node: &MemberNode,
        _request: VoteRequest<NodeId>,
        _timeout: Duration,
    ) -> Result<VoteResponse<NodeId>, TransportFailure> {
        Err(TransportFailure::Unreachable(format!("no transport to {node}")))
    }

    async fn install_snapshot(
        &self,
        _target: NodeId,
        node: &MemberNode,
        _request: InstallSnapshotRequest<TypeConfig>,
        _timeout: Duration,
    ) -> Result<InstallSnapshotResponse<NodeId>, TransportFailure> {
        Err(TransportFailure::Unreachable(format!("no transport to {node}")))
    }
}

/// openraft's network factory over a [`RaftTransport`].
#[derive(Clone)]
pub struct TransportNetworkFactory {
    transport: Arc<dyn RaftTransport>,
}

impl TransportNetworkFactory {
    /// Wraps `transport`.
    pub fn new(transport: Arc<dyn RaftTransport>) -> TransportNetworkFactory {
        TransportNetworkFactory { transport }
    }
}

/// A connection to one member.
pub struct TransportNetwork {
    transport: Arc<dyn RaftTransport>,
    target: NodeId,
    node: MemberNode,
}

impl RaftNetworkFactory<TypeConfig> for TransportNetworkFactory {
    type Network = TransportNetwork;

    async fn new_client(&mut self, target: NodeId, node: &MemberNode) -> TransportNetwork {
        TransportNetwork {
            transport: self.transport.clone(),
            target,
            node: node.clone(),
        }
    }
}

fn to_rpc_error<E: std::error::Error>(failure: TransportFailure) -> RPCError<NodeId, MemberNode, E> {
    match failure {
        TransportFailure::Unreachable(message) => {
            RPCError::Unreachable(Unreachable::new(&std::io::Error::other(message)))
        }
        TransportFailure::Network(message) => RPCError::Network(NetworkError::new(&std::io::Error::other(message))),
    }
}

impl RaftNetwork<TypeConfig> for TransportNetwork {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId>>> {
        self.transport
            .append_entries(self.target, &self.node, request, option.hard_ttl())
            .await
            .map_err(to_rpc_error)
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.transport
            .install_snapshot(self.target, &self.node, request, option.hard_ttl())
            .await
            .map_err(to_rpc_error)
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId>>> {
        self.transport
            .vote(self.target, &self.node, request, option.hard_ttl())
            .await
            .map_err(to_rpc_error)
    }
}
