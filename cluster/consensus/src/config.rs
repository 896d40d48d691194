//! The `consensus.raft` section of `service.json` (reference §3.3), resolved.

use std::time::Duration;

/// Raft timing and compaction settings. Names follow the Go keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    /// How long a write waits for a leader before failing (`wait_for_leader_timeout`).
    pub wait_for_leader_timeout: Duration,
    /// Deadline of one inter-member Raft call (`network_timeout`).
    pub network_timeout: Duration,
    /// Leader heartbeat period (`heartbeat_timeout`; openraft sends heartbeats at this period).
    pub heartbeat_timeout: Duration,
    /// Minimum follower election timeout (`election_timeout`; the maximum is twice it).
    pub election_timeout: Duration,
    /// Log entries kept after a snapshot (`trailing_logs`).
    pub trailing_logs: u64,
    /// Entries since the last snapshot that trigger a new one (`snapshot_threshold`).
    pub snapshot_threshold: u64,
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
        }
    }
}

impl RaftConfig {
    /// The openraft configuration these settings give.
    pub fn to_openraft(&self, cluster_name: &str) -> Result<openraft::Config, String> {
        // hashicorp raft (Go) sends heartbeats far more often than its heartbeat_timeout; send
        // them at a tenth of it.
        let heartbeat_ms = (self.heartbeat_timeout.as_millis() as u64 / 10).max(20);
        // A follower of openraft 0.9 starts an election only after the leader lease
        // (= election_timeout_max) plus a random timeout in [min, max) have passed without news
        // from the leader. Go's follower waits election_timeout to twice it. Half and three
        // quarters of election_timeout make the whole wait 1.25 to 1.5 times it: leader loss to
        // a new leader stays under 2 s with Go's default of 1 s.
        let election_min_ms = (self.election_timeout.as_millis() as u64 / 2).max(heartbeat_ms * 3);
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
