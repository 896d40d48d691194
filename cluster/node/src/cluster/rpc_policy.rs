//! Who may make which RPC call, by the peer id the transport authenticated (libp2p's secure
//! channel; the cluster secret only lets a peer connect). Go's Raft mode trusts every peer that
//! holds the secret; we do not. Pure: the caller's standing and the request in, a verdict out.
//!
//! - Raft: AppendEntries and InstallSnapshot only from the leader they name, and RequestVote
//!   only from the candidate it names. That peer must be a voter of this member's membership,
//!   or be vouched for ([`Verdict::Vouch`]): a member that was down while others joined does
//!   not know the new leader until that leader's entries tell it (sim seed 1152369054 of the
//!   self-healing workload), so a voter it knows is asked whether the peer is one of theirs
//!   (`vouching.rs`). A vote request from outside the membership is [`Verdict::NotAMember`]:
//!   a member removed while it was away learns so from it.
//! - Joining: `id` is open; `peer add` and `peer promote` may come from the member being added
//!   (itself) or from a member forwarding it.
//! - Everything else (writes, status, recover, removals, metrics, GC, blocks, vouching) only
//!   from members; a metric only from the member it is about.

use cluster_consensus::{node_id_of, NodeId};
use cluster_rpc::RpcRequest;
use cluster_types::PeerId;

/// What this member knows of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    /// A voter of this member's membership.
    Voter,
    /// A learner of it (a member catching up).
    Learner,
    /// Not in it.
    Stranger,
    /// This member has no membership yet (it is joining): nobody can be told apart.
    NoMembershipYet,
}

/// Whether a call is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    Serve,
    Refuse(&'static str),
    /// A vote request from outside the membership: answered `NotAMember`.
    NotAMember,
    /// Raft replication from a leader this member's membership does not name as a voter:
    /// served only once a known voter vouches for it.
    Vouch,
}

/// The verdict on `request` from `from`, whose standing is `standing`.
pub(super) fn rpc_verdict(request: &RpcRequest, from: &PeerId, standing: Standing) -> Verdict {
    use RpcRequest::*;
    use Standing::*;
    let member = matches!(standing, Voter | Learner);
    let names_sender = |node: Option<NodeId>| node == Some(node_id_of(from));
    match request {
        AppendEntries(r) => raft_from_leader(names_sender(r.vote.leader_id().voted_for()), standing),
        InstallSnapshot(r) => raft_from_leader(names_sender(r.vote.leader_id().voted_for()), standing),
        Vote(r) if !names_sender(r.vote.leader_id().voted_for()) => {
            Verdict::Refuse("a vote request for another candidate")
        }
        // A voter this member has not learned of yet wins without its vote: the others know it.
        Vote(_) => match standing {
            Voter | NoMembershipYet => Verdict::Serve,
            Learner | Stranger => Verdict::NotAMember,
        },
        Id => Verdict::Serve,
        PeerAdd(node) | PeerPromote(node) if node.peer_id == *from || member => Verdict::Serve,
        PeerAdd(_) | PeerPromote(_) => Verdict::Refuse("adds or promotes another peer and is not a member"),
        PushMetric(metric) if metric.peer != *from => Verdict::Refuse("a metric about another peer"),
        _ if member => Verdict::Serve,
        _ => Verdict::Refuse("not a member of this cluster"),
    }
}

fn raft_from_leader(names_sender: bool, standing: Standing) -> Verdict {
    match standing {
        _ if !names_sender => Verdict::Refuse("Raft replication naming another leader"),
        Standing::Voter | Standing::NoMembershipYet => Verdict::Serve,
        Standing::Learner | Standing::Stranger => Verdict::Vouch,
    }
}

