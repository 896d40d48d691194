//! `identity.json`: the member's libp2p key pair, in the Go format
//! `{"id": "<peer id>", "private_key": "<base64 protobuf private key>"}`.

use std::path::Path;

use base64::Engine;
use cluster_types::PeerId;
use libp2p_identity::Keypair;
use serde::{Deserialize, Serialize};

use crate::NodeError;

/// A member's identity.
#[derive(Clone)]
pub struct Identity {
    /// The key pair.
    pub keypair: Keypair,
    /// The peer id derived from it.
    pub peer_id: PeerId,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.peer_id)
    }
}

#[derive(Serialize, Deserialize)]
struct IdentityJson {
    id: String,
    private_key: String,
}

impl Identity {
    /// A new ed25519 identity from the seam's random source (deterministic under the simulator).
    pub fn generate() -> Identity {
        let mut seed = [0u8; 32];
        cluster_rt::fill_random(&mut seed);
        Identity::from_seed(seed)
    }

    /// The ed25519 identity of a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Identity {
        let keypair = Keypair::ed25519_from_bytes(seed).expect("any 32 bytes is an ed25519 secret");
        let peer_id = PeerId(keypair.public().to_peer_id());
        Identity { keypair, peer_id }
    }

    /// The JSON text of `identity.json`.
    pub fn to_json(&self) -> String {
        let private_key = base64::engine::general_purpose::STANDARD
            .encode(self.keypair.to_protobuf_encoding().expect("ed25519 keys encode"));
        let json = IdentityJson {
            id: self.peer_id.to_string(),
            private_key,
        };
        serde_json::to_string_pretty(&json).expect("identity serializes")
    }

    /// Parses `identity.json` text; `file` names it in errors.
    pub fn from_json(text: &str, file: &str) -> Result<Identity, NodeError> {
        let json: IdentityJson =
            serde_json::from_str(text).map_err(|e| NodeError::Config(format!("{file}: invalid identity: {e}")))?;
        let keypair = keypair_of(&json.id, &json.private_key).map_err(|e| NodeError::Config(format!("{file}: {e}")))?;
        let peer_id = PeerId(keypair.public().to_peer_id());
        Ok(Identity { keypair, peer_id })
    }

    /// Loads `identity.json` from `path`.
    pub fn load(path: &Path) -> Result<Identity, NodeError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| NodeError::Io {
            path: file.clone(),
            message: e.to_string(),
        })?;
        Identity::from_json(&text, &file)
    }
}

/// The key pair of an `id` and `private_key` (base64 of libp2p's protobuf encoding), checked
/// to belong together.
pub fn keypair_of(id: &str, private_key: &str) -> Result<Keypair, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(private_key.trim())
        .map_err(|e| format!("private_key: not base64: {e}"))?;
    let keypair =
        Keypair::from_protobuf_encoding(&bytes).map_err(|e| format!("private_key: not a libp2p private key: {e}"))?;
    let derived = keypair.public().to_peer_id();
    if derived.to_string() != id {
        return Err(format!(
            "id {id} does not match the private key (which gives {derived})"
        ));
    }
    Ok(keypair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_json_round_trips_and_detects_mismatch() {
        let identity = Identity::from_seed([3; 32]);
        let text = identity.to_json();
        let back = Identity::from_json(&text, "identity.json").unwrap();
        assert_eq!(back.peer_id, identity.peer_id);
        let other = Identity::from_seed([4; 32]);
        let forged = text.replace(&identity.peer_id.to_string(), &other.peer_id.to_string());
        let err = Identity::from_json(&forged, "identity.json").unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
        assert!(Identity::from_json("{}", "identity.json").is_err());
        assert!(Identity::from_json(r#"{"id":"x","private_key":"!!"}"#, "identity.json").is_err());
    }
}
