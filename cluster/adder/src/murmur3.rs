//! MurmurHash3 x64_128 (Austin Appleby's SMHasher reference), the hash HAMT-sharded UnixFS
//! directories place their entries with (multicodec `murmur3-x64-64`, 0x22).
//!
//! Owns: the hash function only. Kubo (boxo `ipld/unixfs/hamt/util.go`) uses spaolacci/murmur3
//! `New64`, whose `Sum64` is `h1`, the first half of the 128-bit result, with seed 0; which bits
//! of it pick a slot is the HAMT's business (`hamt.rs`).

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

/// MurmurHash3 x64_128 of `data` under `seed`: `(h1, h2)`, the two 64-bit halves in the order
/// the reference writes them.
pub(crate) fn murmur3_x64_128(data: &[u8], seed: u32) -> (u64, u64) {
    let mut h1 = u64::from(seed);
    let mut h2 = u64::from(seed);
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let (low, high) = block.split_at(8);
        h1 ^= mix_k1(read_u64_le(low));
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        h2 ^= mix_k2(read_u64_le(high));
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    // The tail (0 to 15 bytes) is read little-endian into k1 (bytes 0..8) and k2 (8..15), each
    // mixed in only when it received at least one byte.
    let tail = blocks.remainder();
    if tail.len() > 8 {
        h2 ^= mix_k2(read_u64_le(&tail[8..]));
    }
    if !tail.is_empty() {
        h1 ^= mix_k1(read_u64_le(&tail[..tail.len().min(8)]));
    }
    let length = data.len() as u64;
    h1 ^= length;
    h2 ^= length;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

/// Up to 8 bytes as a little-endian integer, missing high bytes zero.
fn read_u64_le(bytes: &[u8]) -> u64 {
    debug_assert!(bytes.len() <= 8);
    bytes
        .iter()
        .enumerate()
        .fold(0, |value, (index, &byte)| value | (u64::from(byte) << (8 * index)))
}

fn mix_k1(k1: u64) -> u64 {
    k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2)
}

fn mix_k2(k2: u64) -> u64 {
    k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1)
}

/// The reference's 64-bit finalization mix.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaolacci_reference_strings() {
        // spaolacci/murmur3 murmur_test.go (the implementation boxo's HAMT uses): seed, h64_1,
        // h64_2 and the input.
        let vectors: [(u32, u64, u64, &str); 15] = [
            (0x00, 0x0000000000000000, 0x0000000000000000, ""),
            (0x00, 0xcbd8a7b341bd9b02, 0x5b1e906a48ae1d19, "hello"),
            (0x00, 0x342fac623a5ebc8e, 0x4cdcbc079642414d, "hello, world"),
            (
                0x00,
                0xb89e5988b737affc,
                0x664fc2950231b2cb,
                "19 Jan 2038 at 3:14:07 AM",
            ),
            (
                0x00,
                0xcd99481f9ee902c9,
                0x695da1a38987b6e7,
                "The quick brown fox jumps over the lazy dog.",
            ),
            (0x01, 0x4610abe56eff5cb5, 0x51622daa78f83583, ""),
            (0x01, 0xa78ddff5adae8d10, 0x128900ef20900135, "hello"),
            (0x01, 0x8b95f808840725c6, 0x1597ed5422bd493b, "hello, world"),
            (
                0x01,
                0x2a929de9c8f97b2f,
                0x56a41d99af43a2db,
                "19 Jan 2038 at 3:14:07 AM",
            ),
            (
                0x01,
                0xfb3325171f9744da,
                0xaaf8b92a5f722952,
                "The quick brown fox jumps over the lazy dog.",
            ),
            (0x2a, 0xf02aa77dfa1b8523, 0xd1016610da11cbb9, ""),
            (0x2a, 0xc4b8b3c960af6f08, 0x2334b875b0efbc7a, "hello"),
            (0x2a, 0xb91864d797caa956, 0xd5d139a55afe6150, "hello, world"),
            (
                0x2a,
                0xfd8f19ebdc8c6b6a,
                0xd30fdc310fa08ff9,
                "19 Jan 2038 at 3:14:07 AM",
            ),
            (
                0x2a,
                0x74f33c659cda5af7,
                0x4ec7a891caf316f0,
                "The quick brown fox jumps over the lazy dog.",
            ),
        ];
        for (seed, h1, h2, input) in vectors {
            assert_eq!(murmur3_x64_128(input.as_bytes(), seed), (h1, h2), "{seed} {input:?}");
        }
    }

    #[test]
    fn smhasher_verification_value() {
        // SMHasher KeysetTest.cpp `VerificationTest`: hash the keys {}, {0}, {0,1}, ... {0..254}
        // with seed 256 - length, hash the concatenated 16-byte results with seed 0, and read
        // the first 4 bytes little-endian. MurmurHash3_x64_128's published value is 0x6384BA69.
        // This covers every tail length, which the string vectors above do not.
        let key: Vec<u8> = (0..=255).collect();
        let mut hashes = Vec::with_capacity(256 * 16);
        for length in 0..256 {
            let (h1, h2) = murmur3_x64_128(&key[..length], 256 - length as u32);
            hashes.extend_from_slice(&h1.to_le_bytes());
            hashes.extend_from_slice(&h2.to_le_bytes());
        }
        let (h1, _) = murmur3_x64_128(&hashes, 0);
        assert_eq!(h1 as u32, 0x6384_ba69);
    }
}
