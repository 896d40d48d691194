//! `service.json` in, [`NodeConfig`] out: defaults, every error naming its key, environment
//! overrides, warnings.

use std::path::Path;
use std::time::Duration;

use cluster_types::HttpAddress;
use serde_json::{json, Value};

use super::*;
use crate::NodeError;

const SECRET: &str = "2588b80d5cb05374fa142aed6cbb047d1f4ef8ef15e37eba68c65b9d30df67ed";

fn parse(json: &Value) -> Result<NodeConfig, NodeError> {
    ServiceConfig::parse(&json.to_string(), "/x/service.json")?.validate()
}

#[test]
fn default_config_validates() {
    let config = parse(&ServiceConfig::default_json("p", SECRET)).unwrap();
    assert_eq!(config.cluster.peername, "p");
    assert_eq!(config.cluster.secret.len(), 32);
    assert_eq!(
        config.rest.listen,
        Some(vec![HttpAddress::Tcp("127.0.0.1:9094".into())])
    );
    assert_eq!(config.ipfs.node_address, HttpAddress::Tcp("127.0.0.1:5001".into()));
    assert_eq!(config.cluster.state_sync_interval, Duration::from_secs(300));
    assert_eq!(config.raft.wait_for_leader_timeout, Duration::from_secs(15));
    assert_eq!(config.tracker.concurrent_pins, 10);
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
fn pin_batches_are_configured_in_the_stateless_tracker_section() {
    let config = parse(&ServiceConfig::default_json("p", SECRET)).unwrap();
    assert_eq!(config.tracker.pin_batch_max, 64);
    assert_eq!(config.tracker.pin_batch_timeout, Duration::from_secs(10));

    let mut json = ServiceConfig::default_json("p", SECRET);
    json["pin_tracker"]["stateless"]["pin_batch_max"] = json!(0);
    json["pin_tracker"]["stateless"]["pin_batch_timeout"] = json!("2s");
    let config = parse(&json).unwrap();
    assert_eq!(config.tracker.pin_batch_max, 1, "0 sends pins one at a time, as 1 does");
    assert_eq!(config.tracker.pin_batch_timeout, Duration::from_secs(2));
    let warnings = ServiceConfig::parse(&json.to_string(), "f").unwrap().warnings();
    assert!(warnings.is_empty(), "{warnings:?}");

    json["pin_tracker"]["stateless"]["pin_batch_timeout"] = json!("0s");
    assert!(parse(&json)
        .unwrap_err()
        .to_string()
        .contains("pin_tracker.stateless.pin_batch_timeout"));

    let mut config = ServiceConfig::parse(&ServiceConfig::default_json("p", SECRET).to_string(), "f").unwrap();
    let applied = config
        .apply_env([("CLUSTER_STATELESS_PINBATCHMAX".to_string(), "1".to_string())])
        .unwrap();
    assert_eq!(applied, vec!["CLUSTER_STATELESS_PINBATCHMAX".to_string()]);
    assert_eq!(config.validate().unwrap().tracker.pin_batch_max, 1);

    // Keys the file leaves out and Go does not have: a number stays a number, a duration a string.
    let mut json = ServiceConfig::default_json("p", SECRET);
    let stateless = json["pin_tracker"]["stateless"].as_object_mut().unwrap();
    stateless.remove("pin_batch_max");
    stateless.remove("pin_batch_timeout");
    let mut config = ServiceConfig::parse(&json.to_string(), "f").unwrap();
    config
        .apply_env([
            ("CLUSTER_STATELESS_PINBATCHMAX".to_string(), "8".to_string()),
            ("CLUSTER_STATELESS_PINBATCHTIMEOUT".to_string(), "3s".to_string()),
        ])
        .unwrap();
    let tracker = config.validate().unwrap().tracker;
    assert_eq!(tracker.pin_batch_max, 8);
    assert_eq!(tracker.pin_batch_timeout, Duration::from_secs(3));
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
    assert_eq!(config.cluster.peername, "x");
    assert_eq!(config.rest.listen, None);
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
    assert_eq!(resolved.cluster.peername, "from-env");
    assert_eq!(
        resolved.rest.listen,
        Some(vec![HttpAddress::Tcp("127.0.0.1:19094".into())])
    );
    assert_eq!(resolved.ipfs.node_address, HttpAddress::Tcp("127.0.0.1:15001".into()));
    assert_eq!(
        (
            resolved.cluster.replication_factor_min,
            resolved.cluster.replication_factor_max
        ),
        (2, 3)
    );
    assert!(resolved.cluster.leave_on_shutdown);
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
        config.proxy.listen,
        Some(vec![HttpAddress::Tcp("127.0.0.1:9095".into())])
    );
    assert_eq!(config.proxy.node_address, HttpAddress::Tcp("127.0.0.1:5001".into()));
    let mut json = ServiceConfig::default_json("p", SECRET);
    json["api"]["ipfsproxy"]["node_multiaddress"] = json!("/ip4/127.0.0.1/tcp/5999");
    json["api"]["ipfsproxy"]["extract_headers_ttl"] = json!("1m0s");
    json["api"]["ipfsproxy"]["node_https"] = json!(true);
    let text = json.to_string();
    let service = ServiceConfig::parse(&text, "f").unwrap();
    assert!(service.warnings().is_empty(), "{:?}", service.warnings());
    let config = service.validate().unwrap();
    assert_eq!(config.proxy.node_address, HttpAddress::Tcp("127.0.0.1:5999".into()));
    assert!(config.proxy.node_https);
    assert_eq!(config.proxy.extract_headers_ttl, Duration::from_secs(60));
    assert_eq!(config.proxy.extract_headers_path, "/api/v0/version");
    json["api"].as_object_mut().unwrap().remove("ipfsproxy");
    assert_eq!(parse(&json).unwrap().proxy.listen, None);
}

