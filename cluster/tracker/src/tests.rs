//! End-to-end tests of [`PinTracker`] over [`MemoryState`] and a scripted fake daemon
//! ([`TestIpfs`]: latency, per-CID faults, an unreachable switch, and in-flight counting).
//! Real time on the tokio runtime, with latencies and backoffs of a few milliseconds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_ipfs::{IpfsConnector, IpfsError, IpfsPinType, RepoStat};
use cluster_state::{MemoryDisk, MemoryState, State, StateOp};
use cluster_types::{
    Cid, IpfsId, PeerId, Pin, PinInfo, PinOptions, PinType, Timestamp, TrackerStatus, TrackerStatusFilter,
};
use futures::stream::BoxStream;

use crate::{ListingStore, PinTracker, TrackerConfig, QUEUE_FULL_ERROR, UNEXPECTEDLY_UNPINNED_ERROR};

const DAEMON_ID: &str = "12D3KooWFakeDaemon";

/// A daemon with knobs. Pins take `latency`; a dropped pin call pins nothing.
#[derive(Default)]
struct TestIpfs {
    inner: Mutex<TestIpfsInner>,
}

#[derive(Default)]
struct TestIpfsInner {
    pins: HashMap<Cid, IpfsPinType>,
    latency: Duration,
    failing_pins: HashMap<Cid, String>,
    failing_unpins: HashMap<Cid, String>,
    unreachable: bool,
    in_flight: usize,
    in_flight_max: usize,
    pin_calls: Vec<Cid>,
    /// The CIDs of each `pin_many` call, in order.
    pin_batches: Vec<Vec<Cid>>,
    /// How long a `pin_many` call takes when set (else `latency`): a daemon fetching a batch.
    batch_latency: Option<Duration>,
    /// Calls of `pin/ls` without an argument (whole listings).
    listings: usize,
    /// How long a whole listing takes.
    listing_latency: Duration,
}

/// Counts a call in flight until dropped (also when the tracker drops the call).
struct InFlight<'a>(&'a TestIpfs);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.inner.lock().unwrap().in_flight -= 1;
    }
}

impl TestIpfs {
    fn with_latency(latency: Duration) -> Arc<TestIpfs> {
        let ipfs = TestIpfs::default();
        ipfs.inner.lock().unwrap().latency = latency;
        Arc::new(ipfs)
    }

    fn set(&self, f: impl FnOnce(&mut TestIpfsInner)) {
        f(&mut self.inner.lock().unwrap());
    }

    fn has(&self, cid: &Cid) -> bool {
        self.inner.lock().unwrap().pins.contains_key(cid)
    }

    fn forget(&self, cid: &Cid) {
        self.inner.lock().unwrap().pins.remove(cid);
    }

    fn pin_calls(&self) -> Vec<Cid> {
        self.inner.lock().unwrap().pin_calls.clone()
    }

    fn check_reachable(&self, path: &str) -> Result<(), IpfsError> {
        if self.inner.lock().unwrap().unreachable {
            return Err(IpfsError::Unreachable {
                address: "127.0.0.1:5001".into(),
                message: format!("{path}: refused"),
            });
        }
        Ok(())
    }

    fn begin(&self) -> (InFlight<'_>, Duration) {
        let mut inner = self.inner.lock().unwrap();
        inner.in_flight += 1;
        inner.in_flight_max = inner.in_flight_max.max(inner.in_flight);
        (InFlight(self), inner.latency)
    }
}

fn daemon_error(path: &str, message: &str) -> IpfsError {
    IpfsError::Daemon {
        path: path.into(),
        code: 500,
        message: message.into(),
    }
}

#[async_trait::async_trait]
impl IpfsConnector for TestIpfs {
    async fn id(&self) -> Result<IpfsId, IpfsError> {
        self.check_reachable("id")?;
        Ok(IpfsId {
            id: DAEMON_ID.into(),
            addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            error: String::new(),
        })
    }

    async fn pin(&self, cid: &Cid, max_depth: i32) -> Result<(), IpfsError> {
        self.check_reachable("pin/add")?;
        self.inner.lock().unwrap().pin_calls.push(*cid);
        let (_guard, latency) = self.begin();
        cluster_rt::sleep(latency).await;
        let mut inner = self.inner.lock().unwrap();
        if let Some(message) = inner.failing_pins.get(cid) {
            return Err(daemon_error("pin/add", message));
        }
        let pin_type = if max_depth == 0 {
            IpfsPinType::Direct
        } else {
            IpfsPinType::Recursive
        };
        inner.pins.insert(*cid, pin_type);
        Ok(())
    }

    /// One call for all, pinning in order and stopping at the first failure, as Kubo does.
    async fn pin_many(&self, cids: &[Cid], max_depth: i32) -> Result<(), IpfsError> {
        self.check_reachable("pin/add")?;
        self.inner.lock().unwrap().pin_batches.push(cids.to_vec());
        let (_guard, latency) = self.begin();
        let latency = self.inner.lock().unwrap().batch_latency.unwrap_or(latency);
        cluster_rt::sleep(latency).await;
        let mut inner = self.inner.lock().unwrap();
        let pin_type = if max_depth == 0 {
            IpfsPinType::Direct
        } else {
            IpfsPinType::Recursive
        };
        for cid in cids {
            if let Some(message) = inner.failing_pins.get(cid) {
                return Err(daemon_error("pin/add", message));
            }
            inner.pins.insert(*cid, pin_type);
        }
        Ok(())
    }

    async fn unpin(&self, cid: &Cid) -> Result<(), IpfsError> {
        self.check_reachable("pin/rm")?;
        let (_guard, latency) = self.begin();
        cluster_rt::sleep(latency).await;
        let mut inner = self.inner.lock().unwrap();
        if let Some(message) = inner.failing_unpins.get(cid) {
            return Err(daemon_error("pin/rm", message));
        }
        inner.pins.remove(cid);
        Ok(())
    }

