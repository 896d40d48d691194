//! libp2p peer ids, serialized as base58btc strings (`12D3KooW…`, `Qm…`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A cluster member or IPFS daemon peer id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub libp2p_identity::PeerId);

/// A string that is not a peer id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PeerIdError(pub String);

impl PeerId {
    /// The peer id of the ed25519 key derived from a 32-byte secret seed (simulated members, tests).
    pub fn from_ed25519_seed(seed: [u8; 32]) -> PeerId {
        let mut seed = seed;
        let secret = libp2p_identity::ed25519::SecretKey::try_from_bytes(&mut seed).expect("any 32 bytes is a secret");
        let keypair = libp2p_identity::ed25519::Keypair::from(secret);
        PeerId(libp2p_identity::PublicKey::from(keypair.public()).to_peer_id())
    }

    /// Binary form (multihash bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes()
    }

    /// Decodes the binary form.
    pub fn from_bytes(bytes: &[u8]) -> Result<PeerId, PeerIdError> {
        if let Some(id) = recent::decoded(bytes) {
            return Ok(PeerId(id));
        }
        let id = libp2p_identity::PeerId::from_bytes(bytes).map_err(|e| PeerIdError(e.to_string()))?;
        recent::remember_decoded(bytes, id);
        Ok(PeerId(id))
    }
}

/// The last few peer ids a thread decoded from bytes or wrote as text. A listing names the
/// same handful of members in every pin: comparing with eight recent ones is cheaper than
/// decoding a multihash, or hashing one to look up its text in `text_cache`.
mod recent {
    use std::cell::RefCell;
    use std::sync::Arc;

    const RECENT_MAX: usize = 8;

    /// At most [`RECENT_MAX`] entries; the next one replaces the slot after the last replaced.
    struct Recent<K, V> {
        entries: Vec<(K, V)>,
        next: usize,
    }

    impl<K, V: Clone> Recent<K, V> {
        const fn new() -> Self {
            Recent {
                entries: Vec::new(),
                next: 0,
            }
        }

        fn find(&self, matches: impl Fn(&K) -> bool) -> Option<V> {
            self.entries
                .iter()
                .find(|(key, _)| matches(key))
                .map(|(_, value)| value.clone())
        }

        fn insert(&mut self, key: K, value: V) {
            if self.entries.len() < RECENT_MAX {
                self.entries.push((key, value));
            } else {
                self.entries[self.next] = (key, value);
                self.next = (self.next + 1) % RECENT_MAX;
            }
        }
    }

    thread_local! {
        static DECODED: RefCell<Recent<Box<[u8]>, libp2p_identity::PeerId>> = const { RefCell::new(Recent::new()) };
        static TEXTS: RefCell<Recent<libp2p_identity::PeerId, Arc<str>>> = const { RefCell::new(Recent::new()) };
    }

    pub(super) fn decoded(bytes: &[u8]) -> Option<libp2p_identity::PeerId> {
        DECODED.with(|recent| recent.borrow().find(|key| **key == *bytes))
    }

    pub(super) fn remember_decoded(bytes: &[u8], id: libp2p_identity::PeerId) {
        DECODED.with(|recent| recent.borrow_mut().insert(bytes.into(), id))
    }

    pub(super) fn text(id: &libp2p_identity::PeerId) -> Option<Arc<str>> {
        TEXTS.with(|recent| recent.borrow().find(|key| key == id))
    }

    pub(super) fn remember_text(id: libp2p_identity::PeerId, text: Arc<str>) {
        TEXTS.with(|recent| recent.borrow_mut().insert(id, text))
    }
}

/// The base58 text of the peer ids a thread met last, both ways: a cluster names a handful of
/// peers millions of times (allocations, status maps, metrics), and base58 costs about a
/// microsecond per id each way. Bounded: emptied when it holds [`TEXT_CACHE_MAX`] ids.
mod text_cache {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::sync::Arc;

    pub(super) const TEXT_CACHE_MAX: usize = 512;

    thread_local! {
        static TO_TEXT: RefCell<HashMap<libp2p_identity::PeerId, Arc<str>>> = RefCell::new(HashMap::new());
        static FROM_TEXT: RefCell<HashMap<Box<str>, libp2p_identity::PeerId>> = RefCell::new(HashMap::new());
    }

    pub(super) fn text_of(id: &libp2p_identity::PeerId) -> Arc<str> {
        if let Some(text) = super::recent::text(id) {
            return text;
        }
        let text = TO_TEXT.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some(text) = cache.get(id) {
                return text.clone();
            }
            if cache.len() >= TEXT_CACHE_MAX {
                cache.clear();
            }
            let text: Arc<str> = id.to_base58().into();
            cache.insert(*id, text.clone());
            text
        });
        super::recent::remember_text(*id, text.clone());
        text
    }

    pub(super) fn parsed(text: &str) -> Option<libp2p_identity::PeerId> {
        FROM_TEXT.with(|cache| cache.borrow().get(text).copied())
    }

    pub(super) fn remember(text: &str, id: libp2p_identity::PeerId) {
        FROM_TEXT.with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.len() >= TEXT_CACHE_MAX {
                cache.clear();
            }
            cache.insert(text.into(), id);
        })
    }

    #[cfg(test)]
    pub(super) fn sizes() -> (usize, usize) {
        (TO_TEXT.with(|c| c.borrow().len()), FROM_TEXT.with(|c| c.borrow().len()))
    }
}

