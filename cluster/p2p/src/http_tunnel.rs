//! HTTP over libp2p streams, as Go's `go-libp2p-http`: each stream of the `/libp2p-http`
//! protocol carries one HTTP/1.1 connection. Members accept such streams on their cluster host
//! (the REST API's libp2p endpoint, reached with the cluster secret), or on a host of the API's
//! own ([`HttpTunnelServer`]) when `restapi.libp2p_listen_multiaddress` is set;
//! [`HttpTunnelClient`] is the client side `ipfs-cluster-ctl --host /ip4/../tcp/9096/p2p/<id>
//! --secret <hex>` uses.

use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{multiaddr::Protocol, Multiaddr, PeerId, StreamProtocol, Swarm, Transport as _};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt as _};

use crate::stack::{build_transport, listen_all, secure, split_peer, tcp_transport, BaseTransport, P2pError};

/// The protocol name Go's `p2phttp.DefaultP2PProtocol` registers.
pub const HTTP_PROTOCOL: StreamProtocol = StreamProtocol::new("/libp2p-http");

/// One HTTP connection over a libp2p stream, readable and writable with tokio's traits.
pub type HttpStream = Compat<libp2p::Stream>;

/// Inbound HTTP connections: the peer that opened each, and its stream.
pub type HttpConnections = futures::stream::BoxStream<'static, (PeerId, HttpStream)>;

pub(crate) fn incoming(streams: libp2p_stream::IncomingStreams) -> HttpConnections {
    streams.map(|(peer, stream)| (peer, stream.compat())).boxed()
}

/// A libp2p host of its own for the REST API (Go's `restapi.libp2p_listen_multiaddress`,
/// `id` and `private_key`). Like Go's, it is an open network: no cluster secret, only noise.
/// Dropping it closes the host.
pub struct HttpTunnelServer {
    peer: PeerId,
    listening: Vec<Multiaddr>,
    _stop: cluster_rt::tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for HttpTunnelServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpTunnelServer({} on {:?})", self.peer, self.listening)
    }
}

impl HttpTunnelServer {
    /// Starts the host on the TCP addresses of `listen` and returns it with its inbound HTTP
    /// connections.
    pub async fn start(keypair: Keypair, listen: &[String]) -> Result<(HttpTunnelServer, HttpConnections), P2pError> {
        let peer = keypair.public().to_peer_id();
        let transport = build_transport(&keypair, &[])?;
        let behaviour = libp2p_stream::Behaviour::new();
        let mut control = behaviour.new_control();
        let connections = control
            .accept(HTTP_PROTOCOL)
            .map_err(|_| P2pError::Config(format!("{HTTP_PROTOCOL} streams are already taken")))?;
        let mut swarm = Swarm::new(
            transport,
            behaviour,
            peer,
            libp2p::swarm::Config::with_tokio_executor().with_idle_connection_timeout(SERVER_IDLE),
        );
        let listening = listen_all(&mut swarm, listen, "restapi.libp2p_listen_multiaddress").await?;
        let (stop, stopped) = cluster_rt::tokio::sync::oneshot::channel::<()>();
        cluster_rt::spawn(drive(swarm, stopped));
        Ok((
            HttpTunnelServer {
                peer,
                listening,
                _stop: stop,
            },
            incoming(connections),
        ))
    }

    /// The host's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// The addresses it listens on (ports resolved).
    pub fn listen_addresses(&self) -> &[Multiaddr] {
        &self.listening
    }
}

/// How long the API host keeps a connection without streams.
const SERVER_IDLE: Duration = Duration::from_secs(120);

/// Polls `swarm` (which makes its connections and streams progress) until `stopped` fires or
/// its sender is dropped.
async fn drive(mut swarm: Swarm<libp2p_stream::Behaviour>, stopped: cluster_rt::tokio::sync::oneshot::Receiver<()>) {
    let mut stopped = std::pin::pin!(stopped);
    loop {
        cluster_rt::tokio::select! {
            _ = &mut stopped => break,
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                    tracing::debug!("connection with {peer_id} closed: {cause:?}");
                }
                SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                    tracing::debug!("refused a connection from {send_back_addr}: {error}");
                }
                _ => {}
            },
        }
    }
}

/// Where the client looks up the names in addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameServer {
    /// The system's resolver configuration (`/etc/resolv.conf`).
    System,
    /// One name server, over UDP (tests run their own on loopback).
    Udp(std::net::SocketAddr),
}

