//! Property tests: every wire type survives JSON encode → decode unchanged, and a pin its
//! binary form ([`crate::pin_codec`]).

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::*;

fn cid_strategy() -> impl Strategy<Value = Cid> {
    (
        any::<[u8; 32]>(),
        any::<bool>(),
        prop_oneof![Just(0x55u64), Just(0x70u64), Just(0x71u64)],
    )
        .prop_map(|(digest, v0, codec)| {
            let mh = multihash::Multihash::<64>::wrap(0x12, &digest).unwrap();
            if v0 {
                Cid(::cid::Cid::new_v0(mh).unwrap())
            } else {
                Cid(::cid::Cid::new_v1(codec, mh))
            }
        })
}

fn peer_strategy() -> impl Strategy<Value = PeerId> {
    any::<[u8; 32]>().prop_map(PeerId::from_ed25519_seed)
}

fn timestamp_strategy() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        Just(Timestamp::ZERO),
        (-62_135_596_800i64..253_402_300_799i64, 0u32..1_000_000_000).prop_map(|(s, n)| Timestamp::from_unix(s, n)),
    ]
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _\\-\u{e9}\u{4e2d}\"\\\\]{0,12}"
}

fn options_strategy() -> impl Strategy<Value = PinOptions> {
    (
        (-1i32..10, -1i32..10, text(), any::<bool>(), any::<u64>()),
        proptest::option::of(proptest::collection::vec(peer_strategy(), 0..3)),
        timestamp_strategy(),
        proptest::collection::btree_map(text(), text(), 0..3),
        proptest::option::of(cid_strategy()),
        proptest::collection::vec(
            peer_strategy().prop_map(|p| format!("/ip4/127.0.0.1/tcp/4001/p2p/{p}")),
            0..2,
        ),
    )
        .prop_map(
            |((min, max, name, direct, shard_size), user_allocations, expire_at, metadata, pin_update, origins)| {
                PinOptions {
                    replication_factor_min: min,
                    replication_factor_max: max,
                    name,
                    mode: if direct { PinMode::Direct } else { PinMode::Recursive },
                    shard_size,
                    user_allocations,
                    expire_at,
                    metadata,
                    pin_update,
                    origins,
                }
            },
        )
}

fn pin_type_strategy() -> impl Strategy<Value = PinType> {
    prop_oneof![
        Just(PinType::Bad),
        Just(PinType::Data),
        Just(PinType::Meta),
        Just(PinType::ClusterDag),
        Just(PinType::Shard)
    ]
}

fn status_strategy() -> impl Strategy<Value = TrackerStatus> {
    (0usize..13).prop_map(|i| TrackerStatus::ALL[i])
}

fn short_strategy() -> impl Strategy<Value = PinInfoShort> {
    (
        text(),
        text(),
        proptest::collection::vec(text(), 0..2),
        status_strategy(),
        timestamp_strategy(),
        text(),
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(
            |(peername, ipfs_peer_id, ipfs_peer_addresses, status, timestamp, error, attempt_count, priority_pin)| {
                PinInfoShort {
                    peername,
                    ipfs_peer_id,
                    ipfs_peer_addresses,
                    status,
                    timestamp,
                    error,
                    attempt_count,
                    priority_pin,
                }
            },
        )
}

fn metric_strategy() -> impl Strategy<Value = Metric> {
    (
        text(),
        peer_strategy(),
        text(),
        any::<i64>(),
        any::<bool>(),
        any::<i64>(),
        any::<bool>(),
        any::<i64>(),
    )
        .prop_map(
            |(name, peer, value, expire, valid, weight, partitionable, received_at)| Metric {
                name,
                peer,
                value,
                expire,
                valid,
                weight,
                partitionable,
                received_at,
            },
        )
}

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
    fn pin_round_trips(
        options in options_strategy(),
        cid in cid_strategy(),
        pin_type in pin_type_strategy(),
        allocations in proptest::collection::vec(peer_strategy(), 0..4),
        max_depth in -1i32..5,
        reference in proptest::option::of(cid_strategy()),
        timestamp in timestamp_strategy(),
    ) {
        round_trip(&options);
        let pin = Pin { options, cid, pin_type, allocations, max_depth, reference, timestamp };
        round_trip(&pin);
        // The store's binary form, with and without the CID.
        prop_assert_eq!(&crate::pin_codec::decode_pin(&crate::pin_codec::encode_pin(&pin, true), None).unwrap(), &pin);
        prop_assert_eq!(&crate::pin_codec::decode_pin(&crate::pin_codec::encode_pin(&pin, false), Some(cid)).unwrap(), &pin);
    }

    #[test]
    fn pin_info_round_trips(cid in cid_strategy(), peer in peer_strategy(), short in short_strategy(), other in short_strategy(), other_peer in peer_strategy()) {
        let info = PinInfo::new(cid, peer, None, short);
        round_trip(&info);
        let mut global = info.into_global();
        global.peer_map.insert(other_peer.to_string(), other);
        round_trip(&global);
    }

    #[test]
    fn status_round_trips(status in status_strategy()) { round_trip(&status); }

    #[test]
    fn id_round_trips(id in peer_strategy(), peers in proptest::collection::vec(peer_strategy(), 0..3), name in text(), err in text(), ipfs in text()) {
        round_trip(&Id {
            id,
            addresses: vec![format!("/ip4/127.0.0.1/tcp/9096/p2p/{id}")],
            cluster_peers: peers,
            cluster_peers_addresses: vec![],
            version: VERSION.into(),
            commit: String::new(),
            rpc_protocol_version: RPC_PROTOCOL_VERSION.into(),
            error: err.clone(),
            ipfs: IpfsId { id: ipfs, addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()], error: err },
            peername: name,
        });
    }

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
