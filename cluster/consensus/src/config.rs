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
        // openraft needs heartbeat < election timeout; hashicorp raft (Go) sends heartbeats far more
        // often than its heartbeat_timeout, so send them at a fifth of it.
        let heartbeat_ms = (self.heartbeat_timeout.as_millis() as u64 / 5).max(20);
        let election_min_ms = (self.election_timeout.as_millis() as u64).max(heartbeat_ms * 3);
        let config = openraft::Config {
            cluster_name: cluster_name.to_string(),
            heartbeat_interval: heartbeat_ms,
            election_timeout_min: election_min_ms,
            election_timeout_max: election_min_ms * 2,
            install_snapshot_timeout: self.network_timeout.as_millis() as u64,
            max_in_snapshot_log_to_keep: self.trailing_logs,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_threshold.max(1)),
            ..Default::default()
        };
        config.validate().map_err(|e| e.to_string())
    }
}
