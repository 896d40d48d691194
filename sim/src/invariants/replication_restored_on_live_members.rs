//! With repinning on, once a lost member's grace has passed and repair has had its time, every
//! pin is held by at least its minimum replication of live members: allocated to them and on
//! their daemons. A pin whose minimum exceeds the live members cannot be, and is left out.

use super::Violation;
use crate::MemberSnapshot;

/// Checks one settled view: `members` with their alive flags; the pinset of any live member.
pub fn check(members: &[MemberSnapshot], violations: &mut Vec<Violation>) {
    let Some(reference) = members.iter().find(|m| m.alive) else {
        return;
    };
    let live = members.iter().filter(|m| m.alive).count() as i32;
    for pin in &reference.pins {
        let min = pin.options.replication_factor_min;
        if pin.is_everywhere() || min > live {
            continue;
        }
        let held: Vec<usize> = members
            .iter()
            .filter(|m| m.alive && pin.is_allocated_to(&m.peer_id) && m.daemon_pins.contains(&pin.cid))
            .map(|m| m.index)
            .collect();
        if (held.len() as i32) < min {
            violations.push(Violation {
                invariant: "replication_restored_on_live_members",
                detail: format!(
                    "{} is held by live members {held:?} only, under its minimum {min} (allocated to {:?})",
                    pin.cid, pin.allocations
                ),
            });
        }
    }
}
