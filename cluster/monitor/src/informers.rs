//! The metrics a member publishes about itself (Go's informers), built from what was measured:
//! `freespace` from the daemon's repository, `ping` (alive), one `tag:<name>` per configured
//! tag, and `pinqueue`. The caller measures and passes `now`; nothing here reads a clock.

use std::collections::BTreeMap;
use std::time::Duration;

use cluster_types::{IpfsId, Metric, PeerId, Timestamp};

/// The free-space metric name (Go `informer/disk`, `metric_type: freespace`).
pub const FREESPACE: &str = "freespace";
/// The liveness metric name (Go's `ping`).
pub const PING: &str = "ping";
/// The pin-queue metric name (Go `informer/pinqueue`).
pub const PINQUEUE: &str = "pinqueue";
/// The prefix of tag metric names (Go `informer/tags`).
pub const TAG_PREFIX: &str = "tag:";

/// Who measured, when, and for how long a metric stays valid.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// The member the metric is about.
    pub peer: PeerId,
    /// When it was measured.
    pub now: Timestamp,
    /// How long it stays valid (`monitor.metric_ttl`).
    pub ttl: Duration,
}

impl Measured {
    /// A valid metric measured now and expiring after `ttl`.
    pub fn metric(&self, name: String, value: String, weight: i64, partitionable: bool) -> Metric {
        Metric {
            name,
            peer: self.peer,
            value,
            expire: self.now.add(self.ttl).unix_nanos(),
            valid: true,
            weight,
            partitionable,
            received_at: self.now.unix_nanos(),
        }
    }
}

/// Free bytes of the daemon's repository; not valid (not a candidate for pins) when full.
pub fn freespace(measured: &Measured, repo_size: u64, storage_max: u64) -> Metric {
    let free = storage_max.saturating_sub(repo_size);
    let mut metric = measured.metric(
        FREESPACE.into(),
        free.to_string(),
        free.min(i64::MAX as u64) as i64,
        false,
    );
    metric.valid = free > 0;
    metric
}

/// The member is alive: its name and, once known, its daemon's identity.
pub fn ping(measured: &Measured, peername: &str, ipfs: Option<&IpfsId>) -> Metric {
    let mut value = serde_json::json!({ "peer_name": peername });
    if let Some(ipfs) = ipfs {
        value["ipfs_id"] = ipfs.id.clone().into();
        value["ipfs_addresses"] = ipfs.addresses.clone().into();
    }
    measured.metric(PING.into(), value.to_string(), 0, false)
}

/// One `tag:<name>` metric per configured tag.
pub fn tags(measured: &Measured, tags: &BTreeMap<String, String>) -> Vec<Metric> {
    tags.iter()
        .map(|(name, value)| measured.metric(format!("{TAG_PREFIX}{name}"), value.clone(), 0, true))
        .collect()
}

/// Items waiting in the pin queue; the weight drops by one per `bucket_size` items, so the
/// allocator can prefer members with shorter queues.
pub fn pinqueue(measured: &Measured, queued: u64, bucket_size: u64) -> Metric {
    let weight = -((queued / bucket_size.max(1)) as i64);
    measured.metric(PINQUEUE.into(), queued.to_string(), weight, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured() -> Measured {
        Measured {
            peer: PeerId::from_ed25519_seed([1; 32]),
            now: Timestamp::from_unix(1_700_000_000, 500),
            ttl: Duration::from_secs(30),
        }
    }

    #[test]
    fn metrics_expire_one_ttl_after_they_were_measured() {
        let m = measured();
        let metric = m.metric("x".into(), "1".into(), 3, true);
        assert_eq!(metric.received_at, m.now.unix_nanos());
        assert_eq!(metric.expire, m.now.unix_nanos() + 30_000_000_000);
        assert!(!metric.is_expired(m.now));
        assert!(metric.is_expired(Timestamp::from_unix(1_700_000_030, 500)));
        assert_eq!(
            (metric.peer, metric.weight, metric.partitionable, metric.valid),
            (m.peer, 3, true, true)
        );
    }

    #[test]
    fn free_space_is_what_the_repository_has_left() {
        // (repo size, storage max, value, weight, valid)
        let table = [
            (100u64, 1_000u64, "900", 900i64, true),
            (1_000, 1_000, "0", 0, false),
            (2_000, 1_000, "0", 0, false),
            (0, u64::MAX, "18446744073709551615", i64::MAX, true),
        ];
        for (size, max, value, weight, valid) in table {
            let metric = freespace(&measured(), size, max);
            assert_eq!(metric.name, FREESPACE);
            assert_eq!(
                (metric.value.as_str(), metric.weight, metric.valid),
                (value, weight, valid),
                "{size}/{max}"
            );
        }
    }

    #[test]
    fn ping_names_the_member_and_its_daemon_once_known() {
        let before = ping(&measured(), "alpha", None);
        assert_eq!(before.name, PING);
        assert_eq!(before.value, r#"{"peer_name":"alpha"}"#);
        let ipfs = IpfsId {
            id: "12D3KooWDaemon".into(),
            addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            ..IpfsId::default()
        };
        let after: serde_json::Value = serde_json::from_str(&ping(&measured(), "alpha", Some(&ipfs)).value).unwrap();
        assert_eq!(after["ipfs_id"], "12D3KooWDaemon");
        assert_eq!(after["ipfs_addresses"][0], "/ip4/127.0.0.1/tcp/4001");
    }

    #[test]
    fn tags_and_queue_weights() {
        let tags = tags(
            &measured(),
            &BTreeMap::from([
                ("region".to_string(), "eu".to_string()),
                ("tier".to_string(), "a".to_string()),
            ]),
        );
        let names: Vec<(&str, &str, bool)> = tags
            .iter()
            .map(|m| (m.name.as_str(), m.value.as_str(), m.partitionable))
            .collect();
        assert_eq!(names, vec![("tag:region", "eu", true), ("tag:tier", "a", true)]);
        // (queued, bucket size, weight)
        for (queued, bucket, weight) in [
            (0u64, 100u64, 0i64),
            (99, 100, 0),
            (100, 100, -1),
            (250, 100, -2),
            (5, 0, -5),
        ] {
            let metric = pinqueue(&measured(), queued, bucket);
            assert_eq!(
                (metric.value.clone(), metric.weight),
                (queued.to_string(), weight),
                "{queued}/{bucket}"
            );
        }
    }
}
