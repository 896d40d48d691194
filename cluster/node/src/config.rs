//! `service.json`, in two stages: [`ServiceConfig`] is the raw JSON (Go's sections and keys,
//! reference §3.3) with `CLUSTER_*` environment overrides applied; [`ServiceConfig::validate`]
//! turns it into a [`NodeConfig`] that builds the components. Every error names the file and
//! the key. Keys we do not use (yet) are kept and reported as warnings, never as errors, so a
//! Go deployment's file loads.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use cluster_api::{CorsConfig, Credentials, TlsFiles};
use cluster_consensus::RaftConfig;
use cluster_types::{duration, HttpAddress};
use serde_json::{json, Map, Value};

use crate::NodeError;

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

/// The resolved configuration of one member.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
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
    /// Whether pins of a dead member stay where they are.
    pub disable_repinning: bool,
    /// Raft settings.
    pub raft: RaftConfig,
    /// Members of a new cluster (multiaddrs with /p2p/), empty for a cluster of one.
    pub init_peerset: Vec<String>,
    /// REST API listen addresses (TCP or Unix sockets), `None` when the `api.restapi` section is
    /// absent.
    pub rest_listen: Option<Vec<HttpAddress>>,
    /// Extra headers on every REST response.
    pub rest_headers: Vec<(String, String)>,
    /// `basic_auth_credentials`: users and passwords, `None` for no authentication.
    pub rest_credentials: Option<Credentials>,
    /// The REST API's `cors_*` keys.
    pub rest_cors: CorsConfig,
    /// `libp2p_listen_multiaddress`, `id` and `private_key`: the REST API's libp2p endpoint
    /// gets a host of its own; `None` serves it on the cluster host.
    pub rest_libp2p: Option<RestLibp2pHost>,
    /// `ssl_cert_file` and `ssl_key_file`, resolved against the configuration folder: the REST
    /// API serves HTTPS.
    pub rest_tls: Option<TlsFiles>,
    /// IPFS proxy listen addresses (TCP or Unix sockets), `None` when the `api.ipfsproxy`
    /// section is absent.
    pub proxy_listen: Option<Vec<HttpAddress>>,
    /// The daemon the proxy forwards to (`api.ipfsproxy.node_multiaddress`): `host:port` or a
    /// Unix socket.
    pub proxy_node_address: HttpAddress,
    /// Whether the proxy speaks HTTPS to the daemon (`api.ipfsproxy.node_https`).
    pub proxy_node_https: bool,
    /// Headers the proxy copies from the daemon besides `Access-Control-Expose-Headers`.
    pub proxy_extract_headers_extra: Vec<String>,
    /// Where the proxy reads them (`extract_headers_path`).
    pub proxy_extract_headers_path: String,
    /// How long it keeps them (`extract_headers_ttl`, zero = forever).
    pub proxy_extract_headers_ttl: Duration,
    /// IPFS daemon RPC address: `host:port` or a Unix socket.
    pub ipfs_node_address: HttpAddress,
    /// Deadline of an ordinary IPFS call.
    pub ipfs_request_timeout: Duration,
    /// A pin fails when it makes no progress for this long.
    pub ipfs_pin_timeout: Duration,
    /// Deadline of an unpin.
    pub ipfs_unpin_timeout: Duration,
    /// Pins the tracker runs at once.
    pub concurrent_pins: usize,
    /// Pins younger than this go to the priority queue.
    pub priority_pin_max_age: Duration,
    /// Pins retried more than this lose priority.
    pub priority_pin_max_retries: u32,
    /// Operation queue bound.
    pub pin_queue_size_max: usize,
    /// How long a member's free-space metric stays valid (`informer.disk.metric_ttl`); members
    /// publish it every half of it.
    pub metric_ttl: Duration,
    /// How often expired metrics are turned into alerts (`monitor.pubsubmon.check_interval`).
    pub monitor_check_interval: Duration,
    /// This member's tags (`informer.tags.tags`), published as `tag:<name>` metrics.
    pub tags: BTreeMap<String, String>,
    /// `informer.pinqueue.weight_bucket_size`: queued pins per weight step.
    pub pinqueue_weight_bucket_size: u64,
}

/// Keys of each section that we read, and Go keys that we accept but do not use yet.
struct SectionKeys {
    path: &'static [&'static str],
    env_prefix: &'static str,
    used: &'static [&'static str],
    go_only: &'static [&'static str],
}

