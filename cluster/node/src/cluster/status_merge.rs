//! The merge of a cluster-wide status: every member's statuses of one range of CIDs become one
//! `GlobalPinInfo` line per CID, in CID byte order, written straight from the members' pages
//! ([`GlobalLine`]): no `GlobalPinInfo` is built, and a member's fields are written once per
//! range, not once per pin. Pure: the caller asks the members.

use std::collections::HashMap;

use cluster_rpc::{PinStatus, StatusPage};
use cluster_types::{
    Cid, GlobalLine, PeerEntryHead, PeerId, PeerStatus, Pin, Timestamp, TrackerStatus, TrackerStatusFilter,
    WrittenLines,
};

/// What one member said about a range.
pub(super) enum RangeAnswer {
    /// Its statuses, in any order, with its own fields once.
    Statuses(StatusPage),
    /// It could not be asked, or failed: its error goes where its status would.
    Failed(String),
}

/// Every member's statuses of one range, matched to their CIDs: one row per CID that `pins`
/// (this member's state over the range, in CID byte order as the store lists it) or any answer
/// names. The pin's fields (name, allocations, ...) come from `pins`, so a CID only other members
/// know has none. A member that did not report a CID is `remote` when `pins` does not allocate it
/// there, else `unpinned` (its state lacks the pin: it is behind, or it was unpinned); a member
/// that failed is `cluster_error` where it is allocated, `remote` elsewhere. `now` stamps the
/// statuses made up here.
pub(super) struct MergedRange<'a> {
    pins: &'a [Pin],
    /// The members, in the order of their peer ids' text (a `peer_map`'s order).
    members: Vec<Member>,
    /// The CIDs only other members named, after the pins' rows.
    only_elsewhere: Vec<Cid>,
    /// Per row, per member (row-major), the index of the member's item for the row's CID.
    items: Vec<u32>,
    /// Rows in CID byte order (`None`: `0..rows` is already).
    order: Option<Vec<usize>>,
    now: Timestamp,
}

/// No item for this row.
const NO_ITEM: u32 = u32::MAX;

struct Member {
    peer: PeerId,
    /// The head of the statuses made up for it.
    made_up: PeerEntryHead,
    answer: MemberAnswer,
}

enum MemberAnswer {
    Statuses { items: Vec<PinStatus>, head: PeerEntryHead },
    Failed(String),
}

