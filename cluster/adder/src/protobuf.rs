//! Hand-written protobuf for the two tiny schemas UnixFS v1 needs, byte for byte as Kubo writes
//! them (boxo `ipld/merkledag/coding.go` and `ipld/unixfs/pb`):
//!
//! ```text
//! PBNode  = { Links: [PBLink] (field 2, written FIRST), Data: bytes (field 1, written last) }
//! PBLink  = { Hash: bytes (1), Name: string (2, always written, even ""), Tsize: uint64 (3) }
//! Data    = { Type (1), Data: bytes (2, only when set), filesize (3), blocksizes (4, repeated, not packed),
//!             hashType (5), fanout (6) }
//! ```
//!
//! Fields are written in field-number order, as Go's protobuf marshalling does.
//!
//! Owns: encoding both messages and a small field reader used to read them back (CAR roots, tests).
//! Does not own: deciding what goes in a node (that is `file_writer` and `importer`).

use cid::Cid;

/// Protobuf wire type of varint fields.
const WIRE_VARINT: u8 = 0;
/// Protobuf wire type of length-delimited fields (bytes, strings, messages).
const WIRE_LENGTH: u8 = 2;

/// UnixFS `Data.Type` values this crate writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnixfsType {
    /// A basic (not HAMT-sharded) directory.
    Directory = 1,
    /// A file, or one chunk of a file.
    File = 2,
    /// One node of a HAMT-sharded directory.
    HamtShard = 5,
}

/// Appends `value` as an unsigned LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// How many bytes `put_varint` writes for `value`.
#[cfg(test)]
pub(crate) fn varint_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn put_key(out: &mut Vec<u8>, field: u8, wire_type: u8) {
    debug_assert!(field < 16, "single-byte keys only");
    out.push((field << 3) | wire_type);
}

fn put_length_field(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    put_key(out, field, WIRE_LENGTH);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint_field(out: &mut Vec<u8>, field: u8, value: u64) {
    put_key(out, field, WIRE_VARINT);
    put_varint(out, value);
}

/// One outgoing dag-pb link.
pub(crate) struct PbLink<'a> {
    /// The child's CID.
    pub cid: &'a Cid,
    /// The entry name ("" inside files).
    pub name: &'a str,
    /// Cumulative size of the child DAG (its block plus everything under it).
    pub tsize: u64,
}

/// Encodes a dag-pb node: links first (in the given order), then `data` when present.
pub(crate) fn encode_node(links: &[PbLink<'_>], data: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(links.len() * 48 + data.map_or(0, |d| d.len() + 8));
    let mut link_bytes = Vec::with_capacity(64);
    for link in links {
        link_bytes.clear();
        put_length_field(&mut link_bytes, 1, &link.cid.to_bytes());
        put_length_field(&mut link_bytes, 2, link.name.as_bytes());
        put_varint_field(&mut link_bytes, 3, link.tsize);
        put_length_field(&mut out, 2, &link_bytes);
    }
    if let Some(data) = data {
        put_length_field(&mut out, 1, data);
    }
    out
}

/// Encodes a UnixFS `Data` message. `data` is written only when `Some` (go-unixfs leaves a nil
/// `Data` unset: the empty file and every non-leaf node).
pub(crate) fn encode_unixfs(
    kind: UnixfsType,
    data: Option<&[u8]>,
    filesize: Option<u64>,
    blocksizes: &[u64],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.map_or(0, |d| d.len()) + 16 + blocksizes.len() * 4);
    put_varint_field(&mut out, 1, kind as u64);
    if let Some(data) = data {
        put_length_field(&mut out, 2, data);
    }
    if let Some(filesize) = filesize {
        put_varint_field(&mut out, 3, filesize);
    }
    for &size in blocksizes {
        put_varint_field(&mut out, 4, size);
    }
    out
}

