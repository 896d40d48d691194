//! The compact binary form of a [`Pin`], for the pinset store: a format byte, a mask saying
//! which fields differ from their defaults, then those fields in a fixed order (varints, length-
//! prefixed bytes). A typical pin with two allocations takes about 100 bytes against 400 to 500
//! as JSON, and decodes without parsing text. JSON stays the form at the API edges; stored JSON
//! (its first byte is `{`, never [`FORMAT_V1`]) is still read by the store.
//!
//! Decoding is bounded by its input: every length and count is checked against the bytes left
//! before anything is allocated, and trailing bytes or unknown mask bits are refused.

use std::collections::BTreeMap;

use crate::{Cid, PeerId, Pin, PinMode, PinOptions, PinType, Timestamp};

/// The first byte of a pin in this format.
pub const FORMAT_V1: u8 = 0x01;

/// Why bytes are not a pin in this format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("binary pin: {0}")]
pub struct PinCodecError(pub String);

const HAS_CID: u32 = 1 << 0;
const PIN_TYPE: u32 = 1 << 1;
const MAX_DEPTH: u32 = 1 << 2;
const REPLICATION_MIN: u32 = 1 << 3;
const REPLICATION_MAX: u32 = 1 << 4;
const NAME: u32 = 1 << 5;
const MODE_DIRECT: u32 = 1 << 6;
const SHARD_SIZE: u32 = 1 << 7;
const USER_ALLOCATIONS: u32 = 1 << 8;
const EXPIRE_AT: u32 = 1 << 9;
const METADATA: u32 = 1 << 10;
const PIN_UPDATE: u32 = 1 << 11;
const ORIGINS: u32 = 1 << 12;
const ALLOCATIONS: u32 = 1 << 13;
const REFERENCE: u32 = 1 << 14;
const TIMESTAMP: u32 = 1 << 15;
const KNOWN: u32 = (1 << 16) - 1;

/// Encodes `pin`; without its CID when `with_cid` is false (the store keys pins by CID).
pub fn encode_pin(pin: &Pin, with_cid: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 40 * pin.allocations.len() + pin.options.name.len());
    encode_pin_into(pin, with_cid, true, &mut out);
    out
}

/// Appends the encoding of `pin` to `out`, without its CID unless `with_cid`, and without its
/// allocations unless `with_allocations` (the store keeps those apart: it decodes such a pin
/// with none and sets them).
pub fn encode_pin_into(pin: &Pin, with_cid: bool, with_allocations: bool, out: &mut Vec<u8>) {
    let o = &pin.options;
    let mut mask = 0;
    let mut set = |bit: u32, present: bool| {
        if present {
            mask |= bit;
        }
    };
    set(HAS_CID, with_cid);
    set(PIN_TYPE, pin.pin_type != PinType::Data);
    set(MAX_DEPTH, pin.max_depth != -1);
    set(REPLICATION_MIN, o.replication_factor_min != 0);
    set(REPLICATION_MAX, o.replication_factor_max != 0);
    set(NAME, !o.name.is_empty());
    set(MODE_DIRECT, o.mode == PinMode::Direct);
    set(SHARD_SIZE, o.shard_size != 0);
    set(USER_ALLOCATIONS, o.user_allocations.is_some());
    set(EXPIRE_AT, !o.expire_at.is_zero());
    set(METADATA, !o.metadata.is_empty());
    set(PIN_UPDATE, o.pin_update.is_some());
    set(ORIGINS, !o.origins.is_empty());
    set(ALLOCATIONS, with_allocations && !pin.allocations.is_empty());
    set(REFERENCE, pin.reference.is_some());
    set(TIMESTAMP, !pin.timestamp.is_zero());

    let out = &mut *out;
    out.push(FORMAT_V1);
    put_varint(out, mask as u64);
    if with_cid {
        put_bytes(out, &pin.cid.to_bytes());
    }
    if mask & PIN_TYPE != 0 {
        out.push(pin_type_code(pin.pin_type));
    }
    if mask & MAX_DEPTH != 0 {
        put_signed(out, pin.max_depth.into());
    }
    if mask & REPLICATION_MIN != 0 {
        put_signed(out, o.replication_factor_min.into());
    }
    if mask & REPLICATION_MAX != 0 {
        put_signed(out, o.replication_factor_max.into());
    }
    if mask & NAME != 0 {
        put_bytes(out, o.name.as_bytes());
    }
    if mask & SHARD_SIZE != 0 {
        put_varint(out, o.shard_size);
    }
    if let Some(peers) = &o.user_allocations {
        put_peers(out, peers);
    }
    if mask & EXPIRE_AT != 0 {
        put_timestamp(out, o.expire_at);
    }
    if mask & METADATA != 0 {
        put_varint(out, o.metadata.len() as u64);
        for (key, value) in &o.metadata {
            put_bytes(out, key.as_bytes());
            put_bytes(out, value.as_bytes());
        }
    }
    if let Some(cid) = &o.pin_update {
        put_bytes(out, &cid.to_bytes());
    }
    if mask & ORIGINS != 0 {
        put_varint(out, o.origins.len() as u64);
        for origin in &o.origins {
            put_bytes(out, origin.as_bytes());
        }
    }
    if mask & ALLOCATIONS != 0 {
        put_peers(out, &pin.allocations);
    }
    if let Some(cid) = &pin.reference {
        put_bytes(out, &cid.to_bytes());
    }
    if mask & TIMESTAMP != 0 {
        put_timestamp(out, pin.timestamp);
    }
}

