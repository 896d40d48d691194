//! [`TrackerConfig`]: how many pins run at once, how queues are sized and prioritized, and how
//! failed operations are retried. Mirrors the `pin_tracker.stateless` section of `service.json`
//! plus Rust-only knobs: two for retries, one for status listings, two for pin batches.

use std::time::Duration;

/// Settings of a [`crate::PinTracker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Pin operations sent to the daemon at once (Go `concurrent_pins`, default 10). Values
    /// below 1 are treated as 1, since zero workers would never pin anything.
    pub concurrent_pins: usize,
    /// A pin committed less than this long ago goes to the priority queue (Go
    /// `priority_pin_max_age`, default 24 h): fresh pins overtake the backlog of old repins.
    pub priority_pin_max_age: Duration,
    /// A pin tried more than this many times loses its priority (Go `priority_pin_max_retries`,
    /// default 5), so that a pin that keeps failing does not starve the others.
    pub priority_pin_max_retries: u32,
    /// Most operations waiting in the pin queues (priority and normal together), and separately
    /// in the unpin queue (Go `max_pin_queue_size`, default 1 000 000). Past it an operation goes
    /// straight to its error status.
    pub pin_queue_size_max: usize,
    /// A failed operation is retried automatically while its attempt count is below this
    /// (default 3); afterwards it stays in error until `recover`.
    pub retry_limit: u32,
    /// Wait before the first automatic retry; doubles with every attempt, capped at
    /// [`TrackerConfig::RETRY_BACKOFF_MAX`] (default 1 s).
    pub retry_backoff_base: Duration,
    /// How long the daemon listing taken for one [`crate::PinTracker::status_range`] serves the
    /// next ones (default 30 s). Pins and unpins made since the listing are known from the
    /// recent-operations log, so an older listing is still right; it costs more daemon lookups
    /// as that log rolls over, and misses pins removed on the daemon behind the cluster's back.
    /// A listing that took long (a daemon with millions of pins) also serves a stream of ranges
    /// asked within this window of each other, for up to ten times the time it took.
    pub status_listing_reuse: Duration,
    /// Most queued pins (of one depth) a worker sends to the daemon in one `pin/add` (default
    /// 64; 1 sends each alone). Under load this saves a request per pin; a daemon pins a batch
    /// one CID after the other, so a batch that fails or takes longer than
    /// [`TrackerConfig::pin_batch_timeout`] hands its pins back to the queue and pins go one at
    /// a time for a while (see [`crate::decision::pin_batch_pause`]).
    pub pin_batch_max: usize,
    /// How long a `pin/add` of several CIDs may take (default 10 s): pins of content the daemon
    /// holds take milliseconds each, content fetched from the network takes longer and is
    /// better pinned side by side.
    pub pin_batch_timeout: Duration,
}

impl TrackerConfig {
    /// The longest wait between automatic retries.
    pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(60);
    /// How long pins go one at a time after a pin batch failed.
    pub const BATCH_PAUSE_MIN: Duration = Duration::from_secs(30);
    /// The longest such pause, after several batches in a row failed.
    pub const BATCH_PAUSE_MAX: Duration = Duration::from_secs(600);
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            concurrent_pins: 10,
            priority_pin_max_age: Duration::from_secs(24 * 60 * 60),
            priority_pin_max_retries: 5,
            pin_queue_size_max: 1_000_000,
            retry_limit: 3,
            retry_backoff_base: Duration::from_secs(1),
            status_listing_reuse: Duration::from_secs(30),
            pin_batch_max: 64,
            pin_batch_timeout: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_go() {
        let config = TrackerConfig::default();
        assert_eq!(config.concurrent_pins, 10);
        assert_eq!(config.priority_pin_max_age, Duration::from_secs(86_400));
        assert_eq!(config.priority_pin_max_retries, 5);
        assert_eq!(config.pin_queue_size_max, 1_000_000);
        assert_eq!(config.retry_limit, 3);
        assert_eq!(config.retry_backoff_base, Duration::from_secs(1));
    }
}
