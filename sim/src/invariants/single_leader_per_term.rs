//! Raft election safety: at most one member leads a term with a quorum behind it.
//!
//! openraft 0.9 runs in its default "advanced" leader-id mode: a leader id is (term, node id),
//! so two candidates can both win the same term, and the higher node id supersedes the other
//! (a voter switches its vote to it, and the lower one can no longer commit). So the check is
//! the quorum property behind election safety: of the members leading one term, at most one
//! holds the current vote of a majority of the members.

use std::collections::BTreeMap;

use super::Violation;
use crate::MemberSnapshot;

/// At most one leader per term backed by a majority of current votes.
pub fn check(members: &[MemberSnapshot], violations: &mut Vec<Violation>) {
    let majority = members.len() / 2 + 1;
    let mut backed: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for leader in members.iter().filter(|m| m.alive && m.is_leader) {
        let Some(term) = leader.term else { continue };
        let votes = members
            .iter()
            .filter(|m| m.term == Some(term) && m.voted_for == Some(leader.node_id))
            .count();
        if votes >= majority {
            backed.entry(term).or_default().push(leader.index);
        }
    }
    for (term, indexes) in backed {
        if indexes.len() > 1 {
            violations.push(Violation {
                invariant: "single_leader_per_term",
                detail: format!("members {indexes:?} all lead term {term} with a majority of votes"),
            });
        }
    }
}
