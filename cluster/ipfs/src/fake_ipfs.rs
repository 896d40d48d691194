//! [`FakeIpfs`]: an in-process IPFS daemon with fault knobs, for the simulator and unit tests.
//!
//! Owns: a pinset (`BTreeMap<Cid, IpfsPinType>`), a block set, per-method call counters and the
//! [`FakeIpfsKnobs`] (latency, error rate, down, hang, full repo, lying, storage limit) that tests and
//! the simulator's fault plan turn at runtime. It runs under madsim: time and randomness come
//! only from `cluster_rt`, and no lock is held across an `.await`.
//! Does not own: HTTP (see `FakeKuboServer`, which serves a `FakeIpfs` over the Kubo RPC API)
//! or any DAG model: the fake has "the whole network", so a pin of any CID succeeds, and it
//! never reports indirect pins.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use cluster_types::{Cid, IpfsId};
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::{GcEntry, IpfsConnector, IpfsError, IpfsPinType, RepoStat};

/// The version string the fake reports (`version`); a valid semver pre-release.
pub(crate) const FAKE_VERSION: &str = "0.29.0-fake";

/// Repository bytes the fake counts per pin, like Go's mock (`RepoSize = 1000 * pins`).
const REPO_BYTES_PER_PIN: u64 = 1000;

/// Default `storage_max`: 10 GB, like Go's mock.
const STORAGE_MAX_DEFAULT: u64 = 10_000_000_000;

/// Default no-progress pin timeout, like Go's `pin_timeout`.
const PIN_TIMEOUT_DEFAULT: Duration = Duration::from_secs(120);

/// Faults and limits of a [`FakeIpfs`], changeable at any time with [`FakeIpfs::set_knobs`].
#[derive(Debug, Clone, PartialEq)]
pub struct FakeIpfsKnobs {
    /// Every call sleeps this long before doing anything (the daemon's response time).
    pub latency: Duration,
    /// The fraction (0.0..=1.0) of calls that fail with [`IpfsError::Daemon`], drawn from the
    /// `cluster_rt` random source (so a simulator seed replays the same failures).
    pub error_rate: f64,
    /// The daemon is unreachable: every call fails with [`IpfsError::Unreachable`] at once.
    pub down: bool,
    /// Pins of blocks the fake does not hold make no progress: `pin` fails with
    /// [`IpfsError::Timeout`] after the fake's pin timeout ([`FakeIpfs::set_pin_timeout`]).
    pub hang: bool,
    /// The repository is full: new pins fail with a daemon error containing "no space left".
    pub repo_full: bool,
    /// The daemon lies: `pin` answers success but keeps nothing, so only a later `pin/ls`
    /// (the tracker's recover pass) can notice.
    pub lying: bool,
    /// The `StorageMax` reported by `repo_stat`, in bytes.
    pub storage_max: u64,
    /// `repo_stat` alone sleeps this long more (a daemon walking a large repository).
    pub repo_stat_latency: Duration,
}

impl Default for FakeIpfsKnobs {
    fn default() -> FakeIpfsKnobs {
        FakeIpfsKnobs {
            latency: Duration::ZERO,
            error_rate: 0.0,
            down: false,
            hang: false,
            repo_full: false,
            lying: false,
            storage_max: STORAGE_MAX_DEFAULT,
            repo_stat_latency: Duration::ZERO,
        }
    }
}

/// Everything behind the fake's one lock.
#[derive(Debug)]
struct FakeState {
    pins: BTreeMap<Cid, IpfsPinType>,
    /// Blocks added with `add_block_data` (or `add`/`block/put` over HTTP): pinning them needs no fetch.
    blocks: BTreeSet<Cid>,
    /// Calls per method name; a `BTreeMap` so debugging output is ordered.
    calls: BTreeMap<&'static str, u64>,
    /// HTTP requests per endpoint, through a `FakeKuboServer`.
    requests: BTreeMap<&'static str, u64>,
    knobs: FakeIpfsKnobs,
    pin_timeout: Duration,
    swarm_peers: Vec<String>,
    /// Paths `resolve` knows beyond plain `/ipfs/<cid>` (IPNS names, sub-paths).
    names: BTreeMap<String, Cid>,
}

