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
        libp2p_identity::PeerId::from_bytes(bytes)
            .map(PeerId)
            .map_err(|e| PeerIdError(e.to_string()))
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
        TO_TEXT.with(|cache| {
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
        })
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
