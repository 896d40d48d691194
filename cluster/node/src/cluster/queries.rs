//! Questions asked of every member: status, recover, identities, repository GC, the connection
//! graph; answers merged into one.

use std::collections::VecDeque;
use std::future::Future;

use super::status_merge::{MergedRange, RangeAnswer};
use super::*;
use cluster_types::{LineItem, WrittenLines};

/// Items buffered between a stream's producer and the REST writer.
pub(super) const STREAM_BUFFER: usize = 256;

/// Pages of [`STATE_PAGE`] pins buffered between a listing's reader and the REST writer: the
/// next page is read while one is written.
pub(super) const PAGES_BUFFER: usize = 2;

/// Deadline of one member's status answer (Go: 15 s).
pub(super) const STATUS_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a member's repository GC may take when asked by another. Go allows 24 h
/// (`repogc_timeout`); our libp2p exchanges are bounded at 5 minutes, so a longer GC is reported
/// as an error for that member (the daemon still finishes it).
pub(super) const REPO_GC_TIMEOUT: Duration = Duration::from_secs(300);

/// Removed keys listed per member in a GC result; the rest are counted, so an answer stays far
/// below the RPC frame limit.
pub(super) const REPO_GC_KEYS_LISTED: usize = 100_000;

/// How long a member may take to re-queue its failed items when another asks (a recover-all).
pub(super) const RECOVER_ALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Pins read from the state per page when streaming it.
pub(super) const STATE_PAGE: usize = 1000;

/// Pins per range of a cluster-wide status: one call per member per range (a few megabytes of
/// JSON at most), so that a million pins take a few hundred calls instead of one per pin.
pub(super) const STATUS_RANGE_PAGE: usize = 4096;

/// A cluster-wide status is sent to its stream in runs of lines of about this many bytes.
const WRITTEN_RUN: usize = 64 * 1024;

/// Runs buffered between a cluster-wide status and its writer (a megabyte; the stream's
/// usual buffer of single items would hold 16 MB of runs).
const RUNS_BUFFERED: usize = 16;

/// Ranges of a cluster-wide status asked for at once, ahead of the one being merged and sent.
const RANGES_AHEAD: usize = 2;

/// A range of this member's pins and every member's statuses of it.
type AskedRange = (Vec<Pin>, Vec<(PeerId, RangeAnswer)>);

/// Deadline of one member's answer for a range. Its first range lists the daemon's pins (Kubo
/// takes seconds for millions of them); a member that misses it is not asked again.
pub(super) const STATUS_RANGE_TIMEOUT: Duration = Duration::from_secs(120);

impl Cluster {
    /// Runs this member's daemon's repository GC; failures are reported inside the result.
    pub async fn repo_gc_local(&self) -> RepoGc {
        let mut result = RepoGc {
            peer: self.identity.peer_id,
            peername: self.config.cluster.peername.clone(),
            keys: Vec::new(),
            error: String::new(),
        };
        match self.ipfs.repo_gc().await {
            Ok(mut entries) => {
                let unlisted = entries.len().saturating_sub(REPO_GC_KEYS_LISTED);
                entries.truncate(REPO_GC_KEYS_LISTED);
                if unlisted > 0 {
                    entries.push(GcEntry::Error(format!("{unlisted} more keys removed, not listed")));
                }
                result.keys = entries
                    .into_iter()
                    .map(|entry| match entry {
                        GcEntry::Removed(cid) => RepoGcKey {
                            key: Some(cid),
                            error: String::new(),
                        },
                        GcEntry::Error(error) => RepoGcKey { key: None, error },
                    })
                    .collect();
            }
            Err(e) => result.error = e.to_string(),
        }
        result
    }

