//! The bodies of REST responses: empty, whole, or NDJSON streamed as the backend yields items
//! (several lines to a frame), ending with the `X-Stream-Error` trailer.
//!
//! ## Trailers with hyper 1.x (read from `hyper-1.12.0/src/proto/h1/`)
//!
//! - `conn.rs`: when a request head is read, `allow_trailer_fields = headers::te_is_trailers(..)`, i.e.
//!   the request carries `TE: trailers` (any case, possibly in a comma list). `write_trailers` on the
//!   server side returns early ("trailers not allowed to be sent") when that flag is false; the body
//!   then ends with a plain last chunk (`0\r\n\r\n`), so the trailer is silently dropped.
//! - `role.rs`: the `Trailer` response header is written (and parsed into the list of allowed trailer
//!   names) only when the response may be chunked (not HTTP/1.0, not 204/304/1xx, not HEAD).
//! - `encode.rs`: `encode_trailers` only emits fields named in the `Trailer` response header and drops
//!   forbidden names (`Content-Type`, `Content-Length`, ...); `X-Stream-Error` is allowed.
//!
//! hyper offers no switch to send trailers anyway, so every connection is read through
//! [`TrailersForEveryone`](crate::te_trailers), which adds `TE: trailers` to each request head it
//! can frame with certainty: every client gets `X-Stream-Error` (empty when the stream was fine),
//! as Go sends it. Where it cannot (a request with a chunked body earlier on the connection, an
//! HTTP/1.0 client), a stream that saw an error is ended by failing the body instead: hyper then
//! closes the connection without the final zero-length chunk, so the client sees an incomplete
//! response rather than a clean but silently truncated one.

use std::pin::Pin as StdPin;
use std::task::{Context, Poll};

use bytes::Bytes;
use cluster_types::JsonLine;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;

use crate::{PageStream, ResultStream};

/// At most this many `X-Stream-Error` values are kept per stream; clients (hyper among them) reject
/// trailer sections over 16 KiB, and a stream may fail on every item.
const MAX_STREAM_ERRORS: usize = 10;

/// Each `X-Stream-Error` value is cut to this many bytes, for the same reason.
const MAX_STREAM_ERROR_LEN: usize = 1024;

/// How many stream items one body poll may consume: a frame holds at most this many lines, and a
/// run of errors (which make no line) yields to the runtime after this many.
const MAX_ITEMS_PER_POLL: usize = 256;

/// A streamed body's frame is cut once it holds this many bytes of lines.
const FRAME_TARGET: usize = 64 * 1024;

/// A frame's first allocation: a full frame plus one long line, so that filling it seldom grows it.
const FRAME_BUFFER: usize = FRAME_TARGET + 4 * 1024;

/// The trailer that carries errors met after a stream started.
const STREAM_ERROR_TRAILER: &str = "x-stream-error";

/// Appends compact JSON plus `\n` to `out`; on error `out` is as it was.
fn append_line<T: JsonLine>(out: &mut Vec<u8>, value: &T) -> Result<(), String> {
    let start = out.len();
    match value.write_json(out) {
        Ok(()) => {
            out.push(b'\n');
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(format!("error encoding response: {e}"))
        }
    }
}

/// The first line of a stream.
pub(crate) fn first_line<T: JsonLine>(value: &T) -> Result<Bytes, String> {
    let mut line = Vec::new();
    append_line(&mut line, value)?;
    Ok(Bytes::from(line))
}

/// Compact JSON plus `\n`.
pub(crate) fn encode_line<T: Serialize>(value: &T) -> Result<Bytes, String> {
    let mut line = serde_json::to_vec(value).map_err(|e| format!("error encoding response: {e}"))?;
    line.push(b'\n');
    Ok(Bytes::from(line))
}

