//! [`SimCluster`]: N members with a fixed initial peerset, a client node, and the snapshots
//! that invariants read.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use cluster_node::Cluster;
use cluster_types::{Cid, ClusterError, Pin, PinOptions};
use madsim::runtime::{Handle, NodeHandle};

use crate::{replay_hint, MemberSnapshot, SimMember, SimMemberConfig};

/// A fresh folder for one simulated cluster's data. Named from the process id and a counter,
/// not at random: tempfile's random names draw from the random source, and how many draws
/// depends on what ran before in the process, so two runs of one seed diverged (madsim's
/// determinism check failed whenever another simulation had run first).
fn run_folder() -> tempfile::TempDir {
    static CREATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("cluster-sim-{}-{n}", std::process::id());
    // Left behind by an earlier process with the same id, if any.
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&name));
    tempfile::Builder::new()
        .prefix(&name)
        .rand_bytes(0)
        .tempdir()
        .expect("a folder for the simulated cluster")
}

/// The simulated IP of member `i`.
pub fn member_ip(i: usize) -> IpAddr {
    format!("10.0.0.{}", i + 1).parse().expect("valid ip")
}

/// The identity seed of member `i`.
pub fn member_seed(i: usize) -> [u8; 32] {
    [i as u8 + 1; 32]
}

/// A cluster of simulated members and one client node.
pub struct SimCluster {
    /// The members, by index.
    pub members: Vec<SimMember>,
    /// The node client calls run on (so they cross the simulated network's clock, not a member's).
    pub client: NodeHandle,
    alive: Vec<bool>,
    /// Members removed from the cluster (`peers rm`) and stopped for good.
    departed: Vec<bool>,
    /// The `service.json` changes of members that join later (those of member 0).
    joiner_service: serde_json::Value,
    _dir: tempfile::TempDir,
}

/// The client node dies with the cluster, as the members' nodes do (see `SimMember`'s drop).
impl Drop for SimCluster {
    fn drop(&mut self) {
        if let Ok(handle) = Handle::try_current() {
            handle.kill(self.client.id());
        }
    }
}

impl SimCluster {
    /// Starts `size` members that all know each other from the start.
    pub fn start(handle: &Handle, size: usize) -> SimCluster {
        SimCluster::start_with(handle, size, |_| serde_json::Value::Null)
    }

    /// Starts `size` members that all know each other from the start, member `i` with
    /// `service_of(i)` merged into the default `service.json`.
    pub fn start_with(handle: &Handle, size: usize, service_of: impl Fn(usize) -> serde_json::Value) -> SimCluster {
        assert!((1..=7).contains(&size), "1 to 7 members, not {size}");
        let dir = run_folder();
        let members = (0..size)
            .map(|i| {
                let peers = (0..size)
                    .filter(|j| *j != i)
                    .map(|j| (member_seed(j), member_ip(j)))
                    .collect();
                SimMember::start(
                    handle,
                    SimMemberConfig {
                        name: format!("member-{i}"),
                        ip: member_ip(i),
                        identity_seed: member_seed(i),
                        data_dir: dir.path().join(format!("member-{i}")),
                        peers,
                        bootstrap: None,
                        service: service_of(i),
                    },
                )
            })
            .collect();
        let client = handle
            .create_node()
            .name("client")
            .ip("10.0.1.1".parse().expect("ip"))
            .build();
        SimCluster {
            members,
            client,
            alive: vec![true; size],
            departed: vec![false; size],
            joiner_service: service_of(0),
            _dir: dir,
        }
    }

    /// Starts a new member (index = the current member count) that joins through member `via`
    /// as `daemon --bootstrap` does; returns its index. At most 7 members in all.
    pub fn join_new_member(&mut self, handle: &Handle, via: usize) -> usize {
        let i = self.members.len();
        assert!(i < 7, "at most 7 members");
        let member = SimMember::start(
            handle,
            SimMemberConfig {
                name: format!("member-{i}"),
                ip: member_ip(i),
                identity_seed: member_seed(i),
                data_dir: self._dir.path().join(format!("member-{i}")),
                peers: Vec::new(),
                bootstrap: Some((member_seed(via), member_ip(via))),
                service: self.joiner_service.clone(),
            },
        );
        self.members.push(member);
        self.alive.push(true);
        self.departed.push(false);
        i
    }

    /// Removes member `removed` from the cluster (`peers rm`) through member `via`.
    pub async fn remove_member(&self, via: usize, removed: usize) -> Option<Result<(), ClusterError>> {
        let peer = self.members[removed].identity.peer_id;
        self.call(via, move |c| async move { c.peer_remove(peer).await }).await
    }

    /// Indexes of members not killed (and not departed).
    pub fn alive(&self) -> Vec<usize> {
        (0..self.members.len()).filter(|i| self.alive[*i]).collect()
    }

    /// Indexes of members that belong to the cluster (running or not): all but the departed.
    pub fn in_cluster(&self) -> Vec<usize> {
        (0..self.members.len()).filter(|i| !self.departed[*i]).collect()
    }

    /// Marks member `i` as removed from the cluster and stops it for good, as an operator
    /// stops a peer after `peers rm`. Its daemon keeps whatever it held.
    pub fn depart(&mut self, handle: &Handle, i: usize) {
        if self.alive[i] {
            self.kill(handle, i);
        }
        self.departed[i] = true;
    }

