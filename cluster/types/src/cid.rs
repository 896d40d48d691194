//! Content identifiers, serialized as canonical strings: CIDv0 as base58btc `Qm…`, CIDv1 as
//! base32 `b…`, whatever base the input used (go-cid `String()`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A CID. Two CIDs are equal when version, codec and multihash are equal; the text base is not kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid(pub cid::Cid);

/// A string that is not a CID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CidError(pub String);

impl Cid {
    /// Decodes a CID from its binary form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Cid, CidError> {
        if let Some(cid) = Cid::from_sha256_bytes(bytes) {
            return Ok(cid);
        }
        let mut rest = bytes;
        let cid = cid::Cid::read_bytes(&mut rest).map_err(|e| CidError(e.to_string()))?;
        // Refused, as go-cid does: a prefix that parses is another, shorter CID.
        if !rest.is_empty() {
            return Err(CidError(format!(
                "trailing bytes in data ({} after the CID)",
                rest.len()
            )));
        }
        Ok(Cid(cid))
    }

    /// The shapes nearly every pin has, decoded without the generic reader (which reads each
    /// varint a byte at a time through `io::Read`; a listing decodes a key per pin): a sha2-256
    /// CIDv0, and a CIDv1 with a one-byte codec and a sha2-256 digest. `None` for anything else.
    fn from_sha256_bytes(bytes: &[u8]) -> Option<Cid> {
        const SHA2_256: u64 = 0x12;
        let cid = match bytes {
            [0x12, 0x20, digest @ ..] if digest.len() == 32 => {
                cid::Cid::new_v0(multihash::Multihash::wrap(SHA2_256, digest).ok()?).ok()?
            }
            [0x01, codec, 0x12, 0x20, digest @ ..] if *codec < 0x80 && digest.len() == 32 => {
                cid::Cid::new_v1(u64::from(*codec), multihash::Multihash::wrap(SHA2_256, digest).ok()?)
            }
            _ => return None,
        };
        Some(Cid(cid))
    }

    /// The binary form (used as the state key: sorts by version, codec, multihash).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes()
    }

    /// A CIDv1 raw-codec sha2-256 CID of `data`; handy for tests and fakes.
    pub fn raw_sha256(data: &[u8]) -> Cid {
        let digest = sha256(data);
        let mh = multihash::Multihash::<64>::wrap(0x12, &digest).expect("32-byte digest fits");
        Cid(cid::Cid::new_v1(0x55, mh))
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cid crate's Display allocates twice per CID; daemons and listings write millions.
        match self.write_v1_text(&mut [0; 160]) {
            Some(text) => f.write_str(text),
            None => fmt::Display::fmt(&self.0, f),
        }
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({})", self.0)
    }
}

/// The longest CID text decoded: room for the longest CID this type holds (a 64-byte digest) in
/// any base, base16 included. Refused before decoding, whose cost grows with the length
/// (base58's with its square).
pub const CID_TEXT_MAX: usize = 512;

impl FromStr for Cid {
    type Err = CidError;
    fn from_str(s: &str) -> Result<Cid, CidError> {
        if s.is_empty() {
            return Err(CidError("cid too short".into()));
        }
        if s.len() > CID_TEXT_MAX {
            return Err(CidError(format!(
                "cid too long: {} characters, at most {CID_TEXT_MAX}",
                s.len()
            )));
        }
        // CIDv0: 46 base58btc characters, no multibase prefix.
        if s.len() == 46 && s.starts_with("Qm") {
            return cid::Cid::try_from(s).map(Cid).map_err(|e| CidError(e.to_string()));
        }
        if let Some(base32) = s.strip_prefix('b') {
            if let Some(bytes) = decode_base32_lower(base32.as_bytes(), &mut [0; 96]) {
                return Cid::from_bytes(bytes);
            }
        }
        // Decoded here, not by `cid::Cid::try_from`, which ignores bytes after the CID.
        let (_, bytes) = multibase::decode(s).map_err(|e| CidError(e.to_string()))?;
        Cid::from_bytes(&bytes)
    }
}

