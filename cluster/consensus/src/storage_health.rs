//! [`StorageHealth`]: whether this member's Raft log and pinset can be written, and the retry
//! of their disk I/O until it works again.
//!
//! openraft stops for good on any storage error, so a full disk used to need a restart after
//! space was freed. Instead, a write that fails because the disk cannot be written is retried
//! here (the database is opened again at each attempt, see `cluster_state::ReopeningDatabase`)
//! until it succeeds. Raft waits meanwhile; the other members carry on without this one. While
//! a write fails, `failure` names it: `/health` answers 503 with it, the member takes no new
//! pins, and writes sent to this member are refused with it instead of waiting.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use cluster_rt::tokio::sync::watch;

/// The first pause between two attempts; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// The longest pause between two attempts: how long after space is freed writes resume, at most.
const RETRY_MAX: Duration = Duration::from_secs(1);

/// The failing stores of one member (shared by its log store, state machine and consensus).
#[derive(Clone)]
pub struct StorageHealth {
    /// Store ("raft log", "pinset", ...) -> the error of its last failed write.
    failures: watch::Sender<BTreeMap<&'static str, String>>,
}

impl Default for StorageHealth {
    fn default() -> StorageHealth {
        StorageHealth {
            failures: watch::Sender::new(BTreeMap::new()),
        }
    }
}

impl std::fmt::Debug for StorageHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StorageHealth({:?})", self.failure())
    }
}

impl StorageHealth {
    /// `"<store>: <error>"` while a store's writes fail; `None` when all work.
    pub fn failure(&self) -> Option<String> {
        self.failures
            .borrow()
            .iter()
            .next()
            .map(|(store, error)| format!("{store}: {error}"))
    }

    /// Resolves with [`StorageHealth::failure`] once some store's writes fail.
    pub async fn failed(&self) -> String {
        let mut failures = self.failures.subscribe();
        // The sender lives in `self`, so waiting cannot fail.
        let _ = failures.wait_for(|failures| !failures.is_empty()).await;
        self.failure().unwrap_or_default()
    }

    fn record(&self, store: &'static str, error: String) {
        self.failures.send_if_modified(|failures| {
            let first = !failures.contains_key(store);
            if first {
                tracing::warn!("{store}: writing to disk failed ({error}); retrying until it works");
            }
            failures.insert(store, error);
            first
        });
    }

    fn clear(&self, store: &'static str) {
        self.failures.send_if_modified(|failures| {
            let was_failing = failures.remove(store).is_some();
            if was_failing {
                tracing::info!("{store}: writing to disk works again");
            }
            was_failing
        });
    }

    /// Runs `attempt` until it succeeds or fails for a reason other than the disk
    /// (`is_io_failure` false), pausing between attempts. A `write` records its failures
    /// under `store` and clears them on success; a read only retries.
    pub async fn retry<T, E: Display>(
        &self,
        store: &'static str,
        write: bool,
        is_io_failure: impl Fn(&E) -> bool,
        mut attempt: impl FnMut() -> Result<T, E>,
    ) -> Result<T, E> {
        self.retry_async(store, write, is_io_failure, || std::future::ready(attempt()))
            .await
    }

    /// [`StorageHealth::retry`] of an attempt that awaits (one run off the runtime's threads).
    pub async fn retry_async<T, E: Display, F: Future<Output = Result<T, E>>>(
        &self,
        store: &'static str,
        write: bool,
        is_io_failure: impl Fn(&E) -> bool,
        mut attempt: impl FnMut() -> F,
    ) -> Result<T, E> {
        let mut pause = RETRY_FIRST;
        loop {
            match attempt().await {
                Ok(value) => {
                    if write {
                        self.clear(store);
                    }
                    return Ok(value);
                }
                Err(e) if is_io_failure(&e) => {
                    if write {
                        self.record(store, e.to_string());
                    } else {
                        tracing::debug!("{store}: reading from disk failed ({e}); retrying");
                    }
                    cluster_rt::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Debug)]
    enum Failure {
        Disk,
        Data,
    }

    impl Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    fn is_disk(failure: &Failure) -> bool {
        matches!(failure, Failure::Disk)
    }

    #[tokio::test]
    async fn a_write_is_retried_until_the_disk_takes_it_and_reported_meanwhile() {
        let health = StorageHealth::default();
        let attempts = Cell::new(0);
        let seen_failing = Cell::new(false);
        let written = health
            .retry("raft log", true, is_disk, || {
                attempts.set(attempts.get() + 1);
                if attempts.get() > 1 {
                    seen_failing.set(health.failure().is_some_and(|f| f == "raft log: Disk"));
                }
                match attempts.get() {
                    1..=2 => Err(Failure::Disk),
                    _ => Ok("written"),
                }
            })
            .await;
        assert_eq!(written.unwrap(), "written");
        assert_eq!(attempts.get(), 3);
        assert!(seen_failing.get(), "the failure was reported while retrying");
        assert_eq!(health.failure(), None, "and cleared once the write worked");
    }

    #[tokio::test]
    async fn other_errors_go_back_at_once_and_reads_report_nothing() {
        let health = StorageHealth::default();
        let attempts = Cell::new(0);
        let result: Result<(), Failure> = health
            .retry("pinset", true, is_disk, || {
                attempts.set(attempts.get() + 1);
                Err(Failure::Data)
            })
            .await;
        assert!(matches!(result, Err(Failure::Data)));
        assert_eq!(attempts.get(), 1);
        let read = health
            .retry("pinset", false, is_disk, || match attempts.replace(0) {
                0 => Ok(()),
                _ => Err(Failure::Disk),
            })
            .await;
        assert!(read.is_ok());
        assert_eq!(health.failure(), None, "a failed read is retried, not reported");
    }

    #[tokio::test]
    async fn failed_resolves_once_a_store_fails() {
        let health = StorageHealth::default();
        let waiting = {
            let health = health.clone();
            tokio::spawn(async move { health.failed().await })
        };
        health.record("pinset", "No space left on device".into());
        let failure = waiting.await.unwrap();
        assert_eq!(failure, "pinset: No space left on device");
    }
}