const SECTIONS: &[SectionKeys] = &[
    SectionKeys {
        path: &["cluster"],
        env_prefix: "CLUSTER_",
        used: &[
            "peername",
            "secret",
            "leave_on_shutdown",
            "listen_multiaddress",
            "state_sync_interval",
            "pin_recover_interval",
            "replication_factor_min",
            "replication_factor_max",
            "disable_repinning",
        ],
        go_only: &[
            "id",
            "private_key",
            "announce_multiaddress",
            "no_announce_multiaddress",
            "enable_relay_hop",
            "connection_manager",
            "resource_manager",
            "pubsub",
            "dial_peer_timeout",
            "monitor_ping_interval",
            "peer_watch_interval",
            "mdns_interval",
            "pin_only_on_trusted_peers",
            "pin_only_on_untrusted_peers",
            "follower_mode",
            "peerstore_file",
            "peer_addresses",
        ],
    },
    SectionKeys {
        path: &["consensus", "raft"],
        env_prefix: "CLUSTER_RAFT_",
        used: &[
            "init_peerset",
            "wait_for_leader_timeout",
            "network_timeout",
            "heartbeat_timeout",
            "election_timeout",
            "trailing_logs",
            "snapshot_threshold",
        ],
        go_only: &[
            "commit_retries",
            "commit_retry_delay",
            "backups_rotate",
            "commit_timeout",
            "max_append_entries",
            "snapshot_interval",
            "leader_lease_timeout",
            "data_folder",
            "datastore_namespace",
        ],
    },
    SectionKeys {
        path: &["api", "restapi"],
        env_prefix: "CLUSTER_RESTAPI_",
        used: &[
            "http_listen_multiaddress",
            "headers",
            "basic_auth_credentials",
            "cors_allowed_origins",
            "cors_allowed_methods",
            "cors_allowed_headers",
            "cors_exposed_headers",
            "cors_allow_credentials",
            "cors_max_age",
            "ssl_cert_file",
            "ssl_key_file",
            "libp2p_listen_multiaddress",
            "id",
            "private_key",
        ],
        go_only: &[
            "read_timeout",
            "read_header_timeout",
            "write_timeout",
            "idle_timeout",
            "max_header_bytes",
            "http_log_file",
        ],
    },
    SectionKeys {
        path: &["api", "ipfsproxy"],
        env_prefix: "CLUSTER_IPFSPROXY_",
        used: &[
            "listen_multiaddress",
            "node_multiaddress",
            "extract_headers_extra",
            "extract_headers_path",
            "extract_headers_ttl",
            "node_https",
        ],
        go_only: &[
            "log_file",
            "read_timeout",
            "read_header_timeout",
            "write_timeout",
            "idle_timeout",
            "max_header_bytes",
        ],
    },
    SectionKeys {
        path: &["ipfs_connector", "ipfshttp"],
        env_prefix: "CLUSTER_IPFSHTTP_",
        used: &[
            "node_multiaddress",
            "ipfs_request_timeout",
            "pin_timeout",
            "unpin_timeout",
        ],
        go_only: &[
            "connect_swarms_delay",
            "repogc_timeout",
            "informer_trigger_interval",
            "unpin_disable",
        ],
    },
    SectionKeys {
        path: &["monitor", "pubsubmon"],
        env_prefix: "CLUSTER_PUBSUBMON_",
        used: &["check_interval"],
        go_only: &[],
    },
    SectionKeys {
        path: &["informer", "tags"],
        env_prefix: "CLUSTER_TAGS_",
        used: &["tags"],
        go_only: &["metric_ttl"],
    },
    SectionKeys {
        path: &["informer", "pinqueue"],
        env_prefix: "CLUSTER_PINQUEUE_",
        used: &["weight_bucket_size"],
        go_only: &["metric_ttl"],
    },
    SectionKeys {
        path: &["informer", "disk"],
        env_prefix: "CLUSTER_DISK_",
        used: &["metric_ttl"],
        go_only: &["metric_type"],
    },
    SectionKeys {
        path: &["pin_tracker", "stateless"],
        env_prefix: "CLUSTER_STATELESS_",
        used: &[
            "concurrent_pins",
            "priority_pin_max_age",
            "priority_pin_max_retries",
            "max_pin_queue_size",
        ],
        go_only: &[],
    },
];

/// Top-level sections we know (Go's); anything else is reported as unknown.
const TOP_LEVEL: &[&str] = &[
    "source",
    "cluster",
    "consensus",
    "api",
    "ipfs_connector",
    "pin_tracker",
    "monitor",
    "allocator",
    "informer",
    "observations",
    "datastore",
];

/// Sections that Go has and we do not implement yet: loaded, warned about once.
const NOT_YET: &[(&str, &str)] = &[
    ("api", "pinsvcapi"),
    ("allocator", ""),
    ("informer", "numpin"),
    ("observations", ""),
    ("datastore", ""),
];

/// The raw `service.json`, with environment overrides applied.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where it was read from (for error messages).
    pub file: String,
    /// The JSON.
    pub json: Value,
}

