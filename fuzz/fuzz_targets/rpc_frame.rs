//! The RPC stream as it arrives from a peer: length-prefixed frames, each decoded as a request.
//! A lying length is refused before allocating; nothing panics.
#![no_main]

use cluster_p2p::read_frame;
use cluster_rpc::wire::decode_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut stream = futures::io::Cursor::new(data);
    futures::executor::block_on(async {
        while let Ok(frame) = read_frame(&mut stream).await {
            let _ = decode_request(&frame);
        }
    });
});
