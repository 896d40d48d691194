//! The merge of a cluster-wide status: every member's statuses of one range of CIDs become one
//! [`GlobalPinInfo`] per CID, in CID byte order. Pure: the caller asks the members.

use std::collections::{BTreeMap, HashMap};

use cluster_rpc::StatusPage;
use cluster_types::{Cid, GlobalPinInfo, PeerId, Pin, PinInfoShort, Timestamp, TrackerStatus};

/// What one member said about a range.
pub(super) enum RangeAnswer {
    /// Its statuses, in any order, with its own fields once.
    Statuses(StatusPage),
    /// It could not be asked, or failed: its error goes where its status would.
    Failed(String),
}

/// One [`GlobalPinInfo`] per CID that `pins` (this member's state over the range, in CID byte
/// order as the store lists it) or any answer names, in CID byte order; the pin's fields (name, allocations, ...) come from `pins`, so a
/// CID only other members know has none. A member that did not report a CID is `remote` when
/// `pins` does not allocate it there, else `unpinned` (its state lacks the pin: it is behind, or
/// it was unpinned); a member that failed is `cluster_error` where it is allocated, `remote`
/// elsewhere. `now` stamps the statuses made up here.
pub(super) fn merge_range(pins: &[Pin], answers: Vec<(PeerId, RangeAnswer)>, now: Timestamp) -> Vec<GlobalPinInfo> {
    // Answers list the same CIDs as `pins`, in the same order, but for the odd pin a member is
    // ahead or behind on: those are matched in step, the rest by CID.
    let mut in_order: Vec<Merged> = pins.iter().map(|pin| (of_pin(pin), Some(pin))).collect();
    let mut position: Option<HashMap<Cid, usize>> = None;
    let mut extra: BTreeMap<Vec<u8>, GlobalPinInfo> = BTreeMap::new();
    let mut failed = Vec::new();
    let mut answered = Vec::new();
    for (peer, answer) in answers {
        match answer {
            RangeAnswer::Statuses(mut page) => {
                let key = peer.to_string();
                let mut next = 0;
                for item in std::mem::take(&mut page.items) {
                    let index = if in_order.get(next).is_some_and(|(global, _)| global.cid == item.cid) {
                        Some(next)
                    } else {
                        position
                            .get_or_insert_with(|| pins.iter().enumerate().map(|(i, pin)| (pin.cid, i)).collect())
                            .get(&item.cid)
                            .copied()
                    };
                    let global = match index {
                        Some(index) => {
                            next = index + 1;
                            &mut in_order[index].0
                        }
                        None => extra.entry(item.cid.to_bytes()).or_insert_with(|| empty(item.cid)),
                    };
                    global.peer_map.insert(key.clone(), page.short_of(item));
                }
                answered.push((peer, key));
            }
            RangeAnswer::Failed(error) => failed.push((peer, error)),
        }
    }
    let failed: Vec<(PeerId, String, String)> = failed
        .into_iter()
        .map(|(peer, error)| (peer, peer.to_string(), error))
        .collect();
    if !extra.is_empty() {
        let mut all: Vec<(Vec<u8>, Merged)> = in_order
            .into_iter()
            .map(|entry| (entry.0.cid.to_bytes(), entry))
            .chain(extra.into_iter().map(|(key, global)| (key, (global, None))))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        in_order = all.into_iter().map(|(_, entry)| entry).collect();
    }
    in_order
        .into_iter()
        .map(|(mut global, pin)| {
            let allocated = |peer: &PeerId| pin.is_none_or(|pin| pin.is_allocated_to(peer));
            for (peer, key) in &answered {
                if global.peer_map.contains_key(key) {
                    continue;
                }
                let status = if allocated(peer) {
                    TrackerStatus::Unpinned
                } else {
                    TrackerStatus::Remote
                };
                global.peer_map.insert(key.clone(), short(status, String::new(), now));
            }
            for (peer, key, error) in &failed {
                let entry = if allocated(peer) {
                    short(TrackerStatus::ClusterError, error.clone(), now)
                } else {
                    short(TrackerStatus::Remote, String::new(), now)
                };
                global.peer_map.insert(key.clone(), entry);
            }
            global
        })
        .collect()
}

