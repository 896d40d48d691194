//! The openraft type configuration: what a log entry carries and how members are named.

use std::io::Cursor;

use cluster_types::{Cid, MemberNode, PeerId, Pin};
use serde::{Deserialize, Serialize};

/// Raft node id: a 64-bit digest of the member's peer id (see [`node_id_of`]).
pub type NodeId = u64;

/// A change to the shared pinset, one per Raft log entry.
// Pins dominate the log; boxing them would add an allocation per entry for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Add or replace a pin (allocations already decided).
    Pin(Pin),
    /// Remove a pin.
    Unpin(Cid),
    /// Replace `previous` by `pin` only if the pinset still holds exactly `previous`: the
    /// leader's re-allocations (peers rm, repair) read a pin, then write it back; a blind write
    /// would resurrect a pin unpinned in between, or undo a re-pin's new options.
    Reallocate {
        /// The pin with its new allocations.
        pin: Pin,
        /// The pin as read before re-allocating.
        previous: Pin,
    },
    /// Remove `previous` only if the pinset still holds exactly it: an expired pin that was
    /// pinned again meanwhile (with a new `expire_at`) stays.
    Expire {
        /// The pin as read when it was found expired.
        previous: Pin,
    },
    /// Several commands in one log entry (one fsync), applied in order as if one entry each:
    /// the leader's repairs and expiries go through Raft in batches.
    Batch(Vec<Command>),
}

/// A command's result and the log index it was committed at (so a member that forwarded the
/// write can wait until it has applied it too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// What applying the command returned.
    pub response: CommandResponse,
    /// The log index of the entry.
    pub log_index: u64,
}

/// The result of applying a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CommandResponse {
    /// Membership or blank entries.
    #[default]
    Nothing,
    /// The pin as committed.
    Pinned(Pin),
    /// The removed pin, `None` if the CID was not in the pinset.
    Unpinned(Option<Pin>),
    /// A [`Command::Reallocate`] or [`Command::Expire`] that found the pin changed or gone and
    /// did nothing.
    Unchanged,
    /// The response of each command of a [`Command::Batch`], in order.
    Batch(Vec<CommandResponse>),
}

openraft::declare_raft_types!(
    /// openraft's type configuration for the cluster pinset.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = MemberNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = cluster_rt::OpenraftRuntime,
);

/// The Raft node id of a member: FNV-1a 64 of its peer id bytes. Collisions among the few dozen
/// members of a cluster are vanishingly unlikely; joining checks for them anyway.
pub fn node_id_of(peer: &PeerId) -> NodeId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in peer.to_bytes() {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
