//! The conformance suite every [`IpfsConnector`] must pass: the fake the simulator uses, the
//! Kubo connector over the fake Kubo server, and the Kubo connector over a real daemon (in the
//! real-daemon process test). What the cluster relies on, checked the same way for all three, so
//! the fakes cannot drift from what a daemon does.
//!
//! Compiled for this crate's tests and, for other crates, with the `testing` feature. Checks panic
//! on failure like any test assertion. The daemon must start empty of the suite's blocks; `tag`
//! makes them distinct when a daemon is reused.
//!
//! ```ignore
//! cluster_ipfs::testing::run_conformance_suite(&connector, "run-1").await;
//! ```

use cluster_types::Cid;
use futures::StreamExt;

use crate::{GcEntry, IpfsConnector, IpfsPinType};

/// A raw block of the suite: its CIDv1 (raw codec, sha2-256) and its data.
fn block(tag: &str, name: &str) -> (Cid, bytes::Bytes) {
    let data = bytes::Bytes::from(format!("ipfs connector conformance {tag} {name}"));
    (Cid::raw_sha256(&data), data)
}

/// Whether two CIDs name the same block (daemons may answer another CID version or codec).
fn same_block(a: &Cid, b: &Cid) -> bool {
    a.0.hash() == b.0.hash()
}

/// Runs every check against `ipfs`; see the module comment.
pub async fn run_conformance_suite(ipfs: &dyn IpfsConnector, tag: &str) {
    identity_and_version(ipfs).await;
    let (a, b, c, d) = (block(tag, "a"), block(tag, "b"), block(tag, "c"), block(tag, "d"));
    blocks_are_stored_only_under_their_own_cid(ipfs, &a, &b, &[b.clone(), c.clone(), d.clone()]).await;
    pins_are_typed_idempotent_and_listed(ipfs, &a.0, &b.0, &c.0).await;
    pins_many_at_once(ipfs, &[c.0, d.0, a.0]).await;
    unpin_is_idempotent(ipfs, &a.0, &block(tag, "never stored").0).await;
    plain_paths_resolve(ipfs, &a.0).await;
    repository_reports(ipfs).await;
    gc_removes_unpinned_blocks_only(ipfs, &a.0, &b.0).await;
}

async fn identity_and_version(ipfs: &dyn IpfsConnector) {
    let id = ipfs.id().await.expect("id");
    assert!(!id.id.is_empty(), "id: the daemon's peer id is empty");
    assert!(id.error.is_empty(), "id: error {:?}", id.error);
    let version = ipfs.version().await.expect("version");
    assert!(!version.is_empty(), "version: empty");
}

async fn blocks_are_stored_only_under_their_own_cid(
    ipfs: &dyn IpfsConnector,
    a: &(Cid, bytes::Bytes),
    b: &(Cid, bytes::Bytes),
    many: &[(Cid, bytes::Bytes)],
) {
    ipfs.block_put(&a.0, a.1.clone()).await.expect("block_put of a block");
    let wrong = ipfs.block_put(&b.0, a.1.clone()).await;
    assert!(wrong.is_err(), "block_put of other data under {} succeeded", b.0);
    ipfs.block_put_many(many.to_vec()).await.expect("block_put_many");
}

async fn pins_are_typed_idempotent_and_listed(ipfs: &dyn IpfsConnector, a: &Cid, b: &Cid, c: &Cid) {
    ipfs.pin(a, -1).await.expect("recursive pin");
    ipfs.pin(a, -1).await.expect("a second recursive pin of the same CID");
    ipfs.pin(b, 0).await.expect("direct pin");
    assert_eq!(
        ipfs.pin_ls_cid(a).await.expect("pin_ls_cid"),
        Some(IpfsPinType::Recursive)
    );
    assert_eq!(ipfs.pin_ls_cid(b).await.expect("pin_ls_cid"), Some(IpfsPinType::Direct));
    assert_eq!(
        ipfs.pin_ls_cid(c)
            .await
            .expect("pin_ls_cid of a stored, unpinned block"),
        None
    );
    let listed: Vec<Cid> = ipfs
        .pin_ls()
        .await
        .expect("pin_ls")
        .map(|cid| cid.expect("pin_ls item"))
        .collect()
        .await;
    assert!(
        listed.iter().any(|cid| same_block(cid, a)),
        "pin_ls lists the recursive pin {a}: {listed:?}"
    );
    assert!(
        !listed.iter().any(|cid| same_block(cid, b) || same_block(cid, c)),
        "pin_ls lists recursive pins only: {listed:?}"
    );
}

/// `cids` are stored; the last is pinned already. Leaves the others unpinned again.
async fn pins_many_at_once(ipfs: &dyn IpfsConnector, cids: &[Cid]) {
    ipfs.pin_many(cids, -1).await.expect("pin_many");
    for cid in cids {
        assert_eq!(
            ipfs.pin_ls_cid(cid).await.expect("pin_ls_cid after pin_many"),
            Some(IpfsPinType::Recursive),
            "pin_many pinned {cid}"
        );
    }
    for cid in &cids[..cids.len() - 1] {
        ipfs.unpin(cid).await.expect("unpin after pin_many");
    }
}

async fn unpin_is_idempotent(ipfs: &dyn IpfsConnector, a: &Cid, never_stored: &Cid) {
    ipfs.unpin(a).await.expect("unpin");
    assert_eq!(ipfs.pin_ls_cid(a).await.expect("pin_ls_cid after unpin"), None);
    ipfs.unpin(a).await.expect("unpin of a CID no longer pinned");
    ipfs.unpin(never_stored).await.expect("unpin of a CID never pinned");
}

async fn plain_paths_resolve(ipfs: &dyn IpfsConnector, a: &Cid) {
    let resolved = ipfs.resolve(&format!("/ipfs/{a}")).await.expect("resolve /ipfs/<cid>");
    assert!(same_block(&resolved, a), "resolve /ipfs/{a} gave {resolved}");
}

async fn repository_reports(ipfs: &dyn IpfsConnector) {
    let stat = ipfs.repo_stat().await.expect("repo_stat");
    assert!(stat.storage_max > 0, "repo_stat: no storage limit reported: {stat:?}");
    ipfs.swarm_peers().await.expect("swarm_peers");
}

/// `a` was unpinned, `b` is pinned directly.
async fn gc_removes_unpinned_blocks_only(ipfs: &dyn IpfsConnector, a: &Cid, b: &Cid) {
    let entries = ipfs.repo_gc().await.expect("repo_gc");
    let removed: Vec<&Cid> = entries
        .iter()
        .filter_map(|entry| match entry {
            GcEntry::Removed(cid) => Some(cid),
            GcEntry::Error(_) => None,
        })
        .collect();
    assert!(
        removed.iter().any(|cid| same_block(cid, a)),
        "repo_gc removes the unpinned block {a}: {entries:?}"
    );
    assert!(
        !removed.iter().any(|cid| same_block(cid, b)),
        "repo_gc keeps the pinned block {b}: {entries:?}"
    );
    assert_eq!(
        ipfs.pin_ls_cid(b).await.expect("pin_ls_cid after gc"),
        Some(IpfsPinType::Direct)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FakeIpfs;

    #[tokio::test]
    async fn the_fake_daemon_passes() {
        run_conformance_suite(&FakeIpfs::new("12D3KooWConformance".into()), "fake").await;
    }
}
