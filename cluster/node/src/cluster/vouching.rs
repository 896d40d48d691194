//! Vouching for a peer this member's membership does not name as a voter, when that peer sends
//! Raft messages in its own name: a leader or a candidate that joined while this member was
//! away. A voter this member knows must confirm that the peer is a voter of its membership
//! (`RpcRequest::Vouch`); a peer that merely holds the cluster secret gets no such answer.
//!
//! Answers are remembered ([`Vouches`], pure, `now` passed in): a leader's heartbeats ask once,
//! and a flood of messages from unknown peers asks at most once per peer per
//! [`REFUSAL_REMEMBERED`], in at most [`VOUCHES_MAX`] entries.

use std::collections::HashMap;

use cluster_rt::tokio::time::Instant;

use super::*;

/// How long a voter's "yes" stands: by then the peer's entries have usually told this member
/// its new membership.
const CONFIRMATION_REMEMBERED: Duration = Duration::from_secs(30);
/// How long a "no" stands before the voters are asked again.
const REFUSAL_REMEMBERED: Duration = Duration::from_secs(5);
/// How long the voters are given to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// Peers remembered at most; past it the oldest answer is forgotten.
const VOUCHES_MAX: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// The voters are being asked; messages meanwhile are refused.
    Asking,
    Yes,
    No,
}

/// What the voters answered about each peer, and when.
#[derive(Debug, Default)]
pub(super) struct Vouches {
    answers: HashMap<PeerId, (Answer, Instant)>,
}

/// What to do with a message from a peer that needs vouching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Vouched {
    Yes,
    No,
    /// Nothing known: ask the voters (the entry now says it is being asked).
    Ask,
}

impl Vouches {
    /// What is known of `peer` at `now`; marks it as being asked when nothing is.
    pub(super) fn lookup(&mut self, peer: &PeerId, now: Instant) -> Vouched {
        if let Some((answer, at)) = self.answers.get(peer) {
            let stands = match answer {
                Answer::Yes => CONFIRMATION_REMEMBERED,
                Answer::No => REFUSAL_REMEMBERED,
                Answer::Asking => ASK_TIMEOUT * 2,
            };
            if now.saturating_duration_since(*at) < stands {
                return match answer {
                    Answer::Yes => Vouched::Yes,
                    Answer::No | Answer::Asking => Vouched::No,
                };
            }
        }
        self.insert(*peer, Answer::Asking, now);
        Vouched::Ask
    }

    /// Records the voters' answer about `peer`.
    pub(super) fn answered(&mut self, peer: PeerId, yes: bool, now: Instant) {
        self.insert(peer, if yes { Answer::Yes } else { Answer::No }, now);
    }

    fn insert(&mut self, peer: PeerId, answer: Answer, now: Instant) {
        if self.answers.len() >= VOUCHES_MAX && !self.answers.contains_key(&peer) {
            if let Some(oldest) = self.answers.iter().min_by_key(|(_, (_, at))| *at).map(|(p, _)| *p) {
                self.answers.remove(&oldest);
            }
        }
        self.answers.insert(peer, (answer, now));
    }
}

impl Cluster {
    /// Whether a voter of this member's membership vouches for `peer` as one of its voters.
    pub(super) async fn vouched_for(&self, peer: &PeerId) -> bool {
        let known = self
            .vouches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(peer, cluster_rt::now());
        match known {
            Vouched::Yes => return true,
            Vouched::No => return false,
            Vouched::Ask => {}
        }
        let voters: Vec<MemberNode> = self
            .consensus
            .members()
            .into_iter()
            .filter(|(id, node)| {
                node.peer_id != self.identity.peer_id
                    && node.peer_id != *peer
                    && self.consensus.standing(*id) == Some(true)
            })
            .map(|(_, node)| node)
            .collect();
        let asks = voters
            .iter()
            .map(|voter| self.call_member(voter, RpcRequest::Vouch(*peer), ASK_TIMEOUT));
        let yes = futures::future::join_all(asks)
            .await
            .into_iter()
            .any(|answer| matches!(answer, Ok(RpcResponse::Vouch(true))));
        self.vouches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .answered(*peer, yes, cluster_rt::now());
        if yes {
            tracing::info!(peer = %peer, "a voter vouched for {peer}, which this member's membership does not name yet");
        }
        yes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> PeerId {
        PeerId::from_ed25519_seed([n; 32])
    }

    #[test]
    fn answers_are_remembered_for_a_while_and_asked_once_at_a_time() {
        let start = cluster_rt::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut vouches = Vouches::default();
        let (leader, stranger) = (peer(1), peer(2));
        // (step, peer, seconds since start, what is known)
        assert_eq!(vouches.lookup(&leader, at(0)), Vouched::Ask);
        // Asked already: the messages meanwhile are refused, not asked about again.
        assert_eq!(vouches.lookup(&leader, at(1)), Vouched::No);
        vouches.answered(leader, true, at(1));
        assert_eq!(vouches.lookup(&leader, at(30)), Vouched::Yes);
        assert_eq!(vouches.lookup(&leader, at(31)), Vouched::Ask);
        assert_eq!(vouches.lookup(&stranger, at(0)), Vouched::Ask);
        vouches.answered(stranger, false, at(0));
        assert_eq!(vouches.lookup(&stranger, at(4)), Vouched::No);
        assert_eq!(vouches.lookup(&stranger, at(5)), Vouched::Ask);
        // An ask that never came back is retried.
        assert_eq!(vouches.lookup(&stranger, at(9)), Vouched::Ask);
    }

    #[test]
    fn at_most_vouches_max_peers_are_remembered_the_oldest_forgotten_first() {
        let start = cluster_rt::now();
        let mut vouches = Vouches::default();
        let first = PeerId::from_ed25519_seed([0; 32]);
        vouches.answered(first, true, start);
        for i in 1..VOUCHES_MAX as u64 + 10 {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&i.to_le_bytes());
            vouches.answered(PeerId::from_ed25519_seed(seed), false, start + Duration::from_millis(i));
        }
        assert_eq!(vouches.answers.len(), VOUCHES_MAX);
        assert_eq!(vouches.lookup(&first, start + Duration::from_secs(1)), Vouched::Ask);
    }
}
