//! Cluster-wide statuses written as JSON lines without building a [`GlobalPinInfo`] per pin.
//!
//! A listing of a million pins across three members would otherwise clone each member's
//! peername, daemon id and addresses, and a `String` key, three million times. Here a member's
//! part of the line up to its status ([`PeerEntryHead`]) is written once, copied for every pin,
//! and [`GlobalLine`] writes the rest: byte for byte what [`GlobalPinInfo`]'s
//! [`JsonLine::write_json`](crate::JsonLine::write_json) writes (tested against it). A stream hands such lines on in runs
//! ([`LineItem::Written`]).

use serde::de::DeserializeOwned;

use crate::json_line::{
    write_member_fields, write_pin_fields, write_status_fields, write_text, JsonLine, PinFields, StatusFields,
};
use crate::{Cid, PeerId, Pin, Timestamp, TrackerStatus};

/// An item of a JSON-lines stream: a value, or a run of lines a producer wrote itself.
#[derive(Debug)]
pub enum LineItem<T> {
    /// One value.
    Value(T),
    /// Lines already written, each a `T` as its [`JsonLine`] writes it.
    Written(WrittenLines),
}

impl<T: JsonLine> JsonLine for LineItem<T> {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        match self {
            LineItem::Value(value) => value.write_json(out),
            LineItem::Written(lines) => {
                // The stream ends each item with its own newline.
                let json = lines.json.strip_suffix(b"\n").unwrap_or(&lines.json);
                out.extend_from_slice(json);
                Ok(())
            }
        }
    }
}

impl<T: DeserializeOwned> LineItem<T> {
    /// The values of this item (a run's lines read back).
    pub fn into_values(self) -> Result<Vec<T>, serde_json::Error> {
        match self {
            LineItem::Value(value) => Ok(vec![value]),
            LineItem::Written(lines) => serde_json::Deserializer::from_slice(&lines.json).into_iter().collect(),
        }
    }
}

/// JSON lines, each ended by a newline.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WrittenLines {
    json: Vec<u8>,
    lines: usize,
}

impl WrittenLines {
    /// No lines yet, room for `bytes`.
    pub fn with_capacity(bytes: usize) -> WrittenLines {
        WrittenLines {
            json: Vec::with_capacity(bytes),
            lines: 0,
        }
    }

    /// How many lines.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// How many bytes.
    pub fn bytes(&self) -> usize {
        self.json.len()
    }

    /// The lines' bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.json
    }

    /// Writes one line: `write` appends its JSON, and the newline follows. On error the lines
    /// are as they were.
    pub fn push_with(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) -> Result<(), serde_json::Error> {
        let start = self.json.len();
        match write(&mut self.json) {
            Ok(()) => {
                self.json.push(b'\n');
                self.lines += 1;
                Ok(())
            }
            Err(e) => {
                self.json.truncate(start);
                Err(e)
            }
        }
    }
}

/// A member's entry in the `peer_map` of a [`GlobalPinInfo`] line, up to its status:
/// `"<peer id>":{"peername":…` and the daemon's identity if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntryHead(Vec<u8>);

impl PeerEntryHead {
    /// The head of the statuses `peer` reported: they carry its peername and its daemon's
    /// identity.
    pub fn reported(
        peer: &PeerId,
        peername: &str,
        ipfs_peer_id: &str,
        ipfs_peer_addresses: &[String],
    ) -> Result<PeerEntryHead, serde_json::Error> {
        let mut head = Vec::new();
        write_text(&mut head, &peer.text())?;
        head.extend_from_slice(b":{");
        write_member_fields(&mut head, peername, ipfs_peer_id, ipfs_peer_addresses)?;
        Ok(PeerEntryHead(head))
    }

    /// The head of a status made up for `peer` (it did not report the pin, or failed): no
    /// peername, no daemon.
    pub fn made_up(peer: &PeerId) -> Result<PeerEntryHead, serde_json::Error> {
        PeerEntryHead::reported(peer, "", "", &[])
    }
}

/// One member's status of one pin, without the member's fields ([`PeerEntryHead`] has them).
#[derive(Debug, Clone, Copy)]
pub struct PeerStatus<'a> {
    /// The status.
    pub status: TrackerStatus,
    /// When the status last changed.
    pub timestamp: &'a Timestamp,
    /// Error text of an error status.
    pub error: &'a str,
    /// How many times the operation was tried.
    pub attempt_count: u32,
    /// Whether the operation sits in the priority queue.
    pub priority_pin: bool,
}

/// One [`GlobalPinInfo`] line in pieces: [`GlobalLine::begin`], a [`GlobalLine::status`] per
/// member in the order of their peer ids' text (a `peer_map` is sorted), then
/// [`GlobalLine::end`].
pub struct GlobalLine<'a> {
    out: &'a mut Vec<u8>,
    statuses: usize,
}

