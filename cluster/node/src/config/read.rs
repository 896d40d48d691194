//! One reader per `service.json` section: each takes its defaults from its settings'
//! `Default` and names the key in every error.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use cluster_allocator::AllocatorConfig;
use cluster_api::{CorsConfig, Credentials, HttpLimits, TlsFiles, MAX_HEADER_BYTES_MIN};
use cluster_consensus::RaftConfig;
use cluster_tracker::TrackerConfig;
use cluster_types::{duration, HttpAddress};
use serde_json::Value;

use super::service::lookup;
use super::{
    validate_replication, ClusterSettings, IpfsSettings, MonitorSettings, ProxySettings, RestLibp2pHost, RestSettings,
};
use crate::NodeError;

const CLUSTER: &[&str] = &["cluster"];
pub(super) const RAFT: &[&str] = &["consensus", "raft"];
const REST: &[&str] = &["api", "restapi"];
const PROXY: &[&str] = &["api", "ipfsproxy"];
const IPFS: &[&str] = &["ipfs_connector", "ipfshttp"];
const TRACKER: &[&str] = &["pin_tracker", "stateless"];
const TAGS: &[&str] = &["informer", "tags"];
const BALANCED: &[&str] = &["allocator", "balanced"];

/// The `cluster` section.
pub(super) fn cluster(r: &Reader) -> Result<ClusterSettings, NodeError> {
    let d = ClusterSettings::default();
    let secret_hex = r.string(CLUSTER, "secret", "")?;
    let secret = if secret_hex.is_empty() {
        Vec::new()
    } else {
        let bytes =
            hex::decode(secret_hex.trim()).map_err(|e| r.error(CLUSTER, "secret", &format!("not hexadecimal: {e}")))?;
        if bytes.len() != 32 {
            return Err(r.error(
                CLUSTER,
                "secret",
                &format!("must be 32 bytes (64 hex characters), got {}", bytes.len()),
            ));
        }
        bytes
    };
    let replication_factor_min = r.i64(CLUSTER, "replication_factor_min", d.replication_factor_min.into())?;
    let replication_factor_max = r.i64(CLUSTER, "replication_factor_max", d.replication_factor_max.into())?;
    validate_replication(replication_factor_min, replication_factor_max)
        .map_err(|m| r.error(CLUSTER, "replication_factor_min", &m))?;
    Ok(ClusterSettings {
        peername: r.string(CLUSTER, "peername", &d.peername)?,
        secret,
        leave_on_shutdown: r.bool(CLUSTER, "leave_on_shutdown", d.leave_on_shutdown)?,
        listen_multiaddress: r.strings(CLUSTER, "listen_multiaddress", &as_strs(&d.listen_multiaddress))?,
        state_sync_interval: r.positive_duration(CLUSTER, "state_sync_interval", d.state_sync_interval)?,
        pin_recover_interval: r.positive_duration(CLUSTER, "pin_recover_interval", d.pin_recover_interval)?,
        replication_factor_min: replication_factor_min as i32,
        replication_factor_max: replication_factor_max as i32,
        disable_repinning: r.bool(CLUSTER, "disable_repinning", d.disable_repinning)?,
        repinning_grace_period: r.duration(CLUSTER, "repinning_grace_period", d.repinning_grace_period)?,
        repinning_rate: r.u64(CLUSTER, "repinning_rate", d.repinning_rate)?.max(1),
    })
}

/// The `consensus.raft` section's timing and log settings.
pub(super) fn raft(r: &Reader) -> Result<RaftConfig, NodeError> {
    let d = RaftConfig::default();
    let raft = RaftConfig {
        wait_for_leader_timeout: r.duration(RAFT, "wait_for_leader_timeout", d.wait_for_leader_timeout)?,
        network_timeout: r.duration(RAFT, "network_timeout", d.network_timeout)?,
        heartbeat_timeout: r.duration(RAFT, "heartbeat_timeout", d.heartbeat_timeout)?,
        election_timeout: r.duration(RAFT, "election_timeout", d.election_timeout)?,
        trailing_logs: r.u64(RAFT, "trailing_logs", d.trailing_logs)?,
        snapshot_threshold: r.u64(RAFT, "snapshot_threshold", d.snapshot_threshold)?,
        max_append_entries: r
            .u64(RAFT, "max_append_entries", d.max_append_entries as u64)?
            .clamp(1, 4096) as usize,
    };
    for (key, value) in [
        ("wait_for_leader_timeout", raft.wait_for_leader_timeout),
        ("network_timeout", raft.network_timeout),
        ("heartbeat_timeout", raft.heartbeat_timeout),
        ("election_timeout", raft.election_timeout),
    ] {
        if value.is_zero() {
            return Err(r.error(RAFT, key, "must be greater than 0"));
        }
    }
    raft.to_openraft("check")
        .map_err(|m| r.error(RAFT, "election_timeout", &m))?;
    Ok(raft)
}