impl NameServer {
    fn wrap(self, tcp: libp2p::tcp::tokio::Transport) -> Result<BaseTransport, P2pError> {
        use libp2p::dns::{ResolverConfig, ResolverOpts};
        Ok(match self {
            NameServer::System => libp2p::dns::tokio::Transport::system(tcp)
                .map_err(|e| P2pError::Config(format!("reading the system's DNS configuration: {e}")))?
                .boxed(),
            NameServer::Udp(server) => {
                let mut connection = hickory_resolver::config::ConnectionConfig::udp();
                connection.port = server.port();
                let name_server = hickory_resolver::config::NameServerConfig::new(server.ip(), true, vec![connection]);
                let config = ResolverConfig::from_parts(None, vec![], vec![name_server]);
                libp2p::dns::tokio::Transport::custom(tcp, config, ResolverOpts::default()).boxed()
            }
        })
    }
}

/// How long the client's connection may stay without streams before libp2p closes it: long,
/// since it is never redialled (the client lives as long as one command).
const CLIENT_IDLE: Duration = Duration::from_secs(3600);

/// A connection to one member's libp2p host that opens a stream per HTTP connection. Dropping
/// it closes the connection.
pub struct HttpTunnelClient {
    peer: PeerId,
    control: libp2p_stream::Control,
    _stop: cluster_rt::tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for HttpTunnelClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpTunnelClient({})", self.peer)
    }
}

impl HttpTunnelClient {
    /// Connects to `address` through the private network keyed by `secret` (32 bytes; empty for
    /// an open network), within `limit`. The address ends in `/p2p/<peer id>`, or is a
    /// `/dnsaddr/<domain>` whose TXT records name the member; `/dns*` hosts are looked up too,
    /// with the system's resolver.
    pub async fn connect(secret: &[u8], address: &Multiaddr, limit: Duration) -> Result<HttpTunnelClient, P2pError> {
        HttpTunnelClient::connect_resolving(secret, address, limit, NameServer::System).await
    }

    /// [`HttpTunnelClient::connect`], with names looked up at `name_server`.
    pub async fn connect_resolving(
        secret: &[u8],
        address: &Multiaddr,
        limit: Duration,
        name_server: NameServer,
    ) -> Result<HttpTunnelClient, P2pError> {
        let (dial_address, peer) = split_peer(address);
        let has_names = address.iter().any(|p| {
            matches!(
                p,
                Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) | Protocol::Dnsaddr(_)
            )
        });
        if peer.is_none() && !address.iter().any(|p| matches!(p, Protocol::Dnsaddr(_))) {
            return Err(P2pError::Config(format!("{address} does not end in /p2p/<peer id>")));
        }
        // A throwaway identity: members accept any peer that knows the secret.
        let keypair = Keypair::generate_ed25519();
        let base = if has_names {
            name_server.wrap(tcp_transport())?
        } else {
            tcp_transport().boxed()
        };
        let transport = secure(base, &keypair, secret)?;
        let behaviour = libp2p_stream::Behaviour::new();
        let control = behaviour.new_control();
        let mut swarm = Swarm::new(
            transport,
            behaviour,
            keypair.public().to_peer_id(),
            libp2p::swarm::Config::with_tokio_executor().with_idle_connection_timeout(CLIENT_IDLE),
        );
        // libp2p-stream keeps no addresses: this connection is the one every stream uses.
        let dial = match peer {
            Some(peer) => DialOpts::peer_id(peer).addresses(vec![dial_address]).build(),
            // A /dnsaddr without a peer id: whoever its records name.
            None => DialOpts::unknown_peer_id().address(address.clone()).build(),
        };
        swarm
            .dial(dial)
            .map_err(|e| P2pError::Connect(format!("{address}: {e}")))?;
        let connected = cluster_rt::timeout(limit, async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer.is_none_or(|p| p == peer_id) => {
                        return Ok(peer_id)
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        return Err(P2pError::Connect(format!("{address}: {error}")))
                    }
                    _ => {}
                }
            }
        })
        .await;
        let peer = match connected {
            Ok(result) => result?,
            Err(_) => {
                return Err(P2pError::Connect(format!(
                    "{address}: no connection within {limit:?} (is the cluster secret right?)"
                )))
            }
        };
        let (stop, stopped) = cluster_rt::tokio::sync::oneshot::channel::<()>();
        cluster_rt::spawn(drive(swarm, stopped));
        Ok(HttpTunnelClient {
            peer,
            control,
            _stop: stop,
        })
    }

    /// The member this client talks to.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// Opens a new stream: one HTTP connection.
    pub async fn open(&self) -> Result<HttpStream, P2pError> {
        let mut control = self.control.clone();
        control
            .open_stream(self.peer, HTTP_PROTOCOL)
            .await
            .map(|stream| stream.compat())
            .map_err(|e| P2pError::Connect(format!("{}: {e}", self.peer)))
    }
}