    /// Runs the repository GC on every member's daemon at once (Go `RepoGC`); a member that
    /// cannot be reached is reported with its error.
    pub async fn repo_gc_everywhere(&self) -> GlobalRepoGc {
        let answers = self
            .ask_every_member(
                self.repo_gc_local(),
                || RpcRequest::RepoGc,
                REPO_GC_TIMEOUT,
                answer_of!(RpcResponse::RepoGc),
            )
            .await;
        let peer_map = answers
            .into_iter()
            .map(|(member, answer)| {
                let peer = member.peer_id;
                let gc = answer.unwrap_or_else(|e| RepoGc {
                    peer,
                    peername: String::new(),
                    keys: Vec::new(),
                    error: e.to_string(),
                });
                (gc.peer.to_string(), gc)
            })
            .collect();
        GlobalRepoGc { peer_map }
    }

    /// Who is connected to whom (Go `ConnectGraph`): every member answering `id` is linked to the
    /// members it lists, and each daemon to its swarm peers.
    pub async fn connect_graph(&self) -> ConnectGraph {
        let ids = self.peers_list().await;
        let mut graph = ConnectGraph {
            cluster_id: self.identity.peer_id,
            id_to_peername: BTreeMap::new(),
            ipfs_links: BTreeMap::new(),
            cluster_links: BTreeMap::new(),
            cluster_trust_links: BTreeMap::new(),
            cluster_to_ipfs: BTreeMap::new(),
        };
        let members = self.members();
        let mut asked = Vec::new();
        for id in &ids {
            let key = id.id.to_string();
            graph.id_to_peername.insert(key.clone(), id.peername.clone());
            // Every Raft member is trusted.
            graph.cluster_trust_links.insert(key.clone(), true);
            if !id.error.is_empty() {
                continue;
            }
            let links: Vec<PeerId> = id.cluster_peers.iter().filter(|p| **p != id.id).copied().collect();
            graph.cluster_links.insert(key.clone(), links);
            if id.ipfs.id.is_empty() {
                continue;
            }
            graph.cluster_to_ipfs.insert(key.clone(), id.ipfs.id.clone());
            let member = if id.id == self.me_member.peer_id {
                Some(&self.me_member)
            } else {
                members.iter().find(|m| m.peer_id == id.id)
            };
            match member {
                Some(member) => asked.push(member.clone()),
                None => tracing::debug!(peer = %key, "swarm peers for the graph: not a member"),
            }
        }
        let swarms = self
            .ask_members(
                asked,
                Some(async {
                    self.ipfs
                        .swarm_peers()
                        .await
                        .map_err(|e| ClusterError::Ipfs(e.to_string()))
                }),
                || RpcRequest::SwarmPeers,
                STATUS_TIMEOUT,
                answer_of!(RpcResponse::SwarmPeers),
            )
            .await;
        for (member, answer) in swarms {
            match answer.and_then(|peers| peers) {
                Ok(peers) => {
                    if let Some(ipfs) = graph.cluster_to_ipfs.get(&member.peer_id.to_string()) {
                        graph.ipfs_links.insert(ipfs.clone(), peers);
                    }
                }
                Err(e) => tracing::debug!(peer = %member.peer_id, "swarm peers for the graph: {e}"),
            }
        }
        graph
    }

