//! Allocation: which members hold a pin (Go `allocate.go` and `allocator/balanced`), spread
//! across the groups of `allocate_by` (`partition`), which members are candidates
//! (`candidates`), and when a pin's allocations need repair (`repair`).
//!
//! Owns: the choice of members given the current allocations, the user's wishes, members'
//! free-space metrics and the replication factors. Sans-IO: plain functions over values, `now`
//! passed in, so every rule is table-tested without clocks or sockets. Does not own: measuring,
//! exchanging or keeping metrics (cluster-monitor keeps them; cluster-node runs the loops).
#![deny(missing_docs)]

mod candidates;
mod partition;
mod repair;

pub use candidates::{candidates, partitioning_metrics, rendezvous_rank};
pub use repair::{fallback_allocations, repair_need, surviving_allocations, RepairNeed};

use cluster_types::PeerId;

/// The allocator's settings (`allocator.balanced`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocatorConfig {
    /// The metrics to allocate by, in order: each `tag:*` entry groups members (copies spread
    /// across groups), free space orders them inside a group.
    pub allocate_by: Vec<String>,
}

impl Default for AllocatorConfig {
    fn default() -> AllocatorConfig {
        // Go's default.
        AllocatorConfig {
            allocate_by: vec!["tag:group".into(), "freespace".into()],
        }
    }
}

/// A member the allocator may choose, with what it knows of its free space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The member.
    pub peer: PeerId,
    /// Bytes free on its IPFS daemon; `None` when it has not reported yet.
    pub free_space: Option<u64>,
    /// Tie-break among equal free space: a per-CID rank (rendezvous hashing), so pins of equal
    /// members spread evenly instead of all landing on the same ones.
    pub tie_break: u64,
    /// Its value of each partitioning metric of `allocate_by`, in order (`["eu"]` for
    /// `tag:group` = eu); empty when allocation is by free space alone.
    pub groups: Vec<String>,
}

/// What an allocation must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// At least this many members.
    pub min: usize,
    /// At most this many members.
    pub max: usize,
    /// Members that hold the pin now (kept while still candidates).
    pub current: &'a [PeerId],
    /// Members the user asked for, in order (preferred over the rest).
    pub priority: &'a [PeerId],
}

/// Why no allocation was possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotEnoughPeers {
    /// The minimum that was needed.
    pub needed: usize,
    /// The maximum that was wanted.
    pub wanted: usize,
    /// How many candidates there were.
    pub available: usize,
}

impl From<NotEnoughPeers> for cluster_types::ClusterError {
    fn from(e: NotEnoughPeers) -> cluster_types::ClusterError {
        cluster_types::ClusterError::NotEnoughPeers {
            needed: e.needed,
            wanted: e.wanted,
            available: e.available,
        }
    }
}

impl std::fmt::Display for NotEnoughPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        cluster_types::ClusterError::from(self.clone()).fmt(f)
    }
}

