//! Requests of the REST API as its router sees them: the route table, path segments, the query
//! string, and the values routes take (CIDs, peer ids, allocation filters), with the
//! [`Failure`] a bad one gives. The fuzz target `rest_request` drives these (see
//! [`crate::fuzz_entry`]).

use cluster_types::{Cid, ClusterError, PeerId, PinOptions, PinType, Timestamp};
use hyper::{Method, StatusCode};

/// The path forms a pin route may take after `/pins/` (reference §1.5 `{keyType}`).
const PATH_KEY_TYPES: [&str; 3] = ["ipfs", "ipns", "ipld"];

/// A matched route and its path arguments (still undecoded as CIDs: that is each handler's job).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Id,
    Version,
    Peers,
    StatusAll,
    RecoverAll,
    Recover(String),
    Status(String),
    Pin(String),
    Unpin(String),
    PinPath(String),
    UnpinPath(String),
    Allocations,
    Allocation(String),
    Health,
    PeerAdd,
    PeerRemove(String),
    MetricNames,
    Metrics(String),
    Alerts,
    Graph,
    Bandwidth,
    RepoGc,
    Token,
    Add,
}

/// Why no route matched.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoRoute {
    NotFound,
    /// The path exists but not with this method; the value lists the allowed methods.
    MethodNotAllowed(&'static str),
}

/// Matches a request against the route table. `segments` are the percent-decoded path segments.
pub(crate) fn route(method: &Method, segments: &[String]) -> Result<Route, NoRoute> {
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let only = |allowed: &'static str, m: &Method, r: Route| -> Result<Route, NoRoute> {
        if allowed.split(", ").any(|a| a == m.as_str()) {
            Ok(r)
        } else {
            Err(NoRoute::MethodNotAllowed(allowed))
        }
    };
    match segs.as_slice() {
        ["id"] => only("GET", method, Route::Id),
        ["version"] => only("GET", method, Route::Version),
        ["peers"] => match *method {
            Method::GET => Ok(Route::Peers),
            Method::POST => Ok(Route::PeerAdd),
            _ => Err(NoRoute::MethodNotAllowed("GET, POST")),
        },
        ["peers", peer] => only("DELETE", method, Route::PeerRemove(peer.to_string())),
        ["health"] => only("GET", method, Route::Health),
        ["health", "graph"] => only("GET", method, Route::Graph),
        ["health", "alerts"] => only("GET", method, Route::Alerts),
        ["health", "bandwidth"] => only("GET", method, Route::Bandwidth),
        ["monitor", "metrics"] => only("GET", method, Route::MetricNames),
        ["monitor", "metrics", name] => only("GET", method, Route::Metrics(name.to_string())),
        ["ipfs", "gc"] => only("POST", method, Route::RepoGc),
        ["token"] => only("POST", method, Route::Token),
        ["add"] => only("POST", method, Route::Add),
        ["allocations"] => only("GET", method, Route::Allocations),
        ["allocations", cid] => only("GET", method, Route::Allocation(cid.to_string())),
        ["pins"] => only("GET", method, Route::StatusAll),
        // Checked before `/pins/{cid}` so that `recover` is never taken for a CID.
        ["pins", "recover"] => only("POST", method, Route::RecoverAll),
        ["pins", key_type, rest @ ..] if !rest.is_empty() && PATH_KEY_TYPES.contains(key_type) => {
            let path = format!("/{}/{}", key_type, rest.join("/"));
            match *method {
                Method::POST => Ok(Route::PinPath(path)),
                Method::DELETE => Ok(Route::UnpinPath(path)),
                _ => Err(NoRoute::MethodNotAllowed("POST, DELETE")),
            }
        }
        ["pins", cid, "recover"] => only("POST", method, Route::Recover(cid.to_string())),
        ["pins", cid] => match *method {
            Method::GET => Ok(Route::Status(cid.to_string())),
            Method::POST => Ok(Route::Pin(cid.to_string())),
            Method::DELETE => Ok(Route::Unpin(cid.to_string())),
            _ => Err(NoRoute::MethodNotAllowed("GET, POST, DELETE")),
        },
        _ => Err(NoRoute::NotFound),
    }
}

/// Splits an absolute path into percent-decoded segments. `None` for a path that is not absolute
/// or does not decode to UTF-8.
pub(crate) fn path_segments(path: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    rest.split('/')
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        })
        .collect()
}