/// The `api.restapi` section; `None` listen addresses when the section is absent.
pub(super) fn rest(r: &Reader, config_dir: &Path) -> Result<RestSettings, NodeError> {
    let d = RestSettings::default();
    let listen = match lookup(r.json, REST) {
        None => None,
        Some(_) => Some(r.listen(
            REST,
            "http_listen_multiaddress",
            d.listen.as_deref().unwrap_or_default(),
        )?),
    };
    Ok(RestSettings {
        listen,
        headers: rest_headers(r)?,
        credentials: rest_credentials(r)?,
        cors: rest_cors(r, &d.cors)?,
        libp2p: rest_libp2p(r)?,
        tls: rest_tls(r, config_dir)?,
        limits: http_limits(r, REST, &d.limits)?,
    })
}

/// Go's server timeouts and `max_header_bytes`, and our `max_connections`, of `section`.
fn http_limits(r: &Reader, section: &[&str], d: &HttpLimits) -> Result<HttpLimits, NodeError> {
    let optional = |d: Option<Duration>| d.unwrap_or(Duration::ZERO);
    let some = |t: Duration| (!t.is_zero()).then_some(t);
    let read_header_timeout = r.duration(section, "read_header_timeout", d.read_header_timeout)?;
    let idle_timeout = r.duration(section, "idle_timeout", d.idle_timeout)?;
    let max_header_bytes = r.u64(section, "max_header_bytes", d.max_header_bytes as u64)?;
    if max_header_bytes < MAX_HEADER_BYTES_MIN as u64 {
        return Err(r.error(
            section,
            "max_header_bytes",
            &format!("must be at least {MAX_HEADER_BYTES_MIN}"),
        ));
    }
    let max_connections = r.u64(section, "max_connections", d.max_connections as u64)?;
    if max_connections == 0 {
        return Err(r.error(section, "max_connections", "must be at least 1"));
    }
    Ok(HttpLimits {
        // Go: zero means no limit; a connection still has to send its head some day.
        read_header_timeout: some(read_header_timeout).unwrap_or(idle_timeout),
        idle_timeout: some(idle_timeout).unwrap_or(read_header_timeout),
        read_timeout: some(r.duration(section, "read_timeout", optional(d.read_timeout))?),
        write_timeout: some(r.duration(section, "write_timeout", optional(d.write_timeout))?),
        max_header_bytes: max_header_bytes.min(usize::MAX as u64) as usize,
        max_connections: max_connections.min(usize::MAX as u64) as usize,
    })
}

/// `headers`: a string or a list of strings per header (as Go's config allows).
fn rest_headers(r: &Reader) -> Result<Vec<(String, String)>, NodeError> {
    match lookup(r.json, REST).and_then(|v| v.get("headers")) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => {
            let mut headers = Vec::new();
            for (name, value) in map {
                match value {
                    Value::String(text) => headers.push((name.clone(), text.clone())),
                    Value::Array(items) => {
                        for item in items {
                            let text = item
                                .as_str()
                                .ok_or_else(|| r.error(REST, "headers", "values must be strings"))?;
                            headers.push((name.clone(), text.to_string()));
                        }
                    }
                    _ => return Err(r.error(REST, "headers", "values must be strings")),
                }
            }
            Ok(headers)
        }
        Some(_) => Err(r.error(REST, "headers", "must be an object")),
    }
}

