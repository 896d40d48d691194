//! The shapes of Kubo's (and js-ipfs's) RPC replies, as [`crate::kubo_connector`] decodes
//! them: one struct per reply, the error object a streamed reply may end with
//! ([`StreamLine`]), and the parsing of pin types and CIDs in them.

use std::collections::BTreeMap;

use cluster_types::Cid;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use crate::{IpfsError, IpfsPinType};

pub(crate) fn decode_error(path: &str, message: String) -> IpfsError {
    IpfsError::Decode {
        path: path.into(),
        message,
    }
}

pub(crate) fn is_not_pinned(message: &str) -> bool {
    message.contains("not pinned")
}

/// A streamed reply line that may instead be Kubo's error object
/// `{"Message","Code","Type":"error"}` (written when a stream fails after it started).
pub(crate) trait StreamLine {
    /// The error message if this line is an error object.
    fn stream_error(&self) -> Option<&str>;
}

pub(crate) fn daemon_error_in_stream<T: StreamLine>(path: &str, line: &T) -> Result<(), IpfsError> {
    match line.stream_error() {
        // The HTTP status was already 200; 500 is what Kubo sends for the same error up front.
        Some(message) => Err(IpfsError::Daemon {
            path: path.into(),
            code: 500,
            message: message.into(),
        }),
        None => Ok(()),
    }
}

pub(crate) fn error_of<'a>(kind: &Option<String>, message: &'a Option<String>) -> Option<&'a str> {
    match (kind.as_deref(), message) {
        (Some("error"), Some(message)) => Some(message),
        _ => None,
    }
}

/// A JSON number, or a string holding one (js-ipfs sends `"RepoSize":"1326"`).
pub(crate) fn number_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(u64),
        Float(f64),
        Text(String),
    }
    match Repr::deserialize(deserializer)? {
        Repr::Number(n) => Ok(n),
        // Some daemons write large values in exponent form; sizes need no more precision.
        Repr::Float(f) if f.is_finite() && f >= 0.0 => Ok(f as u64),
        Repr::Float(f) => Err(serde::de::Error::custom(format!("not a size: {f}"))),
        Repr::Text(text) => text.trim().parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Deserialize)]