/// `text` as unpadded lowercase base32 (multibase `b`, what daemons list pins in), decoded into
/// `out` without allocating. `None` for anything else, even a near miss (left over bits set, an
/// impossible length, another alphabet): multibase's decoder then gives its answer.
fn decode_base32_lower<'o>(text: &[u8], out: &'o mut [u8; 96]) -> Option<&'o [u8]> {
    if text.len() * 5 / 8 > out.len() || matches!(text.len() % 8, 1 | 3 | 6) {
        return None;
    }
    let (mut bits, mut pending, mut written) = (0u32, 0u32, 0);
    for &character in text {
        let value = match character {
            b'a'..=b'z' => character - b'a',
            b'2'..=b'7' => character - b'2' + 26,
            _ => return None,
        };
        bits = (bits << 5) | u32::from(value);
        pending += 5;
        if pending >= 8 {
            pending -= 8;
            out[written] = (bits >> pending) as u8;
            written += 1;
            bits &= (1 << pending) - 1;
        }
    }
    (bits == 0).then_some(&out[..written])
}

impl Cid {
    /// The text of a CIDv1 (multibase base32, as [`fmt::Display`] writes it) written into `buf`
    /// without allocating: listings write millions. `None` for a CIDv0 or a CID too long for it.
    pub(crate) fn write_v1_text<'b>(&self, buf: &'b mut [u8; 160]) -> Option<&'b str> {
        const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
        if self.0.version() != cid::Version::V1 || self.0.encoded_len() > 96 {
            return None;
        }
        let mut bytes = [0u8; 96];
        let mut writer = &mut bytes[..];
        let length = self.0.write_bytes(&mut writer).ok()?;
        buf[0] = b'b';
        let mut out = 1;
        for group in bytes[..length].chunks(5) {
            let mut block = [0u8; 5];
            block[..group.len()].copy_from_slice(group);
            let bits = u64::from_be_bytes([0, 0, 0, block[0], block[1], block[2], block[3], block[4]]);
            // 8 characters of 5 bits hold 5 bytes; a shorter group writes only what it covers.
            let characters = (group.len() * 8).div_ceil(5);
            for i in 0..characters {
                buf[out] = ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize];
                out += 1;
            }
        }
        std::str::from_utf8(&buf[..out]).ok()
    }
}

impl Serialize for Cid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.write_v1_text(&mut [0; 160]) {
            Some(text) => serializer.serialize_str(text),
            None => serializer.collect_str(&self.0),
        }
    }
}

