//! The error every cluster operation returns, across the REST API and inter-member RPC: one
//! variant per kind of failure, with the facts as fields, and whether retrying can help.

use serde::{Deserialize, Serialize};

use crate::PeerId;

/// Why a cluster operation failed. Serializable so that it crosses RPC unchanged.
///
/// Three kinds, told apart by [`ClusterError::is_retryable`] and [`ClusterError::is_fatal`]:
/// the request was wrong (retrying cannot help), the cluster could not do it now (retrying
/// later or through another member may), or this member cannot go on (the operator must act).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The CID is not in the shared pinset (REST 404).
    #[error("pin is not part of the pinset")]
    NotFound,
    /// An argument the cluster refused (REST 500, as every backend error in Go; requests that do
    /// not parse are 400s of the REST layer); the text says which argument.
    #[error("{0}")]
    InvalidArgument(String),
    /// Fewer members are available than the replication factor needs.
    // Go's text, word for word: clients match on it.
    #[error(
        "not enough peers to allocate CID. Needed at least: {needed}. Wanted at most: {wanted}. \
         Available candidates: {available}. See logs for more info."
    )]
    NotEnoughPeers {
        /// The replication factor minimum.
        needed: usize,
        /// The replication factor maximum.
        wanted: usize,
        /// How many members could take the pin.
        available: usize,
    },
    /// No Raft leader within `wait_for_leader_timeout`; retrying later may work.
    #[error("{0}")]
    NoLeader(String),
    /// Too few voters answer for the cluster to commit anything (a majority is down or cut
    /// off); the text says how many and what to do.
    #[error("{0}")]
    NoQuorum(String),
    /// Consensus failed to commit (a refused membership change, a storage error on another
    /// member); the text is Raft's.
    #[error("consensus error: {0}")]
    Consensus(String),
    /// The IPFS daemon failed.
    #[error("{0}")]
    Ipfs(String),
    /// A deadline passed; the operation's outcome is unknown.
    #[error("{0}")]
    Timeout(String),
    /// The member is shutting down.
    #[error("cluster is shutting down")]
    ShuttingDown,
    /// Another member could not be reached: the request was not delivered.
    #[error("unreachable: {reason}")]
    Unreachable {
        /// The member called.
        peer: PeerId,
        /// What the transport saw.
        reason: String,
    },
    /// A request was sent to another member but no answer came: its outcome is unknown.
    #[error("no answer: {reason}")]
    NoAnswer {
        /// The member called.
        peer: PeerId,
        /// What the transport saw.
        reason: String,
    },
    /// A member answered a request with a response of another kind: members of different
    /// versions, or a bug.
    #[error("unexpected answer to {request}: {answer}")]
    UnexpectedAnswer {
        /// The request sent.
        request: String,
        /// The answer received.
        answer: String,
    },
    /// `peer` is not a member of the cluster.
    #[error("{peer}: not a member of this cluster")]
    NotAMember {
        /// The peer named.
        peer: PeerId,
    },
    /// Reading this member's pinset store failed.
    #[error("{what}: {reason}")]
    Storage {
        /// What was being read.
        what: String,
        /// The store's error.
        reason: String,
    },
    /// The member's queue of pin and unpin operations is full; retry later.
    #[error("pin/unpin operation queue is full. Try increasing max_pin_queue_size")]
    QueueFull,
    /// The server offers no such operation.
    #[error("{operation} is not supported by this backend")]
    Unsupported {
        /// The operation asked for.
        operation: String,
    },
    /// The client went away before the operation ended.
    #[error("the client went away")]
    ClientGone,
    /// This member cannot serve the request and will not be able to without the operator
    /// (it was removed from the cluster, its Raft node stopped on a storage failure).
    #[error("this member cannot serve requests: {0}")]
    Fatal(String),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl ClusterError {
    /// The REST status code for this error (reference §1.3): Go's `SendResponse` answers 404
    /// only for "pin is not part of the pinset", 500 for every other backend error. We answer
    /// 400 where the request itself is wrong (`InvalidArgument`: replication factors that
    /// contradict each other, an expiry in the past, a path that does not decode): retrying it
    /// cannot help, and clients tell it from a failure of the cluster.
    pub fn http_status(&self) -> u16 {
        match self {
            ClusterError::NotFound => 404,
            ClusterError::InvalidArgument(_) => 400,
            _ => 500,
        }
    }

    /// The REST error body.
    pub fn to_api_error(&self) -> crate::ApiError {
        crate::ApiError {
            code: self.http_status(),
            message: self.to_string(),
        }
    }

    /// Whether the same request may succeed later or through another member: the cluster was
    /// busy, leaderless, partitioned or slow, not the request wrong.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ClusterError::NotEnoughPeers { .. }
                | ClusterError::NoLeader(_)
                | ClusterError::NoQuorum(_)
                | ClusterError::Timeout(_)
                | ClusterError::ShuttingDown
                | ClusterError::Unreachable { .. }
                | ClusterError::NoAnswer { .. }
                | ClusterError::QueueFull
                | ClusterError::Fatal(_)
        )
    }

    /// Whether this member is out of service until the operator acts: callers should go to
    /// another member, and the member itself should stop serving.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ClusterError::Fatal(_))
    }

    /// A request (its value, or its name as a string) answered by a response of another kind.
    pub fn unexpected_answer(request: impl std::fmt::Debug, answer: impl std::fmt::Debug) -> ClusterError {
        let request = format!("{request:?}");
        // A request's name is enough; its arguments may be whole blocks.
        let request = request
            .trim_matches('"')
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or_default()
            .to_string();
        let mut answer = format!("{answer:?}");
        if answer.len() > 200 {
            let mut end = 200;
            while !answer.is_char_boundary(end) {
                end -= 1;
            }
            answer.truncate(end);
            answer.push('…');
        }
        ClusterError::UnexpectedAnswer { request, answer }
    }

    /// A store read that failed.
    pub fn storage(what: impl Into<String>, reason: impl std::fmt::Display) -> ClusterError {
        ClusterError::Storage {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// An operation this server does not offer.
    pub fn unsupported(operation: &str) -> ClusterError {
        ClusterError::Unsupported {
            operation: operation.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        PeerId::from_ed25519_seed([7; 32])
    }

    /// Every variant, for the tables below.
    fn every_kind() -> Vec<ClusterError> {
        vec![
            ClusterError::NotFound,
            ClusterError::InvalidArgument("a".into()),
            ClusterError::NotEnoughPeers {
                needed: 3,
                wanted: 4,
                available: 1,
            },
            ClusterError::NoLeader("b".into()),
            ClusterError::NoQuorum("c".into()),
            ClusterError::Consensus("d".into()),
            ClusterError::Ipfs("e".into()),
            ClusterError::Timeout("f".into()),
            ClusterError::ShuttingDown,
            ClusterError::Unreachable {
                peer: peer(),
                reason: "g".into(),
            },
            ClusterError::NoAnswer {
                peer: peer(),
                reason: "g".into(),
            },
            ClusterError::UnexpectedAnswer {
                request: "Id".into(),
                answer: "PushMetric".into(),
            },
            ClusterError::NotAMember { peer: peer() },
            ClusterError::storage("reading the pinset", "h"),
            ClusterError::QueueFull,
            ClusterError::unsupported("adding content"),
            ClusterError::ClientGone,
            ClusterError::Fatal("removed".into()),
            ClusterError::Internal("i".into()),
        ]
    }

    #[test]
    fn every_kind_crosses_json_unchanged() {
        for error in every_kind() {
            let text = serde_json::to_string(&error).unwrap();
            let back: ClusterError = serde_json::from_str(&text).unwrap();
            assert_eq!(back, error, "{text}");
        }
    }

    #[test]
    fn only_the_request_or_the_server_decides_whether_to_retry() {
        let retryable: Vec<bool> = every_kind().iter().map(ClusterError::is_retryable).collect();
        assert_eq!(
            retryable,
            [
                false, false, true, true, true, false, false, true, true, true, true, false, false, false, true, false,
                false, true, false
            ]
        );
        let fatal: Vec<String> = every_kind()
            .into_iter()
            .filter(ClusterError::is_fatal)
            .map(|e| e.to_string())
            .collect();
        assert_eq!(fatal, ["this member cannot serve requests: removed"]);
    }

    #[test]
    fn texts_clients_match_on_are_go_words() {
        assert_eq!(ClusterError::NotFound.to_string(), "pin is not part of the pinset");
        assert_eq!(
            ClusterError::NotEnoughPeers {
                needed: 2,
                wanted: 3,
                available: 1
            }
            .to_string(),
            "not enough peers to allocate CID. Needed at least: 2. Wanted at most: 3. Available candidates: 1. \
             See logs for more info."
        );
        assert_eq!(ClusterError::NotFound.http_status(), 404);
        assert_eq!(ClusterError::InvalidArgument("x".into()).http_status(), 400);
        assert_eq!(ClusterError::QueueFull.http_status(), 500);
    }

    #[test]
    fn an_unexpected_answer_names_the_request_and_cuts_the_answer() {
        #[derive(Debug)]
        #[allow(dead_code)]
        enum Request {
            BlockPut(Vec<u8>),
        }
        let error = ClusterError::unexpected_answer(Request::BlockPut(vec![1; 100]), "x".repeat(1000));
        let ClusterError::UnexpectedAnswer { request, answer } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(request, "BlockPut");
        let ClusterError::UnexpectedAnswer { request, .. } = ClusterError::unexpected_answer("Pin", 1) else {
            unreachable!()
        };
        assert_eq!(request, "Pin");
        assert!(answer.len() < 210, "{answer}");
    }
}
