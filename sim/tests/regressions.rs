//! One test per bug the simulator found, named after what broke, with the seed that found it.
//!
//! The workload tests replay seeds of `random_workload`. Any change to what a run does (the
//! workload, the fault plan, a new periodic task or message in the cluster) gives every seed a
//! different run, so these seeds must be checked again: switch the fix off behind a
//! temporary flag, sweep seeds of the release build (`MADSIM_TEST_SEED=$s MADSIM_TEST_NUM=1
//! target-sim/release/deps/random_workload-* random_workload`), pin two that fail, remove
//! the flag. Last re-pinned after repairs went through Raft in batches (`Command::Batch`) and
//! repinning, expiry and the peerstore and membership marker joined the members' loops.
#![cfg(madsim)]

use std::time::Duration;

use cluster_ipfs::FakeIpfsKnobs;
use cluster_sim::{poll_until, SimCluster};
use cluster_types::Cid;
use madsim::runtime::Handle;

/// Found by `random_workload` seed 7 (`just sim-replay 7` before the fix): a member whose
/// daemon was down when an unpin was committed, then crashed, kept the CID pinned on its
/// daemon forever. The tracker's unpin operation lived only in memory and the state sync never
/// unpins what the state does not list. Fixed by tombstones written atomically with the removal
/// and re-queued by every state sync until the daemon unpin succeeds.
#[madsim::test]
async fn unpin_lost_to_a_crash_while_the_daemon_was_down_is_finished_after_restart() {
    cluster_sim::scenario!();
    let handle = Handle::current();
    let mut cluster = SimCluster::start(&handle, 3);
    let leader = cluster.wait_leader(&[0, 1, 2], Duration::from_secs(30)).await;
    let victim = (leader + 1) % 3;
    let cid = Cid::raw_sha256(b"orphaned by a crash");
    cluster
        .pin(leader, cid, -1)
        .await
        .expect("leader up")
        .expect("pin everywhere");
    poll_until(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || "never pinned on the victim".into(),
        || cluster.members[victim].ipfs.has_pin(&cid),
    )
    .await;

    tracing::info!("--- the victim's daemon goes down, the unpin commits, the victim crashes");
    cluster.members[victim].ipfs.update_knobs(|k| k.down = true);
    cluster.unpin(leader, cid).await.expect("leader up").expect("unpin");
    cluster_rt::sleep(Duration::from_secs(2)).await;
    cluster.kill(&handle, victim);
    assert!(
        cluster.members[victim].ipfs.has_pin(&cid),
        "the daemon still holds it while the member is down"
    );

    tracing::info!("--- daemon back, member restarted: the unpin is finished");
    cluster.members[victim].ipfs.set_knobs(FakeIpfsKnobs::default());
    cluster.restart(&handle, victim);
    poll_until(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || "the orphaned pin stayed on the daemon".into(),
        || !cluster.members[victim].ipfs.has_pin(&cid),
    )
    .await;
    let state = cluster.members[victim].cluster().expect("restarted").state().clone();
    assert!(
        state.tombstones(None, 10).unwrap().is_empty(),
        "the tombstone is cleared once the daemon unpinned"
    );
}

/// Found by `random_workload` seeds 17 and 31 of an earlier workload (seeds 47 and 92 of the
/// current one fail without the fix): `peers rm` while too few members were healthy left pins with fewer allocations than
/// their minimum, and a pin allocated to a member while it was being removed kept the departed
/// member; nothing re-allocated them afterwards. Fixed by the leader's allocation repair: after
/// every removal, when it becomes the leader, on membership changes and every state sync
/// interval it re-allocates pins with departed members or short of their minimum.
#[test]
fn pins_short_of_replicas_after_a_removal_are_re_allocated() {
    for seed in [47, 92] {
        println!("{}", cluster_sim::workload::run_seed(seed));
    }
}

