//! The libp2p stack every host of ours is built on: TCP (with Nagle off), the private network
//! keyed by the cluster secret, noise and yamux; listening on the configured TCP addresses with
//! a clear error for a busy port.
//!
//! Owns: connection setup. Does not own: what runs over it (RPC in [`crate::host`], the REST
//! API's tunnel in [`crate::http_tunnel`]).

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::swarm::SwarmEvent;
use libp2p::{multiaddr::Protocol, noise, tcp, yamux, Multiaddr, PeerId, Swarm, Transport as _};

/// Connection setup (private network, noise, yamux) must finish within this; a peer with
/// another secret fails here, since its bytes decode to garbage that never completes a handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// How long start waits for the listeners to report their addresses.
const LISTEN_WAIT: Duration = Duration::from_secs(10);

/// Why the host did not start.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// A configuration value is unusable.
    #[error("{0}")]
    Config(String),
    /// No connection or stream to a peer could be made.
    #[error("cannot connect to {0}")]
    Connect(String),
    /// A listener could not bind.
    #[error("cannot listen on {address}: {message}")]
    Listen {
        /// The address.
        address: String,
        /// The operating system's reason.
        message: String,
    },
}

/// What connections are made over: TCP, possibly behind a DNS resolver.
pub(crate) type BaseTransport = Boxed<tcp::tokio::TcpStream>;

/// Plain TCP, with Nagle off (RPC frames are small).
pub(crate) fn tcp_transport() -> tcp::tokio::Transport {
    tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
}

/// The members' transport: TCP, the private network keyed by `secret` (none when empty),
/// noise and yamux.
pub(crate) fn build_transport(keypair: &Keypair, secret: &[u8]) -> Result<Boxed<(PeerId, StreamMuxerBox)>, P2pError> {
    secure(tcp_transport().boxed(), keypair, secret)
}

