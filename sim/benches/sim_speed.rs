//! How much faster than real time the simulator runs a 5-member cluster (DESIGN target: ≥ 100×).
//! Each seed: 5 members, a client pinning (replication 3) and unpinning through random members
//! for 60 simulated seconds, the leader killed at 20 s and restarted at 35 s, then every member
//! must agree. Two loads: `paced` waits 0-500 ms between operations as the random workload
//! does (about 4 operations/s); `saturated` sends the next operation as soon as the last one
//! returned (about 40/s). Prints simulated seconds per wall second for each.
//!
//! Run with `just sim-speed` (release build, `--cfg madsim`). `SIM_SPEED_SEEDS` sets the count.

#[cfg(not(madsim))]
fn main() {
    eprintln!("sim_speed measures the simulator: run it with `just sim-speed` (it needs --cfg madsim)");
}

#[cfg(madsim)]
fn main() {
    let seeds: u64 = std::env::var("SIM_SPEED_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    for (load, pause_max_ms) in [("paced", 500), ("saturated", 0)] {
        let (mut simulated_total, mut wall_total) = (0.0, 0.0);
        for seed in 1..=seeds {
            // Outside the runtime, `Instant` is the real clock; inside, the simulated one.
            let started = std::time::Instant::now();
            let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
            let report = runtime.block_on(five_members_under_load(pause_max_ms));
            drop(runtime);
            let wall = started.elapsed().as_secs_f64();
            simulated_total += report.simulated;
            wall_total += wall;
            println!(
                "{load} seed {seed}: {} ops ({} acknowledged), {} disk syncs, {:.1} simulated s in {wall:.2} wall s = {:.0}x",
                report.ops,
                report.acknowledged,
                report.syncs,
                report.simulated,
                report.simulated / wall
            );
        }
        println!(
            "{load}: 5 members, {seeds} seeds: {simulated_total:.1} simulated s in {wall_total:.2} wall s = {:.0}x real time",
            simulated_total / wall_total
        );
    }
}

#[cfg(madsim)]
struct Report {
    simulated: f64,
    ops: u64,
    acknowledged: u64,
    syncs: u64,
}

#[cfg(madsim)]
async fn five_members_under_load(pause_max_ms: u64) -> Report {
    use std::time::Duration;

    use cluster_sim::SimCluster;
    use cluster_types::Cid;
    use madsim::runtime::Handle;

    const SIZE: usize = 5;
    let handle = Handle::current();
    let mut cluster = SimCluster::start(&handle, SIZE);
    let leader = cluster
        .wait_leader(&(0..SIZE).collect::<Vec<_>>(), Duration::from_secs(30))
        .await;
    let start = cluster_rt::now();
    let (mut ops, mut acknowledged, mut next) = (0u64, 0u64, 0u64);
    let mut pinned: Vec<Cid> = Vec::new();
    let (mut killed, mut restarted) = (false, false);
    while cluster_rt::now() - start < Duration::from_secs(60) {
        let elapsed = cluster_rt::now() - start;
        if !killed && elapsed >= Duration::from_secs(20) {
            cluster.kill(&handle, leader);
            killed = true;
        }
        if killed && !restarted && elapsed >= Duration::from_secs(35) {
            cluster.restart(&handle, leader);
            restarted = true;
        }
        let alive = cluster.alive();
        let via = alive[(cluster_rt::random_u64() % alive.len() as u64) as usize];
        ops += 1;
        if next % 5 == 4 && !pinned.is_empty() {
            let cid = pinned.swap_remove((cluster_rt::random_u64() % pinned.len() as u64) as usize);
            if matches!(cluster.unpin(via, cid).await, Some(Ok(_))) {
                acknowledged += 1;
            }
        } else {
            let cid = Cid::raw_sha256(format!("speed {next}").as_bytes());
            if matches!(cluster.pin(via, cid, 3).await, Some(Ok(_))) {
                acknowledged += 1;
                pinned.push(cid);
            }
        }
        next += 1;
        if pause_max_ms > 0 {
            cluster_rt::sleep(Duration::from_millis(cluster_rt::random_u64() % pause_max_ms)).await;
        }
    }
    let all: Vec<usize> = (0..SIZE).collect();
    cluster.wait_leader(&all, Duration::from_secs(60)).await;
    let deadline = cluster_rt::now() + Duration::from_secs(60);
    loop {
        let snapshots = cluster.snapshots();
        if snapshots.iter().all(|m| m.alive && m.pins == snapshots[0].pins) {
            break;
        }
        assert!(cluster_rt::now() < deadline, "members did not agree within 60 s");
        cluster_rt::sleep(Duration::from_millis(250)).await;
    }
    Report {
        simulated: madsim::time::TimeHandle::current().elapsed().as_secs_f64(),
        ops,
        acknowledged,
        syncs: cluster.members.iter().map(|m| m.disk.syncs()).sum(),
    }
}
