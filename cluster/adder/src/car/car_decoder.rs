//! [`CarDecoder`]: a push decoder for CAR files (`format=car` uploads). Bytes go in as they
//! arrive; verified blocks come out. It buffers at most one incomplete section, so memory stays
//! bounded by the section limit plus the size of one push.
//!
//! ```text
//! CARv1: varint | DAG-CBOR header {"roots": [CID], "version": 1} | (varint | CID | data)*
//! CARv2: pragma (varint 0x0a + {"version": 2}) | 40-byte header | padding |
//!        CARv1 payload (data_offset, data_size) | index (ignored)
//! ```
//!
//! Every block's data is checked against its CID's multihash (sha2-256, or identity); a block
//! that does not match, or uses another hash function, fails the stream.

use cid::Cid;
use sha2::{Digest, Sha256};

use super::cbor::{self, Value};
use crate::protobuf::{decode_unixfs, read_varint};
use crate::{Block, CarError, CODEC_DAG_PB, MULTIHASH_IDENTITY, MULTIHASH_SHA2_256};

/// Default header limit. A one-root header is about 60 bytes; the limit only stops a hostile
/// length prefix from making the decoder buffer without end (go-car allows 32 MiB).
pub const CAR_HEADER_SIZE_MAX: u64 = 1024 * 1024;
/// Default section limit (CID plus data): go-car's default, four times the 2 MiB block limit.
pub const CAR_SECTION_SIZE_MAX: u64 = 8 * 1024 * 1024;

/// The length of the CARv2 pragma (11 bytes) plus its fixed header (40 bytes).
const V2_PREFIX_LEN: u64 = 51;
/// The CARv2 fixed header: characteristics (16), data offset, data size, index offset (u64 LE).
const V2_HEADER_LEN: usize = 40;
/// CBOR tag of an IPLD link (a CID as bytes, after a 0x00 multibase prefix).
const CBOR_TAG_CID: u64 = 42;

/// What a finished CAR stream held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarSummary {
    /// 1, or 2 for a CARv2 file (whose CARv1 payload was read).
    pub version: u64,
    /// The header's roots (possibly empty: callers decide how many they accept).
    pub roots: Vec<Cid>,
    /// Blocks decoded.
    pub block_count: u64,
    /// Total length of the blocks' data.
    pub block_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a header; `outer` allows the CARv2 pragma; `payload` is the CARv2 bytes left.
    Header { outer: bool, payload: Option<u64> },
    /// Expecting the 40-byte CARv2 header.
    V2Header,
    /// Skipping CARv2 padding up to the data offset.
    V2Padding { skip: u64, payload: u64 },
    /// Reading sections until the end (v1) or until `payload` bytes are read (v2).
    Sections { payload: Option<u64> },
    /// The CARv2 payload is over; the rest (the index) is dropped.
    Done,
    /// An error was returned; nothing more is accepted.
    Failed,
}

/// The result of one parsing step over the buffered input.
enum Step {
    /// More bytes are needed.
    NeedMore,
    /// `consumed` bytes were used, possibly yielding a block.
    Consumed(usize, Option<Block>),
}

/// Decodes a CAR stream pushed in pieces. See the module documentation.
///
/// To ensure correctness: call [`CarDecoder::finish`] after the last push; a stream cut short
/// is only detected there.
#[derive(Debug)]
pub struct CarDecoder {
    header_size_max: u64,
    section_size_max: u64,
    /// Unparsed input: at most one incomplete header or section plus the latest push.
    buffer: Vec<u8>,
    state: State,
    version: u64,
    roots: Option<Vec<Cid>>,
    block_count: u64,
    block_bytes: u64,
}

impl Default for CarDecoder {
    fn default() -> CarDecoder {
        CarDecoder::new()
    }
}

impl CarDecoder {
    /// A decoder with the default limits.
    pub fn new() -> CarDecoder {
        CarDecoder::with_limits(CAR_HEADER_SIZE_MAX, CAR_SECTION_SIZE_MAX)
    }

    /// A decoder refusing headers and sections longer than the given sizes.
    pub fn with_limits(header_size_max: u64, section_size_max: u64) -> CarDecoder {
        CarDecoder {
            header_size_max,
            section_size_max,
            buffer: Vec::new(),
            state: State::Header {
                outer: true,
                payload: None,
            },
            version: 0,
            roots: None,
            block_count: 0,
            block_bytes: 0,
        }
    }

    /// The header's roots, once the header has been read.
    pub fn roots(&self) -> Option<&[Cid]> {
        self.roots.as_deref()
    }

