//! [`P2pTransport`]: one libp2p swarm per member, driven by one task. Callers hand it requests
//! through a channel; inbound requests go to the member's [`RpcHandler`] on their own tasks, so
//! a slow handler never stalls the swarm.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cluster_consensus::{MemberNode, TransportFailure};
use cluster_rpc::{wire, RpcHandler, RpcRequest, RpcResponse, Traffic, Transport};
use cluster_rt::tokio::sync::{mpsc, oneshot};
use futures::StreamExt;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{multiaddr::Protocol, noise, tcp, yamux, Multiaddr, PeerId, Swarm, Transport as _};

use crate::codec::{protocol, FrameCodec, TrafficCounter};
use crate::http_tunnel::{HttpConnections, HTTP_PROTOCOL};

/// How long libp2p itself keeps an exchange open; callers' own deadlines are shorter.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(300);
/// Connections without traffic stay open this long, so heartbeats reuse them.
const IDLE_CONNECTION: Duration = Duration::from_secs(120);
/// Concurrent request streams per connection (Raft, forwarded writes and status fan-out).
const STREAMS_PER_CONNECTION: usize = 1024;
/// Connection setup (private network, noise, yamux) must finish within this; a peer with
/// another secret fails here, since its bytes decode to garbage that never completes a handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
use cluster_rpc::MEMBER_STARTING;

/// How long start waits for the listeners to report their addresses.
const LISTEN_WAIT: Duration = Duration::from_secs(10);

/// What the host is built from.
pub struct P2pConfig {
    /// The member's key pair (from `identity.json`); its peer id is the member's.
    pub keypair: Keypair,
    /// The cluster secret: 32 bytes keys the private network; empty means an open network.
    pub secret: Vec<u8>,
    /// Multiaddresses to listen on (`cluster.listen_multiaddress`); non-TCP ones are skipped.
    pub listen: Vec<String>,
}

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

/// What the host speaks: cluster RPC, and raw streams (the REST API's `/libp2p-http`).
#[derive(libp2p::swarm::NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Behaviour {
    rpc: request_response::Behaviour<FrameCodec>,
    streams: libp2p_stream::Behaviour,
}
type Reply = oneshot::Sender<Result<Vec<u8>, TransportFailure>>;

enum HostCommand {
    Call {
        peer: PeerId,
        address: Option<Multiaddr>,
        request: Vec<u8>,
        reply: Reply,
    },
    Respond {
        channel: ResponseChannel<Vec<u8>>,
        response: Vec<u8>,
    },
    Stop,
}

/// A member's libp2p host, carrying RPC requests to other members.
pub struct P2pTransport {
    local: PeerId,
    traffic: Arc<TrafficCounter>,
    listening: Vec<Multiaddr>,
    commands: mpsc::UnboundedSender<HostCommand>,
    handler: Arc<OnceLock<Arc<dyn RpcHandler>>>,
    streams: libp2p_stream::Control,
}

impl std::fmt::Debug for P2pTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "P2pTransport({} on {:?})", self.local, self.listening)
    }
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

