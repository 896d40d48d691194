//! The cluster member: [`Cluster`], the main component that wires the others together, and
//! the configuration it is built from.
//!
//! ```text
//!   REST API ──► Cluster ──► Consensus (Raft) ──► State
//!                  │                 │ applied changes
//!                  │                 ▼
//!                  └──────────► PinTracker ──► IpfsConnector ──► IPFS daemon
//! ```
//!
//! Owns: `service.json` and `identity.json` (two-stage: raw serde, then validated [`NodeConfig`]),
//! the data folder and its lock, the member's Rust API (pin, unpin, status, recover, id, peers)
//! and its background loops (state sync, recover). Does not own transport or HTTP serving.
#![deny(missing_docs)]

mod cluster;
pub mod config;
mod data_folder;
mod error;
mod identity;
mod offline_state;

pub use cluster::{Cluster, ClusterDeps, PEERSTORE_FILE};
/// Where the member's databases are opened (see [`ClusterDeps::disk`]).
pub use cluster_state::{Disk, DiskFile, RealDisk};
pub use config::{NodeConfig, RestLibp2pHost, ServiceConfig};
pub use data_folder::DataFolder;
pub use error::NodeError;
pub use identity::{keypair_of, Identity};
pub use offline_state::{cleanup_state, export_state, import_state, ImportOverrides, Imported};