impl PeerId {
    /// The base58 text (cached: see `text_cache`).
    pub fn text(&self) -> std::sync::Arc<str> {
        text_cache::text_of(&self.0)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&text_cache::text_of(&self.0))
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.0)
    }
}

/// The longest peer id text decoded: ed25519 and secp256k1 ids are 52 to 53 characters, hashed
/// keys 46. Refused before decoding, since base58 decoding costs the square of the length (a
/// 60,000-character id took 2.5 s of CPU).
pub const PEER_ID_TEXT_MAX: usize = 128;

impl FromStr for PeerId {
    type Err = PeerIdError;
    fn from_str(s: &str) -> Result<PeerId, PeerIdError> {
        if s.len() > PEER_ID_TEXT_MAX {
            return Err(PeerIdError(format!(
                "peer id too long: {} characters, at most {PEER_ID_TEXT_MAX}",
                s.len()
            )));
        }
        if let Some(id) = text_cache::parsed(s) {
            return Ok(PeerId(id));
        }
        let id = libp2p_identity::PeerId::from_str(s).map_err(|e| PeerIdError(e.to_string()))?;
        text_cache::remember(s, id);
        Ok(PeerId(id))
    }
}

impl Serialize for PeerId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&text_cache::text_of(&self.0))
    }
}

impl<'de> Deserialize<'de> for PeerId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PeerId, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_ids_are_refused_before_decoding() {
        let long = "1".repeat(60_000);
        let refused = long.parse::<PeerId>().unwrap_err();
        assert!(refused.0.contains("too long: 60000 characters"), "{refused}");
        let just_over = "1".repeat(PEER_ID_TEXT_MAX + 1);
        assert!(just_over.parse::<PeerId>().unwrap_err().0.contains("too long"));
    }

    #[test]
    fn the_text_cache_answers_as_base58_does_and_stays_bounded() {
        let ids: Vec<PeerId> = (0..=text_cache::TEXT_CACHE_MAX as u32 + 10)
            .map(|n| {
                let mut seed = [0u8; 32];
                seed[..4].copy_from_slice(&n.to_be_bytes());
                PeerId::from_ed25519_seed(seed)
            })
            .collect();
        for _ in 0..2 {
            for id in &ids {
                let text = id.to_string();
                assert_eq!(text, id.0.to_base58());
                assert_eq!(text.parse::<PeerId>().unwrap(), *id);
                let json = serde_json::to_string(id).unwrap();
                assert_eq!(json, format!("\"{text}\""));
                assert_eq!(serde_json::from_str::<PeerId>(&json).unwrap(), *id);
            }
        }
        let (to_text, from_text) = text_cache::sizes();
        assert!(to_text <= text_cache::TEXT_CACHE_MAX && from_text <= text_cache::TEXT_CACHE_MAX);
        // A text that is not a peer id is never remembered.
        assert!("12D3KooWnot".parse::<PeerId>().is_err());
        assert!("12D3KooWnot".parse::<PeerId>().is_err());
    }

    #[test]
    fn decoding_through_the_recent_ids_answers_as_libp2p_does() {
        let ids: Vec<PeerId> = (0..20u8).map(|n| PeerId::from_ed25519_seed([n; 32])).collect();
        // Cycles of 3 (all recent), then of 20 (more than the recent ones hold).
        for window in [3, 20] {
            for round in 0..3 {
                for id in ids.iter().take(window) {
                    let bytes = id.to_bytes();
                    assert_eq!(PeerId::from_bytes(&bytes).unwrap(), *id, "round {round}");
                    assert_eq!(&*id.text(), id.0.to_base58());
                }
            }
        }
        let mut bad = ids[0].to_bytes();
        bad.truncate(10);
        assert!(PeerId::from_bytes(&bad).is_err());
        assert!(PeerId::from_bytes(&bad).is_err(), "a refused id is never remembered");
        assert_eq!(PeerId::from_bytes(&ids[0].to_bytes()).unwrap(), ids[0]);
    }

    #[test]
    fn round_trips_known_ids() {
        for text in [
            "12D3KooWJfgts1mqaKhX4zN4j5f4K4rE9Ax9QrHHmU7bNuS3W4dC",
            "QmXZrtE5jQwXNqCJMfHUTQkvhQ4ZAnqMnmzFMJfLewuabc",
        ] {
            if let Ok(id) = text.parse::<PeerId>() {
                assert_eq!(id.to_string(), text);
            }
        }
        let id = PeerId::from_ed25519_seed([7u8; 32]);
        let text = id.to_string();
        assert!(text.starts_with("12D3Koo"), "{text}");
        assert_eq!(text.parse::<PeerId>().unwrap(), id);
        assert!("nope".parse::<PeerId>().is_err());
    }
}
