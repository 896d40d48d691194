//! [`OwnedTask`]: a background task of a member's consensus (the election watch, the state
//! repair), stopped when its owner drops it, or stopped and awaited at shutdown.

use std::sync::Mutex;

use cluster_rt::tokio::task::JoinHandle;

/// A spawned task that ends with its owner.
pub(crate) struct OwnedTask(Mutex<Option<JoinHandle<()>>>);

impl OwnedTask {
    pub(crate) fn new(task: JoinHandle<()>) -> OwnedTask {
        OwnedTask(Mutex::new(Some(task)))
    }

    /// Stops the task and waits until it has dropped what it holds (the log store, the
    /// pinset's store), so that a restart in the same process can open them again. An abort
    /// alone takes effect only when the runtime next polls the task.
    pub(crate) async fn stop(&self) {
        let task = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for OwnedTask {
    fn drop(&mut self) {
        if let Some(task) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}