/// Decodes a pin encoded by [`encode_pin`]. `cid` is the pin's CID when it was encoded without
/// it; a CID in the bytes must equal it when both are given.
pub fn decode_pin(bytes: &[u8], cid: Option<Cid>) -> Result<Pin, PinCodecError> {
    let mut r = Reader { rest: bytes };
    let format = r.byte("format")?;
    if format != FORMAT_V1 {
        return Err(PinCodecError(format!("unknown format byte {format:#04x}")));
    }
    let mask = r.varint("field mask")?;
    if mask & !(KNOWN as u64) != 0 {
        return Err(PinCodecError(format!("unknown fields in mask {mask:#x}")));
    }
    let mask = mask as u32;
    let has = |bit: u32| mask & bit != 0;
    let cid = match (has(HAS_CID), cid) {
        (true, given) => {
            let stored = r.cid("cid")?;
            if given.is_some_and(|given| given != stored) {
                return Err(PinCodecError(format!("holds CID {stored}, stored as another")));
            }
            stored
        }
        (false, Some(given)) => given,
        (false, None) => return Err(PinCodecError("no CID".into())),
    };
    let pin_type = if has(PIN_TYPE) {
        pin_type_of(r.byte("type")?)?
    } else {
        PinType::Data
    };
    let max_depth = if has(MAX_DEPTH) { r.signed_i32("max_depth")? } else { -1 };
    let replication_factor_min = if has(REPLICATION_MIN) {
        r.signed_i32("replication_factor_min")?
    } else {
        0
    };
    let replication_factor_max = if has(REPLICATION_MAX) {
        r.signed_i32("replication_factor_max")?
    } else {
        0
    };
    let name = if has(NAME) { r.string("name")? } else { String::new() };
    let mode = if has(MODE_DIRECT) {
        PinMode::Direct
    } else {
        PinMode::Recursive
    };
    let shard_size = if has(SHARD_SIZE) { r.varint("shard_size")? } else { 0 };
    let user_allocations = if has(USER_ALLOCATIONS) {
        Some(r.peers("user_allocations")?)
    } else {
        None
    };
    let expire_at = if has(EXPIRE_AT) {
        r.timestamp("expire_at")?
    } else {
        Timestamp::ZERO
    };
    let mut metadata = BTreeMap::new();
    if has(METADATA) {
        let count = r.count("metadata", 2)?;
        for _ in 0..count {
            let key = r.string("metadata key")?;
            let value = r.string("metadata value")?;
            metadata.insert(key, value);
        }
    }
    let pin_update = if has(PIN_UPDATE) {
        Some(Box::new(r.cid("pin_update")?))
    } else {
        None
    };
    let mut origins = Vec::new();
    if has(ORIGINS) {
        let count = r.count("origins", 1)?;
        for _ in 0..count {
            origins.push(r.string("origin")?);
        }
    }
    let allocations = if has(ALLOCATIONS) {
        r.peers("allocations")?
    } else {
        Vec::new()
    };
    let reference = if has(REFERENCE) {
        Some(Box::new(r.cid("reference")?))
    } else {
        None
    };
    let timestamp = if has(TIMESTAMP) {
        r.timestamp("timestamp")?
    } else {
        Timestamp::ZERO
    };
    if !r.rest.is_empty() {
        return Err(PinCodecError(format!("{} bytes after the pin", r.rest.len())));
    }
    Ok(Pin {
        options: PinOptions {
            replication_factor_min,
            replication_factor_max,
            name,
            mode,
            shard_size,
            user_allocations,
            expire_at,
            metadata,
            pin_update,
            origins,
        },
        cid,
        pin_type,
        allocations,
        max_depth,
        reference,
        timestamp,
    })
}