    /// Takes the next bytes of the stream; returns the blocks they completed, verified.
    /// After an error the decoder refuses everything.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Block>, CarError> {
        if self.state == State::Failed {
            return Err(CarError::AlreadyFailed);
        }
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.extend_from_slice(data);
        let mut blocks = Vec::new();
        let mut consumed = 0;
        let result = loop {
            match self.step(&buffer[consumed..]) {
                Ok(Step::NeedMore) => break Ok(()),
                Ok(Step::Consumed(count, block)) => {
                    assert!(
                        count > 0 || block.is_none(),
                        "a step that yields a block consumes bytes"
                    );
                    consumed += count;
                    blocks.extend(block);
                }
                Err(error) => break Err(error),
            }
        };
        match result {
            Ok(()) => {
                buffer.drain(..consumed);
                self.buffer = buffer;
                Ok(blocks)
            }
            Err(error) => {
                self.state = State::Failed;
                Err(error)
            }
        }
    }

    /// Ends the stream: fails if it stopped inside the header or a section.
    pub fn finish(self) -> Result<CarSummary, CarError> {
        match self.state {
            State::Failed => return Err(CarError::AlreadyFailed),
            State::Header { .. } | State::V2Header | State::V2Padding { .. } => {
                return Err(CarError::Truncated { context: "header" })
            }
            State::Sections { payload } => {
                if !self.buffer.is_empty() || payload.is_some_and(|left| left > 0) {
                    return Err(CarError::Truncated { context: "section" });
                }
            }
            State::Done => {}
        }
        let roots = self.roots.expect("roots are set before sections are read");
        Ok(CarSummary {
            version: self.version,
            roots,
            block_count: self.block_count,
            block_bytes: self.block_bytes,
        })
    }

    fn step(&mut self, input: &[u8]) -> Result<Step, CarError> {
        match self.state {
            State::Header { outer, payload } => self.step_header(input, outer, payload),
            State::V2Header => self.step_v2_header(input),
            State::V2Padding { skip, payload } => {
                if skip == 0 {
                    self.state = State::Header {
                        outer: false,
                        payload: Some(payload),
                    };
                    return Ok(Step::Consumed(0, None));
                }
                if input.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let count = skip.min(input.len() as u64);
                self.state = State::V2Padding {
                    skip: skip - count,
                    payload,
                };
                Ok(Step::Consumed(count as usize, None))
            }
            State::Sections { payload } => self.step_section(input, payload),
            State::Done => Ok(if input.is_empty() {
                Step::NeedMore
            } else {
                Step::Consumed(input.len(), None)
            }),
            State::Failed => Err(CarError::AlreadyFailed),
        }
    }

    fn step_header(&mut self, input: &[u8], outer: bool, payload: Option<u64>) -> Result<Step, CarError> {
        let Some((length, prefix_len)) = length_prefix(input)? else {
            return Ok(Step::NeedMore);
        };
        if length > self.header_size_max {
            return Err(CarError::HeaderTooLarge {
                size: length,
                max: self.header_size_max,
            });
        }
        let total = prefix_len as u64 + length;
        if payload.is_some_and(|left| total > left) {
            return Err(CarError::InvalidV2Header {
                reason: "the inner header overruns the data payload".to_string(),
            });
        }
        if (input.len() as u64) < total {
            return Ok(Step::NeedMore);
        }
        let total = total as usize;
        let header = parse_header(&input[prefix_len..total])?;
        match header.version {
            1 => {
                self.roots = Some(header.roots.ok_or_else(|| invalid_header("missing roots"))?);
                self.version = if outer { 1 } else { 2 };
                let payload = payload.map(|left| left - total as u64);
                self.state = if payload == Some(0) {
                    State::Done
                } else {
                    State::Sections { payload }
                };
            }
            2 if outer => self.state = State::V2Header,
            version => return Err(CarError::UnsupportedVersion { version }),
        }
        Ok(Step::Consumed(total, None))
    }

    fn step_v2_header(&mut self, input: &[u8]) -> Result<Step, CarError> {
        if input.len() < V2_HEADER_LEN {
            return Ok(Step::NeedMore);
        }
        let field = |at: usize| u64::from_le_bytes(input[at..at + 8].try_into().expect("8 bytes"));
        let (data_offset, data_size) = (field(16), field(24));
        if data_offset < V2_PREFIX_LEN {
            return Err(CarError::InvalidV2Header {
                reason: format!("data offset {data_offset} is inside the header"),
            });
        }
        if data_size == 0 {
            return Err(CarError::InvalidV2Header {
                reason: "empty data payload".to_string(),
            });
        }
        self.state = State::V2Padding {
            skip: data_offset - V2_PREFIX_LEN,
            payload: data_size,
        };
        Ok(Step::Consumed(V2_HEADER_LEN, None))
    }

    fn step_section(&mut self, input: &[u8], payload: Option<u64>) -> Result<Step, CarError> {
        let Some((length, prefix_len)) = length_prefix(input)? else {
            return Ok(Step::NeedMore);
        };
        if length == 0 {
            return Err(CarError::EmptySection);
        }
        if length > self.section_size_max {
            return Err(CarError::SectionTooLarge {
                size: length,
                max: self.section_size_max,
            });
        }
        let total = prefix_len as u64 + length;
        if payload.is_some_and(|left| total > left) {
            return Err(CarError::InvalidV2Header {
                reason: "a section overruns the data payload".to_string(),
            });
        }
        if (input.len() as u64) < total {
            return Ok(Step::NeedMore);
        }
        let total = total as usize;
        let block = decode_section(&input[prefix_len..total])?;
        self.block_count += 1;
        self.block_bytes += block.data.len() as u64;
        let payload = payload.map(|left| left - total as u64);
        self.state = if payload == Some(0) {
            State::Done
        } else {
            State::Sections { payload }
        };
        Ok(Step::Consumed(total, Some(block)))
    }
}

