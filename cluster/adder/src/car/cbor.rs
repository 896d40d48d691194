//! A minimal CBOR decoder, enough for a CAR header (`{"roots": [tag 42 bytes], "version": 1}`)
//! and the CARv2 pragma (`{"version": 2}`).
//!
//! Definite lengths only (DAG-CBOR forbids indefinite ones); nesting and every declared length
//! are bounded by the input, so hostile input cannot make it allocate more than it was given.

/// Deepest nesting accepted; a CAR header needs 3 (map, array, tag).
const DEPTH_MAX: usize = 16;

/// One decoded CBOR data item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Unsigned(u64),
    /// A negative integer, stored as CBOR does (`-1 - n`).
    Negative(u64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Tag(u64, Box<Value>),
    /// `false`, `true`, `null`, `undefined` and other simple values.
    Simple(u8),
    /// A float, kept as its bits (a header never needs one).
    Float(u64),
}

/// Decodes exactly one data item filling all of `input`.
pub(crate) fn decode(input: &[u8]) -> Result<Value, String> {
    let mut decoder = Decoder { input, position: 0 };
    let value = decoder.item(0)?;
    if decoder.position != input.len() {
        return Err(format!(
            "{} trailing bytes after the header",
            input.len() - decoder.position
        ));
    }
    Ok(value)
}

struct Decoder<'a> {
    input: &'a [u8],
    position: usize,
}

impl Decoder<'_> {
    fn take(&mut self, count: usize) -> Result<&[u8], String> {
        let end = self.position.checked_add(count).filter(|&end| end <= self.input.len());
        let end = end.ok_or_else(|| "truncated CBOR".to_string())?;
        let bytes = &self.input[self.position..end];
        self.position = end;
        Ok(bytes)
    }

    fn remaining(&self) -> usize {
        self.input.len() - self.position
    }

    /// Reads the argument of an initial byte with `additional` info (RFC 8949 §3).
    fn argument(&mut self, additional: u8) -> Result<u64, String> {
        let width = match additional {
            0..=23 => return Ok(u64::from(additional)),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            31 => return Err("indefinite lengths are not allowed".to_string()),
            _ => return Err(format!("reserved additional info {additional}")),
        };
        let bytes = self.take(width)?;
        Ok(bytes.iter().fold(0u64, |value, &byte| (value << 8) | u64::from(byte)))
    }

    /// A declared element count or byte length, refused when the input cannot hold it.
    fn length(&mut self, additional: u8) -> Result<usize, String> {
        let length = self.argument(additional)?;
        match usize::try_from(length) {
            Ok(length) if length <= self.remaining() => Ok(length),
            _ => Err(format!("length {length} exceeds the input")),
        }
    }

    fn item(&mut self, depth: usize) -> Result<Value, String> {
        if depth > DEPTH_MAX {
            return Err("CBOR nested too deeply".to_string());
        }
        let initial = self.take(1)?[0];
        let (major, additional) = (initial >> 5, initial & 0x1f);
        Ok(match major {
            0 => Value::Unsigned(self.argument(additional)?),
            1 => Value::Negative(self.argument(additional)?),
            2 => {
                let length = self.length(additional)?;
                Value::Bytes(self.take(length)?.to_vec())
            }
            3 => {
                let length = self.length(additional)?;
                let text = std::str::from_utf8(self.take(length)?).map_err(|_| "text is not UTF-8".to_string())?;
                Value::Text(text.to_string())
            }
            4 => {
                // Every element takes at least one byte, so `length` is bounded by the input.
                let length = self.length(additional)?;
                // A declared length is untrusted input: grow as items really arrive.
                let mut items = Vec::with_capacity(length.min(64));
                for _ in 0..length {
                    items.push(self.item(depth + 1)?);
                }
                Value::Array(items)
            }
            5 => {
                let length = self.length(additional)?;
                let mut entries = Vec::with_capacity(length.min(64));
                for _ in 0..length {
                    let key = self.item(depth + 1)?;
                    let value = self.item(depth + 1)?;
                    entries.push((key, value));
                }
                Value::Map(entries)
            }
            6 => {
                let tag = self.argument(additional)?;
                Value::Tag(tag, Box::new(self.item(depth + 1)?))
            }
            _ => match additional {
                0..=23 => Value::Simple(additional),
                24 => Value::Simple(self.take(1)?[0]),
                25..=27 => Value::Float(self.argument(additional)?),
                _ => return Err(format!("invalid simple value {additional}")),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_carv2_pragma() {
        // The CARv2 pragma's CBOR: {"version": 2}.
        let pragma = [0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x02];
        let value = decode(&pragma).unwrap();
        assert_eq!(
            value,
            Value::Map(vec![(Value::Text("version".to_string()), Value::Unsigned(2))])
        );
    }

    #[test]
    fn rejects_malformed_input() {
        assert!(decode(&[]).is_err(), "empty");
        assert!(decode(&[0x9f, 0xff]).is_err(), "indefinite array");
        assert!(
            decode(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err(),
            "huge byte string"
        );
        assert!(
            decode(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err(),
            "huge array"
        );
        assert!(decode(&[0x01, 0x02]).is_err(), "trailing bytes");
        assert!(decode(&[0x62, 0xff, 0xfe]).is_err(), "text not UTF-8");
        assert!(decode(&[0x81; 64]).is_err(), "nested too deeply");
        assert_eq!(decode(&[0x39, 0x01, 0x00]).unwrap(), Value::Negative(256));
        assert_eq!(decode(&[0xf5]).unwrap(), Value::Simple(21));
    }
}
