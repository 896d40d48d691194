//! proptest strategies for the wire types, shared by the property tests of this crate and of
//! cluster-rpc (whose tests include this file by path, so it names the crate `cluster_types`).

use proptest::prelude::*;

use cluster_types::*;

pub fn cid_strategy() -> impl Strategy<Value = Cid> {
    (
        any::<[u8; 32]>(),
        any::<bool>(),
        prop_oneof![Just(0x55u64), Just(0x70u64), Just(0x71u64)],
    )
        .prop_map(|(digest, v0, codec)| {
            // sha2-256 multihash; a CIDv1 adds its version and codec (each one varint byte).
            let mut bytes = if v0 { vec![] } else { vec![0x01, codec as u8] };
            bytes.extend_from_slice(&[0x12, 0x20]);
            bytes.extend_from_slice(&digest);
            Cid::from_bytes(&bytes).expect("a well-formed CID")
        })
}

pub fn peer_strategy() -> impl Strategy<Value = PeerId> {
    any::<[u8; 32]>().prop_map(PeerId::from_ed25519_seed)
}

pub fn timestamp_strategy() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        Just(Timestamp::ZERO),
        (-62_135_596_800i64..253_402_300_799i64, 0u32..1_000_000_000).prop_map(|(s, n)| Timestamp::from_unix(s, n)),
    ]
}

pub fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _\\-\u{e9}\u{4e2d}\"\\\\]{0,12}"
}

pub fn options_strategy() -> impl Strategy<Value = PinOptions> {
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
                    pin_update: pin_update.map(Box::new),
                    origins,
                }
            },
        )
}

pub fn pin_type_strategy() -> impl Strategy<Value = PinType> {
    prop_oneof![
        Just(PinType::Bad),
        Just(PinType::Data),
        Just(PinType::Meta),
        Just(PinType::ClusterDag),
        Just(PinType::Shard)
    ]
}

pub fn status_strategy() -> impl Strategy<Value = TrackerStatus> {
    (0usize..13).prop_map(|i| TrackerStatus::ALL[i])
}

pub fn short_strategy() -> impl Strategy<Value = PinInfoShort> {
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

pub fn metric_strategy() -> impl Strategy<Value = Metric> {
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

pub fn pin_strategy() -> impl Strategy<Value = Pin> {
    (
        options_strategy(),
        cid_strategy(),
        pin_type_strategy(),
        proptest::collection::vec(peer_strategy(), 0..4),
        -1i32..5,
        proptest::option::of(cid_strategy()),
        timestamp_strategy(),
    )
        .prop_map(
            |(options, cid, pin_type, allocations, max_depth, reference, timestamp)| Pin {
                options,
                cid,
                pin_type,
                allocations,
                max_depth,
                reference: reference.map(Box::new),
                timestamp,
            },
        )
}

pub fn pin_info_strategy() -> impl Strategy<Value = PinInfo> {
    (cid_strategy(), peer_strategy(), short_strategy())
        .prop_map(|(cid, peer, short)| PinInfo::new(cid, peer, None, short))
}

pub fn id_strategy() -> impl Strategy<Value = Id> {
    (
        peer_strategy(),
        proptest::collection::vec(peer_strategy(), 0..3),
        text(),
        text(),
        text(),
    )
        .prop_map(|(id, peers, name, err, ipfs)| Id {
            id,
            addresses: vec![format!("/ip4/127.0.0.1/tcp/9096/p2p/{id}")],
            cluster_peers: peers,
            cluster_peers_addresses: vec![],
            version: VERSION.into(),
            commit: String::new(),
            rpc_protocol_version: RPC_PROTOCOL_VERSION.into(),
            error: err.clone(),
            ipfs: IpfsId {
                id: ipfs,
                addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
                error: err,
            },
            peername: name,
        })
}

pub fn cluster_error_strategy() -> impl Strategy<Value = ClusterError> {
    prop_oneof![
        Just(ClusterError::NotFound),
        text().prop_map(ClusterError::InvalidArgument),
        (0usize..9, 0usize..9, 0usize..9).prop_map(|(needed, wanted, available)| ClusterError::NotEnoughPeers {
            needed,
            wanted,
            available
        }),
        text().prop_map(ClusterError::NoLeader),
        text().prop_map(ClusterError::NoQuorum),
        text().prop_map(ClusterError::Consensus),
        text().prop_map(ClusterError::Ipfs),
        text().prop_map(ClusterError::Timeout),
        Just(ClusterError::ShuttingDown),
    ]
}
