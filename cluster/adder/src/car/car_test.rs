//! CAR decoder tests: round trips of imported DAGs, CARv2, hostile and broken input.

use cid::{Cid, Version};
use multihash::Multihash;

use crate::protobuf::varint_len;
use crate::test_support::{car_v1, car_v2, import_bytes};
use crate::{unixfs_file_size, Block, CarDecoder, CarError, CarReader, ImportOptions, MULTIHASH_IDENTITY};

/// A small multi-block DAG (chunker size-100 over 1000 bytes: 10 leaves and a root).
fn sample_dag(version: Version) -> (Vec<Block>, Cid) {
    let options = ImportOptions {
        chunk_size: 100,
        cid_version: version,
        ..ImportOptions::default()
    };
    let data: Vec<u8> = (0..1000u32).map(|index| (index % 256) as u8).collect();
    let (blocks, written) = import_bytes(&options, &data, 333);
    (blocks, written.cid)
}

fn decode_in_pieces(car: &[u8], piece: usize) -> Result<(Vec<Block>, crate::CarSummary), CarError> {
    let mut decoder = CarDecoder::new();
    let mut blocks = Vec::new();
    for bytes in car.chunks(piece) {
        blocks.extend(decoder.push(bytes)?);
    }
    Ok((blocks, decoder.finish()?))
}

#[test]
fn round_trip_in_any_piece_size() {
    for version in [Version::V0, Version::V1] {
        let (blocks, root) = sample_dag(version);
        let car = car_v1(&[root], &blocks);
        for piece in [1, 2, 7, 64, 1000, car.len()] {
            let (decoded, summary) = decode_in_pieces(&car, piece).unwrap();
            assert_eq!(decoded, blocks, "piece {piece}");
            assert_eq!(summary.version, 1);
            assert_eq!(summary.roots, vec![root]);
            assert_eq!(summary.block_count, 11);
            assert_eq!(
                summary.block_bytes,
                blocks.iter().map(|block| block.data.len() as u64).sum::<u64>()
            );
        }
        // What cluster's CAR adder reports as the root's size: the UnixFS filesize.
        assert_eq!(unixfs_file_size(blocks.last().unwrap()), Some(1000));
    }
}

#[test]
fn reader_over_std_read() {
    let (blocks, root) = sample_dag(Version::V1);
    let car = car_v1(&[root], &blocks);
    let mut reader = CarReader::new(&car[..]);
    let decoded: Vec<Block> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(decoded, blocks);
    assert_eq!(reader.summary().unwrap().roots, vec![root]);
    assert_eq!(reader.roots(), Some(&[root][..]));
}

#[test]
fn carv2_payload_is_read_and_index_skipped() {
    let (blocks, root) = sample_dag(Version::V1);
    let v1 = car_v1(&[root], &blocks);
    for padding in [0, 13] {
        let car = car_v2(&v1, padding);
        for piece in [1, 5, car.len()] {
            let (decoded, summary) = decode_in_pieces(&car, piece).unwrap();
            assert_eq!(decoded, blocks, "padding {padding}, piece {piece}");
            assert_eq!((summary.version, summary.roots.clone()), (2, vec![root]));
        }
    }
    // A payload cut short is detected.
    let car = car_v2(&v1, 0);
    let cut = 51 + v1.len() - 10;
    assert!(matches!(
        decode_in_pieces(&car[..cut], 1000),
        Err(CarError::Truncated { .. })
    ));
}

#[test]
fn corrupted_block_is_rejected() {
    let (blocks, root) = sample_dag(Version::V0);
    let mut car = car_v1(&[root], &blocks);
    let last = car.len() - 1;
    car[last] ^= 0x01; // The last byte of the root block's data.
    let error = decode_in_pieces(&car, 4096).unwrap_err();
    assert!(
        matches!(error, CarError::HashMismatch { cid } if cid == root),
        "{error}"
    );
    // The decoder refuses to continue after an error.
    let mut decoder = CarDecoder::new();
    assert!(decoder.push(&car).is_err());
    assert!(matches!(decoder.push(&[]), Err(CarError::AlreadyFailed)));
}