    async fn pin_ls_cid(&self, cid: &Cid) -> Result<Option<IpfsPinType>, IpfsError> {
        self.check_reachable("pin/ls")?;
        Ok(self.inner.lock().unwrap().pins.get(cid).copied())
    }

    async fn pin_ls(&self) -> Result<BoxStream<'static, Result<Cid, IpfsError>>, IpfsError> {
        self.check_reachable("pin/ls")?;
        let latency = self.inner.lock().unwrap().listing_latency;
        cluster_rt::sleep(latency).await;
        let mut inner = self.inner.lock().unwrap();
        inner.listings += 1;
        let recursive: Vec<Result<Cid, IpfsError>> = inner
            .pins
            .iter()
            .filter(|(_, t)| **t == IpfsPinType::Recursive)
            .map(|(cid, _)| Ok(*cid))
            .collect();
        Ok(Box::pin(futures::stream::iter(recursive)))
    }

    async fn repo_stat(&self) -> Result<RepoStat, IpfsError> {
        Ok(RepoStat::default())
    }

    async fn swarm_peers(&self) -> Result<Vec<String>, IpfsError> {
        Ok(Vec::new())
    }

    async fn version(&self) -> Result<String, IpfsError> {
        Ok("0.0.0-test".into())
    }

    async fn repo_gc(&self) -> Result<Vec<cluster_ipfs::GcEntry>, IpfsError> {
        Ok(Vec::new())
    }

    async fn block_put(&self, _cid: &Cid, _data: cluster_ipfs::Bytes) -> Result<(), IpfsError> {
        Ok(())
    }

    async fn resolve(&self, path: &str) -> Result<Cid, IpfsError> {
        Err(IpfsError::Daemon {
            path: "resolve".into(),
            code: 500,
            message: format!("not resolvable here: {path}"),
        })
    }
}

fn me() -> PeerId {
    PeerId::from_ed25519_seed([1; 32])
}

fn other() -> PeerId {
    PeerId::from_ed25519_seed([2; 32])
}

/// A pin of CID number `n` allocated to `allocations`; fresh pins get the priority queue.
fn pin(n: u32, allocations: Vec<PeerId>, fresh: bool) -> Pin {
    let mut pin = Pin::new(Cid::raw_sha256(&n.to_be_bytes()), PinOptions::default());
    pin.allocations = allocations;
    pin.timestamp = if fresh {
        Timestamp::now()
    } else {
        Timestamp::from_unix(1_000_000_000, 0)
    };
    pin
}

fn fast_config() -> TrackerConfig {
    TrackerConfig {
        retry_backoff_base: Duration::from_millis(10),
        ..TrackerConfig::default()
    }
}

struct Fixture {
    tracker: Arc<PinTracker>,
    ipfs: Arc<TestIpfs>,
    state: Arc<MemoryState>,
}

impl Fixture {
    fn new(config: TrackerConfig, latency: Duration) -> Fixture {
        let ipfs = TestIpfs::with_latency(latency);
        let state = Arc::new(MemoryState::new());
        let listings = ListingStore::open(Arc::new(MemoryDisk), std::path::Path::new("listing.redb")).unwrap();
        let tracker = PinTracker::new(config, me(), "peer-a".into(), ipfs.clone(), state.clone(), listings);
        Fixture { tracker, ipfs, state }
    }

    /// Commits `pin` to the state and tracks it, as the consensus apply hook does.
    fn commit(&self, pin: &Pin) {
        let previous = self.state.get(&pin.cid).unwrap();
        self.state.commit(&[StateOp::Add(pin.clone())], None).unwrap();
        self.tracker.track(pin, previous.as_ref());
    }

    /// Removes `cid` from the state and untracks it.
    fn remove(&self, cid: &Cid) {
        self.state.commit(&[StateOp::Rm(*cid)], None).unwrap();
        self.tracker.untrack(cid);
    }

