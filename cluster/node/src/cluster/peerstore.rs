//! The `peerstore` file and member addresses: `/ip4/../tcp/../p2p/<id>` into member records.

use super::*;

/// The file of known member addresses beside service.json (Go's `peerstore`: one multiaddress
/// with `/p2p/<peer id>` per line).
pub const PEERSTORE_FILE: &str = "peerstore";

/// The member records in a peerstore file; a missing file or bad lines give nothing (warned).
pub(super) fn read_peerstore(path: &std::path::Path) -> Vec<MemberNode> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| match member_of_address(line) {
            Ok(member) => Some(member),
            Err(e) => {
                tracing::warn!("{}: ignoring {line:?}: {e}", path.display());
                None
            }
        })
        .collect()
}

/// The members to join through, from `--bootstrap` addresses.
pub(super) fn bootstrap_members(addresses: &[String]) -> Result<Vec<MemberNode>, NodeError> {
    addresses
        .iter()
        .map(|address| member_of_address(address).map_err(|e| NodeError::Config(format!("--bootstrap: {e}"))))
        .collect()
}

/// A member record from an `init_peerset` address (`/ip4/../tcp/../p2p/<peer id>`).
pub(super) fn member_of_address(address: &str) -> Result<MemberNode, NodeError> {
    let parsed: multiaddr::Multiaddr = address
        .parse()
        .map_err(|e| NodeError::Config(format!("consensus.raft.init_peerset: {address:?}: {e}")))?;
    let peer = parsed
        .iter()
        .find_map(|p| match p {
            multiaddr::Protocol::P2p(peer) => Some(peer),
            _ => None,
        })
        .ok_or_else(|| {
            NodeError::Config(format!(
                "consensus.raft.init_peerset: {address:?} has no /p2p/<peer id>"
            ))
        })?;
    let peer = PeerId::from_bytes(&peer.to_bytes())
        .map_err(|e| NodeError::Config(format!("consensus.raft.init_peerset: {address:?}: {e}")))?;
    let without_peer: multiaddr::Multiaddr = parsed
        .iter()
        .filter(|p| !matches!(p, multiaddr::Protocol::P2p(_)))
        .collect();
    Ok(MemberNode {
        peer_id: peer,
        address: without_peer.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peerstore_lines_become_member_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PEERSTORE_FILE);
        let peer = PeerId::from_ed25519_seed([4; 32]);
        std::fs::write(&path, format!("/ip4/10.0.0.4/tcp/9096/p2p/{peer}\n\nnot an address\n")).unwrap();
        let members = read_peerstore(&path);
        assert_eq!(
            members,
            vec![MemberNode {
                peer_id: peer,
                address: "/ip4/10.0.0.4/tcp/9096".into()
            }]
        );
        assert!(read_peerstore(&dir.path().join("missing")).is_empty());
    }
}
