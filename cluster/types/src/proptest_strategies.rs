//! Property tests: every wire type survives JSON encode → decode unchanged, and a pin its
//! binary form ([`crate::pin_codec`]).

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::strategies::*;
use crate::*;

fn round_trip<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("decoding {json}: {e}"));
    assert_eq!(&back, value, "{json}");
}

proptest! {
    #[test]
    fn cid_round_trips(cid in cid_strategy()) {
        round_trip(&cid);
        prop_assert_eq!(Cid::from_bytes(&cid.to_bytes()).unwrap(), cid);
    }

    #[test]
    fn timestamp_round_trips(t in timestamp_strategy()) { round_trip(&t); }

    #[test]
    fn pin_round_trips(pin in pin_strategy()) {
        round_trip(&pin.options);
        round_trip(&pin);
        let cid = pin.cid;
        // The store's binary form, with and without the CID.
        prop_assert_eq!(&crate::pin_codec::decode_pin(&crate::pin_codec::encode_pin(&pin, true), None).unwrap(), &pin);
        prop_assert_eq!(&crate::pin_codec::decode_pin(&crate::pin_codec::encode_pin(&pin, false), Some(cid)).unwrap(), &pin);
    }

    #[test]
    fn pin_info_round_trips(info in pin_info_strategy(), other in short_strategy(), other_peer in peer_strategy()) {
        round_trip(&info);
        let mut global = info.into_global();
        global.peer_map.insert(other_peer.to_string(), other);
        round_trip(&global);
    }

    #[test]
    fn cluster_error_round_trips(error in cluster_error_strategy()) { round_trip(&error); }

    #[test]
    fn status_round_trips(status in status_strategy()) { round_trip(&status); }

    #[test]
    fn id_round_trips(id in id_strategy()) { round_trip(&id); }

    #[test]
    fn metric_and_alert_round_trip(metric in metric_strategy(), t in timestamp_strategy()) {
        round_trip(&metric);
        round_trip(&Alert { metric, triggered_at: t });
    }

    #[test]
    fn version_and_error_round_trip(v in text(), code in 100u16..600, msg in text()) {
        round_trip(&Version { version: v });
        round_trip(&ApiError { code, message: msg });
    }

    #[test]
    fn metadata_map_round_trips(m in proptest::collection::btree_map(text(), text(), 0..5)) {
        let options = PinOptions { metadata: m.clone(), ..Default::default() };
        let back: PinOptions = serde_json::from_str(&serde_json::to_string(&options).unwrap()).unwrap();
        prop_assert_eq!(back.metadata, m);
        let _unused: BTreeMap<String, String> = BTreeMap::new();
    }
}
