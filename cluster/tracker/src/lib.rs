//! The pin tracker: reconciles what the shared pinset allocates to this member with what its
//! IPFS daemon holds (Go's stateless tracker, reference §6.3), and reports per-CID statuses.
//!
//! Owns: the operation queues and workers, automatic retries, statuses, recovery and the
//! periodic state sync. Does not own: the pinset (consensus writes the [`cluster_state::State`]
//! and calls `track`/`untrack` as pins commit) nor the daemon protocol
//! ([`cluster_ipfs::IpfsConnector`]).
//!
//! ```text
//!  consensus apply ──track(pin, previous)──┐        ┌── status / status_all / recover[_all]
//!                  ──untrack(cid)──────────┤        │   sync_state (every state_sync_interval)
//!                                          v        v
//!                 ┌─────────────── OpTable (std Mutex) ──────────────────┐
//!                 │ ops: Cid -> Operation {kind, phase, attempts, error}  │
//!                 │ priority pins │ normal pins │ unpins   (tickets)      │
//!                 └──────┬──────────────┬──────────────┬──────────────────┘
//!          priority first│              │              │
//!                 concurrent_pins pin workers    1 unpin worker
//!                        │ pin(cid, depth)             │ unpin(cid)
//!                        v                             v
//!                 IpfsConnector (daemon) ── ok: op removed (status from state + daemon)
//!                                         └─ err: pin_error/unpin_error ── retry after
//!                                            base*2^(n-1) (≤ 60 s) while n < retry_limit
//! ```
//!
//! Layout:
//! - [`config`] holds [`TrackerConfig`].
//! - [`decision`] holds the sans-IO rules (status classification, what to enqueue, priority,
//!   retry).
//! - [`operation`] holds [`Operation`] and the [`operation::OpTable`] with its queues.
//! - [`pin_tracker`] holds [`PinTracker`], the async shell (workers, daemon calls, streams).
//!
//! Every daemon call relies on the connector's deadlines (its contract: none hangs forever).
//! Runs under the madsim simulator: time, tasks and randomness come from `cluster_rt` only.
#![deny(missing_docs)]

pub mod config;
mod daemon_listing;
pub mod decision;
pub mod operation;
pub mod pin_tracker;

pub use config::TrackerConfig;
pub use daemon_listing::ListingStore;
pub use decision::{OpKind, OpPhase, QUEUE_FULL_ERROR, UNEXPECTEDLY_UNPINNED_ERROR};
pub use operation::Operation;
pub use pin_tracker::{PinTracker, SyncReport, STATUS_RANGE_MAX};

#[cfg(test)]
mod tests;
