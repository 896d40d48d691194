//! Two libp2p hosts on loopback: requests reach the right peer and come back; a host with
//! another cluster secret cannot reach the others, and they cannot reach it.
#![cfg(not(madsim))]

use std::sync::Arc;
use std::time::Duration;

use cluster_consensus::{MemberNode, TransportFailure};
use cluster_p2p::{P2pConfig, P2pTransport};
use cluster_rpc::{RpcHandler, RpcRequest, RpcResponse, Transport};
use cluster_types::{Cid, ClusterError};
use libp2p_identity::Keypair;

/// Answers `Recover(cid)` with an error naming this host, so the caller sees who answered.
struct NamedHandler(&'static str);

#[async_trait::async_trait]
impl RpcHandler for NamedHandler {
    async fn handle(&self, request: RpcRequest) -> RpcResponse {
        match request {
            RpcRequest::Recover(cid) => RpcResponse::Recover(Err(ClusterError::Internal(format!("{} {cid}", self.0)))),
            other => RpcResponse::Recover(Err(ClusterError::InvalidArgument(format!("unexpected {other:?}")))),
        }
    }
}

async fn host(name: &'static str, secret: &[u8]) -> Arc<P2pTransport> {
    let transport = P2pTransport::start(P2pConfig {
        keypair: Keypair::generate_ed25519(),
        secret: secret.to_vec(),
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
    })
    .await
    .expect("host starts on loopback");
    transport.serve(Arc::new(NamedHandler(name)));
    transport
}

fn member(of: &P2pTransport) -> MemberNode {
    MemberNode {
        peer_id: of.peer_id().to_string(),
        address: of.listen_addresses()[0].to_string(),
    }
}

fn cid() -> Cid {
    "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9".parse().unwrap()
}

async fn ask(from: &P2pTransport, to: &MemberNode) -> Result<String, TransportFailure> {
    // Longer than the handshake limit, so a failed handshake shows as "not delivered".
    match from
        .call(to, RpcRequest::Recover(cid()), Duration::from_secs(20))
        .await?
    {
        RpcResponse::Recover(Err(ClusterError::Internal(text))) => Ok(text),
        other => panic!("unexpected answer {other:?}"),
    }
}

#[tokio::test]
async fn requests_reach_the_named_peer_and_answers_come_back() {
    let secret = [42u8; 32];
    let a = host("a", &secret).await;
    let b = host("b", &secret).await;
    assert_eq!(ask(&a, &member(&b)).await.unwrap(), format!("b {}", cid()));
    assert_eq!(ask(&b, &member(&a)).await.unwrap(), format!("a {}", cid()));
    // The local short-cut answers without the network.
    assert_eq!(ask(&a, &member(&a)).await.unwrap(), format!("a {}", cid()));
    // Many concurrent calls over one connection.
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let a = a.clone();
            let to = member(&b);
            tokio::spawn(async move { ask(&a, &to).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), format!("b {}", cid()));
    }
}

#[tokio::test]
async fn the_address_must_belong_to_the_peer_id() {
    let secret = [42u8; 32];
    let a = host("a", &secret).await;
    let b = host("b", &secret).await;
    let impostor = MemberNode {
        peer_id: Keypair::generate_ed25519().public().to_peer_id().to_string(),
        address: member(&b).address,
    };
    let error = ask(&a, &impostor).await.unwrap_err();
    assert!(matches!(error, TransportFailure::Unreachable(_)), "{error:?}");
}

#[tokio::test]
async fn a_host_with_another_secret_is_cut_off_both_ways() {
    let a = host("a", &[1u8; 32]).await;
    let stranger = host("stranger", &[2u8; 32]).await;
    let error = ask(&a, &member(&stranger)).await.unwrap_err();
    assert!(matches!(error, TransportFailure::Unreachable(_)), "{error:?}");
    let error = ask(&stranger, &member(&a)).await.unwrap_err();
    assert!(matches!(error, TransportFailure::Unreachable(_)), "{error:?}");
    // And an open (no secret) host cannot talk to a private one.
    let open = host("open", &[]).await;
    assert!(ask(&open, &member(&a)).await.is_err());
}

#[tokio::test]
async fn nobody_listening_is_unreachable_not_a_hang() {
    let a = host("a", &[3u8; 32]).await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nobody = MemberNode {
        peer_id: Keypair::generate_ed25519().public().to_peer_id().to_string(),
        address: format!("/ip4/127.0.0.1/tcp/{closed_port}"),
    };
    let error = ask(&a, &nobody).await.unwrap_err();
    assert!(matches!(error, TransportFailure::Unreachable(_)), "{error:?}");
}

#[tokio::test]
async fn a_busy_port_is_a_clear_start_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let error = P2pTransport::start(P2pConfig {
        keypair: Keypair::generate_ed25519(),
        secret: Vec::new(),
        listen: vec![format!("/ip4/127.0.0.1/tcp/{port}")],
    })
    .await
    .unwrap_err();
    assert!(error.to_string().contains(&port.to_string()), "{error}");
}