impl ServiceConfig {
    /// Reads `path`. A missing, unreadable or non-JSON file is an error naming the file.
    pub fn load(path: &Path) -> Result<ServiceConfig, NodeError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            NodeError::Config(format!(
                "{file}: cannot read configuration: {e} (run `ipfs-cluster-service init` first)"
            ))
        })?;
        ServiceConfig::parse(&text, &file)
    }

    /// Parses `service.json` text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<ServiceConfig, NodeError> {
        let json: Value = serde_json::from_str(text)
            .map_err(|e| NodeError::Config(format!("{file}: not valid JSON: {e} (is the file complete?)")))?;
        if !json.is_object() {
            return Err(NodeError::Config(format!(
                "{file}: the top level must be a JSON object"
            )));
        }
        if json.get("source").is_some() {
            return Err(NodeError::Config(format!(
                "{file}: source: remote configuration sources are not supported yet; copy the configuration into the file"
            )));
        }
        Ok(ServiceConfig {
            file: file.to_string(),
            json,
        })
    }

    /// A fresh configuration as `init` writes it: every section and key of Go's `service.json`
    /// (reference §3.3), so operators find the file they know. Keys we do not use yet hold Go's
    /// defaults and are ignored silently while they keep them.
    pub fn default_json(peername: &str, secret_hex: &str) -> Value {
        let mut json = go_defaults();
        json["cluster"]["peername"] = json!(peername);
        json["cluster"]["secret"] = json!(secret_hex);
        json
    }

    /// Applies `CLUSTER_*` overrides from `vars` (Go envconfig naming: `CLUSTER_` + section key +
    /// `_` + the key upper-cased without underscores, e.g. `CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS`;
    /// the `cluster` section has no section key: `CLUSTER_PEERNAME`). Returns the names applied.
    pub fn apply_env<I: IntoIterator<Item = (String, String)>>(&mut self, vars: I) -> Result<Vec<String>, NodeError> {
        let mut applied = Vec::new();
        let vars: Vec<(String, String)> = vars.into_iter().filter(|(k, _)| k.starts_with("CLUSTER_")).collect();
        for section in SECTIONS {
            for key in section.used.iter().chain(section.go_only.iter()) {
                let env_name = format!("{}{}", section.env_prefix, key.replace('_', "").to_uppercase());
                let Some((_, text)) = vars.iter().find(|(k, _)| *k == env_name) else {
                    continue;
                };
                let object = section_object_mut(&mut self.json, section.path);
                let value = env_value(object.get(*key), text);
                object.insert((*key).to_string(), value);
                applied.push(env_name);
            }
        }
        Ok(applied)
    }

    /// Keys and sections that are present but not used: one warning each. A key or section we
    /// do not use yet is only reported when its value differs from Go's default (ignoring a
    /// default changes nothing).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let Some(top) = self.json.as_object() else {
            return warnings;
        };
        let defaults = go_defaults();
        for key in top.keys() {
            if !TOP_LEVEL.contains(&key.as_str()) {
                warnings.push(format!("{}: unknown section {key:?}; ignored", self.file));
            }
        }
        for (section, sub) in NOT_YET {
            let Some(value) = top.get(*section) else { continue };
            let (name, value, default) = if sub.is_empty() {
                (section.to_string(), Some(value), defaults.get(*section))
            } else {
                (
                    format!("{section}.{sub}"),
                    value.get(*sub),
                    defaults.get(*section).and_then(|d| d.get(*sub)),
                )
            };
            if let Some(value) = value {
                if Some(value) != default {
                    warnings.push(format!(
                        "{}: section \"{name}\" is not supported yet; ignored",
                        self.file
                    ));
                }
            }
        }
        for section in SECTIONS {
            let Some(object) = lookup(&self.json, section.path).and_then(Value::as_object) else {
                continue;
            };
            let name = section.path.join(".");
            let section_defaults = lookup(&defaults, section.path);
            for (key, value) in object {
                if section.go_only.contains(&key.as_str()) {
                    if section_defaults.and_then(|d| d.get(key)) != Some(value) {
                        warnings.push(format!("{}: {name}.{key} is not supported yet; ignored", self.file));
                    }
                } else if !section.used.contains(&key.as_str()) {
                    warnings.push(format!("{}: {name}.{key} is not a known key; ignored", self.file));
                }
            }
        }
        warnings
    }

    /// Checks every value and resolves the configuration.
    pub fn validate(&self) -> Result<NodeConfig, NodeError> {
        if let Some(consensus) = self.json.get("consensus").and_then(Value::as_object) {
            if consensus.contains_key("crdt") && !consensus.contains_key("raft") {
                return Err(NodeError::Config(format!(
                    "{}: consensus.crdt: crdt consensus is not supported; use raft (`ipfs-cluster-service init --consensus raft`)",
                    self.file
                )));
            }
        }
        let r = Reader {
            file: &self.file,
            json: &self.json,
        };
        let cluster = ["cluster"];
        let raft = ["consensus", "raft"];
        let rest = ["api", "restapi"];
        let ipfs = ["ipfs_connector", "ipfshttp"];
        let tracker = ["pin_tracker", "stateless"];

        let secret_hex = r.string(&cluster, "secret", "")?;
        let secret = if secret_hex.is_empty() {
            Vec::new()
        } else {
            let bytes = hex::decode(secret_hex.trim())
                .map_err(|e| r.error(&cluster, "secret", &format!("not hexadecimal: {e}")))?;
            if bytes.len() != 32 {
                return Err(r.error(
                    &cluster,
                    "secret",
                    &format!("must be 32 bytes (64 hex characters), got {}", bytes.len()),
                ));
            }
            bytes
        };
        let replication_factor_min = r.i64(&cluster, "replication_factor_min", -1)?;
        let replication_factor_max = r.i64(&cluster, "replication_factor_max", -1)?;
        validate_replication(replication_factor_min, replication_factor_max)
            .map_err(|m| r.error(&cluster, "replication_factor_min", &m))?;

        let default_raft = RaftConfig::default();
        let raft_config = RaftConfig {
            wait_for_leader_timeout: r.duration(
                &raft,
                "wait_for_leader_timeout",
                default_raft.wait_for_leader_timeout,
            )?,
            network_timeout: r.duration(&raft, "network_timeout", default_raft.network_timeout)?,
            heartbeat_timeout: r.duration(&raft, "heartbeat_timeout", default_raft.heartbeat_timeout)?,
            election_timeout: r.duration(&raft, "election_timeout", default_raft.election_timeout)?,
            trailing_logs: r.u64(&raft, "trailing_logs", default_raft.trailing_logs)?,
            snapshot_threshold: r.u64(&raft, "snapshot_threshold", default_raft.snapshot_threshold)?,
        };
        for (key, value) in [
            ("wait_for_leader_timeout", raft_config.wait_for_leader_timeout),
            ("network_timeout", raft_config.network_timeout),
            ("heartbeat_timeout", raft_config.heartbeat_timeout),
            ("election_timeout", raft_config.election_timeout),
        ] {
            if value.is_zero() {
                return Err(r.error(&raft, key, "must be greater than 0"));
            }
        }
        raft_config
            .to_openraft("check")
            .map_err(|m| r.error(&raft, "election_timeout", &m))?;

        let rest_listen = match lookup(&self.json, &rest) {
            None => None,
            Some(_) => {
                let addresses = r.strings(&rest, "http_listen_multiaddress", &["/ip4/127.0.0.1/tcp/9094"])?;
                Some(listen_addresses(&addresses).map_err(|m| r.error(&rest, "http_listen_multiaddress", &m))?)
            }
        };
        let rest_headers = match lookup(&self.json, &rest).and_then(|v| v.get("headers")) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(map)) => {
                let mut headers = Vec::new();
                for (name, value) in map {
                    // Go's config allows a string or a list of strings per header.
                    match value {
                        Value::String(text) => headers.push((name.clone(), text.clone())),
                        Value::Array(items) => {
                            for item in items {
                                let text = item
                                    .as_str()
                                    .ok_or_else(|| r.error(&rest, "headers", "values must be strings"))?;
                                headers.push((name.clone(), text.to_string()));
                            }
                        }
                        _ => return Err(r.error(&rest, "headers", "values must be strings")),
                    }
                }
                headers
            }
            Some(_) => return Err(r.error(&rest, "headers", "must be an object")),
        };
        let rest_credentials = match lookup(&self.json, &rest).and_then(|v| v.get("basic_auth_credentials")) {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) if map.is_empty() => {
                return Err(r.error(
                    &rest,
                    "basic_auth_credentials",
                    "is empty: list users and passwords, or set it to null to turn authentication off",
                ))
            }
            Some(Value::Object(map)) => {
                let mut users = BTreeMap::new();
                for (user, password) in map {
                    let password = password
                        .as_str()
                        .ok_or_else(|| r.error(&rest, "basic_auth_credentials", "passwords must be strings"))?;
                    users.insert(user.clone(), password.to_string());
                }
                Some(Credentials(users))
            }
            Some(_) => return Err(r.error(&rest, "basic_auth_credentials", "must be an object or null")),
        };
        // Relative paths are relative to the configuration folder, as in Go.
        let config_dir = Path::new(&self.file).parent().unwrap_or(Path::new("."));
        let cert = r.string(&rest, "ssl_cert_file", "")?;
        let key = r.string(&rest, "ssl_key_file", "")?;
        let rest_tls = match (cert.is_empty(), key.is_empty()) {
            (true, true) => None,
            (false, false) => Some(TlsFiles {
                cert: config_dir.join(cert),
                key: config_dir.join(key),
            }),
            _ => {
                return Err(r.error(
                    &rest,
                    "ssl_cert_file",
                    "ssl_cert_file and ssl_key_file must be set together",
                ))
            }
        };
        let rest_libp2p = {
            let listen = r.strings(&rest, "libp2p_listen_multiaddress", &[])?;
            let id = r.string(&rest, "id", "")?;
            let private_key = r.string(&rest, "private_key", "")?;
            match (listen.is_empty(), id.is_empty(), private_key.is_empty()) {
                (true, true, true) => None,
                (false, false, false) => {
                    let keypair = crate::identity::keypair_of(&id, &private_key)
                        .map_err(|m| r.error(&rest, "private_key", &m))?;
                    let private_key = keypair
                        .to_protobuf_encoding()
                        .map_err(|e| r.error(&rest, "private_key", &e.to_string()))?;
                    Some(RestLibp2pHost { private_key, listen })
                }
                // Go's words.
                _ => {
                    return Err(r.error(
                        &rest,
                        "libp2p_listen_multiaddress",
                        "all ID, private_key and libp2p_listen_multiaddress should be set",
                    ))
                }
            }
        };
        let cors_defaults = CorsConfig::default();
        let rest_cors = CorsConfig {
            allowed_origins: r.strings(&rest, "cors_allowed_origins", &as_strs(&cors_defaults.allowed_origins))?,
            allowed_methods: r.strings(&rest, "cors_allowed_methods", &as_strs(&cors_defaults.allowed_methods))?,
            allowed_headers: r.strings(&rest, "cors_allowed_headers", &[])?,
            exposed_headers: r.strings(&rest, "cors_exposed_headers", &as_strs(&cors_defaults.exposed_headers))?,
            allow_credentials: r.bool(&rest, "cors_allow_credentials", true)?,
            max_age: r.duration(&rest, "cors_max_age", Duration::ZERO)?,
        };
        let ipfs_multiaddress = r.string(&ipfs, "node_multiaddress", "/ip4/127.0.0.1/tcp/5001")?;
        let ipfs_node_address =
            HttpAddress::parse(&ipfs_multiaddress).map_err(|m| r.error(&ipfs, "node_multiaddress", &m))?;
        let proxy = ["api", "ipfsproxy"];
        let (proxy_listen, proxy_node_address) = match lookup(&self.json, &proxy) {
            None => (None, ipfs_node_address.clone()),
            Some(_) => {
                let listen = r.strings(&proxy, "listen_multiaddress", &["/ip4/127.0.0.1/tcp/9095"])?;
                let listen = listen_addresses(&listen).map_err(|m| r.error(&proxy, "listen_multiaddress", &m))?;
                let node = r.string(&proxy, "node_multiaddress", &ipfs_multiaddress)?;
                let node = HttpAddress::parse(&node).map_err(|m| r.error(&proxy, "node_multiaddress", &m))?;
                (Some(listen), node)
            }
        };
        let proxy_node_https = r.bool(&proxy, "node_https", false)?;
        let proxy_extract_headers_extra = r.strings(&proxy, "extract_headers_extra", &[])?;
        let proxy_extract_headers_path = r.string(&proxy, "extract_headers_path", "/api/v0/version")?;
        let proxy_extract_headers_ttl = r.duration(&proxy, "extract_headers_ttl", Duration::from_secs(300))?;

        let tags = match lookup(&self.json, &["informer", "tags"]).and_then(|v| v.get("tags")) {
            None => BTreeMap::from([("group".to_string(), "default".to_string())]),
            Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => {
                let mut tags = BTreeMap::new();
                for (name, value) in map {
                    let value = value
                        .as_str()
                        .ok_or_else(|| r.error(&["informer", "tags"], "tags", "values must be strings"))?;
                    tags.insert(name.clone(), value.to_string());
                }
                tags
            }
            Some(_) => return Err(r.error(&["informer", "tags"], "tags", "must be an object")),
        };
        let concurrent_pins = r.u64(&tracker, "concurrent_pins", 10)?;
        if concurrent_pins == 0 {
            return Err(r.error(&tracker, "concurrent_pins", "must be at least 1"));
        }
        let config = NodeConfig {
            peername: r.string(&cluster, "peername", "")?,
            secret,
            leave_on_shutdown: r.bool(&cluster, "leave_on_shutdown", false)?,
            listen_multiaddress: r.strings(&cluster, "listen_multiaddress", &["/ip4/0.0.0.0/tcp/9096"])?,
            state_sync_interval: r.positive_duration(&cluster, "state_sync_interval", Duration::from_secs(300))?,
            pin_recover_interval: r.positive_duration(&cluster, "pin_recover_interval", Duration::from_secs(720))?,
            replication_factor_min: replication_factor_min as i32,
            replication_factor_max: replication_factor_max as i32,
            disable_repinning: r.bool(&cluster, "disable_repinning", true)?,
            raft: raft_config,
            init_peerset: r.strings(&raft, "init_peerset", &[])?,
            rest_listen,
            rest_headers,
            rest_credentials,
            rest_cors,
            rest_tls,
            rest_libp2p,
            proxy_listen,
            proxy_node_https,
            proxy_node_address,
            proxy_extract_headers_extra,
            proxy_extract_headers_path,
            proxy_extract_headers_ttl,
            ipfs_node_address,
            ipfs_request_timeout: r.positive_duration(&ipfs, "ipfs_request_timeout", Duration::from_secs(300))?,
            ipfs_pin_timeout: r.positive_duration(&ipfs, "pin_timeout", Duration::from_secs(120))?,
            ipfs_unpin_timeout: r.positive_duration(&ipfs, "unpin_timeout", Duration::from_secs(3 * 3600))?,
            concurrent_pins: concurrent_pins as usize,
            priority_pin_max_age: r.duration(&tracker, "priority_pin_max_age", Duration::from_secs(86_400))?,
            priority_pin_max_retries: r.u64(&tracker, "priority_pin_max_retries", 5)?.min(u32::MAX as u64) as u32,
            pin_queue_size_max: r.u64(&tracker, "max_pin_queue_size", 1_000_000)?.max(1) as usize,
            metric_ttl: r.positive_duration(&["informer", "disk"], "metric_ttl", Duration::from_secs(30))?,
            tags,
            pinqueue_weight_bucket_size: r.u64(&["informer", "pinqueue"], "weight_bucket_size", 100_000)?.max(1),
            monitor_check_interval: r.positive_duration(
                &["monitor", "pubsubmon"],
                "check_interval",
                Duration::from_secs(15),
            )?,
        };
        Ok(config)
    }
}

