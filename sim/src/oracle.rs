//! The client oracle: every operation the workload issues, with a unique id and what the client
//! learned of its outcome. A call that timed out or failed in a way that may still have been
//! committed is *unknown*: never counted as done, never counted as lost.

use cluster_types::{Cid, ClusterError};

/// What the client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Pin the CID.
    Pin,
    /// Unpin the CID.
    Unpin,
}

/// What the client knows of the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: committed.
    Done,
    /// Refused before anything was proposed.
    Refused,
    /// May or may not have been committed.
    Unknown,
}

/// One client operation.
#[derive(Debug, Clone)]
pub struct OpRecord {
    /// Unique, increasing id.
    pub id: u64,
    /// The CID.
    pub cid: Cid,
    /// Pin or unpin.
    pub kind: OpKind,
    /// What the client learned.
    pub outcome: Outcome,
}

/// Every operation, in the order the (single, sequential) client issued them.
#[derive(Debug, Default, Clone)]
pub struct Oracle {
    ops: Vec<OpRecord>,
}

/// Errors that prove nothing was proposed. Everything else may have been committed (a leader
/// can lose leadership after appending, and a forwarded write can time out after delivery).
fn is_definite_refusal(error: &ClusterError) -> bool {
    matches!(
        error,
        ClusterError::InvalidArgument(_) | ClusterError::NotEnoughPeers { .. }
    )
}

impl Oracle {
    /// Records an operation's result (`None`: the member was down, nothing was sent).
    pub fn record<T>(&mut self, cid: Cid, kind: OpKind, result: Option<&Result<T, ClusterError>>) -> Outcome {
        let outcome = match result {
            None => Outcome::Refused,
            Some(Ok(_)) => Outcome::Done,
            Some(Err(e)) if is_definite_refusal(e) => Outcome::Refused,
            Some(Err(_)) => Outcome::Unknown,
        };
        let id = self.ops.len() as u64;
        self.ops.push(OpRecord { id, cid, kind, outcome });
        outcome
    }

    /// Every operation.
    pub fn ops(&self) -> &[OpRecord] {
        &self.ops
    }

    /// The state the oracle can vouch for: for each CID, `Some(true)` if it must be pinned,
    /// `Some(false)` if it must be absent, `None` if unknown ops leave it open.
    pub fn expected(&self, cid: &Cid) -> Option<bool> {
        let mut expected = None;
        for op in self.ops.iter().filter(|op| op.cid == *cid) {
            match op.outcome {
                Outcome::Done => expected = Some(op.kind == OpKind::Pin),
                Outcome::Refused => {}
                Outcome::Unknown => expected = None,
            }
        }
        expected
    }

    /// Every CID the workload touched.
    pub fn cids(&self) -> Vec<Cid> {
        let mut cids: Vec<Cid> = self.ops.iter().map(|op| op.cid).collect();
        cids.sort();
        cids.dedup();
        cids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_outcomes_leave_the_cid_open() {
        let cid = Cid::raw_sha256(b"x");
        let mut oracle = Oracle::default();
        oracle.record::<()>(cid, OpKind::Pin, Some(&Ok(())));
        assert_eq!(oracle.expected(&cid), Some(true));
        oracle.record::<()>(cid, OpKind::Unpin, Some(&Err(ClusterError::Timeout("t".into()))));
        assert_eq!(oracle.expected(&cid), None);
        oracle.record::<()>(cid, OpKind::Unpin, Some(&Ok(())));
        assert_eq!(oracle.expected(&cid), Some(false));
        oracle.record::<()>(
            cid,
            OpKind::Pin,
            Some(&Err(ClusterError::NotEnoughPeers {
                needed: 2,
                wanted: 2,
                available: 1,
            })),
        );
        assert_eq!(oracle.expected(&cid), Some(false));
        oracle.record::<()>(cid, OpKind::Pin, None);
        assert_eq!(oracle.expected(&cid), Some(false));
    }
}
