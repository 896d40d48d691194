//! The fault plan of the random workload: drawing each fault from the seed and applying it to
//! the cluster (crashes, pauses, partitions, link and message faults, daemon faults, full,
//! wiped and lost disks), and the guards that keep a draw survivable.

use std::time::Duration;

use cluster_ipfs::FakeIpfsKnobs;
use cluster_types::Cid;
use madsim::runtime::Handle;

use super::{clean_network, random, Run, PAUSE};

impl Run {
    pub(super) fn inject_fault(&mut self, handle: &Handle) {
        let size = self.cluster.members.len();
        let members = self.cluster.in_cluster();
        let alive = self.cluster.alive();
        let majority = members.len() / 2 + 1;
        let net = madsim::net::NetSim::current();
        let pick = |list: &[usize]| list[random(list.len() as u64) as usize];
        // The classic plan draws exactly as before, so its seeds replay unchanged.
        let kinds = if self.self_healing { 16 } else { 12 };
        match random(kinds) {
            0 if alive.len() > majority => {
                let victim = pick(&alive);
                self.free_disk_of(victim);
                self.note(format!("{} kill {victim}", self.now()));
                self.cluster.kill(handle, victim);
                if self.clogged == Some(victim) {
                    net.unclog_node(self.cluster.members[victim].node().id());
                    self.clogged = None;
                }
            }
            1 => {
                if let Some(dead) = members
                    .iter()
                    .copied()
                    .find(|i| !alive.contains(i) && !self.lost.contains(i))
                {
                    self.free_disk_of(dead);
                    self.note(format!("{} restart {dead}", self.now()));
                    self.cluster.restart(handle, dead);
                }
            }
            2 if self.clogged.is_none() && alive.len() > majority => {
                let victim = pick(&alive);
                self.note(format!("{} partition {victim}", self.now()));
                net.clog_node(self.cluster.members[victim].node().id());
                self.clogged = Some(victim);
            }
            3 => {
                if let Some(victim) = self.clogged.take() {
                    self.note(format!("{} heal {victim}", self.now()));
                    net.unclog_node(self.cluster.members[victim].node().id());
                }
            }
            4 if size >= 2 => {
                // One-way: messages from a to b are lost, b to a still arrive.
                let a = random(size as u64) as usize;
                let b = (a + 1 + random(size as u64 - 1) as usize) % size;
                self.note(format!("{} clog link {a}->{b}", self.now()));
                net.clog_link(self.cluster.members[a].node().id(), self.cluster.members[b].node().id());
                self.clogged_links.push((a, b));
            }
            5 => {
                if let Some((a, b)) = self.clogged_links.pop() {
                    self.note(format!("{} unclog link {a}->{b}", self.now()));
                    net.unclog_link(self.cluster.members[a].node().id(), self.cluster.members[b].node().id());
                }
            }
            6 => {
                let member = pick(&members);
                let (what, change): (&str, fn(&mut FakeIpfsKnobs)) = match random(6) {
                    0 => ("slow", |k| k.latency = Duration::from_secs(3)),
                    1 => ("failing", |k| k.error_rate = 0.5),
                    2 => ("down", |k| k.down = true),
                    3 => ("full", |k| k.repo_full = true),
                    4 => ("hanging", |k| k.hang = true),
                    _ => ("lying", |k| k.lying = true),
                };
                self.note(format!("{} daemon {member} {what}", self.now()));
                self.cluster.members[member].ipfs.update_knobs(change);
            }
            7 => {
                let member = pick(&members);
                self.note(format!("{} daemon {member} ok", self.now()));
                self.cluster.members[member].ipfs.set_knobs(FakeIpfsKnobs::default());
            }
            8 if alive.len() > majority => {
                // A long GC pause or a stalled VM: the member stops, then resumes as if nothing happened.
                let victim = pick(&alive);
                self.note(format!("{} pause {victim} 3s", self.now()));
                let id = self.cluster.members[victim].node().id();
                handle.pause(id);
                let resumer = handle.clone();
                cluster_rt::spawn(async move {
                    cluster_rt::sleep(PAUSE).await;
                    resumer.resume(id);
                });
            }
            9 => {
                // Every message: lost with some chance, delayed by a random latency (so reordered).
                self.lossy = !self.lossy;
                if self.lossy {
                    let loss = 0.01 * (1 + random(10)) as f64;
                    let delay_ms = 20 + random(200);
                    self.plan
                        .push(format!("{} lossy network {loss:.2} loss, 1-{delay_ms} ms", self.now()));
                    net.update_config(|c| {
                        c.packet_loss_rate = loss;
                        c.send_latency = Duration::from_millis(1)..Duration::from_millis(delay_ms);
                    });
                } else {
                    self.note(format!("{} clean network", self.now()));
                    net.update_config(clean_network);
                }
            }
            10 => {
                // madsim has one clock for all nodes: a jump moves every member's clock at
                // once, as after a host suspend; every timer that came due fires together.
                let jump = Duration::from_millis(1000 + random(9000));
                self.note(format!("{} clock jump {jump:?}", self.now()));
                madsim::time::advance(jump);
            }
            11 => {
                // Pins silently disappear from one daemon (an operator's `ipfs pin rm`, a
                // repo restored from an old backup): about half of what it holds.
                let member = pick(&members);
                let daemon = &self.cluster.members[member].ipfs;
                let lost: Vec<Cid> = daemon.pins().into_iter().filter(|_| random(2) == 0).collect();
                self.plan
                    .push(format!("{} daemon {member} loses {} pins", self.now(), lost.len()));
                for cid in &lost {
                    daemon.forget(cid);
                }
            }
            12 if self.lost.is_empty() && members.len() >= 4 && self.may_lose_a_disk(&members, &alive) => {
                // Lost for good: replication 3 still fits on the members left.
                let victim = pick(&alive);
                self.free_disk_of(victim);
                self.note(format!("{} member {victim} lost for good", self.now()));
                self.cluster.kill(handle, victim);
                if self.clogged == Some(victim) {
                    net.unclog_node(self.cluster.members[victim].node().id());
                    self.clogged = None;
                }
                self.lost.push(victim);
            }
            13 if self.may_lose_a_disk(&members, &alive) => {
                let candidates: Vec<usize> = alive.iter().copied().filter(|i| !self.leaving.contains(i)).collect();
                if !candidates.is_empty() {
                    let victim = pick(&candidates);
                    self.free_disk_of(victim);
                    self.note(format!("{} member {victim} wiped", self.now()));
                    self.wiped.push(victim);
                    if self.clogged == Some(victim) {
                        net.unclog_node(self.cluster.members[victim].node().id());
                        self.clogged = None;
                    }
                    self.cluster.wipe(handle, victim);
                }
            }
            // One disk at a time, so that a majority can always write. Not while the member
            // is (re)starting: it could not open its databases, and its operator would free
            // the disk before starting it again (seed 91211 filled a wiped member's disk while
            // its restart was paused).
            14 if self.full.is_none() => {
                let started: Vec<usize> = alive
                    .iter()
                    .copied()
                    .filter(|i| self.cluster.members[*i].cluster().is_some())
                    .collect();
                if !started.is_empty() {
                    let victim = pick(&started);
                    self.note(format!("{} disk {victim} full", self.now()));
                    self.cluster.members[victim].disk.fill();
                    self.full = Some(victim);
                }
            }
            15 => {
                if let Some(full) = self.full {
                    self.free_disk_of(full);
                }
            }
            _ => {}
        }
    }

