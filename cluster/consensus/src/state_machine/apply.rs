//! What a run of committed entries does to the pinset: the store operations to commit, each
//! entry's response, the applied meta after it, and the changes the tracker is told about.
//! Pure: the pins the run names are read before it ([`named_cids`]) and handed in, so the
//! translation neither reads nor writes the store and can run again after a failed commit.

use std::collections::HashMap;

use cluster_state::StateOp;
use cluster_types::{Cid, Pin};
use openraft::{EntryPayload, StoredMembership};

use super::{AppliedChange, AppliedMeta};
use crate::{Command, CommandResponse, TypeConfig};

/// What applying a run of entries changes, written in one commit at the end of the run.
pub(super) struct Pending {
    /// Each CID the run's commands name: its pin as stored (read together before the run),
    /// or as a command of this run left it, which later commands must see as "previous".
    pins: HashMap<Cid, Current>,
    pub(super) ops: Vec<StateOp>,
    pub(super) changes: Vec<AppliedChange>,
}

/// A CID's pin as the commands applied so far leave it. A command that changes a pin takes the
/// stored one (to report it as previous) rather than copy it, and points to its own op: a pin
/// is copied only where it must be kept twice.
// Boxing the stored pin would add an allocation for each pin a run reads.
#[allow(clippy::large_enum_variant)]
enum Current {
    /// As stored.
    Stored(Option<Pin>),
    /// Added by the op at this index of [`Pending::ops`].
    Added(usize),
    /// Removed by this run.
    Removed,
}

/// Every CID the commands of `entries` name, sorted, once each: what [`apply_run`] needs read.
pub(super) fn named_cids(entries: &[openraft::Entry<TypeConfig>]) -> Vec<Cid> {
    fn named(command: &Command, cids: &mut Vec<Cid>) {
        match command {
            Command::Pin(pin) | Command::Reallocate { pin, .. } => cids.push(pin.cid),
            Command::Unpin(cid) => cids.push(*cid),
            Command::Expire { previous } => cids.push(previous.cid),
            Command::Batch(commands) => commands.iter().for_each(|command| named(command, cids)),
        }
    }
    let mut cids = Vec::new();
    for entry in entries {
        if let EntryPayload::Normal(command) = &entry.payload {
            named(command, &mut cids);
        }
    }
    cids.sort_unstable();
    cids.dedup();
    cids
}

/// Applies `entries` after `meta` given `stored`, the store's pins for [`named_cids`] of them.
/// Returns each entry's response and what to commit; `meta` is left naming the last entry and
/// the membership in force after the run.
///
/// Panics if an entry's index does not follow the last applied one: openraft never does that,
/// and applying it would break the state.
pub(super) fn apply_run(
    entries: &[openraft::Entry<TypeConfig>],
    meta: &mut AppliedMeta,
    stored: impl ExactSizeIterator<Item = (Cid, Option<Pin>)>,
) -> (Vec<CommandResponse>, Pending) {
    let named = stored.len();
    let mut pending = Pending {
        ops: Vec::with_capacity(named),
        changes: Vec::with_capacity(named),
        pins: HashMap::with_capacity(named),
    };
    pending
        .pins
        .extend(stored.map(|(cid, pin)| (cid, Current::Stored(pin))));
    let mut responses = Vec::with_capacity(entries.len());
    for entry in entries {
        if let Some(last) = &meta.last_applied {
            assert!(
                entry.log_id.index > last.index,
                "applied index must grow: {} after {}",
                entry.log_id,
                last
            );
        }
        meta.last_applied = Some(entry.log_id);
        let response = match &entry.payload {
            EntryPayload::Blank => CommandResponse::Nothing,
            EntryPayload::Membership(membership) => {
                meta.membership = StoredMembership::new(Some(entry.log_id), membership.clone());
                CommandResponse::Nothing
            }
            EntryPayload::Normal(command) => pending.apply_command(command.clone()),
        };
        responses.push(response);
    }
    (responses, pending)
}

impl Pending {
    fn slot(&self, cid: &Cid) -> &Current {
        match self.pins.get(cid) {
            Some(current) => current,
            // `named_cids` names every CID a command touches; missing one is a bug here, and
            // taking it as absent would diverge from members that read it.
            None => panic!("pin {cid} was not read before the run that applies it"),
        }
    }