/// Found by `random_workload` seeds 288 and 302 of an earlier workload (seeds 38 and 59 of
/// the current one fail without the fix): re-allocations (of `peers rm` and of the
/// repair) read a pin, then wrote it back blindly; a client's unpin committed in between was
/// undone and the acknowledged unpin came back. Fixed by `Command::Reallocate`, applied only
/// if the pinset still holds the pin as it was read.
#[test]
fn a_re_allocation_does_not_resurrect_a_pin_unpinned_meanwhile() {
    for seed in [38, 59] {
        println!("{}", cluster_sim::workload::run_seed(seed));
    }
}

/// Found by `random_workload` seed 5 of an earlier workload (seeds 324 and 621 of the
/// current one fail without the fix, the joiner stuck as a learner): a joining member whose first `PeerAdd` failed after a
/// leader's heartbeat had set its vote took itself for a member ("--bootstrap ignored") and
/// never joined. Fixed: only a voter in its own membership skips the join.
#[test]
fn a_join_cut_short_after_a_leader_heartbeat_is_retried() {
    for seed in [324, 621] {
        println!("{}", cluster_sim::workload::run_seed(seed));
    }
}

/// Found by `random_workload` seed 2374: the leader removing a member (`peers rm`) lost its
/// leadership between the two steps of the change, leaving a joint configuration; the next
/// leader's unrelated change (a restarted member asking to join again, demoted with `retain`)
/// finished it keeping the removed member as a learner, so it neither voted nor left. Fixed: a
/// leader finishes a change left half done as the change meant (the removed voters leave), on
/// its own and before a demotion.
#[test]
fn a_removal_cut_short_by_a_leader_change_is_finished_by_the_next_leader() {
    println!("{}", cluster_sim::workload::run_seed(2374));
}

/// Found by `random_workload_with_lost_and_wiped_members_heals` seed 1152369054 (CI's random
/// batch): member 0 was killed before members 5 and 6 joined; when it came back, one of them
/// led, and the RPC policy refused its AppendEntries because the leader was not a voter in
/// member 0's stale membership, so member 0 never caught up (pinset 0 of 23). Fixed: Raft
/// replication is served from the leader it names, whatever this member's view of it.
#[test]
fn a_member_that_missed_a_join_accepts_the_new_leader_it_does_not_know() {
    println!("{}", cluster_sim::workload::run_self_healing_seed(1152369054));
}

/// Found by a sweep of `random_workload_with_lost_and_wiped_members_heals` (seed 7000558): member
/// 0's disk was full while it applied entries. The failed commit reopened its pinset at the last
/// durable commit, losing earlier applies that were not yet synced; the retry, once the disk had
/// room, applied the new entries on top without applying the lost ones again, so member 0 held 11
/// pins against 12 on the others at the same applied index, for good. Fixed: a retried apply
/// first catches up from the Raft log.
#[test]
fn an_apply_retried_after_a_full_disk_first_applies_again_what_the_reopen_lost() {
    println!("{}", cluster_sim::workload::run_self_healing_seed(7000558));
}

/// Found by the same sweep (seed 7000710): member 2 was wiped, rejoined with --bootstrap, and was
/// killed after the leader added it as a learner but before its promotion. Restarted without
/// --bootstrap, it started as a learner of its own log and never asked to be promoted, so it
/// stayed a learner for good. Fixed: a member that starts as a learner finishes its join.
#[test]
fn a_member_killed_between_its_learner_step_and_its_promotion_finishes_its_join() {
    println!("{}", cluster_sim::workload::run_self_healing_seed(7000710));
}

/// Found by the first sweep of `random_workload_with_frequent_snapshots_heals` (seed 13000):
/// member 1, killed early, came back to a leader whose log was purged and installed a snapshot
/// in which a pin it had held was allocated to others. A snapshot says nothing of what moved
/// and carries no tombstones, and the state sync only unpinned tombstones, so the pin stayed on
/// its daemon for good. Fixed: the state sync unpins daemon pins the state allocates elsewhere.
#[test]
fn a_pin_moved_away_while_a_member_was_down_is_unpinned_after_its_snapshot_install() {
    println!("{}", cluster_sim::workload::run_with_frequent_snapshots_seed(13000));
}

