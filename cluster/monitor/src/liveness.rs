//! Which members have been down long enough for their pins to move (repinning): a member whose
//! `ping` expired more than a grace period ago, or one never heard from although this member
//! has been listening for longer than a ping's lifetime plus the grace. Shorter outages (a
//! restart, a flapping link) move nothing. `now` in, members out: no clock.

use std::time::Duration;

use cluster_types::{Metric, PeerId, Timestamp};

/// The members among `members` that are down for repinning at `now`. `ping(peer)` is the
/// member's latest `ping` metric; `listening_since(peer)` is since when this member could have
/// received it; `ttl` is a ping's lifetime.
pub fn down_members<'m>(
    members: &[PeerId],
    ping: impl Fn(&PeerId) -> Option<&'m Metric>,
    now: Timestamp,
    listening_since: impl Fn(&PeerId) -> Timestamp,
    ttl: Duration,
    grace: Duration,
) -> Vec<PeerId> {
    let now = now.unix_nanos();
    let grace = nanos(grace);
    members
        .iter()
        .filter(|peer| match ping(peer) {
            Some(metric) => now.saturating_sub(metric.expire) > grace,
            None => now.saturating_sub(listening_since(peer).unix_nanos()) > nanos(ttl).saturating_add(grace),
        })
        .copied()
        .collect()
}

fn nanos(duration: Duration) -> i64 {
    duration.as_nanos().min(i64::MAX as u128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(i: u8) -> PeerId {
        PeerId::from_ed25519_seed([i; 32])
    }

    const SECOND: i64 = 1_000_000_000;

    fn ping(i: u8, expire: i64) -> Metric {
        Metric {
            name: "ping".into(),
            peer: peer(i),
            value: String::new(),
            expire,
            valid: true,
            weight: 0,
            partitionable: false,
            received_at: 0,
        }
    }

    #[test]
    fn only_a_member_silent_past_the_grace_is_down() {
        let start = Timestamp::from_unix(1_700_000_000, 0);
        let at = |seconds: i64| Timestamp::from_unix(1_700_000_000 + seconds, 0);
        let (ttl, grace) = (Duration::from_secs(30), Duration::from_secs(60));
        // (member, its ping's expiry in seconds after start or none, now in seconds, down)
        let table: [(u8, Option<i64>, i64, bool); 8] = [
            (1, Some(100), 50, false),  // alive
            (2, Some(100), 100, false), // just expired
            (3, Some(100), 160, false), // expired exactly the grace ago
            (4, Some(100), 161, true),  // past the grace
            (5, None, 90, false),       // never heard, but listening only for ttl + grace
            (6, None, 91, true),        // never heard past ttl + grace
            (7, Some(-500), 30, true),  // expired long before this member started
            (8, Some(i64::MIN / SECOND), 1, true),
        ];
        for (i, expire, now, down) in table {
            let metric = expire.map(|seconds| ping(i, start.unix_nanos().saturating_add(seconds * SECOND)));
            let found = down_members(&[peer(i)], |_| metric.as_ref(), at(now), |_| start, ttl, grace);
            assert_eq!(!found.is_empty(), down, "member {i} at {now}s");
        }
    }
}