    /// The pin `cid` as the commands applied so far leave it.
    fn current(&self, cid: &Cid) -> Option<&Pin> {
        match self.slot(cid) {
            Current::Stored(pin) => pin.as_ref(),
            Current::Added(op) => match &self.ops[*op] {
                StateOp::Add(pin) => Some(pin),
                other => unreachable!("a pin's current op is {other:?}"),
            },
            Current::Removed => None,
        }
    }

    /// [`Pending::current`] for a command that changes it: the stored pin is moved out.
    fn take_current(&mut self, cid: &Cid) -> Option<Pin> {
        match self.pins.get_mut(cid) {
            Some(Current::Stored(pin)) => pin.take(),
            _ => self.current(cid).cloned(),
        }
    }

    fn apply_command(&mut self, command: Command) -> CommandResponse {
        match command {
            Command::Pin(pin) => {
                let previous = self.take_current(&pin.cid);
                self.apply_pin(pin, previous)
            }
            Command::Reallocate {
                pin,
                previous: expected,
            } => {
                if self.current(&pin.cid) == Some(&expected) {
                    let previous = self.take_current(&pin.cid);
                    self.apply_pin(pin, previous)
                } else {
                    CommandResponse::Unchanged
                }
            }
            Command::Unpin(cid) => {
                let previous = self.take_current(&cid);
                self.apply_unpin(cid, previous)
            }
            Command::Expire { previous: expected } => {
                if self.current(&expected.cid) == Some(&expected) {
                    let previous = self.take_current(&expected.cid);
                    self.apply_unpin(expected.cid, previous)
                } else {
                    CommandResponse::Unchanged
                }
            }
            Command::Batch(commands) => CommandResponse::Batch(
                commands
                    .into_iter()
                    .map(|command| self.apply_command(command))
                    .collect(),
            ),
        }
    }

    /// Adds or replaces a pin.
    fn apply_pin(&mut self, pin: Pin, previous: Option<Pin>) -> CommandResponse {
        check_allocations(&pin);
        self.pins.insert(pin.cid, Current::Added(self.ops.len()));
        self.ops.push(StateOp::Add(pin.clone()));
        if let Some(previous) = &previous {
            // Allocations moved: a member that held it must unpin even if it crashes before
            // doing so (its tracker re-queues tombstones at every state sync).
            if previous.allocations != pin.allocations || previous.is_everywhere() != pin.is_everywhere() {
                self.ops.push(StateOp::Tombstone(pin.cid));
            }
        }
        self.changes.push(AppliedChange::Pinned {
            pin: pin.clone(),
            previous,
        });
        CommandResponse::Pinned(pin)
    }

    /// Removes a pin, if present.
    fn apply_unpin(&mut self, cid: Cid, previous: Option<Pin>) -> CommandResponse {
        self.pins.insert(cid, Current::Removed);
        if let Some(pin) = &previous {
            self.ops.push(StateOp::Rm(cid));
            // Durable with the removal: the daemon unpin happens later and may be lost to a
            // crash; the tombstone makes the tracker finish it.
            self.ops.push(StateOp::Tombstone(cid));
            self.changes.push(AppliedChange::Unpinned { pin: pin.clone() });
        }
        CommandResponse::Unpinned(previous)
    }
}

