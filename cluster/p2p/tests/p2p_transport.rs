//! Two libp2p hosts on loopback: requests reach the right peer and come back; a host with
//! another cluster secret cannot reach the others, and they cannot reach it.
#![cfg(not(madsim))]

use std::sync::Arc;
use std::time::Duration;

use cluster_consensus::Command;
use cluster_p2p::{HttpTunnelClient, HttpTunnelServer, P2pConfig, P2pTransport};
use cluster_rpc::{RpcHandler, RpcRequest, RpcResponse, Transport};
use cluster_types::{Cid, ClusterError};
use cluster_types::{MemberNode, TransportFailure};
use libp2p_identity::Keypair;

/// Answers `Recover(cid)` and `Commit(Unpin(cid))` with an error naming this host and the CID,
/// so the caller sees who answered what.
struct NamedHandler(&'static str);

#[async_trait::async_trait]
impl RpcHandler for NamedHandler {
    async fn handle(&self, _: cluster_types::PeerId, request: RpcRequest) -> RpcResponse {
        match request {
            RpcRequest::Recover(cid) => RpcResponse::Recover(Err(ClusterError::Internal(format!("{} {cid}", self.0)))),
            RpcRequest::Commit(Command::Unpin(cid)) => {
                RpcResponse::Commit(Err(ClusterError::Internal(format!("{} {cid}", self.0))))
            }
            other => RpcResponse::Recover(Err(ClusterError::InvalidArgument(format!("unexpected {other:?}")))),
        }
    }
}

async fn host(name: &'static str, secret: &[u8]) -> Arc<P2pTransport> {
    host_with(name, secret, Keypair::generate_ed25519()).await
}

async fn host_with(name: &'static str, secret: &[u8], keypair: Keypair) -> Arc<P2pTransport> {
    let transport = P2pTransport::start(P2pConfig {
        keypair,
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
        peer_id: cluster_types::PeerId(of.peer_id()),
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
    // Calls to self are cluster_rpc::LocalShortcut's: the network transport refuses them.
    assert!(matches!(
        ask(&a, &member(&a)).await,
        Err(TransportFailure::Unreachable(_))
    ));
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

fn cid_n(n: u32) -> Cid {
    Cid::raw_sha256(&n.to_be_bytes())
}

/// A forwarded write (one of the requests that go pipelined), answered with who and what.
async fn commit(from: &P2pTransport, to: &MemberNode, n: u32) -> Result<String, TransportFailure> {
    match from
        .call(
            to,
            RpcRequest::Commit(Command::Unpin(cid_n(n))),
            Duration::from_secs(20),
        )
        .await?
    {
        RpcResponse::Commit(Err(ClusterError::Internal(text))) => Ok(text),
        other => panic!("unexpected answer {other:?}"),
    }
}

async fn until_pipelined(host: &P2pTransport, peers: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while host.pipelined_peers() != peers {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} pipelined peers, not {peers}",
            host.pipelined_peers()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn write_path_requests_go_pipelined_on_one_stream_and_come_back_after_a_restart() {
    let secret = [7u8; 32];
    let a = host("a", &secret).await;
    let b_key = Keypair::generate_ed25519();
    let b = host_with("b", &secret, b_key.clone()).await;
    // The first call dials on a stream of its own and opens the long-lived one beside it.
    assert_eq!(commit(&a, &member(&b), 0).await.unwrap(), format!("b {}", cid_n(0)));
    until_pipelined(&a, 1).await;
    // Many at once on it, each answered to its own caller; other requests keep their streams.
    let calls: Vec<_> = (1..=300)
        .map(|n| {
            let (a, to) = (a.clone(), member(&b));
            tokio::spawn(async move { (n, commit(&a, &to, n).await) })
        })
        .collect();
    for call in calls {
        let (n, answer) = call.await.unwrap();
        assert_eq!(answer.unwrap(), format!("b {}", cid_n(n)));
    }
    assert_eq!(ask(&a, &member(&b)).await.unwrap(), format!("b {}", cid()));
    assert_eq!(a.pipelined_peers(), 1);

    // The peer stops, and comes back (same identity) on another port: its stream is gone,
    // calls reach it again, and the next stream opens.
    b.stop();
    drop(b);
    until_pipelined(&a, 0).await;
    let b = host_with("b again", &secret, b_key).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match commit(&a, &member(&b), 1000).await {
            Ok(answer) => {
                assert_eq!(answer, format!("b again {}", cid_n(1000)));
                break;
            }
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "never reached again: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until_pipelined(&a, 1).await;
    assert_eq!(
        commit(&a, &member(&b), 1001).await.unwrap(),
        format!("b again {}", cid_n(1001))
    );
}

#[tokio::test]
async fn the_address_must_belong_to_the_peer_id() {
    let secret = [42u8; 32];
    let a = host("a", &secret).await;
    let b = host("b", &secret).await;
    let impostor = MemberNode {
        peer_id: cluster_types::PeerId(Keypair::generate_ed25519().public().to_peer_id()),
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
        peer_id: cluster_types::PeerId(Keypair::generate_ed25519().public().to_peer_id()),
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

fn p2p_address(of: &P2pTransport) -> libp2p::Multiaddr {
    format!("{}/p2p/{}", of.listen_addresses()[0], of.peer_id())
        .parse()
        .unwrap()
}

#[tokio::test]
async fn http_tunnel_streams_carry_bytes_both_ways_with_the_right_secret_only() {
    use futures::StreamExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let secret = [7u8; 32];
    let server = host("server", &secret).await;
    let mut connections = server.http_connections().expect("first taker");
    assert!(server.http_connections().is_err(), "only one taker");
    tokio::spawn(async move {
        while let Some((_, mut stream)) = connections.next().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4];
                stream.read_exact(&mut request).await.unwrap();
                request.reverse();
                stream.write_all(&request).await.unwrap();
                stream.flush().await.unwrap();
            });
        }
    });
    let client = HttpTunnelClient::connect(&secret, &p2p_address(&server), Duration::from_secs(15))
        .await
        .expect("connects with the cluster secret");
    assert_eq!(client.peer(), server.peer_id());
    // Two streams on the one connection, as two HTTP connections would be.
    for word in [*b"ping", *b"abcd"] {
        let mut stream = client.open().await.expect("stream opens");
        stream.write_all(&word).await.unwrap();
        stream.flush().await.unwrap();
        let mut answer = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut answer))
            .await
            .expect("answer in time")
            .unwrap();
        let mut expected = word;
        expected.reverse();
        assert_eq!(answer, expected);
    }

    let wrong = HttpTunnelClient::connect(&[8u8; 32], &p2p_address(&server), Duration::from_secs(15)).await;
    assert!(wrong.is_err(), "another secret must not connect");
    let no_peer = HttpTunnelClient::connect(&secret, &server.listen_addresses()[0], Duration::from_secs(15)).await;
    let error = no_peer.unwrap_err().to_string();
    assert!(error.contains("/p2p/"), "{error}");
}

#[tokio::test]
async fn the_api_host_of_its_own_is_an_open_network_with_its_own_identity() {
    use futures::StreamExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let keypair = Keypair::generate_ed25519();
    let expected = keypair.public().to_peer_id();
    let (server, mut connections) = HttpTunnelServer::start(keypair, &["/ip4/127.0.0.1/tcp/0".into()])
        .await
        .expect("starts on loopback");
    assert_eq!(server.peer_id(), expected);
    tokio::spawn(async move {
        while let Some((_, mut stream)) = connections.next().await {
            tokio::spawn(async move {
                let _ = stream.write_all(b"hello").await;
                let _ = stream.flush().await;
            });
        }
    });
    let address: libp2p::Multiaddr = format!("{}/p2p/{}", server.listen_addresses()[0], server.peer_id())
        .parse()
        .unwrap();
    // Go's separate API host has no private network: no secret needed.
    let client = HttpTunnelClient::connect(&[], &address, Duration::from_secs(15))
        .await
        .expect("connects without a secret");
    let mut stream = client.open().await.expect("stream opens");
    let mut greeting = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut greeting))
        .await
        .expect("in time")
        .unwrap();
    assert_eq!(&greeting, b"hello");
    let Err(error) =
        HttpTunnelServer::start(Keypair::generate_ed25519(), &["/ip4/127.0.0.1/udp/1/quic-v1".into()]).await
    else {
        panic!("a host without a TCP address must not start")
    };
    let error = error.to_string();
    assert!(error.contains("restapi.libp2p_listen_multiaddress"), "{error}");
}

