//! A Raft log entry as read back from disk: damaged bytes are refused as corruption, never a
//! panic.
#![no_main]

use cluster_consensus::decode_log_entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_log_entry(data);
});
