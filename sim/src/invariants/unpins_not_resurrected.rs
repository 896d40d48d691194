//! No acknowledged unpin is undone: a CID whose last acknowledged operation was an unpin
//! (with no unknown operation after it) is in no member's pinset.

use super::Violation;
use crate::{MemberSnapshot, Oracle};

/// Checks converged members against the oracle.
pub fn check(members: &[MemberSnapshot], oracle: &Oracle, violations: &mut Vec<Violation>) {
    for cid in oracle.cids() {
        if oracle.expected(&cid) != Some(false) {
            continue;
        }
        for member in members.iter().filter(|m| m.alive) {
            if member.pins.iter().any(|p| p.cid == cid) {
                violations.push(Violation {
                    invariant: "unpins_not_resurrected",
                    detail: format!(
                        "{cid} was acknowledged as unpinned but member {} still has it",
                        member.index
                    ),
                });
            }
        }
    }
}