/// A name server on loopback that answers every TXT question with `record`: just enough DNS
/// (RFC 1035 §4) for `/dnsaddr` lookups.
async fn txt_name_server(record: String) -> std::net::SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        while let Ok((len, from)) = socket.recv_from(&mut buffer).await {
            let query = &buffer[..len];
            // The question: labels up to the empty one, then type and class.
            let mut end = 12;
            while end < query.len() && query[end] != 0 {
                end += 1 + query[end] as usize;
            }
            let question_end = end + 5;
            if question_end > query.len() {
                continue;
            }
            let is_txt = query[end + 1..end + 3] == [0, 16];
            let mut answer = query[..2].to_vec(); // the id
            answer.extend_from_slice(&[0x81, 0x80, 0, 1, 0, u8::from(is_txt), 0, 0, 0, 0]);
            answer.extend_from_slice(&query[12..question_end]);
            if is_txt {
                let text = record.as_bytes();
                answer.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60]);
                answer.extend_from_slice(&((text.len() + 1) as u16).to_be_bytes());
                answer.push(text.len() as u8);
                answer.extend_from_slice(text);
            }
            let _ = socket.send_to(&answer, from).await;
        }
    });
    address
}

#[tokio::test]
async fn a_dnsaddr_names_the_member_to_reach() {
    use cluster_p2p::NameServer;
    use futures::StreamExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let secret = [5u8; 32];
    let server = host("server", &secret).await;
    let mut connections = server.http_connections().unwrap();
    tokio::spawn(async move {
        while let Some((_, mut stream)) = connections.next().await {
            tokio::spawn(async move {
                let _ = stream.write_all(b"found").await;
                let _ = stream.flush().await;
            });
        }
    });
    let record = format!("dnsaddr={}", p2p_address(&server));
    let name_server = NameServer::Udp(txt_name_server(record).await);
    for text in [
        "/dnsaddr/cluster.test".to_string(),
        format!("/dnsaddr/cluster.test/p2p/{}", server.peer_id()),
    ] {
        let address: libp2p::Multiaddr = text.parse().unwrap();
        let client = HttpTunnelClient::connect_resolving(&secret, &address, Duration::from_secs(15), name_server)
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(client.peer(), server.peer_id(), "{text}");
        let mut stream = client.open().await.unwrap();
        let mut word = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut word))
            .await
            .expect("in time")
            .unwrap();
        assert_eq!(&word, b"found");
    }
    // Records that name another peer do not match the peer id asked for.
    let stranger = Keypair::generate_ed25519().public().to_peer_id();
    let address: libp2p::Multiaddr = format!("/dnsaddr/cluster.test/p2p/{stranger}").parse().unwrap();
    assert!(
        HttpTunnelClient::connect_resolving(&secret, &address, Duration::from_secs(15), name_server)
            .await
            .is_err()
    );
}
