//! The raw `service.json`: loading, `CLUSTER_*` environment overrides, warnings for keys we do
//! not use, and [`ServiceConfig::validate`], which hands each section to its reader.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::go_defaults::go_defaults;
use super::read::{self, Reader};
use super::NodeConfig;
use crate::NodeError;

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
            "repinning_grace_period",
            "repinning_rate",
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
            "max_append_entries",
        ],
        go_only: &[
            "commit_retries",
            "commit_retry_delay",
            "backups_rotate",
            "commit_timeout",
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
            "read_timeout",
            "read_header_timeout",
            "write_timeout",
            "idle_timeout",
            "max_header_bytes",
            "max_connections",
        ],
        go_only: &["http_log_file"],
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
            "read_timeout",
            "read_header_timeout",
            "write_timeout",
            "idle_timeout",
            "max_header_bytes",
            "max_connections",
        ],
        go_only: &["log_file"],
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
        path: &["allocator", "balanced"],
        env_prefix: "CLUSTER_BALANCED_",
        used: &["allocate_by"],
        go_only: &[],
    },
    SectionKeys {
        path: &["pin_tracker", "stateless"],
        env_prefix: "CLUSTER_STATELESS_",
        used: &[
            "concurrent_pins",
            "priority_pin_max_age",
            "priority_pin_max_retries",
            "max_pin_queue_size",
            "pin_batch_max",
            "pin_batch_timeout",
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
        // Ours: a member lost for good has its pins moved, at a bounded pace (Go's default
        // leaves replication short until someone acts).
        json["cluster"]["disable_repinning"] = json!(false);
        json["cluster"]["repinning_grace_period"] = json!("1m0s");
        json["cluster"]["repinning_rate"] = json!(1000);
        json
    }

    /// Applies `CLUSTER_*` overrides from `vars` (Go envconfig naming: `CLUSTER_` + section key +
    /// `_` + the key upper-cased without underscores, e.g. `CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS`;
    /// the `cluster` section has no section key: `CLUSTER_PEERNAME`). Returns the names applied.
    pub fn apply_env<I: IntoIterator<Item = (String, String)>>(&mut self, vars: I) -> Result<Vec<String>, NodeError> {
        let mut applied = Vec::new();
        let vars: Vec<(String, String)> = vars.into_iter().filter(|(k, _)| k.starts_with("CLUSTER_")).collect();
        let defaults = go_defaults();
        for section in SECTIONS {
            for key in section.used.iter().chain(section.go_only.iter()) {
                let env_name = format!("{}{}", section.env_prefix, key.replace('_', "").to_uppercase());
                let Some((_, text)) = vars.iter().find(|(k, _)| *k == env_name) else {
                    continue;
                };
                let object = section_object_mut(&mut self.json, section.path);
                // A key the file leaves out takes the type of Go's default (see
                // `untyped_env_value` for one Go does not have).
                let default = lookup(&defaults, section.path).and_then(|d| d.get(*key));
                let value = match object.get(*key).or(default) {
                    Some(existing) => env_value(Some(existing), text),
                    None => untyped_env_value(text),
                };
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

    /// Checks every value and resolves the configuration, section by section.
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
        // Relative paths are relative to the configuration folder, as in Go.
        let config_dir = Path::new(&self.file).parent().unwrap_or(Path::new("."));
        let ipfs = read::ipfs(&r)?;
        Ok(NodeConfig {
            cluster: read::cluster(&r)?,
            raft: read::raft(&r)?,
            init_peerset: r.strings(read::RAFT, "init_peerset", &[])?,
            rest: read::rest(&r, config_dir)?,
            proxy: read::proxy(&r, &ipfs)?,
            ipfs,
            tracker: read::tracker(&r)?,
            monitor: read::monitor(&r)?,
            allocator: read::allocator(&r)?,
        })
    }
}

pub(super) fn lookup<'a>(json: &'a Value, path: &[&str]) -> Option<&'a Value> {
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

/// The value of an override for a key neither the file nor Go's defaults have: the text as JSON
/// when it reads as JSON (a number, a boolean, a list such as `["a","b"]`), else as a string.
fn untyped_env_value(text: &str) -> Value {
    serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.into()))
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
