//! The member's own end of its transport: calls addressed to this member are answered by its
//! own handler (no socket, no encoding), every other call goes on to the network transport.
//! Production (libp2p) and the simulator wrap their transports alike, so the two cannot differ
//! on calls to self. Also [`RpcForwarder`], which sends writes to the leader over any transport.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cluster_consensus::{Command, Committed, LeaderForwarder, MemberNode, TransportFailure};
use cluster_types::{ClusterError, PeerId};

use crate::{RpcHandler, RpcRequest, RpcResponse, Traffic, Transport, MEMBER_STARTING};

/// A transport that answers calls to `me` itself; see the module comment.
pub struct LocalShortcut {
    me: PeerId,
    handler: OnceLock<Arc<dyn RpcHandler>>,
    network: Arc<dyn Transport>,
}

impl LocalShortcut {
    /// Wraps `network` for the member `me`. Until [`LocalShortcut::serve`], calls to `me` fail
    /// as `Unreachable` with [`MEMBER_STARTING`], as a remote member still starting does.
    pub fn new(me: PeerId, network: Arc<dyn Transport>) -> Arc<LocalShortcut> {
        Arc::new(LocalShortcut {
            me,
            handler: OnceLock::new(),
            network,
        })
    }

    /// Answers calls to this member with `handler` from now on (set once; later calls are
    /// ignored). The network transport is given the same handler by its own `serve`.
    pub fn serve(&self, handler: Arc<dyn RpcHandler>) {
        let _ = self.handler.set(handler);
    }
}

#[async_trait::async_trait]
impl Transport for LocalShortcut {
    fn traffic(&self) -> Traffic {
        self.network.traffic()
    }

    async fn call(
        &self,
        to: &MemberNode,
        request: RpcRequest,
        timeout: Duration,
    ) -> Result<RpcResponse, TransportFailure> {
        if to.peer_id != self.me {
            return self.network.call(to, request, timeout).await;
        }
        let starting = || TransportFailure::Unreachable(format!("this member {MEMBER_STARTING}"));
        let Some(handler) = self.handler.get() else {
            return Err(starting());
        };
        // The same promises as a network transport: an answer within `timeout`, and `Starting`
        // seen as not delivered.
        match cluster_rt::timeout(timeout, handler.handle(self.me, request)).await {
            Ok(RpcResponse::Starting) => Err(starting()),
            Ok(answer) => Ok(answer),
            Err(_) => Err(TransportFailure::Network(format!(
                "no answer from this member itself within {timeout:?}"
            ))),
        }
    }
}

/// Forwards writes to the leader over a transport, for consensus on a member that does not lead.
pub struct RpcForwarder {
    rpc: Arc<dyn Transport>,
    timeout: Duration,
}

impl RpcForwarder {
    /// Forwards over `rpc`, waiting up to `timeout` for the leader's answer.
    pub fn new(rpc: Arc<dyn Transport>, timeout: Duration) -> RpcForwarder {
        RpcForwarder { rpc, timeout }
    }
}

#[async_trait::async_trait]
impl LeaderForwarder for RpcForwarder {
    async fn forward(
        &self,
        leader: &MemberNode,
        command: Command,
    ) -> Result<Result<Committed, ClusterError>, TransportFailure> {
        match self.rpc.call(leader, RpcRequest::Commit(command), self.timeout).await? {
            RpcResponse::Commit(result) => Ok(result),
            other => Err(TransportFailure::Network(format!(
                "unexpected answer to a forwarded write: {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Counts the calls that reach the network.
    #[derive(Default)]
    struct CountingNetwork {
        calls: AtomicU32,
    }

    #[async_trait::async_trait]
    impl Transport for CountingNetwork {
        async fn call(&self, _: &MemberNode, _: RpcRequest, _: Duration) -> Result<RpcResponse, TransportFailure> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(RpcResponse::PushMetric)
        }
    }

    /// Answers `Id` with `Starting` (a member being dropped), anything else with `PushMetric`,
    /// and `Status` never.
    struct OwnHandler;

    #[async_trait::async_trait]
    impl RpcHandler for OwnHandler {
        async fn handle(&self, _: PeerId, request: RpcRequest) -> RpcResponse {
            match request {
                RpcRequest::Id => RpcResponse::Starting,
                RpcRequest::Status(_) => std::future::pending().await,
                _ => RpcResponse::PushMetric,
            }
        }
    }

    fn member(seed: u8) -> MemberNode {
        MemberNode {
            peer_id: PeerId::from_ed25519_seed([seed; 32]),
            address: format!("/ip4/10.0.0.{seed}/tcp/9096"),
        }
    }

    #[tokio::test]
    async fn calls_to_self_never_reach_the_network() {
        let network = Arc::new(CountingNetwork::default());
        let me = PeerId::from_ed25519_seed([1; 32]);
        let shortcut = LocalShortcut::new(me, network.clone());
        let second = Duration::from_secs(1);

        let before_serving = shortcut.call(&member(1), RpcRequest::Id, second).await;
        assert!(
            matches!(&before_serving, Err(TransportFailure::Unreachable(e)) if e.contains(MEMBER_STARTING)),
            "{before_serving:?}"
        );
        shortcut.serve(Arc::new(OwnHandler));
        let answer = shortcut.call(&member(1), RpcRequest::RepoGc, second).await.unwrap();
        assert!(matches!(answer, RpcResponse::PushMetric), "{answer:?}");
        let starting = shortcut.call(&member(1), RpcRequest::Id, second).await;
        assert!(
            matches!(&starting, Err(TransportFailure::Unreachable(e)) if e.contains(MEMBER_STARTING)),
            "{starting:?}"
        );
        let hung = shortcut
            .call(
                &member(1),
                RpcRequest::Status(cluster_types::Cid::raw_sha256(b"x")),
                Duration::from_millis(50),
            )
            .await;
        assert!(matches!(hung, Err(TransportFailure::Network(_))), "{hung:?}");
        assert_eq!(network.calls.load(Ordering::SeqCst), 0);

        let answer = shortcut.call(&member(2), RpcRequest::Id, second).await.unwrap();
        assert!(matches!(answer, RpcResponse::PushMetric), "{answer:?}");
        assert_eq!(network.calls.load(Ordering::SeqCst), 1);
    }
}