/// Found by `random_workload_with_lost_and_wiped_members_heals` seed 52455: `peers rm 1` left a
/// joint configuration whose second half reached members 0 and 4 only. From then on members 0
/// and 1 campaigned on the same openraft tick every round (openraft 0.9 draws each member's
/// election timeout once and checks it every 375 ms, longer than the timeout's random range).
/// Member 1, behind in its log, could never win, but in a tied term openraft lets the vote for
/// the higher node id replace one already given, so it took members 2 and 3's votes each round
/// and member 0 lost each leadership before its first AppendEntries landed: no leader for the
/// 120 s of the liveness bound (term 463). Fixed: a voter that knows no leader for a random
/// 1-2 election timeouts calls an election at its own instant (`election_watch`). The seed's
/// run fails without the fix (checked); with it the run differs, as any change to the members'
/// tasks makes it.
#[test]
fn members_whose_election_timers_line_up_still_elect_a_leader() {
    println!("{}", cluster_sim::workload::run_self_healing_seed(52455));
}

/// Found by a sweep of `random_workload_with_frequent_snapshots_heals` (seed 90051): member 0
/// applied a pin everywhere and its daemon pinned it; on a full disk, the tracker's failed
/// commit then reopened member 0's pinset at its last durable commit, which lost that apply.
/// The pin was unpinned while the disk stayed full; once it had room, member 0 installed a
/// snapshot (openraft had purged the log past the lost apply), compared with a pinset that no
/// longer held the pin, and no tombstone told its tracker to let the pin go. Fixed: an install
/// first tombstones the CIDs of every apply not yet synced.
#[test]
fn a_pin_whose_apply_a_reopen_lost_is_unpinned_after_a_snapshot_install() {
    println!("{}", cluster_sim::workload::run_with_frequent_snapshots_seed(90051));
}

/// Found by a sweep of `random_workload_with_lost_and_wiped_members_heals` (seed 201447): in
/// a 3-member cluster member 0 was wiped while member 2's disk was full. Its first join began a
/// change the cluster could not commit (no quorum): a joint configuration with member 0 in its
/// old half only. Member 0 took that for membership ("already a cluster member"), stopped
/// joining, and once the disk had room the leader finished the change without it: removed, it
/// stopped for good. Fixed: a joining member counts as one only if it votes in every
/// configuration of its membership; otherwise it asks to join again.
#[test]
fn a_wiped_member_whose_join_could_not_commit_asks_again() {
    println!("{}", cluster_sim::workload::run_self_healing_seed(201447));
}

/// Found by a sweep of `random_workload_with_frequent_snapshots_heals` (seed 200326): member 2
/// came back far behind while the leader built snapshots every few entries. The leader's
/// replication chose to send member 2 the entries after its last one, and a purge ran before
/// it read them: the log answered with the entries after the purge, which went out after a
/// `prev_log_id` before it. Member 2's log got a hole and its Raft stopped ("try to get log at
/// index 5 but got Some(1)"). Fixed: replication's reads answer one run of entries from where
/// they were asked, or nothing, and openraft then sends a snapshot.
#[test]
fn entries_purged_while_the_leader_replicated_them_are_not_sent_after_a_hole() {
    println!("{}", cluster_sim::workload::run_with_frequent_snapshots_seed(200326));
}

/// Found by a sweep of `random_workload_under_faults_loses_nothing` (seed 200957), after the
/// election watch learned to call out a silent leader: member 6, promoted in a change the
/// others did not all know yet, heard nothing from the leader across a clock jump and
/// campaigned. Its vote requests were refused as a stranger's, it took the refusals for its
/// removal, and stopped. Fixed: only a settled voter (in every half of a membership whose entry
/// it has applied) calls out a silent leader.
#[test]
fn a_member_still_being_promoted_does_not_campaign_against_a_silent_leader() {
    println!("{}", cluster_sim::workload::run_seed(200957));
}

