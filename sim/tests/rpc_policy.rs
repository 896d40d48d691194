//! A peer that holds the cluster secret but is not a member sends every kind of RPC call to
//! every member, forging what it can (the leader's name, a member's metric): each call is
//! refused, and no pinset, membership, term or daemon changes. That includes Raft messages in
//! the outsider's own name with a higher term and a longer log, which a member that missed a
//! membership change could take for a new member's: no voter vouches for the outsider.
#![cfg(madsim)]

use std::net::SocketAddr;
use std::time::Duration;

use cluster_consensus::{node_id_of, Command, MemberNode, NodeId, TypeConfig};
use cluster_rpc::{RpcRequest, RpcResponse, SimTransport, StatusRange, Transport};
use cluster_sim::{poll_until, replay_hint, SimCluster};
use cluster_types::{Cid, Metric, PeerId, Pin, PinOptions};
use madsim::runtime::Handle;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{CommittedLeaderId, LogId, SnapshotMeta, Vote};

fn cid_of(i: u64) -> Cid {
    Cid::raw_sha256(format!("policy pin {i}").as_bytes())
}

/// Every kind of call, forged as well as the outsider can, against the cluster of `members`
/// led by `leader`.
fn forged_calls(outsider: PeerId, leader: NodeId, members: &[MemberNode], term: u64) -> Vec<RpcRequest> {
    let leader_vote = Vote::new_committed(term, leader);
    let far_log = Some(LogId::new(
        CommittedLeaderId::new(term + 5, node_id_of(&outsider)),
        1_000_000,
    ));
    let pin = Pin::new(cid_of(999), PinOptions::default());
    let append = |vote: Vote<NodeId>| {
        RpcRequest::AppendEntries(AppendEntriesRequest::<TypeConfig> {
            vote,
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: far_log,
        })
    };
    let snapshot = |vote: Vote<NodeId>| {
        RpcRequest::InstallSnapshot(InstallSnapshotRequest::<TypeConfig> {
            vote,
            meta: SnapshotMeta {
                last_log_id: far_log,
                last_membership: Default::default(),
                snapshot_id: "forged".into(),
            },
            offset: 0,
            data: b"{}\n".to_vec(),
            done: true,
        })
    };
    let own_vote = Vote::new_committed(term + 5, node_id_of(&outsider));
    vec![
        append(leader_vote),
        snapshot(leader_vote),
        append(own_vote),
        snapshot(own_vote),
        RpcRequest::Vote(VoteRequest::new(Vote::new(term + 5, node_id_of(&outsider)), far_log)),
        RpcRequest::Vote(VoteRequest::new(Vote::new(term + 5, node_id_of(&outsider)), None)),
        RpcRequest::Vote(VoteRequest::new(Vote::new(term + 5, leader), far_log)),
        RpcRequest::Commit(Command::Pin(pin)),
        RpcRequest::Commit(Command::Unpin(cid_of(0))),
        RpcRequest::Status(cid_of(0)),
        RpcRequest::StatusRange(StatusRange {
            after: None,
            through: None,
            limit: 100,
            packed: false,
        }),
        RpcRequest::StatusPage(StatusRange {
            after: None,
            through: None,
            limit: 100,
            packed: true,
        }),
        RpcRequest::Recover(cid_of(0)),
        RpcRequest::RecoverAll,
        RpcRequest::PeerRemove(members[0].peer_id),
        RpcRequest::PeerAdd(members[1].clone()),
        RpcRequest::PeerPromote(members[1].clone()),
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
        RpcRequest::PushMetric(Metric {
            name: "ping".into(),
            peer: outsider,
            value: String::new(),
            expire: i64::MAX,
            valid: true,
            weight: 0,
            partitionable: false,
            received_at: 0,
        }),
        RpcRequest::RepoGc,
        RpcRequest::SwarmPeers,
        RpcRequest::RepoStat,
        RpcRequest::BlockPut(Vec::new()),
        RpcRequest::Vouch(outsider),
    ]
}

#[madsim::test]
async fn every_rpc_call_from_a_non_member_is_refused_and_changes_nothing() {
    let handle = Handle::current();
    let size = 3;
    let cluster = SimCluster::start(&handle, size);
    let all: Vec<usize> = (0..size).collect();
    let leader = cluster.wait_leader(&all, Duration::from_secs(30)).await;
    for i in 0..5 {
        cluster
            .pin(leader, cid_of(i), 2)
            .await
            .expect("member up")
            .unwrap_or_else(|e| panic!("pin {i}: {e}; {}", replay_hint()));
    }
    // Every member has applied the pins and the daemons hold them.
    poll_until(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || "pins not placed".into(),
        || {
            let snapshots = cluster.snapshots();
            let daemon_pins: usize = snapshots.iter().map(|s| s.daemon_pins.len()).sum();
            snapshots.iter().all(|s| s.pins.len() == 5) && daemon_pins == 10
        },
    )
    .await;
    let before = cluster.snapshots();
    let members: Vec<MemberNode> = cluster
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| MemberNode {
            peer_id: m.identity.peer_id,
            address: format!("/ip4/{}/tcp/{}", cluster_sim::member_ip(i), cluster_sim::MEMBER_PORT),
        })
        .collect();
    let leader_node = node_id_of(&members[leader].peer_id);
    let term = before[leader].term.expect("leader up");

    let outsider = PeerId::from_ed25519_seed([200; 32]);
    let ip = "10.0.9.9".parse().expect("ip");
    let node = handle.create_node().name("outsider").ip(ip).build();
    let answers = node
        .spawn(async move {
            let transport = SimTransport::bind(SocketAddr::new(ip, cluster_sim::MEMBER_PORT), outsider)
                .await
                .expect("bind");
            let mut answers = Vec::new();
            for member in &members {
                for call in forged_calls(outsider, leader_node, &members, term) {
                    let name: String = format!("{call:?}").chars().take(60).collect();
                    let answer = transport.call(member, call, Duration::from_secs(5)).await;
                    answers.push((member.peer_id, name, answer));
                }
            }
            answers
        })
        .await
        .expect("outsider task");
    for (member, call, answer) in &answers {
        let refused = matches!(answer, Ok(RpcResponse::Refused(_)) | Ok(RpcResponse::NotAMember));
        assert!(refused, "{call} to {member}: {answer:?}; {}", replay_hint());
    }

    // Nothing changed: a while later every member holds the same pinset, membership and term,
    // the leader is the same, and the daemons hold the same pins.
    cluster_rt::sleep(Duration::from_secs(5)).await;
    let after = cluster.snapshots();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.pins, b.pins, "member {} pinset; {}", a.index, replay_hint());
        assert_eq!(a.term, b.term, "member {} term; {}", a.index, replay_hint());
        assert_eq!(
            a.is_leader,
            b.is_leader,
            "member {} leadership; {}",
            a.index,
            replay_hint()
        );
        assert_eq!(
            a.daemon_pins,
            b.daemon_pins,
            "member {} daemon; {}",
            a.index,
            replay_hint()
        );
    }
    for (i, member) in cluster.members.iter().enumerate() {
        let c = member.cluster().expect("member up");
        assert_eq!(
            c.consensus().members().len(),
            size,
            "member {i} membership; {}",
            replay_hint()
        );
        assert!(
            c.refused_rpc_calls() >= 15,
            "member {i} counted {} refused calls; {}",
            c.refused_rpc_calls(),
            replay_hint()
        );
    }
}
