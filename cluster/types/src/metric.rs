//! Metrics that members share (free space, pings) and alerts raised when one expires.

use serde::{Deserialize, Serialize};

use crate::{PeerId, Timestamp};

/// A metric one member publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metric {
    /// `ping`, `freespace`, `tag:group`, …
    pub name: String,
    /// The member it is about.
    pub peer: PeerId,
    /// The value, as text.
    #[serde(default)]
    pub value: String,
    /// Expiry, unix nanoseconds.
    #[serde(default)]
    pub expire: i64,
    /// Whether the value could be measured.
    #[serde(default)]
    pub valid: bool,
    /// Weight for the allocator.
    #[serde(default)]
    pub weight: i64,
    /// Whether the allocator partitions peers by its value.
    #[serde(default)]
    pub partitionable: bool,
    /// When it was received, unix nanoseconds.
    #[serde(default)]
    pub received_at: i64,
}

impl Metric {
    /// Whether the metric has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expire <= now.unix_nanos()
    }
}

/// A metric that expired, and when that was noticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The expired metric.
    #[serde(flatten)]
    pub metric: Metric,
    /// When the alert was raised.
    pub triggered_at: Timestamp,
}