/// A CID's merged statuses, and its pin in this member's state if there.
type Merged<'a> = (GlobalPinInfo, Option<&'a Pin>);

fn of_pin(pin: &Pin) -> GlobalPinInfo {
    GlobalPinInfo {
        cid: pin.cid,
        name: pin.options.name.clone(),
        allocations: pin.allocations.clone(),
        origins: pin.options.origins.clone(),
        created: pin.timestamp,
        metadata: pin.options.metadata.clone(),
        peer_map: Default::default(),
    }
}

fn empty(cid: Cid) -> GlobalPinInfo {
    GlobalPinInfo {
        cid,
        name: String::new(),
        allocations: Vec::new(),
        origins: Vec::new(),
        created: Timestamp::ZERO,
        metadata: Default::default(),
        peer_map: Default::default(),
    }
}

fn short(status: TrackerStatus, error: String, now: Timestamp) -> PinInfoShort {
    PinInfoShort {
        status,
        error,
        timestamp: now,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_types::{PinInfo, PinOptions};

    fn peer(n: u8) -> PeerId {
        PeerId::from_ed25519_seed([n; 32])
    }

    fn pin(n: u32, allocations: &[PeerId]) -> Pin {
        let mut pin = Pin::new(Cid::raw_sha256(&n.to_be_bytes()), PinOptions::default());
        pin.allocations = allocations.to_vec();
        pin
    }

    fn info(pin: &Pin, peer: PeerId, status: TrackerStatus) -> PinInfo {
        PinInfo {
            cid: pin.cid,
            name: pin.options.name.clone(),
            allocations: pin.allocations.clone(),
            origins: Vec::new(),
            created: Timestamp::ZERO,
            metadata: Default::default(),
            peer,
            short: PinInfoShort {
                peername: format!("member-{}", peer.to_string().len() % 7),
                ipfs_peer_id: format!("ipfs-of-{peer}"),
                ..short(status, String::new(), Timestamp::ZERO)
            },
        }
    }

    fn page(statuses: Vec<PinInfo>) -> RangeAnswer {
        RangeAnswer::Statuses(StatusPage::of_statuses(statuses, None))
    }

    fn statuses(global: &GlobalPinInfo) -> Vec<(PeerId, TrackerStatus, String)> {
        let mut v: Vec<_> = [peer(1), peer(2), peer(3)]
            .into_iter()
            .filter_map(|p| {
                global
                    .peer_map
                    .get(&p.to_string())
                    .map(|s| (p, s.status, s.error.clone()))
            })
            .collect();
        v.sort_by_key(|(p, _, _)| p.to_string());
        v
    }

    #[test]
    fn each_member_is_reported_whether_it_answered_failed_or_left_the_cid_out() {
        use TrackerStatus::*;
        let (a, b, c) = (peer(1), peer(2), peer(3));
        let on_ab = pin(1, &[a, b]);
        let on_all = pin(2, &[]);
        let only_on_b = pin(3, &[b]); // not in this member's state: b is ahead
        let answers = vec![
            (a, page(vec![info(&on_all, a, Pinned), info(&on_ab, a, Pinned)])),
            (b, page(vec![info(&on_ab, b, Pinning), info(&only_on_b, b, PinQueued)])),
            (c, RangeAnswer::Failed("no answer".into())),
        ];
        let mut pins = [on_ab.clone(), on_all.clone()];
        pins.sort_by_key(|p| p.cid.to_bytes());
        let merged = merge_range(&pins, answers, Timestamp::ZERO);
        let mut cids: Vec<Vec<u8>> = [&on_ab, &on_all, &only_on_b].iter().map(|p| p.cid.to_bytes()).collect();
        cids.sort();
        assert_eq!(
            merged.iter().map(|g| g.cid.to_bytes()).collect::<Vec<_>>(),
            cids,
            "one per CID, in byte order"
        );
        let of = |p: &Pin| merged.iter().find(|g| g.cid == p.cid).unwrap();
        let table = [
            // b left `on_all` out although everyone holds it: unpinned there. c failed: its
            // error where it is allocated, remote elsewhere.
            (
                &on_all,
                vec![(a, Pinned, ""), (b, Unpinned, ""), (c, ClusterError, "no answer")],
            ),
            (&on_ab, vec![(a, Pinned, ""), (b, Pinning, ""), (c, Remote, "")]),
            // Unknown here: every member that did not report it counts as allocated.
            (
                &only_on_b,
                vec![(a, Unpinned, ""), (b, PinQueued, ""), (c, ClusterError, "no answer")],
            ),
        ];
        for (pin, expected) in table {
            let mut expected: Vec<_> = expected.into_iter().map(|(p, s, e)| (p, s, e.to_string())).collect();
            expected.sort_by_key(|(p, _, _)| p.to_string());
            assert_eq!(statuses(of(pin)), expected, "{}", pin.cid);
        }
        assert_eq!(
            of(&on_ab).allocations,
            vec![a, b],
            "pin fields come from this member's state"
        );
        assert!(
            of(&only_on_b).allocations.is_empty(),
            "a pin this member lacks has no fields"
        );
        let reported = &of(&on_ab).peer_map[&b.to_string()];
        assert_eq!(
            reported.ipfs_peer_id,
            format!("ipfs-of-{b}"),
            "the member's fields are on every status"
        );
        assert_eq!(reported.peername, info(&on_ab, b, Pinning).short.peername);
    }

    /// Members answer in step with this member's pins but for a pin one lacks (behind) and one
    /// only it has (ahead): each status still lands on its own CID, in byte order.
    #[test]
    fn statuses_out_of_step_with_this_members_pins_land_on_their_cids() {
        use TrackerStatus::*;
        let (a, b) = (peer(1), peer(2));
        let mut pins: Vec<Pin> = (10..16).map(|n| pin(n, &[a, b])).collect();
        pins.sort_by_key(|p| p.cid.to_bytes());
        let ahead = pin(99, &[a, b]);
        let mut b_items: Vec<PinInfo> = pins
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, p)| info(p, b, Pinning))
            .chain([info(&ahead, b, PinQueued)])
            .collect();
        b_items.sort_by_key(|i| i.cid.to_bytes());
        let answers = vec![
            (a, page(pins.iter().map(|p| info(p, a, Pinned)).collect())),
            (b, page(b_items)),
        ];
        let merged = merge_range(&pins, answers, Timestamp::ZERO);
        let mut expected: Vec<Vec<u8>> = pins.iter().chain([&ahead]).map(|p| p.cid.to_bytes()).collect();
        expected.sort();
        assert_eq!(merged.iter().map(|g| g.cid.to_bytes()).collect::<Vec<_>>(), expected);
        for global in &merged {
            let (want_a, want_b) = if global.cid == ahead.cid {
                (Unpinned, PinQueued)
            } else if global.cid == pins[2].cid {
                (Pinned, Unpinned)
            } else {
                (Pinned, Pinning)
            };
            assert_eq!(global.peer_map[&a.to_string()].status, want_a, "{}", global.cid);
            assert_eq!(global.peer_map[&b.to_string()].status, want_b, "{}", global.cid);
        }
    }

    #[test]
    fn an_empty_range_merges_to_nothing() {
        let merged = merge_range(&[], vec![(peer(1), page(Vec::new()))], Timestamp::ZERO);
        assert!(merged.is_empty());
    }
}