impl<'de> Deserialize<'de> for Cid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cid, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            // The pre-1.0 `{"/":"<cid>"}` form, still written by some clients.
            Link {
                #[serde(rename = "/")]
                link: String,
            },
        }
        let text = match Repr::deserialize(deserializer)? {
            Repr::Text(text) => text,
            Repr::Link { link } => link,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// SHA-256, small and dependency-free; used only for fakes and tests (not on a hot path).
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ];
    let mut message = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_be_bytes());
    for chunk in message.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([chunk[4 * i], chunk[4 * i + 1], chunk[4 * i + 2], chunk[4 * i + 3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let mut v = h;
        for i in 0..64 {
            let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
            let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
            let t1 = v[7]
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
            let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            let t2 = s0.wrapping_add(maj);
            v = [
                t1.wrapping_add(t2),
                v[0],
                v[1],
                v[2],
                v[3].wrapping_add(t1),
                v[4],
                v[5],
                v[6],
            ];
        }
        for i in 0..8 {
            h[i] = h[i].wrapping_add(v[i]);
        }
    }
    let mut out = [0u8; 32];
    for i in 0..8 {
        out[4 * i..4 * i + 4].copy_from_slice(&h[i].to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The allocation-free text (JSON of listings) is the multibase text for every digest
    /// length and codec, and a CIDv0 keeps base58.
    #[test]
    fn the_fast_v1_text_matches_the_multibase_one() {
        for length in 0..=64usize {
            for codec in [0x55u64, 0x70, 0x71, 0x0129, 0x1_0000] {
                let digest: Vec<u8> = (0..length).map(|i| (i * 37 + length) as u8).collect();
                let mh = multihash::Multihash::<64>::wrap(0x12, &digest).unwrap();
                let cid = Cid(cid::Cid::new_v1(codec, mh));
                let fast = cid.write_v1_text(&mut [0; 160]).expect("a CIDv1").to_string();
                assert_eq!(fast, cid.0.to_string(), "codec {codec:#x}, digest of {length} bytes");
                assert_eq!(cid.to_string(), fast);
                assert_eq!(serde_json::to_string(&cid).unwrap(), format!("\"{fast}\""));
                assert_eq!(fast.parse::<Cid>().unwrap(), cid);
            }
        }
        let v0: Cid = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9".parse().unwrap();
        assert!(v0.write_v1_text(&mut [0; 160]).is_none());
        assert_eq!(
            serde_json::to_string(&v0).unwrap(),
            "\"QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9\""
        );
    }

    /// The short cut for sha2-256 keys decodes what the generic reader decodes, and leaves every
    /// other shape (and every malformed one) to it.
    #[test]
    fn sha256_keys_decode_as_the_generic_reader_decodes_them() {
        let digest: Vec<u8> = (0..32u8).collect();
        let v0 = cid::Cid::new_v0(multihash::Multihash::wrap(0x12, &digest).unwrap()).unwrap();
        let mut cases: Vec<(Vec<u8>, bool)> = vec![(v0.to_bytes(), true)];
        for codec in [0x00u64, 0x55, 0x70, 0x71, 0x7f, 0x80, 0x0129] {
            let v1 = cid::Cid::new_v1(codec, multihash::Multihash::wrap(0x12, &digest).unwrap());
            cases.push((v1.to_bytes(), codec < 0x80));
            let sha512 = cid::Cid::new_v1(codec, multihash::Multihash::wrap(0x13, &[7; 64]).unwrap());
            cases.push((sha512.to_bytes(), false));
        }
        for (bytes, fast) in cases.clone() {
            let mut longer = bytes.clone();
            longer.push(0);
            cases.push((longer, false));
            cases.push((bytes[..bytes.len() - 1].to_vec(), false));
            assert_eq!(Cid::from_sha256_bytes(&bytes).is_some(), fast, "{bytes:02x?}");
        }
        for (bytes, _) in cases {
            let mut rest = bytes.as_slice();
            let generic = cid::Cid::read_bytes(&mut rest).ok().filter(|_| rest.is_empty());
            assert_eq!(Cid::from_bytes(&bytes).ok().map(|cid| cid.0), generic, "{bytes:02x?}");
        }
    }

    /// Base32 text parses without multibase as it parses with it; every near miss is left to
    /// multibase and gets its answer.
    #[test]
    fn base32_text_parses_as_multibase_parses_it() {
        let generic = |text: &str| {
            multibase::decode(text)
                .map_err(|e| CidError(e.to_string()))
                .and_then(|(_, bytes)| Cid::from_bytes(&bytes))
        };
        let mut texts = Vec::new();
        for length in [0usize, 1, 20, 32, 33, 64] {
            for codec in [0x55u64, 0x70, 0x0129] {
                let digest: Vec<u8> = (0..length).map(|i| (i * 29 + codec as usize) as u8).collect();
                let cid = cid::Cid::new_v1(codec, multihash::Multihash::<64>::wrap(0x12, &digest).unwrap());
                let text = cid.to_string();
                assert!(Cid::from_str(&text).is_ok_and(|parsed| parsed.0 == cid), "{text}");
                assert!(
                    decode_base32_lower(&text.as_bytes()[1..], &mut [0; 96]).is_some(),
                    "{text}"
                );
                texts.push(text.to_uppercase().replacen('B', "b", 1));
                texts.push(format!("{text}a"));
                texts.push(format!("{text}aa"));
                texts.push(text[..text.len() - 1].to_string());
                texts.push(format!("{}{}", &text[..text.len() - 1], 'z'));
                texts.push(text.replace('a', "1"));
                texts.push(text);
            }
        }
        texts.extend(["b", "ba", "baa", "b=", "bafy!"].map(String::from));
        for text in texts {
            assert_eq!(Cid::from_str(&text), generic(&text), "{text}");
        }
    }

    #[test]
    fn v0_stays_base58_and_v1_becomes_base32() {
        let v0: Cid = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9".parse().unwrap();
        assert_eq!(v0.to_string(), "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9");
        // js-ipfs answers CIDv1 in base58btc; we re-encode it to base32 like go-cid.
        let v1: Cid = "zb2rhaUZxZXRHcQYpzDT2zt3wtjba3U5LkZr91tXeaRbkFNBr".parse().unwrap();
        assert!(v1.to_string().starts_with("bafkrei"), "{v1}");
        let again: Cid = v1.to_string().parse().unwrap();
        assert_eq!(again, v1);
    }

    #[test]
    fn trailing_bytes_after_a_cid_are_refused() {
        let cid = Cid::raw_sha256(b"trailing");
        for extra in [&[0u8][..], &[1, 2, 3], &cid.to_bytes()] {
            let mut bytes = cid.to_bytes();
            bytes.extend_from_slice(extra);
            for base in [
                multibase::Base::Base32Lower,
                multibase::Base::Base58Btc,
                multibase::Base::Base64,
            ] {
                let text = multibase::encode(base, &bytes);
                let refused = text.parse::<Cid>().expect_err(&text);
                assert!(refused.0.contains("trailing bytes"), "{text}: {refused}");
            }
            assert!(
                Cid::from_bytes(&bytes).is_err(),
                "binary form with {} trailing bytes",
                extra.len()
            );
        }
        // CIDv0 (bare base58btc) with trailing bytes.
        let v0: Cid = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9".parse().unwrap();
        let mut bytes = v0.to_bytes();
        bytes.push(0);
        let text = multibase::Base::Base58Btc.encode(&bytes);
        assert!(text.parse::<Cid>().is_err(), "{text}");
        // The CID itself still parses, in every base.
        for base in [
            multibase::Base::Base32Lower,
            multibase::Base::Base58Btc,
            multibase::Base::Base64,
        ] {
            assert_eq!(multibase::encode(base, cid.to_bytes()).parse::<Cid>().unwrap(), cid);
        }
    }

    #[test]
    fn overlong_cids_are_refused_before_decoding() {
        let long = format!("z{}", "1".repeat(60_000));
        let refused = long.parse::<Cid>().unwrap_err();
        assert!(refused.0.contains("too long: 60001 characters"), "{refused}");
        // The longest CID this type holds (a 64-byte digest), in base16, the longest common
        // base, still fits.
        let mut bytes = vec![0x01, 0x55, 0x00, 0x40];
        bytes.extend([7u8; 64]);
        let inline = multibase::encode(multibase::Base::Base16Lower, &bytes);
        assert!(inline.len() <= CID_TEXT_MAX);
        assert_eq!(inline.parse::<Cid>().unwrap().to_bytes(), bytes);
    }

    #[test]
    fn invalid_and_empty_strings_are_errors() {
        assert!("".parse::<Cid>().is_err());
        assert!("not-a-cid".parse::<Cid>().is_err());
        assert!("Qm123".parse::<Cid>().is_err());
    }

    #[test]
    fn sha256_matches_known_vector() {
        let digest = sha256(b"abc");
        assert_eq!(digest[0..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(digest[28..32], [0xf2, 0x00, 0x15, 0xad]);
    }

    #[test]
    fn accepts_pre_1_0_link_form() {
        let cid: Cid = serde_json::from_str(r#"{"/":"QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&cid).unwrap(),
            r#""QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9""#
        );
    }
}
