//! Wire and domain types of IPFS Cluster, with JSON exactly as the Go implementation (v1.1.6)
//! writes it (reference §1.8): field names and order, CIDs as canonical strings, Go-style times.
//!
//! Layout, one type per file:
//! - [`Cid`], [`PeerId`]: content and peer identifiers, serialized as strings.
//! - [`Timestamp`], [`duration`]: Go `time.Time` (RFC3339Nano, zero = `0001-01-01T00:00:00Z`) and Go
//!   duration strings (`"2m0s"`).
//! - [`PinOptions`], [`Pin`], [`PinMode`], [`PinType`]: what the shared pinset holds.
//! - [`TrackerStatus`], [`TrackerStatusFilter`], [`PinInfoShort`], [`PinInfo`], [`GlobalPinInfo`]:
//!   what trackers report; [`GlobalLine`] writes a cluster-wide status as JSON without building one.
//! - [`Id`], [`IpfsId`], [`Version`], [`ApiError`], [`Metric`], [`Alert`], [`ConnectGraph`],
//!   [`GlobalRepoGc`], [`Bandwidth`]: the rest of the REST surface.
//! - [`ClusterError`]: why an operation failed, with its REST status code.
//!
//! This crate does no IO.
#![deny(missing_docs)]

mod added_output;
mod api_error;
mod cid;
mod cluster_error;
pub mod duration;
mod global_line;
mod health;
mod id;
mod json_line;
mod member;
mod metric;
mod peer_id;
mod pin;
pub mod pin_codec;
mod pin_info;
pub mod status_codec;
mod tcp_address;
mod timestamp;
mod tracker_status;
mod version;

pub use crate::added_output::AddedOutput;
pub use crate::api_error::ApiError;
pub use crate::cid::{Cid, CidError};
pub use crate::cluster_error::ClusterError;
pub use crate::global_line::{GlobalLine, LineItem, PeerEntryHead, PeerStatus, WrittenLines};
pub use crate::health::{Bandwidth, ConnectGraph, GlobalRepoGc, RepoGc, RepoGcKey};
pub use crate::id::{Id, IpfsId};
pub use crate::json_line::JsonLine;
pub use crate::member::{MemberNode, TransportFailure};
pub use crate::metric::{Alert, Metric};
pub use crate::peer_id::{PeerId, PeerIdError};
pub use crate::pin::{Pin, PinMode, PinOptions, PinOptionsError, PinType};
pub use crate::pin_info::{GlobalPinInfo, PinInfo, PinInfoShort, PinStatus};
pub use crate::tcp_address::{tcp_address, HttpAddress};
pub use crate::timestamp::Timestamp;
pub use crate::tracker_status::{TrackerStatus, TrackerStatusFilter};
pub use crate::version::{Version, RPC_PROTOCOL_VERSION, VERSION};

#[cfg(test)]
mod proptest_strategies;
// The strategies name this crate as other crates do: their file is shared with cluster-rpc's tests.
#[cfg(test)]
extern crate self as cluster_types;
#[cfg(test)]
mod strategies;
