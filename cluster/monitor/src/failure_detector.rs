//! The failure detector (Go's `metrics.Checker`): a member's metric that expired without a
//! newer one raises one alert; a newer metric re-arms it. Metric expiries and `now` in, alerts
//! out: no clock, no IO.

use std::collections::{HashMap, VecDeque};

use cluster_types::{Alert, PeerId, Timestamp};

use crate::MetricStore;

/// Alerts kept for `/health/alerts` (Go keeps 1000).
pub const ALERTS_KEPT: usize = 1000;

/// Which expired metrics have alerted, and the alerts raised.
#[derive(Debug, Default)]
pub struct FailureDetector {
    /// (name, member) → the expiry of the metric that raised its alert.
    alerted: HashMap<(String, PeerId), i64>,
    /// Raised alerts, newest first.
    alerts: VecDeque<Alert>,
}

impl FailureDetector {
    /// Raises one alert for each member's latest metric in `store` that has expired at `now`
    /// and has not alerted yet; returns the new alerts, ordered by name and member.
    pub fn check(&mut self, store: &MetricStore, now: Timestamp) -> Vec<Alert> {
        let mut raised: Vec<Alert> = store
            .all_latest()
            .filter(|metric| {
                metric.is_expired(now) && self.alerted.get(&(metric.name.clone(), metric.peer)) != Some(&metric.expire)
            })
            .map(|metric| Alert {
                metric: metric.clone(),
                triggered_at: now,
            })
            .collect();
        // The store's order is not stable: keep the alerts (and the simulator's traces) ordered.
        raised.sort_by(|a, b| (&a.metric.name, a.metric.peer).cmp(&(&b.metric.name, b.metric.peer)));
        for alert in &raised {
            self.alerted
                .insert((alert.metric.name.clone(), alert.metric.peer), alert.metric.expire);
            self.alerts.push_front(alert.clone());
        }
        self.alerts.truncate(ALERTS_KEPT);
        raised
    }

    /// The alerts raised so far, newest first.
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts.iter().cloned().collect()
    }

    /// Forgets a member's alert marks (removed from the cluster); its past alerts stay listed.
    pub fn forget(&mut self, peer: &PeerId) {
        self.alerted.retain(|(_, p), _| p != peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::metric;

    fn peer(i: u8) -> PeerId {
        PeerId::from_ed25519_seed([i; 32])
    }

    #[test]
    fn each_expired_metric_alerts_once_until_a_newer_one_arrives() {
        let now = Timestamp::from_unix(1_700_000_000, 0);
        let at = |seconds: i64| Timestamp::from_unix(1_700_000_000 + seconds, 0);
        let nanos = |seconds: i64| at(seconds).unix_nanos();
        let mut store = MetricStore::default();
        let mut detector = FailureDetector::default();
        // (step: metrics received, time of the check, members alerted by that check)
        type Step = (Vec<(&'static str, u8, i64)>, i64, Vec<(&'static str, u8)>);
        let steps: Vec<Step> = vec![
            (vec![("ping", 1, 10), ("ping", 2, 0)], 0, vec![("ping", 2)]),
            (vec![], 0, vec![]),
            (vec![], 5, vec![]),
            // A newer metric re-arms: its own expiry alerts again.
            (vec![("ping", 2, 8)], 7, vec![]),
            (
                vec![("freespace", 1, 9)],
                11,
                vec![("freespace", 1), ("ping", 1), ("ping", 2)],
            ),
            // An older metric than the one kept changes nothing.
            (vec![("ping", 2, 3)], 12, vec![]),
        ];
        for (i, (received, check_at, expected)) in steps.into_iter().enumerate() {
            for (name, member, expires) in received {
                store.record(metric(name, member, "1", nanos(expires)));
            }
            let raised: Vec<(String, PeerId)> = detector
                .check(&store, at(check_at))
                .into_iter()
                .map(|alert| (alert.metric.name, alert.metric.peer))
                .collect();
            let mut expected: Vec<(String, PeerId)> =
                expected.into_iter().map(|(n, m)| (n.to_string(), peer(m))).collect();
            expected.sort();
            assert_eq!(raised, expected, "step {i}");
        }
        let alerts = detector.alerts();
        assert_eq!(alerts.len(), 4);
        assert!(alerts[0].triggered_at > alerts[3].triggered_at, "newest first");
        assert_eq!(alerts[3].triggered_at, now);
        detector.forget(&peer(2));
        assert_eq!(detector.alerts().len(), 4, "past alerts stay");
    }

    #[test]
    fn alerts_kept_are_bounded() {
        let mut store = MetricStore::default();
        let mut detector = FailureDetector::default();
        for expire in 0..(ALERTS_KEPT as i64 + 10) {
            store.record(metric("ping", 1, "1", expire));
            detector.check(&store, Timestamp::from_unix(1_700_000_000, 0));
        }
        assert_eq!(detector.alerts().len(), ALERTS_KEPT);
    }
}
