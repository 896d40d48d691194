//! The `consensus.raft` section of `service.json` (reference §3.3), resolved.

use std::time::Duration;

/// The shortest heartbeat period and AppendEntries deadline we configure.
const HEARTBEAT_MS_MIN: u64 = 50;

/// Raft timing and compaction settings. Names follow the Go keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    /// How long a write waits for a leader before failing (`wait_for_leader_timeout`).
    pub wait_for_leader_timeout: Duration,
    /// Deadline of one inter-member Raft call (`network_timeout`).
    pub network_timeout: Duration,
    /// Go's `heartbeat_timeout`; openraft sends heartbeats at a quarter of it, which is also
    /// the deadline of each AppendEntries.
    pub heartbeat_timeout: Duration,
    /// Minimum follower election timeout (`election_timeout`; the maximum is twice it).
    pub election_timeout: Duration,
    /// Log entries kept after a snapshot (`trailing_logs`).
    pub trailing_logs: u64,
    /// Entries since the last snapshot that trigger a new one (`snapshot_threshold`).
    pub snapshot_threshold: u64,
    /// Writes that arrive together on the leader share one log entry, at most this many
    /// (`max_append_entries`, as Go's Raft batches its applies); 1 commits each on its own.
    pub max_append_entries: usize,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            wait_for_leader_timeout: Duration::from_secs(15),
            network_timeout: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(1),
            election_timeout: Duration::from_secs(1),
            trailing_logs: 10_240,
            snapshot_threshold: 8_192,
            max_append_entries: 64,
        }
    }
}

impl RaftConfig {
    /// The openraft configuration these settings give.
    pub fn to_openraft(&self, cluster_name: &str) -> Result<openraft::Config, String> {
        // openraft 0.9 uses its heartbeat interval twice: as the period of heartbeats and as
        // the deadline of every AppendEntries, entries and the follower's fsync included. A
        // tenth of Go's heartbeat_timeout (100 ms) was within scheduling and fsync noise on a
        // loaded host: healthy members logged "no answer within 100ms". A quarter (250 ms by
        // default) sits well above that noise and below the election timeout.
        let heartbeat_ms = (self.heartbeat_timeout.as_millis() as u64 / 4).max(HEARTBEAT_MS_MIN);
        // A follower of openraft 0.9 starts an election only after the leader lease
        // (= election_timeout_max) plus a random timeout in [min, max) have passed without news
        // from the leader, five heartbeats or more. Go's follower waits election_timeout to
        // twice it. Half and three quarters of election_timeout make the whole wait 1.25 to 1.5
        // times it: leader loss to a new leader stays under 2 s with Go's default of 1 s.
        let election_min_ms = (self.election_timeout.as_millis() as u64 / 2).max(heartbeat_ms * 2);
        let election_max_ms = (election_min_ms * 3 / 2).max(election_min_ms + 1);
        let config = openraft::Config {
            cluster_name: cluster_name.to_string(),
            heartbeat_interval: heartbeat_ms,
            election_timeout_min: election_min_ms,
            election_timeout_max: election_max_ms,
            install_snapshot_timeout: self.network_timeout.as_millis() as u64,
            max_in_snapshot_log_to_keep: self.trailing_logs,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_threshold.max(1)),
            ..Default::default()
        };
        config.validate().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_entries_deadline_sits_above_noise_and_below_elections() {
        // (heartbeat_timeout, election_timeout) -> (heartbeat = AppendEntries deadline, min, max)
        let table = [
            ((1000, 1000), (250, 500, 750)),
            ((2000, 5000), (500, 2500, 3750)),
            ((1000, 200), (250, 500, 750)),
            ((100, 100), (50, 100, 150)),
        ];
        for ((heartbeat_timeout, election_timeout), (heartbeat, min, max)) in table {
            let config = RaftConfig {
                heartbeat_timeout: Duration::from_millis(heartbeat_timeout),
                election_timeout: Duration::from_millis(election_timeout),
                ..RaftConfig::default()
            }
            .to_openraft("test")
            .unwrap();
            let got = (
                config.heartbeat_interval,
                config.election_timeout_min,
                config.election_timeout_max,
            );
            assert_eq!(
                got,
                (heartbeat, min, max),
                "{heartbeat_timeout} ms, {election_timeout} ms"
            );
            assert!(config.heartbeat_interval < config.election_timeout_min);
        }
        let defaults = RaftConfig::default().to_openraft("test").unwrap();
        assert!(
            defaults.heartbeat_interval >= 250,
            "well above scheduling and fsync noise"
        );
    }
}