/// `basic_auth_credentials`: users and passwords, or null for none.
fn rest_credentials(r: &Reader) -> Result<Option<Credentials>, NodeError> {
    match lookup(r.json, REST).and_then(|v| v.get("basic_auth_credentials")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) if map.is_empty() => Err(r.error(
            REST,
            "basic_auth_credentials",
            "is empty: list users and passwords, or set it to null to turn authentication off",
        )),
        Some(Value::Object(map)) => {
            let mut users = BTreeMap::new();
            for (user, password) in map {
                let password = password
                    .as_str()
                    .ok_or_else(|| r.error(REST, "basic_auth_credentials", "passwords must be strings"))?;
                users.insert(user.clone(), password.to_string());
            }
            Ok(Some(Credentials(users)))
        }
        Some(_) => Err(r.error(REST, "basic_auth_credentials", "must be an object or null")),
    }
}

/// `ssl_cert_file` and `ssl_key_file`, both or neither, relative to the configuration folder.
fn rest_tls(r: &Reader, config_dir: &Path) -> Result<Option<TlsFiles>, NodeError> {
    let cert = r.string(REST, "ssl_cert_file", "")?;
    let key = r.string(REST, "ssl_key_file", "")?;
    match (cert.is_empty(), key.is_empty()) {
        (true, true) => Ok(None),
        (false, false) => Ok(Some(TlsFiles {
            cert: config_dir.join(cert),
            key: config_dir.join(key),
        })),
        _ => Err(r.error(
            REST,
            "ssl_cert_file",
            "ssl_cert_file and ssl_key_file must be set together",
        )),
    }
}

/// `libp2p_listen_multiaddress`, `id` and `private_key`: all three or none.
fn rest_libp2p(r: &Reader) -> Result<Option<RestLibp2pHost>, NodeError> {
    let listen = r.strings(REST, "libp2p_listen_multiaddress", &[])?;
    let id = r.string(REST, "id", "")?;
    let private_key = r.string(REST, "private_key", "")?;
    match (listen.is_empty(), id.is_empty(), private_key.is_empty()) {
        (true, true, true) => Ok(None),
        (false, false, false) => {
            let keypair =
                crate::identity::keypair_of(&id, &private_key).map_err(|m| r.error(REST, "private_key", &m))?;
            let private_key = keypair
                .to_protobuf_encoding()
                .map_err(|e| r.error(REST, "private_key", &e.to_string()))?;
            Ok(Some(RestLibp2pHost { private_key, listen }))
        }
        // Go's words.
        _ => Err(r.error(
            REST,
            "libp2p_listen_multiaddress",
            "all ID, private_key and libp2p_listen_multiaddress should be set",
        )),
    }
}

/// The `cors_*` keys.
fn rest_cors(r: &Reader, d: &CorsConfig) -> Result<CorsConfig, NodeError> {
    Ok(CorsConfig {
        allowed_origins: r.strings(REST, "cors_allowed_origins", &as_strs(&d.allowed_origins))?,
        allowed_methods: r.strings(REST, "cors_allowed_methods", &as_strs(&d.allowed_methods))?,
        allowed_headers: r.strings(REST, "cors_allowed_headers", &as_strs(&d.allowed_headers))?,
        exposed_headers: r.strings(REST, "cors_exposed_headers", &as_strs(&d.exposed_headers))?,
        allow_credentials: r.bool(REST, "cors_allow_credentials", d.allow_credentials)?,
        max_age: r.duration(REST, "cors_max_age", d.max_age)?,
    })
}

/// The `ipfs_connector.ipfshttp` section.
pub(super) fn ipfs(r: &Reader) -> Result<IpfsSettings, NodeError> {
    let d = IpfsSettings::default();
    Ok(IpfsSettings {
        node_address: r.http_address(IPFS, "node_multiaddress", &d.node_address)?,
        request_timeout: r.positive_duration(IPFS, "ipfs_request_timeout", d.request_timeout)?,
        pin_timeout: r.positive_duration(IPFS, "pin_timeout", d.pin_timeout)?,
        unpin_timeout: r.positive_duration(IPFS, "unpin_timeout", d.unpin_timeout)?,
    })
}