impl<'a> GlobalLine<'a> {
    /// Starts the line of `cid` with the fields of its `pin` (none for a CID missing from this
    /// member's pinset).
    pub fn begin(out: &'a mut Vec<u8>, cid: &Cid, pin: Option<&Pin>) -> Result<GlobalLine<'a>, serde_json::Error> {
        let fields = match pin {
            Some(pin) => PinFields {
                cid,
                name: &pin.options.name,
                peer: None,
                allocations: &pin.allocations,
                origins: &pin.options.origins,
                created: &pin.timestamp,
                metadata: &pin.options.metadata,
            },
            None => PinFields {
                cid,
                name: "",
                peer: None,
                allocations: &[],
                origins: &[],
                created: &Timestamp::ZERO,
                metadata: &EMPTY_METADATA,
            },
        };
        write_pin_fields(out, fields)?;
        out.extend_from_slice(b",\"peer_map\":{");
        Ok(GlobalLine { out, statuses: 0 })
    }

    /// One member's status.
    pub fn status(&mut self, head: &PeerEntryHead, status: PeerStatus<'_>) -> Result<(), serde_json::Error> {
        if self.statuses > 0 {
            self.out.push(b',');
        }
        self.statuses += 1;
        self.out.extend_from_slice(&head.0);
        write_status_fields(
            self.out,
            StatusFields {
                status: status.status,
                timestamp: status.timestamp,
                error: status.error,
                attempt_count: status.attempt_count,
                priority_pin: status.priority_pin,
            },
        )?;
        self.out.push(b'}');
        Ok(())
    }

    /// Closes the line.
    pub fn end(self) {
        self.out.extend_from_slice(b"}}");
    }
}

static EMPTY_METADATA: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::strategies::{peer_strategy, pin_strategy, short_strategy};
    use crate::{GlobalPinInfo, PinInfoShort};

    /// A pin (or only its CID) and up to four members' statuses, each reported or made up.
    fn global_parts() -> impl Strategy<Value = (Pin, bool, Vec<(PeerId, PinInfoShort, bool)>)> {
        (
            pin_strategy(),
            any::<bool>(),
            proptest::collection::vec((peer_strategy(), short_strategy(), any::<bool>()), 0..4),
        )
    }

    proptest! {
        #[test]
        fn a_line_in_pieces_is_what_the_global_pin_info_writes((pin, known, members) in global_parts()) {
            let mut global = GlobalPinInfo {
                cid: pin.cid,
                name: if known { pin.options.name.clone() } else { String::new() },
                allocations: if known { pin.allocations.clone() } else { Vec::new() },
                origins: if known { pin.options.origins.clone() } else { Vec::new() },
                created: if known { pin.timestamp } else { Timestamp::ZERO },
                metadata: if known { pin.options.metadata.clone() } else { Default::default() },
                peer_map: Default::default(),
            };
            let mut heads = Vec::new();
            for (peer, short, reported) in &members {
                let mut short = short.clone();
                let head = if *reported {
                    PeerEntryHead::reported(peer, &short.peername, &short.ipfs_peer_id, &short.ipfs_peer_addresses).unwrap()
                } else {
                    short.peername.clear();
                    short.ipfs_peer_id.clear();
                    short.ipfs_peer_addresses.clear();
                    PeerEntryHead::made_up(peer).unwrap()
                };
                if global.peer_map.insert(peer.to_string(), short.clone()).is_none() {
                    heads.push((peer.to_string(), head, short));
                }
            }
            heads.sort_by(|a, b| a.0.cmp(&b.0));
            let mut expected = Vec::new();
            global.write_json(&mut expected).unwrap();

            let mut lines = WrittenLines::default();
            lines
                .push_with(|out| {
                    let mut line = GlobalLine::begin(out, &pin.cid, known.then_some(&pin))?;
                    for (_, head, short) in &heads {
                        line.status(head, PeerStatus {
                            status: short.status,
                            timestamp: &short.timestamp,
                            error: &short.error,
                            attempt_count: short.attempt_count,
                            priority_pin: short.priority_pin,
                        })?;
                    }
                    line.end();
                    Ok(())
                })
                .unwrap();
            expected.push(b'\n');
            prop_assert_eq!(String::from_utf8(lines.as_bytes().to_vec()).unwrap(), String::from_utf8(expected).unwrap());
            let back = LineItem::<GlobalPinInfo>::Written(lines).into_values().unwrap();
            prop_assert_eq!(back, vec![global]);
        }
    }

    #[test]
    fn a_run_is_written_as_its_lines_with_the_streams_newline_last() {
        let mut lines = WrittenLines::default();
        lines
            .push_with(|out| {
                out.extend_from_slice(b"{\"a\":1}");
                Ok(())
            })
            .unwrap();
        lines
            .push_with(|out| {
                out.extend_from_slice(b"{\"a\":2}");
                Ok(())
            })
            .unwrap();
        let failed = lines.push_with(|out| {
            out.extend_from_slice(b"{\"half");
            Err(serde::ser::Error::custom("cut"))
        });
        assert!(failed.is_err());
        assert_eq!(lines.lines(), 2, "a failed line is not counted");
        let mut out = Vec::new();
        LineItem::<crate::Id>::Written(lines).write_json(&mut out).unwrap();
        assert_eq!(out, b"{\"a\":1}\n{\"a\":2}", "the stream adds the last newline");
    }
}
