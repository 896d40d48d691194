//! The production transport between members: a libp2p host (TCP, the private network keyed by
//! the cluster `secret`, noise, yamux) carrying [`cluster_rpc`] requests with libp2p's
//! request-response protocol, one length-prefixed JSON frame each way (the small requests of
//! the write path go pipelined on one long-lived stream per peer, `rpc_mux`); and HTTP over
//! libp2p streams (`/libp2p-http`, the REST API's libp2p endpoint) for both sides.
//!
//! Owns: the libp2p swarm task, dialing by peer id and address, and mapping libp2p failures to
//! [`TransportFailure`] (never delivered → `Unreachable`; outcome unknown → `Network`). Does not
//! own: what requests mean (cluster-node's handler) nor their encoding (cluster-rpc's `wire`).
//! Compiled only without `cfg(madsim)`: the simulator uses cluster-rpc's `SimTransport`.
#![deny(missing_docs)]

#[cfg(not(madsim))]
mod codec;
#[cfg(not(madsim))]
mod host;
#[cfg(not(madsim))]
mod http_tunnel;
#[cfg(not(madsim))]
mod rpc_mux;
#[cfg(not(madsim))]
mod stack;

#[cfg(not(madsim))]
pub use codec::read_frame;
#[cfg(not(madsim))]
pub use host::{P2pConfig, P2pTransport};
#[cfg(not(madsim))]
pub use http_tunnel::{HttpConnections, HttpStream, HttpTunnelClient, HttpTunnelServer, NameServer, HTTP_PROTOCOL};
#[cfg(not(madsim))]
pub use stack::P2pError;
