//! The binary pin form (pinset values, Raft log entries, snapshots): any bytes decode or are
//! refused without a panic, and what decodes encodes back to a pin that decodes the same.
#![no_main]

use cluster_types::pin_codec::{decode_pin, encode_pin};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses whether the CID is in the bytes or given by the key.
    let Some((&with_cid, bytes)) = data.split_first() else {
        return;
    };
    let key_cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
        .parse()
        .ok();
    let given = if with_cid & 1 == 1 { None } else { key_cid };
    if let Ok(pin) = decode_pin(bytes, given) {
        let again = decode_pin(&encode_pin(&pin, given.is_none()), given).expect("an encoded pin decodes");
        assert_eq!(pin, again, "a decoded pin does not survive encode and decode");
    }
});
