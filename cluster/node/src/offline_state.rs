//! A stopped member's pinset, read and replaced in its data folder: what
//! `ipfs-cluster-service state export | import | cleanup` do (Go's offline state commands).
//! Callers hold the folder's lock ([`DataFolder`]), so no member runs on it meanwhile.
//!
//! Import is also the bulk path: a pinset of millions of pins goes into the store in one
//! transaction, read as it is stored, instead of one Raft entry per pin.

use std::io::{Read, Write};
use std::path::Path;

use cluster_state::{PinIter, RealDisk, State, StateError};
use cluster_types::{MemberNode, PeerId, Pin};

use crate::cluster::initial_members;
use crate::{DataFolder, Identity, NodeConfig, NodeError};

/// What `state import` changes in every pin it reads (Go's `--rmin`, `--rmax`, `--allocs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOverrides {
    /// Replaces `replication_factor_min` when above 0.
    pub replication_factor_min: i32,
    /// Replaces `replication_factor_max` when above 0.
    pub replication_factor_max: i32,
    /// Replaces the allocations when not empty.
    pub allocations: Vec<PeerId>,
}

impl ImportOverrides {
    fn apply(&self, pin: &mut Pin) {
        if self.replication_factor_min > 0 {
            pin.options.replication_factor_min = self.replication_factor_min;
        }
        if self.replication_factor_max > 0 {
            pin.options.replication_factor_max = self.replication_factor_max;
        }
        if !self.allocations.is_empty() {
            pin.allocations = self.allocations.clone();
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Pins now in the pinset.
    pub pins: u64,
    /// The members of the cluster the pinset starts (see [`import_state`]).
    pub members: Vec<MemberNode>,
}

fn open_state(data: &DataFolder) -> Result<std::sync::Arc<dyn State>, NodeError> {
    crate::cluster::open_state(data, std::sync::Arc::new(RealDisk))
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> NodeError {
    NodeError::Io {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

/// Writes every pin of the member's pinset to `out`, one JSON object per line (Go's export
/// format), in CID order, a page at a time. Returns how many.
pub fn export_state(data: &DataFolder, out: &mut dyn Write) -> Result<u64, NodeError> {
    if !data.state_file().exists() {
        return Ok(0);
    }
    let state = open_state(data)?;
    let mut written = 0u64;
    let stdout_error = |e: std::io::Error| NodeError::Io {
        path: "the export output".into(),
        message: e.to_string(),
    };
    for pin in PinIter::new(state.as_ref(), 1000) {
        serde_json::to_writer(&mut *out, &pin?).map_err(|e| stdout_error(e.into()))?;
        out.write_all(b"\n").map_err(stdout_error)?;
        written += 1;
    }
    out.flush().map_err(stdout_error)?;
    Ok(written)
}

/// Replaces the member's pinset with the pins in `input` (JSON objects, as `export_state`
/// writes them; whitespace between them is free, as Go's decoder reads them), each changed by
/// `overrides`, and replaces its Raft folder with a snapshot of them at its cluster's first log
/// entry: started again, the member begins from that pinset. Every member of a cluster must import the
/// same file while all are stopped, as in Go.
///
/// The cluster is the one the member belonged to (the membership its pinset was last applied
/// in), or, for a member that never was in one, the members of a first start: this one and
/// `consensus.raft.init_peerset`. A pin that does not read fails the import and changes
/// nothing.
pub fn import_state(
    data: &DataFolder,
    config: &NodeConfig,
    identity: &Identity,
    input: &mut dyn Read,
    overrides: &ImportOverrides,
) -> Result<Imported, NodeError> {
    let me = MemberNode {
        peer_id: identity.peer_id,
        address: config.cluster.listen_multiaddress.first().cloned().unwrap_or_default(),
    };
    let state = open_state(data)?;
    // Read only for a member that never was in a cluster, as at a first start.
    let fresh = match cluster_consensus::applied_members(state.as_ref())?.is_empty() {
        true => initial_members(config, identity, data, &me)?,
        false => Default::default(),
    };
    let mut count = 0u64;
    let mut pins = serde_json::Deserializer::from_reader(input)
        .into_iter::<Pin>()
        .map(|pin| match pin {
            Ok(mut pin) => {
                count += 1;
                overrides.apply(&mut pin);
                Ok(pin)
            }
            Err(e) => Err(StateError::Corrupt(format!(
                "the import's pin number {} does not read: {e}",
                count + 1
            ))),
        });
    // The new Raft folder (the snapshot of the imported pinset) is made beside the old one,
    // which a failed import leaves as it was.
    let raft = data.raft_dir();
    let importing = raft.with_extension("importing");
    let remove = |folder: &Path| match std::fs::remove_dir_all(folder) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(folder, e)),
        _ => Ok(()),
    };
    remove(&importing)?;
    let imported = cluster_consensus::import_pinset(state.as_ref(), &mut pins, fresh, &importing);
    drop(pins);
    drop(state);
    let members = match imported {
        Ok(members) => members,
        Err(e) => {
            remove(&importing)?;
            return Err(e.into());
        }
    };
    remove(&raft)?;
    std::fs::rename(&importing, &raft).map_err(|e| io_error(&raft, e))?;
    Ok(Imported { pins: count, members })
}

/// Removes the member's pinset and Raft data (`state cleanup`): its next start is a first
/// start. The identity, configuration and peerstore stay.
pub fn cleanup_state(data: &DataFolder) -> Result<(), NodeError> {
    for folder in [data.raft_dir(), data.path().join("state")] {
        if folder.exists() {
            std::fs::remove_dir_all(&folder).map_err(|e| io_error(&folder, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceConfig;
    use cluster_types::{Cid, PinOptions};

    const SECRET: &str = "2588b80d5cb05374fa142aed6cbb047d1f4ef8ef15e37eba68c65b9d30df67ed";

    fn config() -> NodeConfig {
        let json = ServiceConfig::default_json("p", SECRET);
        ServiceConfig::parse(&json.to_string(), "/x/service.json")
            .unwrap()
            .validate()
            .unwrap()
    }

    fn pin(n: u8) -> Pin {
        let mut pin = Pin::new(
            Cid::raw_sha256(&[n]),
            PinOptions {
                name: format!("pin {n}"),
                replication_factor_min: 1,
                replication_factor_max: 2,
                ..Default::default()
            },
        );
        pin.allocations = vec![PeerId::from_ed25519_seed([n; 32])];
        pin
    }

    fn exported(data: &DataFolder) -> Vec<Pin> {
        let mut out = Vec::new();
        let count = export_state(data, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count() as u64, count);
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    fn by_cid(mut pins: Vec<Pin>) -> Vec<Pin> {
        pins.sort_by_key(|p| p.cid.to_bytes());
        pins
    }

    #[test]
    fn an_import_is_exported_back_as_it_was_with_the_overrides_and_the_raft_folder_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataFolder::lock(dir.path()).unwrap();
        let identity = Identity::from_seed([1; 32]);
        assert!(exported(&data).is_empty(), "a member that never ran exports nothing");
        std::fs::create_dir_all(data.raft_dir()).unwrap();
        std::fs::write(data.raft_dir().join("raft-log.redb"), b"old log").unwrap();

        let pins: Vec<Pin> = (0..5).map(pin).collect();
        // Go's decoder takes any whitespace between the objects.
        let mut input = String::new();
        for pin in &pins {
            input.push_str(&serde_json::to_string_pretty(pin).unwrap());
            input.push_str("\n\n");
        }
        let imported = import_state(&data, &config(), &identity, &mut input.as_bytes(), &Default::default()).unwrap();
        assert_eq!(imported.pins, 5);
        assert_eq!(imported.members.len(), 1);
        assert_eq!(imported.members[0].peer_id, identity.peer_id);
        let raft: Vec<String> = std::fs::read_dir(data.raft_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !raft.contains(&"raft-log.redb".to_string()) && raft.contains(&"snapshot-deferred.json".to_string()),
            "the member starts from a snapshot of the imported pinset: {raft:?}"
        );
        assert_eq!(exported(&data), by_cid(pins.clone()));

        let overrides = ImportOverrides {
            replication_factor_min: 2,
            replication_factor_max: 3,
            allocations: vec![identity.peer_id],
        };
        let input: String = pins.iter().map(|p| serde_json::to_string(p).unwrap() + "\n").collect();
        import_state(&data, &config(), &identity, &mut input.as_bytes(), &overrides).unwrap();
        for pin in exported(&data) {
            assert_eq!(
                (
                    pin.options.replication_factor_min,
                    pin.options.replication_factor_max,
                    pin.allocations
                ),
                (2, 3, vec![identity.peer_id])
            );
        }
    }

    #[test]
    fn a_pin_that_does_not_read_fails_the_import_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataFolder::lock(dir.path()).unwrap();
        let identity = Identity::from_seed([1; 32]);
        let before: String = (0..3).map(|n| serde_json::to_string(&pin(n)).unwrap() + "\n").collect();
        import_state(&data, &config(), &identity, &mut before.as_bytes(), &Default::default()).unwrap();
        std::fs::create_dir_all(data.raft_dir()).unwrap();
        for bad in [
            format!("{}\nnot json\n", serde_json::to_string(&pin(7)).unwrap()),
            format!(
                "{}\n{{\"cid\": \"not a cid\"}}\n",
                serde_json::to_string(&pin(7)).unwrap()
            ),
        ] {
            let error =
                import_state(&data, &config(), &identity, &mut bad.as_bytes(), &Default::default()).unwrap_err();
            assert!(error.to_string().contains("pin number 2"), "{error}");
            assert_eq!(exported(&data), by_cid((0..3).map(pin).collect()));
            assert!(data.raft_dir().exists(), "a failed import leaves the Raft folder");
            assert!(!data.raft_dir().with_extension("importing").exists());
        }
    }

    #[test]
    fn a_member_of_a_cluster_keeps_its_cluster_and_cleanup_forgets_everything() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataFolder::lock(dir.path()).unwrap();
        let identity = Identity::from_seed([1; 32]);
        let other = Identity::from_seed([2; 32]).peer_id;
        let mut config = config();
        std::fs::write(
            dir.path().join(crate::PEERSTORE_FILE),
            format!("/ip4/127.0.0.1/tcp/9196/p2p/{other}\n"),
        )
        .unwrap();
        config.init_peerset = vec![other.to_string()];
        import_state(&data, &config, &identity, &mut "".as_bytes(), &Default::default()).unwrap();
        // The cluster it belongs to now is the one a second import keeps, whatever the
        // configuration says.
        config.init_peerset.clear();
        let imported = import_state(&data, &config, &identity, &mut "".as_bytes(), &Default::default()).unwrap();
        let mut members: Vec<PeerId> = imported.members.iter().map(|m| m.peer_id).collect();
        members.sort_by_key(|p| p.to_string());
        let mut expected = vec![identity.peer_id, other];
        expected.sort_by_key(|p| p.to_string());
        assert_eq!(members, expected);

        cleanup_state(&data).unwrap();
        assert!(!data.state_file().exists() && !data.raft_dir().exists());
        assert!(dir.path().join(crate::PEERSTORE_FILE).exists());
        assert!(exported(&data).is_empty());
    }
}