#[test]
fn identity_blocks_pass_and_other_hashes_fail() {
    let identity = Multihash::<64>::wrap(MULTIHASH_IDENTITY, b"inline").unwrap();
    let inline = Block {
        cid: Cid::new_v1(0x55, identity),
        data: b"inline".to_vec(),
    };
    let (decoded, _) = decode_in_pieces(&car_v1(&[inline.cid], std::slice::from_ref(&inline)), 3).unwrap();
    assert_eq!(decoded, vec![inline.clone()]);

    let wrong = Block {
        cid: inline.cid,
        data: b"other".to_vec(),
    };
    assert!(matches!(
        decode_in_pieces(&car_v1(&[], &[wrong]), 100),
        Err(CarError::HashMismatch { .. })
    ));

    let sha512 = Multihash::<64>::wrap(0x13, &[0u8; 64]).unwrap();
    let unsupported = Block {
        cid: Cid::new_v1(0x55, sha512),
        data: b"x".to_vec(),
    };
    let error = decode_in_pieces(&car_v1(&[], &[unsupported]), 100).unwrap_err();
    assert!(matches!(error, CarError::UnsupportedHash { code: 0x13, .. }), "{error}");
}

#[test]
fn broken_and_hostile_input_errors_without_panicking() {
    let (blocks, root) = sample_dag(Version::V1);
    let car = car_v1(&[root], &blocks);
    // Section boundaries: a CAR cut there is a valid CAR with fewer blocks.
    let section_lengths: Vec<usize> = blocks
        .iter()
        .map(|block| {
            let length = block.cid.encoded_len() + block.data.len();
            varint_len(length as u64) + length
        })
        .collect();
    let header_len = car.len() - section_lengths.iter().sum::<usize>();
    let boundaries: Vec<usize> = std::iter::once(header_len)
        .chain(section_lengths.iter().scan(header_len, |end, length| {
            *end += length;
            Some(*end)
        }))
        .collect();
    // Truncated anywhere else: an error at `finish` (or earlier), never a panic.
    for cut in 0..car.len() {
        let result = decode_in_pieces(&car[..cut], 9);
        match boundaries.iter().position(|&boundary| boundary == cut) {
            Some(count) => assert_eq!(result.unwrap().1.block_count, count as u64, "cut at {cut}"),
            None => assert!(result.is_err(), "cut at {cut}"),
        }
    }
    // Corrupting any single byte never panics.
    for index in 0..car.len().min(400) {
        let mut corrupted = car.clone();
        corrupted[index] ^= 0xa5;
        let _ = decode_in_pieces(&corrupted, 17);
    }
    // Huge declared lengths are refused before buffering.
    let mut decoder = CarDecoder::new();
    assert!(matches!(
        decoder.push(&[0xff, 0xff, 0xff, 0x7f]),
        Err(CarError::HeaderTooLarge { .. })
    ));
    let mut section_too_large = car[..header_len].to_vec();
    section_too_large.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
    assert!(matches!(
        decode_in_pieces(&section_too_large, 100),
        Err(CarError::SectionTooLarge { .. })
    ));
    let mut empty_section = car[..header_len].to_vec();
    empty_section.push(0x00);
    assert!(matches!(
        decode_in_pieces(&empty_section, 100),
        Err(CarError::EmptySection)
    ));
    assert!(matches!(
        decode_in_pieces(&[0xff; 11], 100),
        Err(CarError::InvalidVarint)
    ));
    // Not a header map, a wrong version.
    assert!(matches!(
        decode_in_pieces(&[0x01, 0x01], 100),
        Err(CarError::InvalidHeader { .. })
    ));
    let mut version_3 = vec![0x0a, 0xa1, 0x67];
    version_3.extend_from_slice(b"version");
    version_3.push(0x03);
    assert!(matches!(
        decode_in_pieces(&version_3, 100),
        Err(CarError::UnsupportedVersion { version: 3 })
    ));
    assert!(matches!(
        decode_in_pieces(&[], 100),
        Err(CarError::Truncated { context: "header" })
    ));
}

#[test]
fn header_layout_matches_the_carv1_spec() {
    // {"roots": [root], "version": 1} in DAG-CBOR: the roots key first (shorter), each root a
    // tag-42 byte string with a leading 0x00.
    let (blocks, root) = sample_dag(Version::V0);
    let car = car_v1(&[root], &blocks);
    let root_bytes = root.to_bytes();
    assert_eq!(car[0] as usize, 1 + 6 + 1 + 4 + 1 + root_bytes.len() + 8 + 1);
    assert_eq!(&car[1..8], &[0xa2, 0x65, b'r', b'o', b'o', b't', b's']);
    assert_eq!(&car[8..13], &[0x81, 0xd8, 0x2a, 0x58, 0x23]);
    assert_eq!(car[13], 0x00);
    assert_eq!(&car[14..14 + root_bytes.len()], &root_bytes[..]);
}
