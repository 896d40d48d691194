//! service.json: any text parses and validates into a member's configuration, or is refused with
//! an error, never a panic.
#![no_main]

use cluster_node::ServiceConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = ServiceConfig::parse(text, "service.json") {
        let _ = config.warnings();
        let _ = config.validate();
    }
});