/// Found by a sweep of `random_workload_with_frequent_snapshots_heals` (seed 400610), after the
/// Raft log moved to segment files: member 3 joined through the leader, member 2, whose
/// promotion entry (a joint configuration) could not commit (member 1 partitioned, member 2's
/// messages to member 0 clogged). The leader answered "voter" as soon as the entry was in its
/// own log, so member 3 stopped asking. Member 0 was then elected without the entry, and
/// member 3 stayed a learner for good. Fixed: a member is answered "voter" only once it votes
/// in every configuration of a membership the leader has applied.
#[test]
fn a_joiner_whose_promotion_was_not_committed_asks_again() {
    println!("{}", cluster_sim::workload::run_with_frequent_snapshots_seed(400610));
}

/// Found by a sweep of `random_workload_with_frequent_snapshots_heals` (seed 620090), once the
/// election watch asked the other voters for their logs before campaigning: wiped member 2
/// rejoined; while it caught up as a learner, its old log still listed it as a voter, it
/// campaigned, and both other members refused it as no member of theirs. It was promoted a
/// moment later, lost its leader to a fault, and took those refusals, still within the evidence
/// window, for its removal: it stopped, and the cluster was left with a member that never came
/// back. Fixed: a member forgets the refusals it met once its join completes and it votes.
#[test]
fn refusals_met_while_joining_are_not_taken_for_a_removal_once_it_votes() {
    println!("{}", cluster_sim::workload::run_with_frequent_snapshots_seed(620090));
}

/// Found by `just sim-seeds 10000` (seed 2359520668 of
/// `random_workload_with_lost_and_wiped_members_heals`): member 0 was wiped, asked to join,
/// and was killed while the leader replayed the log to it. Restarted, its own log held only the
/// membership from before the leader demoted it, in which it votes, so it took its join for
/// done, and then took the others' refusals of a voter they had demoted for its removal: it
/// stopped for good ("the member needs a restart"). The `joining` file now keeps a member
/// joining until the leader says it votes.
#[test]
fn a_wiped_member_killed_while_the_log_was_replayed_to_it_finishes_its_join() {
    println!("{}", cluster_sim::workload::run_self_healing_seed(2359520668));
}

/// Found by CI's random batch against a first fix of the one above (seed 3474299295 of
/// `random_workload_with_lost_and_wiped_members_heals`): member 6 joined through member 4,
/// member 4 left, member 6 was wiped and started again with --bootstrap naming member 4 only.
/// The leader had replayed the log to it meanwhile (it was still a voter), but the `joining`
/// file sent it back to member 4 forever. With a log that says it votes, it asks the leader.
#[test]
fn a_marked_joiner_whose_bootstrap_member_left_asks_the_leader() {
    println!("{}", cluster_sim::workload::run_self_healing_seed(3474299295));
}

/// Found by CI's random batch (seed 2141534599 of
/// `random_workload_with_lost_and_wiped_members_heals`) and a sweep (seed 2359521379 of
/// `random_workload_with_frequent_snapshots_heals`): three live voters of four, one of them
/// with a longer log (an entry of its own leadership that reached nobody else). openraft 0.9
/// refuses a shorter log's vote request without taking its term, so the longer log called each
/// election one term above its own, at or below the terms the other two had reached by
/// campaigning, and lost it on the vote; the two others, leaving only one election to the
/// longer log, campaigned on: no leader for 120 s, about 440 terms. Fixed in `election_watch`:
/// a member whose election another candidate's vote took, and whose log no voter's beats,
/// calls the next one at once; a shorter log leaves elections to a longer one while its term
/// moves.
#[test]
fn a_longer_log_outvoted_on_term_by_shorter_ones_campaigns_above_their_terms() {
    println!("{}", cluster_sim::workload::run_self_healing_seed(2141534599));
    println!(
        "{}",
        cluster_sim::workload::run_with_frequent_snapshots_seed(2359521379)
    );
}
