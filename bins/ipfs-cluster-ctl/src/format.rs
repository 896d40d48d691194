//! Output formats: the text layouts of Go's `cmd/ipfs-cluster-ctl/formatters.go` (one function per
//! type, each returning the exact lines Go prints) and Go's `json.MarshalIndent(obj, "", "    ")`.
//!
//! Times print as our [`cluster_types::Timestamp`] keeps them, in UTC; Go prints them in the offset
//! the server sent (a Go server uses its local zone), so only the zone can differ.

use std::fmt::Write as _;

use cluster_types::{ApiError, GlobalPinInfo, Id, Pin, PinMode, PinType, Timestamp, Version};
use serde::Serialize;

/// Something with a Go text layout.
pub trait TextFormat {
    /// The lines Go prints for this object, each ending in `\n`.
    fn to_text(&self) -> String;
}

impl TextFormat for Id {
    fn to_text(&self) -> String {
        id_text(self)
    }
}

impl TextFormat for GlobalPinInfo {
    fn to_text(&self) -> String {
        global_pin_info_text(self)
    }
}

impl TextFormat for Pin {
    fn to_text(&self) -> String {
        pin_text(self)
    }
}

impl TextFormat for Version {
    fn to_text(&self) -> String {
        format!("{}\n", self.version)
    }
}

impl TextFormat for ApiError {
    fn to_text(&self) -> String {
        api_error_text(self)
    }
}

/// `textFormatPrintID`: a header line, then sorted cluster addresses, then the IPFS daemon.
pub fn id_text(id: &Id) -> String {
    let mut out = String::new();
    if !id.error.is_empty() {
        let _ = writeln!(out, "{} | ERROR: {}", id.id, id.error);
        return out;
    }
    // Go prints len(ClusterPeers)-1 even when that is -1.
    let others = id.cluster_peers.len() as i64 - 1;
    let _ = writeln!(out, "{} | {} | Sees {} other peers", id.id, id.peername, others);
    out.push_str("  > Addresses:\n");
    for address in sorted(&id.addresses) {
        let _ = writeln!(out, "    - {address}");
    }
    if !id.ipfs.error.is_empty() {
        let _ = writeln!(out, "  > IPFS ERROR: {}", id.ipfs.error);
        return out;
    }
    let _ = writeln!(out, "  > IPFS: {}", id.ipfs.id);
    for address in sorted(&id.ipfs.addresses) {
        let _ = writeln!(out, "    - {address}");
    }
    out
}

fn sorted(items: &[String]) -> Vec<&str> {
    let mut items: Vec<&str> = items.iter().map(String::as_str).collect();
    items.sort_unstable();
    items
}

/// `textFormatPrintGPInfo`: `<cid>[ | <name>]:` then one line per peer, sorted by peer id.
pub fn global_pin_info_text(info: &GlobalPinInfo) -> String {
    let mut out = String::new();
    let _ = write!(out, "{}", info.cid);
    if !info.name.is_empty() {
        let _ = write!(out, " | {}", info.name);
    }
    out.push_str(":\n");
    // peer_map is a BTreeMap, so iteration is already Go's sort.Strings order.
    for (peer, short) in &info.peer_map {
        let who = if short.peername.is_empty() {
            peer.as_str()
        } else {
            short.peername.as_str()
        };
        let _ = write!(out, "    > {:<20} : {}", who, short.status.as_str().to_uppercase());
        if !short.error.is_empty() {
            let _ = write!(out, ": {}", short.error);
        }
        let _ = writeln!(
            out,
            " | {} | Attempts: {} | Priority: {}",
            short.timestamp, short.attempt_count, short.priority_pin
        );
    }
    out
}

