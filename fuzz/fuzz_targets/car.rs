//! A CAR file (`/add?format=car`), pushed in chunks: blocks are verified against their CIDs or
//! the file is refused, without a panic and without allocating what a header only claims.
//!
//! Input: one byte of chunk size, then the file.
#![no_main]

use cluster_adder::CarDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, file)) = data.split_first() else {
        return;
    };
    let mut decoder = CarDecoder::new();
    for piece in file.chunks(usize::from(chunk) + 1) {
        if decoder.push(piece).is_err() {
            return;
        }
    }
    let _ = decoder.finish();
});
