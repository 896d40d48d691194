//! State machine safety: members that applied the same log index hold the same pinset.

use std::collections::BTreeMap;

use super::Violation;
use crate::MemberSnapshot;

/// Members at the same applied index have identical pinsets.
pub fn check(members: &[MemberSnapshot], violations: &mut Vec<Violation>) {
    let mut by_index: BTreeMap<u64, &MemberSnapshot> = BTreeMap::new();
    for member in members.iter().filter(|m| m.alive) {
        let Some(index) = member.applied_index else { continue };
        match by_index.get(&index) {
            None => {
                by_index.insert(index, member);
            }
            Some(first) => {
                if first.pins != member.pins {
                    violations.push(Violation {
                        invariant: "applied_state_agrees",
                        detail: format!(
                            "members {} and {} both applied index {index} but hold {} and {} pins",
                            first.index,
                            member.index,
                            first.pins.len(),
                            member.pins.len()
                        ),
                    });
                }
            }
        }
    }
}
