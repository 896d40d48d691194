//! What trackers report: one member's view of one pin ([`PinInfo`]) and the merge of every
//! member's view ([`GlobalPinInfo`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Cid, PeerId, Pin, Timestamp, TrackerStatus};

/// One member's status for one pin (the `peer_map` values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PinInfoShort {
    /// The member's peername.
    #[serde(default)]
    pub peername: String,
    /// The member's IPFS daemon peer id; omitted when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipfs_peer_id: String,
    /// The IPFS daemon's addresses; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipfs_peer_addresses: Vec<String>,
    /// The status.
    #[serde(default)]
    pub status: TrackerStatus,
    /// When the status last changed.
    #[serde(default)]
    pub timestamp: Timestamp,
    /// Error text for error statuses, empty otherwise.
    #[serde(default)]
    pub error: String,
    /// How many times the operation was tried.
    #[serde(default)]
    pub attempt_count: u32,
    /// Whether the operation sits in the priority queue.
    #[serde(default)]
    pub priority_pin: bool,
}

/// One member's status for one pin, with the pin's identity (RPC and `?local=true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinInfo {
    /// The pin's CID.
    pub cid: Cid,
    /// The pin's name.
    #[serde(default)]
    pub name: String,
    /// The reporting member.
    pub peer: PeerId,
    /// The pin's allocations.
    #[serde(default)]
    pub allocations: Vec<PeerId>,
    /// The pin's origins.
    #[serde(default)]
    pub origins: Vec<String>,
    /// When the pin was committed.
    #[serde(default)]
    pub created: Timestamp,
    /// The pin's metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The status on the reporting member.
    #[serde(flatten)]
    pub short: PinInfoShort,
}

impl PinInfo {
    /// A status report about `cid` by `peer`, copying identity fields from `pin` when known.
    pub fn new(cid: Cid, peer: PeerId, pin: Option<&Pin>, short: PinInfoShort) -> PinInfo {
        match pin {
            Some(pin) => PinInfo {
                cid,
                name: pin.options.name.clone(),
                peer,
                allocations: pin.allocations.clone(),
                origins: pin.options.origins.clone(),
                created: pin.timestamp,
                metadata: pin.options.metadata.clone(),
                short,
            },
            None => PinInfo {
                cid,
                name: String::new(),
                peer,
                allocations: Vec::new(),
                origins: Vec::new(),
                created: Timestamp::ZERO,
                metadata: BTreeMap::new(),
                short,
            },
        }
    }

    /// The single-member global form (`?local=true` answers).
    pub fn into_global(self) -> GlobalPinInfo {
        let mut global = GlobalPinInfo {
            cid: self.cid,
            name: self.name,
            allocations: self.allocations,
            origins: self.origins,
            created: self.created,
            metadata: self.metadata,
            peer_map: BTreeMap::new(),
        };
        global.peer_map.insert(self.peer.to_string(), self.short);
        global
    }
}

/// Every member's status for one pin (`GET /pins/{cid}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalPinInfo {
    /// The pin's CID.
    pub cid: Cid,
    /// The pin's name.
    #[serde(default)]
    pub name: String,
    /// The pin's allocations.
    #[serde(default)]
    pub allocations: Vec<PeerId>,
    /// The pin's origins.
    #[serde(default)]
    pub origins: Vec<String>,
    /// When the pin was committed.
    #[serde(default)]
    pub created: Timestamp,
    /// The pin's metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Status per member, keyed by cluster peer id (sorted, like Go's map encoding).
    #[serde(default)]
    pub peer_map: BTreeMap<String, PinInfoShort>,
}

impl GlobalPinInfo {
    /// Adds one member's report, taking identity fields from it if still unset.
    pub fn add(&mut self, info: PinInfo) {
        if self.name.is_empty() {
            self.name = info.name;
        }
        if self.allocations.is_empty() {
            self.allocations = info.allocations;
        }
        if self.origins.is_empty() {
            self.origins = info.origins;
        }
        if self.created.is_zero() {
            self.created = info.created;
        }
        if self.metadata.is_empty() {
            self.metadata = info.metadata;
        }
        self.peer_map.insert(info.peer.to_string(), info.short);
    }

    /// Whether any member's status matches `filter`.
    pub fn matches(&self, filter: crate::TrackerStatusFilter) -> bool {
        filter.is_any() || self.peer_map.values().any(|s| filter.matches(s.status))
    }
}

/// One pin's status on one member, without the member's fields: an item of a status page between
/// members (cluster-rpc's `StatusPage`). Short keys and defaults left out, since a page holds
/// thousands; [`crate::status_codec`] is its binary form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinStatus {
    /// The pin's CID.
    #[serde(rename = "c")]
    pub cid: Cid,
    /// Its status on the member.
    #[serde(rename = "s")]
    pub status: TrackerStatus,
    /// When the status last changed.
    #[serde(rename = "t")]
    pub timestamp: Timestamp,
    /// Error text of an error status.
    #[serde(rename = "e", default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// How many times the operation was tried.
    #[serde(rename = "a", default, skip_serializing_if = "is_zero")]
    pub attempt_count: u32,
    /// Whether the operation sits in the priority queue.
    #[serde(rename = "p", default, skip_serializing_if = "is_false")]
    pub priority_pin: bool,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

fn is_false(flag: &bool) -> bool {
    !*flag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_pin_info_json_shape() {
        let cid: Cid = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9".parse().unwrap();
        let peer = PeerId::from_ed25519_seed([1; 32]);
        let short = PinInfoShort {
            peername: "a".into(),
            status: TrackerStatus::Pinned,
            ..Default::default()
        };
        let global = PinInfo::new(cid, peer, None, short).into_global();
        let json = serde_json::to_string(&global).unwrap();
        let expected = format!(
            r#"{{"cid":"{cid}","name":"","allocations":[],"origins":[],"created":"0001-01-01T00:00:00Z","metadata":{{}},"peer_map":{{"{peer}":{{"peername":"a","status":"pinned","timestamp":"0001-01-01T00:00:00Z","error":"","attempt_count":0,"priority_pin":false}}}}}}"#
        );
        assert_eq!(json, expected);
    }

    #[test]
    fn pin_info_flattens_short() {
        let cid: Cid = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9".parse().unwrap();
        let peer = PeerId::from_ed25519_seed([2; 32]);
        let info = PinInfo::new(
            cid,
            peer,
            None,
            PinInfoShort {
                ipfs_peer_id: "x".into(),
                ..Default::default()
            },
        );
        let value = serde_json::to_value(&info).unwrap();
        assert_eq!(value["ipfs_peer_id"], "x");
        assert_eq!(value["status"], "undefined");
        let back: PinInfo = serde_json::from_value(value).unwrap();
        assert_eq!(back, info);
    }
}
