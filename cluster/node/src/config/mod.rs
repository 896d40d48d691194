//! The member's configuration. `service.json` is read in two stages: [`ServiceConfig`] is the
//! raw JSON (Go's sections and keys, reference §3.3) with `CLUSTER_*` environment overrides
//! applied (module `service`); [`ServiceConfig::validate`] reads each section with a function of
//! its own (module `read`) into a [`NodeConfig`]: one settings struct per component, each
//! default in exactly one `Default`. Every error names the file and the key. Keys we do not use
//! (yet) are kept and reported as warnings, never as errors, so a Go deployment's file loads.

mod go_defaults;
mod read;
mod service;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use cluster_allocator::AllocatorConfig;
use cluster_api::{CorsConfig, Credentials, HttpLimits, TlsFiles};
use cluster_consensus::RaftConfig;
use cluster_tracker::TrackerConfig;
use cluster_types::HttpAddress;

pub use service::ServiceConfig;

/// The resolved configuration of one member, a section per component.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// The member itself (`cluster`).
    pub cluster: ClusterSettings,
    /// Raft settings (`consensus.raft`).
    pub raft: RaftConfig,
    /// Members of a new cluster (multiaddrs with /p2p/), empty for a cluster of one
    /// (`consensus.raft.init_peerset`).
    pub init_peerset: Vec<String>,
    /// The REST API (`api.restapi`).
    pub rest: RestSettings,
    /// The IPFS proxy (`api.ipfsproxy`).
    pub proxy: ProxySettings,
    /// The IPFS daemon (`ipfs_connector.ipfshttp`).
    pub ipfs: IpfsSettings,
    /// The pin tracker (`pin_tracker.stateless`).
    pub tracker: TrackerConfig,
    /// Metrics and alerts (`informer.*`, `monitor.pubsubmon`).
    pub monitor: MonitorSettings,
    /// Where pins go (`allocator.balanced`).
    pub allocator: AllocatorConfig,
}

/// The `cluster` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// Human-readable member name.
    pub peername: String,
    /// The cluster secret (32 bytes), empty for none.
    pub secret: Vec<u8>,
    /// Leave the cluster on clean shutdown.
    pub leave_on_shutdown: bool,
    /// Cluster (libp2p) listen addresses.
    pub listen_multiaddress: Vec<String>,
    /// How often to reconcile the state with the IPFS daemon.
    pub state_sync_interval: Duration,
    /// How often to retry failed pins and unpins.
    pub pin_recover_interval: Duration,
    /// Default minimum replication (-1 everywhere).
    pub replication_factor_min: i32,
    /// Default maximum replication (-1 everywhere).
    pub replication_factor_max: i32,
    /// Whether pins of a member down past the grace stay where they are (Go's default is
    /// true; `init` writes false).
    pub disable_repinning: bool,
    /// How long a member's `ping` must have been expired before its pins move elsewhere: a
    /// member back within it (a restart, a flapping link) keeps them.
    pub repinning_grace_period: Duration,
    /// At most this many pins re-allocated per second (repinning and allocation repair), so
    /// that losing a member with a million pins floods neither Raft nor the daemons.
    pub repinning_rate: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            peername: String::new(),
            secret: Vec::new(),
            leave_on_shutdown: false,
            listen_multiaddress: vec!["/ip4/0.0.0.0/tcp/9096".into()],
            state_sync_interval: Duration::from_secs(300),
            pin_recover_interval: Duration::from_secs(720),
            replication_factor_min: -1,
            replication_factor_max: -1,
            disable_repinning: false,
            repinning_grace_period: Duration::from_secs(60),
            repinning_rate: 1000,
        }
    }
}

/// The `api.restapi` section.
#[derive(Debug, Clone, PartialEq)]
pub struct RestSettings {
    /// Listen addresses (TCP or Unix sockets), `None` when the section is absent.
    pub listen: Option<Vec<HttpAddress>>,
    /// Extra headers on every response.
    pub headers: Vec<(String, String)>,
    /// `basic_auth_credentials`: users and passwords, `None` for no authentication.
    pub credentials: Option<Credentials>,
    /// The `cors_*` keys.
    pub cors: CorsConfig,
    /// `libp2p_listen_multiaddress`, `id` and `private_key`: the API's libp2p endpoint gets a
    /// host of its own; `None` serves it on the cluster host.
    pub libp2p: Option<RestLibp2pHost>,
    /// `ssl_cert_file` and `ssl_key_file`, resolved against the configuration folder: the API
    /// serves HTTPS.
    pub tls: Option<TlsFiles>,
    /// `read_header_timeout`, `idle_timeout`, `read_timeout`, `write_timeout`,
    /// `max_header_bytes` and `max_connections`.
    pub limits: HttpLimits,
}

