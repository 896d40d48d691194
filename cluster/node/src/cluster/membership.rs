//! Membership: joining (learner, then voter once caught up), adding and removing members,
//! and noticing that this member was removed.

use super::*;

/// Deadline of a membership change (a joining member catches up before it is answered).
pub(super) const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a learner may make no progress catching up before its promotion is given up. Long:
/// a large snapshot is sent whole before the learner's progress moves at all.
pub(super) const PROMOTION_STALL: Duration = Duration::from_secs(300);

/// How long a learner has to answer before the leader makes it a voter.
pub(super) const LEARNER_ALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a learner's promotion is asked for while it catches up.
pub(super) const PROMOTION_POLL: Duration = Duration::from_millis(500);

/// How long `--bootstrap` keeps trying members that cannot be reached (they may be starting),
/// in `wait_for_leader_timeout`s: a minute with Go's default of 15 s.
pub(super) const JOIN_PATIENCE_LEADER_WAITS: u32 = 4;

/// Pause between two rounds of join attempts.
pub(super) const JOIN_RETRY: Duration = Duration::from_secs(2);

/// How recent the refusals that show a member was removed while away must be.
pub(super) const REMOVAL_EVIDENCE_WINDOW: Duration = Duration::from_secs(30);

/// How often a member checks whether it is still in the member list.
pub(super) const MEMBERSHIP_WATCH: Duration = Duration::from_secs(1);

