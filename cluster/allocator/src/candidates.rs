//! Which members may hold a pin, from their latest `freespace` metric: a member that never
//! reported comes after the others (a fresh cluster still pins before its first metrics), one
//! whose metric expired (likely down) or says its repository is full is left out, as in Go.
//! Each candidate's groups are its values of the partitioning metrics (`tag:*`) of
//! `allocate_by`.

use cluster_types::{Cid, Metric, PeerId, Timestamp};

use crate::Candidate;

/// The candidates among `members` for `cid` at `now`; `metric(name, peer)` gives a member's
/// latest metric `name` (`freespace`, and each partitioning metric), if any.
pub fn candidates<'m>(
    members: &[PeerId],
    cid: &Cid,
    allocate_by: &[String],
    metric: impl Fn(&str, &PeerId) -> Option<&'m Metric>,
    now: Timestamp,
) -> Vec<Candidate> {
    members
        .iter()
        .filter_map(|peer| {
            let free_space = match metric(FREESPACE, peer) {
                None => None,
                Some(metric) if metric.is_expired(now) || !metric.valid => return None,
                Some(metric) => Some(metric.value.parse::<u64>().unwrap_or(0)),
            };
            // A member whose tag is unknown (not reported yet, expired) is a group of its own.
            let groups = partitioning_metrics(allocate_by)
                .map(|name| match metric(name, peer) {
                    Some(m) if !m.is_expired(now) && m.valid => m.value.clone(),
                    _ => String::new(),
                })
                .collect();
            Some(Candidate {
                peer: *peer,
                free_space,
                tie_break: rendezvous_rank(cid, peer),
                groups,
            })
        })
        .collect()
}

/// The metric whose value is a member's free space.
const FREESPACE: &str = "freespace";

/// The entries of `allocate_by` that group members: the tags. Free space orders members inside
/// a group wherever it is listed; other numeric metrics are not used for ordering.
pub fn partitioning_metrics(allocate_by: &[String]) -> impl Iterator<Item = &str> {
    allocate_by
        .iter()
        .map(String::as_str)
        .filter(|name| name.starts_with("tag:"))
}

/// FNV-1a 64 of the CID and member bytes: the member's rank for this CID among members with
/// equal free space, so equal members share pins evenly (rendezvous hashing).
pub fn rendezvous_rank(cid: &Cid, peer: &PeerId) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in cid.to_bytes().into_iter().chain(peer.to_bytes()) {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn peer(i: u8) -> PeerId {
        PeerId::from_ed25519_seed([i; 32])
    }

    fn freespace(i: u8, value: &str, expire: i64, valid: bool) -> Metric {
        Metric {
            name: "freespace".into(),
            peer: peer(i),
            value: value.into(),
            expire,
            valid,
            weight: 0,
            partitionable: false,
            received_at: 0,
        }
    }

    #[test]
    fn the_latest_metric_decides_who_is_a_candidate() {
        let now = Timestamp::from_unix(1_700_000_000, 0);
        let (at_now, later) = (now.unix_nanos(), now.unix_nanos() + 1);
        // (member, its metric, the free space it is a candidate with; None: not one)
        let table: [(u8, Option<Metric>, Option<Option<u64>>); 6] = [
            (1, Some(freespace(1, "500", later, true)), Some(Some(500))),
            (2, None, Some(None)),
            (3, Some(freespace(3, "500", at_now, true)), None),
            (4, Some(freespace(4, "0", later, false)), None),
            (5, Some(freespace(5, "lots", later, true)), Some(Some(0))),
            (6, Some(freespace(6, "7", at_now - 1, true)), None),
        ];
        let metrics: BTreeMap<PeerId, Metric> = table
            .iter()
            .filter_map(|(i, metric, _)| metric.clone().map(|m| (peer(*i), m)))
            .collect();
        let members: Vec<PeerId> = table.iter().map(|(i, _, _)| peer(*i)).collect();
        let cid = Cid::raw_sha256(b"candidates");
        let chosen = candidates(&members, &cid, &[], |_, p| metrics.get(p), now);
        for (i, _, expected) in &table {
            let found = chosen.iter().find(|c| c.peer == peer(*i)).map(|c| c.free_space);
            assert_eq!(found, *expected, "member {i}");
        }
        assert!(chosen.iter().all(|c| c.tie_break == rendezvous_rank(&cid, &c.peer)));
    }

    #[test]
    fn groups_are_the_tag_values_in_allocate_by_order() {
        let now = Timestamp::from_unix(1_700_000_000, 0);
        let later = now.unix_nanos() + 1;
        let tag = |i: u8, name: &str, value: &str, expire: i64| Metric {
            name: name.into(),
            value: value.into(),
            ..freespace(i, "", expire, true)
        };
        let metrics: BTreeMap<(String, PeerId), Metric> = [
            tag(1, "tag:region", "eu", later),
            tag(1, "tag:zone", "a", later),
            tag(2, "tag:region", "us", later),
            // Expired: the member's region is unknown.
            tag(3, "tag:region", "asia", now.unix_nanos()),
        ]
        .into_iter()
        .map(|m| ((m.name.clone(), m.peer), m))
        .collect();
        let allocate_by: Vec<String> = ["tag:region", "freespace", "tag:zone"].map(String::from).to_vec();
        let chosen = candidates(
            &[peer(1), peer(2), peer(3)],
            &Cid::raw_sha256(b"groups"),
            &allocate_by,
            |name, p| metrics.get(&(name.to_string(), *p)),
            now,
        );
        let groups: Vec<Vec<String>> = chosen.into_iter().map(|c| c.groups).collect();
        assert_eq!(groups, [vec!["eu", "a"], vec!["us", ""], vec!["", ""]]);
    }

    #[test]
    fn ranks_differ_per_cid_and_member() {
        let (a, b) = (Cid::raw_sha256(b"a"), Cid::raw_sha256(b"b"));
        assert_ne!(rendezvous_rank(&a, &peer(1)), rendezvous_rank(&a, &peer(2)));
        assert_ne!(rendezvous_rank(&a, &peer(1)), rendezvous_rank(&b, &peer(1)));
        assert_eq!(rendezvous_rank(&a, &peer(1)), rendezvous_rank(&a, &peer(1)));
    }
}