/// An in-process IPFS daemon: the [`IpfsConnector`] of simulated members and unit tests.
///
/// Method names for [`FakeIpfs::calls`]: `id`, `pin`, `unpin`, `pin_ls_cid`, `pin_ls`,
/// `repo_stat`, `swarm_peers`, `version`, and, through `FakeKuboServer`, `add` and `block_put`
/// (once per block). Every call is counted, even one that then fails because of a knob.
/// [`FakeIpfs::requests`] counts HTTP requests to a `FakeKuboServer` by path.
#[derive(Debug)]
pub struct FakeIpfs {
    peer_id: String,
    state: Mutex<FakeState>,
}

impl FakeIpfs {
    /// A daemon with no pins, default knobs and the given peer id (any string).
    pub fn new(peer_id: String) -> FakeIpfs {
        FakeIpfs {
            peer_id,
            state: Mutex::new(FakeState {
                pins: BTreeMap::new(),
                blocks: BTreeSet::new(),
                calls: BTreeMap::new(),
                requests: BTreeMap::new(),
                knobs: FakeIpfsKnobs::default(),
                pin_timeout: PIN_TIMEOUT_DEFAULT,
                swarm_peers: Vec::new(),
                names: BTreeMap::new(),
            }),
        }
    }

    /// The daemon's peer id, as given to [`FakeIpfs::new`].
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// The current knobs.
    pub fn knobs(&self) -> FakeIpfsKnobs {
        self.lock().knobs.clone()
    }

    /// Replaces the knobs; calls already sleeping keep the latency they started with.
    pub fn set_knobs(&self, knobs: FakeIpfsKnobs) {
        self.lock().knobs = knobs;
    }

    /// Changes some knobs in place, e.g. `fake.update_knobs(|k| k.down = true)`.
    pub fn update_knobs(&self, change: impl FnOnce(&mut FakeIpfsKnobs)) {
        change(&mut self.lock().knobs);
    }

    /// How long a hanging pin waits before failing with [`IpfsError::Timeout`] (default 2 min).
    pub fn pin_timeout(&self) -> Duration {
        self.lock().pin_timeout
    }

    /// Sets the hanging-pin timeout.
    pub fn set_pin_timeout(&self, pin_timeout: Duration) {
        self.lock().pin_timeout = pin_timeout;
    }

    /// The peer ids `swarm_peers` reports (default: none).
    pub fn set_swarm_peers(&self, peers: Vec<String>) {
        self.lock().swarm_peers = peers;
    }

    /// Makes `resolve(path)` answer `cid` (an IPNS name or a path inside a DAG; the fake has
    /// no DAGs of its own).
    pub fn set_resolve(&self, path: &str, cid: Cid) {
        self.lock().names.insert(path.trim_end_matches('/').to_string(), cid);
    }

    /// How many times `method` was called (0 for an unknown name).
    pub fn calls(&self, method: &str) -> u64 {
        self.lock().calls.get(method).copied().unwrap_or(0)
    }

    /// Counts one HTTP request to `endpoint` (the fake Kubo server calls this).
    #[cfg(not(madsim))]
    pub(crate) fn count_request(&self, endpoint: &'static str) {
        *self.lock().requests.entry(endpoint).or_insert(0) += 1;
    }

    /// How many HTTP requests a `FakeKuboServer` serving this fake received at `endpoint`
    /// (`block/put`): one request may carry many calls.
    pub fn requests(&self, endpoint: &str) -> u64 {
        self.lock().requests.get(endpoint).copied().unwrap_or(0)
    }

    /// Drops the pin of `cid` without a call: the daemon "lost" it (e.g. an operator ran `pin rm`).
    pub fn forget(&self, cid: &Cid) {
        self.lock().pins.remove(cid);
    }

    /// Whether `cid` is pinned (recursively or directly).
    pub fn has_pin(&self, cid: &Cid) -> bool {
        self.lock().pins.contains_key(cid)
    }

    /// How `cid` is pinned, without a call.
    pub fn pin_type(&self, cid: &Cid) -> Option<IpfsPinType> {
        self.lock().pins.get(cid).copied()
    }

    /// Pins every CID of `cids` recursively without a call (a daemon that held them already).
    pub fn hold_pins(&self, cids: impl IntoIterator<Item = Cid>) {
        let mut state = self.lock();
        for cid in cids {
            state.pins.insert(cid, IpfsPinType::Recursive);
        }
    }

    /// Every pinned CID, in CID order.
    pub fn pins(&self) -> Vec<Cid> {
        self.lock().pins.keys().copied().collect()
    }

