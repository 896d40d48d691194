//! [`KeyFilter`]: the keys a store may hold, so that looking up a key it never held (every new
//! CID a pin request brings) skips the B-tree. Every new pin is looked up once on each follower
//! and twice on the leader, and every one of those lookups missed: redb's page cache and
//! B-tree walk were 8 to 9 % of a member's CPU under ingest.
//!
//! A split block Bloom filter: a key's hash picks one 32-byte block and sets one bit in each of
//! its eight words, so a lookup reads one cache line. At [`BITS_PER_KEY`] bits a key about 1 %
//! of the keys never inserted are answered "maybe". It never answers "absent" for a key
//! inserted. Keys are never removed (a removed pin's key stays a "maybe" until the filter is
//! built again, when the store opens). When the newest part holds its capacity of keys a part
//! twice its size is added; a lookup reads one block of each part.

use std::hash::Hasher;
use std::sync::RwLock;

use cluster_types::Cid;

/// Bits of filter a key, in the part sized for it.
const BITS_PER_KEY: u64 = 10;

/// The capacity of the first part, at the least: 1.25 MB.
pub(crate) const MIN_CAPACITY: u64 = 1 << 20;

/// One odd multiplier a word of a block: each spreads the key's hash to a bit of its own.
const SPREAD: [u32; 8] = [
    0x9e37_79b1,
    0x85eb_ca77,
    0xc2b2_ae3d,
    0x27d4_eb2f,
    0x1656_67b1,
    0xd3a2_646d,
    0xfd70_46c5,
    0xb55a_4f09,
];

/// The hash a [`KeyFilter`] takes: the standard hasher with its fixed keys (the same for every
/// filter of the process; the filter is never written to disk).
pub(crate) fn hash(key: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(key);
    hasher.finish()
}

/// [`hash`] of a CID's binary form (its key), without allocating it: most keys asked about on
/// the write path are new, and the filter answers them without the key itself.
pub(crate) fn hash_of_cid(cid: &Cid) -> u64 {
    let mut bytes = [0u8; 128];
    match cid.0.write_bytes(&mut &mut bytes[..]) {
        Ok(len) => hash(&bytes[..len]),
        Err(_) => hash(&cid.to_bytes()),
    }
}

/// Which keys a store may hold. Shared by readers and the writer.
#[derive(Debug)]
pub(crate) struct KeyFilter {
    parts: RwLock<Vec<Part>>,
}

#[derive(Debug)]
struct Part {
    blocks: Vec<[u32; 8]>,
    capacity: u64,
    keys: u64,
}

impl Part {
    fn new(capacity: u64) -> Part {
        let blocks = (capacity * BITS_PER_KEY).div_ceil(256).max(1);
        Part {
            blocks: vec![[0; 8]; blocks as usize],
            capacity,
            keys: 0,
        }
    }

    /// The block `hash` picks: its high half scaled to the number of blocks.
    fn block(&self, hash: u64) -> usize {
        (((hash >> 32) * self.blocks.len() as u64) >> 32) as usize
    }

    fn insert(&mut self, hash: u64) {
        let block = self.block(hash);
        for (word, spread) in self.blocks[block].iter_mut().zip(SPREAD) {
            *word |= bit(hash, spread);
        }
        self.keys += 1;
    }

    fn may_contain(&self, hash: u64) -> bool {
        let block = &self.blocks[self.block(hash)];
        block
            .iter()
            .zip(SPREAD)
            .all(|(word, spread)| word & bit(hash, spread) != 0)
    }
}

/// The bit of a word that `hash` sets, by the word's multiplier.
fn bit(hash: u64, spread: u32) -> u32 {
    1 << ((hash as u32).wrapping_mul(spread) >> 27)
}

impl KeyFilter {
    /// An empty filter with room for `expected` keys (at least [`MIN_CAPACITY`]) before it
    /// grows.
    pub(crate) fn with_capacity(expected: u64) -> KeyFilter {
        KeyFilter {
            parts: RwLock::new(vec![Part::new(expected.max(MIN_CAPACITY))]),
        }
    }

    /// Adds the keys of these hashes.
    pub(crate) fn insert(&self, hashes: impl IntoIterator<Item = u64>) {
        let mut parts = self.parts.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        for hash in hashes {
            let last = parts.last_mut().expect("a filter has a part");
            if last.keys >= last.capacity {
                let capacity = last.capacity * 2;
                parts.push(Part::new(capacity));
            }
            parts.last_mut().expect("a filter has a part").insert(hash);
        }
    }

    /// False only if no key of this hash was inserted.
    pub(crate) fn may_contain(&self, hash: u64) -> bool {
        let parts = self.parts.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        parts.iter().any(|part| part.may_contain(hash))
    }

    /// How many parts the filter has grown to.
    #[cfg(test)]
    fn parts(&self) -> usize {
        self.parts.read().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> Vec<u8> {
        // The shape of a CIDv1 of a raw block: a fixed prefix, then the digest.
        let mut key = vec![0x01, 0x55, 0x12, 0x20];
        key.extend_from_slice(&i.to_be_bytes());
        key.extend_from_slice(&[0; 24]);
        key
    }

    #[test]
    fn a_cid_hashes_as_its_binary_form() {
        let cids = [
            Cid::raw_sha256(b"one"),
            // A CIDv0 (its binary form is the bare multihash) and a sha2-512 CIDv1 (a 64-byte
            // digest, the longest this type holds).
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG".parse().unwrap(),
            Cid::from_bytes(&[[0x01, 0x70, 0x13, 0x40].as_slice(), &[9; 64]].concat()).unwrap(),
        ];
        for cid in cids {
            assert_eq!(hash_of_cid(&cid), hash(&cid.to_bytes()), "{cid}");
        }
    }

    #[test]
    fn every_inserted_key_is_found_across_growth_and_few_others_are() {
        let filter = KeyFilter::with_capacity(0);
        let inserted = 3 * MIN_CAPACITY;
        filter.insert((0..inserted).map(|i| hash(&key(i))));
        assert_eq!(filter.parts(), 2, "{MIN_CAPACITY} keys, then twice as many");
        let missed = (0..inserted).filter(|i| !filter.may_contain(hash(&key(*i)))).count();
        assert_eq!(missed, 0, "an inserted key answered absent");
        let others = 100_000;
        let maybes = (inserted..inserted + others)
            .filter(|i| filter.may_contain(hash(&key(*i))))
            .count();
        // About 1 % for each of the two full parts.
        assert!(
            maybes < others as usize * 4 / 100,
            "{maybes} of {others} absent keys answered maybe"
        );
    }

    #[test]
    fn an_empty_filter_holds_nothing() {
        let filter = KeyFilter::with_capacity(10);
        assert!((0..1000).all(|i| !filter.may_contain(hash(&key(i)))));
        assert_eq!(filter.parts(), 1);
    }
}
