//! One cluster member as a simulated node: a madsim node whose init task starts a
//! [`Cluster`] over a [`FakeIpfs`], a data folder and a [`SimDisk`] for its databases. Killing
//! the node drops every task of the member and throws away what its disk had not synced;
//! restarting runs the init task again, which recovers from what was made durable.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use std::net::SocketAddr;

use cluster_ipfs::FakeIpfs;
use cluster_node::{Cluster, ClusterDeps, DataFolder, Identity, ServiceConfig};
use cluster_rpc::SimTransport;

use crate::SimDisk;
use madsim::runtime::{Handle, NodeHandle};

/// How to build a simulated member.
#[derive(Debug, Clone)]
pub struct SimMemberConfig {
    /// Node name in the simulator.
    pub name: String,
    /// Simulated IP address.
    pub ip: IpAddr,
    /// Seed of the member's identity key.
    pub identity_seed: [u8; 32],
    /// The member's data folder (real disk; survives kill/restart).
    pub data_dir: PathBuf,
    /// The other members of the initial cluster: (identity seed, ip). Empty for a cluster of one.
    pub peers: Vec<([u8; 32], IpAddr)>,
    /// A member to join through (`--bootstrap`) instead of an initial peerset: (identity seed, ip).
    pub bootstrap: Option<([u8; 32], IpAddr)>,
    /// Changes to the default `service.json`, merged key by key (`{"cluster":
    /// {"repinning_rate": 20}}`); `null` for none.
    pub service: serde_json::Value,
}

/// Merges `patch` into `json`: objects key by key, anything else replaces.
fn merge(json: &mut serde_json::Value, patch: &serde_json::Value) {
    match (json, patch) {
        (serde_json::Value::Object(json), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                merge(json.entry(key.clone()).or_insert(serde_json::Value::Null), value);
            }
        }
        (_, serde_json::Value::Null) => {}
        (json, patch) => *json = patch.clone(),
    }
}

fn member_address(seed: &[u8; 32], ip: &IpAddr) -> String {
    format!("/ip4/{ip}/tcp/{MEMBER_PORT}/p2p/{}", Identity::from_seed(*seed).peer_id)
}

/// The port members listen on in the simulated network.
pub const MEMBER_PORT: u16 = 9096;

/// A running simulated member.
pub struct SimMember {
    node: NodeHandle,
    cluster: Arc<Mutex<Weak<Cluster>>>,
    /// The member's IPFS daemon (outlives restarts, like a real daemon beside it).
    pub ipfs: Arc<FakeIpfs>,
    /// The member's identity.
    pub identity: Identity,
    /// The member's databases (outlive restarts; a kill keeps only what was synced).
    pub disk: Arc<SimDisk>,
    /// Join attempts (`--bootstrap`) that failed; the simulated member tries again where an
    /// operator would restart the daemon.
    pub join_failures: Arc<std::sync::atomic::AtomicU64>,
    /// The next start is an operator's plain restart, without `--bootstrap` (after a wipe).
    plain_restart: Arc<std::sync::atomic::AtomicBool>,
}

