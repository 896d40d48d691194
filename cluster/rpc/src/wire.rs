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

    /// Seeds for the fuzz targets that read these bytes (fuzz/seeds/): one message of each kind
    /// a peer sends, the log entries they carry, and pins in their binary form. Run again when the
    /// messages change.
    #[test]
    #[ignore = "writes files: FUZZ_SEEDS=$PWD/fuzz/seeds cargo test -p cluster-rpc -- --ignored fuzz_seeds"]
    fn fuzz_seeds() {
        use crate::{StatusRange, WireBlock};
        use cluster_types::{pin_codec, Metric, PeerId};
        let dir = std::path::PathBuf::from(std::env::var("FUZZ_SEEDS").expect("FUZZ_SEEDS names the seeds folder"));
        let write = |target: &str, name: &str, bytes: &[u8]| {
            std::fs::create_dir_all(dir.join(target)).unwrap();
            std::fs::write(dir.join(target).join(name), bytes).unwrap();
        };
        let log_id = LogId::new(LeaderId::new(3, 7), 42);
        let options = PinOptions {
            name: "seed".into(),
            replication_factor_min: 1,
            replication_factor_max: 2,
            metadata: [("k".to_string(), "v".to_string())].into(),
            ..PinOptions::default()
        };
        let peer: PeerId = "12D3KooWJ6MbpUQmXvpH3ShQxqvRqx2iJJgmnNqQeRBXrbXyTBXe".parse().unwrap();
        let mut pin = Pin::new(cid(), options);
        pin.allocations = vec![peer];
        let entry = Entry::<TypeConfig> {
            log_id,
            payload: EntryPayload::Normal(Command::Pin(pin.clone())),
        };
        write("raft_log_entry", "pin", &serde_json::to_vec(&entry).unwrap());
        let blank = Entry::<TypeConfig> {
            log_id,
            payload: EntryPayload::Blank,
        };
        write("raft_log_entry", "blank", &serde_json::to_vec(&blank).unwrap());
        write(
            "pin_codec",
            "with_cid",
            &[[1u8].as_slice(), &pin_codec::encode_pin(&pin, true)].concat(),
        );
        write(
            "pin_codec",
            "keyed",
            &[[0u8].as_slice(), &pin_codec::encode_pin(&pin, false)].concat(),
        );
        let requests = [
            (
                "append",
                RpcRequest::AppendEntries(AppendEntriesRequest {
                    vote: Vote::new_committed(3, 7),
                    prev_log_id: Some(log_id),
                    entries: vec![entry],
                    leader_commit: Some(log_id),
                }),
            ),
            (
                "vote",
                RpcRequest::Vote(VoteRequest::new(Vote::new(4, 9), Some(log_id))),
            ),
            ("status", RpcRequest::Status(cid())),
            (
                "range",
                RpcRequest::StatusRange(StatusRange {
                    after: Some(cid()),
                    through: None,
                    limit: 4096,
                    packed: false,
                }),
            ),
            ("commit", RpcRequest::Commit(Command::Pin(pin.clone()))),
            (
                "metric",
                RpcRequest::PushMetric(Metric {
                    name: "freespace".into(),
                    value: "1000".into(),
                    peer,
                    expire: 1,
                    valid: true,
                    weight: 0,
                    partitionable: false,
                    received_at: 0,
                }),
            ),
            (
                "blocks",
                RpcRequest::BlockPut(vec![WireBlock {
                    cid: cid(),
                    data: vec![1, 2, 3],
                }]),
            ),
        ];
        for (name, request) in &requests {
            let bytes = encode_request(request);
            write("rpc_message", name, &bytes);
            let mut frame = (bytes.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&bytes);
            write("rpc_frame", name, &frame);
        }
        let pinned = RpcResponse::Commit(Ok(Committed {
            response: CommandResponse::Pinned(pin),
            log_index: 42,
        }));
        write("rpc_message", "pinned", &encode_response(&pinned));
    }

    /// Packed status pages between members of this version and the one before, which knows
    /// neither `packed` field: each side reads what the other sends.
    #[test]
    fn packed_status_pages_mix_with_members_that_list_them() {
        use crate::{StatusPage, StatusRange};
        use cluster_types::{PinStatus, Timestamp, TrackerStatus};
        #[derive(serde::Serialize, serde::Deserialize)]
        struct EarlierRange {
            after: Option<Cid>,
            through: Option<Cid>,
            limit: u32,
        }
        let range = StatusRange {
            after: Some(cid()),
            through: None,
            limit: 7,
            packed: true,
        };
        let earlier: EarlierRange = serde_json::from_slice(&serde_json::to_vec(&range).unwrap()).unwrap();
        assert_eq!(
            (earlier.after, earlier.limit),
            (Some(cid()), 7),
            "an earlier member reads the range"
        );
        let from_earlier: StatusRange = serde_json::from_slice(&serde_json::to_vec(&earlier).unwrap()).unwrap();
        assert!(!from_earlier.packed, "an earlier caller gets its statuses listed");

        let item = PinStatus {
            cid: cid(),
            status: TrackerStatus::Pinned,
            timestamp: Timestamp::from_unix(1_800_000_000, 5),
            error: String::new(),
            attempt_count: 0,
            priority_pin: false,
        };
        let listed = StatusPage {
            peername: "m".into(),
            items: vec![item.clone()],
            ..StatusPage::default()
        };
        let packed = listed.clone().packed();
        let packed_json = serde_json::to_string(&packed).unwrap();
        assert!(!packed_json.contains("\"items\":[{"), "{packed_json}");
        for page in [&packed, &listed] {
            let back: StatusPage = serde_json::from_slice(&serde_json::to_vec(page).unwrap()).unwrap();
            assert_eq!(back.unpack().items, vec![item.clone()]);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_request(b"").is_err());
        assert!(decode_request(b"{\"Nope\":1}").is_err());
        assert!(decode_response(&[0xff; 16]).is_err());
    }
}
