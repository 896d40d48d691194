//! The runtime seam: the only place where cluster code gets time, tasks and randomness.
//!
//! Every other cluster crate takes `tokio` from here (`cluster_rt::tokio`), which is
//! `madsim-tokio`: real tokio in production, the madsim simulator under `--cfg madsim`.
//! Randomness comes from [`rng`], which is seeded by madsim in simulation, so a failing
//! seed replays exactly. [`OpenraftRuntime`] is openraft's `AsyncRuntime` over the same
//! seam: openraft's own default runtime uses `rand::thread_rng`, which madsim cannot seed.
//!
//! This crate does not own the network: transports live in `cluster-rpc` and `cluster-p2p`.
#![deny(missing_docs)]

mod openraft_runtime;

pub use openraft_runtime::{OpenraftRuntime, RtInstant};
pub use tokio;

use std::future::Future;
use std::time::{Duration, SystemTime};

/// A random number generator that is deterministic under the simulator.
pub fn rng() -> rand::rngs::StdRng {
    use rand::SeedableRng;
    rand::rngs::StdRng::seed_from_u64(random_u64())
}

/// A random `u64`, deterministic under the simulator.
///
/// Under madsim it comes from the running simulation's own generator, so a seed's run does
/// not depend on what ran before it on the same thread (rand's thread-local generator would
/// carry its state from one simulation to the next). In production it is rand 0.9's
/// thread-local generator; never rand 0.8's `thread_rng` or `OsRng`, which escape madsim.
pub fn random_u64() -> u64 {
    #[cfg(madsim)]
    {
        madsim::rand::random()
    }
    #[cfg(not(madsim))]
    {
        use rand::Rng;
        rand::rng().random()
    }
}

/// Fills `buf` with random bytes, deterministic under the simulator.
pub fn fill_random(buf: &mut [u8]) {
    #[cfg(madsim)]
    {
        use madsim::rand::RngCore;
        madsim::rand::thread_rng().fill_bytes(buf)
    }
    #[cfg(not(madsim))]
    {
        use rand::RngCore;
        rand::rng().fill_bytes(buf)
    }
}

/// Wall-clock time (simulated under madsim).
pub fn now_system() -> SystemTime {
    SystemTime::now()
}

/// Monotonic time (simulated under madsim).
pub fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// Sleeps for `duration` (simulated time under madsim).
pub async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await
}

/// Spawns a task on the current runtime (a simulated node's runtime under madsim).
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future)
}

/// Runs blocking work (a database commit, an fsync) off the runtime's worker threads, so that
/// other tasks go on meanwhile. The simulator runs one thread and no real disk: there it runs
/// in place, as one step of the calling task.
pub async fn blocking<F, R>(work: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    #[cfg(madsim)]
    {
        work()
    }
    #[cfg(not(madsim))]
    {
        match tokio::task::spawn_blocking(work).await {
            Ok(value) => value,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("blocking work did not finish: {e}"),
            },
        }
    }
}

/// Runs `future` with a deadline; `Err(Elapsed)` when it fires first.
///
/// A combinator, not an `async fn`: one of those keeps its argument and the future it awaits
/// side by side, twice the size of `future`, and a write's future (moved whole a few times per
/// request) was 27 KB for it.
pub fn timeout<F: Future>(duration: Duration, future: F) -> impl Future<Output = Result<F::Output, Elapsed>> {
    use futures::FutureExt;
    tokio::time::timeout(duration, future).map(move |result| result.map_err(|_| Elapsed(duration)))
}

/// A deadline passed before an operation finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(pub Duration);

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "deadline of {:?} exceeded", self.0)
    }
}

impl std::error::Error for Elapsed {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_sources_produce_values() {
        let mut a = [0u8; 32];
        fill_random(&mut a);
        assert_ne!(a, [0u8; 32], "32 random bytes all zero");
        assert_ne!(random_u64(), random_u64());
    }
}
