//! The JSON of the values the REST API streams by the million, one per NDJSON line.
//!
//! [`JsonLine::write_json`] writes what `serde_json::to_writer` writes. A [`Pin`], [`PinInfo`]
//! and [`GlobalPinInfo`] are written straight into the buffer, byte for byte the same (tested
//! against serde over random values),
//! without serde's map for the flattened options and without escaping text that cannot need
//! it: CIDs (base32 or base58), peer ids (base58), timestamps and numbers.

use std::collections::BTreeMap;

use crate::{Cid, GlobalPinInfo, PeerId, Pin, PinInfo, PinInfoShort, Timestamp};

/// A value written as one line of a JSON stream (or, for [`crate::LineItem`], several).
pub trait JsonLine {
    /// Appends this value's compact JSON to `out` (no newline). On error, `out` may hold part
    /// of the value: the caller cuts it back.
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error>;
}

impl JsonLine for crate::Id {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        serde_json::to_writer(out, self)
    }
}

impl JsonLine for crate::AddedOutput {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        serde_json::to_writer(out, self)
    }
}

impl JsonLine for GlobalPinInfo {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        write_pin_fields(
            out,
            PinFields {
                cid: &self.cid,
                name: &self.name,
                peer: None,
                allocations: &self.allocations,
                origins: &self.origins,
                created: &self.created,
                metadata: &self.metadata,
            },
        )?;
        out.extend_from_slice(b",\"peer_map\":{");
        for (i, (peer, short)) in self.peer_map.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_text(out, peer)?;
            out.push(b':');
            out.push(b'{');
            write_short_fields(out, short)?;
            out.push(b'}');
        }
        out.extend_from_slice(b"}}");
        Ok(())
    }
}

impl JsonLine for PinInfo {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        write_pin_fields(
            out,
            PinFields {
                cid: &self.cid,
                name: &self.name,
                peer: Some(&self.peer),
                allocations: &self.allocations,
                origins: &self.origins,
                created: &self.created,
                metadata: &self.metadata,
            },
        )?;
        out.push(b',');
        write_short_fields(out, &self.short)?;
        out.push(b'}');
        Ok(())
    }
}

/// The pin's own fields that [`PinInfo`] and [`GlobalPinInfo`] both begin with.
pub(crate) struct PinFields<'a> {
    pub(crate) cid: &'a Cid,
    pub(crate) name: &'a str,
    /// The reporting member: only a `PinInfo` has it.
    pub(crate) peer: Option<&'a PeerId>,
    pub(crate) allocations: &'a [PeerId],
    pub(crate) origins: &'a [String],
    pub(crate) created: &'a Timestamp,
    pub(crate) metadata: &'a BTreeMap<String, String>,
}

/// `{` and the fields of `pin`, in serde's order; the caller writes the rest and the `}`.
pub(crate) fn write_pin_fields(out: &mut Vec<u8>, pin: PinFields<'_>) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b"{\"cid\":");
    write_cid(out, pin.cid)?;
    out.extend_from_slice(b",\"name\":");
    write_text(out, pin.name)?;
    if let Some(peer) = pin.peer {
        out.extend_from_slice(b",\"peer\":");
        write_peer(out, peer);
    }
    out.extend_from_slice(b",\"allocations\":");
    write_peers(out, pin.allocations);
    out.extend_from_slice(b",\"origins\":");
    write_texts(out, pin.origins)?;
    out.extend_from_slice(b",\"created\":");
    write_timestamp(out, pin.created)?;
    out.extend_from_slice(b",\"metadata\":");
    write_metadata(out, pin.metadata)
}

/// The fields of a [`PinInfoShort`], without the braces (it is flattened into a `PinInfo`).
fn write_short_fields(out: &mut Vec<u8>, short: &PinInfoShort) -> Result<(), serde_json::Error> {
    write_member_fields(out, &short.peername, &short.ipfs_peer_id, &short.ipfs_peer_addresses)?;
    write_status_fields(
        out,
        StatusFields {
            status: short.status,
            timestamp: &short.timestamp,
            error: &short.error,
            attempt_count: short.attempt_count,
            priority_pin: short.priority_pin,
        },
    )
}

