//! The merge of a cluster-wide status: every member's statuses of one range of CIDs become one
//! [`GlobalPinInfo`] per CID, in CID byte order. Pure: the caller asks the members.

use std::collections::BTreeMap;

use cluster_types::{Cid, GlobalPinInfo, PeerId, Pin, PinInfo, PinInfoShort, Timestamp, TrackerStatus};

/// What one member said about a range.
pub(super) enum RangeAnswer {
    /// Its statuses, in any order.
    Statuses(Vec<PinInfo>),
    /// It could not be asked, or failed: its error goes where its status would.
    Failed(String),
}

/// One [`GlobalPinInfo`] per CID that `pins` (this member's state over the range) or any answer
/// names, in CID byte order. A member that did not report a CID is `remote` when `pins` does not
/// allocate it there, else `unpinned` (its state lacks the pin: it is behind, or it was
/// unpinned); a member that failed is `cluster_error` where it is allocated, `remote` elsewhere.
/// `now` stamps the statuses made up here.
pub(super) fn merge_range(pins: &[Pin], answers: Vec<(PeerId, RangeAnswer)>, now: Timestamp) -> Vec<GlobalPinInfo> {
    let mut merged: BTreeMap<Vec<u8>, (GlobalPinInfo, Option<&Pin>)> = BTreeMap::new();
    for pin in pins {
        merged.insert(pin.cid.to_bytes(), (empty(pin.cid), Some(pin)));
    }
    let mut failed = Vec::new();
    let mut answered = Vec::new();
    for (peer, answer) in answers {
        match answer {
            RangeAnswer::Statuses(items) => {
                answered.push(peer);
                for info in items {
                    let (global, _) = merged
                        .entry(info.cid.to_bytes())
                        .or_insert_with(|| (empty(info.cid), None));
                    global.add(info);
                }
            }
            RangeAnswer::Failed(error) => failed.push((peer, error)),
        }
    }
    merged
        .into_values()
        .map(|(mut global, pin)| {
            let allocated = |peer: &PeerId| pin.is_none_or(|pin| pin.is_allocated_to(peer));
            for peer in &answered {
                let status = if allocated(peer) {
                    TrackerStatus::Unpinned
                } else {
                    TrackerStatus::Remote
                };
                global
                    .peer_map
                    .entry(peer.to_string())
                    .or_insert_with(|| short(status, String::new(), now));
            }
            for (peer, error) in &failed {
                let entry = if allocated(peer) {
                    short(TrackerStatus::ClusterError, error.clone(), now)
                } else {
                    short(TrackerStatus::Remote, String::new(), now)
                };
                global.peer_map.insert(peer.to_string(), entry);
            }
            global
        })
        .collect()
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
    use cluster_types::PinOptions;

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
            short: short(status, String::new(), Timestamp::ZERO),
        }
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
            (
                a,
                RangeAnswer::Statuses(vec![info(&on_all, a, Pinned), info(&on_ab, a, Pinned)]),
            ),
            (
                b,
                RangeAnswer::Statuses(vec![info(&on_ab, b, Pinning), info(&only_on_b, b, PinQueued)]),
            ),
            (c, RangeAnswer::Failed("no answer".into())),
        ];
        let merged = merge_range(&[on_ab.clone(), on_all.clone()], answers, Timestamp::ZERO);
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
        assert_eq!(of(&on_ab).allocations, vec![a, b], "pin fields come from the answers");
    }

    #[test]
    fn an_empty_range_merges_to_nothing() {
        let merged = merge_range(&[], vec![(peer(1), RangeAnswer::Statuses(Vec::new()))], Timestamp::ZERO);
        assert!(merged.is_empty());
    }
}
