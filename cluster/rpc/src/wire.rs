//! The bytes of a request or response between processes: serde JSON of [`RpcRequest`] and
//! [`RpcResponse`]. Raft's messages already derive serde, so one encoding carries everything.
//! JSON keeps the wire readable in a packet capture; the frame size cap bounds memory.

use serde::{de::DeserializeOwned, Serialize};

use crate::{RpcRequest, RpcResponse};

/// The libp2p protocol name of the member-to-member RPC. The version changes with any
/// incompatible change of [`RpcRequest`] or [`RpcResponse`].
pub const PROTOCOL: &str = "/ipfs-cluster-rs/rpc/1.0.0";

/// The largest request or response accepted (a Raft snapshot chunk, or a batch of entries,
/// fits well below it).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable RPC frame: {0}")]
pub struct WireError(pub String);

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("RPC types serialize: their fields are plain data")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MAX_FRAME {
        return Err(WireError(format!(
            "{} bytes is over the {MAX_FRAME} byte limit",
            bytes.len()
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| WireError(e.to_string()))
}

/// The bytes of a request.
pub fn encode_request(request: &RpcRequest) -> Vec<u8> {
    encode(request)
}

/// The request in `bytes`.
pub fn decode_request(bytes: &[u8]) -> Result<RpcRequest, WireError> {
    decode(bytes)
}

/// The bytes of a response.
pub fn encode_response(response: &RpcResponse) -> Vec<u8> {
    encode(response)
}

/// The response in `bytes`.
pub fn decode_response(bytes: &[u8]) -> Result<RpcResponse, WireError> {
    decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_consensus::{Command, CommandResponse, Committed, MemberNode, TypeConfig};
    use cluster_types::{Cid, ClusterError, Pin, PinOptions};
    use openraft::raft::{AppendEntriesRequest, VoteRequest};
    use openraft::{Entry, EntryPayload, LeaderId, LogId, Vote};

    fn cid() -> Cid {
        "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9".parse().unwrap()
    }

    fn round_trip_request(request: RpcRequest) -> RpcRequest {
        decode_request(&encode_request(&request)).expect("decodes what it encoded")
    }

    #[test]
    fn raft_messages_survive_the_wire() {
        let log_id = LogId::new(LeaderId::new(3, 7), 42);
        let append = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 7),
            prev_log_id: Some(log_id),
            entries: vec![Entry {
                log_id,
                payload: EntryPayload::Normal(Command::Pin(Pin::new(cid(), PinOptions::default()))),
            }],
            leader_commit: Some(log_id),
        };
        let text = format!("{append:?}");
        match round_trip_request(RpcRequest::AppendEntries(append)) {
            RpcRequest::AppendEntries(back) => assert_eq!(format!("{back:?}"), text),
            other => panic!("wrong variant {other:?}"),
        }
        match round_trip_request(RpcRequest::Vote(VoteRequest::new(Vote::new(4, 9), Some(log_id)))) {
            RpcRequest::Vote(back) => assert_eq!(back.vote, Vote::new(4, 9)),
            other => panic!("wrong variant {other:?}"),
        }
    }

    #[test]
    fn cluster_requests_and_answers_survive_the_wire() {
        let member = MemberNode {
            peer_id: "12D3KooWJ6MbpUQmXvpH3ShQxqvRqx2iJJgmnNqQeRBXrbXyTBXe".parse().unwrap(),
            address: "/ip4/127.0.0.1/tcp/9096".into(),
        };
        match round_trip_request(RpcRequest::PeerAdd(member.clone())) {
            RpcRequest::PeerAdd(back) => assert_eq!(back, member),
            other => panic!("wrong variant {other:?}"),
        }
        let answer = RpcResponse::Commit(Err(ClusterError::NotEnoughPeers {
            needed: 3,
            wanted: 3,
            available: 1,
        }));
        match decode_response(&encode_response(&answer)).unwrap() {
            RpcResponse::Commit(Err(ClusterError::NotEnoughPeers { needed, .. })) => assert_eq!(needed, 3),
            other => panic!("wrong answer {other:?}"),
        }
        let pinned = RpcResponse::Commit(Ok(Committed {
            response: CommandResponse::Pinned(Pin::new(cid(), PinOptions::default())),
            log_index: 42,
        }));
        assert!(matches!(
            decode_response(&encode_response(&pinned)).unwrap(),
            RpcResponse::Commit(Ok(Committed { response: CommandResponse::Pinned(p), log_index: 42 })) if p.cid == cid()
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_request(b"").is_err());
        assert!(decode_request(b"{\"Nope\":1}").is_err());
        assert!(decode_response(&[0xff; 16]).is_err());
    }
}