/// The `api.ipfsproxy` section; without one, no proxy, and its daemon is the connector's.
pub(super) fn proxy(r: &Reader, ipfs: &IpfsSettings) -> Result<ProxySettings, NodeError> {
    let d = ProxySettings::default();
    let (listen, node_address) = match lookup(r.json, PROXY) {
        None => (None, ipfs.node_address.clone()),
        Some(_) => (
            Some(r.listen(PROXY, "listen_multiaddress", d.listen.as_deref().unwrap_or_default())?),
            r.http_address(PROXY, "node_multiaddress", &ipfs.node_address)?,
        ),
    };
    Ok(ProxySettings {
        listen,
        node_address,
        node_https: r.bool(PROXY, "node_https", d.node_https)?,
        extract_headers_extra: r.strings(PROXY, "extract_headers_extra", &as_strs(&d.extract_headers_extra))?,
        extract_headers_path: r.string(PROXY, "extract_headers_path", &d.extract_headers_path)?,
        extract_headers_ttl: r.duration(PROXY, "extract_headers_ttl", d.extract_headers_ttl)?,
        limits: http_limits(r, PROXY, &d.limits)?,
    })
}

/// The `pin_tracker.stateless` section, with two keys Go does not have (`pin_batch_max`,
/// `pin_batch_timeout`); the retry knobs are not in `service.json`.
pub(super) fn tracker(r: &Reader) -> Result<TrackerConfig, NodeError> {
    let d = TrackerConfig::default();
    let concurrent_pins = r.u64(TRACKER, "concurrent_pins", d.concurrent_pins as u64)?;
    if concurrent_pins == 0 {
        return Err(r.error(TRACKER, "concurrent_pins", "must be at least 1"));
    }
    let retries = r.u64(TRACKER, "priority_pin_max_retries", d.priority_pin_max_retries.into())?;
    Ok(TrackerConfig {
        concurrent_pins: concurrent_pins as usize,
        priority_pin_max_age: r.duration(TRACKER, "priority_pin_max_age", d.priority_pin_max_age)?,
        priority_pin_max_retries: retries.min(u32::MAX as u64) as u32,
        pin_queue_size_max: r
            .u64(TRACKER, "max_pin_queue_size", d.pin_queue_size_max as u64)?
            .max(1) as usize,
        pin_batch_max: r.u64(TRACKER, "pin_batch_max", d.pin_batch_max as u64)?.clamp(1, 1024) as usize,
        pin_batch_timeout: r.positive_duration(TRACKER, "pin_batch_timeout", d.pin_batch_timeout)?,
        ..d
    })
}

/// The `informer.disk`, `informer.tags`, `informer.pinqueue` and `monitor.pubsubmon` sections.
pub(super) fn monitor(r: &Reader) -> Result<MonitorSettings, NodeError> {
    let d = MonitorSettings::default();
    let tags = match lookup(r.json, TAGS).and_then(|v| v.get("tags")) {
        None => d.tags,
        Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => {
            let mut tags = BTreeMap::new();
            for (name, value) in map {
                let value = value
                    .as_str()
                    .ok_or_else(|| r.error(TAGS, "tags", "values must be strings"))?;
                tags.insert(name.clone(), value.to_string());
            }
            tags
        }
        Some(_) => return Err(r.error(TAGS, "tags", "must be an object")),
    };
    let bucket = r.u64(
        &["informer", "pinqueue"],
        "weight_bucket_size",
        d.pinqueue_weight_bucket_size,
    )?;
    Ok(MonitorSettings {
        metric_ttl: r.positive_duration(&["informer", "disk"], "metric_ttl", d.metric_ttl)?,
        check_interval: r.positive_duration(&["monitor", "pubsubmon"], "check_interval", d.check_interval)?,
        tags,
        pinqueue_weight_bucket_size: bucket.max(1),
    })
}

/// The `allocator.balanced` section. Go takes any metric name; ours publishes `freespace`,
/// `pinqueue` and `tag:*`, so another name would silently mean nothing: refused.
pub(super) fn allocator(r: &Reader) -> Result<AllocatorConfig, NodeError> {
    let d = AllocatorConfig::default();
    let allocate_by = r.strings(BALANCED, "allocate_by", &as_strs(&d.allocate_by))?;
    for name in &allocate_by {
        let known =
            matches!(name.as_str(), "freespace" | "pinqueue") || name.len() > "tag:".len() && name.starts_with("tag:");
        if !known {
            return Err(r.error(
                BALANCED,
                "allocate_by",
                &format!("{name:?} is not a metric this cluster publishes (freespace, pinqueue, tag:<name>)"),
            ));
        }
    }
    Ok(AllocatorConfig { allocate_by })
}