fn pin_type_code(pin_type: PinType) -> u8 {
    match pin_type {
        PinType::Bad => 0,
        PinType::Data => 1,
        PinType::Meta => 2,
        PinType::ClusterDag => 3,
        PinType::Shard => 4,
    }
}

fn pin_type_of(code: u8) -> Result<PinType, PinCodecError> {
    Ok(match code {
        0 => PinType::Bad,
        1 => PinType::Data,
        2 => PinType::Meta,
        3 => PinType::ClusterDag,
        4 => PinType::Shard,
        other => return Err(PinCodecError(format!("unknown pin type {other}"))),
    })
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn put_signed(out: &mut Vec<u8>, value: i64) {
    put_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_peers(out: &mut Vec<u8>, peers: &[PeerId]) {
    put_varint(out, peers.len() as u64);
    for peer in peers {
        put_bytes(out, &peer.to_bytes());
    }
}

pub(crate) fn put_timestamp(out: &mut Vec<u8>, t: Timestamp) {
    put_signed(out, t.unix_seconds());
    put_varint(out, t.subsec_nanos().into());
}

pub(crate) struct Reader<'a> {
    pub(crate) rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn short(what: &str) -> PinCodecError {
        PinCodecError(format!("ends inside {what}"))
    }

    pub(crate) fn byte(&mut self, what: &str) -> Result<u8, PinCodecError> {
        let (&first, rest) = self.rest.split_first().ok_or_else(|| Self::short(what))?;
        self.rest = rest;
        Ok(first)
    }

    pub(crate) fn varint(&mut self, what: &str) -> Result<u64, PinCodecError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte(what)?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(PinCodecError(format!("{what}: varint overflows 64 bits")));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(PinCodecError(format!("{what}: varint longer than 10 bytes")))
    }

    fn signed(&mut self, what: &str) -> Result<i64, PinCodecError> {
        let raw = self.varint(what)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn signed_i32(&mut self, what: &str) -> Result<i32, PinCodecError> {
        let value = self.signed(what)?;
        i32::try_from(value).map_err(|_| PinCodecError(format!("{what} out of range: {value}")))
    }

    pub(crate) fn bytes(&mut self, what: &str) -> Result<&'a [u8], PinCodecError> {
        let len = self.varint(what)?;
        if len > self.rest.len() as u64 {
            return Err(Self::short(what));
        }
        let (bytes, rest) = self.rest.split_at(len as usize);
        self.rest = rest;
        Ok(bytes)
    }

    /// A count of items of at least `min_bytes` each, no more than the bytes left can hold.
    fn count(&mut self, what: &str, min_bytes: usize) -> Result<usize, PinCodecError> {
        let count = self.varint(what)?;
        if count > (self.rest.len() / min_bytes) as u64 {
            return Err(PinCodecError(format!(
                "{what}: {count} items in {} bytes",
                self.rest.len()
            )));
        }
        Ok(count as usize)
    }

    pub(crate) fn string(&mut self, what: &str) -> Result<String, PinCodecError> {
        let bytes = self.bytes(what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| PinCodecError(format!("{what} is not UTF-8")))
    }

    pub(crate) fn cid(&mut self, what: &str) -> Result<Cid, PinCodecError> {
        let bytes = self.bytes(what)?;
        Cid::from_bytes(bytes).map_err(|e| PinCodecError(format!("{what}: {e}")))
    }

    fn peers(&mut self, what: &str) -> Result<Vec<PeerId>, PinCodecError> {
        let count = self.count(what, 1)?;
        let mut peers = Vec::with_capacity(count);
        for _ in 0..count {
            let bytes = self.bytes(what)?;
            peers.push(PeerId::from_bytes(bytes).map_err(|e| PinCodecError(format!("{what}: {e}")))?);
        }
        Ok(peers)
    }

    pub(crate) fn timestamp(&mut self, what: &str) -> Result<Timestamp, PinCodecError> {
        let seconds = self.signed(what)?;
        let nanos = self.varint(what)?;
        if nanos >= 1_000_000_000 {
            return Err(PinCodecError(format!("{what}: {nanos} nanoseconds")));
        }
        Ok(Timestamp::from_unix(seconds, nanos as u32))
    }
}