    /// Polls the status until `accept` holds, failing after 5 s.
    async fn wait_for(&self, cid: &Cid, what: &str, accept: impl Fn(&PinInfo) -> bool) -> PinInfo {
        let deadline = cluster_rt::now() + Duration::from_secs(5);
        loop {
            let info = self.tracker.status(cid).await;
            if accept(&info) {
                return info;
            }
            assert!(
                cluster_rt::now() < deadline,
                "timed out waiting for {what}; last status {:?}",
                info.short
            );
            cluster_rt::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn wait_status(&self, cid: &Cid, status: TrackerStatus) -> PinInfo {
        self.wait_for(cid, status.as_str(), |info| info.short.status == status)
            .await
    }

    async fn status_all(&self, filter: &str) -> Vec<Result<PinInfo, cluster_types::ClusterError>> {
        let mut rx = self.tracker.status_all(TrackerStatusFilter::parse(filter).unwrap());
        let mut items = Vec::new();
        while let Some(item) = rx.recv().await {
            items.push(item);
        }
        items
    }

    /// `status_all(filter)` as CID -> status; panics on a stream error.
    async fn statuses(&self, filter: &str) -> BTreeMap<Cid, TrackerStatus> {
        let items = self.status_all(filter).await;
        let mut map = BTreeMap::new();
        for item in items {
            let info = item.expect("status_all item");
            assert!(
                map.insert(info.cid, info.short.status).is_none(),
                "{} reported twice",
                info.cid
            );
        }
        map
    }
}

#[cluster_rt::tokio::test]
async fn pin_goes_queued_pinning_pinned() {
    let f = Fixture::new(fast_config(), Duration::from_millis(100));
    f.tracker.start();
    let p = pin(1, vec![me()], true);
    f.commit(&p);
    let queued = f.tracker.status(&p.cid).await;
    assert_eq!(queued.short.status, TrackerStatus::PinQueued);
    assert!(queued.short.priority_pin);
    assert_eq!(
        (queued.short.attempt_count, queued.short.peername.as_str()),
        (0, "peer-a")
    );
    assert_eq!(f.tracker.queued_count(), 1);
    let pinning = f.wait_status(&p.cid, TrackerStatus::Pinning).await;
    assert_eq!(pinning.short.attempt_count, 1);
    assert!(pinning.short.timestamp >= queued.short.timestamp);
    assert_eq!(f.tracker.queued_count(), 0);
    let pinned = f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    assert!(f.ipfs.has(&p.cid));
    assert_eq!(pinned.short.error, "");
    assert_eq!(pinned.cid, p.cid);
    assert_eq!(pinned.allocations, vec![me()]);
    // The daemon identity was fetched at start and is reported once known.
    let with_id = f
        .wait_for(&p.cid, "ipfs_peer_id", |i| i.short.ipfs_peer_id == DAEMON_ID)
        .await;
    assert_eq!(
        with_id.short.ipfs_peer_addresses,
        vec!["/ip4/127.0.0.1/tcp/4001".to_string()]
    );
    f.tracker.shutdown();
}

#[cluster_rt::tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pins_are_limited() {
    let config = TrackerConfig {
        concurrent_pins: 3,
        pin_batch_max: 1,
        ..fast_config()
    };
    let f = Fixture::new(config, Duration::from_millis(30));
    f.tracker.start();
    let pins: Vec<Pin> = (0..12).map(|n| pin(n, vec![me()], false)).collect();
    for p in &pins {
        f.commit(p);
    }
    for p in &pins {
        f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    }
    let max = f.ipfs.inner.lock().unwrap().in_flight_max;
    assert_eq!(max, 3, "at most concurrent_pins calls at once, and that many used");
}

#[cluster_rt::tokio::test]
async fn priority_pins_overtake_normal_ones() {
    let config = TrackerConfig {
        concurrent_pins: 1,
        pin_batch_max: 1,
        ..fast_config()
    };
    let f = Fixture::new(config, Duration::from_millis(1));
    let old: Vec<Pin> = (0..3).map(|n| pin(n, vec![me()], false)).collect();
    for p in &old {
        f.commit(p);
    }
    let fresh = pin(10, vec![me()], true);
    f.commit(&fresh);
    assert!(!f.tracker.status(&old[0].cid).await.short.priority_pin);
    f.tracker.start();
    for p in old.iter().chain([&fresh]) {
        f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    }
    let calls = f.ipfs.pin_calls();
    assert_eq!(calls, vec![fresh.cid, old[0].cid, old[1].cid, old[2].cid]);
}

#[cluster_rt::tokio::test]
async fn failed_pin_is_retried_automatically() {
    let config = TrackerConfig {
        retry_backoff_base: Duration::from_millis(400),
        ..fast_config()
    };
    let f = Fixture::new(config, Duration::from_millis(1));
    f.tracker.start();
    let p = pin(1, vec![me()], false);
    f.ipfs.set(|d| {
        d.failing_pins.insert(p.cid, "no space left on device".into());
    });
    f.commit(&p);
    let failed = f.wait_status(&p.cid, TrackerStatus::PinError).await;
    assert!(
        failed.short.error.contains("no space left on device"),
        "{}",
        failed.short.error
    );
    assert_eq!(failed.short.attempt_count, 1);
    // The op-only filter sees the error too.
    assert_eq!(f.statuses("error").await.get(&p.cid), Some(&TrackerStatus::PinError));
    f.ipfs.set(|d| d.failing_pins.clear());
    let pinned = f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    assert_eq!(pinned.short.error, "");
    assert_eq!(f.ipfs.pin_calls().len(), 2);
}

/// One worker busy with a first pin while `count` more are committed: they queue up.
async fn queue_behind_a_first_pin(f: &Fixture, count: u32) -> Vec<Pin> {
    f.tracker.start();
    let first = pin(1000, vec![me()], false);
    f.commit(&first);
    f.wait_status(&first.cid, TrackerStatus::Pinning).await;
    let pins: Vec<Pin> = (0..count).map(|n| pin(n, vec![me()], false)).collect();
    for p in &pins {
        f.commit(p);
    }
    pins
}

fn one_worker(batch_max: usize) -> TrackerConfig {
    TrackerConfig {
        concurrent_pins: 1,
        pin_batch_max: batch_max,
        ..fast_config()
    }
}

#[cluster_rt::tokio::test]
async fn queued_pins_go_to_the_daemon_in_batches() {
    let f = Fixture::new(one_worker(8), Duration::from_millis(50));
    let pins = queue_behind_a_first_pin(&f, 12).await;
    for p in &pins {
        f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    }
    let cids: Vec<Cid> = pins.iter().map(|p| p.cid).collect();
    let batches = f.ipfs.inner.lock().unwrap().pin_batches.clone();
    assert_eq!(
        batches,
        vec![cids[..8].to_vec(), cids[8..].to_vec()],
        "in queue order, at most pin_batch_max"
    );
    assert_eq!(f.ipfs.pin_calls().len(), 1, "only the first pin went alone");
    f.tracker.shutdown();
}

#[cluster_rt::tokio::test]
async fn a_failed_batch_hands_its_pins_back_and_they_are_pinned_one_by_one() {
    let f = Fixture::new(
        TrackerConfig {
            retry_limit: 1,
            ..one_worker(64)
        },
        Duration::from_millis(20),
    );
    let bad = pin(3, vec![me()], false).cid;
    f.ipfs.set(|i| {
        i.failing_pins.insert(bad, "cannot fetch".into());
    });
    let pins = queue_behind_a_first_pin(&f, 6).await;
    for p in pins.iter().filter(|p| p.cid != bad) {
        f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    }
    let info = f.wait_status(&bad, TrackerStatus::PinError).await;
    assert!(info.short.error.contains("cannot fetch"), "{}", info.short.error);
    assert_eq!(
        f.ipfs.inner.lock().unwrap().pin_batches.len(),
        1,
        "batching pauses after a failure"
    );
    let alone: HashSet<Cid> = f.ipfs.pin_calls().into_iter().collect();
    assert!(
        pins.iter().all(|p| alone.contains(&p.cid)),
        "each pin of the batch was tried alone"
    );
    let op_attempts = f.ipfs.pin_calls().iter().filter(|cid| **cid == bad).count();
    assert_eq!(
        op_attempts, 1,
        "the failed batch did not count as an attempt (retry_limit 1)"
    );
    f.tracker.shutdown();
}

#[cluster_rt::tokio::test]
async fn a_batch_slower_than_its_timeout_falls_back_to_single_pins() {
    let f = Fixture::new(
        TrackerConfig {
            pin_batch_timeout: Duration::from_millis(50),
            ..one_worker(64)
        },
        Duration::from_millis(5),
    );
    f.ipfs.set(|i| i.batch_latency = Some(Duration::from_secs(60)));
    let pins = queue_behind_a_first_pin(&f, 5).await;
    for p in &pins {
        f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    }
    assert_eq!(f.ipfs.inner.lock().unwrap().pin_batches.len(), 1);
    assert_eq!(f.ipfs.pin_calls().len(), 6, "the first pin, then the five one by one");
    f.tracker.shutdown();
}

#[cluster_rt::tokio::test]
async fn an_unpin_during_a_batch_drops_the_call_and_the_rest_are_pinned() {
    let f = Fixture::new(one_worker(64), Duration::from_millis(20));
    f.ipfs.set(|i| i.batch_latency = Some(Duration::from_millis(300)));
    let pins = queue_behind_a_first_pin(&f, 5).await;
    f.wait_status(&pins[0].cid, TrackerStatus::Pinning).await;
    f.remove(&pins[2].cid);
    f.wait_status(&pins[2].cid, TrackerStatus::Unpinned).await;
    for p in pins.iter().filter(|p| p.cid != pins[2].cid) {
        f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    }
    // The dropped batch pinned nothing; the next one held the other four.
    let batches = f.ipfs.inner.lock().unwrap().pin_batches.clone();
    assert_eq!(batches.len(), 2, "{batches:?}");
    assert_eq!(batches[1].len(), 4);
    assert!(
        !f.ipfs.has(&pins[2].cid),
        "the unpinned CID was not pinned by the dropped batch"
    );
    f.tracker.shutdown();
}

#[cluster_rt::tokio::test]
async fn retry_limit_leaves_pin_error_until_recover() {
    let config = TrackerConfig {
        retry_limit: 2,
        ..fast_config()
    };
    let f = Fixture::new(config, Duration::from_millis(1));
    f.tracker.start();
    let p = pin(1, vec![me()], false);
    f.ipfs.set(|d| {
        d.failing_pins.insert(p.cid, "boom".into());
    });
    f.commit(&p);
    f.wait_for(&p.cid, "second failure", |i| {
        i.short.status == TrackerStatus::PinError && i.short.attempt_count == 2
    })
    .await;
    cluster_rt::sleep(Duration::from_millis(200)).await;
    let still = f.tracker.status(&p.cid).await;
    assert_eq!(
        (still.short.status, still.short.attempt_count),
        (TrackerStatus::PinError, 2)
    );
    assert_eq!(f.ipfs.pin_calls().len(), 2, "no retry past retry_limit");
    f.ipfs.set(|d| d.failing_pins.clear());
    let recovered = f.tracker.recover(&p.cid).await.unwrap();
    assert!(
        matches!(
            recovered.short.status,
            TrackerStatus::PinQueued | TrackerStatus::Pinning
        ),
        "{:?}",
        recovered.short.status
    );
    // Go keeps counting attempts across recoveries.
    assert_eq!(recovered.short.attempt_count, 2);
    f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    // Recovering a healthy pin changes nothing.
    assert_eq!(
        f.tracker.recover(&p.cid).await.unwrap().short.status,
        TrackerStatus::Pinned
    );
}

#[cluster_rt::tokio::test]
async fn unpin_while_pinning_cancels_the_pin() {
    let f = Fixture::new(fast_config(), Duration::from_millis(200));
    f.tracker.start();
    let p = pin(1, vec![me()], false);
    f.commit(&p);
    f.wait_status(&p.cid, TrackerStatus::Pinning).await;
    f.remove(&p.cid);
    let status = f.tracker.status(&p.cid).await.short.status;
    assert!(
        matches!(status, TrackerStatus::UnpinQueued | TrackerStatus::Unpinning),
        "{status:?}"
    );
    f.wait_status(&p.cid, TrackerStatus::Unpinned).await;
    // The pin call was dropped before it completed: nothing is pinned, not even later.
    cluster_rt::sleep(Duration::from_millis(300)).await;
    assert!(!f.ipfs.has(&p.cid));
    assert_eq!(f.tracker.status(&p.cid).await.short.status, TrackerStatus::Unpinned);
    assert_eq!(f.ipfs.inner.lock().unwrap().in_flight, 0);
}

#[cluster_rt::tokio::test]
async fn pin_after_unpin_replaces_it() {
    let f = Fixture::new(fast_config(), Duration::from_millis(50));
    f.tracker.start();
    let p = pin(1, vec![me()], false);
    f.commit(&p);
    f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    f.remove(&p.cid);
    f.commit(&p);
    assert_eq!(f.tracker.status(&p.cid).await.short.status, TrackerStatus::PinQueued);
    f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    cluster_rt::sleep(Duration::from_millis(100)).await;
    assert!(f.ipfs.has(&p.cid));
}

#[cluster_rt::tokio::test]
async fn remote_pins_are_not_pinned_and_moved_pins_are_unpinned() {
    let f = Fixture::new(fast_config(), Duration::from_millis(1));
    f.tracker.start();
    let remote = pin(1, vec![other()], false);
    f.commit(&remote);
    let info = f.tracker.status(&remote.cid).await;
    assert_eq!(
        (info.short.status, info.short.peername.as_str()),
        (TrackerStatus::Remote, "peer-a")
    );
    assert!(f.ipfs.pin_calls().is_empty());
    // A pin moved from this member to another is unpinned here.
    let moved = pin(2, vec![me()], false);
    f.commit(&moved);
    f.wait_status(&moved.cid, TrackerStatus::Pinned).await;
    let mut elsewhere = moved.clone();
    elsewhere.allocations = vec![other()];
    f.commit(&elsewhere);
    f.wait_for(&moved.cid, "unpinned and remote", |i| {
        i.short.status == TrackerStatus::Remote
    })
    .await;
    f.wait_for(&moved.cid, "daemon unpin", |_| !f.ipfs.has(&moved.cid))
        .await;
    // Meta pins are never pinned.
    let mut meta = pin(3, vec![], false);
    meta.pin_type = PinType::Meta;
    f.commit(&meta);
    assert_eq!(f.tracker.status(&meta.cid).await.short.status, TrackerStatus::Sharded);
    // Not in the state at all.
    assert_eq!(
        f.tracker.status(&pin(4, vec![], false).cid).await.short.status,
        TrackerStatus::Unpinned
    );
}

#[cluster_rt::tokio::test]
async fn unexpectedly_unpinned_then_recover_repins() {
    let f = Fixture::new(fast_config(), Duration::from_millis(1));
    f.tracker.start();
    let p = pin(1, vec![me()], false);
    f.commit(&p);
    f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    f.ipfs.forget(&p.cid);
    let lost = f.tracker.status(&p.cid).await;
    assert_eq!(lost.short.status, TrackerStatus::UnexpectedlyUnpinned);
    assert_eq!(lost.short.error, UNEXPECTEDLY_UNPINNED_ERROR);
    let recovered = f.tracker.recover(&p.cid).await.unwrap();
    assert!(matches!(
        recovered.short.status,
        TrackerStatus::PinQueued | TrackerStatus::Pinning | TrackerStatus::Pinned
    ));
    f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    assert!(f.ipfs.has(&p.cid));
}

#[cluster_rt::tokio::test]
async fn daemon_failure_in_status_is_cluster_error() {
    let f = Fixture::new(fast_config(), Duration::from_millis(1));
    let p = pin(1, vec![me()], false);
    f.state.commit(&[StateOp::Add(p.clone())], None).unwrap();
    f.ipfs.set(|d| d.unreachable = true);
    let info = f.tracker.status(&p.cid).await;
    assert_eq!(info.short.status, TrackerStatus::ClusterError);
    assert!(info.short.error.contains("unreachable"), "{}", info.short.error);
    assert!(info.short.ipfs_peer_id.is_empty());
    // status_all fails as a whole with one error; the op-only filters still answer.
    let items = f.status_all("").await;
    assert_eq!(items.len(), 1);
    assert!(items[0].is_err());
    assert!(f.status_all("queued").await.is_empty());
    assert!(f.tracker.sync_state().await.is_err());
}

/// Builds: 1 pinned, 2 remote, 3 pin_error, 4 unexpectedly_unpinned, 5 direct pinned,
/// 6 unpin_error (no longer in the state).
async fn mixed_fixture() -> (Fixture, Vec<Pin>) {
    mixed_fixture_with(fast_config()).await
}

async fn mixed_fixture_with(config: TrackerConfig) -> (Fixture, Vec<Pin>) {
    let config = TrackerConfig {
        retry_limit: 1,
        ..config
    };
    let f = Fixture::new(config, Duration::from_millis(1));
    f.tracker.start();
    let mut pins: Vec<Pin> = vec![
        pin(1, vec![me()], false),
        pin(2, vec![other()], false),
        pin(3, vec![me()], false),
        pin(4, vec![me(), other()], false),
        pin(5, vec![], false),
        pin(6, vec![me()], false),
    ];
    pins[4].max_depth = 0;
    f.ipfs.set(|d| {
        d.failing_pins.insert(pins[2].cid, "pin failed".into());
        d.failing_unpins.insert(pins[5].cid, "unpin failed".into());
    });
    for p in &pins {
        f.commit(p);
    }
    for n in [0, 3, 4, 5] {
        f.wait_status(&pins[n].cid, TrackerStatus::Pinned).await;
    }
    f.wait_status(&pins[2].cid, TrackerStatus::PinError).await;
    f.ipfs.forget(&pins[3].cid);
    f.remove(&pins[5].cid);
    f.wait_status(&pins[5].cid, TrackerStatus::UnpinError).await;
    (f, pins)
}

#[cluster_rt::tokio::test]
async fn status_all_classifies_and_filters() {
    let (f, pins) = mixed_fixture().await;
    let all = f.statuses("").await;
    let expected: BTreeMap<Cid, TrackerStatus> = [
        (pins[0].cid, TrackerStatus::Pinned),
        (pins[1].cid, TrackerStatus::Remote),
        (pins[2].cid, TrackerStatus::PinError),
        (pins[3].cid, TrackerStatus::UnexpectedlyUnpinned),
        (pins[4].cid, TrackerStatus::Pinned),
        (pins[5].cid, TrackerStatus::UnpinError),
    ]
    .into_iter()
    .collect();
    assert_eq!(all, expected);
    let only = |statuses: &[TrackerStatus]| -> BTreeMap<Cid, TrackerStatus> {
        expected
            .iter()
            .filter(|(_, s)| statuses.contains(s))
            .map(|(c, s)| (*c, *s))
            .collect()
    };
    assert_eq!(
        f.statuses("error").await,
        only(&[TrackerStatus::PinError, TrackerStatus::UnpinError])
    );
    assert_eq!(f.statuses("pinned").await, only(&[TrackerStatus::Pinned]));
    assert_eq!(
        f.statuses("remote,unexpectedly_unpinned").await,
        only(&[TrackerStatus::Remote, TrackerStatus::UnexpectedlyUnpinned])
    );
    assert_eq!(
        f.statuses("unpin_error,pinned").await,
        only(&[TrackerStatus::UnpinError, TrackerStatus::Pinned])
    );
    assert!(f.statuses("queued").await.is_empty());
    let lost = f.status_all("unexpectedly_unpinned").await.pop().unwrap().unwrap();
    assert_eq!(lost.short.error, UNEXPECTEDLY_UNPINNED_ERROR);
    assert_eq!(lost.allocations, vec![me(), other()]);
}

/// Every status range of the walk from `after` to `through`, asked `limit` pins at a time.
/// Each range is asked in its short form too, which must say the same without the member's
/// and the pin's fields (those come once from `member_fields`).
async fn ranges(f: &Fixture, after: Option<Cid>, through: Option<Cid>, limit: usize) -> Vec<PinInfo> {
    let mut items = Vec::new();
    let mut after = after;
    let member = f.tracker.member_fields();
    assert!(!member.peername.is_empty());
    for _ in 0..100 {
        let (page, stopped_at) = f.tracker.status_range(after, through, limit).await.unwrap();
        let (short, short_stopped_at) = f.tracker.status_range_short(after, through, limit).await.unwrap();
        assert_eq!(short_stopped_at, stopped_at);
        let comparable = |cid: Cid, s: &cluster_types::PinInfoShort| {
            (cid, s.status, s.error.clone(), s.attempt_count, s.priority_pin)
        };
        assert_eq!(
            short.iter().map(|(cid, s)| comparable(*cid, s)).collect::<Vec<_>>(),
            page.iter().map(|i| comparable(i.cid, &i.short)).collect::<Vec<_>>(),
        );
        assert!(short
            .iter()
            .all(|(_, s)| s.peername.is_empty() && s.ipfs_peer_addresses.is_empty()));
        // The same range with the state's pins in it read by the caller.
        let upper = stopped_at.or(through);
        let mut pins = f.state.list_page(after.as_ref(), usize::MAX).unwrap();
        pins.retain(|pin| upper.is_none_or(|upper| pin.cid.to_bytes() <= upper.to_bytes()));
        let of_pins = f.tracker.status_of_pins_short(after, upper, &pins).await.unwrap();
        assert_eq!(
            of_pins.iter().map(|(cid, s)| comparable(*cid, s)).collect::<Vec<_>>(),
            short.iter().map(|(cid, s)| comparable(*cid, s)).collect::<Vec<_>>(),
        );
        assert!(page.iter().all(|i| i.short.peername == member.peername));
        items.extend(page);
        match stopped_at {
            Some(cid) => after = Some(cid),
            None => return items,
        }
    }
    panic!("status ranges from {after:?} did not end");
}

#[cluster_rt::tokio::test]
async fn status_ranges_cover_the_walk_in_cid_byte_order() {
    let (f, pins) = mixed_fixture().await;
    let all = f.statuses("").await;
    // The unpin that failed is for a CID the state no longer has: the ranges report it too.
    assert!(all.contains_key(&pins[5].cid) && !f.state.has(&pins[5].cid).unwrap());
    let mut keys: Vec<Vec<u8>> = all.keys().map(|cid| cid.to_bytes()).collect();
    keys.sort();
    let by_range = |items: &[PinInfo]| -> Vec<(Vec<u8>, TrackerStatus)> {
        items.iter().map(|i| (i.cid.to_bytes(), i.short.status)).collect()
    };
    let expected: Vec<(Vec<u8>, TrackerStatus)> = {
        let mut v: Vec<_> = all.iter().map(|(cid, s)| (cid.to_bytes(), *s)).collect();
        v.sort();
        v
    };
    for limit in [1, 2, 3, 100] {
        let walked = ranges(&f, None, None, limit).await;
        assert_eq!(by_range(&walked), expected, "limit {limit}");
    }
    // Cut at each key: (.., key] then (key, ..] is the whole walk, each half in its range.
    let cid_of = |key: &[u8]| Cid::from_bytes(key).unwrap();
    for (n, cut) in keys.iter().enumerate() {
        let head = ranges(&f, None, Some(cid_of(cut)), 2).await;
        let tail = ranges(&f, Some(cid_of(cut)), None, 2).await;
        assert_eq!(by_range(&head), expected[..=n], "up to key {n}");
        assert_eq!(by_range(&tail), expected[n + 1..], "after key {n}");
    }
    // The operation-only CID alone: a range of one key.
    let unpin_key = pins[5].cid.to_bytes();
    let at = keys.iter().position(|k| *k == unpin_key).unwrap();
    let before = (at > 0).then(|| cid_of(&keys[at - 1]));
    let alone = ranges(&f, before, Some(pins[5].cid), 10).await;
    assert_eq!(by_range(&alone), vec![(unpin_key, TrackerStatus::UnpinError)]);
}

/// A full page whose last pin is the range's upper bound is the whole range: a cluster-wide
/// status asks for ranges that end on a page's last pin, and asking again from there would read
/// a page in vain.
#[cluster_rt::tokio::test]
async fn a_full_page_that_ends_on_the_upper_bound_is_the_whole_range() {
    let (f, _) = mixed_fixture().await;
    let in_state: Vec<Cid> = f.state.list_page(None, 100).unwrap().iter().map(|p| p.cid).collect();
    assert!(in_state.len() >= 3);
    let (_, stopped_at) = f.tracker.status_range(None, Some(in_state[1]), 2).await.unwrap();
    assert_eq!(stopped_at, None, "the page ends on the bound");
    let (_, stopped_at) = f.tracker.status_range(None, Some(in_state[2]), 2).await.unwrap();
    assert_eq!(stopped_at, Some(in_state[1]), "the page ends before the bound");
    let (items, stopped_at) = f
        .tracker
        .status_range(Some(in_state[1]), Some(in_state[1]), 2)
        .await
        .unwrap();
    assert!(items.is_empty() && stopped_at.is_none(), "an empty range");
    let (items, _) = f
        .tracker
        .status_range(Some(in_state[2]), Some(in_state[0]), 2)
        .await
        .unwrap();
    assert!(items.is_empty(), "a range that ends before it starts");
}

#[cluster_rt::tokio::test]
async fn status_ranges_share_one_daemon_listing_for_a_while() {
    let reuse = Duration::from_secs(2);
    let (f, pins) = mixed_fixture_with(TrackerConfig {
        status_listing_reuse: reuse,
        ..fast_config()
    })
    .await;
    let listings = || f.ipfs.inner.lock().unwrap().listings;
    let before = listings();
    ranges(&f, None, None, 1).await;
    ranges(&f, None, None, 2).await;
    assert_eq!(
        listings(),
        before + 1,
        "one listing serves ranges asked within LISTING_REUSE"
    );
    // A pin made after the listing is known from the recent-operations log.
    let late = pin(7, vec![me()], false);
    f.commit(&late);
    f.wait_status(&late.cid, TrackerStatus::Pinned).await;
    let walked = ranges(&f, None, None, 3).await;
    let status_of = |cid: &Cid| walked.iter().find(|i| i.cid == *cid).map(|i| i.short.status);
    assert_eq!(status_of(&late.cid), Some(TrackerStatus::Pinned));
    assert_eq!(status_of(&pins[0].cid), Some(TrackerStatus::Pinned));
    assert_eq!(listings(), before + 1);
    cluster_rt::sleep(reuse).await;
    ranges(&f, None, None, 100).await;
    assert_eq!(listings(), before + 2, "an older listing is taken again");
}

#[cluster_rt::tokio::test]
async fn a_slow_listing_serves_a_stream_of_ranges_past_the_reuse_window() {
    let reuse = Duration::from_millis(600);
    let (f, _pins) = mixed_fixture_with(TrackerConfig {
        status_listing_reuse: reuse,
        ..fast_config()
    })
    .await;
    f.ipfs.set(|d| d.listing_latency = Duration::from_millis(300));
    let listings = || f.ipfs.inner.lock().unwrap().listings;
    let before = listings();
    // Ranges keep coming, each within `reuse` of the one before, for longer than `reuse`.
    for _ in 0..6 {
        ranges(&f, None, None, 2).await;
        cluster_rt::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        listings(),
        before + 1,
        "a listing that took 300 ms serves ranges for 1.5 s (past the 0.6 s window) while they keep coming"
    );
    // A pause longer than the reuse window ends it.
    cluster_rt::sleep(reuse).await;
    ranges(&f, None, None, 2).await;
    assert_eq!(listings(), before + 2, "after a pause the daemon is listed again");
}

#[cluster_rt::tokio::test]
async fn recover_all_streams_only_requeued_items() {
    let (f, pins) = mixed_fixture().await;
    f.ipfs.set(|d| {
        d.failing_pins.clear();
        d.failing_unpins.clear();
    });
    let mut rx = f.tracker.recover_all();
    let mut recovered = HashSet::new();
    while let Some(item) = rx.recv().await {
        let info = item.unwrap();
        assert!(
            matches!(
                info.short.status,
                TrackerStatus::PinQueued
                    | TrackerStatus::Pinning
                    | TrackerStatus::Pinned
                    | TrackerStatus::UnpinQueued
                    | TrackerStatus::Unpinning
                    | TrackerStatus::Unpinned
            ),
            "{:?}",
            info.short.status
        );
        assert!(recovered.insert(info.cid));
    }
    let expected: HashSet<Cid> = [pins[2].cid, pins[3].cid, pins[5].cid].into_iter().collect();
    assert_eq!(recovered, expected);
    f.wait_status(&pins[2].cid, TrackerStatus::Pinned).await;
    f.wait_status(&pins[3].cid, TrackerStatus::Pinned).await;
    f.wait_status(&pins[5].cid, TrackerStatus::Unpinned).await;
    assert!(!f.ipfs.has(&pins[5].cid));
    // Nothing left to recover.
    let mut rx = f.tracker.recover_all();
    assert!(rx.recv().await.is_none());
}

#[cluster_rt::tokio::test]
async fn sync_state_repins_missing_pins_and_keeps_foreign_ones() {
    let f = Fixture::new(fast_config(), Duration::from_millis(1));
    f.tracker.start();
    let mine = [pin(1, vec![me()], false), pin(2, vec![me()], false)];
    let theirs = pin(3, vec![other()], false);
    for p in mine.iter().chain([&theirs]) {
        f.commit(p);
    }
    for p in &mine {
        f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    }
    let foreign = Cid::raw_sha256(b"operator's own pin");
    f.ipfs.set(|d| {
        d.pins.insert(foreign, IpfsPinType::Recursive);
    });
    f.ipfs.forget(&mine[0].cid);
    let report = f.tracker.sync_state().await.unwrap();
    assert_eq!(report.pins_checked, 3);
    assert_eq!(report.pins_allocated, 2);
    assert_eq!(report.pins_queued, 1);
    assert_eq!(report.daemon_only, 1);
    assert_eq!(
        (report.queue_full, report.daemon_errors, report.with_operation),
        (0, 0, 0)
    );
    f.wait_status(&mine[0].cid, TrackerStatus::Pinned).await;
    assert!(f.ipfs.has(&foreign), "daemon pins outside the state are left alone");
    let again = f.tracker.sync_state().await.unwrap();
    assert_eq!(again.pins_queued, 0);
}

/// A Raft snapshot replaces the state without telling the tracker what moved, and carries no
/// tombstones: a pin this member held that now belongs to others stayed on its daemon for good
/// (sim seed 13000 of `random_workload_with_frequent_snapshots_heals`). The state sync unpins
/// it, and leaves alone pins it holds that are allocated here or not in the state.
#[cluster_rt::tokio::test]
async fn a_state_sync_unpins_daemon_pins_whose_allocations_moved_to_others() {
    let f = Fixture::new(fast_config(), Duration::from_millis(1));
    f.tracker.start();
    let kept = pin(1, vec![me()], false);
    let moved = pin(2, vec![me()], false);
    for p in [&kept, &moved] {
        f.commit(p);
        f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    }
    let foreign = Cid::raw_sha256(b"operator's own pin");
    f.ipfs.set(|d| {
        d.pins.insert(foreign, IpfsPinType::Recursive);
    });
    // As a snapshot install does: the state changes, the tracker is not told.
    let elsewhere = pin(2, vec![other()], false);
    f.state.commit(&[StateOp::Add(elsewhere.clone())], None).unwrap();
    let report = f.tracker.sync_state().await.unwrap();
    assert_eq!(report.moved_unpins_queued, 1, "{report:?}");
    for _ in 0..100 {
        if !f.ipfs.has(&moved.cid) {
            break;
        }
        cluster_rt::sleep(Duration::from_millis(20)).await;
    }
    assert!(!f.ipfs.has(&moved.cid), "the pin that moved away is unpinned here");
    assert!(f.ipfs.has(&kept.cid));
    assert!(f.ipfs.has(&foreign), "daemon pins outside the state are left alone");
    assert_eq!(f.tracker.sync_state().await.unwrap().moved_unpins_queued, 0);
}

#[cluster_rt::tokio::test]
async fn full_queue_goes_straight_to_pin_error() {
    let config = TrackerConfig {
        pin_queue_size_max: 2,
        ..fast_config()
    };
    let f = Fixture::new(config, Duration::from_millis(1));
    let pins: Vec<Pin> = (0..3).map(|n| pin(n, vec![me()], false)).collect();
    for p in &pins {
        f.commit(p);
    }
    assert_eq!(f.tracker.queued_count(), 2);
    let refused = f.tracker.status(&pins[2].cid).await;
    assert_eq!(refused.short.status, TrackerStatus::PinError);
    assert_eq!(refused.short.error, QUEUE_FULL_ERROR);
    // The error a refused operation returns says the same words.
    assert_eq!(cluster_types::ClusterError::QueueFull.to_string(), QUEUE_FULL_ERROR);
    // Once the queue drains, recover gets it pinned.
    f.tracker.start();
    f.wait_status(&pins[0].cid, TrackerStatus::Pinned).await;
    f.wait_status(&pins[1].cid, TrackerStatus::Pinned).await;
    f.tracker.recover(&pins[2].cid).await.unwrap();
    f.wait_status(&pins[2].cid, TrackerStatus::Pinned).await;
}

#[cluster_rt::tokio::test]
async fn shutdown_stops_the_workers() {
    let f = Fixture::new(fast_config(), Duration::from_millis(1));
    f.tracker.start();
    f.tracker.shutdown();
    f.tracker.start();
    let p = pin(1, vec![me()], false);
    f.commit(&p);
    cluster_rt::sleep(Duration::from_millis(50)).await;
    assert_eq!(f.tracker.status(&p.cid).await.short.status, TrackerStatus::PinQueued);
    assert!(f.ipfs.pin_calls().is_empty());
}

/// A state sync that finds more missing pins than the pin queue holds queues what fits and
/// leaves the rest for the next sync, instead of an operation in error for each, and so does a
/// recover: a member that must pin millions (a fresh daemon, an imported pinset) would hold
/// them all in memory (3.8 GB at 10 M pins, through the periodic recover).
#[cluster_rt::tokio::test]
async fn state_sync_queues_what_the_pin_queue_holds_and_leaves_the_rest_for_the_next() {
    let config = TrackerConfig {
        pin_queue_size_max: 3,
        concurrent_pins: 1,
        ..fast_config()
    };
    let f = Fixture::new(config, Duration::from_millis(1));
    f.tracker.start();
    let pins: Vec<Pin> = (0..8).map(|n| pin(n, vec![me()], false)).collect();
    for chunk in pins.chunks(3) {
        for p in chunk {
            f.commit(p);
        }
        for p in chunk {
            f.wait_status(&p.cid, TrackerStatus::Pinned).await;
        }
    }
    // The daemon loses them all; pins now take a while, so the queue stays full during the
    // sync (it does not yield to the workers).
    f.ipfs.set(|d| d.latency = Duration::from_millis(300));
    for p in &pins {
        f.ipfs.forget(&p.cid);
    }
    let report = f.tracker.sync_state().await.unwrap();
    assert_eq!(report.pins_allocated, 8);
    assert_eq!(report.pins_queued, 3);
    assert_eq!(report.queue_full, 5, "{report:?}");
    for p in &pins {
        let status = f.tracker.status(&p.cid).await.short.status;
        assert_ne!(
            status,
            TrackerStatus::PinError,
            "no operation in error for the pins left waiting"
        );
    }
    // So does a recover while the queue is full: the pins left waiting (unexpectedly unpinned,
    // no operation) do not become operations in error.
    let mut recovered = f.tracker.recover_all();
    while recovered.recv().await.is_some() {}
    for p in &pins {
        let status = f.tracker.status(&p.cid).await.short.status;
        assert_ne!(status, TrackerStatus::PinError, "a recover left {} in error", p.cid);
    }
    // The next syncs queue the rest as the queue drains.
    for _ in 0..20 {
        if pins.iter().all(|p| f.ipfs.has(&p.cid)) {
            break;
        }
        cluster_rt::sleep(Duration::from_millis(400)).await;
        f.tracker.sync_state().await.unwrap();
    }
    for p in &pins {
        f.wait_status(&p.cid, TrackerStatus::Pinned).await;
    }
}