    /// Frees the full disk of `member`, if it is the full one: before it is crashed, lost or
    /// wiped (a restart on a full disk cannot open its databases), and when faults stop.
    pub(super) fn free_disk_of(&mut self, member: usize) {
        if self.full == Some(member) {
            self.note(format!("{} disk {member} freed", self.now()));
            self.cluster.members[member].disk.free();
            self.full = None;
        }
    }

    /// Whether one more member may lose its state (lost for good, or wiped) and the others
    /// still hold a majority of the voters with their logs: Raft survives losing a minority of
    /// disks, not more. Only when every member is up, reachable, voting and done joining (an
    /// earlier wipe has rejoined; a voter still counts as one everywhere while a full disk
    /// keeps its rejoin from committing), no disk is full and nothing is being removed.
    pub(super) fn may_lose_a_disk(&self, members: &[usize], alive: &[usize]) -> bool {
        let voters = members.len();
        let keeping = voters - self.lost.len() - 1;
        self.full.is_none()
            && alive
                .iter()
                .all(|i| self.cluster.members[*i].cluster().is_some_and(|c| !c.is_joining()))
            && self.leaving.is_empty()
            && self.clogged.is_none()
            && self.clogged_links.is_empty()
            && !self.lossy
            && keeping > voters / 2
            && members.iter().all(|i| self.lost.contains(i) || alive.contains(i))
            && alive.iter().all(|i| self.cluster.is_voter_everywhere(*i))
    }

    /// In the self-healing plan, a run whose faults never lost a disk (their guards are strict)
    /// wipes one member once every member is back and voting, so that each seed tests it.
    pub(super) async fn ensure_a_disk_was_lost(&mut self, handle: &Handle) {
        if !self.self_healing
            || self
                .plan
                .iter()
                .any(|p| p.contains(" wiped") || p.contains("lost for good"))
        {
            return;
        }
        let deadline = cluster_rt::now() + Duration::from_secs(60);
        while cluster_rt::now() < deadline {
            self.settle_removals(handle);
            let members = self.cluster.in_cluster();
            let alive = self.cluster.alive();
            if self.may_lose_a_disk(&members, &alive) {
                let victim = alive[random(alive.len() as u64) as usize];
                self.note(format!("{} member {victim} wiped", self.now()));
                self.wiped.push(victim);
                self.cluster.wipe(handle, victim);
                return;
            }
            cluster_rt::sleep(Duration::from_millis(500)).await;
        }
    }
}
