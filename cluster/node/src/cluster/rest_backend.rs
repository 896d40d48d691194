//! The REST API's view of the member: `RestBackend` over the member's methods.

use super::*;
use cluster_types::LineItem;

#[async_trait::async_trait]
impl RestBackend for Cluster {
    async fn id(&self) -> Id {
        Cluster::id(self).await
    }

    async fn health(&self) -> Result<(), String> {
        Cluster::health(self)
    }

    async fn peer_add(&self, peer: PeerId, addresses: Vec<String>) -> Result<Id, ClusterError> {
        let address = match addresses.first() {
            None => String::new(),
            Some(text) => {
                let with_peer = format!("{}/p2p/{peer}", text.trim_end_matches(&format!("/p2p/{peer}")));
                member_of_address(&with_peer)
                    .map_err(|e| ClusterError::InvalidArgument(format!("address {text:?}: {e}")))?
                    .address
            }
        };
        let member = self.peer_add(MemberNode { peer_id: peer, address }).await?;
        if peer == self.identity.peer_id {
            return Ok(Cluster::id(self).await);
        }
        match self.call_member(&member, RpcRequest::Id, STATUS_TIMEOUT).await {
            Ok(RpcResponse::Id(id)) => Ok(id),
            Ok(other) => Err(ClusterError::unexpected_answer("Id", other)),
            Err(e) => Err(e.into_error(peer)),
        }
    }

    async fn peer_remove(&self, peer: PeerId) -> Result<(), ClusterError> {
        Cluster::peer_remove(self, peer).await
    }

    async fn metric_names(&self) -> Vec<String> {
        Cluster::metric_names(self)
    }

    async fn metrics(&self, name: String) -> Vec<Metric> {
        self.fresh_metrics(&name)
    }

    async fn alerts(&self) -> Vec<Alert> {
        Cluster::alerts(self)
    }

    async fn bandwidth(&self) -> BTreeMap<String, Bandwidth> {
        Cluster::bandwidth(self)
    }

    async fn connect_graph(&self) -> Result<ConnectGraph, ClusterError> {
        Ok(Cluster::connect_graph(self).await)
    }

    async fn add_destinations(&self, options: &PinOptions, local: bool) -> Result<Vec<PeerId>, ClusterError> {
        Cluster::add_destinations(self, options, local)
    }

    async fn add_blocks(&self, destinations: &[PeerId], blocks: Vec<(Cid, Bytes)>) -> Result<(), ClusterError> {
        Cluster::add_blocks(self, destinations, blocks).await
    }

    async fn add_pin(&self, root: Cid, options: PinOptions, destinations: Vec<PeerId>) -> Result<Pin, ClusterError> {
        Cluster::add_pin(self, root, options, destinations).await
    }

    async fn repo_stat_all(&self) -> Result<(u64, u64), ClusterError> {
        let local = async {
            self.ipfs
                .repo_stat()
                .await
                .map(|stat| (stat.repo_size, stat.storage_max))
                .map_err(|e| ClusterError::Ipfs(e.to_string()))
        };
        let answers = self
            .ask_every_member(
                local,
                || RpcRequest::RepoStat,
                STATUS_TIMEOUT,
                answer_of!(RpcResponse::RepoStat),
            )
            .await;
        let answers = answers.into_iter().map(|(member, answer)| {
            answer
                .and_then(|stat| stat)
                .map_err(|e| format!("{}: {e}", member.peer_id))
        });
        let mut total = (0u64, 0u64);
        for answer in answers {
            // As Go: a member that cannot answer is logged and left out of the sum.
            match answer {
                Ok((size, max)) => total = (total.0.saturating_add(size), total.1.saturating_add(max)),
                Err(e) => tracing::warn!("repo/stat: a member did not answer: {e}"),
            }
        }
        Ok(total)
    }

    async fn repo_gc(&self, local: bool) -> Result<GlobalRepoGc, ClusterError> {
        if local {
            let gc = self.repo_gc_local().await;
            return Ok(GlobalRepoGc {
                peer_map: BTreeMap::from([(gc.peer.to_string(), gc)]),
            });
        }
        Ok(self.repo_gc_everywhere().await)
    }