impl P2pTransport {
    /// Builds the host, binds its listeners and starts its task. Inbound requests are refused
    /// until [`P2pTransport::serve`] gives a handler.
    pub async fn start(config: P2pConfig) -> Result<Arc<P2pTransport>, P2pError> {
        let local = config.keypair.public().to_peer_id();
        let transport = build_transport(&config.keypair, &config.secret)?;
        let traffic = Arc::new(TrafficCounter::default());
        let behaviour = Behaviour {
            rpc: request_response::Behaviour::with_codec(
                FrameCodec::counting(traffic.clone()),
                [(protocol(), ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(EXCHANGE_LIMIT)
                    .with_max_concurrent_streams(STREAMS_PER_CONNECTION),
            ),
            streams: libp2p_stream::Behaviour::new(),
        };
        let streams = behaviour.streams.new_control();
        let mut swarm = Swarm::new(
            transport,
            behaviour,
            local,
            libp2p::swarm::Config::with_tokio_executor().with_idle_connection_timeout(IDLE_CONNECTION),
        );
        let listening = listen_all(&mut swarm, &config.listen, "cluster.listen_multiaddress").await?;
        let (commands, receiver) = mpsc::unbounded_channel();
        let handler: Arc<OnceLock<Arc<dyn RpcHandler>>> = Arc::new(OnceLock::new());
        let host = SwarmTask {
            swarm,
            commands: commands.clone(),
            handler: handler.clone(),
            pending: HashMap::new(),
            dial_errors: HashMap::new(),
        };
        cluster_rt::spawn(host.run(receiver));
        tracing::info!("cluster peer {local} listening on {listening:?}");
        Ok(Arc::new(P2pTransport {
            traffic,
            local,
            listening,
            commands,
            handler,
            streams,
        }))
    }

    /// Inbound HTTP connections of the `/libp2p-http` protocol (the REST API's libp2p
    /// endpoint). Only one caller may take them; later calls fail.
    pub fn http_connections(&self) -> Result<HttpConnections, P2pError> {
        let mut control = self.streams.clone();
        control
            .accept(HTTP_PROTOCOL)
            .map(crate::http_tunnel::incoming)
            .map_err(|_| P2pError::Config(format!("{HTTP_PROTOCOL} streams are already taken")))
    }

    /// Answers inbound requests with `handler` from now on (set once; later calls are ignored).
    pub fn serve(&self, handler: Arc<dyn RpcHandler>) {
        let _ = self.handler.set(handler);
    }

    /// The addresses the listeners bound (ports resolved).
    pub fn listen_addresses(&self) -> &[Multiaddr] {
        &self.listening
    }

    /// This member's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.local
    }

    /// Closes every connection and listener.
    pub fn stop(&self) {
        let _ = self.commands.send(HostCommand::Stop);
    }
}

impl Drop for P2pTransport {
    fn drop(&mut self) {
        self.stop();
    }
}

#[async_trait::async_trait]
impl Transport for P2pTransport {
    fn traffic(&self) -> Traffic {
        let (bytes_in, bytes_out) = self.traffic.totals();
        Traffic { bytes_in, bytes_out }
    }