/// The reporting member's fields of a [`PinInfoShort`]: `"peername":…` and the daemon's
/// identity when known.
pub(crate) fn write_member_fields(
    out: &mut Vec<u8>,
    peername: &str,
    ipfs_peer_id: &str,
    ipfs_peer_addresses: &[String],
) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b"\"peername\":");
    write_text(out, peername)?;
    if !ipfs_peer_id.is_empty() {
        out.extend_from_slice(b",\"ipfs_peer_id\":");
        write_text(out, ipfs_peer_id)?;
    }
    if !ipfs_peer_addresses.is_empty() {
        out.extend_from_slice(b",\"ipfs_peer_addresses\":");
        write_texts(out, ipfs_peer_addresses)?;
    }
    Ok(())
}

/// The fields of a [`PinInfoShort`] that differ from pin to pin.
pub(crate) struct StatusFields<'a> {
    pub(crate) status: crate::TrackerStatus,
    pub(crate) timestamp: &'a Timestamp,
    pub(crate) error: &'a str,
    pub(crate) attempt_count: u32,
    pub(crate) priority_pin: bool,
}

/// `,"status":…` to `"priority_pin":…`, after [`write_member_fields`].
pub(crate) fn write_status_fields(out: &mut Vec<u8>, fields: StatusFields<'_>) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(fields.status.as_str().as_bytes());
    out.extend_from_slice(b"\",\"timestamp\":");
    write_timestamp(out, fields.timestamp)?;
    out.extend_from_slice(b",\"error\":");
    write_text(out, fields.error)?;
    out.extend_from_slice(b",\"attempt_count\":");
    write_integer(out, fields.attempt_count);
    out.extend_from_slice(if fields.priority_pin {
        b",\"priority_pin\":true"
    } else {
        b",\"priority_pin\":false"
    });
    Ok(())
}

impl JsonLine for Pin {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let options = &self.options;
        out.extend_from_slice(b"{\"replication_factor_min\":");
        write_integer(out, options.replication_factor_min);
        out.extend_from_slice(b",\"replication_factor_max\":");
        write_integer(out, options.replication_factor_max);
        out.extend_from_slice(b",\"name\":");
        write_text(out, &options.name)?;
        out.extend_from_slice(b",\"mode\":\"");
        out.extend_from_slice(options.mode.as_str().as_bytes());
        out.extend_from_slice(b"\",\"shard_size\":");
        write_integer(out, options.shard_size);
        out.extend_from_slice(b",\"user_allocations\":");
        match &options.user_allocations {
            Some(peers) => write_peers(out, peers),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"expire_at\":");
        write_timestamp(out, &options.expire_at)?;
        out.extend_from_slice(b",\"metadata\":");
        write_metadata(out, &options.metadata)?;
        out.extend_from_slice(b",\"pin_update\":");
        write_optional_cid(out, options.pin_update.as_deref())?;
        out.extend_from_slice(b",\"origins\":");
        write_texts(out, &options.origins)?;
        out.extend_from_slice(b",\"cid\":");
        write_cid(out, &self.cid)?;
        out.extend_from_slice(b",\"type\":\"");
        out.extend_from_slice(self.pin_type.as_str().as_bytes());
        out.extend_from_slice(b"\",\"allocations\":");
        write_peers(out, &self.allocations);
        out.extend_from_slice(b",\"max_depth\":");
        write_integer(out, self.max_depth);
        out.extend_from_slice(b",\"reference\":");
        write_optional_cid(out, self.reference.as_deref())?;
        out.extend_from_slice(b",\"timestamp\":");
        write_timestamp(out, &self.timestamp)?;
        out.push(b'}');
        Ok(())
    }
}

fn write_integer(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Free text (names, metadata, origins), escaped by serde_json.
pub(crate) fn write_text(out: &mut Vec<u8>, text: &str) -> Result<(), serde_json::Error> {
    // What serde_json escapes: quote, backslash and control characters; most text has none.
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return Ok(());
    }
    serde_json::to_writer(out, text)
}

fn write_texts(out: &mut Vec<u8>, texts: &[String]) -> Result<(), serde_json::Error> {
    out.push(b'[');
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_text(out, text)?;
    }
    out.push(b']');
    Ok(())
}

fn write_metadata(out: &mut Vec<u8>, metadata: &BTreeMap<String, String>) -> Result<(), serde_json::Error> {
    out.push(b'{');
    for (i, (key, value)) in metadata.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_text(out, key)?;
        out.push(b':');
        write_text(out, value)?;
    }
    out.push(b'}');
    Ok(())
}

