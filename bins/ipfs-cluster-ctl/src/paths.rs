//! The request paths Go's REST client (`api/rest/client/methods.go`) builds: pins and unpins
//! by CID or IPFS path, allocations, statuses and recoveries, with their query strings.

use cluster_types::{Cid, PinOptions};

/// Percent-encodes what may not appear raw in a URI path.
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&byte);
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Percent-encodes one path segment (a metric name may hold `/` or `:`).
pub fn escape_segment(segment: &str) -> String {
    escape_path(segment).replace('/', "%2F")
}

fn escape_query(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn is_ipfs_path(path: &str) -> bool {
    let mut segments = path.split('/');
    if segments.next() != Some("") {
        return false;
    }
    let namespace = segments.next().unwrap_or("");
    let root = segments.next().unwrap_or("");
    match namespace {
        "ipfs" | "ipld" => root.parse::<Cid>().is_ok(),
        "ipns" => !root.is_empty(),
        _ => false,
    }
}

/// The IPFS path for a `pin add|rm` argument: kept when it already is `/ipfs|ipns|ipld/...`,
/// else prefixed with `/ipfs/` (Go's `PinPath`/`UnpinPath`).
pub fn ipfs_path(arg: &str) -> Result<String, String> {
    if is_ipfs_path(arg) {
        return Ok(arg.to_string());
    }
    let prefixed = format!("/ipfs/{arg}");
    if is_ipfs_path(&prefixed) {
        Ok(prefixed)
    } else {
        Err(format!(
            "invalid path {arg:?}: not a CID or an /ipfs/, /ipns/ or /ipld/ path"
        ))
    }
}

/// `POST` path of `pin add`: `/pins/ipfs/<cid>?<options>`, parameters sorted by name like Go's
/// `url.Values.Encode`.
pub fn pin_path(arg: &str, options: &PinOptions) -> Result<String, String> {
    let path = ipfs_path(arg)?;
    let mut query = options.to_query();
    query.sort_by(|a, b| a.0.cmp(&b.0));
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query)
        .finish();
    Ok(format!("/pins{}?{}", escape_path(&path), encoded))
}

/// `DELETE` path of `pin rm`: `/pins/ipfs/<cid>`.
pub fn unpin_path(arg: &str) -> Result<String, String> {
    Ok(format!("/pins{}", escape_path(&ipfs_path(arg)?)))
}

/// The `filter` value `pin ls` sends, computed as Go does: every name maps to a type flag
/// (unknown names to the bad-type flag), `all` when the result is exactly every type, else the
/// selected type names in a fixed order.
pub fn allocations_filter(text: &str) -> String {
    const TYPES: [(&str, u32); 4] = [("pin", 2), ("meta-pin", 4), ("clusterdag-pin", 8), ("shard-pin", 16)];
    const ALL: u32 = 2 | 4 | 8 | 16;
    let mut mask = 0u32;
    for name in text.split(',') {
        mask |= match name {
            "" | "all" => ALL,
            other => TYPES.iter().find(|(n, _)| *n == other).map_or(1, |(_, flag)| *flag),
        };
    }
    if mask == ALL {
        return "all".into();
    }
    TYPES
        .iter()
        .filter(|(_, flag)| mask & flag != 0)
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(",")
}

/// `GET /allocations?filter=...` (`pin ls`).
pub fn allocations_path(filter: &str) -> String {
    format!("/allocations?filter={}", escape_query(&allocations_filter(filter)))
}

/// `GET /allocations/<cid>` (`pin ls <cid>`).
pub fn allocation_path(cid: &Cid) -> String {
    format!("/allocations/{cid}")
}

/// `GET /pins/<cid>?local=<bool>` (`status <cid>`, and the `--wait` poll).
pub fn status_path(cid: &Cid, local: bool) -> String {
    format!("/pins/{cid}?local={local}")
}

/// `GET /pins?local=<bool>&filter=<filter>&cids=<a,b>` (`status`, `status a b`).
pub fn status_all_path(local: bool, filter: &str, cids: &[Cid]) -> String {
    let cids: Vec<String> = cids.iter().map(ToString::to_string).collect();
    format!(
        "/pins?local={local}&filter={}&cids={}",
        escape_query(filter),
        cids.join(",")
    )
}

/// `POST /pins/<cid>/recover?local=<bool>` (`recover <cid>`).
pub fn recover_path(cid: &Cid, local: bool) -> String {
    format!("/pins/{cid}/recover?local={local}")
}

/// `POST /pins/recover?local=<bool>` (`recover`).
pub fn recover_all_path(local: bool) -> String {
    format!("/pins/recover?local={local}")
}

#[cfg(test)]
mod tests {
    use cluster_types::PinMode;

    use super::*;

    const CID: &str = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9";

    #[test]
    fn pin_paths_follow_the_go_client() {
        let mut options = PinOptions {
            name: "my pin".into(),
            mode: PinMode::Direct,
            replication_factor_min: 1,
            replication_factor_max: 2,
            user_allocations: Some(vec![]),
            ..Default::default()
        };
        options.metadata.insert("k".into(), "v&w".into());
        assert_eq!(
            pin_path(CID, &options).unwrap(),
            format!("/pins/ipfs/{CID}?meta-k=v%26w&mode=direct&name=my+pin&replication-max=2&replication-min=1&shard-size=0&user-allocations=")
        );
        let defaults = PinOptions::default();
        assert!(pin_path(&format!("/ipfs/{CID}/a dir"), &defaults)
            .unwrap()
            .starts_with(&format!("/pins/ipfs/{CID}/a%20dir?")));
        assert!(pin_path("/ipns/example.org", &defaults)
            .unwrap()
            .starts_with("/pins/ipns/example.org?"));
        assert_eq!(unpin_path(CID).unwrap(), format!("/pins/ipfs/{CID}"));
        assert_eq!(
            unpin_path(&format!("{CID}/sub")).unwrap(),
            format!("/pins/ipfs/{CID}/sub")
        );
        assert!(ipfs_path("not-a-cid").is_err());
        assert!(ipfs_path("/ipfs/not-a-cid").is_err());
        assert!(ipfs_path("").is_err());
    }

    #[test]
    fn listing_paths_follow_the_go_client() {
        let cid: Cid = CID.parse().unwrap();
        assert_eq!(allocations_path("all"), "/allocations?filter=all");
        assert_eq!(allocations_path("pin,shard-pin"), "/allocations?filter=pin%2Cshard-pin");
        assert_eq!(allocations_filter("shard-pin,pin"), "pin,shard-pin");
        assert_eq!(allocations_filter("pin,bogus"), "pin");
        assert_eq!(allocations_filter("bogus"), "");
        assert_eq!(allocations_filter(""), "all");
        assert_eq!(allocations_filter("all,bogus"), "pin,meta-pin,clusterdag-pin,shard-pin");
        assert_eq!(allocation_path(&cid), format!("/allocations/{CID}"));
        assert_eq!(status_path(&cid, false), format!("/pins/{CID}?local=false"));
        assert_eq!(
            status_all_path(true, "pinned,error", &[]),
            "/pins?local=true&filter=pinned%2Cerror&cids="
        );
        assert_eq!(
            status_all_path(false, "", &[cid, cid]),
            format!("/pins?local=false&filter=&cids={CID},{CID}")
        );
        assert_eq!(recover_path(&cid, true), format!("/pins/{CID}/recover?local=true"));
        assert_eq!(recover_all_path(false), "/pins/recover?local=false");
    }
}
