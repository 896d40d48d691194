//! [`MultipartDecoder`]: a `multipart/form-data` (or `multipart/mixed`) upload, pushed in the
//! chunks the connection delivers, turned into parts and their bytes.
//!
//! ```text
//! push(chunk) ─► next_event() ─► Part(headers) | Data(bytes) | End | None (push more)
//! ```
//!
//! Owns: finding delimiters, reading part headers (`Content-Disposition` name and filename,
//! `Content-Type`) and handing out part data as soon as it cannot be the start of a delimiter.
//! The caller pushes the next chunk only after it has taken every event of the previous one,
//! so the upload is read exactly as fast as the caller stores it: what the decoder holds is one
//! chunk plus at most a delimiter's length, or one part's headers ([`PART_HEADERS_MAX`]). A
//! body that never shows its boundary fails after [`PREAMBLE_MAX`] bytes.
//!
//! Does not own: what the parts mean (the add route), or reading the connection. Pure and
//! synchronous.

use bytes::{Buf, Bytes, BytesMut};

/// Longest accepted block of one part's headers.
pub(crate) const PART_HEADERS_MAX: usize = 64 * 1024;
/// Bytes accepted before the first delimiter.
pub(crate) const PREAMBLE_MAX: usize = 1 << 20;
/// Longest accepted boundary (RFC 2046 allows 70 characters).
const BOUNDARY_MAX: usize = 200;

/// The headers of one part, as far as an upload needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartHeaders {
    /// `Content-Disposition` `name`.
    pub name: Option<String>,
    /// `Content-Disposition` `filename` (or `filename*`), as sent: not unescaped.
    pub filename: Option<String>,
    /// `Content-Type`, as sent.
    pub content_type: Option<String>,
}

impl PartHeaders {
    /// The media type without parameters, lower case (`application/x-directory`).
    pub(crate) fn essence(&self) -> Option<String> {
        self.content_type
            .as_deref()
            .map(|value| value.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
    }
}

/// What the decoder found next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MultipartEvent {
    /// A part begins; its data follows.
    Part(PartHeaders),
    /// More bytes of the current part.
    Data(Bytes),
    /// The closing delimiter: no more parts.
    End,
}

/// Why an upload is not a valid multipart body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct MultipartError(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter; the count is bytes passed over.
    Preamble(usize),
    /// Just after a delimiter: `--` ends the body, else a line break starts a part.
    AfterDelimiter,
    /// Reading one part's headers; the count is bytes already searched for their end, so a
    /// header block that arrives a byte at a time is not searched again from its start.
    Headers(usize),
    /// Reading one part's data.
    Body,
    /// After the closing delimiter: the rest is ignored.
    Done,
}

/// What follows a delimiter.
enum AfterDelimiter {
    NeedMore,
    Closed,
    PartFollows,
}

/// Decodes one multipart body. See the module documentation.
#[derive(Debug)]
pub(crate) struct MultipartDecoder {
    /// `\r\n--<boundary>`: what ends a part's data.
    delimiter: Vec<u8>,
    state: State,
    buffer: BytesMut,
}

impl MultipartDecoder {
    /// A decoder for parts separated by `boundary`.
    pub(crate) fn new(boundary: &str) -> Result<MultipartDecoder, MultipartError> {
        if boundary.is_empty() || boundary.len() > BOUNDARY_MAX {
            return Err(MultipartError(format!(
                "the multipart boundary must be 1 to {BOUNDARY_MAX} bytes long"
            )));
        }
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        // The first delimiter may start the body without a line break before it.
        let mut buffer = BytesMut::new();
        buffer.extend_from_slice(b"\r\n");
        Ok(MultipartDecoder {
            delimiter,
            state: State::Preamble(0),
            buffer,
        })
    }

