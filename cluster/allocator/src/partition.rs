//! Spreading a pin across groups (Go's balanced allocator with `allocate_by`): candidates are
//! grouped by their value of each partitioning metric in turn (`tag:region`, then `tag:zone`,
//! ...), and each next pick goes to the group holding the fewest copies so far, so replication
//! 3 over tags eu/us/asia puts one copy in each. Inside a group, candidates keep their rank (most
//! free space first).

use crate::Candidate;

/// `ranked` (best first) reordered so that taking a prefix spreads copies across groups at
/// every level of partitioning, counting the copies `held` already (current and priority
/// allocations). Candidates without a value for a level form a group of their own ("").
pub(crate) fn spread<'c>(ranked: &[&'c Candidate], held: &[&Candidate]) -> Vec<&'c Candidate> {
    spread_level(ranked, held, 0)
}

fn spread_level<'c>(ranked: &[&'c Candidate], held: &[&Candidate], level: usize) -> Vec<&'c Candidate> {
    if ranked.iter().all(|c| c.groups.len() <= level) {
        return ranked.to_vec();
    }
    let value = |c: &Candidate| c.groups.get(level).cloned().unwrap_or_default();
    // (value, its candidates in rank order, copies held in it)
    let mut groups: Vec<(String, Vec<&'c Candidate>, usize)> = Vec::new();
    for candidate in ranked {
        let name = value(candidate);
        match groups.iter_mut().find(|(g, _, _)| *g == name) {
            Some((_, members, _)) => members.push(candidate),
            None => groups.push((name, vec![candidate], 0)),
        }
    }
    for (name, members, count) in &mut groups {
        let held_here: Vec<&Candidate> = held.iter().copied().filter(|c| value(c) == *name).collect();
        *count = held_here.len();
        *members = spread_level(members, &held_here, level + 1);
    }
    // Ties between groups go to the one with most free space in all, then by name.
    groups.sort_by(|a, b| {
        let free = |members: &[&Candidate]| members.iter().map(|c| c.free_space.unwrap_or(0) as u128).sum::<u128>();
        free(&b.1).cmp(&free(&a.1)).then(a.0.cmp(&b.0))
    });
    let mut order = Vec::with_capacity(ranked.len());
    let mut next = vec![0usize; groups.len()];
    while order.len() < ranked.len() {
        let pick = (0..groups.len())
            .filter(|&g| next[g] < groups[g].1.len())
            .min_by_key(|&g| groups[g].2)
            .expect("a group has candidates left while the order is short");
        order.push(groups[pick].1[next[pick]]);
        next[pick] += 1;
        groups[pick].2 += 1;
    }
    order
}

#[cfg(test)]
mod tests {
    use cluster_types::PeerId;

    use crate::{allocate, Candidate, Request};

    fn peer(i: u8) -> PeerId {
        PeerId::from_ed25519_seed([i; 32])
    }

    /// Member `i` with `free` bytes in the groups `path` (one value per partitioning level).
    fn member(i: u8, free: u64, path: &[&str]) -> Candidate {
        Candidate {
            peer: peer(i),
            free_space: Some(free),
            tie_break: i as u64,
            groups: path.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// The members chosen, by number, for replication `min..=max` with `current` held.
    fn chosen(candidates: &[Candidate], min: usize, max: usize, current: &[u8]) -> Vec<u8> {
        let current: Vec<PeerId> = current.iter().map(|i| peer(*i)).collect();
        let request = Request {
            min,
            max,
            current: &current,
            priority: &[],
        };
        let peers = allocate(candidates, &request).unwrap();
        peers
            .iter()
            .map(|p| candidates.iter().position(|c| c.peer == *p).unwrap() as u8 + 1)
            .collect()
    }

    #[test]
    fn copies_spread_across_groups_before_doubling_up() {
        // Members 1..=6: eu has the two roomiest, asia the least room.
        let candidates = [
            member(1, 900, &["eu"]),
            member(2, 800, &["eu"]),
            member(3, 500, &["us"]),
            member(4, 400, &["us"]),
            member(5, 100, &["asia"]),
            member(6, 50, &["asia"]),
        ];
        // (min, max, held now, chosen: held first, then the picks in order)
        let table: [(usize, usize, &[u8], &[u8]); 6] = [
            // One copy in each group, the roomiest member of each.
            (3, 3, &[], &[1, 3, 5]),
            // By free space alone this would be 1 and 2, both in eu.
            (2, 2, &[], &[1, 3]),
            // A fourth copy goes to the roomiest group again.
            (4, 4, &[], &[1, 3, 5, 2]),
            // Held copies count: eu and us hold one, so asia comes first.
            (3, 3, &[2, 4], &[2, 4, 5]),
            // Two held in eu: the others fill before eu gets a third.
            (4, 4, &[1, 2], &[1, 2, 3, 5]),
            (6, 6, &[], &[1, 3, 5, 2, 4, 6]),
        ];
        for (min, max, held, expected) in table {
            assert_eq!(
                chosen(&candidates, min, max, held),
                expected,
                "{min}..{max} holding {held:?}"
            );
        }
    }

    #[test]
    fn nested_groups_spread_at_every_level() {
        // Regions, then zones: eu has two zones, us one.
        let candidates = [
            member(1, 900, &["eu", "a"]),
            member(2, 850, &["eu", "a"]),
            member(3, 300, &["eu", "b"]),
            member(4, 700, &["us", "c"]),
        ];
        // eu first (more room), then us, then eu's other zone before eu-a's second member.
        assert_eq!(chosen(&candidates, 3, 3, &[]), [1, 4, 3]);
        assert_eq!(chosen(&candidates, 4, 4, &[]), [1, 4, 3, 2]);
    }

    #[test]
    fn members_without_a_tag_form_a_group_of_their_own() {
        let candidates = [member(1, 900, &["eu"]), member(2, 800, &["eu"]), member(3, 10, &[""])];
        assert_eq!(chosen(&candidates, 2, 2, &[]), [1, 3]);
    }

    #[test]
    fn without_partitions_the_roomiest_win() {
        let candidates = [member(1, 10, &[]), member(2, 30, &[]), member(3, 20, &[])];
        assert_eq!(chosen(&candidates, 2, 2, &[]), [2, 3]);
    }
}
