//! Invariants, one per file, each a pure function over member snapshots (and the client
//! oracle) that appends what it finds wrong to `violations`.
//!
//! Safety invariants hold after every step, faults or not; placement holds once the liveness
//! phase has converged.

mod acknowledged_pins_kept;
mod applied_state_agrees;
mod members_healthy_once_faults_stop;
mod pins_placed_on_allocated_daemons;
mod replication_restored_on_live_members;
mod single_leader_per_term;
mod unpins_not_resurrected;

pub use acknowledged_pins_kept::check as acknowledged_pins_kept;
pub use applied_state_agrees::check as applied_state_agrees;
pub use members_healthy_once_faults_stop::check as members_healthy_once_faults_stop;
pub use pins_placed_on_allocated_daemons::check as pins_placed_on_allocated_daemons;
pub use pins_placed_on_allocated_daemons::check_tolerating_orphans as pins_placed_on_allocated_daemons_but_wiped_orphans;
pub use replication_restored_on_live_members::check as replication_restored_on_live_members;
pub use single_leader_per_term::check as single_leader_per_term;
pub use unpins_not_resurrected::check as unpins_not_resurrected;

/// One broken invariant, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}
