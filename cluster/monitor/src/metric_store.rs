//! [`MetricStore`]: the latest metric of each name from each member, as received (Go's
//! `monitor` keeps a window of 25; allocation and alerts read only the latest).

use std::collections::HashMap;

use cluster_types::{Metric, PeerId, Timestamp};

/// Latest metrics by (name, member).
#[derive(Debug, Default)]
pub struct MetricStore {
    latest: HashMap<(String, PeerId), Metric>,
}

impl MetricStore {
    /// Keeps `metric` if it is newer than what the store has from that member (by expiry).
    pub fn record(&mut self, metric: Metric) {
        let key = (metric.name.clone(), metric.peer);
        match self.latest.get(&key) {
            Some(known) if known.expire > metric.expire => {}
            _ => {
                self.latest.insert(key, metric);
            }
        }
    }

    /// The latest `name` metric of `peer`, expired or not.
    pub fn latest(&self, name: &str, peer: &PeerId) -> Option<&Metric> {
        self.latest.get(&(name.to_string(), *peer))
    }

    /// Every member's latest metric of every name, in no particular order.
    pub fn all_latest(&self) -> impl Iterator<Item = &Metric> {
        self.latest.values()
    }

    /// Every latest metric named `name` that has not expired at `now`, ordered by member.
    pub fn fresh(&self, name: &str, now: Timestamp) -> Vec<Metric> {
        let mut metrics: Vec<Metric> = self
            .latest
            .iter()
            .filter(|((n, _), m)| n == name && !m.is_expired(now))
            .map(|(_, m)| m.clone())
            .collect();
        metrics.sort_by_key(|m| m.peer);
        metrics
    }

    /// The names of every metric the store has seen, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.latest.keys().map(|(n, _)| n.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// Forgets a member (removed from the cluster).
    pub fn forget(&mut self, peer: &PeerId) {
        self.latest.retain(|(_, p), _| p != peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::metric;
    use crate::FREESPACE;

    #[test]
    fn keeps_the_newest_and_drops_expired_from_fresh() {
        let now = Timestamp::from_unix(1_700_000_000, 0);
        let at = |offset: i64| now.unix_nanos() + offset;
        let mut store = MetricStore::default();
        store.record(metric(FREESPACE, 1, "10", at(100)));
        store.record(metric(FREESPACE, 1, "5", at(50))); // older: ignored
        store.record(metric(FREESPACE, 2, "7", at(-10))); // expired
        let fresh = store.fresh(FREESPACE, now);
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].value, "10");
        assert!(store.latest(FREESPACE, &PeerId::from_ed25519_seed([2; 32])).is_some());
        store.forget(&PeerId::from_ed25519_seed([1; 32]));
        assert!(store.fresh(FREESPACE, now).is_empty());
        assert_eq!(store.names(), vec![FREESPACE.to_string()]);
    }
}