/// A short name of a request's kind, for logs and counters.
pub(super) fn kind_of(request: &RpcRequest) -> &'static str {
    match request {
        RpcRequest::AppendEntries(_) => "append_entries",
        RpcRequest::Vote(_) => "vote",
        RpcRequest::InstallSnapshot(_) => "install_snapshot",
        RpcRequest::Commit(_) => "commit",
        RpcRequest::Status(_) => "status",
        RpcRequest::StatusRange(_) => "status_range",
        RpcRequest::StatusPage(_) => "status_page",
        RpcRequest::Recover(_) => "recover",
        RpcRequest::RecoverAll => "recover_all",
        RpcRequest::Id => "id",
        RpcRequest::PeerAdd(_) => "peer_add",
        RpcRequest::PeerPromote(_) => "peer_promote",
        RpcRequest::PeerRemove(_) => "peer_remove",
        RpcRequest::PushMetric(_) => "push_metric",
        RpcRequest::RepoGc => "repo_gc",
        RpcRequest::SwarmPeers => "swarm_peers",
        RpcRequest::RepoStat => "repo_stat",
        RpcRequest::BlockPut(_) => "block_put",
        RpcRequest::Vouch(_) => "vouch",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_consensus::{Command, MemberNode, TypeConfig};
    use cluster_rpc::StatusRange;
    use cluster_types::{Cid, Metric, Pin, PinOptions};
    use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
    use openraft::{CommittedLeaderId, LogId, SnapshotMeta, Vote};

    fn peer(n: u8) -> PeerId {
        PeerId::from_ed25519_seed([n; 32])
    }

    fn vote_of(p: &PeerId) -> Vote<NodeId> {
        Vote::new_committed(3, node_id_of(p))
    }

    fn append_from(p: &PeerId) -> RpcRequest {
        RpcRequest::AppendEntries(AppendEntriesRequest::<TypeConfig> {
            vote: vote_of(p),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        })
    }

    fn snapshot_from(p: &PeerId) -> RpcRequest {
        RpcRequest::InstallSnapshot(InstallSnapshotRequest::<TypeConfig> {
            vote: vote_of(p),
            meta: SnapshotMeta {
                last_log_id: Some(LogId::new(CommittedLeaderId::new(3, node_id_of(p)), 1)),
                last_membership: Default::default(),
                snapshot_id: "s".into(),
            },
            offset: 0,
            data: Vec::new(),
            done: true,
        })
    }

    fn vote_for(p: &PeerId) -> RpcRequest {
        RpcRequest::Vote(VoteRequest::new(Vote::new(3, node_id_of(p)), None))
    }

    fn node(p: &PeerId) -> MemberNode {
        MemberNode {
            peer_id: *p,
            address: "/ip4/127.0.0.1/tcp/9096".into(),
        }
    }

    fn metric_of(p: &PeerId) -> RpcRequest {
        RpcRequest::PushMetric(Metric {
            name: "ping".into(),
            peer: *p,
            value: String::new(),
            expire: 0,
            valid: true,
            weight: 0,
            partitionable: false,
            received_at: 0,
        })
    }

    /// One request of every kind that only members may make.
    fn member_only_requests(cid: Cid) -> Vec<RpcRequest> {
        vec![
            RpcRequest::Commit(Command::Pin(Pin::new(cid, PinOptions::default()))),
            RpcRequest::Status(cid),
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
            RpcRequest::Recover(cid),
            RpcRequest::RecoverAll,
            RpcRequest::PeerRemove(peer(9)),
            RpcRequest::RepoGc,
            RpcRequest::SwarmPeers,
            RpcRequest::RepoStat,
            RpcRequest::BlockPut(Vec::new()),
        ]
    }

    /// A verdict in one word, for the table.
    fn word(verdict: &Verdict) -> &'static str {
        match verdict {
            Verdict::Serve => "serve",
            Verdict::Refuse(_) => "refuse",
            Verdict::NotAMember => "not-a-member",
            Verdict::Vouch => "vouch",
        }
    }

    #[test]
    fn the_rpc_policy_table() {
        use Standing::*;
        let (caller, other) = (peer(2), peer(3));
        let serve = Verdict::Serve;
        let refused = |v: &Verdict| matches!(v, Verdict::Refuse(_));
        const ALL: [&str; 4] = ["serve"; 4];
        const NONE: [&str; 4] = ["refuse"; 4];
        const MEMBERS: [&str; 4] = ["serve", "serve", "refuse", "refuse"];
        // (request from `caller`, verdict when it is a Voter, Learner, Stranger, NoMembershipYet).
        let table: Vec<(RpcRequest, [&str; 4])> = vec![
            (append_from(&caller), ["serve", "vouch", "vouch", "serve"]),
            (append_from(&other), NONE),
            (snapshot_from(&caller), ["serve", "vouch", "vouch", "serve"]),
            (snapshot_from(&other), NONE),
            (vote_for(&caller), ["serve", "not-a-member", "not-a-member", "serve"]),
            (vote_for(&other), NONE),
            (RpcRequest::Id, ALL),
            (RpcRequest::PeerAdd(node(&caller)), ALL),
            (RpcRequest::PeerAdd(node(&other)), MEMBERS),
            (RpcRequest::PeerPromote(node(&caller)), ALL),
            (RpcRequest::PeerPromote(node(&other)), MEMBERS),
            (metric_of(&caller), MEMBERS),
            (metric_of(&other), NONE),
            (RpcRequest::Vouch(other), MEMBERS),
        ];
        let standings = [Voter, Learner, Stranger, NoMembershipYet];
        for (request, expected) in &table {
            for (standing, want) in standings.iter().zip(expected) {
                let verdict = rpc_verdict(request, &caller, *standing);
                assert_eq!(word(&verdict), *want, "{} from a {standing:?}", kind_of(request));
            }
        }
        for request in member_only_requests(Cid::raw_sha256(b"x")) {
            for standing in standings {
                let verdict = rpc_verdict(&request, &caller, standing);
                let member = matches!(standing, Voter | Learner);
                assert_eq!(verdict == serve, member, "{} from a {standing:?}", kind_of(&request));
                assert!(member || refused(&verdict));
            }
        }
    }
}