    async fn peers(&self) -> ResultStream<Id> {
        // Members are few (Raft clusters stay small): all are asked at once, then streamed.
        let ids = self.peers_list().await;
        let (tx, rx) = mpsc::channel(ids.len().max(1));
        for id in ids {
            let _ = tx.send(Ok(id)).await;
        }
        rx
    }

    async fn pin(&self, cid: Cid, options: PinOptions) -> Result<Pin, ClusterError> {
        Cluster::pin(self, cid, options).await
    }

    async fn pin_path(&self, path: String, options: PinOptions) -> Result<Pin, ClusterError> {
        let cid = self.resolve_path(&path).await?;
        Cluster::pin(self, cid, options).await
    }

    async fn unpin(&self, cid: Cid) -> Result<Pin, ClusterError> {
        Cluster::unpin(self, cid).await
    }

    async fn unpin_path(&self, path: String) -> Result<Pin, ClusterError> {
        let cid = self.resolve_path(&path).await?;
        Cluster::unpin(self, cid).await
    }

    async fn resolve_path(&self, path: String) -> Result<Cid, ClusterError> {
        Cluster::resolve_path(self, &path).await
    }

    async fn allocations(&self, type_mask: u32) -> PageStream<Pin> {
        let state = self.state.clone();
        spawn_stream_buffered(PAGES_BUFFER, move |tx| {
            Box::pin(async move {
                let mut after: Option<Cid> = None;
                loop {
                    let mut page = match state.list_page(after.as_ref(), STATE_PAGE) {
                        Ok(page) => page,
                        Err(e) => {
                            let _ = tx.send(Err(ClusterError::storage("reading the pinset", e))).await;
                            return;
                        }
                    };
                    let done = page.len() < STATE_PAGE;
                    after = page.last().map(|p| p.cid);
                    page.retain(|pin| pin.pin_type.flag() & type_mask != 0);
                    if !page.is_empty() && tx.send(Ok(page)).await.is_err() {
                        return;
                    }
                    if done {
                        return;
                    }
                }
            })
        })
    }

    async fn allocation(&self, cid: Cid) -> Result<Pin, ClusterError> {
        self.state
            .get(&cid)
            .map_err(|e| ClusterError::storage("reading the pinset", e))?
            .ok_or(ClusterError::NotFound)
    }

    async fn status(&self, cid: Cid, local: bool) -> Result<GlobalPinInfo, ClusterError> {
        if local {
            return Ok(self.tracker.status(&cid).await.into_global());
        }
        self.global_status(cid).await
    }

    async fn status_all(
        &self,
        filter: TrackerStatusFilter,
        cids: Vec<Cid>,
        local: bool,
    ) -> ResultStream<LineItem<GlobalPinInfo>> {
        // A cluster of one answers from its tracker's stream, not pin by pin.
        if !local && self.rpc.is_some() && self.consensus.members().len() > 1 {
            if let Some(me) = self.me.upgrade() {
                return me.global_status_stream(filter, cids);
            }
        }
        if cids.is_empty() {
            let mut local = self.tracker.status_all(filter);
            return spawn_stream(move |tx| {
                Box::pin(async move {
                    while let Some(item) = local.recv().await {
                        if tx
                            .send(item.map(|info| LineItem::Value(info.into_global())))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                })
            });
        }
        let tracker = self.tracker.clone();
        spawn_stream(move |tx| {
            Box::pin(async move {
                for cid in cids {
                    let info = tracker.status(&cid).await.into_global();
                    if info.matches(filter) && tx.send(Ok(LineItem::Value(info))).await.is_err() {
                        return;
                    }
                }
            })
        })
    }

    async fn recover(&self, cid: Cid, local: bool) -> Result<GlobalPinInfo, ClusterError> {
        if local || self.rpc.is_none() {
            return self.tracker.recover(&cid).await.map(|info| info.into_global());
        }
        self.recover_everywhere(cid).await
    }

    async fn recover_all(&self, local: bool) -> ResultStream<GlobalPinInfo> {
        if !local && self.rpc.is_some() {
            if let Some(me) = self.me.upgrade() {
                return me.recover_all_everywhere();
            }
        }
        let mut local = self.tracker.recover_all();
        spawn_stream(move |tx| {
            Box::pin(async move {
                while let Some(item) = local.recv().await {
                    if tx.send(item.map(|info| info.into_global())).await.is_err() {
                        return;
                    }
                }
            })
        })
    }
}
