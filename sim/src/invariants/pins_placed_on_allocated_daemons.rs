//! After convergence every pin sits on the daemons of exactly the members it is allocated to
//! (all members for replication -1), within its replication factors, and no daemon holds a
//! CID that is not allocated to its member.
//!
//! One exception, for [`check_tolerating_orphans`]: a member whose data folder was wiped and
//! that caught up from a Raft snapshot has no record of what it pinned before, so a daemon pin
//! that is in no pinset may be the cluster's, unpinned while it was away, or the operator's
//! own; members leave the latter alone, so they leave both.

use super::Violation;
use crate::MemberSnapshot;

/// Checks one converged view: `members` all alive with equal pinsets.
pub fn check(members: &[MemberSnapshot], violations: &mut Vec<Violation>) {
    check_tolerating_orphans(members, &[], violations);
}

/// [`check`], where the daemons of members `wiped` may hold CIDs that are in no pinset.
pub fn check_tolerating_orphans(members: &[MemberSnapshot], wiped: &[usize], violations: &mut Vec<Violation>) {
    let Some(reference) = members.iter().find(|m| m.alive) else {
        return;
    };
    for pin in &reference.pins {
        let holders: Vec<usize> = members
            .iter()
            .filter(|m| m.daemon_pins.contains(&pin.cid))
            .map(|m| m.index)
            .collect();
        let allocated: Vec<usize> = members
            .iter()
            .filter(|m| pin.is_allocated_to(&m.peer_id))
            .map(|m| m.index)
            .collect();
        if holders != allocated {
            violations.push(Violation {
                invariant: "pins_placed_on_allocated_daemons",
                detail: format!("{} is held by {holders:?} but allocated to {allocated:?}", pin.cid),
            });
        }
        if !pin.is_everywhere() {
            let (min, max) = (pin.options.replication_factor_min, pin.options.replication_factor_max);
            let count = allocated.len() as i32;
            if count < min || count > max {
                violations.push(Violation {
                    invariant: "pins_placed_on_allocated_daemons",
                    detail: format!("{} has {count} allocations outside [{min}, {max}]", pin.cid),
                });
            }
        }
    }
    for member in members {
        for cid in &member.daemon_pins {
            if wiped.contains(&member.index) && !reference.pins.iter().any(|p| p.cid == *cid) {
                continue;
            }
            if !reference
                .pins
                .iter()
                .any(|p| p.cid == *cid && p.is_allocated_to(&member.peer_id))
            {
                violations.push(Violation {
                    invariant: "pins_placed_on_allocated_daemons",
                    detail: format!(
                        "member {}'s daemon holds {cid}, which is not allocated to it",
                        member.index
                    ),
                });
            }
        }
    }
}
