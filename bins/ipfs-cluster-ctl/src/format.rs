//! Output formats: the text layouts of Go's `cmd/ipfs-cluster-ctl/formatters.go` (one function per
//! type, each returning the exact lines Go prints) and Go's `json.MarshalIndent(obj, "", "    ")`.
//!
//! Times print as our [`cluster_types::Timestamp`] keeps them, in UTC; Go prints them in the offset
//! the server sent (a Go server uses its local zone), so only the zone can differ.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cluster_types::{
    Alert, ApiError, Bandwidth, ConnectGraph, GlobalPinInfo, GlobalRepoGc, Id, Metric, Pin, PinMode, Timestamp, Version,
};
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
    let mut kind = pin.pin_type.as_str().to_uppercase();
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

    use cluster_types::{Cid, IpfsId, PeerId, PinInfoShort, PinOptions, PinType, TrackerStatus};

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

impl TextFormat for Metric {
    fn to_text(&self) -> String {
        metric_text(self, Timestamp::now())
    }
}

impl TextFormat for Alert {
    fn to_text(&self) -> String {
        alert_text(self, Timestamp::now())
    }
}

/// Lists print as one JSON array (Go's `jsonFormatPrint`) but item by item as text.
impl TextFormat for Vec<Metric> {
    fn to_text(&self) -> String {
        let now = Timestamp::now();
        self.iter().map(|metric| metric_text(metric, now)).collect()
    }
}

impl TextFormat for Vec<Alert> {
    fn to_text(&self) -> String {
        let now = Timestamp::now();
        self.iter().map(|alert| alert_text(alert, now)).collect()
    }
}

impl TextFormat for GlobalRepoGc {
    fn to_text(&self) -> String {
        repo_gc_text(self)
    }
}

/// A metric name list (`health metrics` without a name): one per line.
impl TextFormat for Vec<String> {
    fn to_text(&self) -> String {
        self.iter().map(|name| format!("{name}\n")).collect()
    }
}

/// `health bandwidth`: one line per protocol, sorted (Go's `textFormatPrintBandwidthByProtocol`).
impl TextFormat for BTreeMap<String, Bandwidth> {
    fn to_text(&self) -> String {
        let mut out = String::new();
        for (protocol, b) in self {
            let _ = writeln!(
                out,
                "{protocol:>25}: In: {:>7}. Out: {:>7}. RateIn: {:.2}B/s. RateOut: {:.2}B/s",
                humanize_bytes(b.total_in.max(0) as u64),
                humanize_bytes(b.total_out.max(0) as u64),
                b.rate_in,
                b.rate_out
            );
        }
        out
    }
}

/// `textFormatPrintMetric`: `<peer> | <name>: <value> | Expires in: <relative>`; free space
/// prints as a human size.
pub fn metric_text(metric: &Metric, now: Timestamp) -> String {
    let value = if metric.name == "freespace" && metric.weight > 0 {
        humanize_bytes(metric.weight as u64)
    } else {
        metric.value.clone()
    };
    format!(
        "{} | {}: {} | Expires in: {}\n",
        metric.peer,
        metric.name,
        value,
        humanize_time(metric.expire, now.unix_nanos())
    )
}

/// `textFormatPrintAlert`.
pub fn alert_text(alert: &Alert, now: Timestamp) -> String {
    format!(
        "{}: {}. Expired at: {}. Triggered at: {}\n",
        alert.metric.peer,
        alert.metric.name,
        humanize_time(alert.metric.expire, now.unix_nanos()),
        humanize_time(alert.triggered_at.unix_nanos(), now.unix_nanos())
    )
}

/// `textFormatPrintGlobalRepoGC`: per member (sorted by peer id, shown by name when it has
/// one), the removed CIDs and errors.
pub fn repo_gc_text(gc: &GlobalRepoGc) -> String {
    let mut out = String::new();
    for (peer, result) in &gc.peer_map {
        let who = if result.peername.is_empty() {
            peer.as_str()
        } else {
            result.peername.as_str()
        };
        if result.error.is_empty() {
            let _ = writeln!(out, "{who:<15}");
        } else {
            let _ = writeln!(out, "{who:<15} | ERROR: {}", result.error);
        }
        out.push_str("  > CIDs:\n");
        for key in &result.keys {
            if !key.error.is_empty() {
                let _ = writeln!(out, "    - ERROR: {}", key.error);
            } else if let Some(cid) = &key.key {
                let _ = writeln!(out, "    - {cid}");
            }
        }
    }
    out
}