    /// Stores `data` as a block and returns its CID (CIDv1, raw codec, sha2-256). A later pin of
    /// that CID needs no fetch, so it succeeds even while `hang` is set.
    pub fn add_block_data(&self, data: &[u8]) -> Cid {
        let cid = Cid::raw_sha256(data);
        self.lock().blocks.insert(cid);
        cid
    }

    /// Whether the fake holds the block `cid` (from `add_block_data`, `add` or `block/put`).
    pub fn has_block(&self, cid: &Cid) -> bool {
        self.lock().blocks.contains(cid)
    }

    /// `add_block_data` as a daemon call (counted, subject to the knobs): used by the HTTP
    /// server's `add` and `block/put`. `pin` also pins the block recursively.
    #[cfg(not(madsim))]
    pub(crate) async fn put_block(
        &self,
        method: &'static str,
        data: &[u8],
        pin: bool,
        codec: Option<(u64, bool)>,
    ) -> Result<Cid, IpfsError> {
        self.enter(method).await?;
        if pin && self.knobs().repo_full {
            return Err(repo_full_error(method_path(method)));
        }
        let mut cid = self.add_block_data(data);
        // `block/put` names the block's codec (and, for dag-pb, may ask for CIDv0).
        if let Some((codec, v0)) = codec {
            let hash = *cid.0.hash();
            cid = Cid(if v0 && codec == 0x70 {
                cid::Cid::new_v0(hash).unwrap_or(cid.0)
            } else {
                cid::Cid::new_v1(codec, hash)
            });
            self.lock().blocks.insert(cid);
        }
        if pin {
            self.lock().pins.insert(cid, IpfsPinType::Recursive);
        }
        Ok(cid)
    }

    /// Unpin as Kubo does it: `Ok(false)` when `cid` was not pinned (the HTTP server turns that
    /// into Kubo's "not pinned" error; the trait's `unpin` into success).
    pub(crate) async fn unpin_reporting(&self, cid: &Cid) -> Result<bool, IpfsError> {
        self.enter("unpin").await?;
        Ok(self.lock().pins.remove(cid).is_some())
    }

