//! How members know each other: a member's record (peer id and address, as Raft stores it in
//! its membership) and why a call to a member failed.

use serde::{Deserialize, Serialize};

use crate::{ClusterError, PeerId};

/// A member as Raft knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberNode {
    /// The member's cluster peer id (base58 on the wire and on disk).
    pub peer_id: PeerId,
    /// An address the member listens on (multiaddr), empty if unknown.
    pub address: String,
}

impl Default for MemberNode {
    /// openraft requires a default node; it never stands for a real member: its peer id is the
    /// empty identity multihash, which no key hashes to.
    fn default() -> MemberNode {
        MemberNode {
            peer_id: PeerId::from_bytes(&[0, 0]).expect("the empty identity multihash is a peer id"),
            address: String::new(),
        }
    }
}

impl std::fmt::Display for MemberNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.peer_id, self.address)
    }
}

/// Why a call to another member got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportFailure {
    /// The member could not be reached (down, partitioned, unknown address): the request was
    /// not delivered.
    Unreachable(String),
    /// The request was sent but the exchange failed (timeout, decode error): its outcome is
    /// unknown.
    Network(String),
}

impl std::fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportFailure::Unreachable(e) => write!(f, "unreachable: {e}"),
            TransportFailure::Network(e) => write!(f, "no answer: {e}"),
        }
    }
}

impl TransportFailure {
    /// The cluster error of a failed call to `peer`.
    pub fn into_error(self, peer: PeerId) -> ClusterError {
        match self {
            TransportFailure::Unreachable(reason) => ClusterError::Unreachable { peer, reason },
            TransportFailure::Network(reason) => ClusterError::NoAnswer { peer, reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_record_keeps_its_wire_shape() {
        let member = MemberNode {
            peer_id: PeerId::from_ed25519_seed([1; 32]),
            address: "/ip4/127.0.0.1/tcp/9096".into(),
        };
        let text = serde_json::to_string(&member).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"peer_id":"{}","address":"/ip4/127.0.0.1/tcp/9096"}}"#,
                member.peer_id
            )
        );
        assert_eq!(serde_json::from_str::<MemberNode>(&text).unwrap(), member);
        assert!(serde_json::from_str::<MemberNode>(r#"{"peer_id":"nope","address":""}"#).is_err());
        assert_ne!(MemberNode::default().peer_id, member.peer_id);
    }

    #[test]
    fn a_transport_failure_says_whether_the_request_arrived() {
        let peer = PeerId::from_ed25519_seed([2; 32]);
        assert!(matches!(
            TransportFailure::Unreachable("down".into()).into_error(peer),
            ClusterError::Unreachable { .. }
        ));
        let unknown = TransportFailure::Network("timeout".into()).into_error(peer);
        assert_eq!(unknown.to_string(), "no answer: timeout");
    }
}