fn write_cid(out: &mut Vec<u8>, cid: &Cid) -> Result<(), serde_json::Error> {
    match cid.write_v1_text(&mut [0; 160]) {
        Some(text) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
            Ok(())
        }
        None => serde_json::to_writer(out, cid),
    }
}

fn write_optional_cid(out: &mut Vec<u8>, cid: Option<&Cid>) -> Result<(), serde_json::Error> {
    match cid {
        Some(cid) => write_cid(out, cid),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

fn write_timestamp(out: &mut Vec<u8>, timestamp: &Timestamp) -> Result<(), serde_json::Error> {
    match timestamp.write_text(&mut [0; 30]) {
        Some(text) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
            Ok(())
        }
        None => serde_json::to_writer(out, timestamp),
    }
}

fn write_peer(out: &mut Vec<u8>, peer: &PeerId) {
    out.push(b'"');
    out.extend_from_slice(peer.text().as_bytes());
    out.push(b'"');
}

fn write_peers(out: &mut Vec<u8>, peers: &[PeerId]) {
    out.push(b'[');
    for (i, peer) in peers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_peer(out, peer);
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::strategies::{peer_strategy, pin_info_strategy, pin_strategy, short_strategy};
    use crate::{PinOptions, PinType};

    fn written(value: &impl JsonLine) -> String {
        let mut out = Vec::new();
        value.write_json(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_pin_is_written_as_serde_writes_it_in_every_corner() {
        let cid: Cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
            .parse()
            .unwrap();
        let v0: Cid = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9".parse().unwrap();
        let peer = PeerId::from_ed25519_seed([7; 32]);
        let plain = Pin::new(cid, PinOptions::default());
        let mut full = Pin::new(
            v0,
            PinOptions {
                replication_factor_min: -1,
                replication_factor_max: i32::MAX,
                name: "a \"quoted\"\n\u{1} name \u{e9}".into(),
                mode: crate::PinMode::Direct,
                shard_size: u64::MAX,
                user_allocations: Some(vec![peer, peer]),
                expire_at: Timestamp::from_unix(-62_135_596_801, 5),
                metadata: BTreeMap::from([("k\\".into(), "v\t".into()), ("".into(), "".into())]),
                pin_update: Some(Box::new(cid)),
                origins: vec!["/ip4/127.0.0.1/tcp/4001".into(), "</script>".into()],
            },
        );
        full.allocations = vec![peer];
        full.reference = Some(Box::new(v0));
        full.timestamp = Timestamp::from_unix(253_402_300_800, 999_999_999);
        for pin_type in [
            PinType::Bad,
            PinType::Data,
            PinType::Meta,
            PinType::ClusterDag,
            PinType::Shard,
        ] {
            for pin in [&plain, &full] {
                let mut pin = pin.clone();
                pin.pin_type = pin_type;
                assert_eq!(written(&pin), serde_json::to_string(&pin).unwrap());
            }
        }
    }

    /// With or without the pin's own fields (name, allocations, origins, metadata).
    fn any_pin_info() -> impl Strategy<Value = PinInfo> {
        prop_oneof![
            pin_info_strategy(),
            (pin_strategy(), peer_strategy(), short_strategy()).prop_map(|(pin, peer, short)| PinInfo::new(
                pin.cid,
                peer,
                Some(&pin),
                short
            )),
        ]
    }

    proptest! {
        #[test]
        fn any_pin_is_written_as_serde_writes_it(pin in pin_strategy()) {
            prop_assert_eq!(written(&pin), serde_json::to_string(&pin).unwrap());
        }

        #[test]
        fn any_pin_info_is_written_as_serde_writes_it(info in any_pin_info()) {
            prop_assert_eq!(written(&info), serde_json::to_string(&info).unwrap());
        }

        #[test]
        fn any_global_pin_info_is_written_as_serde_writes_it(infos in proptest::collection::vec(any_pin_info(), 0..4)) {
            let mut global = match infos.first() {
                Some(first) => first.clone().into_global(),
                None => return Ok(()),
            };
            for info in &infos[1..] {
                global.peer_map.insert(info.peer.to_string(), info.short.clone());
            }
            prop_assert_eq!(written(&global), serde_json::to_string(&global).unwrap());
        }
    }
}
