//! Once faults stop, every running member says it is healthy: a member whose disk filled up
//! and was freed writes again without a restart (it used to stop Raft for good and keep
//! answering 204 on `/health`), and no member is left stopped or refusing writes.

use super::Violation;
use crate::MemberSnapshot;

/// Checks a settled view: every running member's own health check passes.
pub fn check(members: &[MemberSnapshot], violations: &mut Vec<Violation>) {
    for member in members {
        if let Some(Err(reason)) = &member.health {
            violations.push(Violation {
                invariant: "members_healthy_once_faults_stop",
                detail: format!("member {} is unhealthy: {reason}", member.index),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_types::PeerId;

    fn member(index: usize, health: Option<Result<(), String>>) -> MemberSnapshot {
        MemberSnapshot {
            index,
            peer_id: PeerId::from_ed25519_seed([index as u8; 32]),
            alive: health.is_some(),
            term: None,
            is_leader: false,
            node_id: index as u64,
            voted_for: None,
            applied_index: None,
            pins: Vec::new(),
            daemon_pins: Vec::new(),
            health,
        }
    }

    #[test]
    fn only_running_members_that_report_a_problem_break_it() {
        let mut violations = Vec::new();
        check(
            &[
                member(0, Some(Ok(()))),
                member(1, None),
                member(2, Some(Err("raft stopped".into()))),
            ],
            &mut violations,
        );
        assert_eq!(violations.len(), 1);
        assert!(violations[0].detail.contains("member 2 is unhealthy: raft stopped"));
    }
}
