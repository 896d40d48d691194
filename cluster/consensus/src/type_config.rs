//! The openraft type configuration: what a log entry carries and how members are named.

use cluster_types::{pin_codec, Cid, MemberNode, PeerId, Pin};
use serde::{Deserialize, Serialize};

/// Raft node id: a 64-bit digest of the member's peer id (see [`node_id_of`]).
pub type NodeId = u64;

/// A change to the shared pinset, one per Raft log entry. Pins in it are written in their
/// binary form ([`pin_codec::wire`]), a fraction of their JSON in the log and in messages; log
/// entries of earlier versions, with JSON pins, are still read.
// Pins dominate the log; boxing them would add an allocation per entry for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Add or replace a pin (allocations already decided).
    Pin(#[serde(with = "pin_codec::wire")] Pin),
    /// Remove a pin.
    Unpin(Cid),
    /// Replace `previous` by `pin` only if the pinset still holds exactly `previous`: the
    /// leader's re-allocations (peers rm, repair) read a pin, then write it back; a blind write
    /// would resurrect a pin unpinned in between, or undo a re-pin's new options.
    Reallocate {
        /// The pin with its new allocations.
        #[serde(with = "pin_codec::wire")]
        pin: Pin,
        /// The pin as read before re-allocating.
        #[serde(with = "pin_codec::wire::boxed")]
        previous: Box<Pin>,
    },
    /// Remove `previous` only if the pinset still holds exactly it: an expired pin that was
    /// pinned again meanwhile (with a new `expire_at`) stays.
    Expire {
        /// The pin as read when it was found expired.
        #[serde(with = "pin_codec::wire")]
        previous: Pin,
    },
    /// Several commands in one log entry (one fsync), applied in order as if one entry each:
    /// the leader's repairs and expiries go through Raft in batches.
    Batch(Vec<Command>),
}

/// A command's result and the log index it was committed at (so a member that forwarded the
/// write can wait until it has applied it too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// What applying the command returned.
    pub response: CommandResponse,
    /// The log index of the entry.
    pub log_index: u64,
}

/// The result of applying a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CommandResponse {
    /// Membership or blank entries.
    #[default]
    Nothing,
    /// The pin as committed.
    Pinned(#[serde(with = "pin_codec::wire")] Pin),
    /// The removed pin, `None` if the CID was not in the pinset.
    Unpinned(#[serde(with = "pin_codec::wire::option")] Option<Pin>),
    /// A [`Command::Reallocate`] or [`Command::Expire`] that found the pin changed or gone and
    /// did nothing.
    Unchanged,
    /// The response of each command of a [`Command::Batch`], in order.
    Batch(Vec<CommandResponse>),
}

openraft::declare_raft_types!(
    /// openraft's type configuration for the cluster pinset.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = MemberNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = crate::SnapshotFile,
        AsyncRuntime = cluster_rt::OpenraftRuntime,
);

/// The Raft node id of a member: FNV-1a 64 of its peer id bytes. Collisions among the few dozen
/// members of a cluster are vanishingly unlikely; joining checks for them anyway.
pub fn node_id_of(peer: &PeerId) -> NodeId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in peer.to_bytes() {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_types::PinOptions;

    fn pin(n: u8) -> Pin {
        let mut pin = Pin::new(
            Cid::raw_sha256(&[n]),
            PinOptions {
                name: format!("pin {n}"),
                ..Default::default()
            },
        );
        pin.allocations = vec![PeerId::from_ed25519_seed([n; 32])];
        pin
    }

    #[test]
    fn log_entries_and_answers_with_json_pins_from_earlier_versions_are_still_read() {
        let entry = openraft::Entry::<TypeConfig> {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(3, 1), 7),
            payload: openraft::EntryPayload::Normal(Command::Batch(vec![
                Command::Pin(pin(1)),
                Command::Reallocate {
                    pin: pin(2),
                    previous: Box::new(pin(3)),
                },
                Command::Expire { previous: pin(4) },
            ])),
        };
        let mut value = serde_json::to_value(&entry).unwrap();
        let batch = &mut value["payload"]["Normal"]["Batch"];
        assert!(batch[0]["Pin"].is_string(), "written in the binary form: {batch}");
        // Rewrite every pin as earlier versions wrote it: a JSON object.
        batch[0]["Pin"] = serde_json::to_value(pin(1)).unwrap();
        batch[1]["Reallocate"]["pin"] = serde_json::to_value(pin(2)).unwrap();
        batch[1]["Reallocate"]["previous"] = serde_json::to_value(pin(3)).unwrap();
        batch[2]["Expire"]["previous"] = serde_json::to_value(pin(4)).unwrap();
        let read: openraft::Entry<TypeConfig> = serde_json::from_value(value).unwrap();
        assert_eq!(read.log_id, entry.log_id);
        assert_eq!(format!("{:?}", read.payload), format!("{:?}", entry.payload));

        let answers = CommandResponse::Batch(vec![
            CommandResponse::Pinned(pin(5)),
            CommandResponse::Unpinned(Some(pin(6))),
            CommandResponse::Unpinned(None),
        ]);
        let old = format!(
            r#"{{"Batch":[{{"Pinned":{}}},{{"Unpinned":{}}},{{"Unpinned":null}}]}}"#,
            serde_json::to_string(&pin(5)).unwrap(),
            serde_json::to_string(&pin(6)).unwrap()
        );
        assert_eq!(serde_json::from_str::<CommandResponse>(&old).unwrap(), answers);
        let new = serde_json::to_string(&answers).unwrap();
        assert!(new.len() < old.len(), "{new}");
        assert_eq!(serde_json::from_str::<CommandResponse>(&new).unwrap(), answers);
    }
}
