//! What the shared pinset holds: [`Pin`] = [`PinOptions`] + CID, type, allocations, depth,
//! reference and timestamp. Also the query-string form of the options (reference §1.6).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Cid, PeerId, Timestamp};

/// Recursive or direct pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinMode {
    /// Pin the whole DAG (max_depth -1).
    #[default]
    Recursive,
    /// Pin only the root block (max_depth 0).
    Direct,
}

impl PinMode {
    /// Parses a mode; unknown text is recursive, as in Go.
    pub fn from_text(text: &str) -> PinMode {
        if text == "direct" {
            PinMode::Direct
        } else {
            PinMode::Recursive
        }
    }

    /// The max_depth that goes with this mode.
    pub fn max_depth(self) -> i32 {
        match self {
            PinMode::Recursive => -1,
            PinMode::Direct => 0,
        }
    }

    /// `recursive` or `direct`.
    pub fn as_str(self) -> &'static str {
        match self {
            PinMode::Recursive => "recursive",
            PinMode::Direct => "direct",
        }
    }
}

/// What kind of item a pin is (Go's bit flags; only `pin` is used by a non-sharding cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum PinType {
    /// Unknown type (flag 1).
    #[serde(rename = "bad-type")]
    Bad,
    /// A normal data pin (flag 2).
    #[default]
    #[serde(rename = "pin")]
    Data,
    /// A sharded upload's metadata (flag 4), never pinned on IPFS.
    #[serde(rename = "meta-pin")]
    Meta,
    /// The cluster DAG of a sharded upload (flag 8).
    #[serde(rename = "clusterdag-pin")]
    ClusterDag,
    /// One shard of a sharded upload (flag 16).
    #[serde(rename = "shard-pin")]
    Shard,
}

impl PinType {
    /// Go's name of the type (`PinType.String()`), as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            PinType::Bad => "bad-type",
            PinType::Data => "pin",
            PinType::Meta => "meta-pin",
            PinType::ClusterDag => "clusterdag-pin",
            PinType::Shard => "shard-pin",
        }
    }

    /// Go's bit flag value.
    pub fn flag(self) -> u32 {
        match self {
            PinType::Bad => 1,
            PinType::Data => 2,
            PinType::Meta => 4,
            PinType::ClusterDag => 8,
            PinType::Shard => 16,
        }
    }

    /// Parses the `/allocations?filter=` names (`pin`, `meta-pin`, `clusterdag-pin`, `shard-pin`, `all`)
    /// into a mask; unknown names are ignored; empty or `all` selects everything.
    pub fn filter_mask(text: &str) -> u32 {
        let mut mask = 0;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            mask |= match name {
                "pin" => 2,
                "meta-pin" => 4,
                "clusterdag-pin" => 8,
                "shard-pin" => 16,
                "all" => 2 | 4 | 8 | 16,
                _ => 0,
            };
        }
        if mask == 0 {
            2 | 4 | 8 | 16
        } else {
            mask
        }
    }
}

/// The options a user gives with a pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinOptions {
    /// Minimum number of members that must hold the pin; -1 = everywhere; 0 = cluster default.
    #[serde(default)]
    pub replication_factor_min: i32,
    /// Maximum number of members that should hold the pin; -1 = everywhere; 0 = cluster default.
    #[serde(default)]
    pub replication_factor_max: i32,
    /// Human-readable name.
    #[serde(default)]
    pub name: String,
    /// Recursive or direct.
    #[serde(default)]
    pub mode: PinMode,
    /// Shard size for sharded adds (0 = unset).
    #[serde(default)]
    pub shard_size: u64,
    /// Members the user asked for first; never persisted (always `null` in the state).
    #[serde(default)]
    pub user_allocations: Option<Vec<PeerId>>,
    /// When the pin expires; zero time = never.
    #[serde(default)]
    pub expire_at: Timestamp,
    /// Free-form key/values.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: BTreeMap<String, String>,
    /// The CID this pin replaces (pin update), `null` if none. Boxed, as `Pin::reference`.
    #[serde(default)]
    pub pin_update: Option<Box<Cid>>,
    /// Multiaddrs (with `/p2p/`) of peers that have the content.
    #[serde(default, deserialize_with = "null_as_default")]
    pub origins: Vec<String>,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl Default for PinOptions {
    fn default() -> Self {
        PinOptions {
            replication_factor_min: 0,
            replication_factor_max: 0,
            name: String::new(),
            mode: PinMode::Recursive,
            shard_size: 0,
            user_allocations: None,
            expire_at: Timestamp::ZERO,
            metadata: BTreeMap::new(),
            pin_update: None,
            origins: Vec::new(),
        }
    }
}

