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
    /// When each member was last forgotten.
    forgotten: std::collections::HashMap<PeerId, Timestamp>,
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

    /// Forgets a member (removed from the cluster, or joining again) at `now`; its past alerts
    /// stay listed.
    pub fn forget(&mut self, peer: &PeerId, now: Timestamp) {
        self.store.forget(peer);
        self.detector.forget(peer);
        self.forgotten.insert(*peer, now);
    }

    /// Since when metrics of `peer` could have arrived: `started` (when this member began to
    /// listen), or when `peer` was last forgotten if later. A member forgotten as it joins again
    /// is not "never heard from" from this member's start.
    pub fn listening_to_since(&self, peer: &PeerId, started: Timestamp) -> Timestamp {
        match self.forgotten.get(peer) {
            Some(at) if *at > started => *at,
            _ => started,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_forgotten_as_it_joins_again_is_heard_from_since_then() {
        let peer = PeerId::from_ed25519_seed([3; 32]);
        let other = PeerId::from_ed25519_seed([4; 32]);
        let (started, rejoined) = (Timestamp::from_unix(100, 0), Timestamp::from_unix(500, 0));
        let mut monitor = Monitor::default();
        assert_eq!(monitor.listening_to_since(&peer, started), started);
        monitor.forget(&peer, rejoined);
        assert_eq!(monitor.listening_to_since(&peer, started), rejoined);
        assert_eq!(monitor.listening_to_since(&other, started), started);
        // Forgotten before this member started listening: its start counts.
        assert_eq!(
            monitor.listening_to_since(&peer, Timestamp::from_unix(900, 0)),
            Timestamp::from_unix(900, 0)
        );
    }
}