pub(crate) struct IdReply {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    #[serde(rename = "Addresses", default)]
    pub(crate) addresses: Option<Vec<String>>,
    #[serde(rename = "Type", default)]
    pub(crate) kind: Option<String>,
    #[serde(rename = "Message", default)]
    pub(crate) message: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct VersionReply {
    #[serde(rename = "Version")]
    pub(crate) version: String,
    #[serde(rename = "Type", default)]
    pub(crate) kind: Option<String>,
    #[serde(rename = "Message", default)]
    pub(crate) message: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct RepoStatReply {
    #[serde(rename = "RepoSize", deserialize_with = "number_or_string")]
    pub(crate) repo_size: u64,
    #[serde(rename = "StorageMax", deserialize_with = "number_or_string")]
    pub(crate) storage_max: u64,
}

#[derive(Deserialize)]
pub(crate) struct SwarmPeersReply {
    /// `null` from Kubo when there are no peers, `[]` from js-ipfs.
    #[serde(rename = "Peers", default)]
    pub(crate) peers: Option<Vec<SwarmPeer>>,
}

#[derive(Deserialize)]
pub(crate) struct SwarmPeer {
    #[serde(rename = "Peer")]
    pub(crate) peer: String,
}

/// Any reply whose content is ignored (pin/rm's `{"Pins":[..]}`), still checked for errors.
#[derive(Deserialize)]
pub(crate) struct IgnoredReply {
    #[serde(rename = "Type", default)]
    pub(crate) kind: Option<IgnoredOrString>,
    #[serde(rename = "Message", default)]
    pub(crate) message: Option<String>,
}

/// `Type` of an ignored reply may be anything; only the string "error" matters.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum IgnoredOrString {
    Text(String),
    Other(IgnoredAny),
}

/// One value of a `pin/add?progress=true` reply: `{"Progress":N}` ... then `{"Pins":[..]}`.
#[derive(Deserialize)]
pub(crate) struct PinAddLine {
    #[serde(rename = "Pins", default)]
    pub(crate) pins: Option<Vec<IgnoredAny>>,
    #[serde(rename = "Progress", default)]
    pub(crate) progress: Option<u64>,
    #[serde(rename = "Type", default)]
    pub(crate) kind: Option<String>,
    #[serde(rename = "Message", default)]
    pub(crate) message: Option<String>,
}

/// One value of a `pin/ls` reply: `{"Cid","Type"}` when streamed, `{"Keys":{cid:{"Type"}}}` when not.
#[derive(Deserialize)]
pub(crate) struct PinLsLine {
    #[serde(rename = "Cid", default)]
    pub(crate) cid: Option<String>,
    #[serde(rename = "Type", default)]
    pub(crate) kind: Option<String>,
    #[serde(rename = "Keys", default)]
    pub(crate) keys: Option<BTreeMap<String, PinLsKey>>,
    #[serde(rename = "Message", default)]
    pub(crate) message: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct PinLsKey {
    #[serde(rename = "Type", default)]
    pub(crate) kind: String,
}

impl StreamLine for IdReply {
    fn stream_error(&self) -> Option<&str> {
        error_of(&self.kind, &self.message)
    }
}

impl StreamLine for VersionReply {
    fn stream_error(&self) -> Option<&str> {
        error_of(&self.kind, &self.message)
    }
}

impl StreamLine for RepoStatReply {
    fn stream_error(&self) -> Option<&str> {
        None
    }
}

impl StreamLine for SwarmPeersReply {
    fn stream_error(&self) -> Option<&str> {
        None
    }
}

impl StreamLine for IgnoredReply {
    fn stream_error(&self) -> Option<&str> {
        match (&self.kind, &self.message) {
            (Some(IgnoredOrString::Text(kind)), Some(message)) if kind == "error" => Some(message),
            _ => None,
        }
    }
}

impl StreamLine for PinAddLine {
    fn stream_error(&self) -> Option<&str> {
        error_of(&self.kind, &self.message)
    }
}

impl StreamLine for PinLsLine {
    fn stream_error(&self) -> Option<&str> {
        error_of(&self.kind, &self.message)
    }
}

/// Kubo's pin type names; `indirect through <cid>` is how Kubo reports an indirect pin of an arg.
pub(crate) fn parse_pin_type(text: &str) -> Option<IpfsPinType> {
    match text {
        "recursive" => Some(IpfsPinType::Recursive),
        "direct" => Some(IpfsPinType::Direct),
        t if t.starts_with("indirect") => Some(IpfsPinType::Indirect),
        _ => None,
    }
}

pub(crate) fn parse_cid(path: &str, text: &str) -> Result<Cid, IpfsError> {
    text.parse()
        .map_err(|e| decode_error(path, format!("invalid CID {text:?}: {e}")))
}

impl PinLsLine {
    /// Appends this line's `(cid, type)` entries (`None` type when the daemon sent none).
    pub(crate) fn entries(self, path: &str, out: &mut Vec<(Cid, Option<IpfsPinType>)>) -> Result<(), IpfsError> {
        daemon_error_in_stream(path, &self)?;
        let type_of = |kind: &str| -> Result<Option<IpfsPinType>, IpfsError> {
            if kind.is_empty() {
                return Ok(None);
            }
            parse_pin_type(kind)
                .map(Some)
                .ok_or_else(|| decode_error(path, format!("unknown pin type {kind:?}")))
        };
        if let Some(cid) = &self.cid {
            out.push((parse_cid(path, cid)?, type_of(self.kind.as_deref().unwrap_or(""))?));
        }
        for (cid, key) in self.keys.into_iter().flatten() {
            out.push((parse_cid(path, &cid)?, type_of(&key.kind)?));
        }
        Ok(())
    }
}

/// One line of `repo/gc`: `{"Key":{"/":"<cid>"}}` or `{"Error":"..."}`.
#[derive(Deserialize)]
pub(crate) struct RepoGcLine {
    #[serde(rename = "Key", default)]
    pub(crate) key: Option<CidLink>,
    #[serde(rename = "Error", default)]
    pub(crate) error: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct CidLink {
    #[serde(rename = "/")]
    pub(crate) cid: String,
}

impl StreamLine for RepoGcLine {
    fn stream_error(&self) -> Option<&str> {
        // Per-block errors are results, not a failed call.
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_may_be_strings() {
        let kubo: RepoStatReply = serde_json::from_str(r#"{"RepoSize":1326,"StorageMax":10000000000}"#).unwrap();
        assert_eq!((kubo.repo_size, kubo.storage_max), (1326, 10_000_000_000));
        let js: RepoStatReply =
            serde_json::from_str(r#"{"RepoSize":"1326","StorageMax":"9007199254740991","NumObjects":"2"}"#).unwrap();
        assert_eq!((js.repo_size, js.storage_max), (1326, 9_007_199_254_740_991));
        assert!(serde_json::from_str::<RepoStatReply>(r#"{"RepoSize":"lots","StorageMax":1}"#).is_err());
        assert!(serde_json::from_str::<RepoStatReply>(r#"{"RepoSize":-1,"StorageMax":1}"#).is_err());
    }

    #[test]
    fn pin_types_and_error_lines() {
        assert_eq!(parse_pin_type("recursive"), Some(IpfsPinType::Recursive));
        assert_eq!(parse_pin_type("direct"), Some(IpfsPinType::Direct));
        assert_eq!(parse_pin_type("indirect through QmX"), Some(IpfsPinType::Indirect));
        assert_eq!(parse_pin_type("weird"), None);
        let line: PinLsLine = serde_json::from_str(r#"{"Message":"boom","Code":0,"Type":"error"}"#).unwrap();
        let mut entries = Vec::new();
        let err = line.entries("pin/ls", &mut entries).unwrap_err();
        assert!(matches!(err, IpfsError::Daemon { code: 500, .. }), "{err}");
    }
}