    async fn call(
        &self,
        to: &MemberNode,
        request: RpcRequest,
        timeout: Duration,
    ) -> Result<RpcResponse, TransportFailure> {
        let peer: PeerId = to
            .peer_id
            .parse()
            .map_err(|e| TransportFailure::Unreachable(format!("bad peer id {:?}: {e}", to.peer_id)))?;
        if peer == self.local {
            // Calls to self are answered by cluster_rpc::LocalShortcut, in front of this transport.
            return Err(TransportFailure::Unreachable(
                "a call to this member itself reached the network transport".into(),
            ));
        }
        let address = match to.address.as_str() {
            "" => None,
            text => {
                let parsed: Multiaddr = text
                    .parse()
                    .map_err(|e| TransportFailure::Unreachable(format!("bad address {text:?} of {peer}: {e}")))?;
                Some(split_peer(&parsed).0)
            }
        };
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(HostCommand::Call {
                peer,
                address,
                request: wire::encode_request(&request),
                reply,
            })
            .map_err(|_| TransportFailure::Unreachable("the libp2p host has stopped".into()))?;
        let bytes = match cluster_rt::timeout(timeout, answer).await {
            Err(_) => {
                return Err(TransportFailure::Network(format!(
                    "no answer from {peer} within {timeout:?}"
                )))
            }
            Ok(Err(_)) => return Err(TransportFailure::Network("the libp2p host stopped mid-call".into())),
            Ok(Ok(result)) => result?,
        };
        match wire::decode_response(&bytes).map_err(|e| TransportFailure::Network(format!("from {peer}: {e}")))? {
            RpcResponse::Starting => Err(TransportFailure::Unreachable(format!("{peer} {MEMBER_STARTING}"))),
            answer => Ok(answer),
        }
    }
}

/// The swarm and what it is waiting for; owned by one task.
struct SwarmTask {
    swarm: Swarm<Behaviour>,
    commands: mpsc::UnboundedSender<HostCommand>,
    handler: Arc<OnceLock<Arc<dyn RpcHandler>>>,
    pending: HashMap<OutboundRequestId, Reply>,
    /// The last dial error per peer, to say why a request was not delivered.
    dial_errors: HashMap<PeerId, String>,
}

impl SwarmTask {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<HostCommand>) {
        loop {
            cluster_rt::tokio::select! {
                command = commands.recv() => match command {
                    None | Some(HostCommand::Stop) => break,
                    Some(command) => self.command(command),
                },
                event = self.swarm.select_next_some() => self.event(event),
            }
        }
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(TransportFailure::Network("the libp2p host stopped".into())));
        }
    }

    fn command(&mut self, command: HostCommand) {
        match command {
            HostCommand::Call {
                peer,
                address,
                request,
                reply,
            } => {
                if let Some(address) = &address {
                    self.swarm.add_peer_address(peer, address.clone());
                }
                let addresses = address.into_iter().collect();
                let id = self
                    .swarm
                    .behaviour_mut()
                    .rpc
                    .send_request_with_addresses(&peer, request, addresses);
                self.pending.insert(id, reply);
            }
            HostCommand::Respond { channel, response } => {
                // Fails only if the asker is gone; it then sees its own failure.
                let _ = self.swarm.behaviour_mut().rpc.send_response(channel, response);
            }
            HostCommand::Stop => {}
        }
    }

    fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Rpc(request_response::Event::Message { peer, message, .. })) => {
                match message {
                    request_response::Message::Request { request, channel, .. } => self.inbound(peer, request, channel),
                    request_response::Message::Response { request_id, response } => {
                        if let Some(reply) = self.pending.remove(&request_id) {
                            let _ = reply.send(Ok(response));
                        }
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Rpc(request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            })) => {
                let failure = match error {
                    OutboundFailure::DialFailure => TransportFailure::Unreachable(format!(
                        "cannot connect to {peer}: {}",
                        self.dial_errors.get(&peer).map(String::as_str).unwrap_or("dial failed")
                    )),
                    OutboundFailure::UnsupportedProtocols => {
                        TransportFailure::Unreachable(format!("{peer} does not speak {}", wire::PROTOCOL))
                    }
                    other => TransportFailure::Network(format!("request to {peer}: {other}")),
                };
                if let Some(reply) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(failure));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Rpc(request_response::Event::InboundFailure {
                peer, error, ..
            })) => {
                tracing::debug!("request from {peer} failed: {error}");
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                let text = error.to_string();
                tracing::debug!("dialing {peer_id:?} failed: {text}");
                if let Some(peer) = peer_id {
                    self.dial_errors.insert(peer, text);
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr, error, ..
            } => {
                // A peer with another cluster secret fails here (the private network handshake
                // yields garbage): worth a line at info level.
                tracing::info!("refused a connection from {send_back_addr}: {error}");
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                self.dial_errors.remove(&peer_id);
                tracing::debug!("connected to {peer_id}");
            }
            _ => {}
        }
    }

    fn inbound(&mut self, peer: PeerId, request: Vec<u8>, channel: ResponseChannel<Vec<u8>>) {
        let Some(handler) = self.handler.get().cloned() else {
            // Answered at once, so a member joining through this one tries again instead of
            // waiting out its deadline.
            tracing::debug!("a request from {peer} while not serving yet: answered 'starting'");
            let _ = self.commands.send(HostCommand::Respond {
                channel,
                response: wire::encode_response(&RpcResponse::Starting),
            });
            return;
        };
        let commands = self.commands.clone();
        cluster_rt::spawn(async move {
            let request = match wire::decode_request(&request) {
                Ok(request) => request,
                Err(e) => {
                    tracing::warn!("undecodable request from {peer}: {e}");
                    return;
                }
            };
            let response = handler.handle(request).await;
            let _ = commands.send(HostCommand::Respond {
                channel,
                response: wire::encode_response(&response),
            });
        });
    }
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