impl SimMember {
    /// Creates the node and starts the member on it.
    pub fn start(handle: &Handle, config: SimMemberConfig) -> SimMember {
        let identity = Identity::from_seed(config.identity_seed);
        let ipfs = Arc::new(FakeIpfs::new(format!("ipfs-{}", config.name)));
        // A hanging daemon gives up well inside the liveness bound.
        ipfs.set_pin_timeout(Duration::from_secs(20));
        let disk = Arc::new(SimDisk::new());
        let slot: Arc<Mutex<Weak<Cluster>>> = Arc::new(Mutex::new(Weak::new()));
        let join_failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let plain_restart = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (init_identity, init_ipfs, init_slot, init_disk, init_failures, init_plain) = (
            identity.clone(),
            ipfs.clone(),
            slot.clone(),
            disk.clone(),
            join_failures.clone(),
            plain_restart.clone(),
        );
        let init_config = config.clone();
        let node = handle
            .create_node()
            .name(config.name.clone())
            .ip(config.ip)
            .init(move || {
                let (identity, ipfs, slot, mut config, disk, failures) = (
                    init_identity.clone(),
                    init_ipfs.clone(),
                    init_slot.clone(),
                    init_config.clone(),
                    init_disk.clone(),
                    init_failures.clone(),
                );
                let plain = init_plain.swap(false, std::sync::atomic::Ordering::Relaxed);
                async move {
                    // The members an operator would name with --bootstrap: where it joined from,
                    // or its initial peers.
                    let rejoin_via: Vec<_> = config.bootstrap.iter().chain(&config.peers).copied().collect();
                    if plain {
                        config.bootstrap = None;
                    }
                    // Boxed: a member's start-up is a large future, and madsim builds the node's
                    // task on the stack before it moves it to the heap.
                    let cluster = Box::pin(start_cluster(&config, &rejoin_via, identity, ipfs, disk, &failures)).await;
                    *slot.lock().expect("member slot") = Arc::downgrade(&cluster);
                    // As the daemon: a member removed from the cluster stops; it is held (for
                    // the scenario to inspect) until the node is killed.
                    cluster.removed().await;
                    Box::pin(cluster.shutdown()).await;
                    std::future::pending::<()>().await;
                    drop(cluster);
                }
            })
            .build();
        SimMember {
            node,
            cluster: slot,
            ipfs,
            identity,
            disk,
            join_failures,
            plain_restart,
        }
    }

    /// The member's cluster, once its init task has started it (and while the node is alive).
    pub fn cluster(&self) -> Option<Arc<Cluster>> {
        self.cluster.lock().expect("member slot").upgrade()
    }