#[test]
fn the_rest_api_libp2p_host_needs_all_three_keys_and_a_matching_id() {
    let identity = crate::Identity::generate();
    let identity_json: Value = serde_json::from_str(&identity.to_json()).unwrap();
    let mut json = ServiceConfig::default_json("p", SECRET);
    assert_eq!(parse(&json).unwrap().rest.libp2p, None);
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
    let host = service.validate().unwrap().rest.libp2p.expect("a host of its own");
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
        config.rest.listen,
        Some(vec![
            HttpAddress::Tcp("127.0.0.1:9094".into()),
            HttpAddress::Unix("/run/cluster/api.sock".into())
        ])
    );
    assert_eq!(
        config.proxy.listen,
        Some(vec![HttpAddress::Unix("/run/cluster/proxy.sock".into())])
    );
    // The daemon may listen on a socket too; the proxy follows the connector by default.
    assert_eq!(config.ipfs.node_address, HttpAddress::Unix("/run/ipfs/api.sock".into()));
    assert_eq!(config.proxy.node_address, config.ipfs.node_address);
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
    assert!(config.rest.credentials.is_none());
    assert_eq!(config.rest.cors, CorsConfig::default());

    let mut json = ServiceConfig::default_json("p", SECRET);
    json["api"]["restapi"]["basic_auth_credentials"] = json!({"admin": "pw"});
    json["api"]["restapi"]["cors_allowed_methods"] = json!(["GET", "POST"]);
    json["api"]["restapi"]["cors_max_age"] = json!("10m0s");
    let config = parse(&json).unwrap();
    assert_eq!(
        config.rest.credentials.unwrap().0.get("admin").map(String::as_str),
        Some("pw")
    );
    assert_eq!(config.rest.cors.allowed_methods, ["GET", "POST"]);
    assert_eq!(config.rest.cors.max_age, Duration::from_secs(600));

    json["api"]["restapi"]["ssl_cert_file"] = json!("tls/cert.pem");
    json["api"]["restapi"]["ssl_key_file"] = json!("/etc/cluster/key.pem");
    let tls = parse(&json).unwrap().rest.tls.unwrap();
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

#[test]
fn the_file_init_writes_reads_as_every_sections_default() {
    // Each default lives in one `Default`; Go's file (what `init` writes) must agree with them.
    let config = parse(&ServiceConfig::default_json("", "")).unwrap();
    assert_eq!(
        config.cluster,
        ClusterSettings {
            // Go lists its QUIC address too; we listen on TCP only.
            listen_multiaddress: config.cluster.listen_multiaddress.clone(),
            ..ClusterSettings::default()
        }
    );
    assert!(config
        .cluster
        .listen_multiaddress
        .starts_with(&ClusterSettings::default().listen_multiaddress));
    assert_eq!(config.raft, cluster_consensus::RaftConfig::default());
    assert_eq!(config.rest, RestSettings::default());
    assert_eq!(config.proxy, ProxySettings::default());
    assert_eq!(config.ipfs, IpfsSettings::default());
    assert_eq!(config.tracker, cluster_tracker::TrackerConfig::default());
    assert_eq!(config.monitor, MonitorSettings::default());
    assert_eq!(config.allocator, cluster_allocator::AllocatorConfig::default());
    assert!(config.init_peerset.is_empty());
    assert!(!config.cluster.disable_repinning, "init writes repinning on");
}