    /// A counted `pin_ls` call returning every pin with its type, for the HTTP server's `pin/ls`
    /// (which can filter by any type, where the trait lists recursive pins only).
    #[cfg(not(madsim))]
    pub(crate) async fn pin_ls_typed(&self) -> Result<Vec<(Cid, IpfsPinType)>, IpfsError> {
        self.enter("pin_ls").await?;
        Ok(self
            .lock()
            .pins
            .iter()
            .map(|(cid, pin_type)| (*cid, *pin_type))
            .collect())
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A panic while holding the lock cannot leave the maps half-updated (every update is a
        // single insert or remove), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `pin` after [`FakeIpfs::enter`]: the pin itself, with the `hang`, `repo_full` and
    /// `lying` knobs.
    async fn pin_entered(&self, cid: &Cid, max_depth: i32) -> Result<(), IpfsError> {
        let pin_type = if max_depth == 0 {
            IpfsPinType::Direct
        } else {
            IpfsPinType::Recursive
        };
        let (knobs, pin_timeout, already, local) = {
            let state = self.lock();
            (
                state.knobs.clone(),
                state.pin_timeout,
                state.pins.get(cid) == Some(&pin_type),
                state.blocks.contains(cid),
            )
        };
        if already {
            return Ok(());
        }
        if knobs.hang && !local {
            cluster_rt::sleep(pin_timeout).await;
            return Err(IpfsError::Timeout {
                path: "pin/add".into(),
                message: format!("no pin progress for {pin_timeout:?}"),
            });
        }
        if knobs.repo_full {
            return Err(repo_full_error("pin/add"));
        }
        if !knobs.lying {
            self.lock().pins.insert(*cid, pin_type);
        }
        Ok(())
    }

    /// The common start of every call: count it, then apply `down`, `latency` and `error_rate`.
    async fn enter(&self, method: &'static str) -> Result<(), IpfsError> {
        let knobs = {
            let mut state = self.lock();
            *state.calls.entry(method).or_insert(0) += 1;
            state.knobs.clone()
        };
        if knobs.down {
            return Err(IpfsError::Unreachable {
                address: format!("fake-ipfs:{}", self.peer_id),
                message: "the daemon is down (fake knob)".into(),
            });
        }
        if !knobs.latency.is_zero() {
            cluster_rt::sleep(knobs.latency).await;
        }
        // Draw randomness only when the knob is on, so turning it on for one member does not
        // shift the random sequence of a simulation that never uses it.
        if knobs.error_rate > 0.0 && random_fraction() < knobs.error_rate {
            return Err(IpfsError::Daemon {
                path: method_path(method).into(),
                code: 500,
                message: "injected failure (fake error_rate knob)".into(),
            });
        }
        Ok(())
    }
}

/// A uniform fraction in `[0, 1)` from the seam's random source.
fn random_fraction() -> f64 {
    // The top 53 bits fill an f64 mantissa exactly.
    (cluster_rt::random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The Kubo RPC path a fake method stands for, used in error values.
fn method_path(method: &str) -> &'static str {
    match method {
        "id" => "id",
        "pin" => "pin/add",
        "unpin" => "pin/rm",
        "pin_ls_cid" | "pin_ls" => "pin/ls",
        "repo_stat" => "repo/stat",
        "swarm_peers" => "swarm/peers",
        "version" => "version",
        "add" => "add",
        "block_put" => "block/put",
        _ => "unknown",
    }
}

fn repo_full_error(path: &str) -> IpfsError {
    IpfsError::Daemon {
        path: path.into(),
        code: 500,
        message: "write /repo/blocks: no space left on device (fake repo_full knob)".into(),
    }
}

#[async_trait::async_trait]
impl IpfsConnector for FakeIpfs {
    async fn id(&self) -> Result<IpfsId, IpfsError> {
        self.enter("id").await?;
        Ok(IpfsId {
            id: self.peer_id.clone(),
            addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            error: String::new(),
        })
    }

    async fn pin(&self, cid: &Cid, max_depth: i32) -> Result<(), IpfsError> {
        self.enter("pin").await?;
        self.pin_entered(cid, max_depth).await
    }

    /// One call for all (one latency, one draw of the error rate), then each pinned in turn as
    /// Kubo does: the first failure ends the call.
    async fn pin_many(&self, cids: &[Cid], max_depth: i32) -> Result<(), IpfsError> {
        self.enter("pin").await?;
        for cid in cids {
            self.pin_entered(cid, max_depth).await?;
        }
        Ok(())
    }

    async fn unpin(&self, cid: &Cid) -> Result<(), IpfsError> {
        self.unpin_reporting(cid).await.map(|_| ())
    }

    async fn pin_ls_cid(&self, cid: &Cid) -> Result<Option<IpfsPinType>, IpfsError> {
        self.enter("pin_ls_cid").await?;
        Ok(self.pin_type(cid))
    }

    async fn pin_ls(&self) -> Result<BoxStream<'static, Result<Cid, IpfsError>>, IpfsError> {
        self.enter("pin_ls").await?;
        let recursive: Vec<Cid> = self
            .lock()
            .pins
            .iter()
            .filter(|(_, pin_type)| **pin_type == IpfsPinType::Recursive)
            .map(|(cid, _)| *cid)
            .collect();
        Ok(futures::stream::iter(recursive.into_iter().map(Ok)).boxed())
    }

    async fn repo_stat(&self) -> Result<RepoStat, IpfsError> {
        self.enter("repo_stat").await?;
        let slow = self.knobs().repo_stat_latency;
        if !slow.is_zero() {
            cluster_rt::sleep(slow).await;
        }
        let state = self.lock();
        Ok(RepoStat {
            repo_size: REPO_BYTES_PER_PIN.saturating_mul(state.pins.len() as u64),
            storage_max: state.knobs.storage_max,
        })
    }

    async fn swarm_peers(&self) -> Result<Vec<String>, IpfsError> {
        self.enter("swarm_peers").await?;
        Ok(self.lock().swarm_peers.clone())
    }

    async fn resolve(&self, path: &str) -> Result<Cid, IpfsError> {
        self.enter("resolve").await?;
        let path = path.trim_end_matches('/');
        if let Some(cid) = self.lock().names.get(path) {
            return Ok(*cid);
        }
        let direct = path.strip_prefix("/ipfs/").filter(|rest| !rest.contains('/'));
        match direct.map(str::parse::<Cid>) {
            Some(Ok(cid)) => Ok(cid),
            _ => Err(IpfsError::Daemon {
                path: "resolve".into(),
                code: 500,
                message: format!("could not resolve name: {path}"),
            }),
        }
    }

    async fn version(&self) -> Result<String, IpfsError> {
        self.enter("version").await?;
        Ok(FAKE_VERSION.into())
    }

    async fn block_put(&self, cid: &Cid, data: bytes::Bytes) -> Result<(), IpfsError> {
        self.enter("block_put").await?;
        if self.knobs().repo_full {
            return Err(repo_full_error("block/put"));
        }
        // As a daemon, which names a block by its own hash of the data: other content is refused.
        const SHA2_256: u64 = 0x12;
        if cid.0.hash().code() == SHA2_256 && Cid::raw_sha256(&data).0.hash().digest() != cid.0.hash().digest() {
            return Err(IpfsError::Daemon {
                path: "block/put".into(),
                code: 500,
                message: format!("the data is not the block {cid}"),
            });
        }
        self.lock().blocks.insert(*cid);
        Ok(())
    }

    async fn repo_gc(&self) -> Result<Vec<GcEntry>, IpfsError> {
        self.enter("repo_gc").await?;
        // Blocks of pinned CIDs stay; everything else the fake holds goes.
        let mut state = self.lock();
        let pinned: BTreeSet<Cid> = state.pins.keys().copied().collect();
        let removed: Vec<Cid> = state.blocks.iter().filter(|c| !pinned.contains(c)).copied().collect();
        for cid in &removed {
            state.blocks.remove(cid);
        }
        Ok(removed.into_iter().map(GcEntry::Removed).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(i: u32) -> Cid {
        Cid::raw_sha256(format!("fake ipfs test {i}").as_bytes())
    }

    fn fake() -> FakeIpfs {
        FakeIpfs::new("12D3KooWFake".into())
    }

    #[tokio::test]
    async fn pins_unpins_and_lists_with_types() {
        let ipfs = fake();
        ipfs.pin(&cid(1), -1).await.unwrap();
        ipfs.pin(&cid(2), 0).await.unwrap();
        ipfs.pin(&cid(3), 5).await.unwrap();
        assert_eq!(ipfs.pin_ls_cid(&cid(1)).await.unwrap(), Some(IpfsPinType::Recursive));
        assert_eq!(ipfs.pin_ls_cid(&cid(2)).await.unwrap(), Some(IpfsPinType::Direct));
        assert_eq!(ipfs.pin_ls_cid(&cid(3)).await.unwrap(), Some(IpfsPinType::Recursive));
        assert_eq!(ipfs.pin_ls_cid(&cid(4)).await.unwrap(), None);

        // pin_ls lists recursive pins only (the trait's contract, Go's quirk).
        let mut listed: Vec<Cid> = ipfs.pin_ls().await.unwrap().map(|c| c.unwrap()).collect().await;
        listed.sort();
        let mut expected = vec![cid(1), cid(3)];
        expected.sort();
        assert_eq!(listed, expected);

        ipfs.unpin(&cid(1)).await.unwrap();
        ipfs.unpin(&cid(1)).await.unwrap(); // idempotent
        assert!(!ipfs.has_pin(&cid(1)));
        assert_eq!(ipfs.pins().len(), 2);
        assert_eq!(ipfs.calls("pin"), 3);
        assert_eq!(ipfs.calls("unpin"), 2);
        assert_eq!(ipfs.calls("pin_ls_cid"), 4);
        assert_eq!(ipfs.calls("nonsense"), 0);
    }

    #[tokio::test]
    async fn repo_stat_counts_pins_and_reports_storage_max() {
        let ipfs = fake();
        for i in 0..7 {
            ipfs.pin(&cid(i), -1).await.unwrap();
        }
        let stat = ipfs.repo_stat().await.unwrap();
        assert_eq!(
            stat,
            RepoStat {
                repo_size: 7000,
                storage_max: 10_000_000_000
            }
        );
        ipfs.update_knobs(|k| k.storage_max = 5000);
        assert_eq!(ipfs.repo_stat().await.unwrap().storage_max, 5000);
    }

    #[tokio::test]
    async fn down_fails_every_call_unreachable_and_up_again_recovers() {
        let ipfs = fake();
        ipfs.update_knobs(|k| k.down = true);
        assert!(matches!(ipfs.id().await, Err(IpfsError::Unreachable { .. })));
        assert!(matches!(
            ipfs.pin(&cid(1), -1).await,
            Err(IpfsError::Unreachable { .. })
        ));
        assert!(matches!(ipfs.unpin(&cid(1)).await, Err(IpfsError::Unreachable { .. })));
        assert!(matches!(ipfs.pin_ls().await, Err(IpfsError::Unreachable { .. })));
        assert!(matches!(ipfs.version().await, Err(IpfsError::Unreachable { .. })));
        assert!(!ipfs.has_pin(&cid(1)));
        ipfs.update_knobs(|k| k.down = false);
        ipfs.pin(&cid(1), -1).await.unwrap();
        assert!(ipfs.has_pin(&cid(1)));
        assert_eq!(ipfs.calls("pin"), 2, "failed calls are counted too");
    }

    #[tokio::test]
    async fn error_rate_fails_about_that_fraction() {
        let ipfs = fake();
        ipfs.update_knobs(|k| k.error_rate = 1.0);
        let err = ipfs.version().await.unwrap_err();
        assert!(
            matches!(&err, IpfsError::Daemon { path, code: 500, .. } if path == "version"),
            "{err}"
        );

        ipfs.update_knobs(|k| k.error_rate = 0.5);
        let mut failures = 0;
        for _ in 0..400 {
            if ipfs.version().await.is_err() {
                failures += 1;
            }
        }
        // 400 draws at p=0.5: mean 200, sd 10; 120..280 is 8 sd wide.
        assert!((120..280).contains(&failures), "{failures} failures of 400");
    }

    #[tokio::test]
    async fn latency_delays_each_call() {
        let ipfs = fake();
        ipfs.update_knobs(|k| k.latency = Duration::from_millis(60));
        let start = cluster_rt::now();
        ipfs.version().await.unwrap();
        ipfs.id().await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(120), "{:?}", start.elapsed());
    }

    #[tokio::test]
    async fn hang_times_out_after_pin_timeout_but_local_blocks_pin() {
        let ipfs = fake();
        ipfs.set_pin_timeout(Duration::from_millis(80));
        assert_eq!(ipfs.pin_timeout(), Duration::from_millis(80));
        ipfs.update_knobs(|k| k.hang = true);
        let start = cluster_rt::now();
        let err = ipfs.pin(&cid(1), -1).await.unwrap_err();
        assert!(matches!(err, IpfsError::Timeout { .. }), "{err}");
        assert!(start.elapsed() >= Duration::from_millis(80));
        assert!(!ipfs.has_pin(&cid(1)));

        // A block the daemon holds needs no fetch.
        let local = ipfs.add_block_data(b"held locally");
        assert_eq!(local, Cid::raw_sha256(b"held locally"));
        assert!(ipfs.has_block(&local));
        ipfs.pin(&local, -1).await.unwrap();
        assert!(ipfs.has_pin(&local));
    }

    #[tokio::test]
    async fn a_lying_daemon_acknowledges_pins_it_does_not_keep() {
        let ipfs = fake();
        ipfs.update_knobs(|k| k.lying = true);
        ipfs.pin(&cid(1), -1).await.unwrap();
        assert!(!ipfs.has_pin(&cid(1)));
        assert_eq!(ipfs.pin_ls_cid(&cid(1)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn repo_full_fails_new_pins_with_no_space_left() {
        let ipfs = fake();
        ipfs.pin(&cid(1), -1).await.unwrap();
        ipfs.update_knobs(|k| k.repo_full = true);
        let err = ipfs.pin(&cid(2), -1).await.unwrap_err();
        assert!(err.to_string().contains("no space left"), "{err}");
        assert!(matches!(err, IpfsError::Daemon { .. }));
        // Already pinned: nothing to write, so it succeeds.
        ipfs.pin(&cid(1), -1).await.unwrap();
        // Unpinning frees space and still works.
        ipfs.unpin(&cid(1)).await.unwrap();
    }

    #[tokio::test]
    async fn forget_drops_a_pin_silently_and_swarm_peers_are_settable() {
        let ipfs = fake();
        ipfs.pin(&cid(1), -1).await.unwrap();
        ipfs.forget(&cid(1));
        assert_eq!(ipfs.pin_ls_cid(&cid(1)).await.unwrap(), None);
        assert!(ipfs.swarm_peers().await.unwrap().is_empty());
        ipfs.set_swarm_peers(vec!["peer-a".into()]);
        assert_eq!(ipfs.swarm_peers().await.unwrap(), vec!["peer-a".to_string()]);
        assert_eq!(ipfs.id().await.unwrap().id, "12D3KooWFake");
    }
}