/// `textFormatPrintPin`: one line with type, replication, allocations, depth, metadata, expiry, age.
pub fn pin_text(pin: &Pin) -> String {
    let mut out = String::new();
    let mut kind = pin_type_name(pin.pin_type).to_uppercase();
    if pin.options.mode == PinMode::Direct {
        kind.push_str("-DIRECT");
    }
    let _ = write!(out, "{} | {} | {} | ", pin.cid, pin.options.name, kind);
    if pin.is_everywhere() {
        out.push_str("Repl. Factor: -1 | Allocations: [everywhere]");
    } else {
        let mut allocations: Vec<String> = pin.allocations.iter().map(ToString::to_string).collect();
        allocations.sort_unstable();
        // Go prints a []string with %s: `[a b c]`.
        let _ = write!(
            out,
            "Repl. Factor: {}--{} | Allocations: [{}]",
            pin.options.replication_factor_min,
            pin.options.replication_factor_max,
            allocations.join(" ")
        );
    }
    let depth = match pin.max_depth {
        0 => "Direct".to_string(),
        -1 => "Recursive".to_string(),
        n => format!("Recursive-{n}"),
    };
    let _ = write!(out, " | {depth}");
    let _ = write!(
        out,
        " | Metadata: {}",
        if pin.options.metadata.is_empty() { "no" } else { "yes" }
    );
    let expires = if pin.options.expire_at.is_zero() {
        "∞".to_string()
    } else {
        go_datetime(pin.options.expire_at)
    };
    let _ = write!(out, " | Exp: {expires}");
    let added = if pin.timestamp.is_zero() {
        "unknown".to_string()
    } else {
        go_datetime(pin.timestamp)
    };
    let _ = writeln!(out, " | Added: {added}");
    out
}

/// Go's `PinType.String()`.
fn pin_type_name(pin_type: PinType) -> &'static str {
    match pin_type {
        PinType::Bad => "bad-type",
        PinType::Data => "pin",
        PinType::Meta => "meta-pin",
        PinType::ClusterDag => "clusterdag-pin",
        PinType::Shard => "shard-pin",
    }
}

/// Go's `t.Format("2006-01-02 15:04:05")`, from the RFC3339 form `YYYY-MM-DDTHH:MM:SS...`.
fn go_datetime(time: Timestamp) -> String {
    let text = time.to_string();
    match text.get(..19) {
        Some(head) => head.replacen('T', " ", 1),
        None => text,
    }
}

/// `textFormatPrintError`.
pub fn api_error_text(error: &ApiError) -> String {
    format!(
        "An error occurred:\n  Code: {}\n  Message: {}\n",
        error.code, error.message
    )
}

