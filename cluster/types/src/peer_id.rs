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

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
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
        libp2p_identity::PeerId::from_str(s)
            .map(PeerId)
            .map_err(|e| PeerIdError(e.to_string()))
    }
}

impl Serialize for PeerId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PeerId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PeerId, D::Error> {
        let text = String::deserialize(deserializer)?;
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
