//! [`BackgroundSync`]: the pinset's periodic sync, run beside the applies instead of inside one.
//!
//! A sync writes every buffered apply to the store in one durable commit: tens of
//! milliseconds under load. Awaited inside an apply, it held every client write of the leader
//! that long, every few thousand writes (the p99 of a loaded cluster). Nothing needs to wait
//! for it: a sync the disk refuses loses nothing (`cluster_state::BufferedState` keeps what it
//! could not write, for the next one), a snapshot's own sync waits for a running one, and a
//! crash loses only what the log applies again.

use std::sync::{Arc, Mutex, MutexGuard};

use cluster_rt::tokio::task::JoinHandle;
use cluster_state::{IoFailure, State, StateError};
use cluster_types::Cid;

use crate::StorageHealth;

/// How long a shutdown waits for a running sync (one waiting for a full disk never ends).
const FINISH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The state machine's syncs in the background; clones share them.
#[derive(Clone, Default)]
pub(crate) struct BackgroundSync(Arc<Mutex<Syncs>>);

#[derive(Default)]
struct Syncs {
    /// The running sync, if any.
    task: Option<JoinHandle<()>>,
    running: bool,
    /// The CIDs named by the applies the running sync (or a failed one) writes.
    cids: Vec<Cid>,
    /// Why the last sync failed for a reason other than the disk: the next apply reports it.
    failed: Option<String>,
}

impl BackgroundSync {
    fn syncs(&self) -> MutexGuard<'_, Syncs> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a sync of `state`, retried while the disk refuses it, unless one is running;
    /// then takes `cids` (those of the applies it writes) until it succeeds. `false`: one was
    /// running, and nothing was taken.
    pub(crate) fn start(
        &self,
        state: &Arc<dyn State>,
        health: &StorageHealth,
        store: &'static str,
        cids: &mut Vec<Cid>,
    ) -> bool {
        let mut syncs = self.syncs();
        if syncs.running {
            return false;
        }
        syncs.running = true;
        syncs.cids.append(cids);
        let (state, health, shared) = (state.clone(), health.clone(), self.clone());
        syncs.task = Some(cluster_rt::spawn(async move {
            let synced = health
                .retry_async(store, true, StateError::is_io_failure, || {
                    let state = state.clone();
                    cluster_rt::blocking(move || state.sync())
                })
                .await;
            let mut syncs = shared.syncs();
            syncs.running = false;
            match synced {
                Ok(()) => syncs.cids.clear(),
                Err(e) => {
                    tracing::error!("syncing the pinset: {e}");
                    syncs.failed = Some(e.to_string());
                }
            }
        }));
        true
    }

    /// Why the last sync failed, once.
    pub(crate) fn take_failure(&self) -> Option<String> {
        self.syncs().failed.take()
    }

    /// The CIDs named by applies that a running or failed sync has not made durable.
    pub(crate) fn pending_cids(&self) -> Vec<Cid> {
        self.syncs().cids.clone()
    }

    /// Waits (a while at most) for a running sync, so that it no longer holds the store: a
    /// restart in the same process can open it again.
    pub(crate) async fn finish(&self) {
        let task = self.syncs().task.take();
        if let Some(mut task) = task {
            if cluster_rt::timeout(FINISH_WAIT, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
    }
}
