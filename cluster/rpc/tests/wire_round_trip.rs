//! Property: every kind of RPC request and response, with arbitrary contents, survives the wire
//! encoding (`wire::encode_*` then `wire::decode_*`) unchanged.

use std::collections::BTreeSet;

use cluster_consensus::{Command, CommandResponse, Committed, MemberNode, NodeId, Promotion, TypeConfig};
use cluster_rpc::wire::{decode_request, decode_response, encode_request, encode_response};
use cluster_rpc::{RpcRequest, RpcResponse, StatusPage, StatusRange, WireBlock};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership, Vote};
use proptest::prelude::*;

#[allow(dead_code)]
#[path = "../../types/src/strategies.rs"]
mod strategies;
use strategies::*;

fn vote() -> impl Strategy<Value = Vote<NodeId>> {
    (0u64..1000, any::<NodeId>(), any::<bool>()).prop_map(|(term, node, committed)| {
        if committed {
            Vote::new_committed(term, node)
        } else {
            Vote::new(term, node)
        }
    })
}

fn log_id() -> impl Strategy<Value = LogId<NodeId>> {
    (0u64..1000, any::<NodeId>(), any::<u64>())
        .prop_map(|(term, node, index)| LogId::new(CommittedLeaderId::new(term, node), index))
}

fn member() -> impl Strategy<Value = MemberNode> {
    peer_strategy().prop_map(|peer_id| MemberNode {
        peer_id,
        address: "/ip4/127.0.0.1/tcp/9096".into(),
    })
}

fn command() -> BoxedStrategy<Command> {
    let pin_strategy = || pin_strategy().boxed();
    let single = prop_oneof![
        pin_strategy().prop_map(Command::Pin),
        cid_strategy().prop_map(Command::Unpin),
        (pin_strategy(), pin_strategy()).prop_map(|(pin, previous)| Command::Reallocate {
            pin,
            previous: Box::new(previous)
        }),
        pin_strategy().prop_map(|previous| Command::Expire { previous }),
    ];
    prop_oneof![
        4 => single.clone(),
        1 => proptest::collection::vec(single, 0..3).prop_map(Command::Batch),
    ]
    .boxed()
}

fn membership() -> impl Strategy<Value = Membership<NodeId, MemberNode>> {
    proptest::collection::btree_map(any::<NodeId>(), member(), 1..4).prop_map(|nodes| {
        let voters: BTreeSet<NodeId> = nodes.keys().take(2).copied().collect();
        Membership::new(vec![voters], nodes)
    })
}

fn entry() -> BoxedStrategy<Entry<TypeConfig>> {
    let payload = prop_oneof![
        Just(EntryPayload::Blank),
        command().prop_map(EntryPayload::Normal),
        membership().prop_map(EntryPayload::Membership),
    ];
    (log_id(), payload)
        .prop_map(|(log_id, payload)| Entry { log_id, payload })
        .boxed()
}

