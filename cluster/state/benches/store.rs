//! Micro-benchmarks of the pinset store and the pin encoding (`just bench-store [PINS]`):
//! encode and decode of a typical pin (binary and JSON), applies to a redb pinset in groups as
//! consensus makes them (straight and through the buffer in front of the store), a full listing, random reads (of stored CIDs and of others), opening
//! the file again, and the file's bytes per pin. Prints
//! figures; asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_state::{BufferedState, RedbState, State, StateOp};
use cluster_types::{pin_codec, Cid, PeerId, Pin, PinOptions, Timestamp};

/// A pin as an operator's cluster holds them: a name, replication 2, two of `peers`.
fn typical(i: u64, peers: &[PeerId]) -> Pin {
    let mut pin = Pin::new(
        Cid::raw_sha256(&i.to_le_bytes()),
        PinOptions {
            replication_factor_min: 2,
            replication_factor_max: 2,
            name: format!("upload-{i}"),
            ..Default::default()
        },
    );
    pin.allocations = vec![peers[(i % 3) as usize], peers[(i % 3) as usize + 3]];
    pin.timestamp = Timestamp::from_unix(1_790_000_000 + i as i64, 1);
    pin
}

/// `pins` typical pins as the state machine applies them: 64 a commit (a batched entry), and
/// whether to sync after it (every 4,096 changes, and at the end).
fn applies(pins: u64, peers: &[PeerId]) -> impl Iterator<Item = (Vec<StateOp>, bool)> + '_ {
    (0..pins).step_by(64).map(move |start| {
        let end = (start + 64).min(pins);
        let ops = (start..end).map(|i| StateOp::Add(typical(i, peers))).collect();
        (ops, end % 4096 == 0 || end == pins)
    })
}

fn rate(what: &str, count: u64, began: Instant) {
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "{what}: {count} in {seconds:.3} s = {:.0}/s ({:.0} ns each)",
        count as f64 / seconds,
        seconds * 1e9 / count as f64
    );
}

fn main() {
    let pins: u64 = std::env::var("STORE_BENCH_PINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);

    let peers: Vec<PeerId> = (1..=6).map(|n| PeerId::from_ed25519_seed([n; 32])).collect();
    let pin = typical(7, &peers);
    let binary = pin_codec::encode_pin(&pin, false);
    let json = serde_json::to_vec(&pin).unwrap();
    println!(
        "typical pin: {} bytes binary (without its CID), {} bytes JSON",
        binary.len(),
        json.len()
    );
    let rounds = 200_000u64;
    let began = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(pin_codec::encode_pin(std::hint::black_box(&pin), false));
    }
    rate("encode binary", rounds, began);
    let began = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(serde_json::to_vec(std::hint::black_box(&pin)).unwrap());
    }
    rate("encode JSON", rounds, began);
    let began = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(pin_codec::decode_pin(std::hint::black_box(&binary), Some(pin.cid)).unwrap());
    }
    rate("decode binary", rounds, began);
    let began = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(serde_json::from_slice::<Pin>(std::hint::black_box(&json)).unwrap());
    }
    rate("decode JSON", rounds, began);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pinset.redb");
    let state = RedbState::open(&path).unwrap();
    let began = Instant::now();
    for (ops, sync) in applies(pins, &peers) {
        state.commit_unsynced(&ops, Some(b"meta")).unwrap();
        if sync {
            state.sync().unwrap();
        }
    }
    rate("apply pins, 64 per commit, synced every 4,096", pins, began);
    let bytes = std::fs::metadata(&path).unwrap().len();
    println!(
        "pinset file: {bytes} bytes for {pins} pins = {:.0} bytes/pin",
        bytes as f64 / pins as f64
    );

    // The same through the buffer a member keeps in front of its store.
    let buffered_dir = tempfile::tempdir().unwrap();
    let buffered = BufferedState::new(Arc::new(
        RedbState::open(&buffered_dir.path().join("pinset.redb")).unwrap(),
    ));
    let (mut committing, mut syncing) = (Duration::ZERO, Duration::ZERO);
    for (ops, sync) in applies(pins, &peers) {
        let began = Instant::now();
        buffered.commit_unsynced_owned(ops, Some(b"meta")).unwrap();
        committing += began.elapsed();
        if sync {
            let began = Instant::now();
            buffered.sync().unwrap();
            syncing += began.elapsed();
        }
    }
    let each = |spent: Duration| spent.as_nanos() as f64 / pins as f64;
    println!(
        "the same through the buffer (BufferedState): {:.0} ns a pin committing to the buffer, {:.0} ns writing it at the syncs",
        each(committing),
        each(syncing)
    );
    drop(buffered);

    let began = Instant::now();
    let mut listed = 0u64;
    let mut after: Option<Cid> = None;
    loop {
        let page = state.list_page(after.as_ref(), 1000).unwrap();
        listed += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == 1000 => after = Some(last.cid),
            _ => break,
        }
    }
    rate("list every pin, pages of 1,000", listed, began);

    let reads = pins.min(100_000);
    let began = Instant::now();
    for i in 0..reads {
        let cid = Cid::raw_sha256(&((i * 7919) % pins).to_le_bytes());
        std::hint::black_box(state.get(&cid).unwrap().expect("stored"));
    }
    rate("get one pin by CID", reads, began);

    // What every new pin's lookups meet: a CID the pinset never held.
    let began = Instant::now();
    for i in 0..reads {
        let cid = Cid::raw_sha256(&(pins + i).to_le_bytes());
        assert!(std::hint::black_box(state.get(&cid).unwrap()).is_none());
    }
    rate("get a CID never stored", reads, began);

    drop(state);
    let began = Instant::now();
    let state = RedbState::open(&path).unwrap();
    let seconds = began.elapsed().as_secs_f64();
    println!("open the pinset of {} pins again: {seconds:.3} s", state.len().unwrap());
}