    /// Waits (in simulated time) until the member is up, at most `limit`.
    pub async fn wait_up(&self, limit: Duration) -> Arc<Cluster> {
        let deadline = cluster_rt::now() + limit;
        loop {
            if let Some(cluster) = self.cluster() {
                return cluster;
            }
            assert!(
                cluster_rt::now() < deadline,
                "member did not start within {limit:?}; {}",
                crate::replay_hint()
            );
            cluster_rt::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The simulator node.
    pub fn node(&self) -> &NodeHandle {
        &self.node
    }

    /// Crashes the member: all its tasks stop at once.
    pub fn kill(&self, handle: &Handle) {
        *self.cluster.lock().expect("member slot") = Weak::new();
        handle.kill(self.node.id());
        self.disk.crash();
    }

    /// The member's disk is lost (its `raft` and `state` folders and databases; the rest of
    /// the data folder stays), then an operator restarts it as usual, without `--bootstrap`.
    pub fn wipe(&self, handle: &Handle, data_dir: &std::path::Path) {
        *self.cluster.lock().expect("member slot") = Weak::new();
        handle.kill(self.node.id());
        self.disk.wipe();
        for folder in ["raft", "state"] {
            let _ = std::fs::remove_dir_all(data_dir.join(folder));
        }
        self.plain_restart.store(true, std::sync::atomic::Ordering::Relaxed);
        handle.restart(self.node.id());
    }

    /// Restarts the member from what its disk made durable (crashing it first if it runs).
    pub fn restart(&self, handle: &Handle) {
        *self.cluster.lock().expect("member slot") = Weak::new();
        handle.kill(self.node.id());
        self.disk.crash();
        handle.restart(self.node.id());
    }
}

/// A member's node dies with it. madsim does not drop the tasks of a finished runtime, and a
/// task waiting on a channel it holds itself is never woken, so each seed leaked every member
/// whole (about 7 MB) until the process ended; killing the node wakes its tasks, and the
/// executor drops them in the same pass that finishes the scenario.
impl Drop for SimMember {
    fn drop(&mut self) {
        if let Ok(handle) = Handle::try_current() {
            handle.kill(self.node.id());
        }
    }
}

async fn start_cluster(
    member: &SimMemberConfig,
    rejoin_via: &[([u8; 32], IpAddr)],
    identity: Identity,
    ipfs: Arc<FakeIpfs>,
    disk: Arc<SimDisk>,
    join_failures: &std::sync::atomic::AtomicU64,
) -> Arc<Cluster> {
    let mut member = member.clone();
    let mut bootstrap: Vec<_> = member.bootstrap.iter().copied().collect();
    let (cluster, sim_transport) = loop {
        match start_once(&member, &bootstrap, identity.clone(), ipfs.clone(), disk.clone()).await {
            Ok(started) => break started,
            // A member that lost its Raft state refuses to start as it is; its operator does
            // what the message says and starts it with --bootstrap, naming every member it
            // knew: the one it first joined through may have left since (seed 650847 of the
            // self-healing workload waited on a departed member until liveness failed).
            Err(e) if e.to_string().contains("--bootstrap") && bootstrap.is_empty() => {
                tracing::info!("{}: {e}; starting it again with --bootstrap", member.name);
                member.peers.clear();
                bootstrap = rejoin_via.to_vec();
            }
            Err(e) => panic!("{}: the member does not start: {e}", member.name),
        }
    };
    if let Some(transport) = sim_transport {
        // Serve only once the cluster exists; earlier calls from peers fail and are retried.
        transport.serve(cluster.rpc_handler());
    }
    // An operator whose join failed starts the daemon again; the simulated one retries.
    let mut attempt = 0u32;
    while let Err(e) = cluster.join().await {
        attempt += 1;
        join_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!("{}: join attempt {attempt} failed: {e}", member.name);
        cluster_rt::sleep(Duration::from_secs(1)).await;
    }
    cluster
}

/// One start of the member's daemon with `member`'s settings, joining through `bootstrap` (the
/// members named with `--bootstrap`) if any.
async fn start_once(
    member: &SimMemberConfig,
    bootstrap: &[([u8; 32], IpAddr)],
    identity: Identity,
    ipfs: Arc<FakeIpfs>,
    disk: Arc<SimDisk>,
) -> Result<(Arc<Cluster>, Option<Arc<SimTransport>>), cluster_node::NodeError> {
    let mut json = ServiceConfig::default_json(&member.name, &"11".repeat(32));
    merge(&mut json, &member.service);
    let mut config = ServiceConfig::parse(&json.to_string(), "sim service.json")
        .and_then(|c| c.validate())
        .expect("the default configuration is valid");
    config.cluster.state_sync_interval = Duration::from_secs(30);
    config.cluster.pin_recover_interval = Duration::from_secs(60);
    config.cluster.listen_multiaddress = vec![format!("/ip4/{}/tcp/{MEMBER_PORT}", member.ip)];
    config.init_peerset = member.peers.iter().map(|(seed, ip)| member_address(seed, ip)).collect();
    // A killed node's tasks are dropped by the simulator shortly after the kill, not at once:
    // wait (in simulated time) for the previous incarnation to release the folder.
    let mut attempts = 0;
    let data = loop {
        match DataFolder::lock(&member.data_dir) {
            Ok(data) => break data,
            Err(e) if attempts < 100 => {
                attempts += 1;
                tracing::debug!("{}: waiting for the data folder: {e}", member.name);
                cluster_rt::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{}: data folder still locked after a restart: {e}", member.name),
        }
    };
    let sim_transport = if member.peers.is_empty() && bootstrap.is_empty() {
        None
    } else {
        Some(
            SimTransport::bind(SocketAddr::new(member.ip, MEMBER_PORT), identity.peer_id)
                .await
                .expect("bind member port"),
        )
    };
    let rpc = sim_transport.clone().map(|t| t as Arc<dyn cluster_rpc::Transport>);
    let cluster = Cluster::start(ClusterDeps {
        config,
        identity,
        data,
        ipfs,
        rpc,
        state: None,
        disk,
        bootstrap: bootstrap.iter().map(|(seed, ip)| member_address(seed, ip)).collect(),
        advertised_address: None,
    })
    .await?;
    Ok((cluster, sim_transport))
}