fn request() -> impl Strategy<Value = RpcRequest> {
    let snapshot = (
        vote(),
        proptest::option::of(log_id()),
        text(),
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
    )
        .prop_map(|(vote, last_log_id, snapshot_id, offset, data, done)| {
            RpcRequest::InstallSnapshot(InstallSnapshotRequest::<TypeConfig> {
                vote,
                meta: SnapshotMeta {
                    last_log_id,
                    last_membership: StoredMembership::default(),
                    snapshot_id,
                },
                offset,
                data,
                done,
            })
        });
    let blocks = proptest::collection::vec(
        (cid_strategy(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(cid, data)| WireBlock { cid, data }),
        0..3,
    );
    prop_oneof![
        (
            vote(),
            proptest::option::of(log_id()),
            proptest::collection::vec(entry(), 0..3),
            proptest::option::of(log_id())
        )
            .prop_map(|(vote, prev_log_id, entries, leader_commit)| {
                RpcRequest::AppendEntries(AppendEntriesRequest {
                    vote,
                    prev_log_id,
                    entries,
                    leader_commit,
                })
            }),
        (vote(), proptest::option::of(log_id()))
            .prop_map(|(vote, last)| RpcRequest::Vote(VoteRequest::new(vote, last))),
        snapshot,
        command().prop_map(RpcRequest::Commit),
        cid_strategy().prop_map(RpcRequest::Status),
        (
            proptest::option::of(cid_strategy()),
            proptest::option::of(cid_strategy()),
            any::<u32>()
        )
            .prop_map(|(after, through, limit)| RpcRequest::StatusRange(StatusRange {
                after,
                through,
                limit,
                packed: false
            })),
        (
            proptest::option::of(cid_strategy()),
            proptest::option::of(cid_strategy()),
            any::<u32>(),
            any::<bool>()
        )
            .prop_map(|(after, through, limit, packed)| RpcRequest::StatusPage(StatusRange {
                after,
                through,
                limit,
                packed
            })),
        cid_strategy().prop_map(RpcRequest::Recover),
        Just(()).prop_map(|()| RpcRequest::RecoverAll),
        Just(()).prop_map(|()| RpcRequest::Id),
        member().prop_map(RpcRequest::PeerAdd),
        member().prop_map(RpcRequest::PeerPromote),
        peer_strategy().prop_map(RpcRequest::PeerRemove),
        metric_strategy().prop_map(RpcRequest::PushMetric),
        Just(()).prop_map(|()| RpcRequest::RepoGc),
        Just(()).prop_map(|()| RpcRequest::SwarmPeers),
        Just(()).prop_map(|()| RpcRequest::RepoStat),
        blocks.prop_map(RpcRequest::BlockPut),
        peer_strategy().prop_map(RpcRequest::Vouch),
    ]
}

fn result<T: std::fmt::Debug + 'static>(
    ok: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Result<T, cluster_types::ClusterError>> {
    prop_oneof![ok.prop_map(Ok), cluster_error_strategy().prop_map(Err)]
}

fn command_response() -> BoxedStrategy<CommandResponse> {
    let pin_strategy = || pin_strategy().boxed();
    let single = prop_oneof![
        Just(CommandResponse::Nothing),
        pin_strategy().prop_map(CommandResponse::Pinned),
        proptest::option::of(pin_strategy()).prop_map(CommandResponse::Unpinned),
        Just(CommandResponse::Unchanged),
    ];
    prop_oneof![
        4 => single.clone(),
        1 => proptest::collection::vec(single, 0..3).prop_map(CommandResponse::Batch),
    ]
    .boxed()
}

fn response() -> impl Strategy<Value = RpcResponse> {
    let append = prop_oneof![
        Just(()).prop_map(|()| AppendEntriesResponse::Success),
        proptest::option::of(log_id()).prop_map(AppendEntriesResponse::PartialSuccess),
        Just(()).prop_map(|()| AppendEntriesResponse::Conflict),
        vote().prop_map(AppendEntriesResponse::HigherVote),
    ];
    let vote_answer =
        (vote(), any::<bool>(), proptest::option::of(log_id())).prop_map(|(vote, vote_granted, last_log_id)| {
            VoteResponse {
                vote,
                vote_granted,
                last_log_id,
            }
        });
    let promotion = prop_oneof![
        Just(Promotion::Voter),
        (proptest::option::of(any::<u64>()), any::<u64>())
            .prop_map(|(matched, last)| Promotion::CatchingUp { matched, last }),
    ];
    let gc = (peer_strategy(), text(), text()).prop_map(|(peer, peername, error)| cluster_types::RepoGc {
        peer,
        peername,
        keys: Vec::new(),
        error,
    });
    let committed =
        (command_response(), any::<u64>()).prop_map(|(response, log_index)| Committed { response, log_index });
    let statuses = || proptest::collection::vec(pin_info_strategy(), 0..3);
    prop_oneof![
        result(append).prop_map(RpcResponse::AppendEntries),
        result(vote_answer).prop_map(RpcResponse::Vote),
        result(vote().prop_map(|vote| InstallSnapshotResponse { vote })).prop_map(RpcResponse::InstallSnapshot),
        result(committed).prop_map(RpcResponse::Commit),
        pin_info_strategy().prop_map(RpcResponse::Status),
        result((statuses(), proptest::option::of(cid_strategy()))).prop_map(RpcResponse::StatusRange),
        result(
            (statuses(), proptest::option::of(cid_strategy()), any::<bool>()).prop_map(
                |(statuses, stopped_at, packed)| {
                    let page = StatusPage::of_statuses(statuses, stopped_at);
                    if packed {
                        page.packed()
                    } else {
                        page
                    }
                }
            )
        )
        .prop_map(RpcResponse::StatusPage),
        result(pin_info_strategy()).prop_map(RpcResponse::Recover),
        result((statuses(), any::<u64>())).prop_map(RpcResponse::RecoverAll),
        id_strategy().prop_map(RpcResponse::Id),
        result(member()).prop_map(RpcResponse::PeerAdd),
        result(promotion).prop_map(RpcResponse::PeerPromote),
        result(Just(())).prop_map(RpcResponse::PeerRemove),
        Just(()).prop_map(|()| RpcResponse::PushMetric),
        gc.prop_map(RpcResponse::RepoGc),
        result(proptest::collection::vec(text(), 0..3)).prop_map(RpcResponse::SwarmPeers),
        result((any::<u64>(), any::<u64>())).prop_map(RpcResponse::RepoStat),
        result(Just(())).prop_map(RpcResponse::BlockPut),
        any::<bool>().prop_map(RpcResponse::Vouch),
        Just(()).prop_map(|()| RpcResponse::Starting),
        Just(()).prop_map(|()| RpcResponse::NotAMember),
        text().prop_map(RpcResponse::Refused),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_request_survives_the_wire(request in request()) {
        let bytes = encode_request(&request);
        let back = decode_request(&bytes)
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(format!("{back:?}"), format!("{request:?}"));
    }

    #[test]
    fn every_response_survives_the_wire(response in response()) {
        let bytes = encode_response(&response);
        let back = decode_response(&bytes)
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(format!("{back:?}"), format!("{response:?}"));
    }
}

/// The strategies above cover every variant: a new one fails to compile here until it is added.
#[allow(dead_code)]
fn every_variant_has_a_strategy(request: &RpcRequest, response: &RpcResponse) {
    match request {
        RpcRequest::AppendEntries(_)
        | RpcRequest::Vote(_)
        | RpcRequest::InstallSnapshot(_)
        | RpcRequest::Commit(_)
        | RpcRequest::Status(_)
        | RpcRequest::StatusRange(_)
        | RpcRequest::StatusPage(_)
        | RpcRequest::Recover(_)
        | RpcRequest::RecoverAll
        | RpcRequest::Id
        | RpcRequest::PeerAdd(_)
        | RpcRequest::PeerPromote(_)
        | RpcRequest::PeerRemove(_)
        | RpcRequest::PushMetric(_)
        | RpcRequest::RepoGc
        | RpcRequest::SwarmPeers
        | RpcRequest::RepoStat
        | RpcRequest::BlockPut(_)
        | RpcRequest::Vouch(_) => {}
    }
    match response {
        RpcResponse::AppendEntries(_)
        | RpcResponse::Vote(_)
        | RpcResponse::InstallSnapshot(_)
        | RpcResponse::Commit(_)
        | RpcResponse::Status(_)
        | RpcResponse::StatusRange(_)
        | RpcResponse::StatusPage(_)
        | RpcResponse::Recover(_)
        | RpcResponse::RecoverAll(_)
        | RpcResponse::Id(_)
        | RpcResponse::PeerAdd(_)
        | RpcResponse::PeerPromote(_)
        | RpcResponse::PeerRemove(_)
        | RpcResponse::PushMetric
        | RpcResponse::RepoGc(_)
        | RpcResponse::SwarmPeers(_)
        | RpcResponse::RepoStat(_)
        | RpcResponse::BlockPut(_)
        | RpcResponse::Vouch(_)
        | RpcResponse::Starting
        | RpcResponse::NotAMember
        | RpcResponse::Refused(_) => {}
    }
}