/// Go's `service.json` as `ipfs-cluster-service init` (v1.1.6) writes it, with raft consensus.
fn go_defaults() -> Value {
    json!({
        "cluster": {
            "peername": "",
            "secret": "",
            "leave_on_shutdown": false,
            "listen_multiaddress": ["/ip4/0.0.0.0/tcp/9096", "/ip4/0.0.0.0/udp/9096/quic"],
            "announce_multiaddress": [],
            "no_announce_multiaddress": [],
            "enable_relay_hop": true,
            "connection_manager": {"high_water": 400, "low_water": 100, "grace_period": "2m0s"},
            "resource_manager": {"enabled": true, "memory_limit_bytes": 0, "file_descriptors_limit": 0},
            "pubsub": {
                "seen_messages_ttl": "30m0s",
                "heartbeat_interval": "10s",
                "d_factor": 4,
                "history_gossip": 2,
                "history_length": 6,
                "flood_publish": false
            },
            "dial_peer_timeout": "3s",
            "state_sync_interval": "5m0s",
            "pin_recover_interval": "12m0s",
            "replication_factor_min": -1,
            "replication_factor_max": -1,
            "monitor_ping_interval": "15s",
            "peer_watch_interval": "5s",
            "mdns_interval": "10s",
            "pin_only_on_trusted_peers": false,
            "pin_only_on_untrusted_peers": false,
            "disable_repinning": true,
            "peer_addresses": []
        },
        "consensus": {
            "raft": {
                "init_peerset": [],
                "wait_for_leader_timeout": "15s",
                "network_timeout": "10s",
                "commit_retries": 1,
                "commit_retry_delay": "200ms",
                "backups_rotate": 6,
                "heartbeat_timeout": "1s",
                "election_timeout": "1s",
                "commit_timeout": "50ms",
                "max_append_entries": 64,
                "trailing_logs": 10240,
                "snapshot_interval": "2m0s",
                "snapshot_threshold": 8192,
                "leader_lease_timeout": "500ms"
            }
        },
        "api": {
            "ipfsproxy": {
                "listen_multiaddress": "/ip4/127.0.0.1/tcp/9095",
                "node_multiaddress": "/ip4/127.0.0.1/tcp/5001",
                "log_file": "",
                "read_timeout": "0s",
                "read_header_timeout": "5s",
                "write_timeout": "0s",
                "idle_timeout": "1m0s",
                "max_header_bytes": 4096
            },
            "pinsvcapi": {
                "http_listen_multiaddress": "/ip4/127.0.0.1/tcp/9097",
                "read_timeout": "0s",
                "read_header_timeout": "5s",
                "write_timeout": "0s",
                "idle_timeout": "2m0s",
                "max_header_bytes": 4096,
                "basic_auth_credentials": null,
                "http_log_file": "",
                "headers": {},
                "cors_allowed_origins": ["*"],
                "cors_allowed_methods": ["GET"],
                "cors_allowed_headers": [],
                "cors_exposed_headers": ["Content-Type", "X-Stream-Output", "X-Chunked-Output", "X-Content-Length"],
                "cors_allow_credentials": true,
                "cors_max_age": "0s"
            },
            "restapi": {
                "http_listen_multiaddress": "/ip4/127.0.0.1/tcp/9094",
                "read_timeout": "0s",
                "read_header_timeout": "5s",
                "write_timeout": "0s",
                "idle_timeout": "2m0s",
                "max_header_bytes": 4096,
                "basic_auth_credentials": null,
                "http_log_file": "",
                "headers": {},
                "cors_allowed_origins": ["*"],
                "cors_allowed_methods": ["GET"],
                "cors_allowed_headers": [],
                "cors_exposed_headers": ["Content-Type", "X-Stream-Output", "X-Chunked-Output", "X-Content-Length"],
                "cors_allow_credentials": true,
                "cors_max_age": "0s"
            }
        },
        "ipfs_connector": {
            "ipfshttp": {
                "node_multiaddress": "/ip4/127.0.0.1/tcp/5001",
                "connect_swarms_delay": "30s",
                "ipfs_request_timeout": "5m0s",
                "pin_timeout": "2m0s",
                "unpin_timeout": "3h0m0s",
                "repogc_timeout": "24h0m0s",
                "informer_trigger_interval": 0
            }
        },
        "pin_tracker": {
            "stateless": {
                "concurrent_pins": 10,
                "priority_pin_max_age": "24h0m0s",
                "priority_pin_max_retries": 5
            }
        },
        "monitor": {"pubsubmon": {"check_interval": "15s"}},
        "allocator": {"balanced": {"allocate_by": ["tag:group", "freespace"]}},
        "informer": {
            "disk": {"metric_ttl": "30s", "metric_type": "freespace"},
            "pinqueue": {"metric_ttl": "30s", "weight_bucket_size": 100000},
            "tags": {"metric_ttl": "30s", "tags": {"group": "default"}}
        },
        "observations": {
            "metrics": {
                "enable_stats": false,
                "prometheus_endpoint": "/ip4/127.0.0.1/tcp/8888",
                "reporting_interval": "30s"
            },
            "tracing": {
                "enable_tracing": false,
                "jaeger_agent_endpoint": "/ip4/0.0.0.0/udp/6831",
                "sampling_prob": 0.3,
                "service_name": "cluster-daemon"
            }
        },
        "datastore": {"pebble": {"folder": "pebble"}}
    })
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

fn lookup<'a>(json: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut value = json;
    for key in path {
        value = value.get(*key)?;
    }
    Some(value)
}

