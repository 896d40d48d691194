//! Consensus: the shared pinset kept consistent across members by Raft (openraft 0.9).
//!
//! ```text
//!  Consensus::log_pin ──► openraft (leader) ──► LogStore::append (one fsync per batch)
//!                                │ committed
//!                                ▼
//!                   PinsetStateMachine::apply ──► State::commit(ops + applied meta, atomically)
//!                                │
//!                                ▼
//!                       ApplyObserver (the tracker queues pin/unpin on the daemon)
//! ```
//!
//! Owns: the openraft type config ([`TypeConfig`], [`Command`]), the durable log store
//! ([`LogStore`]), the state machine over a [`cluster_state::State`] ([`PinsetStateMachine`]),
//! and the [`Consensus`] facade the node uses. Does not own: what to pin where (the node
//! allocates before logging), nor the network between members (a [`RaftTransport`] is given).
#![deny(missing_docs)]
// openraft's storage traits return its `StorageError` by value; boxing it is not ours to choose.
#![allow(clippy::result_large_err)]

mod config;
mod consensus;
mod election_watch;
mod error;
mod log_store;
mod membership;
mod network;
mod owned_task;
mod snapshot_file;
mod state_machine;
mod state_repair;
mod storage_health;
mod type_config;
mod write_batch;

pub use cluster_types::{MemberNode, TransportFailure};
pub use config::RaftConfig;
pub use consensus::{Consensus, ConsensusDeps, LeaderForwarder};
pub use error::{raft_error, ConsensusError};
pub use log_store::{decode_log_entry, LogStore};
pub use membership::{Promotion, PROMOTION_LAG_MAX};
pub use network::{NoTransport, RaftTransport, TransportNetworkFactory};
pub use snapshot_file::SnapshotFile;
pub use state_machine::{
    applied_index_in, applied_members, import_pinset, AppliedChange, ApplyObserver, PinsetStateMachine, SYNC_EVERY_OPS,
};
pub use storage_health::StorageHealth;
pub use type_config::{node_id_of, Command, CommandResponse, Committed, NodeId, TypeConfig};