    /// Adds the next bytes of the body. Take every event of the previous bytes first.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if self.state != State::Done {
            self.buffer.extend_from_slice(chunk);
        }
    }

    /// The next event, or `None` when more bytes are needed.
    pub(crate) fn next_event(&mut self) -> Result<Option<MultipartEvent>, MultipartError> {
        loop {
            match self.state {
                State::Preamble(passed) => {
                    if !self.skip_preamble(passed)? {
                        return Ok(None);
                    }
                }
                State::AfterDelimiter => match self.after_delimiter()? {
                    AfterDelimiter::NeedMore => return Ok(None),
                    AfterDelimiter::Closed => return Ok(Some(MultipartEvent::End)),
                    AfterDelimiter::PartFollows => {}
                },
                State::Headers(searched) => return self.headers(searched).map(|h| h.map(MultipartEvent::Part)),
                State::Body => {
                    if let Some(at) = find(&self.buffer, &self.delimiter) {
                        if at > 0 {
                            return Ok(Some(MultipartEvent::Data(self.buffer.split_to(at).freeze())));
                        }
                        self.buffer.advance(self.delimiter.len());
                        self.state = State::AfterDelimiter;
                        continue;
                    }
                    // The last bytes could be the start of a delimiter: they wait for more.
                    let safe = self.buffer.len().saturating_sub(self.delimiter.len() - 1);
                    if safe == 0 {
                        return Ok(None);
                    }
                    return Ok(Some(MultipartEvent::Data(self.buffer.split_to(safe).freeze())));
                }
                State::Done => return Ok(None),
            }
        }
    }

    /// Whether the closing delimiter was read; call when the body ended.
    pub(crate) fn finish(&self) -> Result<(), MultipartError> {
        match self.state {
            State::Done => Ok(()),
            State::Preamble(_) => Err(MultipartError("no multipart boundary in the upload".into())),
            _ => Err(MultipartError(
                "the upload ended before its closing multipart boundary".into(),
            )),
        }
    }

    /// Drops bytes up to the first delimiter; returns whether it was found.
    fn skip_preamble(&mut self, passed: usize) -> Result<bool, MultipartError> {
        if let Some(at) = find(&self.buffer, &self.delimiter) {
            self.buffer.advance(at + self.delimiter.len());
            self.state = State::AfterDelimiter;
            return Ok(true);
        }
        let keep = self.delimiter.len() - 1;
        let dropped = self.buffer.len().saturating_sub(keep);
        self.buffer.advance(dropped);
        let passed = passed + dropped;
        if passed > PREAMBLE_MAX {
            return Err(MultipartError(format!(
                "no multipart boundary within the first {PREAMBLE_MAX} bytes"
            )));
        }
        self.state = State::Preamble(passed);
        Ok(false)
    }

    /// After a delimiter: `--` closes the body; otherwise optional padding and a line break.
    fn after_delimiter(&mut self) -> Result<AfterDelimiter, MultipartError> {
        if self.buffer.len() < 2 {
            return Ok(AfterDelimiter::NeedMore);
        }
        if self.buffer.starts_with(b"--") {
            self.state = State::Done;
            self.buffer.clear();
            return Ok(AfterDelimiter::Closed);
        }
        let padding = self.buffer.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
        if padding > BOUNDARY_MAX {
            return Err(MultipartError("a multipart delimiter line is too long".into()));
        }
        let rest = &self.buffer[padding..];
        let line_break = if rest.starts_with(b"\r\n") {
            2
        } else if rest.starts_with(b"\n") {
            1
        } else if rest.is_empty() || rest == b"\r" {
            return Ok(AfterDelimiter::NeedMore);
        } else {
            return Err(MultipartError(
                "a multipart delimiter is followed by neither a line break nor \"--\"".into(),
            ));
        };
        self.buffer.advance(padding + line_break);
        self.state = State::Headers(0);
        Ok(AfterDelimiter::PartFollows)
    }

    /// One part's headers, once they are all there.
    fn headers(&mut self, searched: usize) -> Result<Option<PartHeaders>, MultipartError> {
        let too_long = || {
            MultipartError(format!(
                "the headers of a multipart part are longer than {PART_HEADERS_MAX} bytes"
            ))
        };
        // The end is a blank line: "\r\n\r\n" or "\n\n" (or the block is empty).
        let (block, end) = if self.buffer.starts_with(b"\r\n") {
            (0, 2)
        } else if self.buffer.starts_with(b"\n") {
            (0, 1)
        } else {
            let from = searched.saturating_sub(3);
            let found = memchr::memchr_iter(b'\n', &self.buffer[from..])
                .map(|at| from + at)
                .find_map(|at| match (self.buffer.get(at + 1), self.buffer.get(at + 2)) {
                    (Some(b'\n'), _) => Some((at, at + 2)),
                    (Some(b'\r'), Some(b'\n')) => Some((at, at + 3)),
                    _ => None,
                });
            match found {
                // The block ends before the line break that ends its last line.
                Some((line_end, end)) => (
                    line_end.saturating_sub(usize::from(self.buffer[..line_end].ends_with(b"\r"))),
                    end,
                ),
                None => {
                    if self.buffer.len() > PART_HEADERS_MAX {
                        return Err(too_long());
                    }
                    self.state = State::Headers(self.buffer.len());
                    return Ok(None);
                }
            }
        };
        if block > PART_HEADERS_MAX {
            return Err(too_long());
        }
        let text = String::from_utf8_lossy(&self.buffer[..block]).into_owned();
        self.buffer.advance(end);
        self.state = State::Body;
        Ok(Some(parse_headers(&text)))
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// The part headers an upload uses, from the header block (lines `Name: value`).
fn parse_headers(text: &str) -> PartHeaders {
    let mut headers = PartHeaders::default();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("content-type") {
            headers.content_type = Some(value.to_string());
        } else if name.trim().eq_ignore_ascii_case("content-disposition") {
            for (key, param) in disposition_params(value) {
                match key.as_str() {
                    "name" => headers.name = Some(param),
                    "filename" if headers.filename.is_none() => headers.filename = Some(param),
                    // RFC 5987: `filename*=UTF-8''<percent-encoded>` wins over `filename`.
                    "filename*" => headers.filename = Some(extended_value(&param)),
                    _ => {}
                }
            }
        }
    }
    headers
}

/// The `key=value` parameters after the disposition type; values may be quoted strings with
/// backslash escapes. Keys are lower-cased.
fn disposition_params(value: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = value.chars().peekable();
    // Skip the disposition type (`form-data`).
    for c in chars.by_ref() {
        if c == ';' {
            break;
        }
    }
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ';') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return params;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut param = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => param.extend(chars.next()),
                    other => param.push(other),
                }
            }
            // Up to the next separator.
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
            }
        } else {
            param = chars
                .by_ref()
                .take_while(|c| *c != ';')
                .collect::<String>()
                .trim()
                .to_string();
        }
        params.push((key.trim().to_ascii_lowercase(), param));
    }
}

/// An RFC 5987 extended value (`UTF-8''a%20b`) decoded; anything else as it is.
fn extended_value(value: &str) -> String {
    let Some((charset, rest)) = value.split_once('\'') else {
        return value.to_string();
    };
    let Some((_language, encoded)) = rest.split_once('\'') else {
        return value.to_string();
    };
    if !charset.eq_ignore_ascii_case("utf-8") {
        return value.to_string();
    }
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
#[path = "multipart_test.rs"]
mod multipart_test;
