//! Reading answers as Go's REST client (`api/rest/client/request.go`) does: JSON whose nulls
//! mean empty, error bodies (JSON or raw), NDJSON streams split across chunks, and the
//! `X-Stream-Error` trailer.

use cluster_types::ApiError;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Largest single NDJSON item we buffer while waiting for the rest of it.
const MAX_ITEM_BYTES: usize = 16 << 20;

/// Drops `null` members everywhere, so Go's `null` slices and maps decode as empty and Go's
/// `null` optional values as absent.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Decodes one API object, tolerating Go's `null`s.
pub fn decode_value<T: DeserializeOwned>(mut value: Value) -> Result<T, serde_json::Error> {
    strip_nulls(&mut value);
    serde_json::from_value(value)
}

/// The error a 4xx/5xx answer carries: the `{"code","message"}` body, or the raw body text with
/// the HTTP status when it is not JSON (as Go's client).
pub fn api_error_from(status: StatusCode, body: &[u8]) -> ApiError {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        if let Some(message) = map.get("message").and_then(Value::as_str) {
            let code = map
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| *c != 0);
            return ApiError {
                code: code.unwrap_or(status.as_u16()),
                message: message.to_string(),
            };
        }
    }
    ApiError {
        code: status.as_u16(),
        message: String::from_utf8_lossy(body).into_owned(),
    }
}

/// Splits a byte stream of concatenated JSON values (NDJSON) into values, whatever the chunking.
#[derive(Debug, Default)]
pub struct NdjsonDecoder {
    buffer: Vec<u8>,
}

impl NdjsonDecoder {
    /// Adds a chunk and returns the values it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Value>, String> {
        self.buffer.extend_from_slice(chunk);
        let mut values = Vec::new();
        let mut consumed = 0;
        let mut items = serde_json::Deserializer::from_slice(&self.buffer).into_iter::<Value>();
        loop {
            match items.next() {
                Some(Ok(value)) => {
                    values.push(value);
                    consumed = items.byte_offset();
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => return Err(e.to_string()),
                None => {
                    consumed = items.byte_offset();
                    break;
                }
            }
        }
        self.buffer.drain(..consumed);
        if self.buffer.len() > MAX_ITEM_BYTES {
            return Err(format!("stream item larger than {MAX_ITEM_BYTES} bytes"));
        }
        Ok(values)
    }

    /// Checks that the stream did not end in the middle of a value.
    pub fn finish(&self) -> Result<(), String> {
        if self.buffer.iter().all(u8::is_ascii_whitespace) {
            Ok(())
        } else {
            Err("unexpected EOF".into())
        }
    }
}

/// The API error reported in `X-Stream-Error` trailers, if any (empty values mean "no error").
pub fn trailer_error(trailers: Option<&HeaderMap>) -> Option<ApiError> {
    let trailers = trailers?;
    let messages: Vec<String> = trailers
        .get_all("x-stream-error")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    // Go joins several errors with multierr: "a; b".
    (!messages.is_empty()).then(|| ApiError {
        code: 500,
        message: messages.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cluster_types::{GlobalPinInfo, Id, PeerId};

    use super::*;

    const CID: &str = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9";

    #[test]
    fn ndjson_decodes_across_chunk_boundaries() {
        let stream = b"{\"a\":1}\n{\"a\":2}\n{\"a\":\"x y\"}\n";
        for split in 0..stream.len() {
            let mut decoder = NdjsonDecoder::default();
            let mut values = decoder.push(&stream[..split]).unwrap();
            values.extend(decoder.push(&stream[split..]).unwrap());
            decoder.finish().unwrap();
            assert_eq!(values.len(), 3, "split at {split}");
            assert_eq!(values[2]["a"], "x y");
        }
        let mut truncated = NdjsonDecoder::default();
        assert!(truncated.push(b"{\"a\":1}{\"a\"").unwrap().len() == 1);
        assert!(truncated.finish().is_err());
        assert!(NdjsonDecoder::default().push(b"{\"a\":1} garbage").is_err());
    }

    #[test]
    fn go_nulls_decode_as_empty() {
        let peer = PeerId::from_ed25519_seed([1; 32]);
        let id: Id = decode_value(serde_json::json!({
            "id": peer.to_string(), "addresses": null, "cluster_peers": null, "error": "down", "ipfs": null
        }))
        .unwrap();
        assert!(id.addresses.is_empty());
        assert_eq!(id.error, "down");
        let info: GlobalPinInfo =
            decode_value(serde_json::json!({"cid": CID, "allocations": null, "metadata": null, "peer_map": null}))
                .unwrap();
        assert_eq!(info.peer_map, BTreeMap::new());
    }

    #[test]
    fn api_errors_come_from_json_or_raw_bodies() {
        let json = api_error_from(
            StatusCode::NOT_FOUND,
            br#"{"code":404,"message":"pin is not part of the pinset"}"#,
        );
        assert_eq!(
            json,
            ApiError {
                code: 404,
                message: "pin is not part of the pinset".into()
            }
        );
        let raw = api_error_from(StatusCode::BAD_GATEWAY, b"upstream down");
        assert_eq!(
            raw,
            ApiError {
                code: 502,
                message: "upstream down".into()
            }
        );
        let no_code = api_error_from(StatusCode::INTERNAL_SERVER_ERROR, br#"{"message":"boom"}"#);
        assert_eq!(no_code.code, 500);
    }

    #[test]
    fn stream_error_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.append("X-Stream-Error", "".parse().unwrap());
        assert_eq!(trailer_error(Some(&trailers)), None);
        trailers.append("X-Stream-Error", "peer down".parse().unwrap());
        trailers.append("X-Stream-Error", "disk full".parse().unwrap());
        assert_eq!(
            trailer_error(Some(&trailers)),
            Some(ApiError {
                code: 500,
                message: "peer down; disk full".into()
            })
        );
        assert_eq!(trailer_error(None), None);
    }
}