    /// The status of `cid` on every member: allocated members are asked (over RPC when remote),
    /// the others are `remote` without asking (Go `globalPinInfoCid`).
    pub async fn global_status(&self, cid: Cid) -> Result<GlobalPinInfo, ClusterError> {
        let local = self.tracker.status(&cid).await;
        let pin = self
            .state
            .get(&cid)
            .map_err(|e| ClusterError::storage("reading the pinset", e))?;
        let mut global = GlobalPinInfo {
            cid,
            name: String::new(),
            allocations: Vec::new(),
            origins: Vec::new(),
            created: Timestamp::ZERO,
            metadata: Default::default(),
            peer_map: Default::default(),
        };
        global.add(local);
        if self.rpc.is_none() {
            return Ok(global);
        }
        // Allocated members are asked at once; a slow one costs its own timeout, not the sum.
        let mut asked = Vec::new();
        for member in self.members() {
            let peer = member.peer_id;
            let status = match &pin {
                _ if peer == self.identity.peer_id => continue,
                None => TrackerStatus::Unpinned,
                Some(pin) if !pin.is_allocated_to(&peer) => TrackerStatus::Remote,
                Some(_) => {
                    asked.push(member);
                    continue;
                }
            };
            global.peer_map.insert(
                peer.to_string(),
                PinInfoShort {
                    status,
                    timestamp: Timestamp::now(),
                    ..Default::default()
                },
            );
        }
        let answers = self
            .ask_members(
                asked,
                None::<std::future::Ready<PinInfo>>,
                || RpcRequest::Status(cid),
                STATUS_TIMEOUT,
                answer_of!(RpcResponse::Status),
            )
            .await;
        for (member, answer) in answers {
            match answer {
                Ok(info) => global.add(info),
                Err(e) => {
                    global
                        .peer_map
                        .insert(member.peer_id.to_string(), cluster_error(e.to_string()));
                }
            }
        }
        Ok(global)
    }

    /// The identity of every member: this one directly, the others over RPC; an unreachable
    /// member is listed with its peer id and the error (Go `IDStream`).
    pub async fn peers_list(&self) -> Vec<Id> {
        // Every member is asked at once; the list keeps the member order.
        let answers = self
            .ask_every_member(
                self.id(),
                || RpcRequest::Id,
                STATUS_TIMEOUT,
                answer_of!(RpcResponse::Id),
            )
            .await;
        answers
            .into_iter()
            .map(|(member, answer)| {
                let peer = member.peer_id;
                answer.unwrap_or_else(|e| Id {
                    id: peer,
                    addresses: vec![format!("{}/p2p/{peer}", member.address)],
                    cluster_peers: Vec::new(),
                    cluster_peers_addresses: Vec::new(),
                    version: String::new(),
                    commit: String::new(),
                    rpc_protocol_version: String::new(),
                    error: e.to_string(),
                    ipfs: IpfsId::default(),
                    peername: String::new(),
                })
            })
            .collect()
    }

    /// Every member's status of every pin, streamed in CID byte order, asking each member once
    /// per range of pins ([`Cluster::stream_status_ranges`]), in runs of lines written as they are
    /// merged; or of `cids` only, one [`Cluster::global_status`] value per CID.
    pub fn global_status_stream(
        self: Arc<Self>,
        filter: TrackerStatusFilter,
        cids: Vec<Cid>,
    ) -> ResultStream<LineItem<GlobalPinInfo>> {
        self.global_status_paged(filter, cids, STATUS_RANGE_PAGE)
    }

