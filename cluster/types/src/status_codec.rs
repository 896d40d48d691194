//! The compact binary form of one member's statuses of many pins ([`PinStatus`]), for the status
//! pages members send each other during a cluster-wide status: about 50 bytes a pin against
//! about 110 as JSON, read without parsing text (CIDs as bytes, times as numbers). In JSON it
//! travels as base64 text ([`PackedStatuses`]).
//!
//! A format byte, a count, then per status: the CID (length-prefixed bytes), the status (its
//! index in [`TrackerStatus::ALL`]), the timestamp (zigzag seconds, nanoseconds), a byte of
//! flags, then the error text and the attempt count where the flags say so. Decoding is bounded
//! by its input, as [`crate::pin_codec`]'s is.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::pin_codec::{put_bytes, put_timestamp, put_varint, Reader};
use crate::{PinStatus, TrackerStatus};

/// The first byte of statuses in this format.
pub const FORMAT_V1: u8 = 0x01;

const HAS_ERROR: u8 = 1 << 0;
const HAS_ATTEMPTS: u8 = 1 << 1;
const PRIORITY: u8 = 1 << 2;
const KNOWN_FLAGS: u8 = HAS_ERROR | HAS_ATTEMPTS | PRIORITY;

/// The smallest encoded status: a CID of one byte, and a byte each for its length, the status,
/// the seconds, the nanoseconds and the flags.
const MIN_STATUS_BYTES: usize = 6;

/// Why bytes are not statuses in this format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("binary statuses: {0}")]
pub struct StatusCodecError(pub String);

/// Encodes `statuses`.
pub fn encode_statuses(statuses: &[PinStatus]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 52 * statuses.len());
    out.push(FORMAT_V1);
    put_varint(&mut out, statuses.len() as u64);
    for status in statuses {
        put_bytes(&mut out, &status.cid.to_bytes());
        out.push(status_code(status.status));
        put_timestamp(&mut out, status.timestamp);
        let mut flags = 0;
        if !status.error.is_empty() {
            flags |= HAS_ERROR;
        }
        if status.attempt_count != 0 {
            flags |= HAS_ATTEMPTS;
        }
        if status.priority_pin {
            flags |= PRIORITY;
        }
        out.push(flags);
        if !status.error.is_empty() {
            put_bytes(&mut out, status.error.as_bytes());
        }
        if status.attempt_count != 0 {
            put_varint(&mut out, status.attempt_count.into());
        }
    }
    out
}

/// The statuses in `bytes`.
pub fn decode_statuses(bytes: &[u8]) -> Result<Vec<PinStatus>, StatusCodecError> {
    let failed = |e: crate::pin_codec::PinCodecError| StatusCodecError(e.0);
    let mut r = Reader { rest: bytes };
    let format = r.byte("format").map_err(failed)?;
    if format != FORMAT_V1 {
        return Err(StatusCodecError(format!("unknown format byte {format:#04x}")));
    }
    let count = r.varint("count").map_err(failed)?;
    if count > (r.rest.len() / MIN_STATUS_BYTES) as u64 {
        return Err(StatusCodecError(format!("{count} statuses in {} bytes", r.rest.len())));
    }
    let mut statuses = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let cid = r.cid("cid").map_err(failed)?;
        let code = r.byte("status").map_err(failed)?;
        let status = *TrackerStatus::ALL
            .get(usize::from(code))
            .ok_or_else(|| StatusCodecError(format!("unknown status {code}")))?;
        let timestamp = r.timestamp("timestamp").map_err(failed)?;
        let flags = r.byte("flags").map_err(failed)?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(StatusCodecError(format!("unknown flags {flags:#04x}")));
        }
        let error = if flags & HAS_ERROR != 0 {
            r.string("error").map_err(failed)?
        } else {
            String::new()
        };
        let attempt_count = if flags & HAS_ATTEMPTS != 0 {
            let count = r.varint("attempt count").map_err(failed)?;
            u32::try_from(count).map_err(|_| StatusCodecError(format!("attempt count out of range: {count}")))?
        } else {
            0
        };
        statuses.push(PinStatus {
            cid,
            status,
            timestamp,
            error,
            attempt_count,
            priority_pin: flags & PRIORITY != 0,
        });
    }
    if !r.rest.is_empty() {
        return Err(StatusCodecError(format!("{} bytes after the statuses", r.rest.len())));
    }
    Ok(statuses)
}