impl<'a> MergedRange<'a> {
    /// Matches the answers' items to their CIDs.
    pub(super) fn new(
        pins: &'a [Pin],
        answers: Vec<(PeerId, RangeAnswer)>,
        now: Timestamp,
    ) -> Result<MergedRange<'a>, serde_json::Error> {
        let mut answers = answers;
        answers.sort_by_cached_key(|(peer, _)| peer.to_string());
        let columns = answers.len();
        let mut items = vec![NO_ITEM; pins.len() * columns];
        // Answers list the same CIDs as `pins`, in the same order, but for the odd pin a member
        // is ahead or behind on: those are matched in step, the rest by CID.
        let mut position: Option<HashMap<Cid, usize>> = None;
        // The CIDs no pin has, in the order met, and their rows.
        let mut only_elsewhere: Vec<Cid> = Vec::new();
        let mut row_of_only: HashMap<Cid, usize> = HashMap::new();
        let mut members = Vec::with_capacity(columns);
        for (column, (peer, answer)) in answers.into_iter().enumerate() {
            let answer = match answer {
                RangeAnswer::Statuses(page) => {
                    let mut next = 0;
                    for (index, item) in page.items.iter().enumerate() {
                        let row = if pins.get(next).is_some_and(|pin| pin.cid == item.cid) {
                            next
                        } else if let Some(row) = position
                            .get_or_insert_with(|| pins.iter().enumerate().map(|(i, pin)| (pin.cid, i)).collect())
                            .get(&item.cid)
                        {
                            *row
                        } else {
                            let rows = pins.len() + only_elsewhere.len();
                            let row = *row_of_only.entry(item.cid).or_insert(rows);
                            if row == rows {
                                only_elsewhere.push(item.cid);
                                items.resize(items.len() + columns, NO_ITEM);
                            }
                            items[row * columns + column] = index as u32;
                            continue;
                        };
                        next = row + 1;
                        items[row * columns + column] = index as u32;
                    }
                    let head =
                        PeerEntryHead::reported(&peer, &page.peername, &page.ipfs_peer_id, &page.ipfs_peer_addresses)?;
                    MemberAnswer::Statuses {
                        items: page.items,
                        head,
                    }
                }
                RangeAnswer::Failed(error) => MemberAnswer::Failed(error),
            };
            members.push(Member {
                peer,
                made_up: PeerEntryHead::made_up(&peer)?,
                answer,
            });
        }
        let order = (!only_elsewhere.is_empty()).then(|| {
            let mut keyed: Vec<(Vec<u8>, usize)> = pins
                .iter()
                .map(|pin| pin.cid)
                .chain(only_elsewhere.iter().copied())
                .enumerate()
                .map(|(row, cid)| (cid.to_bytes(), row))
                .collect();
            keyed.sort();
            keyed.into_iter().map(|(_, row)| row).collect()
        });
        Ok(MergedRange {
            pins,
            members,
            only_elsewhere,
            items,
            order,
            now,
        })
    }

    /// How many CIDs the range holds.
    pub(super) fn len(&self) -> usize {
        self.pins.len() + self.only_elsewhere.len()
    }

    /// Writes the line of the `nth` CID in byte order, unless no member's status of it matches
    /// `filter`; whether it wrote one.
    pub(super) fn write_line(
        &self,
        nth: usize,
        filter: TrackerStatusFilter,
        lines: &mut WrittenLines,
    ) -> Result<bool, serde_json::Error> {
        let row = self.order.as_ref().map_or(nth, |order| order[nth]);
        let (cid, pin) = match self.pins.get(row) {
            Some(pin) => (pin.cid, Some(pin)),
            None => (self.only_elsewhere[row - self.pins.len()], None),
        };
        let columns = self.members.len();
        let statuses = || (0..columns).map(move |column| self.status(pin, self.items[row * columns + column], column));
        if !filter.is_any() && !statuses().any(|(_, status)| filter.matches(status.status)) {
            return Ok(false);
        }
        lines.push_with(|out| {
            let mut line = GlobalLine::begin(out, &cid, pin)?;
            for (head, status) in statuses() {
                line.status(head, status)?;
            }
            line.end();
            Ok(())
        })?;
        Ok(true)
    }

    /// The `column`th member's status of a row whose pin is `pin` (`None`: a CID this member
    /// lacks, taken as allocated everywhere), given its `item` index.
    fn status(&self, pin: Option<&Pin>, item: u32, column: usize) -> (&PeerEntryHead, PeerStatus<'_>) {
        let member = &self.members[column];
        let allocated = pin.is_none_or(|pin| pin.is_allocated_to(&member.peer));
        let made_up = |status, error| PeerStatus {
            status,
            timestamp: &self.now,
            error,
            attempt_count: 0,
            priority_pin: false,
        };
        match &member.answer {
            MemberAnswer::Statuses { items, head } if item != NO_ITEM => {
                let item = &items[item as usize];
                let status = PeerStatus {
                    status: item.status,
                    timestamp: &item.timestamp,
                    error: &item.error,
                    attempt_count: item.attempt_count,
                    priority_pin: item.priority_pin,
                };
                (head, status)
            }
            MemberAnswer::Statuses { .. } if allocated => (&member.made_up, made_up(TrackerStatus::Unpinned, "")),
            MemberAnswer::Failed(error) if allocated => (&member.made_up, made_up(TrackerStatus::ClusterError, error)),
            _ => (&member.made_up, made_up(TrackerStatus::Remote, "")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_types::{GlobalPinInfo, LineItem, PinInfo, PinInfoShort, PinOptions};

    /// The lines of every CID, read back.
    fn merge_range(pins: &[Pin], answers: Vec<(PeerId, RangeAnswer)>, now: Timestamp) -> Vec<GlobalPinInfo> {
        merge_filtered(pins, answers, now, TrackerStatusFilter::ANY)
    }

    fn merge_filtered(
        pins: &[Pin],
        answers: Vec<(PeerId, RangeAnswer)>,
        now: Timestamp,
        filter: TrackerStatusFilter,
    ) -> Vec<GlobalPinInfo> {
        let merged = MergedRange::new(pins, answers, now).unwrap();
        let mut lines = WrittenLines::default();
        for nth in 0..merged.len() {
            merged.write_line(nth, filter, &mut lines).unwrap();
        }
        LineItem::<GlobalPinInfo>::Written(lines).into_values().unwrap()
    }

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
                status,
                ..Default::default()
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

    /// A CID is listed when any member's status of it matches, made-up statuses included, and
    /// then with every member's status.
    #[test]
    fn a_filter_keeps_the_cids_where_some_member_matches() {
        use TrackerStatus::*;
        let (a, b) = (peer(1), peer(2));
        let mut pins: Vec<Pin> = (20..24).map(|n| pin(n, &[a, b])).collect();
        pins.sort_by_key(|p| p.cid.to_bytes());
        let answers = || {
            vec![
                (a, page(pins.iter().map(|p| info(p, a, Pinned)).collect())),
                (
                    b,
                    page(vec![
                        info(&pins[0], b, PinError),
                        info(&pins[1], b, Pinned),
                        info(&pins[3], b, Pinned),
                    ]),
                ),
            ]
        };
        let cids = |filter: &str| -> Vec<Cid> {
            merge_filtered(
                &pins,
                answers(),
                Timestamp::ZERO,
                TrackerStatusFilter::parse(filter).unwrap(),
            )
            .iter()
            .map(|g| g.cid)
            .collect()
        };
        assert_eq!(cids("pin_error"), vec![pins[0].cid]);
        assert_eq!(cids("unpinned"), vec![pins[2].cid], "b's made-up status counts");
        assert_eq!(cids("pinned").len(), 4);
        assert!(cids("pinning").is_empty());
        let kept = merge_filtered(
            &pins,
            answers(),
            Timestamp::ZERO,
            TrackerStatusFilter::parse("pin_error").unwrap(),
        );
        assert_eq!(
            kept[0].peer_map[&a.to_string()].status,
            Pinned,
            "every member's status is kept"
        );
    }

    #[test]
    fn an_empty_range_merges_to_nothing() {
        let merged = merge_range(&[], vec![(peer(1), page(Vec::new()))], Timestamp::ZERO);
        assert!(merged.is_empty());
    }
}