/// `base` with the private network keyed by `secret` (none when empty), noise and yamux.
pub(crate) fn secure(
    base: BaseTransport,
    keypair: &Keypair,
    secret: &[u8],
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, P2pError> {
    let noise = noise::Config::new(keypair).map_err(|e| P2pError::Config(format!("noise: {e}")))?;
    if secret.is_empty() {
        return Ok(base
            .upgrade(Version::V1)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .timeout(HANDSHAKE_LIMIT)
            .boxed());
    }
    let key: [u8; 32] = secret
        .try_into()
        .map_err(|_| P2pError::Config(format!("cluster secret must be 32 bytes, got {}", secret.len())))?;
    let psk = PreSharedKey::new(key);
    Ok(base
        .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
        .upgrade(Version::V1)
        .authenticate(noise)
        .multiplex(yamux::Config::default())
        .timeout(HANDSHAKE_LIMIT)
        .boxed())
}

/// The TCP listen addresses among `listen`, with a warning for each one skipped.
/// `key` names the configuration key in messages.
pub(crate) fn tcp_listen_addresses(listen: &[String], key: &str) -> Result<Vec<Multiaddr>, P2pError> {
    let mut addresses = Vec::new();
    for text in listen {
        let address: Multiaddr = text
            .parse()
            .map_err(|e| P2pError::Config(format!("{key} {text:?}: {e}")))?;
        let is_tcp = address.iter().any(|p| matches!(p, Protocol::Tcp(_)));
        let is_other = address.iter().any(|p| {
            matches!(
                p,
                Protocol::Udp(_) | Protocol::QuicV1 | Protocol::Quic | Protocol::Ws(_)
            )
        });
        if is_tcp && !is_other {
            addresses.push(address);
        } else {
            tracing::warn!("{key} {text}: only TCP is supported; not listening there");
        }
    }
    if addresses.is_empty() {
        return Err(P2pError::Config(format!("{key} has no /ip4|ip6/../tcp/.. address")));
    }
    Ok(addresses)
}

/// Fails when another socket listens on `address`. libp2p listens with `SO_REUSEPORT`, so a
/// second member (of ours, or any libp2p program) given the same port would share it with the
/// first and the kernel would split connections between them; a plain bind, which refuses a
/// port in use, is tried first.
fn refuse_if_busy(address: &Multiaddr) -> Result<(), P2pError> {
    let mut ip = None;
    let mut port = None;
    for protocol in address.iter() {
        match protocol {
            Protocol::Ip4(v4) => ip = Some(std::net::IpAddr::V4(v4)),
            Protocol::Ip6(v6) => ip = Some(std::net::IpAddr::V6(v6)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    let (Some(ip), Some(port)) = (ip, port) else {
        return Ok(());
    };
    if port == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind((ip, port)) {
        Ok(probe) => {
            drop(probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(P2pError::Listen {
            address: address.to_string(),
            message: format!("{}: address already in use", std::net::SocketAddr::new(ip, port)),
        }),
        Err(e) => Err(P2pError::Listen {
            address: address.to_string(),
            message: e.to_string(),
        }),
    }
}

/// `address` without its `/p2p/..` part, and the peer id that part names.
pub(crate) fn split_peer(address: &Multiaddr) -> (Multiaddr, Option<PeerId>) {
    let mut peer = None;
    let without = address
        .iter()
        .filter(|p| match p {
            Protocol::P2p(id) => {
                peer = Some(*id);
                false
            }
            _ => true,
        })
        .collect();
    (without, peer)
}

/// Starts a listener on each TCP address of `listen` and waits until each reports its address
/// (ports resolved).
pub(crate) async fn listen_all<B: libp2p::swarm::NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    listen: &[String],
    key: &str,
) -> Result<Vec<Multiaddr>, P2pError> {
    let mut pending_listeners = HashMap::new();
    for address in tcp_listen_addresses(listen, key)? {
        refuse_if_busy(&address)?;
        let id = swarm.listen_on(address.clone()).map_err(|e| P2pError::Listen {
            address: address.to_string(),
            message: e.to_string(),
        })?;
        pending_listeners.insert(id, address);
    }
    let mut listening = Vec::new();
    let waited = cluster_rt::timeout(LISTEN_WAIT, async {
        while !pending_listeners.is_empty() {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr {
                    listener_id, address, ..
                } => {
                    pending_listeners.remove(&listener_id);
                    listening.push(address);
                }
                SwarmEvent::ListenerClosed {
                    listener_id, reason, ..
                } => {
                    if let Some(address) = pending_listeners.remove(&listener_id) {
                        return Err(P2pError::Listen {
                            address: address.to_string(),
                            message: format!("{reason:?}"),
                        });
                    }
                }
                SwarmEvent::ListenerError { listener_id, error } => {
                    if let Some(address) = pending_listeners.remove(&listener_id) {
                        return Err(P2pError::Listen {
                            address: address.to_string(),
                            message: error.to_string(),
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    })
    .await;
    match waited {
        Ok(result) => result?,
        Err(_) => {
            return Err(P2pError::Listen {
                address: format!("{:?}", pending_listeners.values().collect::<Vec<_>>()),
                message: "no listen address reported".into(),
            })
        }
    }
    Ok(listening)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_listeners_are_used() {
        let addresses = tcp_listen_addresses(
            &["/ip4/0.0.0.0/tcp/9096".into(), "/ip4/0.0.0.0/udp/9096/quic".into()],
            "k",
        )
        .unwrap();
        assert_eq!(addresses.len(), 1);
        assert!(tcp_listen_addresses(&["/ip4/0.0.0.0/udp/9096/quic".into()], "k").is_err());
        assert!(tcp_listen_addresses(&["garbage".into()], "k").is_err());
    }

    #[test]
    fn a_secret_of_the_wrong_length_is_refused() {
        let keypair = Keypair::generate_ed25519();
        assert!(matches!(
            build_transport(&keypair, &[1, 2, 3]),
            Err(P2pError::Config(_))
        ));
        assert!(build_transport(&keypair, &[7; 32]).is_ok());
        assert!(build_transport(&keypair, &[]).is_ok());
    }
}