fn status_code(status: TrackerStatus) -> u8 {
    TrackerStatus::ALL
        .iter()
        .position(|s| *s == status)
        .expect("ALL lists every status") as u8
}

/// Statuses that travel in their binary form, as base64 text in JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedStatuses(pub Vec<PinStatus>);

impl PackedStatuses {
    /// Whether it holds no status.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for PackedStatuses {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD_NO_PAD.encode(encode_statuses(&self.0)))
    }
}

impl<'de> Deserialize<'de> for PackedStatuses {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let bytes = STANDARD_NO_PAD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("binary statuses: {e}")))?;
        decode_statuses(&bytes)
            .map(PackedStatuses)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::strategies::cid_strategy;
    use crate::{Cid, Timestamp};

    fn status_strategy() -> impl Strategy<Value = PinStatus> {
        (
            cid_strategy(),
            proptest::sample::select(TrackerStatus::ALL.to_vec()),
            (any::<i64>(), 0..1_000_000_000u32),
            proptest::option::of(".{0,20}"),
            any::<u32>(),
            any::<bool>(),
        )
            .prop_map(
                |(cid, status, (seconds, nanos), error, attempt_count, priority_pin)| PinStatus {
                    cid,
                    status,
                    timestamp: Timestamp::from_unix(seconds, nanos),
                    error: error.unwrap_or_default(),
                    attempt_count,
                    priority_pin,
                },
            )
    }

    proptest! {
        #[test]
        fn any_statuses_come_back_as_they_went(statuses in proptest::collection::vec(status_strategy(), 0..8)) {
            prop_assert_eq!(decode_statuses(&encode_statuses(&statuses)).unwrap(), statuses.clone());
            let json = serde_json::to_string(&PackedStatuses(statuses.clone())).unwrap();
            prop_assert_eq!(serde_json::from_str::<PackedStatuses>(&json).unwrap().0, statuses);
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_statuses(&bytes);
        }
    }

    #[test]
    fn a_typical_status_takes_about_fifty_bytes() {
        let status = PinStatus {
            cid: Cid::raw_sha256(b"x"),
            status: TrackerStatus::Pinned,
            timestamp: Timestamp::from_unix(1_800_000_000, 123_456_789),
            error: String::new(),
            attempt_count: 0,
            priority_pin: false,
        };
        let bytes = encode_statuses(&vec![status; 100]);
        assert!(bytes.len() <= 100 * 50, "{} bytes", bytes.len());
    }

    #[test]
    fn damaged_statuses_are_refused_with_what_is_wrong() {
        let status = PinStatus {
            cid: Cid::raw_sha256(b"x"),
            status: TrackerStatus::PinError,
            timestamp: Timestamp::ZERO,
            error: "no".into(),
            attempt_count: 2,
            priority_pin: true,
        };
        let bytes = encode_statuses(&[status]);
        let cases: [(Vec<u8>, &str); 4] = [
            ([&[0x02][..], &bytes[1..]].concat(), "unknown format"),
            (bytes[..bytes.len() - 1].to_vec(), "ends inside"),
            ([&bytes[..], &[0][..]].concat(), "after the statuses"),
            (vec![FORMAT_V1, 100, 1, 2, 3], "100 statuses in 3 bytes"),
        ];
        for (damaged, expected) in cases {
            let error = decode_statuses(&damaged).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
