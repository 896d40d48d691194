//! When a pin's allocations need repair: it names a member no longer in the cluster (or one
//! about to leave), or a member down past the repinning grace, or it has fewer than its
//! minimum. And what stays when no new allocation is possible: a departed member is dropped
//! anyway; a pin on a down member, and a short pin, wait for candidates.

use cluster_types::{PeerId, Pin};

/// Why a pin's allocations need repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairNeed {
    /// An allocated member is not among the members.
    Departed,
    /// An allocated member is down past the repinning grace (and still a member).
    Down,
    /// Fewer allocations than the pin's minimum, all of them members.
    Short,
}

/// Whether `pin` needs new allocations, given the members that stay (without a leaving one)
/// and those down past the repinning grace (empty when repinning is off). Pins on every member
/// need none.
pub fn repair_need(pin: &Pin, members: &[PeerId], down: &[PeerId]) -> Option<RepairNeed> {
    if pin.is_everywhere() {
        return None;
    }
    if pin.allocations.iter().any(|p| !members.contains(p)) {
        return Some(RepairNeed::Departed);
    }
    if pin.allocations.iter().any(|p| down.contains(p)) {
        return Some(RepairNeed::Down);
    }
    let min = pin.options.replication_factor_min.max(0) as usize;
    (pin.allocations.len() < min).then_some(RepairNeed::Short)
}

/// The allocations of `pin` that are still members and not down: the base a repair allocates
/// from. A down member is not kept: when it returns, its state sync unpins what moved away.
pub fn surviving_allocations(pin: &Pin, members: &[PeerId], down: &[PeerId]) -> Vec<PeerId> {
    pin.allocations
        .iter()
        .filter(|p| members.contains(p) && !down.contains(p))
        .copied()
        .collect()
}

/// The allocations to commit when the allocator finds too few candidates: without the departed
/// members (never keep a member that left) and never over the pin's maximum, or nothing to do
/// for a short pin (try again later).
pub fn fallback_allocations(need: RepairNeed, mut surviving: Vec<PeerId>, max: i32) -> Option<Vec<PeerId>> {
    match need {
        // No allocations would mean "everywhere": nothing is committed then.
        RepairNeed::Departed if surviving.is_empty() => None,
        RepairNeed::Departed => {
            if max > 0 {
                surviving.truncate(max as usize);
            }
            Some(surviving)
        }
        // Moving a pin off a down member to fewer than its minimum would lose a copy that
        // may come back: it waits, as a short pin does.
        RepairNeed::Down | RepairNeed::Short => None,
    }
}

#[cfg(test)]
mod tests {
    use cluster_types::{Cid, PinOptions};

    use super::*;

    fn peer(i: u8) -> PeerId {
        PeerId::from_ed25519_seed([i; 32])
    }

    fn pin(min: i32, max: i32, allocations: &[u8]) -> Pin {
        let mut pin = Pin::new(
            Cid::raw_sha256(b"repair"),
            PinOptions {
                replication_factor_min: min,
                replication_factor_max: max,
                ..PinOptions::default()
            },
        );
        pin.allocations = allocations.iter().map(|i| peer(*i)).collect();
        pin
    }

    #[test]
    fn pins_needing_repair() {
        let members = [peer(1), peer(2), peer(3)];
        let down = [peer(3)];
        // (min, max, allocations, need)
        let table: [(i32, i32, &[u8], Option<RepairNeed>); 11] = [
            (2, 3, &[1, 2], None),
            (2, 3, &[1, 9], Some(RepairNeed::Departed)),
            (1, 1, &[9], Some(RepairNeed::Departed)),
            (2, 3, &[1], Some(RepairNeed::Short)),
            (3, 3, &[1, 2], Some(RepairNeed::Short)),
            (-1, -1, &[], None),
            (1, 2, &[1, 2], None),
            // On a down member, even with the minimum met elsewhere.
            (1, 2, &[1, 3], Some(RepairNeed::Down)),
            (2, 2, &[3, 9], Some(RepairNeed::Departed)),
            (3, 3, &[3], Some(RepairNeed::Down)),
            (-1, -1, &[3], None),
        ];
        for (min, max, allocations, need) in table {
            assert_eq!(
                repair_need(&pin(min, max, allocations), &members, &down),
                need,
                "min {min} max {max} on {allocations:?}"
            );
        }
    }

    #[test]
    fn without_candidates_departed_members_go_and_short_pins_wait() {
        let members = [peer(1), peer(2)];
        let departed = pin(2, 2, &[1, 9]);
        let surviving = surviving_allocations(&departed, &members, &[]);
        assert_eq!(surviving, vec![peer(1)]);
        assert_eq!(
            fallback_allocations(RepairNeed::Departed, surviving, 2),
            Some(vec![peer(1)])
        );
        // Every allocation departed: an empty list would read as "everywhere"; it waits.
        assert_eq!(fallback_allocations(RepairNeed::Departed, Vec::new(), 2), None);
        let short = pin(2, 2, &[1]);
        let surviving = surviving_allocations(&short, &members, &[]);
        assert_eq!(fallback_allocations(RepairNeed::Short, surviving, 2), None);
        // A down member is left out of the base, but without candidates nothing moves.
        let on_down = pin(2, 2, &[1, 2]);
        let surviving = surviving_allocations(&on_down, &members, &[peer(2)]);
        assert_eq!(surviving, vec![peer(1)]);
        assert_eq!(fallback_allocations(RepairNeed::Down, surviving, 2), None);
        // A pin over its maximum (older data) is cut to it, never committed over it.
        let over = pin(1, 1, &[1, 2, 9]);
        let surviving = surviving_allocations(&over, &members, &[]);
        assert_eq!(
            fallback_allocations(RepairNeed::Departed, surviving, 1),
            Some(vec![peer(1)])
        );
    }
}
