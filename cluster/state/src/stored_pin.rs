//! How [`crate::RedbState`] stores a pin: a format byte, the pin's allocations as indexes into
//! the store's peer table (table `peers`: index -> peer id bytes), then the pin's binary form
//! ([`pin_codec`]) without its CID (the key holds it) and without its allocations. Every pin
//! names the same few members: an index takes one byte where a peer id takes 39, which is
//! about a third of a typical stored pin.
//!
//! Pins stored by earlier versions, in the plain binary form or as JSON (first byte `{`), are
//! still read, and written in this form when next changed.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use cluster_types::{pin_codec, Cid, PeerId, Pin};
use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::StateError;

/// Peer table: index -> peer id bytes.
pub(crate) const PEERS: TableDefinition<u32, &[u8]> = TableDefinition::new("peers");

/// The first byte of a pin stored with its allocations as peer table indexes.
const FORMAT_PEER_INDEXES: u8 = 0x02;

/// The peer table in memory, shared by a store and its views. It holds every entry of the
/// file's table, and may hold more: one added by a write transaction that then failed. So each
/// write transaction checks, once for each index it writes, that the file has the entry, and
/// writes it if not (see [`PinWriter`]). Entries are only ever added, never changed.
#[derive(Default)]
pub(crate) struct PeerTable {
    /// By index; `None` for an index whose entry the file lacks (its transaction failed and
    /// nothing used it since).
    ids: Vec<Option<PeerId>>,
    index_of: HashMap<PeerId, u32>,
}

impl PeerTable {
    /// The table `txn` sees.
    pub(crate) fn load(txn: &ReadTransaction) -> Result<PeerTable, StateError> {
        let mut table = PeerTable::default();
        let stored = txn.open_table(PEERS).map_err(storage)?;
        for entry in stored.iter().map_err(storage)? {
            let (index, bytes) = entry.map_err(storage)?;
            let index = index.value();
            let peer = PeerId::from_bytes(bytes.value())
                .map_err(|e| StateError::Corrupt(format!("peer table entry {index}: {e}")))?;
            let slot = index as usize;
            if table.ids.len() <= slot {
                table.ids.resize(slot + 1, None);
            }
            table.ids[slot] = Some(peer);
            table.index_of.insert(peer, index);
        }
        Ok(table)
    }

    fn peer(&self, index: u64) -> Option<PeerId> {
        self.ids.get(usize::try_from(index).ok()?).copied().flatten()
    }
}

/// Reads the shared table (a panic elsewhere while holding it leaves it whole: entries are
/// added in one step).
pub(crate) fn read_peers(peers: &RwLock<PeerTable>) -> RwLockReadGuard<'_, PeerTable> {
    peers.read().unwrap_or_else(PoisonError::into_inner)
}

/// Encodes pins for one write transaction, adding the peers they name to the peer table.
pub(crate) struct PinWriter<'t> {
    peers: &'t RwLock<PeerTable>,
    stored: Table<'t, u32, &'static [u8]>,
    /// Indexes this transaction knows the file holds.
    checked: Vec<u32>,
    buffer: Vec<u8>,
}

impl<'t> PinWriter<'t> {
    pub(crate) fn new(txn: &'t WriteTransaction, peers: &'t RwLock<PeerTable>) -> Result<PinWriter<'t>, StateError> {
        Ok(PinWriter {
            peers,
            stored: txn.open_table(PEERS).map_err(storage)?,
            checked: Vec::new(),
            buffer: Vec::with_capacity(128),
        })
    }

    /// The stored form of `pin` (valid until the next call).
    pub(crate) fn encode(&mut self, pin: &Pin) -> Result<&[u8], StateError> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        buffer.push(FORMAT_PEER_INDEXES);
        put_varint(&mut buffer, pin.allocations.len() as u64);
        for peer in &pin.allocations {
            let index = self.index_of(peer)?;
            put_varint(&mut buffer, index.into());
        }
        pin_codec::encode_pin_into(pin, false, false, &mut buffer);
        self.buffer = buffer;
        Ok(&self.buffer)
    }

    /// The index of `peer`, added to the table if new, and written to the file if it lacks it.
    fn index_of(&mut self, peer: &PeerId) -> Result<u32, StateError> {
        let known = read_peers(self.peers).index_of.get(peer).copied();
        let index = match known {
            Some(index) => index,
            None => {
                let mut table = self.peers.write().unwrap_or_else(PoisonError::into_inner);
                match table.index_of.get(peer) {
                    Some(&index) => index,
                    None => {
                        let index = u32::try_from(table.ids.len())
                            .map_err(|_| StateError::Storage("the peer table is full".into()))?;
                        table.ids.push(Some(*peer));
                        table.index_of.insert(*peer, index);
                        index
                    }
                }
            }
        };
        if !self.checked.contains(&index) {
            if self.stored.get(index).map_err(storage)?.is_none() {
                self.stored.insert(index, peer.to_bytes().as_slice()).map_err(storage)?;
            }
            self.checked.push(index);
        }
        Ok(index)
    }
}

/// Decodes a stored pin, in any of the forms (see the module doc). A JSON pin must be stored
/// under its own CID, so a mixed-up record is reported instead of silently breaking the CID
/// order.
pub(crate) fn decode_pin(key: &[u8], bytes: &[u8], peers: &PeerTable) -> Result<Pin, StateError> {
    match bytes.first() {
        Some(&FORMAT_PEER_INDEXES) => {
            let cid = cid_of_key(key)?;
            let corrupt = |what: String| StateError::Corrupt(format!("{cid}: {what}"));
            let mut rest = &bytes[1..];
            let count = read_varint(&mut rest).ok_or_else(|| corrupt("allocations cut short".into()))?;
            if count > rest.len() as u64 {
                return Err(corrupt(format!("{count} allocations in {} bytes", rest.len())));
            }
            let mut allocations = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let index = read_varint(&mut rest).ok_or_else(|| corrupt("allocations cut short".into()))?;
                let peer = peers
                    .peer(index)
                    .ok_or_else(|| corrupt(format!("allocation {index} is not in the peer table")))?;
                allocations.push(peer);
            }
            let mut pin = pin_codec::decode_pin(rest, Some(cid)).map_err(|e| corrupt(e.to_string()))?;
            if !pin.allocations.is_empty() {
                return Err(corrupt("allocations stored twice".into()));
            }
            pin.allocations = allocations;
            Ok(pin)
        }
        Some(&b'{') => {
            let pin: Pin =
                serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt(format!("{}: {e}", key_text(key))))?;
            if pin.cid.to_bytes() != key {
                return Err(StateError::Corrupt(format!(
                    "pin {} stored under key {}",
                    pin.cid,
                    key_text(key)
                )));
            }
            Ok(pin)
        }
        _ => {
            let cid = cid_of_key(key)?;
            pin_codec::decode_pin(bytes, Some(cid)).map_err(|e| StateError::Corrupt(format!("{cid}: {e}")))
        }
    }
}

fn cid_of_key(key: &[u8]) -> Result<Cid, StateError> {
    Cid::from_bytes(key).map_err(|e| StateError::Corrupt(format!("pin key {}: {e}", key_text(key))))
}

/// A key for error messages: the CID when it parses, hex otherwise.
pub(crate) fn key_text(key: &[u8]) -> String {
    match Cid::from_bytes(key) {
        Ok(cid) => cid.to_string(),
        Err(_) => key.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A varint of at most 10 bytes from the front of `bytes`; `None` if cut short or too long.
fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return None;
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn storage<E: Into<redb::Error>>(error: E) -> StateError {
    StateError::from(error.into())
}
