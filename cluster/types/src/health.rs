//! The health and maintenance shapes of the REST API (reference §1.8): the connectivity graph
//! (`GET /health/graph`), repository garbage collection (`POST /ipfs/gc`) and bandwidth
//! (`GET /health/bandwidth`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Cid, PeerId};

/// Who is connected to whom, as seen from one member (Go `api.ConnectGraph`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectGraph {
    /// The member that built the graph.
    pub cluster_id: PeerId,
    /// Cluster peer id → peer name.
    #[serde(default)]
    pub id_to_peername: BTreeMap<String, String>,
    /// IPFS peer id → the IPFS peers its daemon is connected to.
    #[serde(default)]
    pub ipfs_links: BTreeMap<String, Vec<String>>,
    /// Cluster peer id → the members it is connected to.
    #[serde(default)]
    pub cluster_links: BTreeMap<String, Vec<PeerId>>,
    /// Cluster peer id → whether it is trusted (every Raft member is).
    #[serde(default)]
    pub cluster_trust_links: BTreeMap<String, bool>,
    /// Cluster peer id → the IPFS peer id of its daemon.
    #[serde(default)]
    pub cluster_to_ipfs: BTreeMap<String, String>,
}

/// One key removed by a repository GC, or an error met while collecting (Go `api.IPFSRepoGC`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoGcKey {
    /// The removed block.
    #[serde(default)]
    pub key: Option<Cid>,
    /// Why a key could not be removed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// The result of a repository GC on one member's daemon (Go `api.RepoGC`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoGc {
    /// The member.
    pub peer: PeerId,
    /// Its peer name.
    #[serde(default)]
    pub peername: String,
    /// Removed keys (and per-key errors).
    #[serde(default)]
    pub keys: Vec<RepoGcKey>,
    /// Why the GC failed on this member, empty when it ran.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// Repository GC results of every member (Go `api.GlobalRepoGC`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalRepoGc {
    /// Member peer id → its result.
    pub peer_map: BTreeMap<String, RepoGc>,
}

/// Traffic of one protocol (Go `api.BandwidthByProtocol` values).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bandwidth {
    /// Bytes received.
    pub total_in: i64,
    /// Bytes sent.
    pub total_out: i64,
    /// Receive rate, bytes per second.
    pub rate_in: f64,
    /// Send rate, bytes per second.
    pub rate_out: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_gc_json_matches_go() {
        let peer: PeerId = "12D3KooWQYaGw4V3Tk8XQnC8qzYHq1bvrXPWdrpaVZMj7hEqN9Pj".parse().unwrap();
        let cid: Cid = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH".parse().unwrap();
        let gc = GlobalRepoGc {
            peer_map: BTreeMap::from([(
                peer.to_string(),
                RepoGc {
                    peer,
                    peername: "a".into(),
                    keys: vec![
                        RepoGcKey {
                            key: Some(cid),
                            error: String::new(),
                        },
                        RepoGcKey {
                            key: None,
                            error: "busy".into(),
                        },
                    ],
                    error: String::new(),
                },
            )]),
        };
        assert_eq!(
            serde_json::to_string(&gc).unwrap(),
            format!(
                r#"{{"peer_map":{{"{peer}":{{"peer":"{peer}","peername":"a","keys":[{{"key":"{cid}"}},{{"key":null,"error":"busy"}}]}}}}}}"#
            )
        );
    }

    #[test]
    fn connect_graph_has_every_go_key() {
        let graph = ConnectGraph {
            cluster_id: "12D3KooWQYaGw4V3Tk8XQnC8qzYHq1bvrXPWdrpaVZMj7hEqN9Pj".parse().unwrap(),
            id_to_peername: BTreeMap::new(),
            ipfs_links: BTreeMap::new(),
            cluster_links: BTreeMap::new(),
            cluster_trust_links: BTreeMap::new(),
            cluster_to_ipfs: BTreeMap::new(),
        };
        let json = serde_json::to_value(graph).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        for key in [
            "cluster_id",
            "id_to_peername",
            "ipfs_links",
            "cluster_links",
            "cluster_trust_links",
            "cluster_to_ipfs",
        ] {
            assert!(keys.contains(&key), "{key} missing from {json}");
        }
    }
}