/// Makes an error message a valid header value: control characters become spaces, and long
/// messages are cut at a character boundary.
fn header_safe(message: &str) -> HeaderValue {
    let mut end = message.len().min(MAX_STREAM_ERROR_LEN);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let cleaned: String = message[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    HeaderValue::from_str(&cleaned).unwrap_or_else(|_| HeaderValue::from_static("stream error"))
}

/// The body of every response.
pub(crate) enum ResponseBody {
    Empty,
    Full(Option<Bytes>),
    Stream(Box<NdjsonBody>),
}

/// Why a streamed body was cut short (see the module docs: no trailer could carry the error).
#[derive(Debug, thiserror::Error)]
#[error("stream failed and the client does not accept trailers: {0}")]
pub(crate) struct StreamAborted(String);

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = StreamAborted;

    fn poll_frame(
        self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.get_mut() {
            ResponseBody::Empty => Poll::Ready(None),
            ResponseBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ResponseBody::Stream(stream) => stream.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Empty => true,
            ResponseBody::Full(data) => data.is_none(),
            ResponseBody::Stream(stream) => stream.finished,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Empty | ResponseBody::Full(None) => SizeHint::with_exact(0),
            ResponseBody::Full(Some(data)) => SizeHint::with_exact(data.len() as u64),
            // Unknown length: hyper uses chunked encoding, which trailers need.
            ResponseBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// Where NDJSON lines come from; object-safe so the body need not be generic.
trait LineSource: Send {
    /// Appends the next encoded line to `out`; or gives an error message, or `None` at the end.
    fn poll_line_into(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Poll<Option<Result<(), String>>>;
}

struct ChannelSource<T>(ResultStream<T>);

impl<T: JsonLine + Send> LineSource for ChannelSource<T> {
    fn poll_line_into(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Poll<Option<Result<(), String>>> {
        self.0.poll_recv(cx).map(|item| {
            item.map(|result| match result {
                Ok(value) => append_line(out, &value),
                Err(error) => Err(error.to_string()),
            })
        })
    }
}

/// The items of a [`PageStream`], the rest of the current page first.
struct PageSource<T> {
    pages: PageStream<T>,
    page: std::vec::IntoIter<T>,
}

impl<T: JsonLine + Send> LineSource for PageSource<T> {
    fn poll_line_into(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Poll<Option<Result<(), String>>> {
        loop {
            if let Some(value) = self.page.next() {
                return Poll::Ready(Some(append_line(out, &value)));
            }
            match self.pages.poll_recv(cx) {
                Poll::Ready(Some(Ok(page))) => self.page = page.into_iter(),
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error.to_string()))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// An NDJSON body: one line per item, produced as the backend yields them (never buffered), then
/// the `X-Stream-Error` trailer.
pub(crate) struct NdjsonBody {
    first: Option<Bytes>,
    source: Box<dyn LineSource>,
    errors: Vec<String>,
    omitted_errors: usize,
    /// Whether the client sent `TE: trailers`.
    trailers: bool,
    /// The source said it has no more lines (the trailers are still to go).
    source_ended: bool,
    finished: bool,
}

impl NdjsonBody {
    fn record_error(&mut self, message: String) {
        tracing::warn!(error = %message, "REST API: error in a streamed response");
        if self.errors.len() < MAX_STREAM_ERRORS {
            self.errors.push(message);
        } else {
            self.omitted_errors += 1;
        }
    }

    fn trailer_map(&self) -> HeaderMap {
        let name = HeaderName::from_static(STREAM_ERROR_TRAILER);
        let mut map = HeaderMap::new();
        if self.errors.is_empty() {
            // Always present, empty when fine (Go does this for browser clients).
            map.insert(name.clone(), HeaderValue::from_static(""));
        }
        for error in &self.errors {
            map.append(name.clone(), header_safe(error));
        }
        if self.omitted_errors > 0 {
            map.append(
                name,
                header_safe(&format!("{} more errors omitted", self.omitted_errors)),
            );
        }
        map
    }

    /// The lines ready now, up to [`FRAME_TARGET`] bytes, go out as one frame (one chunk, one
    /// write), so a fast source is not written a line at a time; a slow one is not waited for.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StreamAborted>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if self.finished {
            return Poll::Ready(None);
        }
        let mut batch = Vec::new();
        let mut waiting = false;
        for _ in 0..MAX_ITEMS_PER_POLL {
            match self.source.poll_line_into(cx, &mut batch) {
                Poll::Pending => {
                    waiting = true;
                    break;
                }
                Poll::Ready(Some(Ok(()))) => {
                    if batch.len() >= FRAME_TARGET {
                        break;
                    }
                    // Lines are ready: room for a frame at once, but not for a poll that finds none.
                    if batch.capacity() < FRAME_BUFFER {
                        batch.reserve(FRAME_BUFFER - batch.len());
                    }
                }
                // Later items still go out; the error is reported at the end.
                Poll::Ready(Some(Err(message))) => self.record_error(message),
                Poll::Ready(None) => {
                    self.source_ended = true;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(batch)))));
        }
        if self.source_ended {
            self.finished = true;
            if !self.errors.is_empty() && !self.trailers {
                return Poll::Ready(Some(Err(StreamAborted(self.errors.join("; ")))));
            }
            return Poll::Ready(Some(Ok(Frame::trailers(self.trailer_map()))));
        }
        if !waiting {
            // Only errors so far in this poll: let other tasks run, then continue.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// An NDJSON body: `first` (the line already read, if any), then a line per item of `items`.
pub(crate) fn ndjson<T: JsonLine + Send + 'static>(
    first: Option<Bytes>,
    items: ResultStream<T>,
    trailers: bool,
) -> ResponseBody {
    ndjson_from(first, Box::new(ChannelSource(items)), trailers)
}

/// An NDJSON body: `first`, then the rest of `page`, then a line per item of the later `pages`.
pub(crate) fn ndjson_pages<T: JsonLine + Send + 'static>(
    first: Bytes,
    page: std::vec::IntoIter<T>,
    pages: PageStream<T>,
    trailers: bool,
) -> ResponseBody {
    ndjson_from(Some(first), Box::new(PageSource { pages, page }), trailers)
}

fn ndjson_from(first: Option<Bytes>, source: Box<dyn LineSource>, trailers: bool) -> ResponseBody {
    ResponseBody::Stream(Box::new(NdjsonBody {
        first,
        source,
        errors: Vec::new(),
        omitted_errors: 0,
        trailers,
        source_ended: false,
        finished: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_safe_strips_controls_and_truncates() {
        assert_eq!(header_safe("a\nb\r\tc").to_str().unwrap(), "a b  c");
        let long = "é".repeat(MAX_STREAM_ERROR_LEN);
        assert!(header_safe(&long).len() <= MAX_STREAM_ERROR_LEN);
    }
}
