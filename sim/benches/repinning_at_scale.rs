//! Repinning at scale: 5 members with the shipped defaults (grace 1 m, 1,000 pins/s), a
//! pinset of `REPIN_PINS` pins (default 100,000) at replication 2, loaded in bulk (batches of
//! 1,000 pins per Raft entry) and placed on every daemon; then a member holding about 40 % of
//! them is lost for good. Prints how long until every pin is back on two live members (on
//! their daemons), the peak rate of Raft entries and of re-allocated pins, and the wall time.
//!
//! Run with `just bench-repinning` (release build, `--cfg madsim`).

#[cfg(not(madsim))]
fn main() {
    eprintln!("repinning_at_scale runs in the simulator: run it with `just bench-repinning` (it needs --cfg madsim)");
}

#[cfg(madsim)]
fn main() {
    let pins: u64 = std::env::var("REPIN_PINS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let started = std::time::Instant::now();
    let runtime = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
    runtime.block_on(lose_a_member_holding_many_pins(pins));
    println!("wall time: {:.1} s", started.elapsed().as_secs_f64());
}

#[cfg(madsim)]
async fn lose_a_member_holding_many_pins(count: u64) {
    use std::collections::HashSet;
    use std::time::Duration;

    use cluster_consensus::Command;
    use cluster_sim::SimCluster;
    use cluster_state::PinIter;
    use cluster_types::{Cid, Pin, PinOptions};
    use madsim::runtime::Handle;

    const SIZE: usize = 5;
    const BATCH: u64 = 1000;
    let handle = Handle::current();
    let mut cluster = SimCluster::start(&handle, SIZE);
    let all: Vec<usize> = (0..SIZE).collect();
    let leader = cluster.wait_leader(&all, Duration::from_secs(30)).await;
    let peers: Vec<_> = cluster.members.iter().map(|m| m.identity.peer_id).collect();
    let loading = cluster_rt::now();
    let consensus = cluster.members[leader].cluster().expect("up").consensus().clone();
    for first in (0..count).step_by(BATCH as usize) {
        let commands = (first..(first + BATCH).min(count))
            .map(|i| {
                let mut pin = Pin::new(
                    Cid::raw_sha256(format!("repinning at scale {i}").as_bytes()),
                    PinOptions {
                        replication_factor_min: 2,
                        replication_factor_max: 2,
                        ..Default::default()
                    },
                );
                pin.allocations = vec![peers[i as usize % SIZE], peers[(i as usize + 1) % SIZE]];
                Command::Pin(pin)
            })
            .collect();
        consensus.log_batch(commands).await.expect("bulk load");
    }
    let expected = 2 * count as usize / SIZE;
    let deadline = cluster_rt::now() + Duration::from_secs(3600);
    while cluster.members.iter().any(|m| m.ipfs.pins().len() < expected) {
        assert!(cluster_rt::now() < deadline, "pins placed within an hour");
        cluster_rt::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "{count} pins, replication 2, on 5 members: loaded and placed in {:.1} simulated s",
        (cluster_rt::now() - loading).as_secs_f64()
    );

    let victim = (leader + 1) % SIZE;
    let lost = peers[victim];
    cluster.kill(&handle, victim);
    let killed = cluster_rt::now();
    let held = |index: usize| -> HashSet<Cid> { cluster.members[index].ipfs.pins().into_iter().collect() };
    let (mut first_move, mut all_moved) = (None, None);
    let (mut peak_entries, mut peak_moves) = (0u64, 0u64);
    let (mut last_index, mut last_on_lost) = (None::<u64>, None::<u64>);
    let start_index = consensus.last_log_index().unwrap_or(0);
    loop {
        cluster_rt::sleep(Duration::from_secs(1)).await;
        let Some(deciding) = (0..SIZE)
            .filter(|i| *i != victim)
            .find_map(|i| cluster.members[i].cluster().filter(|c| c.consensus().is_leader()))
        else {
            continue;
        };
        let index = deciding.consensus().last_log_index().unwrap_or(0);
        let on_lost = PinIter::new(deciding.state().as_ref(), 1000)
            .filter(|p| p.as_ref().is_ok_and(|p| p.is_allocated_to(&lost)))
            .count() as u64;
        if let (Some(last), Some(before)) = (last_index, last_on_lost) {
            peak_entries = peak_entries.max(index.saturating_sub(last));
            peak_moves = peak_moves.max(before.saturating_sub(on_lost));
        }
        let since = cluster_rt::now() - killed;
        if first_move.is_none() && last_on_lost.is_some_and(|before| on_lost < before) {
            first_move = Some(since);
        }
        last_index = Some(index);
        last_on_lost = Some(on_lost);
        if on_lost == 0 && all_moved.is_none() {
            all_moved = Some(since);
        }
        if all_moved.is_some() {
            let daemons: Vec<HashSet<Cid>> = (0..SIZE).map(held).collect();
            let short = PinIter::new(deciding.state().as_ref(), 1000)
                .filter_map(Result::ok)
                .filter(|p| {
                    (0..SIZE)
                        .filter(|i| *i != victim && p.is_allocated_to(&peers[*i]) && daemons[*i].contains(&p.cid))
                        .count()
                        < 2
                })
                .count();
            if short == 0 {
                let restored = cluster_rt::now() - killed;
                let entries = index - start_index;
                println!("lost member {victim} held {} pins", expected);
                println!(
                    "first re-allocation {:.0} s after the kill; all re-allocated after {:.1} s; every pin on 2 live daemons after {:.1} s",
                    first_move.unwrap_or_default().as_secs_f64(),
                    all_moved.unwrap_or_default().as_secs_f64(),
                    restored.as_secs_f64()
                );
                println!(
                    "Raft: {entries} entries during the repair, peak {peak_entries} entries/s; peak {peak_moves} pins re-allocated/s (repinning_rate 1000)"
                );
                return;
            }
        }
        assert!(
            since < Duration::from_secs(3600),
            "replication restored within an hour of simulated time ({on_lost} pins still on the lost member)"
        );
    }
}
