//! Whole-cluster scenarios under the madsim simulator.
//!
//! Owns: building members as simulated nodes (each with its own fake IPFS daemon, a data folder
//! and a memory disk, [`SimDisk`], that keeps across `kill`/`restart` only what was synced), the
//! trace hash that proves a seed replays, and the scenarios in `tests/`. The members and the
//! scenarios are compiled only with `--cfg madsim`; run them with `just sim` (fixed seeds) or
//! `just sim-replay SEED`, and measure the simulator's speed with `just sim-speed`.
#![deny(missing_docs)]

#[cfg(madsim)]
pub mod invariants;
#[cfg(madsim)]
mod member;
mod oracle;
#[cfg(madsim)]
mod sim_cluster;
mod sim_disk;
#[cfg(madsim)]
mod snapshot;
mod trace_hash;
#[cfg(madsim)]
pub mod workload;

#[cfg(madsim)]
pub use member::{SimMember, SimMemberConfig, MEMBER_PORT};
pub use oracle::{OpKind, OpRecord, Oracle, Outcome};
#[cfg(madsim)]
pub use sim_cluster::{member_ip, member_seed, SimCluster};
pub use sim_disk::SimDisk;
#[cfg(madsim)]
pub use snapshot::MemberSnapshot;
pub use trace_hash::TraceHash;

/// The seed of the running simulation, for failure messages.
#[cfg(madsim)]
pub fn seed() -> u64 {
    madsim::runtime::Handle::current().seed()
}

/// How to replay a failing seed; every scenario prints this on failure.
#[cfg(madsim)]
pub fn replay_hint() -> String {
    format!("replay with: just sim-replay {}", seed())
}

/// Prints the members' logs when `RUST_LOG` is set (for example `RUST_LOG=info just sim-replay S`);
/// every scenario calls it first. Log lines carry simulated time, so a replay prints the same.
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}