/// go-humanize `Bytes`: SI units, one decimal below 10.
pub fn humanize_bytes(size: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if size < 10 {
        return format!("{size} B");
    }
    let exponent = ((size as f64).ln() / 1000f64.ln()).floor() as usize;
    let exponent = exponent.min(UNITS.len() - 1);
    let value = (size as f64 / 1000f64.powi(exponent as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[exponent])
    } else {
        format!("{value:.0} {}", UNITS[exponent])
    }
}

/// go-humanize `Time`: how far `then` is from `now`, as "3 minutes ago" or "30 seconds from now".
pub fn humanize_time(then_nanos: i64, now_nanos: i64) -> String {
    const SECOND: i64 = 1;
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    const WEEK: i64 = 7 * DAY;
    const MONTH: i64 = 30 * DAY;
    const YEAR: i64 = 12 * MONTH;
    let (seconds, label) = if then_nanos <= now_nanos {
        ((now_nanos - then_nanos) / 1_000_000_000, "ago")
    } else {
        ((then_nanos - now_nanos) / 1_000_000_000, "from now")
    };
    // (below this many seconds, format, divisor); a divisor of 0 prints the format as is.
    let magnitudes: [(i64, &str, i64); 16] = [
        (SECOND, "now", 0),
        (2 * SECOND, "1 second", 0),
        (MINUTE, "seconds", SECOND),
        (2 * MINUTE, "1 minute", 0),
        (HOUR, "minutes", MINUTE),
        (2 * HOUR, "1 hour", 0),
        (DAY, "hours", HOUR),
        (2 * DAY, "1 day", 0),
        (WEEK, "days", DAY),
        (2 * WEEK, "1 week", 0),
        (MONTH, "weeks", WEEK),
        (2 * MONTH, "1 month", 0),
        (YEAR, "months", MONTH),
        (18 * MONTH, "1 year", 0),
        (2 * YEAR, "2 years", 0),
        (37 * YEAR, "years", YEAR),
    ];
    for (limit, text, divisor) in magnitudes {
        if seconds < limit {
            return match (text, divisor) {
                ("now", _) => "now".to_string(),
                (text, 0) => format!("{text} {label}"),
                (unit, divisor) => format!("{} {unit} {label}", seconds / divisor),
            };
        }
    }
    format!("a long while {label}")
}