/// Encodes the UnixFS `Data` message of a HAMT shard node (boxo `HAMTShardData`): Type, the
/// bitfield as Data, hashType and fanout; no filesize, blocksizes, mode or mtime.
pub(crate) fn encode_hamt_shard_unixfs(bitfield: &[u8], hash_type: u64, fanout: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(bitfield.len() + 12);
    put_varint_field(&mut out, 1, UnixfsType::HamtShard as u64);
    // go-bitfield returns nil for an all-zero field, which leaves Data unset; a shard node
    // always has at least one link, so one bit at least is set.
    assert!(!bitfield.is_empty(), "a HAMT shard node has at least one entry");
    put_length_field(&mut out, 2, bitfield);
    put_varint_field(&mut out, 5, hash_type);
    put_varint_field(&mut out, 6, fanout);
    out
}

/// One decoded protobuf field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValue<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 2.
    Bytes(&'a [u8]),
    /// Wire types 1 and 5 (kept only to be skipped).
    Fixed,
}

/// Reads a varint from the front of `buf`; `None` when truncated or longer than 10 bytes.
pub(crate) fn read_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (index, &byte) in buf.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        if index == 9 && byte > 1 {
            return None; // Overflows u64.
        }
        value |= bits << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, index + 1));
        }
    }
    None
}

/// Iterates over the fields of one protobuf message; stops with `Err(())` on malformed input.
pub(crate) struct FieldReader<'a> {
    buf: &'a [u8],
}

impl<'a> FieldReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> FieldReader<'a> {
        FieldReader { buf }
    }
}

impl<'a> Iterator for FieldReader<'a> {
    type Item = Result<(u64, FieldValue<'a>), ()>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let result = self.read_field();
        if result.is_err() {
            self.buf = &[];
        }
        Some(result)
    }
}

impl<'a> FieldReader<'a> {
    fn read_field(&mut self) -> Result<(u64, FieldValue<'a>), ()> {
        let (key, used) = read_varint(self.buf).ok_or(())?;
        self.buf = &self.buf[used..];
        let field = key >> 3;
        let value = match key & 7 {
            0 => {
                let (value, used) = read_varint(self.buf).ok_or(())?;
                self.buf = &self.buf[used..];
                FieldValue::Varint(value)
            }
            1 => {
                self.buf = self.buf.get(8..).ok_or(())?;
                FieldValue::Fixed
            }
            2 => {
                let (length, used) = read_varint(self.buf).ok_or(())?;
                let rest = &self.buf[used..];
                let length = usize::try_from(length).map_err(|_| ())?;
                if length > rest.len() {
                    return Err(());
                }
                let (bytes, rest) = rest.split_at(length);
                self.buf = rest;
                FieldValue::Bytes(bytes)
            }
            5 => {
                self.buf = self.buf.get(4..).ok_or(())?;
                FieldValue::Fixed
            }
            _ => return Err(()),
        };
        Ok((field, value))
    }
}

#[cfg(test)]
/// A dag-pb node read back: its links (hash bytes, name, tsize) and data.
#[derive(Debug, Default)]
pub(crate) struct DecodedNode<'a> {
    pub links: Vec<(&'a [u8], &'a [u8], u64)>,
    pub data: Option<&'a [u8]>,
}

/// Decodes a dag-pb node (field order is not checked).
/// The Data field of a dag-pb node, without collecting its links; `None` if the node does
/// not parse or has no Data.
pub(crate) fn node_data(buf: &[u8]) -> Option<&[u8]> {
    let mut data = None;
    for field in FieldReader::new(buf) {
        match field.ok()? {
            (1, FieldValue::Bytes(bytes)) => data = Some(bytes),
            (2, FieldValue::Bytes(_)) => {}
            _ => return None,
        }
    }
    data
}