/// A request rejected before reaching the backend, or a backend error: status and message.
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn bad_request(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<ClusterError> for Failure {
    fn from(error: ClusterError) -> Failure {
        Failure {
            status: StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: error.to_string(),
        }
    }
}

/// Parsed query string: pairs in order, form-decoded (`+` is a space, as in Go's `url.ParseQuery`).
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(query: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `key` (Go's `Values.Get`); empty when absent.
    pub(crate) fn get(&self, key: &str) -> &str {
        self.find(key).unwrap_or("")
    }

    /// The first value of `key`, if the query has it.
    pub(crate) fn find(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub(crate) fn pin_options(&self) -> Result<PinOptions, Failure> {
        PinOptions::from_query(self.pairs(), Timestamp::now()).map_err(|e| Failure::bad_request(e.to_string()))
    }

    /// `local`: exactly `true`, as Go's handlers compare it; any other value means cluster-wide.
    pub(crate) fn local(&self) -> bool {
        self.get("local") == "true"
    }
}

pub(crate) fn parse_cid(text: &str) -> Result<Cid, Failure> {
    text.parse::<Cid>()
        .map_err(|e| Failure::bad_request(format!("error decoding Cid: {e}")))
}

/// `/allocations?filter=`: empty selects everything; a list naming no known type is a 400, like Go.
pub(crate) fn allocation_filter(text: &str) -> Result<u32, Failure> {
    let mut names = text.split(',').map(str::trim).filter(|n| !n.is_empty()).peekable();
    if names.peek().is_some()
        && !names.any(|n| matches!(n, "pin" | "meta-pin" | "clusterdag-pin" | "shard-pin" | "all"))
    {
        return Err(Failure::bad_request("invalid filter value"));
    }
    Ok(PinType::filter_mask(text))
}

/// User input quoted in an error: at most 100 characters of it.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(100) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

pub(crate) fn parse_peer(text: &str) -> Result<PeerId, Failure> {
    text.parse::<PeerId>()
        .map_err(|e| Failure::bad_request(format!("error decoding peer ID {:?}: {e}", shortened(text))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(path: &str) -> Vec<String> {
        path_segments(path).unwrap()
    }

    #[test]
    fn routes_match_reference_table() {
        let cid = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9";
        assert_eq!(route(&Method::POST, &segs("/pins/recover")), Ok(Route::RecoverAll));
        assert_eq!(
            route(&Method::GET, &segs("/pins/recover")),
            Err(NoRoute::MethodNotAllowed("POST"))
        );
        assert_eq!(
            route(&Method::POST, &segs(&format!("/pins/{cid}/recover"))),
            Ok(Route::Recover(cid.into()))
        );
        assert_eq!(
            route(&Method::POST, &segs(&format!("/pins/ipfs/{cid}/a/b"))),
            Ok(Route::PinPath(format!("/ipfs/{cid}/a/b")))
        );
        assert_eq!(
            route(&Method::DELETE, &segs("/pins/ipns/example.com")),
            Ok(Route::UnpinPath("/ipns/example.com".into()))
        );
        assert_eq!(
            route(&Method::GET, &segs("/pins/ipld")),
            Ok(Route::Status("ipld".into()))
        );
        assert_eq!(route(&Method::GET, &segs("/")), Err(NoRoute::NotFound));
        assert_eq!(route(&Method::GET, &segs("/pins/a/b/c")), Err(NoRoute::NotFound));
        assert_eq!(
            route(&Method::PUT, &segs("/health")),
            Err(NoRoute::MethodNotAllowed("GET"))
        );
    }

    #[test]
    fn path_segments_decode_percent_escapes() {
        assert_eq!(segs("/pins/ipns/a%20b+c"), vec!["pins", "ipns", "a b+c"]);
        assert_eq!(path_segments("/pins/%FF"), None);
        assert_eq!(path_segments("*"), None);
        assert_eq!(segs("/"), Vec::<String>::new());
    }

    #[test]
    fn local_is_exactly_true_as_in_go() {
        for (text, want) in [
            ("", false),
            ("true", true),
            ("1", false),
            ("True", false),
            ("yes", false),
        ] {
            let q = Query::parse(Some(&format!("local={text}")));
            assert_eq!(q.local(), want, "{text}");
        }
        assert!(!Query::parse(None).local());
    }

    #[test]
    fn allocation_filter_rejects_only_unknown_lists() {
        assert_eq!(allocation_filter("").ok(), Some(2 | 4 | 8 | 16));
        assert_eq!(allocation_filter("pin").ok(), Some(2));
        assert_eq!(allocation_filter("pin,bogus").ok(), Some(2));
        assert!(allocation_filter("bogus").is_err());
    }
}