impl Default for RestSettings {
    fn default() -> Self {
        RestSettings {
            listen: Some(vec![HttpAddress::Tcp("127.0.0.1:9094".into())]),
            headers: Vec::new(),
            credentials: None,
            cors: CorsConfig::default(),
            libp2p: None,
            tls: None,
            limits: HttpLimits::rest_default(),
        }
    }
}

/// The REST API's own libp2p host.
#[derive(Clone, PartialEq, Eq)]
pub struct RestLibp2pHost {
    /// The host's private key, libp2p's protobuf encoding (checked against `id`).
    pub private_key: Vec<u8>,
    /// Where it listens.
    pub listen: Vec<String>,
}

impl std::fmt::Debug for RestLibp2pHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        write!(f, "RestLibp2pHost({:?})", self.listen)
    }
}

/// The `api.ipfsproxy` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySettings {
    /// Listen addresses (TCP or Unix sockets), `None` when the section is absent.
    pub listen: Option<Vec<HttpAddress>>,
    /// The daemon it forwards to (`node_multiaddress`; the connector's daemon when not set).
    pub node_address: HttpAddress,
    /// Whether it speaks HTTPS to the daemon (`node_https`).
    pub node_https: bool,
    /// Headers it copies from the daemon besides `Access-Control-Expose-Headers`.
    pub extract_headers_extra: Vec<String>,
    /// Where it reads them (`extract_headers_path`).
    pub extract_headers_path: String,
    /// How long it keeps them (`extract_headers_ttl`, zero = forever).
    pub extract_headers_ttl: Duration,
    /// The server timeouts, `max_header_bytes` and `max_connections`.
    pub limits: HttpLimits,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            listen: Some(vec![HttpAddress::Tcp("127.0.0.1:9095".into())]),
            node_address: IpfsSettings::default().node_address,
            node_https: false,
            extract_headers_extra: Vec::new(),
            extract_headers_path: "/api/v0/version".into(),
            extract_headers_ttl: Duration::from_secs(300),
            limits: HttpLimits::proxy_default(),
        }
    }
}

/// The `ipfs_connector.ipfshttp` section.
#[derive(Debug, Clone, PartialEq)]
pub struct IpfsSettings {
    /// The daemon's RPC address: `host:port` or a Unix socket.
    pub node_address: HttpAddress,
    /// Deadline of an ordinary call.
    pub request_timeout: Duration,
    /// A pin fails when it makes no progress for this long.
    pub pin_timeout: Duration,
    /// Deadline of an unpin.
    pub unpin_timeout: Duration,
}

impl Default for IpfsSettings {
    fn default() -> Self {
        IpfsSettings {
            node_address: HttpAddress::Tcp("127.0.0.1:5001".into()),
            request_timeout: Duration::from_secs(300),
            pin_timeout: Duration::from_secs(120),
            unpin_timeout: Duration::from_secs(3 * 3600),
        }
    }
}

/// The `informer.*` and `monitor.pubsubmon` sections.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSettings {
    /// How long a member's metrics stay valid (`informer.disk.metric_ttl`); members publish
    /// them every half of it.
    pub metric_ttl: Duration,
    /// How often expired metrics are turned into alerts (`monitor.pubsubmon.check_interval`).
    pub check_interval: Duration,
    /// This member's tags (`informer.tags.tags`), published as `tag:<name>` metrics.
    pub tags: BTreeMap<String, String>,
    /// `informer.pinqueue.weight_bucket_size`: queued pins per weight step.
    pub pinqueue_weight_bucket_size: u64,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            metric_ttl: Duration::from_secs(30),
            check_interval: Duration::from_secs(15),
            tags: BTreeMap::from([("group".to_string(), "default".to_string())]),
            pinqueue_weight_bucket_size: 100_000,
        }
    }
}

/// Checks a replication pair as Go does: both -1, or 1 <= min <= max.
pub fn validate_replication(min: i64, max: i64) -> Result<(), String> {
    if min == 0 || max == 0 {
        return Err(format!(
            "replication factors must not be 0 (min {min}, max {max}); use -1 for everywhere"
        ));
    }
    if min < -1 || max < -1 {
        return Err(format!(
            "replication factors must be -1 or positive (min {min}, max {max})"
        ));
    }
    if (min == -1) != (max == -1) {
        return Err(format!(
            "replication factors must both be -1 or both be positive (min {min}, max {max})"
        ));
    }
    if min > max {
        return Err(format!(
            "replication_factor_min ({min}) is larger than replication_factor_max ({max})"
        ));
    }
    Ok(())
}