/// A malformed pin option in a query string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PinOptionsError(pub String);

impl PinOptions {
    /// Parses the REST query parameters of reference §1.6. `now` is used for `expire-in`.
    /// Unknown parameters are ignored (the Go client sends extra ones).
    pub fn from_query<'a, I>(params: I, now: Timestamp) -> Result<PinOptions, PinOptionsError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut options = PinOptions::default();
        let mut replication = None;
        let mut replication_min = None;
        let mut replication_max = None;
        let mut expire_at = None;
        let mut expire_in = None;
        // Go reads each key with `url.Values.Get`: the first value counts, repeats are ignored.
        let mut seen = std::collections::BTreeSet::new();
        for (key, value) in params {
            if !seen.insert(key) {
                continue;
            }
            match key {
                "name" => options.name = value.to_string(),
                "mode" => options.mode = PinMode::from_text(value),
                "replication" => replication = Some(value),
                "replication-min" => replication_min = Some(value),
                "replication-max" => replication_max = Some(value),
                "shard-size" if !value.is_empty() => {
                    options.shard_size = value
                        .parse()
                        .map_err(|_| PinOptionsError(format!("parameter shard-size invalid: {value:?}")))?;
                }
                "user-allocations" if !value.is_empty() => {
                    let mut peers = Vec::new();
                    for text in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                        let peer = text.parse::<PeerId>().map_err(|e| {
                            PinOptionsError(format!("error decoding user-allocations peer {text:?}: {e}"))
                        })?;
                        peers.push(peer);
                    }
                    options.user_allocations = Some(peers);
                }
                "expire-at" if !value.is_empty() => expire_at = Some(value),
                "expire-in" if !value.is_empty() => expire_in = Some(value),
                "pin-update" if !value.is_empty() => {
                    let cid = value
                        .parse::<Cid>()
                        .map_err(|e| PinOptionsError(format!("error decoding pin-update Cid: {e}")))?;
                    options.pin_update = Some(Box::new(cid));
                }
                "origins" if !value.is_empty() => {
                    for text in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                        let address = text
                            .parse::<multiaddr::Multiaddr>()
                            .map_err(|e| PinOptionsError(format!("error decoding origin {text:?}: {e}")))?;
                        if !address.iter().any(|p| matches!(p, multiaddr::Protocol::P2p(_))) {
                            return Err(PinOptionsError(format!("origin {text:?} must contain /p2p/<peer id>")));
                        }
                        options.origins.push(address.to_string());
                    }
                }
                _ => {
                    if let Some(meta_key) = key.strip_prefix("meta-") {
                        if !meta_key.is_empty() {
                            options.metadata.insert(meta_key.to_string(), value.to_string());
                        }
                    }
                }
            }
        }
        if let Some(both) = replication.filter(|v| !v.is_empty()) {
            replication_min = Some(both);
            replication_max = Some(both);
        }
        options.replication_factor_min = parse_replication("replication-min", replication_min)?;
        options.replication_factor_max = parse_replication("replication-max", replication_max)?;
        if let Some(text) = expire_at {
            options.expire_at = text
                .parse::<Timestamp>()
                .map_err(|_| PinOptionsError(format!("expire-at is not a valid RFC3339 time: {text:?}")))?;
        } else if let Some(text) = expire_in {
            let duration = crate::duration::parse(text)
                .map_err(|_| PinOptionsError(format!("expire-in is not a valid duration: {text:?}")))?;
            if duration < Duration::from_secs(1) {
                return Err(PinOptionsError("expire-in must be at least 1s".into()));
            }
            options.expire_at = now.add(duration);
        }
        Ok(options)
    }

    /// The query-string form (what the Go client's `ToQuery` sends); inverse of [`Self::from_query`].
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut query = vec![
            ("name".to_string(), self.name.clone()),
            ("mode".to_string(), self.mode.as_str().to_string()),
            ("replication-min".to_string(), self.replication_factor_min.to_string()),
            ("replication-max".to_string(), self.replication_factor_max.to_string()),
            ("shard-size".to_string(), self.shard_size.to_string()),
        ];
        if let Some(peers) = &self.user_allocations {
            let text: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
            query.push(("user-allocations".to_string(), text.join(",")));
        }
        if !self.expire_at.is_zero() {
            query.push(("expire-at".to_string(), self.expire_at.to_string()));
        }
        for (key, value) in &self.metadata {
            query.push((format!("meta-{key}"), value.clone()));
        }
        if let Some(cid) = &self.pin_update {
            query.push(("pin-update".to_string(), cid.to_string()));
        }
        if !self.origins.is_empty() {
            query.push(("origins".to_string(), self.origins.join(",")));
        }
        query
    }
}