/// Reads a varint length prefix: `None` when more bytes are needed.
fn length_prefix(input: &[u8]) -> Result<Option<(u64, usize)>, CarError> {
    match read_varint(input) {
        Some(found) => Ok(Some(found)),
        None if input.len() < 10 && input.iter().all(|byte| byte & 0x80 != 0) => Ok(None),
        None => Err(CarError::InvalidVarint),
    }
}

/// The fields of a CAR header map.
struct Header {
    version: u64,
    roots: Option<Vec<Cid>>,
}

fn invalid_header(reason: &str) -> CarError {
    CarError::InvalidHeader {
        reason: reason.to_string(),
    }
}

fn parse_header(bytes: &[u8]) -> Result<Header, CarError> {
    let Value::Map(entries) = cbor::decode(bytes).map_err(|reason| CarError::InvalidHeader { reason })? else {
        return Err(invalid_header("not a map"));
    };
    let (mut version, mut roots) = (None, None);
    for (key, value) in entries {
        match (key, value) {
            (Value::Text(key), Value::Unsigned(number)) if key == "version" => version = Some(number),
            (Value::Text(key), _) if key == "version" => return Err(invalid_header("version is not an integer")),
            (Value::Text(key), Value::Array(items)) if key == "roots" => {
                roots = Some(items.into_iter().map(parse_cid_link).collect::<Result<Vec<_>, _>>()?);
            }
            (Value::Text(key), _) if key == "roots" => return Err(invalid_header("roots is not an array")),
            _ => {} // Unknown keys are ignored.
        }
    }
    let version = version.ok_or_else(|| invalid_header("missing version"))?;
    Ok(Header { version, roots })
}

/// A DAG-CBOR link: tag 42 over the CID bytes behind a 0x00 (identity multibase) prefix.
fn parse_cid_link(value: Value) -> Result<Cid, CarError> {
    let Value::Tag(CBOR_TAG_CID, inner) = value else {
        return Err(invalid_header("a root is not a CID link (tag 42)"));
    };
    let Value::Bytes(bytes) = *inner else {
        return Err(invalid_header("a root link is not a byte string"));
    };
    match bytes.split_first() {
        Some((0x00, cid_bytes)) => {
            Cid::try_from(cid_bytes).map_err(|error| invalid_header(&format!("invalid root CID: {error}")))
        }
        _ => Err(invalid_header("a root link lacks the 0x00 prefix")),
    }
}

/// Splits a section into CID and data and checks the data against the CID's multihash.
fn decode_section(section: &[u8]) -> Result<Block, CarError> {
    let mut cursor = section;
    let cid = Cid::read_bytes(&mut cursor).map_err(|error| CarError::InvalidCid {
        reason: error.to_string(),
    })?;
    let data = cursor.to_vec();
    verify(&cid, &data)?;
    Ok(Block { cid, data })
}

fn verify(cid: &Cid, data: &[u8]) -> Result<(), CarError> {
    let hash = cid.hash();
    let matches = match hash.code() {
        MULTIHASH_SHA2_256 => {
            // A truncated sha2-256 multihash compares its prefix.
            let digest = Sha256::digest(data);
            !hash.digest().is_empty() && digest.get(..hash.digest().len()) == Some(hash.digest())
        }
        MULTIHASH_IDENTITY => hash.digest() == data,
        code => return Err(CarError::UnsupportedHash { cid: *cid, code }),
    };
    if !matches {
        return Err(CarError::HashMismatch { cid: *cid });
    }
    Ok(())
}

/// The UnixFS `filesize` of a dag-pb block (0 when unset, as go-unixfs `FileSize`), or `None`
/// when the block is not a dag-pb UnixFS node. Cluster's CAR adder reports this for the root.
pub fn unixfs_file_size(block: &Block) -> Option<u64> {
    if block.cid.codec() != CODEC_DAG_PB {
        return None;
    }
    // Only the Data field is needed: links are skipped, not collected (a root of millions of
    // tiny links would otherwise cost memory for nothing).
    let data = crate::protobuf::node_data(&block.data)?;
    let unixfs = decode_unixfs(data).ok()?;
    Some(unixfs.filesize.unwrap_or(0))
}
