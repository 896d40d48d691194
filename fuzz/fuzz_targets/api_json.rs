//! JSON bodies of the REST API and of stored files: any bytes decode or are refused without a
//! panic, and what decodes survives encode and decode unchanged.
#![no_main]

use cluster_types::{
    AddedOutput, Alert, ApiError, GlobalPinInfo, GlobalRepoGc, Id, Metric, Pin, PinInfo, RepoGc, Timestamp,
    TrackerStatus, Version,
};
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(bytes) {
        let text = serde_json::to_vec(&value).expect("a decoded value encodes");
        let again: T = serde_json::from_slice(&text).expect("an encoded value decodes");
        assert_eq!(value, again, "{}", String::from_utf8_lossy(&text));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 12 {
        0 => round_trip::<Pin>(bytes),
        1 => round_trip::<PinInfo>(bytes),
        2 => round_trip::<GlobalPinInfo>(bytes),
        3 => round_trip::<Id>(bytes),
        4 => round_trip::<Metric>(bytes),
        5 => round_trip::<Alert>(bytes),
        6 => round_trip::<AddedOutput>(bytes),
        7 => round_trip::<ApiError>(bytes),
        8 => round_trip::<Version>(bytes),
        9 => round_trip::<Timestamp>(bytes),
        10 => round_trip::<TrackerStatus>(bytes),
        _ => {
            round_trip::<RepoGc>(bytes);
            round_trip::<GlobalRepoGc>(bytes);
        }
    }
});
