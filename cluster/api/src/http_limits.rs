//! [`HttpLimits`]: the connection limits of the REST API and the IPFS proxy, as read from
//! `service.json` (enforced by the server's `conn_limits`, outside the simulator).

use std::time::Duration;

/// Connection limits of one HTTP server; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// `read_header_timeout` (Go default 5 s).
    pub read_header_timeout: Duration,
    /// `idle_timeout` (Go default 2 min for the REST API, 60 s for the proxy).
    pub idle_timeout: Duration,
    /// `read_timeout`; `None` for Go's `0s`.
    pub read_timeout: Option<Duration>,
    /// `write_timeout`; `None` for Go's `0s`.
    pub write_timeout: Option<Duration>,
    /// `max_header_bytes` (Go default and minimum 4096).
    pub max_header_bytes: usize,
    /// `max_connections`: connections served at once (at least 1).
    pub max_connections: usize,
}

/// Go's smallest `max_header_bytes`.
pub const MAX_HEADER_BYTES_MIN: usize = 4096;

impl HttpLimits {
    /// Go's REST API defaults, and [`default_max_connections`].
    pub fn rest_default() -> HttpLimits {
        HttpLimits {
            read_header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(120),
            read_timeout: None,
            write_timeout: None,
            max_header_bytes: MAX_HEADER_BYTES_MIN,
            max_connections: default_max_connections(),
        }
    }

    /// Go's IPFS proxy defaults, and [`default_max_connections`].
    pub fn proxy_default() -> HttpLimits {
        HttpLimits {
            idle_timeout: Duration::from_secs(60),
            ..HttpLimits::rest_default()
        }
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits::rest_default()
    }
}

/// A quarter of the process's open-file limit (soft), between 16 and 4096; 1024 where the limit
/// cannot be read. The REST API and the proxy each get this much, leaving half the descriptors
/// to the cluster's own connections, the daemon and the databases.
pub fn default_max_connections() -> usize {
    open_files_limit().map(|n| (n / 4).clamp(16, 4096)).unwrap_or(1024)
}

/// The soft `Max open files` of `/proc/self/limits` (Linux).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_follows_the_open_file_limit() {
        let cap = default_max_connections();
        assert!((16..=4096).contains(&cap), "{cap}");
        if let Some(limit) = open_files_limit() {
            assert_eq!(cap, (limit / 4).clamp(16, 4096));
        }
    }
}