/// Chooses up to `request.max` members among `candidates`: current allocations first (while
/// they are candidates), then the user's priority members, then the others spread across
/// their groups (see [`Candidate::groups`]), by most free space inside a group. Members that
/// have not reported free space yet come after every member of their group that has, so a
/// fresh cluster still pins before its first metrics arrive.
///
/// To ensure correctness: callers pass only members that may hold pins (alive, in the cluster,
/// not full); the result never repeats a member and never has more than `max`.
pub fn allocate(candidates: &[Candidate], request: &Request<'_>) -> Result<Vec<PeerId>, NotEnoughPeers> {
    let is_candidate = |peer: &PeerId| candidates.iter().any(|c| c.peer == *peer);
    let mut chosen: Vec<PeerId> = Vec::new();
    for peer in request.current.iter().chain(request.priority) {
        if chosen.len() >= request.max {
            break;
        }
        if is_candidate(peer) && !chosen.contains(peer) {
            chosen.push(*peer);
        }
    }
    let mut ranked: Vec<&Candidate> = candidates.iter().filter(|c| !chosen.contains(&c.peer)).collect();
    ranked.sort_by(|a, b| {
        b.free_space
            .is_some()
            .cmp(&a.free_space.is_some())
            .then(b.free_space.cmp(&a.free_space))
            .then(a.tie_break.cmp(&b.tie_break))
            .then(a.peer.cmp(&b.peer))
    });
    let held: Vec<&Candidate> = chosen
        .iter()
        .filter_map(|peer| candidates.iter().find(|c| c.peer == *peer))
        .collect();
    for candidate in partition::spread(&ranked, &held) {
        if chosen.len() >= request.max {
            break;
        }
        if !chosen.contains(&candidate.peer) {
            chosen.push(candidate.peer);
        }
    }
    if chosen.len() < request.min {
        return Err(NotEnoughPeers {
            needed: request.min,
            wanted: request.max,
            available: candidates.len(),
        });
    }
    // A wrong allocation would be committed to every member's pinset: stop here instead.
    assert!(
        chosen.len() <= request.max && chosen.iter().all(is_candidate),
        "allocation {chosen:?} is over the maximum {} or names a non-candidate",
        request.max
    );
    assert!(
        chosen.iter().enumerate().all(|(i, peer)| !chosen[..i].contains(peer)),
        "allocation {chosen:?} names a member twice"
    );
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(i: u8) -> PeerId {
        PeerId::from_ed25519_seed([i; 32])
    }

    fn candidate(i: u8, free: Option<u64>) -> Candidate {
        Candidate {
            peer: peer(i),
            free_space: free,
            tie_break: i as u64,
            groups: Vec::new(),
        }
    }

    fn request<'a>(min: usize, max: usize, current: &'a [PeerId], priority: &'a [PeerId]) -> Request<'a> {
        Request {
            min,
            max,
            current,
            priority,
        }
    }

    #[test]
    fn most_free_space_wins() {
        let candidates = [candidate(1, Some(10)), candidate(2, Some(30)), candidate(3, Some(20))];
        assert_eq!(
            allocate(&candidates, &request(2, 2, &[], &[])).unwrap(),
            vec![peer(2), peer(3)]
        );
    }

    #[test]
    fn members_without_metrics_come_last_but_count() {
        let candidates = [candidate(1, None), candidate(2, Some(5)), candidate(3, None)];
        assert_eq!(
            allocate(&candidates, &request(3, 3, &[], &[])).unwrap(),
            vec![peer(2), peer(1), peer(3)]
        );
    }

    #[test]
    fn current_then_priority_then_space() {
        let candidates = [
            candidate(1, Some(1)),
            candidate(2, Some(2)),
            candidate(3, Some(3)),
            candidate(4, Some(4)),
        ];
        let current = [peer(1), peer(9)]; // peer 9 left the cluster: not kept
        let priority = [peer(2)];
        assert_eq!(
            allocate(&candidates, &request(3, 3, &current, &priority)).unwrap(),
            vec![peer(1), peer(2), peer(4)]
        );
        // Fewer wanted than current allocations: the extra ones are dropped.
        assert_eq!(
            allocate(&candidates, &request(1, 1, &[peer(3), peer(1)], &[])).unwrap(),
            vec![peer(3)]
        );
    }

    #[test]
    fn equal_space_spreads_by_tie_break() {
        let mut candidates = [candidate(1, Some(7)), candidate(2, Some(7)), candidate(3, Some(7))];
        candidates[2].tie_break = 0;
        assert_eq!(allocate(&candidates, &request(1, 1, &[], &[])).unwrap(), vec![peer(3)]);
    }

    #[test]
    fn too_few_candidates_is_gos_error() {
        let candidates = [candidate(1, Some(1))];
        let error = allocate(&candidates, &request(2, 3, &[], &[])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "not enough peers to allocate CID. Needed at least: 2. Wanted at most: 3. Available candidates: 1. See logs for more info."
        );
    }

    #[test]
    fn never_more_than_max_nor_repeats() {
        let candidates: Vec<Candidate> = (1..=6).map(|i| candidate(i, Some(i as u64))).collect();
        let current = [peer(1), peer(1), peer(2)];
        let priority = [peer(2), peer(3)];
        for max in 1..=6 {
            let chosen = allocate(&candidates, &request(1, max, &current, &priority)).unwrap();
            assert_eq!(chosen.len(), max);
            let mut unique = chosen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), chosen.len());
        }
    }
}
