//! No acknowledged pin is lost: once the cluster has converged, every CID whose last
//! acknowledged operation was a pin (with no unknown operation after it) is in every member's
//! pinset.

use super::Violation;
use crate::{MemberSnapshot, Oracle};

/// Checks converged members (all alive, same applied index) against the oracle.
pub fn check(members: &[MemberSnapshot], oracle: &Oracle, violations: &mut Vec<Violation>) {
    for cid in oracle.cids() {
        if oracle.expected(&cid) != Some(true) {
            continue;
        }
        for member in members.iter().filter(|m| m.alive) {
            if !member.pins.iter().any(|p| p.cid == cid) {
                violations.push(Violation {
                    invariant: "acknowledged_pins_kept",
                    detail: format!(
                        "{cid} was acknowledged as pinned but member {} does not have it",
                        member.index
                    ),
                });
            }
        }
    }
}
