//! The simulator's transport: requests travel over madsim's simulated network, one simulated
//! connection per call, so partitions, clogs, loss and latency from the fault plan apply to them.
//! Requests travel as Rust values (madsim's raw payloads), not bytes: the wire encoding is the
//! production transport's business.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cluster_consensus::{MemberNode, TransportFailure};
use cluster_types::PeerId;
use madsim::net::Endpoint;

use crate::{socket_address, RpcHandler, RpcRequest, RpcResponse, Transport};

/// A member's endpoint on the simulated network.
pub struct SimTransport {
    endpoint: Endpoint,
    /// Who this endpoint's requests come from (what libp2p's secure channel proves in
    /// production; here the simulated peers are our own code and tell the truth).
    me: PeerId,
}

impl SimTransport {
    /// Binds `address` on the current simulated node, for the peer `me`.
    pub async fn bind(address: SocketAddr, me: PeerId) -> std::io::Result<Arc<SimTransport>> {
        Ok(Arc::new(SimTransport {
            endpoint: Endpoint::bind(address).await?,
            me,
        }))
    }

    /// Answers requests with `handler` until the node dies.
    pub fn serve(self: &Arc<Self>, handler: Arc<dyn RpcHandler>) {
        let this = self.clone();
        cluster_rt::spawn(async move {
            loop {
                let Ok((sender, mut receiver, _from)) = this.endpoint.accept1().await else {
                    continue;
                };
                let handler = handler.clone();
                cluster_rt::spawn(async move {
                    let Ok(payload) = receiver.recv().await else { return };
                    let Ok(request) = payload.downcast::<(PeerId, RpcRequest)>() else {
                        return;
                    };
                    let (from, request) = *request;
                    let response = handler.handle(from, request).await;
                    let _ = sender.send(Box::new(response)).await;
                });
            }
        });
    }
}

#[async_trait::async_trait]
impl Transport for SimTransport {
    async fn call(
        &self,
        to: &MemberNode,
        request: RpcRequest,
        timeout: Duration,
    ) -> Result<RpcResponse, TransportFailure> {
        let address = &to.address;
        let target = socket_address(address)?;
        let exchange = async {
            let (sender, mut receiver) = self
                .endpoint
                .connect1(target)
                .await
                .map_err(|e| TransportFailure::Unreachable(e.to_string()))?;
            sender
                .send(Box::new((self.me, request)))
                .await
                .map_err(|e| TransportFailure::Unreachable(e.to_string()))?;
            let payload = receiver
                .recv()
                .await
                .map_err(|e| TransportFailure::Network(e.to_string()))?;
            payload
                .downcast::<RpcResponse>()
                .map(|r| *r)
                .map_err(|_| TransportFailure::Network("response of the wrong type".into()))
        };
        match cluster_rt::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(TransportFailure::Network(format!(
                "no answer from {address} within {timeout:?}"
            ))),
        }
    }
}