/// Go's `json.MarshalIndent(obj, "", "    ")` followed by a newline. Go's encoder also escapes
/// `<`, `>`, `&`, U+2028 and U+2029 inside strings; those characters can only occur inside
/// strings in JSON, so replacing them in the whole text is safe.
pub fn json_text<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut buffer = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut buffer, formatter);
    value.serialize(&mut serializer)?;
    let text = String::from_utf8_lossy(&buffer);
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cluster_types::{Cid, IpfsId, PeerId, PinInfoShort, PinOptions, TrackerStatus};

    use super::*;

    const CID: &str = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9";

    fn cid() -> Cid {
        CID.parse().unwrap()
    }

    fn peer(seed: u8) -> PeerId {
        PeerId::from_ed25519_seed([seed; 32])
    }

    fn id() -> Id {
        Id {
            id: peer(1),
            addresses: vec!["/ip4/10.0.0.1/tcp/9096".into(), "/ip4/127.0.0.1/tcp/9096".into()],
            cluster_peers: vec![peer(1), peer(2), peer(3)],
            cluster_peers_addresses: vec![],
            version: "1.1.6".into(),
            commit: String::new(),
            rpc_protocol_version: "/ipfscluster/1.0/rpc".into(),
            error: String::new(),
            ipfs: IpfsId {
                id: "QmIpfs".into(),
                addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
                error: String::new(),
            },
            peername: "alpha".into(),
        }
    }

    #[test]
    fn id_layout() {
        let p = peer(1);
        assert_eq!(
            id_text(&id()),
            format!(
                "{p} | alpha | Sees 2 other peers\n  > Addresses:\n    - /ip4/10.0.0.1/tcp/9096\n    - /ip4/127.0.0.1/tcp/9096\n  > IPFS: QmIpfs\n    - /ip4/127.0.0.1/tcp/4001\n"
            )
        );
    }

    #[test]
    fn id_with_errors() {
        let mut broken = id();
        broken.error = "dial backoff".into();
        assert_eq!(id_text(&broken), format!("{} | ERROR: dial backoff\n", peer(1)));

        let mut no_ipfs = id();
        no_ipfs.ipfs.error = "connection refused".into();
        no_ipfs.cluster_peers.clear();
        let text = id_text(&no_ipfs);
        assert!(
            text.starts_with(&format!("{} | alpha | Sees -1 other peers\n", peer(1))),
            "{text}"
        );
        assert!(text.ends_with("  > IPFS ERROR: connection refused\n"), "{text}");
    }

    #[test]
    fn global_pin_info_layout() {
        let mut peer_map = BTreeMap::new();
        let ts: Timestamp = "2026-05-11T10:17:41.1Z".parse().unwrap();
        peer_map.insert(
            "12D3KooWB".to_string(),
            PinInfoShort {
                peername: String::new(),
                status: TrackerStatus::PinError,
                error: "context canceled".into(),
                timestamp: ts,
                attempt_count: 3,
                ..Default::default()
            },
        );
        peer_map.insert(
            "12D3KooWA".to_string(),
            PinInfoShort {
                peername: "alpha".into(),
                status: TrackerStatus::Pinned,
                timestamp: ts,
                priority_pin: true,
                ..Default::default()
            },
        );
        let info = GlobalPinInfo {
            cid: cid(),
            name: "photos".into(),
            allocations: vec![],
            origins: vec![],
            created: Timestamp::ZERO,
            metadata: BTreeMap::new(),
            peer_map,
        };
        assert_eq!(
            global_pin_info_text(&info),
            format!(
                "{CID} | photos:\n    > alpha                : PINNED | 2026-05-11T10:17:41.1Z | Attempts: 0 | Priority: true\n    > 12D3KooWB            : PIN_ERROR: context canceled | 2026-05-11T10:17:41.1Z | Attempts: 3 | Priority: false\n"
            )
        );
        let unnamed = GlobalPinInfo {
            name: String::new(),
            peer_map: BTreeMap::new(),
            ..info
        };
        assert_eq!(global_pin_info_text(&unnamed), format!("{CID}:\n"));
    }

    #[test]
    fn pin_layout() {
        let mut pin = Pin::new(
            cid(),
            PinOptions {
                name: "photos".into(),
                replication_factor_min: 1,
                replication_factor_max: 2,
                ..Default::default()
            },
        );
        pin.allocations = vec![peer(2), peer(1)];
        let mut sorted = [peer(1).to_string(), peer(2).to_string()];
        sorted.sort();
        assert_eq!(
            pin_text(&pin),
            format!(
                "{CID} | photos | PIN | Repl. Factor: 1--2 | Allocations: [{} {}] | Recursive | Metadata: no | Exp: ∞ | Added: unknown\n",
                sorted[0], sorted[1]
            )
        );

        let mut everywhere = Pin::new(
            cid(),
            PinOptions {
                replication_factor_min: -1,
                replication_factor_max: -1,
                mode: PinMode::Direct,
                ..Default::default()
            },
        );
        everywhere.options.metadata.insert("k".into(), "v".into());
        everywhere.options.expire_at = "2027-01-02T03:04:05.5Z".parse().unwrap();
        everywhere.timestamp = "2026-05-11T10:17:41Z".parse().unwrap();
        assert_eq!(
            pin_text(&everywhere),
            format!("{CID} |  | PIN-DIRECT | Repl. Factor: -1 | Allocations: [everywhere] | Direct | Metadata: yes | Exp: 2027-01-02 03:04:05 | Added: 2026-05-11 10:17:41\n")
        );

        let mut shard = Pin::new(cid(), PinOptions::default());
        shard.pin_type = PinType::Shard;
        shard.max_depth = 1;
        assert_eq!(
            pin_text(&shard),
            format!("{CID} |  | SHARD-PIN | Repl. Factor: 0--0 | Allocations: [] | Recursive-1 | Metadata: no | Exp: ∞ | Added: unknown\n")
        );
    }

    #[test]
    fn version_and_error_layout() {
        assert_eq!(
            Version {
                version: "1.1.6".into()
            }
            .to_text(),
            "1.1.6\n"
        );
        assert_eq!(
            api_error_text(&ApiError {
                code: 404,
                message: "pin is not part of the pinset".into()
            }),
            "An error occurred:\n  Code: 404\n  Message: pin is not part of the pinset\n"
        );
    }

    #[test]
    fn json_is_indented_with_four_spaces_and_escapes_like_go() {
        #[derive(Serialize)]
        struct Sample {
            html: &'static str,
            list: Vec<u8>,
            map: BTreeMap<String, String>,
            version: &'static str,
        }
        let value = Sample {
            html: "<a&b>",
            list: vec![],
            map: BTreeMap::new(),
            version: "1.1.6",
        };
        assert_eq!(
            json_text(&value).unwrap(),
            "{\n    \"html\": \"\\u003ca\\u0026b\\u003e\",\n    \"list\": [],\n    \"map\": {},\n    \"version\": \"1.1.6\"\n}\n"
        );
        let error = ApiError {
            code: 500,
            message: "boom".into(),
        };
        assert_eq!(
            json_text(&error).unwrap(),
            "{\n    \"code\": 500,\n    \"message\": \"boom\"\n}\n"
        );
    }
}
