//! The monitor: what members know of each other's health (Go's `monitor`, `informer` and
//! `metrics.Checker`).
//!
//! Owns: building this member's metrics from what it measured ([`informers`]), the latest metric
//! of each name from each member ([`MetricStore`]), the alerts raised when one expires
//! without a newer one ([`FailureDetector`]), and which members are down long enough for
//! their pins to move ([`down_members`]); [`Monitor`] keeps the store and the detector. Sans-IO:
//! `now` is passed in, so every rule is table-tested without clocks. Does not own: measuring,
//! the publish and check loops, or sending metrics to other members (cluster-node runs those).
#![deny(missing_docs)]

mod failure_detector;
pub mod informers;
mod liveness;
mod metric_store;

pub use failure_detector::{FailureDetector, ALERTS_KEPT};
pub use informers::{FREESPACE, PING, PINQUEUE};
pub use liveness::down_members;
pub use metric_store::MetricStore;

use cluster_types::{Alert, Metric, PeerId, Timestamp};

/// The metrics a member has received and the alerts they raised.
#[derive(Debug, Default)]
pub struct Monitor {
    store: MetricStore,
    detector: FailureDetector,
}

impl Monitor {
    /// Keeps `metric` if it is newer than what is known from that member.
    pub fn record(&mut self, metric: Metric) {
        self.store.record(metric);
    }

    /// Raises the alerts of metrics expired at `now`; see [`FailureDetector::check`].
    pub fn check_expired(&mut self, now: Timestamp) -> Vec<Alert> {
        self.detector.check(&self.store, now)
    }

    /// The alerts raised so far, newest first.
    pub fn alerts(&self) -> Vec<Alert> {
        self.detector.alerts()
    }

    /// The latest `name` metric of `peer`, expired or not.
    pub fn latest(&self, name: &str, peer: &PeerId) -> Option<&Metric> {
        self.store.latest(name, peer)
    }

    /// Every latest metric named `name` that has not expired at `now`, ordered by member.
    pub fn fresh(&self, name: &str, now: Timestamp) -> Vec<Metric> {
        self.store.fresh(name, now)
    }

    /// The names of every metric received, sorted.
    pub fn names(&self) -> Vec<String> {
        self.store.names()
    }

    /// Forgets a member (removed from the cluster); its past alerts stay listed.
    pub fn forget(&mut self, peer: &PeerId) {
        self.store.forget(peer);
        self.detector.forget(peer);
    }
}

#[cfg(test)]
mod testing {
    use cluster_types::{Metric, PeerId};

    /// A metric named `name` from member `member` (its key seed) expiring at `expire` (unix nanos).
    pub fn metric(name: &str, member: u8, value: &str, expire: i64) -> Metric {
        Metric {
            name: name.into(),
            peer: PeerId::from_ed25519_seed([member; 32]),
            value: value.into(),
            expire,
            valid: true,
            weight: 0,
            partitionable: false,
            received_at: 0,
        }
    }
}