    /// [`Cluster::global_status_stream`] with ranges of `page` pins (at least 1).
    pub fn global_status_paged(
        self: Arc<Self>,
        filter: TrackerStatusFilter,
        cids: Vec<Cid>,
        page: usize,
    ) -> ResultStream<LineItem<GlobalPinInfo>> {
        let page = page.max(1);
        spawn_stream_buffered(RUNS_BUFFERED, move |tx| {
            Box::pin(async move {
                if !cids.is_empty() {
                    for cid in cids {
                        let info = self.global_status(cid).await;
                        let keep = info.as_ref().map(|i| i.matches(filter)).unwrap_or(true);
                        if keep && tx.send(info.map(LineItem::Value)).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
                self.stream_status_ranges(page, filter, |lines| {
                    let tx = tx.clone();
                    async move { tx.send(lines.map(LineItem::Written)).await.is_ok() }
                })
                .await;
            })
        })
    }

    /// The cluster-wide status of every pin whose status on some member matches `filter`, one
    /// range of `page` pins of this member's state at a time: every member is asked for its
    /// statuses of the range at once ([`PinTracker::status_range`], as a [`StatusPage`]), and
    /// the answers are merged ([`MergedRange`]) and handed to `send` as lines, in runs of about
    /// [`WRITTEN_RUN`] bytes in CID byte order, until it returns false; the next
    /// [`RANGES_AHEAD`] ranges are asked for while one is merged and sent. The last range runs to
    /// the end, so pins only other members have yet are listed too. A member that fails is not
    /// asked again for the ranges asked after its failure: its error stands in for its statuses.
    pub(super) async fn stream_status_ranges<F, Fut>(
        self: &Arc<Self>,
        page: usize,
        filter: TrackerStatusFilter,
        send: F,
    ) where
        F: Fn(Result<WrittenLines, ClusterError>) -> Fut,
        Fut: Future<Output = bool>,
    {
        // Ranges are asked for in tasks of their own, so that the members work on the next ones
        // while this member merges and sends one.
        let ask = |pins: Vec<Pin>, after: Option<Cid>, through: Option<Cid>, failed: BTreeMap<PeerId, String>| {
            let me = self.clone();
            TaskOnLeash(cluster_rt::spawn(async move {
                let answers = me.ask_status_range(after, through, page, &failed, &pins).await;
                Ok((pins, answers))
            }))
        };
        let mut failed: BTreeMap<PeerId, String> = BTreeMap::new();
        let mut ahead = VecDeque::new();
        // Where this member's next range starts; `None` once its last range is asked for.
        let mut next_after: Option<Option<Cid>> = Some(None);
        // A range that cannot be read from this member's pinset takes its place as an error,
        // and no range follows it.
        let mut refill = |ahead: &mut VecDeque<Result<TaskOnLeash<AskedRange>, ClusterError>>,
                          failed: &BTreeMap<PeerId, String>| {
            while ahead.len() < RANGES_AHEAD {
                let Some(after) = next_after else { break };
                let pins = match self.state.list_page(after.as_ref(), page) {
                    Ok(pins) => pins,
                    Err(e) => {
                        next_after = None;
                        ahead.push_back(Err(ClusterError::storage("reading the pinset", e)));
                        break;
                    }
                };
                let through = if pins.len() < page {
                    None
                } else {
                    pins.last().map(|p| p.cid)
                };
                next_after = through.map(Some);
                ahead.push_back(Ok(ask(pins, after, through, failed.clone())));
            }
        };
        refill(&mut ahead, &failed);
        loop {
            let Some(asked) = ahead.pop_front() else { return };
            let answered = match asked {
                Ok(task) => task.await,
                Err(e) => Err(e),
            };
            let (pins, answers) = match answered {
                Ok(range) => range,
                Err(e) => {
                    send(Err(e)).await;
                    return;
                }
            };
            for (peer, answer) in &answers {
                if let RangeAnswer::Failed(error) = answer {
                    if !failed.contains_key(peer) {
                        tracing::debug!(%peer, "cluster-wide status: {error}");
                        failed.insert(*peer, error.clone());
                    }
                }
            }
            // The next ranges are asked for before this one is merged.
            refill(&mut ahead, &failed);
            let merged = match MergedRange::new(&pins, answers, Timestamp::now()) {
                Ok(merged) => merged,
                Err(e) => {
                    send(Err(ClusterError::Internal(format!("writing the statuses: {e}")))).await;
                    return;
                }
            };
            let mut lines = WrittenLines::with_capacity(WRITTEN_RUN * 2);
            for nth in 0..merged.len() {
                if let Err(e) = merged.write_line(nth, filter, &mut lines) {
                    send(Err(ClusterError::Internal(format!("writing the statuses: {e}")))).await;
                    return;
                }
                if lines.bytes() >= WRITTEN_RUN || (nth + 1 == merged.len() && lines.lines() > 0) {
                    let run = std::mem::replace(&mut lines, WrittenLines::with_capacity(WRITTEN_RUN * 2));
                    if !send(Ok(run)).await {
                        return;
                    }
                }
            }
        }
    }

    /// Every member's statuses of the range `(after, through]` (`through: None`: to the end),
    /// whose pins in this member's state are `own_pins`; members in `failed` are not asked
    /// again.
    async fn ask_status_range(
        &self,
        after: Option<Cid>,
        through: Option<Cid>,
        page: usize,
        failed: &BTreeMap<PeerId, String>,
        own_pins: &[Pin],
    ) -> Vec<(PeerId, RangeAnswer)> {
        let members = self.members();
        let asks = members.iter().map(|member| {
            let known_failure = failed.get(&member.peer_id).cloned();
            async move {
                let answer = match known_failure {
                    Some(error) => RangeAnswer::Failed(error),
                    None => match self.status_range_of(member, after, through, page, own_pins).await {
                        Ok(statuses) => RangeAnswer::Statuses(statuses),
                        Err(e) => RangeAnswer::Failed(e.to_string()),
                    },
                };
                (member.peer_id, answer)
            }
        });
        futures::future::join_all(asks).await
    }

    /// One member's statuses of `(after, through]`, asked `page` pins at a time until its
    /// answer covers the range (its state may hold more of it than this member's). This
    /// member's own answer walks `own_pins`, the range's pins already read from its state.
    async fn status_range_of(
        &self,
        member: &MemberNode,
        after: Option<Cid>,
        through: Option<Cid>,
        page: usize,
        own_pins: &[Pin],
    ) -> Result<StatusPage, ClusterError> {
        if member.peer_id == self.me_member.peer_id {
            let items = self.tracker.status_of_pins_short(after, through, own_pins).await?;
            return Ok(StatusPage::of_shorts(self.tracker.member_fields(), items, None));
        }
        let mut statuses: Option<StatusPage> = None;
        let mut after = after;
        loop {
            let range = StatusRange {
                after,
                through,
                limit: page as u32,
                packed: true,
            };
            let request = || RpcRequest::StatusPage(range);
            let answer = match self.call_member(member, request(), STATUS_RANGE_TIMEOUT).await {
                Ok(RpcResponse::StatusPage(answer)) => answer?.unpack(),
                Ok(other) => return Err(ClusterError::unexpected_answer(request(), other)),
                Err(e) => return Err(e.into_error(member.peer_id)),
            };
            let stopped_at = answer.stopped_at;
            match &mut statuses {
                None => statuses = Some(answer),
                Some(statuses) => statuses.items.extend(answer.items),
            }
            match stopped_at {
                // Each answer ends further on, so this ends.
                Some(cid) if Some(cid) != after => after = Some(cid),
                _ => return Ok(statuses.unwrap_or_default()),
            }
        }
    }

    /// Re-queues a failed `cid` on every member allocated to it, then reports the global status.
    pub async fn recover_everywhere(&self, cid: Cid) -> Result<GlobalPinInfo, ClusterError> {
        let pin = self
            .state
            .get(&cid)
            .map_err(|e| ClusterError::storage("reading the pinset", e))?;
        let allocated: Vec<MemberNode> = self
            .members()
            .into_iter()
            .filter(|member| match &pin {
                Some(pin) => pin.is_allocated_to(&member.peer_id),
                None => true,
            })
            .collect();
        let answers = self
            .ask_members(
                allocated,
                Some(self.tracker.recover(&cid)),
                || RpcRequest::Recover(cid),
                STATUS_TIMEOUT,
                answer_of!(RpcResponse::Recover),
            )
            .await;
        for (member, answer) in answers {
            let failure = match answer {
                Ok(Ok(_)) => continue,
                Ok(Err(e)) if member.peer_id == self.me_member.peer_id => return Err(e),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            tracing::debug!(%cid, "recover on {} failed: {failure}", member.peer_id);
        }
        self.global_status(cid).await
    }

    /// This member's side of a cluster-wide recover (Go `PinTracker.RecoverAll`): re-queues
    /// every failed item; returns the first [`RECOVER_ALL_LISTED_MAX`] of them, with their new
    /// status, and how many were re-queued in all. An item that cannot be re-queued is logged.
    pub async fn recover_all_local(&self) -> Result<(Vec<PinInfo>, u64), ClusterError> {
        let mut recovered = self.tracker.recover_all();
        let mut listed = Vec::new();
        let mut requeued = 0u64;
        let mut first_error = None;
        while let Some(item) = recovered.recv().await {
            match item {
                Ok(info) => {
                    requeued += 1;
                    if listed.len() < RECOVER_ALL_LISTED_MAX {
                        listed.push(info);
                    }
                }
                Err(e) => {
                    tracing::warn!("recover: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if requeued == 0 => Err(e),
            _ => Ok((listed, requeued)),
        }
    }

    /// Re-queues the failed items of every member at once (Go `RecoverAll`) and streams the
    /// items re-queued anywhere, one [`GlobalPinInfo`] per CID; a member that could not be asked
    /// is reported with its error in every item.
    pub fn recover_all_everywhere(self: Arc<Self>) -> ResultStream<GlobalPinInfo> {
        spawn_stream(move |tx| {
            Box::pin(async move {
                let answers = self
                    .ask_every_member(
                        self.recover_all_local(),
                        || RpcRequest::RecoverAll,
                        RECOVER_ALL_TIMEOUT,
                        answer_of!(RpcResponse::RecoverAll),
                    )
                    .await;
                let answers = answers.into_iter().map(|(member, answer)| {
                    let peer = member.peer_id;
                    (peer, answer.and_then(|recovered| recovered).map_err(|e| e.to_string()))
                });
                for item in merge_recovered(answers) {
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
            })
        })
    }
}

/// Merges members' recover-all answers per CID (as Go's `globalPinInfoStream`): each member
/// that could not be asked is reported in every item; when no item was re-queued anywhere and
/// some member failed, the answer is that failure.
pub(super) fn merge_recovered(
    answers: impl IntoIterator<Item = (PeerId, Result<(Vec<PinInfo>, u64), String>)>,
) -> Vec<Result<GlobalPinInfo, ClusterError>> {
    let mut merged: BTreeMap<Cid, GlobalPinInfo> = BTreeMap::new();
    let mut failed = Vec::new();
    for (peer, answer) in answers {
        let (items, requeued) = match answer {
            Ok(answer) => answer,
            Err(e) => {
                failed.push((peer, e));
                continue;
            }
        };
        if requeued > items.len() as u64 {
            tracing::info!("recover: {peer} re-queued {requeued} items; {} are listed", items.len());
        }
        for info in items {
            match merged.entry(info.cid) {
                std::collections::btree_map::Entry::Vacant(entry) => {
                    entry.insert(info.into_global());
                }
                std::collections::btree_map::Entry::Occupied(mut entry) => entry.get_mut().add(info),
            }
        }
    }
    if merged.is_empty() && !failed.is_empty() {
        let reasons: Vec<String> = failed.iter().map(|(peer, e)| format!("{peer}: {e}")).collect();
        return vec![Err(ClusterError::Internal(format!(
            "recover failed on {}",
            reasons.join("; ")
        )))];
    }
    merged
        .into_values()
        .map(|mut global| {
            for (peer, error) in &failed {
                global.peer_map.insert(peer.to_string(), cluster_error(error.clone()));
            }
            Ok(global)
        })
        .collect()
}

/// The status reported for a member that could not be asked.
pub(super) fn cluster_error(message: String) -> PinInfoShort {
    PinInfoShort {
        status: TrackerStatus::ClusterError,
        timestamp: Timestamp::now(),
        error: message,
        ..Default::default()
    }
}

/// A spawned task that is aborted when this handle is dropped (a stream whose reader left stops
/// fetching); awaiting it gives the task's result, or an error if the task panicked.
struct TaskOnLeash<T>(cluster_rt::tokio::task::JoinHandle<Result<T, ClusterError>>);

impl<T> Drop for TaskOnLeash<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for TaskOnLeash<T> {
    type Output = Result<T, ClusterError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|joined| joined.unwrap_or_else(|e| Err(ClusterError::Internal(format!("status range task: {e}")))))
    }
}

pub(super) fn spawn_stream<T: Send + 'static>(
    producer: impl FnOnce(mpsc::Sender<Result<T, ClusterError>>) -> futures::future::BoxFuture<'static, ()>,
) -> ResultStream<T> {
    spawn_stream_buffered(STREAM_BUFFER, producer)
}

/// [`spawn_stream`] with `buffer` items between the producer and the writer.
pub(super) fn spawn_stream_buffered<T: Send + 'static>(
    buffer: usize,
    producer: impl FnOnce(mpsc::Sender<Result<T, ClusterError>>) -> futures::future::BoxFuture<'static, ()>,
) -> ResultStream<T> {
    let (tx, rx) = mpsc::channel(buffer);
    cluster_rt::spawn(producer(tx));
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_on(peer: PeerId, cid: Cid) -> PinInfo {
        PinInfo {
            cid,
            name: String::new(),
            peer,
            allocations: Vec::new(),
            origins: Vec::new(),
            created: Timestamp::ZERO,
            metadata: Default::default(),
            short: PinInfoShort {
                status: TrackerStatus::PinQueued,
                ..Default::default()
            },
        }
    }

    #[test]
    fn recovered_items_merge_per_cid_and_name_the_members_not_asked() {
        let (a, b, c) = (
            PeerId::from_ed25519_seed([1; 32]),
            PeerId::from_ed25519_seed([2; 32]),
            PeerId::from_ed25519_seed([3; 32]),
        );
        let (x, y) = (Cid::raw_sha256(b"x"), Cid::raw_sha256(b"y"));
        let merged = merge_recovered([
            (a, Ok((vec![failed_on(a, x), failed_on(a, y)], 2))),
            (b, Ok((vec![failed_on(b, x)], 1))),
            (c, Err("unreachable: down".to_string())),
        ]);
        let merged: Vec<GlobalPinInfo> = merged.into_iter().map(Result::unwrap).collect();
        let mut expected = vec![(x, vec![a, b, c]), (y, vec![a, c])];
        expected.sort_by_key(|(cid, _)| *cid);
        assert_eq!(merged.len(), 2);
        for (global, (cid, peers)) in merged.iter().zip(&expected) {
            assert_eq!(global.cid, *cid);
            let mut reported: Vec<String> = global.peer_map.keys().cloned().collect();
            let mut wanted: Vec<String> = peers.iter().map(ToString::to_string).collect();
            reported.sort();
            wanted.sort();
            assert_eq!(reported, wanted);
            assert_eq!(global.peer_map[&c.to_string()].status, TrackerStatus::ClusterError);
            assert_eq!(global.peer_map[&c.to_string()].error, "unreachable: down");
            assert_eq!(global.peer_map[&a.to_string()].status, TrackerStatus::PinQueued);
        }
    }

    #[test]
    fn recover_with_nothing_requeued_and_a_failure_is_that_failure() {
        let (a, b) = (PeerId::from_ed25519_seed([1; 32]), PeerId::from_ed25519_seed([2; 32]));
        let merged = merge_recovered([(a, Ok((Vec::new(), 0))), (b, Err("no answer: timeout".to_string()))]);
        assert_eq!(merged.len(), 1);
        let error = merged.into_iter().next().unwrap().unwrap_err().to_string();
        assert!(error.contains(&format!("{b}: no answer: timeout")), "{error}");
        assert!(merge_recovered([(a, Ok((Vec::new(), 0)))]).is_empty());
    }
}
