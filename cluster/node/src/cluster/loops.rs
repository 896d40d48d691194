//! The member's background loops that are not about one concern: the daemon watch at start
//! and the periodic state sync and recover passes.

use super::*;

/// How often the daemon is polled until it first answers.
pub(super) const IPFS_POLL: Duration = Duration::from_secs(1);

impl Cluster {
    pub(super) fn spawn_loops(self: &Arc<Self>) {
        self.spawn_ipfs_watch();
        self.spawn_membership_watch();
        self.spawn_allocation_repair();
        self.spawn_informer();
        self.spawn_alert_checker();
        // First sync once a leader exists: re-queues pins the daemon lost while we were down.
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        cluster_rt::spawn(async move {
            let wait = cluster
                .consensus
                .wait_for_leader(cluster.config.raft.wait_for_leader_timeout);
            cluster_rt::tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                result = wait => if let Err(e) = result { tracing::warn!("startup: {e}") },
            }
            cluster.sync_once("startup").await;
            loop {
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(cluster.config.cluster.state_sync_interval) => cluster.sync_once("periodic").await,
                }
            }
        });
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        cluster_rt::spawn(async move {
            loop {
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(cluster.config.cluster.pin_recover_interval) => {
                        let mut recovered = cluster.tracker.recover_all();
                        let mut count = 0u64;
                        while let Some(item) = recovered.recv().await {
                            if item.is_ok() {
                                count += 1;
                            }
                        }
                        if count > 0 {
                            tracing::info!("recover: re-queued {count} items");
                        }
                    }
                }
            }
        });
    }

    /// Polls the IPFS daemon's `id` every second until it answers (Go waits for it at start; we
    /// start anyway and report the error in `/id`). When it comes back after failures, failed
    /// pins are re-queued at once instead of at the next recover interval.
    pub(super) fn spawn_ipfs_watch(self: &Arc<Self>) {
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        cluster_rt::spawn(async move {
            let mut failures: u64 = 0;
            loop {
                match cluster.ipfs.id().await {
                    Ok(id) => {
                        tracing::info!("IPFS daemon is ready (peer id {})", id.id);
                        *cluster.ipfs_identity.lock().expect("ipfs identity lock") = Some(id);
                        break;
                    }
                    Err(e) => {
                        if failures.is_multiple_of(30) {
                            tracing::warn!("IPFS daemon not reachable yet: {e}");
                        }
                        failures += 1;
                    }
                }
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(IPFS_POLL) => {}
                }
            }
            if failures > 0 {
                let mut recovered = cluster.tracker.recover_all();
                while recovered.recv().await.is_some() {}
            }
        });
    }

    pub(super) async fn sync_once(&self, why: &str) {
        match self.tracker.sync_state().await {
            Ok(report) => tracing::debug!("{why} state sync: {report:?}"),
            Err(e) => tracing::warn!("{why} state sync failed: {e}"),
        }
    }
}