fn parse_replication(name: &str, value: Option<&str>) -> Result<i32, PinOptionsError> {
    match value {
        None | Some("") => Ok(0),
        Some(text) => text
            .parse::<i32>()
            .map_err(|_| PinOptionsError(format!("parameter {name} invalid: {text:?} is not an integer"))),
    }
}

/// A pin in the shared state. JSON: the [`PinOptions`] fields first, then these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The options given by the user.
    #[serde(flatten)]
    pub options: PinOptions,
    /// What is pinned.
    pub cid: Cid,
    /// The kind of pin.
    #[serde(rename = "type", default)]
    pub pin_type: PinType,
    /// Members that must hold it; empty = everywhere.
    #[serde(default, deserialize_with = "null_as_default")]
    pub allocations: Vec<PeerId>,
    /// -1 recursive, 0 direct, N limited depth.
    #[serde(default = "recursive_depth")]
    pub max_depth: i32,
    /// Related CID for sharded/meta pins, `null` otherwise. Boxed: nearly always `None`, and a
    /// pin is moved whole many times on the write path (a CID inline is 96 bytes).
    #[serde(default)]
    pub reference: Option<Box<Cid>>,
    /// When the pin was committed.
    #[serde(default)]
    pub timestamp: Timestamp,
}

fn recursive_depth() -> i32 {
    -1
}

impl Pin {
    /// A data pin with `options`, no allocations yet, depth from the mode.
    pub fn new(cid: Cid, options: PinOptions) -> Pin {
        let max_depth = options.mode.max_depth();
        Pin {
            options,
            cid,
            pin_type: PinType::Data,
            allocations: Vec::new(),
            max_depth,
            reference: None,
            timestamp: Timestamp::ZERO,
        }
    }

    /// Whether the pin is held by every member (replication -1).
    pub fn is_everywhere(&self) -> bool {
        self.options.replication_factor_min == -1 && self.options.replication_factor_max == -1
    }

    /// Whether `peer` must hold this pin.
    pub fn is_allocated_to(&self, peer: &PeerId) -> bool {
        self.is_everywhere() || self.allocations.is_empty() || self.allocations.contains(peer)
    }

