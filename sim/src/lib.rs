//! Whole-cluster scenarios under the madsim simulator.
//!
//! Owns: building members as simulated nodes (each with its own fake IPFS daemon, a data folder
//! and a memory disk, [`SimDisk`], that keeps across `kill`/`restart` only what was synced), the
//! trace hash that proves a seed replays, and the scenarios in `tests/`. The members and the
//! scenarios are compiled only with `--cfg madsim`; run them with `just sim` (fixed seeds) or
//! `just sim-replay SEED`, and measure the simulator's speed with `just sim-speed`.
#![deny(missing_docs)]

#[cfg(madsim)]
pub mod invariants;
#[cfg(madsim)]
mod member;
mod oracle;
#[cfg(madsim)]
mod sim_cluster;
mod sim_disk;
#[cfg(madsim)]
mod snapshot;
mod trace_hash;
#[cfg(madsim)]
pub mod workload;

#[cfg(madsim)]
pub use member::{SimMember, SimMemberConfig, MEMBER_PORT};
pub use oracle::{OpKind, OpRecord, Oracle, Outcome};
#[cfg(madsim)]
pub use sim_cluster::{member_ip, member_seed, SimCluster};
pub use sim_disk::SimDisk;
#[cfg(madsim)]
pub use snapshot::MemberSnapshot;
pub use trace_hash::TraceHash;

/// The seed of the running simulation, for failure messages.
#[cfg(madsim)]
pub fn seed() -> u64 {
    madsim::runtime::Handle::current().seed()
}

/// How to replay a failing seed of the running scenario; every scenario prints this on failure.
#[cfg(madsim)]
pub fn replay_hint() -> String {
    match SCENARIO.with(|name| name.borrow().clone()) {
        Some(name) => format!("replay with: just sim-replay {} {name}", seed()),
        None => format!("replay with: just sim-replay {}", seed()),
    }
}

/// Polls `check` every `every` (simulated time) until it returns true; panics with `what()` and
/// the replay hint once `limit` has passed, so a scenario stuck waiting says what it waited for.
#[cfg(madsim)]
pub async fn poll_until(
    limit: std::time::Duration,
    every: std::time::Duration,
    what: impl Fn() -> String,
    mut check: impl FnMut() -> bool,
) {
    let deadline = cluster_rt::now() + limit;
    while !check() {
        assert!(cluster_rt::now() < deadline, "{}; {}", what(), replay_hint());
        cluster_rt::sleep(every).await;
    }
}

/// Runs `scenario` under the simulator with `seed`, as `MADSIM_TEST_SEED=seed` runs a
/// `#[madsim::test]`: the regression form of a scenario that failed at one seed. A fresh
/// thread per run, as `#[madsim::test]` does: std's hash map keys are drawn once per thread,
/// so a second simulation on the same thread would not replay the seed.
#[cfg(madsim)]
pub fn run_seed<F, Fut, T>(seed: u64, scenario: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    #[allow(clippy::disallowed_methods)]
    let run = std::thread::spawn(move || {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
        runtime.block_on(scenario())
    });
    run.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

thread_local! {
    /// The scenario this thread runs (madsim runs each seed on a thread of its own).
    static SCENARIO: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Starts a scenario: names it for [`replay_hint`] after the test function it is written in,
/// and prints the members' logs when `RUST_LOG` is set. Every scenario begins with it.
#[macro_export]
macro_rules! scenario {
    () => {{
        fn here() {}
        $crate::begin_scenario(::std::any::type_name_of_val(&here))
    }};
}

/// What [`scenario!`] calls with the path of a function inside the test function: the test
/// function's name is the last segment that is neither that function nor a closure.
pub fn begin_scenario(path: &str) {
    let name = path
        .rsplit("::")
        .find(|segment| *segment != "here" && !segment.starts_with('{'))
        .unwrap_or(path)
        .to_string();
    SCENARIO.with(|scenario| *scenario.borrow_mut() = Some(name));
    init_logging();
}

/// Prints the members' logs when `RUST_LOG` is set (for example `RUST_LOG=info just sim-replay S`).
/// Log lines carry simulated time, so a replay prints the same.
///
/// The subscriber is installed without `RUST_LOG` too, filtering everything out: installing it
/// creates hash maps, whose keys std draws from the simulated random source, so a run with logs
/// and one without would otherwise take different schedules from the same seed (CI seed
/// 3721343459 failed without logs and passed with them).
pub fn init_logging() {
    let filter = match std::env::var_os("RUST_LOG") {
        Some(_) => tracing_subscriber::EnvFilter::from_default_env(),
        None => tracing_subscriber::EnvFilter::new("off"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
