//! The repair of applies the pinset lost to another writer's failed commit: when the store is
//! opened again at its last durable commit (see [`cluster_state::State::reopens`]), what the
//! state machine had applied since its last sync is gone. An apply notices at the next entry,
//! but an idle cluster may send none for hours; this task applies the loss again from the log
//! as soon as the store reports the reopen.

use std::time::Duration;

use crate::owned_task::OwnedTask;
use crate::PinsetStateMachine;

/// How often the store's reopen count is read: a loss waits at most this long (plus the disk's
/// own outage) before it is applied again.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Watches `machine`'s store and repairs what each reopen lost. `machine` is a clone of the
/// state machine openraft runs: they take turns, so a repair never runs beside an apply.
pub(crate) fn spawn(mut machine: PinsetStateMachine) -> OwnedTask {
    OwnedTask::new(cluster_rt::spawn(async move {
        let mut repaired = machine.store_reopens();
        loop {
            cluster_rt::sleep(CHECK_EVERY).await;
            let reopens = machine.store_reopens();
            if reopens == repaired {
                continue;
            }
            match machine.repair_lost_applies().await {
                Ok(()) => repaired = reopens,
                Err(e) => tracing::warn!("applying again what the pinset lost to a failed write: {e}; retrying"),
            }
        }
    }))
}