#[test]
fn a_go_service_json_keeps_repinning_off() {
    let config = parse(&super::go_defaults::go_defaults()).unwrap();
    assert!(config.cluster.disable_repinning);
    let mut json = ServiceConfig::default_json("", "");
    json["cluster"]["repinning_grace_period"] = json!("2m30s");
    json["cluster"]["repinning_rate"] = json!(50);
    let config = parse(&json).unwrap();
    assert_eq!(
        (config.cluster.repinning_grace_period, config.cluster.repinning_rate),
        (Duration::from_secs(150), 50)
    );
}

#[test]
fn allocate_by_takes_the_metrics_members_publish() {
    let with = |allocate_by: serde_json::Value| {
        let mut json = ServiceConfig::default_json("", "");
        json["allocator"]["balanced"]["allocate_by"] = allocate_by;
        parse(&json)
    };
    let config = with(serde_json::json!(["tag:region", "tag:zone", "freespace"])).unwrap();
    assert_eq!(config.allocator.allocate_by, ["tag:region", "tag:zone", "freespace"]);
    for refused in [
        serde_json::json!(["numpin"]),
        serde_json::json!(["tag:"]),
        serde_json::json!(42),
    ] {
        let error = with(refused.clone()).unwrap_err().to_string();
        assert!(
            error.contains("allocator.balanced") && error.contains("allocate_by"),
            "{refused}: {error}"
        );
    }
}

#[test]
fn server_timeouts_header_size_and_connection_cap_are_read_for_both_servers() {
    let config = parse(&ServiceConfig::default_json("p", SECRET)).unwrap();
    // Go's defaults: the REST API idles 2 minutes, the proxy 1 minute.
    assert_eq!(config.rest.limits.read_header_timeout, Duration::from_secs(5));
    assert_eq!(config.rest.limits.idle_timeout, Duration::from_secs(120));
    assert_eq!(config.proxy.limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(
        (config.rest.limits.read_timeout, config.rest.limits.write_timeout),
        (None, None)
    );
    assert_eq!(config.rest.limits.max_header_bytes, 4096);
    assert_eq!(
        config.rest.limits.max_connections,
        cluster_api::default_max_connections()
    );
    let mut json = ServiceConfig::default_json("p", SECRET);
    for section in ["restapi", "ipfsproxy"] {
        let s = &mut json["api"][section];
        s["read_header_timeout"] = json!("2s");
        s["idle_timeout"] = json!("30s");
        s["read_timeout"] = json!("1m0s");
        s["write_timeout"] = json!("10m0s");
        s["max_header_bytes"] = json!(8192);
        s["max_connections"] = json!(100);
    }
    let service = ServiceConfig::parse(&json.to_string(), "f").unwrap();
    assert!(service.warnings().is_empty(), "{:?}", service.warnings());
    let config = service.validate().unwrap();
    for limits in [&config.rest.limits, &config.proxy.limits] {
        assert_eq!(limits.read_header_timeout, Duration::from_secs(2));
        assert_eq!(limits.idle_timeout, Duration::from_secs(30));
        assert_eq!(limits.read_timeout, Some(Duration::from_secs(60)));
        assert_eq!(limits.write_timeout, Some(Duration::from_secs(600)));
        assert_eq!((limits.max_header_bytes, limits.max_connections), (8192, 100));
    }
    // Go: a zero read_header_timeout or idle_timeout falls back on the other.
    json["api"]["restapi"]["idle_timeout"] = json!("0s");
    assert_eq!(parse(&json).unwrap().rest.limits.idle_timeout, Duration::from_secs(2));
    for (key, value, expected) in [
        (
            "max_header_bytes",
            json!(100),
            "api.restapi.max_header_bytes: must be at least 4096",
        ),
        (
            "max_connections",
            json!(0),
            "api.restapi.max_connections: must be at least 1",
        ),
        ("read_timeout", json!("soon"), "api.restapi.read_timeout"),
    ] {
        let mut bad = ServiceConfig::default_json("p", SECRET);
        bad["api"]["restapi"][key] = value;
        let error = parse(&bad).unwrap_err().to_string();
        assert!(error.contains(expected), "{key}: {error}");
    }
}
