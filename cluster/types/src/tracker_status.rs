//! The status of a pin on one member, and the `filter` query that selects statuses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a pin stands on one member (Go's bit-flag values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum TrackerStatus {
    /// Unknown.
    #[default]
    Undefined,
    /// The member could not be asked (RPC error).
    ClusterError,
    /// Pinning failed on the daemon.
    PinError,
    /// Unpinning failed on the daemon.
    UnpinError,
    /// Pinned on the daemon.
    Pinned,
    /// The daemon is pinning it now.
    Pinning,
    /// The daemon is unpinning it now.
    Unpinning,
    /// Not pinned on this member (and not supposed to be).
    Unpinned,
    /// Allocated to other members.
    Remote,
    /// Waiting in the pin queue.
    PinQueued,
    /// Waiting in the unpin queue.
    UnpinQueued,
    /// A sharded meta pin.
    Sharded,
    /// Should be pinned but the daemon does not have it.
    UnexpectedlyUnpinned,
}

impl TrackerStatus {
    /// Every status, in flag order.
    pub const ALL: [TrackerStatus; 13] = [
        TrackerStatus::Undefined,
        TrackerStatus::ClusterError,
        TrackerStatus::PinError,
        TrackerStatus::UnpinError,
        TrackerStatus::Pinned,
        TrackerStatus::Pinning,
        TrackerStatus::Unpinning,
        TrackerStatus::Unpinned,
        TrackerStatus::Remote,
        TrackerStatus::PinQueued,
        TrackerStatus::UnpinQueued,
        TrackerStatus::Sharded,
        TrackerStatus::UnexpectedlyUnpinned,
    ];

    /// Go's bit flag.
    pub fn flag(self) -> u32 {
        match self {
            TrackerStatus::Undefined => 0,
            TrackerStatus::ClusterError => 1 << 1,
            TrackerStatus::PinError => 1 << 2,
            TrackerStatus::UnpinError => 1 << 3,
            TrackerStatus::Pinned => 1 << 4,
            TrackerStatus::Pinning => 1 << 5,
            TrackerStatus::Unpinning => 1 << 6,
            TrackerStatus::Unpinned => 1 << 7,
            TrackerStatus::Remote => 1 << 8,
            TrackerStatus::PinQueued => 1 << 9,
            TrackerStatus::UnpinQueued => 1 << 10,
            TrackerStatus::Sharded => 1 << 11,
            TrackerStatus::UnexpectedlyUnpinned => 1 << 12,
        }
    }

    /// The wire name (`pin_error`, `pinned`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TrackerStatus::Undefined => "undefined",
            TrackerStatus::ClusterError => "cluster_error",
            TrackerStatus::PinError => "pin_error",
            TrackerStatus::UnpinError => "unpin_error",
            TrackerStatus::Pinned => "pinned",
            TrackerStatus::Pinning => "pinning",
            TrackerStatus::Unpinning => "unpinning",
            TrackerStatus::Unpinned => "unpinned",
            TrackerStatus::Remote => "remote",
            TrackerStatus::PinQueued => "pin_queued",
            TrackerStatus::UnpinQueued => "unpin_queued",
            TrackerStatus::Sharded => "sharded",
            TrackerStatus::UnexpectedlyUnpinned => "unexpectedly_unpinned",
        }
    }

    /// Whether this is one of the error statuses.
    pub fn is_error(self) -> bool {
        TrackerStatusFilter::ERROR.matches(self)
    }
}

impl fmt::Display for TrackerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that names no status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tracker status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for TrackerStatus {
    type Err = UnknownStatus;
    fn from_str(text: &str) -> Result<TrackerStatus, UnknownStatus> {
        TrackerStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_string()))
    }
}

impl Serialize for TrackerStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TrackerStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TrackerStatus, D::Error> {
        // Go decodes unknown names as `undefined`.
        let text = String::deserialize(deserializer)?;
        Ok(text.parse().unwrap_or(TrackerStatus::Undefined))
    }
}

/// A set of statuses (`?filter=pinned,error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TrackerStatusFilter(pub u32);

impl TrackerStatusFilter {
    /// No filter: everything matches.
    pub const ANY: TrackerStatusFilter = TrackerStatusFilter(0);
    /// `error` = cluster_error | pin_error | unpin_error.
    pub const ERROR: TrackerStatusFilter = TrackerStatusFilter((1 << 1) | (1 << 2) | (1 << 3));
    /// `queued` = pin_queued | unpin_queued.
    pub const QUEUED: TrackerStatusFilter = TrackerStatusFilter((1 << 9) | (1 << 10));

    /// Parses a comma list of status names and `error`/`queued`. Unknown names are ignored;
    /// a non-empty list that selects nothing is an error (Go answers 400 `invalid filter value`).
    pub fn parse(text: &str) -> Result<TrackerStatusFilter, UnknownStatus> {
        let mut mask = 0u32;
        let mut any_name = false;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            any_name = true;
            mask |= match name {
                "error" => Self::ERROR.0,
                "queued" => Self::QUEUED.0,
                other => other.parse::<TrackerStatus>().map(|s| s.flag()).unwrap_or(0),
            };
        }
        if any_name && mask == 0 {
            return Err(UnknownStatus(text.to_string()));
        }
        Ok(TrackerStatusFilter(mask))
    }

    /// Whether `status` is selected (everything is when the filter is empty).
    pub fn matches(self, status: TrackerStatus) -> bool {
        self.0 == 0 || self.0 & status.flag() != 0
    }

    /// Whether this filter selects everything.
    pub fn is_any(self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_flags_are_distinct() {
        let mut seen = 0u32;
        for status in TrackerStatus::ALL {
            assert_eq!(status.as_str().parse::<TrackerStatus>().unwrap(), status);
            assert_eq!(seen & status.flag(), 0);
            seen |= status.flag();
        }
        assert_eq!(seen, (1 << 13) - 2);
    }

    #[test]
    fn filters_parse_like_go() {
        let f = TrackerStatusFilter::parse("pinned,error").unwrap();
        assert!(f.matches(TrackerStatus::Pinned));
        assert!(f.matches(TrackerStatus::PinError));
        assert!(f.matches(TrackerStatus::ClusterError));
        assert!(!f.matches(TrackerStatus::Pinning));
        let q = TrackerStatusFilter::parse("queued").unwrap();
        assert!(q.matches(TrackerStatus::PinQueued) && q.matches(TrackerStatus::UnpinQueued));
        assert!(TrackerStatusFilter::parse("").unwrap().is_any());
        assert!(TrackerStatusFilter::parse("pinned,bogus")
            .unwrap()
            .matches(TrackerStatus::Pinned));
        assert!(TrackerStatusFilter::parse("bogus").is_err());
        assert!(TrackerStatus::UnpinError.is_error());
        assert!(!TrackerStatus::Pinned.is_error());
    }
}