    /// Whether member `i` was removed from the cluster.
    pub fn is_departed(&self, i: usize) -> bool {
        self.departed[i]
    }

    /// Whether every other running member of the cluster sees member `i` outside the Raft
    /// membership (a `peers rm` whose answer was lost may still have been done).
    pub fn removed_by_consensus(&self, i: usize) -> bool {
        let node = cluster_consensus::node_id_of(&self.members[i].identity.peer_id);
        // Members still starting (a joining member's start waits for its join) have no view.
        let views: Vec<bool> = self
            .alive()
            .into_iter()
            .filter(|j| *j != i && !self.departed[*j])
            .filter_map(|j| self.members[j].cluster())
            .map(|c| c.consensus().members().iter().all(|(id, _)| *id != node))
            .collect();
        !views.is_empty() && views.iter().all(|removed| *removed)
    }

    /// Whether every running member sees member `i` as a voter in every configuration (it has
    /// finished joining, and no change under way takes it out of the voters).
    pub fn is_voter_everywhere(&self, i: usize) -> bool {
        let node = cluster_consensus::node_id_of(&self.members[i].identity.peer_id);
        self.alive().into_iter().all(|j| {
            self.members[j]
                .cluster()
                .is_some_and(|c| c.consensus().votes_in_every_configuration(node))
        })
    }

    /// Crashes member `i`.
    pub fn kill(&mut self, handle: &Handle, i: usize) {
        self.members[i].kill(handle);
        self.alive[i] = false;
    }

    /// Member `i` loses its disk (Raft log and pinset) and its operator restarts it as usual;
    /// told it must rejoin, the operator starts it again with `--bootstrap`.
    pub fn wipe(&mut self, handle: &Handle, i: usize) {
        assert!(!self.departed[i], "member {i} left the cluster; it is not restarted");
        let data_dir = self._dir.path().join(format!("member-{i}"));
        self.members[i].wipe(handle, &data_dir);
        self.alive[i] = true;
    }

    /// Restarts member `i` from its data folder (never a departed one).
    pub fn restart(&mut self, handle: &Handle, i: usize) {
        assert!(!self.departed[i], "member {i} left the cluster; it is not restarted");
        self.members[i].restart(handle);
        self.alive[i] = true;
    }

    /// Waits until the given members agree on one leader among them; returns its index.
    pub async fn wait_leader(&self, among: &[usize], limit: Duration) -> usize {
        let deadline = cluster_rt::now() + limit;
        loop {
            let leaders: Vec<Option<u64>> = among
                .iter()
                .map(|i| self.members[*i].cluster().and_then(|c| c.consensus().leader()))
                .collect();
            if let Some(Some(leader)) = leaders.first() {
                if leaders.iter().all(|l| *l == Some(*leader)) {
                    let found = among.iter().copied().find(|i| {
                        self.members[*i]
                            .cluster()
                            .is_some_and(|c| c.consensus().node_id() == *leader && c.consensus().is_leader())
                    });
                    if let Some(index) = found {
                        return index;
                    }
                }
            }
            assert!(
                cluster_rt::now() < deadline,
                "no agreed leader within {limit:?}: {leaders:?}; {}",
                replay_hint()
            );
            cluster_rt::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `f` on member `via`'s own node (so its tasks and network calls are the member's and
    /// die with it). `None` if the member is down (nothing was sent); a member killed during the
    /// call gives `Some(Err(Timeout))`: the outcome is unknown.
    pub async fn call<T, F, Fut>(&self, via: usize, f: F) -> Option<Result<T, ClusterError>>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Cluster>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, ClusterError>> + Send + 'static,
    {
        let cluster = self.members[via].cluster()?;
        match self.members[via].node().spawn(async move { f(cluster).await }).await {
            Ok(result) => Some(result),
            Err(_) => Some(Err(ClusterError::Timeout(format!(
                "member {via} crashed during the call"
            )))),
        }
    }

    /// Pins through member `via` with `replication` (min = max).
    pub async fn pin(&self, via: usize, cid: Cid, replication: i32) -> Option<Result<Pin, ClusterError>> {
        let options = PinOptions {
            replication_factor_min: replication,
            replication_factor_max: replication,
            ..Default::default()
        };
        self.pin_with(via, cid, options).await
    }

    /// Pins through member `via` with any options (a pin update sets `pin_update`).
    pub async fn pin_with(&self, via: usize, cid: Cid, options: PinOptions) -> Option<Result<Pin, ClusterError>> {
        self.call(via, move |c| async move { c.pin(cid, options).await }).await
    }

    /// Unpins through member `via`.
    pub async fn unpin(&self, via: usize, cid: Cid) -> Option<Result<Pin, ClusterError>> {
        self.call(via, move |c| async move { c.unpin(cid).await }).await
    }

    /// What every member of the cluster looks like now (down members have empty fields;
    /// departed members are left out).
    pub fn snapshots(&self) -> Vec<MemberSnapshot> {
        self.in_cluster()
            .into_iter()
            .map(|i| MemberSnapshot::take(i, &self.members[i], self.alive[i]))
            .collect()
    }
}
