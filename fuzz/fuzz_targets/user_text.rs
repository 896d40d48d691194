//! Text a user types or a URL carries: CIDs, peer ids, timestamps, status names and filters,
//! multiaddrs and listen addresses. Parsing never panics, and what parses prints back to text
//! that parses to the same value.
#![no_main]

use cluster_types::{tcp_address, Cid, HttpAddress, PeerId, Timestamp, TrackerStatus, TrackerStatusFilter};
use libfuzzer_sys::fuzz_target;

fn reparses<T: std::str::FromStr + ToString + PartialEq + std::fmt::Debug>(text: &str) {
    if let Ok(value) = text.parse::<T>() {
        let printed = value.to_string();
        let again = printed.parse::<T>().ok();
        assert_eq!(Some(&value), again.as_ref(), "{text:?} printed as {printed:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    reparses::<Cid>(text);
    reparses::<PeerId>(text);
    reparses::<Timestamp>(text);
    let _ = text.parse::<TrackerStatus>();
    let _ = TrackerStatusFilter::parse(text);
    let _ = text.parse::<multiaddr::Multiaddr>();
    let _ = HttpAddress::parse(text);
    let _ = tcp_address(text);
});
