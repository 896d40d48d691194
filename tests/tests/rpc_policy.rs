//! A throw-away libp2p peer that holds the cluster secret but is not a member calls real member
//! processes over the real transport: every state-changing, data-revealing or Raft call is
//! refused, and the pinset and the membership stay as they were.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use cluster_consensus::{node_id_of, Command, MemberNode, TypeConfig};
use cluster_p2p::{P2pConfig, P2pTransport};
use cluster_rpc::{RpcRequest, RpcResponse, StatusRange, Transport};
use cluster_tests::{json_values, stdout, ClusterMember};
use cluster_types::{Cid, Metric, PeerId, Pin, PinOptions};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{CommittedLeaderId, LogId, Vote};

const SECRET: &str = "5a1c2b3a495867768594a3b2c1d0e9f8a7b6c5d4e3f2011f2e3d4c5b6a798897";

fn member_node(member: &ClusterMember) -> MemberNode {
    MemberNode {
        peer_id: member.dir.peer_id().parse().expect("peer id"),
        address: format!("/ip4/127.0.0.1/tcp/{}", member.dir.cluster_port),
    }
}

/// Calls an outsider may forge against `members`, `leader` among them.
fn forged(outsider: PeerId, members: &[MemberNode], leader: &MemberNode) -> Vec<RpcRequest> {
    let far_log = Some(LogId::new(CommittedLeaderId::new(50, node_id_of(&outsider)), 1_000_000));
    let cid: Cid = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9".parse().unwrap();
    vec![
        RpcRequest::Commit(Command::Pin(Pin::new(cid, PinOptions::default()))),
        RpcRequest::PeerRemove(members[1].peer_id),
        RpcRequest::PushMetric(Metric {
            name: "freespace".into(),
            peer: members[2].peer_id,
            value: "1".into(),
            expire: i64::MAX,
            valid: true,
            weight: 0,
            partitionable: false,
            received_at: 0,
        }),
        RpcRequest::RepoGc,
        RpcRequest::StatusRange(StatusRange {
            after: None,
            through: None,
            limit: 10,
            packed: false,
        }),
        RpcRequest::StatusPage(StatusRange {
            after: None,
            through: None,
            limit: 10,
            packed: true,
        }),
        RpcRequest::AppendEntries(AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(50, node_id_of(&leader.peer_id)),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: far_log,
        }),
        // In its own name, with a higher term and a longer log: no voter vouches for it.
        RpcRequest::AppendEntries(AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(50, node_id_of(&outsider)),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: far_log,
        }),
        RpcRequest::Vote(VoteRequest::new(Vote::new(50, node_id_of(&outsider)), None)),
        RpcRequest::Vote(VoteRequest::new(Vote::new(50, node_id_of(&outsider)), far_log)),
        RpcRequest::PeerAdd(members[0].clone()),
    ]
}

#[test]
fn a_peer_with_the_secret_but_not_a_member_is_refused_over_the_real_transport() {
    let members = cluster_tests::start_cluster(3, SECRET);
    let nodes: Vec<MemberNode> = members.iter().map(member_node).collect();
    let leader = members.iter().position(ClusterMember::is_leader).unwrap_or(0);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the outsider");
    runtime.block_on(async {
        let outsider = P2pTransport::start(P2pConfig {
            keypair: libp2p_identity::Keypair::generate_ed25519(),
            secret: hex_secret(),
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        })
        .await
        .expect("the outsider's host starts on loopback");
        let outsider_id = PeerId(outsider.peer_id());
        for node in &nodes {
            for call in forged(outsider_id, &nodes, &nodes[leader]) {
                let name: String = format!("{call:?}").chars().take(50).collect();
                let answer = outsider.call(node, call, Duration::from_secs(20)).await;
                assert!(
                    matches!(answer, Ok(RpcResponse::Refused(_)) | Ok(RpcResponse::NotAMember)),
                    "{name} to {}: {answer:?}",
                    node.peer_id
                );
            }
            // Asking who a member is stays open (as in Go).
            let id = outsider.call(node, RpcRequest::Id, Duration::from_secs(20)).await;
            assert!(matches!(id, Ok(RpcResponse::Id(_))), "{id:?}");
        }
    });
    for member in &members {
        assert!(member.pinset().is_empty(), "no pin was committed");
        let peers = json_values(&stdout(&member.ctl(&["--enc", "json", "peers", "ls"])));
        assert_eq!(peers.len(), 3, "nobody was removed: {peers:?}");
        assert!(member.log().contains("refused an RPC call"), "the refusal is logged");
    }
    // The members still work together.
    let output = members[1].ctl(&["pin", "add", "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9"]);
    assert!(output.status.success(), "{}", stdout(&output));
}

fn hex_secret() -> Vec<u8> {
    (0..SECRET.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&SECRET[i..i + 2], 16).unwrap())
        .collect()
}