    /// Whether this pin has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        !self.options.expire_at.is_zero() && self.options.expire_at <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid() -> Cid {
        "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9".parse().unwrap()
    }

    #[test]
    fn pin_json_has_go_field_order() {
        let mut pin = Pin::new(
            cid(),
            PinOptions {
                replication_factor_min: -1,
                replication_factor_max: -1,
                ..Default::default()
            },
        );
        pin.timestamp = "2026-05-11T10:17:41.1Z".parse().unwrap();
        let json = serde_json::to_string(&pin).unwrap();
        assert_eq!(
            json,
            r#"{"replication_factor_min":-1,"replication_factor_max":-1,"name":"","mode":"recursive","shard_size":0,"user_allocations":null,"expire_at":"0001-01-01T00:00:00Z","metadata":{},"pin_update":null,"origins":[],"cid":"QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9","type":"pin","allocations":[],"max_depth":-1,"reference":null,"timestamp":"2026-05-11T10:17:41.1Z"}"#
        );
        let back: Pin = serde_json::from_str(&json).unwrap();
        assert_eq!(back, pin);
    }

    #[test]
    fn go_nulls_decode_as_empty() {
        let json = r#"{"cid":"QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9","metadata":null,"origins":null,"allocations":null}"#;
        let pin: Pin = serde_json::from_str(json).unwrap();
        assert!(pin.options.metadata.is_empty());
        assert_eq!(pin.max_depth, -1);
    }

    #[test]
    fn query_parsing_follows_go() {
        let now = Timestamp::from_unix(1_000, 0);
        let options = PinOptions::from_query(
            [
                ("name", "n"),
                ("mode", "direct"),
                ("replication", "2"),
                ("replication-min", "9"),
                ("meta-a", "b"),
                ("expire-in", "1m"),
                ("shard-size", ""),
                ("user-allocations", ""),
            ],
            now,
        )
        .unwrap();
        assert_eq!(options.name, "n");
        assert_eq!(options.mode, PinMode::Direct);
        assert_eq!((options.replication_factor_min, options.replication_factor_max), (2, 2));
        assert_eq!(options.metadata.get("a").map(String::as_str), Some("b"));
        assert_eq!(options.expire_at, Timestamp::from_unix(1_060, 0));
        assert_eq!(options.user_allocations, None);

        let go_client = PinOptions::from_query(
            [("replication-min", "0"), ("replication-max", "0"), ("mode", "bogus")],
            now,
        )
        .unwrap();
        assert_eq!(go_client.replication_factor_min, 0);
        assert_eq!(go_client.mode, PinMode::Recursive);

        // Repeated keys: the first value counts, as `url.Values.Get`.
        let repeated = PinOptions::from_query(
            [("name", "first"), ("name", "second"), ("meta-k", "1"), ("meta-k", "2")],
            now,
        )
        .unwrap();
        assert_eq!(repeated.name, "first");
        assert_eq!(repeated.metadata.get("k").map(String::as_str), Some("1"));
    }

    #[test]
    fn malformed_query_options_are_errors() {
        let now = Timestamp::ZERO;
        for (key, value) in [
            ("replication-min", "two"),
            ("replication", "1.5"),
            ("shard-size", "-1"),
            ("expire-at", "tomorrow"),
            ("expire-in", "500ms"),
            ("expire-in", "soon"),
            ("pin-update", "nope"),
            ("user-allocations", "bad-peer"),
            ("origins", "/ip4/1.2.3.4/tcp/4001"),
            ("origins", "garbage"),
        ] {
            assert!(PinOptions::from_query([(key, value)], now).is_err(), "{key}={value}");
        }
    }

    #[test]
    fn to_query_round_trips() {
        let mut options = PinOptions {
            name: "x".into(),
            replication_factor_min: 1,
            replication_factor_max: 3,
            ..Default::default()
        };
        options.metadata.insert("k".into(), "v".into());
        options.pin_update = Some(Box::new(cid()));
        options.expire_at = Timestamp::from_unix(5, 0);
        let query = options.to_query();
        let back =
            PinOptions::from_query(query.iter().map(|(k, v)| (k.as_str(), v.as_str())), Timestamp::ZERO).unwrap();
        assert_eq!(back, options);
    }
}
