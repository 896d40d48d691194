//! Raft election safety: at most one member believes it leads in any one term.

use std::collections::BTreeMap;

use super::Violation;
use crate::MemberSnapshot;

/// At most one leader per term among the running members.
pub fn check(members: &[MemberSnapshot], violations: &mut Vec<Violation>) {
    let mut leaders: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for member in members.iter().filter(|m| m.alive && m.is_leader) {
        if let Some(term) = member.term {
            leaders.entry(term).or_default().push(member.index);
        }
    }
    for (term, indexes) in leaders {
        if indexes.len() > 1 {
            violations.push(Violation {
                invariant: "single_leader_per_term",
                detail: format!("members {indexes:?} all lead term {term}"),
            });
        }
    }
}
