//! A REST request line, `METHOD target`: routing, path decoding and every query parameter the
//! chosen route reads (pin options, filters, CIDs, peer ids, add parameters).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (method, target) = text.split_once(' ').unwrap_or(("GET", text));
    cluster_api::fuzz_entry::rest_request(method, target);
});