/// `health graph`: the connectivity graph as the Graphviz dot file Go's `graph.go` writes:
/// cluster peers (self with a double border), then IPFS daemons, then the edges among peers,
/// from peers to their daemons (dotted when the daemon could not be reached) and among
/// daemons. Without `all_ipfs_peers`, only daemons of cluster members are drawn. Like Go, no
/// newline after the closing brace.
pub fn graph_dot(graph: &ConnectGraph, all_ipfs_peers: bool) -> String {
    fn shorten(id: &str) -> String {
        if id.len() <= 8 || !id.is_ascii() {
            return id.to_string();
        }
        format!("{}*{}", &id[..2], &id[id.len() - 6..])
    }
    fn node(name: &str, first: &str, second: &str, group: &str, color: &str, shape: &str, extra: &str) -> String {
        format!(
            "{name} [label=< <B> {first} </B> <BR/> <B> {second} </B> > group=\"{group}\" color=\"{color}\" style=\"filled\" colorscheme=\"x11\" fontcolor=\"black\" fontname=\"Arial\" shape=\"{shape}\" {extra}]\n"
        )
    }
    let mut out = String::from(
        "digraph cluster {\n/* The nodes of the connectivity graph */\n/* The cluster-service peers */\nsubgraph  {\nrank=\"min\"\n",
    );
    // Go's makeDot, step by step: cluster nodes are the keys of cluster_links, in order; the
    // contacted member is C<n>, trusted ones (every member under Raft) T<n>, others C<n>.
    let self_id = graph.cluster_id.to_string();
    let mut cluster_nodes: BTreeMap<&str, String> = BTreeMap::new();
    for (i, id) in graph.cluster_links.keys().enumerate() {
        let peername = graph.id_to_peername.get(id).map(String::as_str).unwrap_or("");
        let (name, color, extra) = if *id == self_id {
            (format!("C{i}"), "orange", "peripheries=\"2\" ")
        } else if graph.cluster_trust_links.get(id).copied().unwrap_or(false) {
            (format!("T{i}"), "orange", "")
        } else {
            (format!("C{i}"), "darkorange3", "")
        };
        out.push_str(&node(&name, peername, &shorten(id), id, color, "box3d", extra));
        cluster_nodes.insert(id.as_str(), name);
    }
    out.push_str("}\n\n/* The ipfs peers */\nsubgraph  {\nrank=\"max\"\n");
    // IPFS nodes: the daemons that reported their swarm peers, and with all_ipfs_peers every
    // peer they named; an edge only between two of those.
    let mut ipfs_edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, links) in &graph.ipfs_links {
        let mut kept = Vec::new();
        for to in links {
            if all_ipfs_peers || graph.ipfs_links.contains_key(to) {
                kept.push(to.as_str());
            }
            if all_ipfs_peers {
                ipfs_edges.entry(to.as_str()).or_default();
            }
        }
        ipfs_edges.insert(from.as_str(), kept);
    }
    let mut ipfs_nodes: BTreeMap<&str, String> = BTreeMap::new();
    for id in ipfs_edges.keys() {
        let name = format!("I{}", ipfs_nodes.len());
        out.push_str(&node(&name, "IPFS", &shorten(id), id, "turquoise3", "cylinder", ""));
        ipfs_nodes.insert(id, name);
    }
    // A member whose daemon did not answer gets an "Errored" daemon node, keyed by the member.
    let mut errored: BTreeMap<&str, String> = BTreeMap::new();
    for id in graph.cluster_links.keys() {
        if !graph.cluster_to_ipfs.contains_key(id) {
            let name = format!("I{}", ipfs_nodes.len() + errored.len());
            out.push_str(&node(&name, "IPFS", "Errored", id, "firebrick1", "cylinder", ""));
            errored.insert(id.as_str(), name);
        }
    }
    out.push_str(
        "}\n\n/* Edges representing active connections in the cluster */\n/* The connections among cluster-service peers */\n",
    );
    for (from, links) in &graph.cluster_links {
        let from_node = &cluster_nodes[from.as_str()];
        for to in links {
            if let Some(to_node) = cluster_nodes.get(to.to_string().as_str()) {
                let _ = writeln!(out, "{from_node} -> {to_node}");
            }
        }
    }
    out.push_str("\n/* The connections between cluster peers and their ipfs daemons */\n");
    for id in graph.cluster_links.keys() {
        let member = &cluster_nodes[id.as_str()];
        match graph.cluster_to_ipfs.get(id) {
            None => {
                if let Some(daemon) = errored.get(id.as_str()) {
                    let _ = writeln!(out, "{member} -> {daemon} [ style=\"dotted\" ]");
                }
            }
            Some(daemon) => {
                if let Some(daemon) = ipfs_nodes.get(daemon.as_str()) {
                    let _ = writeln!(out, "{member} -> {daemon}");
                }
            }
        }
    }
    out.push_str("\n/* The swarm peer connections among ipfs daemons in the cluster */\n");
    for (from, links) in &ipfs_edges {
        let from_node = &ipfs_nodes[from];
        for to in links {
            if let Some(to_node) = ipfs_nodes.get(to) {
                let _ = writeln!(out, "{from_node} -> {to_node}");
            }
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod health_format_tests {
    use super::*;

    #[test]
    fn humanize_matches_go_humanize() {
        assert_eq!(humanize_bytes(5), "5 B");
        assert_eq!(humanize_bytes(82_854_982), "83 MB");
        assert_eq!(humanize_bytes(1_234_567_890), "1.2 GB");
        assert_eq!(humanize_bytes(999), "999 B");
        let now = 1_000_000_000_000_000_000i64;
        let s = 1_000_000_000i64;
        assert_eq!(humanize_time(now, now), "now");
        assert_eq!(humanize_time(now + 30 * s, now), "30 seconds from now");
        assert_eq!(humanize_time(now - 90 * s, now), "1 minute ago");
        assert_eq!(humanize_time(now - 3 * 3600 * s, now), "3 hours ago");
        assert_eq!(humanize_time(now + s, now), "1 second from now");
    }

    #[test]
    fn graph_is_the_dot_file_go_writes() {
        let a: cluster_types::PeerId = "12D3KooWQYaGw4V3Tk8XQnC8qzYHq1bvrXPWdrpaVZMj7hEqN9Pj".parse().unwrap();
        let b: cluster_types::PeerId = "12D3KooWSpgC9ZKgHBGRPnXCLBhKUqkLtyPXYPQiDMfPFdfEyiCG".parse().unwrap();
        let graph = ConnectGraph {
            cluster_id: a,
            id_to_peername: BTreeMap::from([(a.to_string(), "alpha".into()), (b.to_string(), String::new())]),
            ipfs_links: BTreeMap::from([("QmIpfsA123456".to_string(), vec!["QmOutside99999".to_string()])]),
            cluster_links: BTreeMap::from([(a.to_string(), vec![b]), (b.to_string(), vec![a])]),
            cluster_trust_links: BTreeMap::from([(a.to_string(), true), (b.to_string(), true)]),
            cluster_to_ipfs: BTreeMap::from([(a.to_string(), "QmIpfsA123456".to_string())]),
        };
        let dot = graph_dot(&graph, false);
        let expected = format!(
            "digraph cluster {{\n/* The nodes of the connectivity graph */\n/* The cluster-service peers */\nsubgraph  {{\nrank=\"min\"\n\
C0 [label=< <B> alpha </B> <BR/> <B> 12*EqN9Pj </B> > group=\"{a}\" color=\"orange\" style=\"filled\" colorscheme=\"x11\" fontcolor=\"black\" fontname=\"Arial\" shape=\"box3d\" peripheries=\"2\" ]\n\
T1 [label=< <B>  </B> <BR/> <B> 12*fEyiCG </B> > group=\"{b}\" color=\"orange\" style=\"filled\" colorscheme=\"x11\" fontcolor=\"black\" fontname=\"Arial\" shape=\"box3d\" ]\n\
}}\n\n/* The ipfs peers */\nsubgraph  {{\nrank=\"max\"\n\
I0 [label=< <B> IPFS </B> <BR/> <B> Qm*123456 </B> > group=\"QmIpfsA123456\" color=\"turquoise3\" style=\"filled\" colorscheme=\"x11\" fontcolor=\"black\" fontname=\"Arial\" shape=\"cylinder\" ]\n\
I1 [label=< <B> IPFS </B> <BR/> <B> Errored </B> > group=\"{b}\" color=\"firebrick1\" style=\"filled\" colorscheme=\"x11\" fontcolor=\"black\" fontname=\"Arial\" shape=\"cylinder\" ]\n\
}}\n\n/* Edges representing active connections in the cluster */\n/* The connections among cluster-service peers */\n\
C0 -> T1\nT1 -> C0\n\n/* The connections between cluster peers and their ipfs daemons */\n\
C0 -> I0\nT1 -> I1 [ style=\"dotted\" ]\n\n/* The swarm peer connections among ipfs daemons in the cluster */\n}}"
        );
        assert_eq!(dot, expected);
        // With every IPFS peer, the outside daemon and its link appear.
        let all = graph_dot(&graph, true);
        assert!(all.contains("QmOutside99999"), "{all}");
        assert!(all.contains("I0 -> I1\n"), "{all}");
    }

    #[test]
    fn repo_gc_lists_each_member_by_name() {
        let peer: cluster_types::PeerId = "12D3KooWQYaGw4V3Tk8XQnC8qzYHq1bvrXPWdrpaVZMj7hEqN9Pj".parse().unwrap();
        let cid: cluster_types::Cid = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH".parse().unwrap();
        let gc = GlobalRepoGc {
            peer_map: BTreeMap::from([(
                peer.to_string(),
                cluster_types::RepoGc {
                    peer,
                    peername: "alpha".into(),
                    keys: vec![
                        cluster_types::RepoGcKey {
                            key: Some(cid),
                            error: String::new(),
                        },
                        cluster_types::RepoGcKey {
                            key: None,
                            error: "locked".into(),
                        },
                    ],
                    error: String::new(),
                },
            )]),
        };
        assert_eq!(
            repo_gc_text(&gc),
            format!("alpha          \n  > CIDs:\n    - {cid}\n    - ERROR: locked\n")
        );
    }
}
