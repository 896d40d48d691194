//! The `peerstore` file and member addresses: `/ip4/../tcp/../p2p/<id>` into member records.
//! A member rewrites the file with the other members' addresses whenever they change, so its
//! data folder remembers which cluster it belongs to even if its Raft state is lost.

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

/// Writes the addresses of `members` other than `me` (those with an address) to `path`,
/// replacing it whole (written beside, then renamed).
pub(super) fn write_peerstore(path: &std::path::Path, members: &[MemberNode], me: &PeerId) -> std::io::Result<()> {
    let lines: Vec<String> = members
        .iter()
        .filter(|m| m.peer_id != *me && !m.address.is_empty())
        .map(|m| format!("{}/p2p/{}\n", m.address, m.peer_id))
        .collect();
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, lines.concat())?;
    std::fs::rename(&temp, path)
}

/// The file a member writes once it belongs to a cluster (beside `raft/`, which may be lost
/// without it).
pub const MEMBER_MARKER_FILE: &str = "cluster-member";

/// Writes [`MEMBER_MARKER_FILE`] in `folder` unless it is there.
pub(super) fn mark_member(folder: &std::path::Path) -> std::io::Result<()> {
    let path = folder.join(MEMBER_MARKER_FILE);
    if path.exists() {
        return Ok(());
    }
    std::fs::write(
        path,
        "This member belongs to a cluster: its Raft state is in raft/. If raft/ is lost, start it with \
         --bootstrap <a member's address> to rejoin; delete this file only to start a new cluster.\n",
    )
}

/// The file a member keeps while it joins with `--bootstrap`, until it votes: a member
/// restarted half way (without `--bootstrap`) finishes its join, and asks again if the change
/// that was demoting it for the join was finished the way a removal is.
pub const JOINING_MARKER_FILE: &str = "joining";

/// Writes [`JOINING_MARKER_FILE`] in `folder`.
pub(super) fn mark_joining(folder: &std::path::Path) -> std::io::Result<()> {
    std::fs::write(
        folder.join(JOINING_MARKER_FILE),
        "This member asked to join its cluster and does not vote yet; the file goes once it does.\n",
    )
}

/// Removes [`JOINING_MARKER_FILE`] from `folder` (nothing to do when it is not there).
pub(super) fn clear_joining(folder: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_file(folder.join(JOINING_MARKER_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Refuses to start (or start a cluster) when this member's Raft state is gone but it
/// belonged to a cluster: its data folder has [`MEMBER_MARKER_FILE`], or its peerstore names
/// other members while no initial peer set does. Alone it would elect itself and take writes
/// the others never see; with its peer set it would vote with an empty log.
pub(super) fn refuse_to_fork(
    data: &DataFolder,
    members: &BTreeMap<NodeId, MemberNode>,
    me: &PeerId,
) -> Result<(), NodeError> {
    let path = data.path().join(PEERSTORE_FILE);
    let marker = data.path().join(MEMBER_MARKER_FILE);
    let known: Vec<MemberNode> = read_peerstore(&path).into_iter().filter(|m| m.peer_id != *me).collect();
    let was_member = marker.exists();
    if !was_member && (members.len() > 1 || known.is_empty()) {
        return Ok(());
    }
    let example = match known.first() {
        Some(member) => format!(" (for example --bootstrap {}/p2p/{})", member.address, member.peer_id),
        None => String::new(),
    };
    let evidence = match was_member {
        true => format!("; {} says so", marker.display()),
        false => String::new(),
    };
    Err(NodeError::Config(format!(
        "this member has no Raft state ({} is empty or missing) but belonged to a cluster ({} lists {} other \
         members{evidence}): started as it is it would fork the pinset. To rejoin as a new, empty member, start it \
         with --bootstrap <a member's address>{example}; to start a new cluster on this member instead, delete {} \
         and {}",
        data.raft_dir().display(),
        path.display(),
        known.len(),
        path.display(),
        marker.display(),
    )))
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

    #[test]
    fn the_written_peerstore_reads_back_without_this_member() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PEERSTORE_FILE);
        let member = |i: u8, address: &str| MemberNode {
            peer_id: PeerId::from_ed25519_seed([i; 32]),
            address: address.into(),
        };
        let members = [
            member(1, "/ip4/10.0.0.1/tcp/9096"),
            member(2, "/ip4/10.0.0.2/tcp/9096"),
            member(3, ""),
        ];
        write_peerstore(&path, &members, &members[0].peer_id).unwrap();
        assert_eq!(read_peerstore(&path), vec![members[1].clone()]);
    }

    #[test]
    fn a_member_without_raft_state_but_with_a_cluster_in_its_peerstore_refuses_to_start_alone() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataFolder::lock(dir.path()).unwrap();
        let me = MemberNode {
            peer_id: PeerId::from_ed25519_seed([1; 32]),
            address: "/ip4/10.0.0.1/tcp/9096".into(),
        };
        let other = MemberNode {
            peer_id: PeerId::from_ed25519_seed([2; 32]),
            address: "/ip4/10.0.0.2/tcp/9096".into(),
        };
        let alone = BTreeMap::from([(node_id_of(&me.peer_id), me.clone())]);
        // A first start: no peerstore, or one naming only this member.
        assert!(refuse_to_fork(&data, &alone, &me.peer_id).is_ok());
        write_peerstore(&dir.path().join(PEERSTORE_FILE), std::slice::from_ref(&me), &me.peer_id).unwrap();
        assert!(refuse_to_fork(&data, &alone, &me.peer_id).is_ok());
        // It was in a cluster.
        write_peerstore(
            &dir.path().join(PEERSTORE_FILE),
            &[me.clone(), other.clone()],
            &me.peer_id,
        )
        .unwrap();
        let refused = refuse_to_fork(&data, &alone, &me.peer_id).unwrap_err().to_string();
        assert!(refused.contains("--bootstrap /ip4/10.0.0.2/tcp/9096/p2p/"), "{refused}");
        // A first start with an initial peer set (`init --peers` wrote the peerstore too).
        let with_peers = BTreeMap::from([
            (node_id_of(&me.peer_id), me.clone()),
            (node_id_of(&other.peer_id), other),
        ]);
        assert!(refuse_to_fork(&data, &with_peers, &me.peer_id).is_ok());
        // Once it has been a member, a lost Raft state is refused whatever the configuration says.
        mark_member(dir.path()).unwrap();
        assert!(refuse_to_fork(&data, &with_peers, &me.peer_id).is_err());
        std::fs::remove_file(dir.path().join(PEERSTORE_FILE)).unwrap();
        let refused = refuse_to_fork(&data, &alone, &me.peer_id).unwrap_err().to_string();
        assert!(
            refused.contains("--bootstrap") && refused.contains(MEMBER_MARKER_FILE),
            "{refused}"
        );
    }
}
