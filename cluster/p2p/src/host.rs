//! [`P2pTransport`]: one libp2p swarm per member, driven by one task. Callers hand it requests
//! through a channel; inbound requests go to the member's [`RpcHandler`] on their own tasks, so
//! a slow handler never stalls the swarm.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cluster_rpc::{wire, RpcHandler, RpcRequest, RpcResponse, Traffic, Transport};
use cluster_rt::tokio::sync::{mpsc, oneshot};
use cluster_types::{MemberNode, TransportFailure};
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};

use crate::codec::{protocol, FrameCodec, TrafficCounter};
use crate::http_tunnel::{HttpConnections, HTTP_PROTOCOL};
use crate::rpc_mux::{self, MuxChannels, MUX_PROTOCOL};
use crate::stack::{build_transport, listen_all, split_peer, P2pError};

/// How long libp2p itself keeps an exchange open; callers' own deadlines are shorter.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(300);
/// Connections without traffic stay open this long, so heartbeats reuse them.
const IDLE_CONNECTION: Duration = Duration::from_secs(120);
/// Concurrent request streams per connection (Raft, forwarded writes and status fan-out).
const STREAMS_PER_CONNECTION: usize = 1024;
use cluster_rpc::MEMBER_STARTING;

/// What the host is built from.
pub struct P2pConfig {
    /// The member's key pair (from `identity.json`); its peer id is the member's.
    pub keypair: Keypair,
    /// The cluster secret: 32 bytes keys the private network; empty means an open network.
    pub secret: Vec<u8>,
    /// Multiaddresses to listen on (`cluster.listen_multiaddress`); non-TCP ones are skipped.
    pub listen: Vec<String>,
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
    mux: Arc<MuxChannels>,
}

impl std::fmt::Debug for P2pTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "P2pTransport({} on {:?})", self.local, self.listening)
    }
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
        let mut streams = behaviour.streams.new_control();
        let mux_incoming = streams
            .accept(MUX_PROTOCOL)
            .map_err(|_| P2pError::Config(format!("{MUX_PROTOCOL} streams are already taken")))?;
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
        rpc_mux::serve(mux_incoming, handler.clone(), traffic.clone());
        let mux = MuxChannels::new(streams.clone(), traffic.clone());
        tracing::info!("cluster peer {local} listening on {listening:?}");
        Ok(Arc::new(P2pTransport {
            traffic,
            local,
            listening,
            commands,
            handler,
            streams,
            mux,
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

    /// How many peers this host has a long-lived stream to, for the write path's requests.
    pub fn pipelined_peers(&self) -> usize {
        self.mux.open_count()
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
        let peer = to.peer_id.0;
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
        // The small requests of the write path, on the peer's long-lived stream once it is up.
        let pipelined = matches!(
            request,
            RpcRequest::AppendEntries(_) | RpcRequest::Vote(_) | RpcRequest::Commit(_)
        );
        let request = wire::encode_request(&request);
        let bytes = match pipelined.then(|| self.mux.channel(peer)).flatten() {
            Some(channel) => channel.call(request, timeout).await.map_err(|failure| match failure {
                TransportFailure::Network(why) => TransportFailure::Network(format!("{peer}: {why}")),
                other => other,
            })?,
            None => {
                let answer = self.call_on_own_stream(peer, address, request, timeout).await?;
                if pipelined {
                    self.mux.open_beside(peer);
                }
                answer
            }
        };
        match wire::decode_response(&bytes).map_err(|e| TransportFailure::Network(format!("from {peer}: {e}")))? {
            RpcResponse::Starting => Err(TransportFailure::Unreachable(format!("{peer} {MEMBER_STARTING}"))),
            answer => Ok(answer),
        }
    }
}

impl P2pTransport {
    /// A request on a stream of its own (libp2p request-response), dialing `peer` at `address`
    /// if there is no connection.
    async fn call_on_own_stream(
        &self,
        peer: PeerId,
        address: Option<Multiaddr>,
        request: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, TransportFailure> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(HostCommand::Call {
                peer,
                address,
                request,
                reply,
            })
            .map_err(|_| TransportFailure::Unreachable("the libp2p host has stopped".into()))?;
        match cluster_rt::timeout(timeout, answer).await {
            Err(_) => Err(TransportFailure::Network(format!(
                "no answer from {peer} within {timeout:?}"
            ))),
            Ok(Err(_)) => Err(TransportFailure::Network("the libp2p host stopped mid-call".into())),
            Ok(Ok(result)) => result,
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
            let response = handler.handle(cluster_types::PeerId(peer), request).await;
            let _ = commands.send(HostCommand::Respond {
                channel,
                response: wire::encode_response(&response),
            });
        });
    }
}