impl Cluster {
    /// Watches the member list: once this member has been in it and then is not, it was
    /// removed (`peers rm`); [`Cluster::removed`] tells the daemon to stop (Go `watchPeers`).
    /// Also logs when this member becomes the leader, finishes a membership change a previous
    /// leader left half done, and keeps the `peerstore` file up to date with the other
    /// members' addresses.
    pub(super) fn spawn_membership_watch(self: &Arc<Self>) {
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        cluster_rt::spawn(async move {
            let me = cluster.consensus.node_id();
            let mut was_member = false;
            let mut was_leader = false;
            let mut in_peerstore: Vec<MemberNode> = Vec::new();
            loop {
                let is_leader = cluster.consensus.is_leader();
                if is_leader && !was_leader {
                    // Operators (and the process tests) find the leader in the logs.
                    tracing::info!(
                        "this member is now the raft leader (term {})",
                        cluster.consensus.current_term()
                    );
                }
                was_leader = is_leader;
                if is_leader {
                    if let Err(e) = cluster.consensus.finish_interrupted_membership_change().await {
                        tracing::warn!("finishing a membership change left half done: {e}");
                    }
                }
                let members = cluster.consensus.members();
                let is_member = members.iter().any(|(id, _)| *id == me);
                // A member still joining is not told it was removed: dropped half way (a
                // membership change that finished without it), its join asks again.
                let joining = cluster.joining.load(std::sync::atomic::Ordering::Relaxed);
                let removed = if joining {
                    None
                } else if was_member && !is_member {
                    Some("its own log says so".to_string())
                } else {
                    cluster.removed_while_away(&members)
                };
                if let Some(how) = removed {
                    tracing::warn!(
                        "this member was removed from the cluster ({how}): stopping; to join again, start it \
                         on an empty data folder (or init a new one) with --bootstrap <a member's address>"
                    );
                    let _ = cluster.removed_tx.send(true);
                    return;
                }
                was_member |= is_member && !joining;
                if is_member {
                    let mut nodes: Vec<MemberNode> = members.iter().map(|(_, node)| node.clone()).collect();
                    nodes.sort_by_cached_key(|m| m.peer_id.to_string());
                    if nodes != in_peerstore {
                        cluster.save_membership(&nodes);
                        in_peerstore = nodes;
                    }
                }
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(MEMBERSHIP_WATCH) => {}
                }
            }
        });
    }

    /// Notes in the data folder that this member belongs to a cluster, and rewrites the
    /// `peerstore` file with `members`' addresses (this member left out; none: left as it is).
    fn save_membership(&self, members: &[MemberNode]) {
        let Some(folder) = self.folder() else {
            return;
        };
        if let Err(e) = mark_member(&folder) {
            tracing::warn!("writing {}: {e}", folder.join(MEMBER_MARKER_FILE).display());
        }
        if members.is_empty() {
            return;
        }
        if let Err(e) = write_peerstore(&folder.join(PEERSTORE_FILE), members, &self.identity.peer_id) {
            tracing::warn!("writing {}: {e}", folder.join(PEERSTORE_FILE).display());
        }
    }

    /// Whether this member was removed while it was away: it has no leader, and most of the
    /// other voters of its own (stale) view refused its vote requests because they no longer
    /// count it as a member. A majority is needed: a member that lags behind a join could
    /// refuse a voter it does not know yet, but a majority of voters has every committed one.
    pub(super) fn removed_while_away(&self, members: &[(NodeId, MemberNode)]) -> Option<String> {
        if self.consensus.leader().is_some() {
            return None;
        }
        let me = self.consensus.node_id();
        let others: Vec<NodeId> = members
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| *id != me && self.consensus.is_voter(*id))
            .collect();
        let refused: Vec<NodeId> = self
            .refusals
            .recent(REMOVAL_EVIDENCE_WINDOW)
            .into_iter()
            .filter(|id| others.contains(id))
            .collect();
        (!others.is_empty() && refused.len() * 2 > others.len()).then(|| {
            format!(
                "{} of the {} other members no longer count it as a member",
                refused.len(),
                others.len()
            )
        })
    }

    /// Adds `member` to the cluster (Go `PeerAdd`): as a learner until it has caught up, then
    /// as a voter. Served by the leader; other members forward it.
    pub async fn peer_add(&self, member: MemberNode) -> Result<MemberNode, ClusterError> {
        let peer = member.peer_id;
        if member.address.is_empty() {
            if let Some((_, known)) = self
                .consensus
                .members()
                .into_iter()
                .find(|(_, n)| n.peer_id == member.peer_id)
            {
                return Ok(known);
            }
            return Err(ClusterError::InvalidArgument(format!(
                "peer {peer} is not a member and no address is known for it: start it with --bootstrap <an address of this cluster>"
            )));
        }
        let added = match self
            .to_leader(RpcRequest::PeerAdd(member.clone()), MEMBERSHIP_TIMEOUT)
            .await?
        {
            RpcResponse::PeerAdd(result) => result?,
            other => return Err(ClusterError::unexpected_answer("PeerAdd", other)),
        };
        self.wait_promoted(&member, None).await?;
        Ok(added)
    }

    /// Asks the leader (through `through`, else directly) to make `member` a voter until it is
    /// one: it must first catch up as a learner. Fails when it makes no progress for
    /// [`PROMOTION_STALL`] (it died, or cannot be reached): it then stays a learner, which
    /// costs no quorum, until it asks to join again.
    pub(super) async fn wait_promoted(
        &self,
        member: &MemberNode,
        through: Option<&MemberNode>,
    ) -> Result<(), ClusterError> {
        let mut best = None;
        let mut progress_at = cluster_rt::now();
        // Whether this member's own membership has listed it: only then does its absence mean
        // a removal (a joiner restarted with an empty log hears the leader's vote before any
        // membership).
        let mut listed = false;
        loop {
            listed |= self.listed_in_own_membership();
            let request = RpcRequest::PeerPromote(member.clone());
            let answer = match (through, &self.rpc) {
                (Some(through), Some(rpc)) => rpc
                    .call(through, request, MEMBERSHIP_TIMEOUT)
                    .await
                    .map_err(|e| ClusterError::NoLeader(format!("{through}: {e:?}"))),
                _ => self.to_leader(request, MEMBERSHIP_TIMEOUT).await,
            };
            let why = match answer {
                Ok(RpcResponse::PeerPromote(Ok(Promotion::Voter))) => return Ok(()),
                Ok(RpcResponse::PeerPromote(Ok(Promotion::CatchingUp { matched, last }))) => {
                    if matched > best {
                        best = matched;
                        progress_at = cluster_rt::now();
                    }
                    format!("caught up to {matched:?} of {last}")
                }
                Ok(RpcResponse::PeerPromote(Err(e @ ClusterError::InvalidArgument(_)))) => return Err(e),
                Err(e)
                    if through.is_none()
                        && listed
                        && member.peer_id == self.me_member.peer_id
                        && !self.listed_in_own_membership() =>
                {
                    // No leader tells a member it removed (sim seed 3447961555: the restarted
                    // joiner won an election, finished the pending demotion by removing
                    // itself, and stayed named the leader with no one to ask).
                    return Err(ClusterError::InvalidArgument(format!(
                        "{member} is no longer in the cluster's membership ({e})"
                    )));
                }
                Ok(RpcResponse::PeerPromote(Err(e))) | Err(e) => e.to_string(),
                Ok(other) => format!("unexpected answer {other:?}"),
            };
            if cluster_rt::now() - progress_at >= PROMOTION_STALL {
                return Err(ClusterError::Timeout(format!(
                    "{member} made no progress catching up for {PROMOTION_STALL:?} ({why}); it stays a learner, \
                     which does not vote, until it joins again"
                )));
            }
            tracing::debug!("{member} is not a voter yet: {why}");
            cluster_rt::sleep(PROMOTION_POLL).await;
        }
    }

    /// Whether this member's own log's membership lists it (as a voter or a learner).
    fn listed_in_own_membership(&self) -> bool {
        let me = self.consensus.node_id();
        self.consensus.members().iter().any(|(id, _)| *id == me)
    }

    /// Removes `peer` from the cluster (Go `PeerRemove`): first moves the pins allocated to it
    /// to other members, then removes it from Raft. Served by the leader. Removing a peer that
    /// is not a member succeeds and changes nothing, as Go's Raft `RemovePeer`, so scripts may
    /// repeat it; the leader decides, since another member's view may lag behind a join.
    pub async fn peer_remove(&self, peer: PeerId) -> Result<(), ClusterError> {
        match self.to_leader(RpcRequest::PeerRemove(peer), MEMBERSHIP_TIMEOUT).await? {
            RpcResponse::PeerRemove(result) => {
                result?;
                // The pins the leader moved, seen here too (it answered once they were
                // committed, not applied here; removing itself, it stops telling us at all).
                if peer != self.me_member.peer_id {
                    self.consensus.apply_own_log().await;
                }
                Ok(())
            }
            other => Err(ClusterError::unexpected_answer("PeerRemove", other)),
        }
    }

    /// Joins the cluster through the `--bootstrap` members, in order, unless this member
    /// already belongs to one. Call it once the transport serves this member's handler: the
    /// leader sends it the log (or a snapshot) before answering.
    pub async fn join(&self) -> Result<(), ClusterError> {
        let me = self.consensus.node_id();
        let marked = self.folder().is_some_and(|f| f.join(JOINING_MARKER_FILE).exists());
        let voter = self.consensus.votes_in_every_configuration(me);
        let with_bootstrap = !self.bootstrap.is_empty();
        // A join cut short: the member finishes it through the leader, else it would stay a
        // learner for good, or be dropped when a demotion is finished the way a removal is.
        // After the learner step (sim seed 7000710 of the self-healing workload); while the
        // leader was demoting it (seed 650278); or while the leader replayed the log to it,
        // whose membership from before its demotion says it votes (seed 2359520668), so the
        // `joining` file, not its own log, says the join is not done. With --bootstrap and a
        // log that says it votes, the leader says so too (seed 3474299295: the member it had
        // joined through had left since, and only the leader could tell it).
        let unfinished =
            (!with_bootstrap && self.consensus.learner_at_start()) || (marked && (voter || !with_bootstrap));
        if unfinished {
            tracing::info!("this member's join was cut short: catching up before voting");
            match self.wait_promoted(&self.me_member, None).await {
                Ok(()) => {
                    self.joined().await;
                    return Ok(());
                }
                Err(ClusterError::InvalidArgument(why)) if marked => {
                    let known: Vec<MemberNode> = if with_bootstrap {
                        self.bootstrap.clone()
                    } else {
                        self.consensus
                            .members()
                            .into_iter()
                            .filter(|(id, _)| *id != me)
                            .map(|(_, node)| node)
                            .collect()
                    };
                    if known.is_empty() {
                        return Err(ClusterError::InvalidArgument(format!(
                            "{why}; this member knows no other member to ask: start it with --bootstrap"
                        )));
                    }
                    tracing::warn!("{why}; asking again through {} members", known.len());
                    self.joins_asked_again
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return self.join_through(&known).await;
                }
                Err(e) => return Err(e),
            }
        }
        if !with_bootstrap {
            return Ok(());
        }
        // A voter in its own log's membership. Not openraft's `is_initialized`: that is true as
        // soon as any leader's heartbeat set our vote, and a join cut short after the learner
        // step must be sent again to be promoted. A voter in every configuration: a wiped member
        // whose first join began a change the cluster could not commit (no quorum) is in the
        // joint configuration's old half only, and the leader that finishes the change drops it
        // (sim seed 201447 of the self-healing workload); it asks again.
        if voter {
            tracing::info!("already a cluster member; --bootstrap ignored");
            self.joining.store(false, std::sync::atomic::Ordering::Relaxed);
            self.clear_joining_mark();
            return Ok(());
        }
        if let Some(folder) = self.folder() {
            if let Err(e) = mark_joining(&folder) {
                tracing::warn!("writing {}: {e}", folder.join(JOINING_MARKER_FILE).display());
            }
        }
        let bootstrap = self.bootstrap.clone();
        self.join_through(&bootstrap).await
    }

    /// Asks the members `through`, in order, to add this member, then waits until it votes.
    async fn join_through(&self, through_members: &[MemberNode]) -> Result<(), ClusterError> {
        let rpc = self
            .rpc
            .as_ref()
            .ok_or_else(|| ClusterError::Internal("no transport to join with".into()))?;
        // Members started together: the bootstrap member may not listen yet, or still be
        // starting, or the cluster between two leaders. They are tried again for a while;
        // anything else (a refusal, a failed handshake: another secret) is final.
        let patience = self.config.raft.wait_for_leader_timeout * JOIN_PATIENCE_LEADER_WAITS;
        let deadline = cluster_rt::now() + patience;
        loop {
            let mut failures = Vec::new();
            let mut answered = false;
            for through in through_members {
                tracing::info!("joining the cluster through {through}");
                let answer = rpc
                    .call(through, RpcRequest::PeerAdd(self.me_member.clone()), MEMBERSHIP_TIMEOUT)
                    .await;
                match answer {
                    Ok(RpcResponse::PeerAdd(Ok(_))) => {
                        tracing::info!("catching up as a learner before voting");
                        self.save_membership(&[]);
                        self.wait_promoted(&self.me_member, Some(through)).await?;
                        self.consensus
                            .wait_for_leader(self.config.raft.wait_for_leader_timeout)
                            .await?;
                        tracing::info!("joined the cluster through {through}");
                        self.joined().await;
                        return Ok(());
                    }
                    Ok(RpcResponse::PeerAdd(Err(e))) => {
                        // Between two leaders, or without a quorum for now: worth another try.
                        answered |= !matches!(
                            e,
                            ClusterError::NoLeader(_) | ClusterError::NoQuorum(_) | ClusterError::Timeout(_)
                        );
                        failures.push(format!("{through}: {e}"));
                    }
                    Ok(other) => {
                        answered = true;
                        failures.push(format!("{through}: unexpected answer {other:?}"));
                    }
                    Err(e) => {
                        // Someone answered the dial (a handshake that failed: another secret),
                        // unless nothing listens there yet or the member is still starting.
                        answered |= !not_up_yet(&e);
                        failures.push(format!("{through}: {e:?}"));
                    }
                }
            }
            if answered || cluster_rt::now() >= deadline {
                return Err(ClusterError::Internal(format!(
                    "could not join the cluster: {}",
                    failures.join("; ")
                )));
            }
            tracing::warn!(
                "no bootstrap member reachable yet ({}); trying again for up to {patience:?}",
                failures.join("; ")
            );
            cluster_rt::sleep(JOIN_RETRY).await;
        }
    }

    /// This member votes now: what it was refused while a learner (sim seed 620090 of the
    /// frequent-snapshots workload) is not evidence that it was removed, and it is no longer
    /// joining.
    async fn joined(&self) {
        tracing::info!("caught up: this member votes now");
        self.refusals.forget();
        self.joining.store(false, std::sync::atomic::Ordering::Relaxed);
        self.clear_joining_mark();
        self.publish_metrics().await;
    }

    /// The data folder's path, while the member holds it.
    fn folder(&self) -> Option<std::path::PathBuf> {
        self.data
            .lock()
            .expect("data folder lock")
            .as_ref()
            .map(|d| d.path().to_path_buf())
    }

    fn clear_joining_mark(&self) {
        if let Some(folder) = self.folder() {
            if let Err(e) = clear_joining(&folder) {
                tracing::warn!("removing {}: {e}", folder.join(JOINING_MARKER_FILE).display());
            }
        }
    }

    /// The leader's side of `peer rm`: re-allocates every pin held by `peer`, then removes it.
    pub(super) async fn remove_member_as_leader(&self, peer: PeerId) -> Result<(), ClusterError> {
        if !self.consensus.members().iter().any(|(_, n)| n.peer_id == peer) {
            tracing::info!("{peer} is not among the cluster's members: nothing to remove");
            return Ok(());
        }
        // Moving pins and the removal are Raft writes: without a quorum, say so at once, or
        // when a write times out for lack of one.
        self.consensus.require_quorum()?;
        let no_quorum_first = |e: ClusterError| match (self.consensus.require_quorum(), &e) {
            (Err(ClusterError::NoQuorum(why)), ClusterError::Timeout(_)) => ClusterError::NoQuorum(format!(
                "{why} (what was already written stays in the log and is done if the members come back)"
            )),
            (Err(no_quorum @ ClusterError::NoQuorum(_)), _) => no_quorum,
            _ => e,
        };
        let moved = self
            .repair_allocations(Some(&peer), &[], false)
            .await
            .map_err(no_quorum_first)?;
        tracing::info!("moved {moved} pins away from {peer}; removing it from the cluster");
        self.metrics
            .lock()
            .expect("metrics lock")
            .forget(&peer, Timestamp::now());
        self.consensus
            .remove_member(node_id_of(&peer))
            .await
            .map_err(no_quorum_first)?;
        if peer == self.me_member.peer_id {
            // Removed itself: no longer a member, it writes nothing more. The next leader
            // repairs, as every new leader does, what was allocated here meanwhile.
            return Ok(());
        }
        // Pins allocated to the peer while it was leaving.
        let late = self.repair_allocations(None, &[], false).await?;
        if late > 0 {
            tracing::info!("moved {late} more pins allocated to {peer} while it was leaving");
        }
        Ok(())
    }
}

/// Whether a call failed because the member is not up yet: nothing listens at its address (the
/// operating system's "connection refused", as the transports report it), or it answered that
/// it is still starting.
pub(super) fn not_up_yet(failure: &TransportFailure) -> bool {
    match failure {
        TransportFailure::Unreachable(message) => {
            message.to_ascii_lowercase().contains("connection refused") || message.contains(MEMBER_STARTING)
        }
        TransportFailure::Network(_) => false,
    }
}
