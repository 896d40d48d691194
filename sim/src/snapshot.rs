//! [`MemberSnapshot`]: what an invariant may look at of one member, taken between steps.

use cluster_state::PinIter;
use cluster_types::{Cid, PeerId, Pin};

use crate::SimMember;

/// One member's observable state at one instant.
#[derive(Debug, Clone)]
pub struct MemberSnapshot {
    /// Member index.
    pub index: usize,
    /// Its cluster peer id.
    pub peer_id: PeerId,
    /// Whether it is running (not killed).
    pub alive: bool,
    /// Its Raft term, if running.
    pub term: Option<u64>,
    /// Whether it believes it is the leader.
    pub is_leader: bool,
    /// Its Raft node id.
    pub node_id: u64,
    /// The node its current vote is for (term in `term`), if running and it voted.
    pub voted_for: Option<u64>,
    /// Its last applied log index.
    pub applied_index: Option<u64>,
    /// Its pinset, in CID order (empty if down).
    pub pins: Vec<Pin>,
    /// The CIDs its IPFS daemon holds (the daemon outlives the member).
    pub daemon_pins: Vec<Cid>,
    /// What the member says of its own health (`/health`), if running.
    pub health: Option<Result<(), String>>,
}

impl MemberSnapshot {
    /// Reads member `index`.
    pub fn take(index: usize, member: &SimMember, alive: bool) -> MemberSnapshot {
        let cluster = if alive { member.cluster() } else { None };
        let voted_for = cluster.as_ref().and_then(|c| c.consensus().voted_for());
        let (term, is_leader, applied_index, pins) = match &cluster {
            Some(cluster) => {
                let consensus = cluster.consensus();
                // A full disk can leave the state unreadable for a while: its index and pins
                // are then unknown, and no invariant compares them.
                let pins: Result<Vec<Pin>, _> = PinIter::new(cluster.state().as_ref(), 1000).collect();
                // From the state, not openraft's metrics: those lag the apply a little, and
                // the pins read here are the state's.
                let applied = cluster_consensus::applied_index_in(cluster.state().as_ref());
                let (applied, pins) = match pins {
                    Ok(pins) => (applied, pins),
                    Err(_) => (None, Vec::new()),
                };
                (Some(consensus.current_term()), consensus.is_leader(), applied, pins)
            }
            None => (None, false, None, Vec::new()),
        };
        MemberSnapshot {
            index,
            peer_id: member.identity.peer_id,
            alive: cluster.is_some(),
            term,
            is_leader,
            node_id: cluster_consensus::node_id_of(&member.identity.peer_id),
            voted_for,
            applied_index,
            pins,
            daemon_pins: member.ipfs.pins(),
            health: cluster.as_ref().map(|c| c.health()),
        }
    }
}