/// Typed access to one key, with errors that name the file and the key.
pub(super) struct Reader<'a> {
    pub(super) file: &'a str,
    pub(super) json: &'a Value,
}

impl Reader<'_> {
    pub(super) fn error(&self, section: &[&str], key: &str, message: &str) -> NodeError {
        NodeError::Config(format!("{}: {}.{key}: {message}", self.file, section.join(".")))
    }

    fn value(&self, section: &[&str], key: &str) -> Option<&Value> {
        lookup(self.json, section)
            .and_then(|s| s.get(key))
            .filter(|v| !v.is_null())
    }

    pub(super) fn string(&self, section: &[&str], key: &str, default: &str) -> Result<String, NodeError> {
        match self.value(section, key) {
            None => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.error(section, key, &format!("expected a string, found {other}"))),
        }
    }

    pub(super) fn strings(&self, section: &[&str], key: &str, default: &[&str]) -> Result<Vec<String>, NodeError> {
        match self.value(section, key) {
            None => Ok(default.iter().map(|s| s.to_string()).collect()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.error(section, key, &format!("expected strings, found {item}")))
                })
                .collect(),
            Some(other) => Err(self.error(section, key, &format!("expected a string or a list, found {other}"))),
        }
    }

    fn bool(&self, section: &[&str], key: &str, default: bool) -> Result<bool, NodeError> {
        match self.value(section, key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.error(section, key, &format!("expected true or false, found {other}"))),
        }
    }

    fn i64(&self, section: &[&str], key: &str, default: i64) -> Result<i64, NodeError> {
        match self.value(section, key) {
            None => Ok(default),
            Some(Value::Number(n)) => n
                .as_i64()
                .filter(|v| i32::try_from(*v).is_ok())
                .ok_or_else(|| self.error(section, key, &format!("expected an integer, found {n}"))),
            Some(other) => Err(self.error(section, key, &format!("expected an integer, found {other}"))),
        }
    }

    fn u64(&self, section: &[&str], key: &str, default: u64) -> Result<u64, NodeError> {
        match self.value(section, key) {
            None => Ok(default),
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| self.error(section, key, &format!("expected a non-negative integer, found {n}"))),
            Some(other) => Err(self.error(section, key, &format!("expected a non-negative integer, found {other}"))),
        }
    }

    fn duration(&self, section: &[&str], key: &str, default: Duration) -> Result<Duration, NodeError> {
        match self.value(section, key) {
            None => Ok(default),
            Some(Value::String(text)) => duration::parse(text).map_err(|_| {
                self.error(
                    section,
                    key,
                    &format!("invalid duration {text:?} (expected e.g. \"2m0s\")"),
                )
            }),
            Some(other) => Err(self.error(section, key, &format!("expected a duration string, found {other}"))),
        }
    }

    fn positive_duration(&self, section: &[&str], key: &str, default: Duration) -> Result<Duration, NodeError> {
        let value = self.duration(section, key, default)?;
        if value.is_zero() {
            return Err(self.error(section, key, "must be greater than 0"));
        }
        Ok(value)
    }

    /// Listen addresses (at least one) from `key`, or `default` when it is not set.
    fn listen(&self, section: &[&str], key: &str, default: &[HttpAddress]) -> Result<Vec<HttpAddress>, NodeError> {
        if self.value(section, key).is_none() {
            return Ok(default.to_vec());
        }
        listen_addresses(&self.strings(section, key, &[])?).map_err(|m| self.error(section, key, &m))
    }

    /// A daemon's address (`/ip4/../tcp/..` or `/unix/..`) from `key`, or `default`.
    fn http_address(&self, section: &[&str], key: &str, default: &HttpAddress) -> Result<HttpAddress, NodeError> {
        if self.value(section, key).is_none() {
            return Ok(default.clone());
        }
        HttpAddress::parse(&self.string(section, key, "")?).map_err(|m| self.error(section, key, &m))
    }
}

/// The listen multiaddresses of an HTTP endpoint; at least one.
fn listen_addresses(texts: &[String]) -> Result<Vec<HttpAddress>, String> {
    if texts.is_empty() {
        return Err("needs at least one address".into());
    }
    texts.iter().map(|text| HttpAddress::parse(text)).collect()
}

fn as_strs(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}