#[cfg(test)]
pub(crate) fn decode_node(buf: &[u8]) -> Result<DecodedNode<'_>, ()> {
    let mut node = DecodedNode::default();
    for field in FieldReader::new(buf) {
        match field? {
            (1, FieldValue::Bytes(data)) => node.data = Some(data),
            (2, FieldValue::Bytes(link)) => {
                let (mut hash, mut name, mut tsize): (&[u8], &[u8], u64) = (&[], &[], 0);
                for link_field in FieldReader::new(link) {
                    match link_field? {
                        (1, FieldValue::Bytes(bytes)) => hash = bytes,
                        (2, FieldValue::Bytes(bytes)) => name = bytes,
                        (3, FieldValue::Varint(value)) => tsize = value,
                        _ => return Err(()),
                    }
                }
                node.links.push((hash, name, tsize));
            }
            _ => return Err(()),
        }
    }
    Ok(node)
}

/// A UnixFS `Data` message read back (only the fields this crate writes).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct DecodedUnixfs<'a> {
    pub kind: Option<u64>,
    pub data: Option<&'a [u8]>,
    pub filesize: Option<u64>,
    pub blocksizes: Vec<u64>,
    pub hash_type: Option<u64>,
    pub fanout: Option<u64>,
}

/// Decodes a UnixFS `Data` message, ignoring fields this crate never writes (mode, mtime, ...).
pub(crate) fn decode_unixfs(buf: &[u8]) -> Result<DecodedUnixfs<'_>, ()> {
    let mut unixfs = DecodedUnixfs::default();
    for field in FieldReader::new(buf) {
        match field? {
            (1, FieldValue::Varint(kind)) => unixfs.kind = Some(kind),
            (2, FieldValue::Bytes(data)) => unixfs.data = Some(data),
            (3, FieldValue::Varint(size)) => unixfs.filesize = Some(size),
            (4, FieldValue::Varint(size)) => unixfs.blocksizes.push(size),
            (5, FieldValue::Varint(hash_type)) => unixfs.hash_type = Some(hash_type),
            (6, FieldValue::Varint(fanout)) => unixfs.fanout = Some(fanout),
            _ => {}
        }
    }
    if unixfs.kind.is_none() {
        return Err(()); // `Type` is a required field.
    }
    Ok(unixfs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_and_length() {
        for value in [0u64, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value), "{value}");
            assert_eq!(read_varint(&out), Some((value, out.len())));
        }
        assert_eq!(read_varint(&[0x80]), None, "truncated");
        assert_eq!(read_varint(&[0xff; 11]), None, "too long");
    }

    #[test]
    fn empty_file_unixfs_bytes() {
        // go-unixfs: Type=File, no Data, filesize=0 -> 08 02 18 00; the node wraps it in field 1.
        let unixfs = encode_unixfs(UnixfsType::File, None, Some(0), &[]);
        assert_eq!(unixfs, [0x08, 0x02, 0x18, 0x00]);
        assert_eq!(encode_node(&[], Some(&unixfs)), [0x0a, 0x04, 0x08, 0x02, 0x18, 0x00]);
    }

    #[test]
    fn unixfs_decode_reads_back_what_was_encoded() {
        let bytes = encode_unixfs(UnixfsType::File, Some(b"abc"), Some(300), &[100, 200]);
        let decoded = decode_unixfs(&bytes).unwrap();
        assert_eq!(decoded.kind, Some(2));
        assert_eq!(decoded.data, Some(&b"abc"[..]));
        assert_eq!(decoded.filesize, Some(300));
        assert_eq!(decoded.blocksizes, vec![100, 200]);
        assert!(decode_unixfs(&[0x12, 0x05, 0x01]).is_err(), "truncated bytes field");
    }

    #[test]
    fn hamt_shard_unixfs_bytes() {
        // Type=5, Data=[0x01] (slot 0 only), hashType=0x22, fanout=256 (varint 80 02).
        let unixfs = encode_hamt_shard_unixfs(&[0x01], 0x22, 256);
        assert_eq!(unixfs, [0x08, 0x05, 0x12, 0x01, 0x01, 0x28, 0x22, 0x30, 0x80, 0x02]);
        let decoded = decode_unixfs(&unixfs).unwrap();
        assert_eq!(decoded.kind, Some(5));
        assert_eq!(decoded.data, Some(&[0x01][..]));
        assert_eq!((decoded.hash_type, decoded.fanout), (Some(0x22), Some(256)));
    }
}
