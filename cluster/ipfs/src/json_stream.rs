//! [`JsonStreamDecoder`]: turns a Kubo RPC reply body, fed chunk by chunk, into JSON values.
//!
//! Kubo writes `stream=true` replies as one JSON value per line (NDJSON) and ordinary replies
//! as one object; js-ipfs may omit the final newline. The decoder accepts any sequence of
//! whitespace-separated values, keeps only the unfinished tail between chunks (so a reply of
//! millions of lines is never held whole) and refuses a tail larger than its cap.
//! Does not own: the HTTP body or the meaning of the values.

use serde::de::DeserializeOwned;

/// An incremental decoder of whitespace-separated JSON values.
#[derive(Debug)]
pub(crate) struct JsonStreamDecoder {
    /// Bytes received but not yet decoded: at most one unfinished value (plus whitespace).
    buffer: Vec<u8>,
    /// The largest unfinished value accepted, in bytes.
    buffer_max: usize,
}

impl JsonStreamDecoder {
    /// A decoder refusing values larger than `buffer_max` bytes.
    pub(crate) fn new(buffer_max: usize) -> JsonStreamDecoder {
        JsonStreamDecoder {
            buffer: Vec::new(),
            buffer_max,
        }
    }

    /// Adds a chunk and returns the values it completed.
    pub(crate) fn push<T: DeserializeOwned>(&mut self, chunk: &[u8]) -> Result<Vec<T>, String> {
        self.buffer.extend_from_slice(chunk);
        // Values end at a line end in Kubo's encoding: only try to decode when a newline
        // arrived, so one huge value split over many chunks is parsed once, not once per chunk.
        if !chunk.contains(&b'\n') {
            return self.check_size().map(|()| Vec::new());
        }
        self.decode(false)
    }

    /// The body ended: returns the last values; an unfinished value is an error.
    pub(crate) fn finish<T: DeserializeOwned>(&mut self) -> Result<Vec<T>, String> {
        self.decode(true)
    }

    fn decode<T: DeserializeOwned>(&mut self, at_end: bool) -> Result<Vec<T>, String> {
        let mut values = Vec::new();
        let mut stream = serde_json::Deserializer::from_slice(&self.buffer).into_iter::<T>();
        let consumed = loop {
            match stream.next() {
                Some(Ok(value)) => values.push(value),
                // Only whitespace is left.
                None => break self.buffer.len(),
                // The last value is not complete yet: keep it for the next chunk.
                Some(Err(e)) if e.is_eof() && !at_end => break stream.byte_offset(),
                Some(Err(e)) => return Err(format!("invalid JSON in reply: {e}")),
            }
        };
        self.buffer.drain(..consumed);
        self.check_size()?;
        Ok(values)
    }

    fn check_size(&self) -> Result<(), String> {
        if self.buffer.len() > self.buffer_max {
            return Err(format!("a JSON value in the reply exceeds {} bytes", self.buffer_max));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn decodes_lines_split_anywhere() {
        let text = b"{\"Cid\":\"a\"}\n{\"Cid\":\"b\"}\n{\"Cid\":\"c\"}";
        for split in 0..text.len() {
            let mut decoder = JsonStreamDecoder::new(1024);
            let mut values: Vec<Value> = decoder.push(&text[..split]).unwrap();
            values.extend(decoder.push::<Value>(&text[split..]).unwrap());
            values.extend(decoder.finish::<Value>().unwrap());
            assert_eq!(
                values,
                vec![json!({"Cid":"a"}), json!({"Cid":"b"}), json!({"Cid":"c"})],
                "split {split}"
            );
        }
    }

    #[test]
    fn one_object_without_newline_and_concatenated_objects() {
        let mut decoder = JsonStreamDecoder::new(1024);
        assert!(decoder.push::<Value>(b"{\"Keys\":{\"x\":").unwrap().is_empty());
        assert!(decoder.push::<Value>(b"{\"Type\":\"recursive\"}}}").unwrap().is_empty());
        assert_eq!(
            decoder.finish::<Value>().unwrap(),
            vec![json!({"Keys":{"x":{"Type":"recursive"}}})]
        );

        let mut decoder = JsonStreamDecoder::new(1024);
        let values: Vec<Value> = decoder.push(b"{\"a\":1}{\"a\":2}\n").unwrap();
        assert_eq!(values.len(), 2);
    }

    #[test]
    fn errors_on_garbage_truncation_and_oversize() {
        let mut decoder = JsonStreamDecoder::new(1024);
        assert!(decoder.push::<Value>(b"not json\n").is_err());

        let mut decoder = JsonStreamDecoder::new(1024);
        assert!(decoder.push::<Value>(b"{\"a\":").unwrap().is_empty());
        assert!(
            decoder.finish::<Value>().is_err(),
            "a truncated value is an error at the end"
        );

        let mut decoder = JsonStreamDecoder::new(8);
        assert!(decoder.push::<Value>(b"{\"aaaaaaaaaaaa\":").is_err());
    }
}