fn section_object_mut<'a>(json: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut value = json;
    for key in path {
        let object = value.as_object_mut().expect("sections are objects");
        value = object
            .entry((*key).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !value.is_object() {
            *value = Value::Object(Map::new());
        }
    }
    value.as_object_mut().expect("just made an object")
}

/// The JSON value of an environment override, shaped like the value it replaces.
fn env_value(existing: Option<&Value>, text: &str) -> Value {
    match existing {
        Some(Value::Bool(_)) => text
            .parse::<bool>()
            .map(Value::Bool)
            .unwrap_or_else(|_| Value::String(text.into())),
        Some(Value::Number(_)) => serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.into())),
        Some(Value::Array(_)) => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.into()))
                .collect(),
        ),
        Some(Value::Object(_)) | Some(Value::Null) => {
            serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.into()))
        }
        _ => Value::String(text.into()),
    }
}

/// Typed access to one key, with errors that name the file and the key.
struct Reader<'a> {
    file: &'a str,
    json: &'a Value,
}

impl Reader<'_> {
    fn error(&self, section: &[&str], key: &str, message: &str) -> NodeError {
        NodeError::Config(format!("{}: {}.{key}: {message}", self.file, section.join(".")))
    }

    fn value(&self, section: &[&str], key: &str) -> Option<&Value> {
        lookup(self.json, section)
            .and_then(|s| s.get(key))
            .filter(|v| !v.is_null())
    }

    fn string(&self, section: &[&str], key: &str, default: &str) -> Result<String, NodeError> {
        match self.value(section, key) {
            None => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.error(section, key, &format!("expected a string, found {other}"))),
        }
    }

    fn strings(&self, section: &[&str], key: &str, default: &[&str]) -> Result<Vec<String>, NodeError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "2588b80d5cb05374fa142aed6cbb047d1f4ef8ef15e37eba68c65b9d30df67ed";

    fn parse(json: &Value) -> Result<NodeConfig, NodeError> {
        ServiceConfig::parse(&json.to_string(), "/x/service.json")?.validate()
    }

    #[test]
    fn default_config_validates() {
        let config = parse(&ServiceConfig::default_json("p", SECRET)).unwrap();
        assert_eq!(config.peername, "p");
        assert_eq!(config.secret.len(), 32);
        assert_eq!(
            config.rest_listen,
            Some(vec![HttpAddress::Tcp("127.0.0.1:9094".into())])
        );
        assert_eq!(config.ipfs_node_address, HttpAddress::Tcp("127.0.0.1:5001".into()));
        assert_eq!(config.state_sync_interval, Duration::from_secs(300));
        assert_eq!(config.raft.wait_for_leader_timeout, Duration::from_secs(15));
        assert_eq!(config.concurrent_pins, 10);
        let warnings = ServiceConfig::parse(&ServiceConfig::default_json("p", SECRET).to_string(), "f")
            .unwrap()
            .warnings();
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn errors_name_file_and_key() {
        let mut json = ServiceConfig::default_json("p", SECRET);
        json["cluster"]["state_sync_interval"] = json!("5 minutes");
        let err = parse(&json).unwrap_err().to_string();
        assert!(err.contains("/x/service.json: cluster.state_sync_interval"), "{err}");

        let mut json = ServiceConfig::default_json("p", SECRET);
        json["cluster"]["replication_factor_min"] = json!(3);
        json["cluster"]["replication_factor_max"] = json!(2);
        let err = parse(&json).unwrap_err().to_string();
        assert!(err.contains("cluster.replication_factor_min"), "{err}");

        let mut json = ServiceConfig::default_json("p", SECRET);
        json["cluster"]["secret"] = json!("abc");
        assert!(parse(&json).unwrap_err().to_string().contains("cluster.secret"));

        let mut json = ServiceConfig::default_json("p", SECRET);
        json["ipfs_connector"]["ipfshttp"]["node_multiaddress"] = json!("/ip4/127.0.0.1/udp/5001");
        assert!(parse(&json)
            .unwrap_err()
            .to_string()
            .contains("ipfs_connector.ipfshttp.node_multiaddress"));

        let mut json = ServiceConfig::default_json("p", SECRET);
        json["pin_tracker"]["stateless"]["concurrent_pins"] = json!("ten");
        assert!(parse(&json)
            .unwrap_err()
            .to_string()
            .contains("pin_tracker.stateless.concurrent_pins"));
    }

    #[test]
    fn partial_or_corrupt_files_are_errors() {
        let text = ServiceConfig::default_json("p", SECRET).to_string();
        let err = ServiceConfig::parse(&text[..text.len() / 2], "/x/service.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/x/service.json: not valid JSON"), "{err}");
        assert!(ServiceConfig::parse("[]", "f").is_err());
        assert!(ServiceConfig::parse("", "f").is_err());
        // A file with only some sections loads with defaults for the rest.
        let config = parse(&json!({"cluster": {"peername": "x"}})).unwrap();
        assert_eq!(config.peername, "x");
        assert_eq!(config.rest_listen, None);
    }

    #[test]
    fn crdt_is_refused_clearly() {
        let err = parse(&json!({"consensus": {"crdt": {"cluster_name": "ipfs-cluster"}}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("crdt consensus is not supported; use raft"), "{err}");
    }

    #[test]
    fn environment_overrides_follow_go_names() {
        let mut config = ServiceConfig::parse(&ServiceConfig::default_json("p", SECRET).to_string(), "f").unwrap();
        let applied = config
            .apply_env([
                ("CLUSTER_PEERNAME".to_string(), "from-env".to_string()),
                (
                    "CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS".to_string(),
                    "/ip4/127.0.0.1/tcp/19094".to_string(),
                ),
                (
                    "CLUSTER_IPFSHTTP_NODEMULTIADDRESS".to_string(),
                    "/ip4/127.0.0.1/tcp/15001".to_string(),
                ),
                ("CLUSTER_REPLICATIONFACTORMIN".to_string(), "2".to_string()),
                ("CLUSTER_REPLICATIONFACTORMAX".to_string(), "3".to_string()),
                ("CLUSTER_LEAVEONSHUTDOWN".to_string(), "true".to_string()),
                ("HOME".to_string(), "/root".to_string()),
            ])
            .unwrap();
        assert_eq!(applied.len(), 6, "{applied:?}");
        let resolved = config.validate().unwrap();
        assert_eq!(resolved.peername, "from-env");
        assert_eq!(
            resolved.rest_listen,
            Some(vec![HttpAddress::Tcp("127.0.0.1:19094".into())])
        );
        assert_eq!(resolved.ipfs_node_address, HttpAddress::Tcp("127.0.0.1:15001".into()));
        assert_eq!(
            (resolved.replication_factor_min, resolved.replication_factor_max),
            (2, 3)
        );
        assert!(resolved.leave_on_shutdown);
    }

    #[test]
    fn go_keys_we_do_not_use_are_warnings() {
        let mut json = ServiceConfig::default_json("p", SECRET);
        json["cluster"]["enable_relay_hop"] = json!(false);
        json["cluster"]["made_up"] = json!(1);
        json["informer"] = json!({"disk": {"metric_ttl": "30s", "metric_type": "reposize"}});
        json["api"]["pinsvcapi"] = json!({});
        let config = ServiceConfig::parse(&json.to_string(), "f").unwrap();
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        config.validate().unwrap();
    }

    #[test]
    fn ipfs_proxy_section_is_read() {
        let config = parse(&ServiceConfig::default_json("p", SECRET)).unwrap();
        assert_eq!(
            config.proxy_listen,
            Some(vec![HttpAddress::Tcp("127.0.0.1:9095".into())])
        );
        assert_eq!(config.proxy_node_address, HttpAddress::Tcp("127.0.0.1:5001".into()));
        let mut json = ServiceConfig::default_json("p", SECRET);
        json["api"]["ipfsproxy"]["node_multiaddress"] = json!("/ip4/127.0.0.1/tcp/5999");
        json["api"]["ipfsproxy"]["extract_headers_ttl"] = json!("1m0s");
        json["api"]["ipfsproxy"]["node_https"] = json!(true);
        let text = json.to_string();
        let service = ServiceConfig::parse(&text, "f").unwrap();
        assert!(service.warnings().is_empty(), "{:?}", service.warnings());
        let config = service.validate().unwrap();
        assert_eq!(config.proxy_node_address, HttpAddress::Tcp("127.0.0.1:5999".into()));
        assert!(config.proxy_node_https);
        assert_eq!(config.proxy_extract_headers_ttl, Duration::from_secs(60));
        assert_eq!(config.proxy_extract_headers_path, "/api/v0/version");
        json["api"].as_object_mut().unwrap().remove("ipfsproxy");
        assert_eq!(parse(&json).unwrap().proxy_listen, None);
    }

    #[test]
    fn the_rest_api_libp2p_host_needs_all_three_keys_and_a_matching_id() {
        let identity = crate::Identity::generate();
        let identity_json: Value = serde_json::from_str(&identity.to_json()).unwrap();
        let mut json = ServiceConfig::default_json("p", SECRET);
        assert_eq!(parse(&json).unwrap().rest_libp2p, None);
        json["api"]["restapi"]["libp2p_listen_multiaddress"] = json!(["/ip4/127.0.0.1/tcp/9097"]);
        let error = parse(&json).unwrap_err().to_string();
        assert!(
            error.contains("all ID, private_key and libp2p_listen_multiaddress"),
            "{error}"
        );
        json["api"]["restapi"]["id"] = identity_json["id"].clone();
        json["api"]["restapi"]["private_key"] = identity_json["private_key"].clone();
        let text = json.to_string();
        let service = ServiceConfig::parse(&text, "f").unwrap();
        assert!(service.warnings().is_empty(), "{:?}", service.warnings());
        let host = service.validate().unwrap().rest_libp2p.expect("a host of its own");
        assert_eq!(host.listen, vec!["/ip4/127.0.0.1/tcp/9097".to_string()]);
        assert!(!format!("{host:?}").contains(identity_json["private_key"].as_str().unwrap()));
        json["api"]["restapi"]["id"] = json!(crate::Identity::generate().peer_id.to_string());
        let error = parse(&json).unwrap_err().to_string();
        assert!(error.contains("does not match"), "{error}");
    }

    #[test]
    fn http_endpoints_listen_on_every_address_given_unix_sockets_included() {
        let mut json = ServiceConfig::default_json("p", SECRET);
        json["api"]["restapi"]["http_listen_multiaddress"] =
            json!(["/ip4/127.0.0.1/tcp/9094", "/unix/run/cluster/api.sock"]);
        json["api"]["ipfsproxy"]["listen_multiaddress"] = json!("/unix/run/cluster/proxy.sock");
        json["ipfs_connector"]["ipfshttp"]["node_multiaddress"] = json!("/unix/run/ipfs/api.sock");
        json["api"]["ipfsproxy"]
            .as_object_mut()
            .unwrap()
            .remove("node_multiaddress");
        let config = parse(&json).unwrap();
        assert_eq!(
            config.rest_listen,
            Some(vec![
                HttpAddress::Tcp("127.0.0.1:9094".into()),
                HttpAddress::Unix("/run/cluster/api.sock".into())
            ])
        );
        assert_eq!(
            config.proxy_listen,
            Some(vec![HttpAddress::Unix("/run/cluster/proxy.sock".into())])
        );
        // The daemon may listen on a socket too; the proxy follows the connector by default.
        assert_eq!(config.ipfs_node_address, HttpAddress::Unix("/run/ipfs/api.sock".into()));
        assert_eq!(config.proxy_node_address, config.ipfs_node_address);
        json["api"]["restapi"]["http_listen_multiaddress"] = json!([]);
        let error = parse(&json).unwrap_err().to_string();
        assert!(
            error.contains("http_listen_multiaddress") && error.contains("at least one"),
            "{error}"
        );
        json["api"]["restapi"]["http_listen_multiaddress"] = json!("/ip4/127.0.0.1/udp/9094");
        let error = parse(&json).unwrap_err().to_string();
        assert!(error.contains("http_listen_multiaddress"), "{error}");
    }

    #[test]
    fn rest_auth_and_cors_keys_are_read() {
        let config = parse(&ServiceConfig::default_json("p", SECRET)).unwrap();
        assert!(config.rest_credentials.is_none());
        assert_eq!(config.rest_cors, CorsConfig::default());

        let mut json = ServiceConfig::default_json("p", SECRET);
        json["api"]["restapi"]["basic_auth_credentials"] = json!({"admin": "pw"});
        json["api"]["restapi"]["cors_allowed_methods"] = json!(["GET", "POST"]);
        json["api"]["restapi"]["cors_max_age"] = json!("10m0s");
        let config = parse(&json).unwrap();
        assert_eq!(
            config.rest_credentials.unwrap().0.get("admin").map(String::as_str),
            Some("pw")
        );
        assert_eq!(config.rest_cors.allowed_methods, ["GET", "POST"]);
        assert_eq!(config.rest_cors.max_age, Duration::from_secs(600));

        json["api"]["restapi"]["ssl_cert_file"] = json!("tls/cert.pem");
        json["api"]["restapi"]["ssl_key_file"] = json!("/etc/cluster/key.pem");
        let tls = parse(&json).unwrap().rest_tls.unwrap();
        assert_eq!(tls.cert, Path::new("/x/tls/cert.pem"));
        assert_eq!(tls.key, Path::new("/etc/cluster/key.pem"));
        json["api"]["restapi"]["ssl_key_file"] = json!("");
        assert!(parse(&json).unwrap_err().to_string().contains("set together"));
        json["api"]["restapi"]["ssl_cert_file"] = json!("");

        json["api"]["restapi"]["basic_auth_credentials"] = json!({});
        let err = parse(&json).unwrap_err().to_string();
        assert!(err.contains("api.restapi.basic_auth_credentials"), "{err}");
        json["api"]["restapi"]["basic_auth_credentials"] = json!({"admin": 5});
        assert!(parse(&json).is_err());
    }

    #[test]
    fn replication_rules() {
        assert!(validate_replication(-1, -1).is_ok());
        assert!(validate_replication(1, 3).is_ok());
        assert!(validate_replication(0, 1).is_err());
        assert!(validate_replication(2, 1).is_err());
        assert!(validate_replication(-1, 2).is_err());
        assert!(validate_replication(-2, -2).is_err());
    }
}