/// A committed pin's allocations never repeat a member nor exceed its maximum (allocation
/// checks both before proposing). Checked again here, where every member applies it: a debug
/// build (the simulator, the tests) stops at once; a release build logs it and applies the
/// entry, as every other member does, rather than stop the state machine on a log it cannot skip.
fn check_allocations(pin: &Pin) {
    let max = pin.options.replication_factor_max;
    let over = max > 0 && pin.allocations.len() > max as usize;
    let repeated = pin
        .allocations
        .iter()
        .enumerate()
        .any(|(i, peer)| pin.allocations[..i].contains(peer));
    if over || repeated {
        tracing::error!(
            cid = %pin.cid,
            "committed pin has allocations {:?} for a maximum of {max}",
            pin.allocations
        );
        if cfg!(debug_assertions) {
            panic!(
                "committed pin {} has allocations {:?} for a maximum of {max}",
                pin.cid, pin.allocations
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cluster_types::{PeerId, PinOptions};
    use openraft::{CommittedLeaderId, Entry, LogId, Membership};

    use super::*;
    use crate::MemberNode;

    fn pin(n: u8, member: u8) -> Pin {
        let mut pin = Pin::new(Cid::raw_sha256(&[n]), PinOptions::default());
        pin.allocations = vec![PeerId::from_ed25519_seed([member; 32])];
        pin
    }

    fn entries(payloads: Vec<EntryPayload<TypeConfig>>) -> Vec<Entry<TypeConfig>> {
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 0), 10 + i as u64),
                payload,
            })
            .collect()
    }

    fn command(command: Command) -> EntryPayload<TypeConfig> {
        EntryPayload::Normal(command)
    }

    /// Runs `payloads` over a store holding `stored`, as the state machine does.
    fn run(stored: &[Pin], payloads: Vec<EntryPayload<TypeConfig>>) -> (Vec<CommandResponse>, Pending, AppliedMeta) {
        let entries = entries(payloads);
        let read: Vec<_> = named_cids(&entries)
            .into_iter()
            .map(|cid| (cid, stored.iter().find(|pin| pin.cid == cid).cloned()))
            .collect();
        let mut meta = AppliedMeta::default();
        let (responses, pending) = apply_run(&entries, &mut meta, read.into_iter());
        (responses, pending, meta)
    }

    #[test]
    fn each_command_answers_and_changes_the_store_as_it_should() {
        let (a, a_moved, b) = (pin(1, 1), pin(1, 2), pin(2, 1));
        type Case = (&'static str, Vec<Pin>, Command, CommandResponse, Vec<StateOp>);
        let cases: Vec<Case> = vec![
            (
                "a new pin is added",
                vec![],
                Command::Pin(a.clone()),
                CommandResponse::Pinned(a.clone()),
                vec![StateOp::Add(a.clone())],
            ),
            (
                "a pin again, same allocations: no tombstone",
                vec![a.clone()],
                Command::Pin(a.clone()),
                CommandResponse::Pinned(a.clone()),
                vec![StateOp::Add(a.clone())],
            ),
            (
                "moved allocations leave a tombstone for the member that held it",
                vec![a.clone()],
                Command::Pin(a_moved.clone()),
                CommandResponse::Pinned(a_moved.clone()),
                vec![StateOp::Add(a_moved.clone()), StateOp::Tombstone(a.cid)],
            ),
            (
                "an unpin removes and leaves a tombstone",
                vec![a.clone()],
                Command::Unpin(a.cid),
                CommandResponse::Unpinned(Some(a.clone())),
                vec![StateOp::Rm(a.cid), StateOp::Tombstone(a.cid)],
            ),
            (
                "an unpin of nothing changes nothing",
                vec![],
                Command::Unpin(a.cid),
                CommandResponse::Unpinned(None),
                vec![],
            ),
            (
                "a reallocation of what is stored applies",
                vec![a.clone()],
                Command::Reallocate {
                    pin: a_moved.clone(),
                    previous: Box::new(a.clone()),
                },
                CommandResponse::Pinned(a_moved.clone()),
                vec![StateOp::Add(a_moved.clone()), StateOp::Tombstone(a.cid)],
            ),
            (
                "a reallocation of a pin that changed since does nothing",
                vec![a_moved.clone()],
                Command::Reallocate {
                    pin: a_moved.clone(),
                    previous: Box::new(a.clone()),
                },
                CommandResponse::Unchanged,
                vec![],
            ),
            (
                "an expiry of what is stored removes it",
                vec![a.clone()],
                Command::Expire { previous: a.clone() },
                CommandResponse::Unpinned(Some(a.clone())),
                vec![StateOp::Rm(a.cid), StateOp::Tombstone(a.cid)],
            ),
            (
                "an expiry of a pin that was replaced does nothing",
                vec![a_moved.clone()],
                Command::Expire { previous: a.clone() },
                CommandResponse::Unchanged,
                vec![],
            ),
            (
                "a batch answers each command in order",
                vec![b.clone()],
                Command::Batch(vec![Command::Pin(a.clone()), Command::Unpin(b.cid)]),
                CommandResponse::Batch(vec![
                    CommandResponse::Pinned(a.clone()),
                    CommandResponse::Unpinned(Some(b.clone())),
                ]),
                vec![StateOp::Add(a.clone()), StateOp::Rm(b.cid), StateOp::Tombstone(b.cid)],
            ),
        ];
        for (case, stored, cmd, response, ops) in cases {
            let (responses, pending, _) = run(&stored, vec![command(cmd)]);
            assert_eq!(responses, vec![response], "{case}: response");
            assert_eq!(pending.ops, ops, "{case}: store operations");
        }
    }

    #[test]
    fn later_commands_of_a_run_see_what_earlier_ones_did() {
        let (a, a_moved) = (pin(1, 1), pin(1, 2));
        let (responses, pending, _) = run(
            &[],
            vec![
                command(Command::Pin(a.clone())),
                command(Command::Reallocate {
                    pin: a_moved.clone(),
                    previous: Box::new(a.clone()),
                }),
                command(Command::Unpin(a.cid)),
                command(Command::Expire { previous: a.clone() }),
            ],
        );
        assert_eq!(
            responses,
            vec![
                CommandResponse::Pinned(a.clone()),
                CommandResponse::Pinned(a_moved.clone()),
                CommandResponse::Unpinned(Some(a_moved.clone())),
                CommandResponse::Unchanged,
            ]
        );
        assert_eq!(
            pending.changes,
            vec![
                AppliedChange::Pinned {
                    pin: a.clone(),
                    previous: None
                },
                AppliedChange::Pinned {
                    pin: a_moved.clone(),
                    previous: Some(a.clone())
                },
                AppliedChange::Unpinned { pin: a_moved.clone() },
            ]
        );

        // A stored pin changed twice: the second command sees the first one's pin.
        let (responses, pending, _) = run(
            std::slice::from_ref(&a),
            vec![command(Command::Pin(a_moved.clone())), command(Command::Unpin(a.cid))],
        );
        assert_eq!(
            responses,
            vec![
                CommandResponse::Pinned(a_moved.clone()),
                CommandResponse::Unpinned(Some(a_moved.clone())),
            ]
        );
        assert_eq!(
            pending.changes,
            vec![
                AppliedChange::Pinned {
                    pin: a_moved.clone(),
                    previous: Some(a.clone())
                },
                AppliedChange::Unpinned { pin: a_moved.clone() },
            ]
        );
        assert_eq!(
            pending.ops,
            vec![
                StateOp::Add(a_moved),
                StateOp::Tombstone(a.cid),
                StateOp::Rm(a.cid),
                StateOp::Tombstone(a.cid)
            ]
        );
    }

    #[test]
    fn the_meta_names_the_last_entry_and_the_membership_in_force() {
        let node = MemberNode::default();
        let membership = Membership::new(vec![[1u64].into()], BTreeMap::from([(1u64, node)]));
        let (responses, pending, meta) = run(
            &[],
            vec![
                EntryPayload::Blank,
                EntryPayload::Membership(membership.clone()),
                command(Command::Pin(pin(1, 1))),
            ],
        );
        assert_eq!(responses.len(), 3);
        assert_eq!(responses[..2], [CommandResponse::Nothing, CommandResponse::Nothing]);
        assert_eq!(meta.last_applied.map(|id| id.index), Some(12));
        assert_eq!(meta.membership.log_id().map(|id| id.index), Some(11));
        assert_eq!(meta.membership.membership(), &membership);
        assert_eq!(pending.ops.len(), 1);
    }

    #[test]
    #[should_panic(expected = "applied index must grow")]
    fn an_entry_at_or_before_the_applied_index_stops_the_run() {
        let entries = entries(vec![EntryPayload::Blank]);
        let mut meta = AppliedMeta {
            last_applied: Some(entries[0].log_id),
            ..AppliedMeta::default()
        };
        apply_run(&entries, &mut meta, std::iter::empty());
    }
}