/// For `#[serde(with = "pin_codec::wire")]`: a pin as its binary form (with its CID), as
/// base64 text in JSON. Reads a JSON pin object too, as earlier versions wrote it (Raft log
/// entries on disk, messages from a member not yet upgraded).
pub mod wire {
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use base64::Engine;
    use serde::de::{self, MapAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{decode_pin, encode_pin};
    use crate::Pin;

    /// Writes `pin` in its binary form.
    pub fn serialize<S: Serializer>(pin: &Pin, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = encode_pin(pin, true);
        if serializer.is_human_readable() {
            serializer.serialize_str(&STANDARD_NO_PAD.encode(bytes))
        } else {
            serializer.serialize_bytes(&bytes)
        }
    }

    /// Reads a pin in its binary form or as a JSON object.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Pin, D::Error> {
        deserializer.deserialize_any(PinVisitor)
    }

    struct PinVisitor;

    impl<'de> Visitor<'de> for PinVisitor {
        type Value = Pin;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a pin: base64 of its binary form, or a JSON object")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Pin, E> {
            let bytes = STANDARD_NO_PAD
                .decode(text)
                .map_err(|e| E::custom(format!("binary pin: {e}")))?;
            self.visit_bytes(&bytes)
        }

        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Pin, E> {
            decode_pin(bytes, None).map_err(E::custom)
        }

        fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Pin, M::Error> {
            Pin::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }

    /// For `#[serde(with = "pin_codec::wire::boxed")]`: a pin kept out of line (an enum that
    /// holds two pins in one variant is twice as large in all of them).
    pub mod boxed {
        use serde::{Deserializer, Serializer};

        use crate::Pin;

        /// Writes the pin in its binary form.
        pub fn serialize<S: Serializer>(pin: &Pin, serializer: S) -> Result<S::Ok, S::Error> {
            super::serialize(pin, serializer)
        }

        /// Reads a pin as [`super::deserialize`] does.
        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Box<Pin>, D::Error> {
            super::deserialize(deserializer).map(Box::new)
        }
    }

