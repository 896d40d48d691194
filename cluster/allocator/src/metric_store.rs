//! [`MetricStore`]: the latest metric of each name from each member, as received (Go's
//! `monitor` keeps a window of 25; allocation reads only the latest), and the alerts raised
//! when a member's latest metric expires without a newer one (Go's `metrics.Checker`).

use std::collections::{HashMap, HashSet, VecDeque};

use cluster_types::{Alert, Metric, PeerId, Timestamp};

/// Alerts kept for `/health/alerts` (Go keeps 1000).
pub const ALERTS_KEPT: usize = 1000;

/// The free-space metric name (Go `informer/disk`, `metric_type: freespace`).
pub const FREESPACE: &str = "freespace";

/// Latest metrics by (name, member).
#[derive(Debug, Default)]
pub struct MetricStore {
    latest: HashMap<(String, PeerId), Metric>,
    /// (name, member) whose latest metric already raised its alert; cleared by a newer metric.
    alerted: HashSet<(String, PeerId)>,
    /// Raised alerts, newest first.
    alerts: VecDeque<Alert>,
}

impl MetricStore {
    /// Keeps `metric` if it is newer than what the store has from that member (by expiry).
    pub fn record(&mut self, metric: Metric) {
        let key = (metric.name.clone(), metric.peer);
        match self.latest.get(&key) {
            Some(known) if known.expire > metric.expire => {}
            _ => {
                self.alerted.remove(&key);
                self.latest.insert(key, metric);
            }
        }
    }

    /// Raises one alert for each member's latest metric that has expired at `now` since the
    /// last check (one per metric until a newer one arrives); returns the new alerts.
    pub fn check_expired(&mut self, now: Timestamp) -> Vec<Alert> {
        let mut raised: Vec<Alert> = self
            .latest
            .iter()
            .filter(|(key, metric)| metric.is_expired(now) && !self.alerted.contains(*key))
            .map(|(_, metric)| Alert {
                metric: metric.clone(),
                triggered_at: now,
            })
            .collect();
        // HashMap order is not stable: keep the alerts (and the simulator's traces) ordered.
        raised.sort_by(|a, b| (&a.metric.name, a.metric.peer).cmp(&(&b.metric.name, b.metric.peer)));
        for alert in &raised {
            self.alerted.insert((alert.metric.name.clone(), alert.metric.peer));
            self.alerts.push_front(alert.clone());
        }
        self.alerts.truncate(ALERTS_KEPT);
        raised
    }

    /// The alerts raised so far, newest first.
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts.iter().cloned().collect()
    }

    /// The latest `name` metric of `peer`, expired or not.
    pub fn latest(&self, name: &str, peer: &PeerId) -> Option<&Metric> {
        self.latest.get(&(name.to_string(), *peer))
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
        self.alerted.retain(|(_, p)| p != peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(peer: u8, value: u64, expire: i64) -> Metric {
        Metric {
            name: FREESPACE.into(),
            peer: PeerId::from_ed25519_seed([peer; 32]),
            value: value.to_string(),
            expire,
            valid: true,
            weight: value as i64,
            partitionable: false,
            received_at: 0,
        }
    }

    #[test]
    fn an_expired_metric_raises_one_alert_until_a_newer_one_arrives() {
        let now = Timestamp::now();
        let mut store = MetricStore::default();
        store.record(metric(1, 10, now.unix_nanos() + 1_000));
        store.record(metric(2, 10, now.unix_nanos() - 1));
        let raised = store.check_expired(now);
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].metric.peer, PeerId::from_ed25519_seed([2; 32]));
        assert!(store.check_expired(now).is_empty(), "one alert per expired metric");
        // A newer metric re-arms the check; its expiry raises a second alert.
        store.record(metric(2, 10, now.unix_nanos() + 5));
        assert!(store.check_expired(now).is_empty());
        let later = Timestamp::from_unix(now.unix_seconds() + 1, now.subsec_nanos());
        assert_eq!(
            store.check_expired(later).len(),
            2,
            "both members' metrics expired by then"
        );
        let alerts = store.alerts();
        assert_eq!(alerts.len(), 3);
        assert!(alerts[0].triggered_at >= alerts[2].triggered_at, "newest first");
        store.forget(&PeerId::from_ed25519_seed([2; 32]));
        assert_eq!(store.alerts().len(), 3, "past alerts stay");
    }

    #[test]
    fn keeps_the_newest_and_drops_expired_from_fresh() {
        let now = Timestamp::now();
        let at = |offset: i64| now.unix_nanos() + offset;
        let mut store = MetricStore::default();
        store.record(metric(1, 10, at(100)));
        store.record(metric(1, 5, at(50))); // older: ignored
        store.record(metric(2, 7, at(-10))); // expired
        let fresh = store.fresh(FREESPACE, now);
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].value, "10");
        assert!(store.latest(FREESPACE, &PeerId::from_ed25519_seed([2; 32])).is_some());
        store.forget(&PeerId::from_ed25519_seed([1; 32]));
        assert!(store.fresh(FREESPACE, now).is_empty());
        assert_eq!(store.names(), vec![FREESPACE.to_string()]);
    }
}
