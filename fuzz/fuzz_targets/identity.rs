//! identity.json: a peer id and its private key, read or refused without a panic.
#![no_main]

use cluster_node::Identity;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(identity) = Identity::from_json(text, "identity.json") {
        let again = Identity::from_json(&identity.to_json(), "identity.json").expect("a written identity reads back");
        assert_eq!(identity.to_json(), again.to_json());
    }
});