    /// For `#[serde(with = "pin_codec::wire::option")]`: `None` as `null`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use crate::Pin;

        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        struct Wire(#[serde(with = "super")] Pin);

        /// Writes the pin, if any, in its binary form.
        pub fn serialize<S: Serializer>(pin: &Option<Pin>, serializer: S) -> Result<S::Ok, S::Error> {
            match pin {
                Some(pin) => super::serialize(pin, serializer),
                None => serializer.serialize_none(),
            }
        }

        /// Reads `null` or a pin in either form.
        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Pin>, D::Error> {
            Ok(Option::<Wire>::deserialize(deserializer)?.map(|wire| wire.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> PeerId {
        PeerId::from_ed25519_seed([n; 32])
    }

    fn typical() -> Pin {
        let mut pin = Pin::new(
            Cid::raw_sha256(b"typical"),
            PinOptions {
                replication_factor_min: 2,
                replication_factor_max: 3,
                name: "photos/2026".into(),
                ..Default::default()
            },
        );
        pin.allocations = vec![peer(1), peer(2)];
        pin.timestamp = Timestamp::from_unix(1_790_000_000, 123_456_789);
        pin
    }

    #[test]
    fn a_typical_pin_is_a_quarter_of_its_json_and_round_trips() {
        let pin = typical();
        let binary = encode_pin(&pin, false);
        let json = serde_json::to_vec(&pin).unwrap();
        assert!(
            binary.len() * 4 <= json.len(),
            "{} bytes against {} as JSON",
            binary.len(),
            json.len()
        );
        assert_eq!(decode_pin(&binary, Some(pin.cid)).unwrap(), pin);
        let with_cid = encode_pin(&pin, true);
        assert_eq!(decode_pin(&with_cid, None).unwrap(), pin);
        assert_eq!(decode_pin(&with_cid, Some(pin.cid)).unwrap(), pin);
        assert_ne!(binary[0], b'{', "never taken for JSON");
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Carrier {
        #[serde(with = "wire")]
        pin: Pin,
        #[serde(with = "wire::option")]
        maybe: Option<Pin>,
        #[serde(with = "wire::option")]
        none: Option<Pin>,
    }

    #[test]
    fn in_messages_a_pin_is_base64_binary_and_a_json_object_is_still_read() {
        let carrier = Carrier {
            pin: typical(),
            maybe: Some(typical()),
            none: None,
        };
        let json = serde_json::to_string(&carrier).unwrap();
        assert!(!json.contains("photos/2026"), "binary, not JSON: {json}");
        assert_eq!(serde_json::from_str::<Carrier>(&json).unwrap(), carrier);
        // As an earlier version wrote it.
        let pin_json = serde_json::to_string(&typical()).unwrap();
        let old = format!(r#"{{"pin":{pin_json},"maybe":{pin_json},"none":null}}"#);
        assert_eq!(serde_json::from_str::<Carrier>(&old).unwrap(), carrier);
        for bad in [r#""!!""#, r#""AQ""#, "7"] {
            let text = format!(r#"{{"pin":{bad},"maybe":null,"none":null}}"#);
            assert!(serde_json::from_str::<Carrier>(&text).is_err(), "{text}");
        }
    }

    #[test]
    fn damaged_bytes_are_refused_with_a_reason_and_never_panic() {
        let pin = typical();
        let good = encode_pin(&pin, true);
        let other = Cid::raw_sha256(b"other");
        let table: Vec<(&str, Vec<u8>, Option<Cid>, &str)> = vec![
            ("empty", vec![], None, "ends inside format"),
            ("JSON", b"{}".to_vec(), None, "unknown format byte"),
            (
                "unknown mask bit",
                vec![FORMAT_V1, 0x80, 0x80, 0x04],
                None,
                "unknown fields",
            ),
            ("no CID at all", vec![FORMAT_V1, 0x00], None, "no CID"),
            ("another CID", good.clone(), Some(other), "stored as another"),
            ("trailing byte", [good.as_slice(), &[0]].concat(), None, "after the pin"),
            ("cut short", good[..good.len() - 3].to_vec(), None, "ends inside"),
            (
                "huge length",
                vec![FORMAT_V1, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f],
                None,
                "ends inside cid",
            ),
            (
                "varint too long",
                [vec![FORMAT_V1], vec![0xff; 11]].concat(),
                None,
                "varint",
            ),
            (
                "huge metadata count",
                vec![FORMAT_V1, 0x80, 0x08, 0xff, 0xff, 0xff, 0x0f],
                Some(other),
                "items in",
            ),
        ];
        for (what, bytes, cid, expected) in table {
            let error = decode_pin(&bytes, cid).expect_err(what);
            assert!(error.0.contains(expected), "{what}: {error}");
        }
        // Every prefix and every single-byte change decodes or is refused: no panic.
        for len in 0..good.len() {
            let _ = decode_pin(&good[..len], None);
        }
        for at in 0..good.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut bytes = good.clone();
                bytes[at] = value;
                let _ = decode_pin(&bytes, None);
            }
        }
    }
}
