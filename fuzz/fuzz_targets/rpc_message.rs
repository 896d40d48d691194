//! Member-to-member RPC messages, as any peer holding the cluster secret can send them: a request
//! or a response decodes or is refused without a panic, and what decodes encodes to bytes that
//! decode to the same encoding.
#![no_main]

use cluster_rpc::wire::{decode_request, decode_response, encode_request, encode_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode_request(data) {
        let bytes = encode_request(&request);
        let again = decode_request(&bytes).expect("an encoded request decodes");
        assert_eq!(bytes, encode_request(&again), "a request changed on its way round");
    }
    if let Ok(response) = decode_response(data) {
        let bytes = encode_response(&response);
        let again = decode_response(&bytes).expect("an encoded response decodes");
        assert_eq!(bytes, encode_response(&again), "a response changed on its way round");
    }
});
