//! Makes every HTTP/1.1 request look like it carries `TE: trailers`, so hyper sends the
//! `X-Stream-Error` trailer to every client, as Go's net/http does. hyper 1.x writes response
//! trailers only when the request said `TE: trailers` (see the REST server's module docs) and
//! offers no switch; Go sends them always ("Javascript-browser-land" clients rely on the header
//! being there, empty when all went well).
//!
//! Owns: a read-side wrapper around a connection that finds each request head and adds the
//! header line after the request line. It follows request framing only as far as it is sure:
//! heads without a body and bodies with `Content-Length`. On anything else (a chunked body, a
//! head over 64 KiB, something that does not parse) it stops touching the connection and passes
//! bytes through unchanged, which is exactly the behaviour without it.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use cluster_rt::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Says that the `TE: trailers` of a request was added here, not sent by the client: handlers
/// that must reach a client that cannot read trailers (the IPFS proxy's `add`) look for it.
pub(crate) const ADDED_HEADER: &str = "x-cluster-added-te";
const ADDED_MARKER: &[u8] = b"X-Cluster-Added-TE: trailers\r\n";

/// Whether the client itself asked for trailers (`TE: trailers` it sent, not one added here).
pub(crate) fn client_asked_for_trailers(headers: &hyper::HeaderMap) -> bool {
    if headers.contains_key(ADDED_HEADER) {
        return false;
    }
    headers
        .get_all("te")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("trailers"))
}

/// Longest request head we look into; longer ones switch to pass-through.
const HEAD_LIMIT: usize = 64 * 1024;

/// Where the byte stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Reading a request head.
    Head,
    /// Inside a body with this many bytes left.
    Body(u64),
    /// Not following any more: bytes pass unchanged.
    PassThrough,
}

/// A connection whose requests all say `TE: trailers`.
pub(crate) struct TrailersForEveryone<S> {
    inner: S,
    framing: Framing,
    /// The head read so far.
    head: Vec<u8>,
    /// Bytes ready for the reader.
    ready: VecDeque<u8>,
}

impl<S> TrailersForEveryone<S> {
    pub(crate) fn new(inner: S) -> TrailersForEveryone<S> {
        TrailersForEveryone {
            inner,
            framing: Framing::Head,
            head: Vec::new(),
            ready: VecDeque::new(),
        }
    }

    /// Runs newly read bytes through the framing, queueing what the reader gets.
    fn process(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.framing {
                Framing::PassThrough => {
                    self.ready.extend(data);
                    return;
                }
                Framing::Body(left) => {
                    let take = (left.min(data.len() as u64)) as usize;
                    self.ready.extend(&data[..take]);
                    data = &data[take..];
                    let left = left - take as u64;
                    self.framing = if left == 0 { Framing::Head } else { Framing::Body(left) };
                }
                Framing::Head => {
                    // Look for the end of the head across what is buffered and what came in.
                    let searched_from = self.head.len().saturating_sub(3);
                    self.head.extend_from_slice(data);
                    // hyper also ends lines with a bare LF; such heads are not ours to frame.
                    if has_bare_lf(&self.head, searched_from) {
                        self.give_up();
                        self.process_owned(Vec::new());
                        return;
                    }
                    let Some(end) = find(&self.head[searched_from..], b"\r\n\r\n").map(|i| searched_from + i + 4)
                    else {
                        if self.head.len() > HEAD_LIMIT {
                            self.give_up();
                        }
                        return;
                    };
                    let rest = self.head.split_off(end);
                    let head = std::mem::take(&mut self.head);
                    match rewrite(&head) {
                        Some((rewritten, framing)) => {
                            self.ready.extend(rewritten);
                            self.framing = framing;
                        }
                        None => {
                            self.ready.extend(head);
                            self.framing = Framing::PassThrough;
                        }
                    }
                    // Continue with the bytes after the head (owned copy: `data` was consumed).
                    self.process_owned(rest);
                    return;
                }
            }
        }
    }

    fn process_owned(&mut self, rest: Vec<u8>) {
        if !rest.is_empty() {
            self.process(&rest);
        }
    }

    fn give_up(&mut self) {
        let head = std::mem::take(&mut self.head);
        self.ready.extend(head);
        self.framing = Framing::PassThrough;
    }
}

/// Whether a `\n` at or after `from` comes without the `\r` before it.
fn has_bare_lf(bytes: &[u8], from: usize) -> bool {
    (from..bytes.len()).any(|i| bytes[i] == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The head with `TE: trailers` added after the request line, and the framing after it; `None`
/// when the head is not one we are sure about.
fn rewrite(head: &[u8]) -> Option<(Vec<u8>, Framing)> {
    let text = std::str::from_utf8(head).ok()?;
    let (request_line, headers) = text.split_once("\r\n")?;
    if !request_line.ends_with("HTTP/1.1") {
        return None;
    }
    let mut content_length: Option<u64> = None;
    let mut has_te = false;
    for line in headers.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            // A chunked body: its end is not followed here.
            return None;
        }
        if name.eq_ignore_ascii_case("content-length") {
            let length = value.trim().parse::<u64>().ok()?;
            if content_length.is_some_and(|known| known != length) {
                return None;
            }
            content_length = Some(length);
        }
        if name.eq_ignore_ascii_case("te") {
            has_te = true;
        }
    }
    let framing = match content_length {
        Some(length) if length > 0 => Framing::Body(length),
        _ => Framing::Head,
    };
    if has_te {
        // The client chose its own TE; leave it as sent.
        return Some((head.to_vec(), framing));
    }
    let mut rewritten = Vec::with_capacity(head.len() + 16 + ADDED_MARKER.len());
    rewritten.extend_from_slice(request_line.as_bytes());
    rewritten.extend_from_slice(b"\r\nTE: trailers\r\n");
    rewritten.extend_from_slice(ADDED_MARKER);
    rewritten.extend_from_slice(headers.as_bytes());
    Some((rewritten, framing))
}

impl<S: AsyncRead + Unpin> AsyncRead for TrailersForEveryone<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.ready.is_empty() {
                let n = self.ready.len().min(buf.remaining());
                let (front, back) = self.ready.as_slices();
                let from_front = n.min(front.len());
                buf.put_slice(&front[..from_front]);
                buf.put_slice(&back[..n - from_front]);
                self.ready.drain(..n);
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let filled = read.filled();
                    if filled.is_empty() {
                        // End of stream: hand over a partial head as it is.
                        if !self.head.is_empty() {
                            self.give_up();
                            continue;
                        }
                        return Poll::Ready(Ok(()));
                    }
                    let data = filled.to_vec();
                    self.process(&data);
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TrailersForEveryone<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes and returns what the reader sees.
    fn through(input: &[u8], step: usize) -> (Vec<u8>, Framing) {
        let mut wrapper = TrailersForEveryone::new(());
        for piece in input.chunks(step.max(1)) {
            wrapper.process(piece);
        }
        (wrapper.ready.iter().copied().collect(), wrapper.framing)
    }

    #[test]
    fn heads_get_the_header_and_bodies_pass_unchanged() {
        let input = b"GET /pins HTTP/1.1\r\nHost: x\r\n\r\nPOST /add HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /peers HTTP/1.1\r\nhost: y\r\n\r\n";
        let expected = b"GET /pins HTTP/1.1\r\nTE: trailers\r\nX-Cluster-Added-TE: trailers\r\nHost: x\r\n\r\nPOST /add HTTP/1.1\r\nTE: trailers\r\nX-Cluster-Added-TE: trailers\r\nContent-Length: 5\r\n\r\nhelloGET /peers HTTP/1.1\r\nTE: trailers\r\nX-Cluster-Added-TE: trailers\r\nhost: y\r\n\r\n";
        for step in [1, 2, 3, 7, 1000] {
            let (out, framing) = through(input, step);
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(expected),
                "step {step}"
            );
            assert_eq!(framing, Framing::Head);
        }
    }

    #[test]
    fn a_body_that_looks_like_a_request_is_left_alone() {
        let body = b"GET /evil HTTP/1.1\r\n\r\n";
        let mut input = format!("POST /pins/x HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        input.extend_from_slice(body);
        let (out, _) = through(&input, 4);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("\r\nTE: trailers").count(), 1, "{text}");
        assert!(text.ends_with("GET /evil HTTP/1.1\r\n\r\n"));
    }

    #[test]
    fn chunked_bodies_and_odd_heads_switch_to_pass_through() {
        let input =
            b"POST /add HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n";
        let (out, framing) = through(input, 3);
        assert_eq!(out, input.to_vec(), "unchanged");
        assert_eq!(framing, Framing::PassThrough);

        let old = b"GET / HTTP/1.0\r\n\r\n";
        assert_eq!(through(old, 100).0, old.to_vec());
        let own_te = b"GET / HTTP/1.1\r\nTE: gzip\r\n\r\n";
        assert_eq!(through(own_te, 100).0, own_te.to_vec());
        let conflicting = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
        let (out, framing) = through(conflicting, 100);
        assert_eq!(out, conflicting.to_vec());
        assert_eq!(framing, Framing::PassThrough);
    }

    #[test]
    fn bare_line_feeds_switch_to_pass_through() {
        // hyper reads `\n` alone as a line end: this head's Content-Length must not be missed.
        let input = b"POST /pins/x HTTP/1.1\r\nHost: a\nContent-Length: 5\r\n\r\nGET /x";
        let (out, framing) = through(input, 3);
        assert_eq!(out, input.to_vec());
        assert_eq!(framing, Framing::PassThrough);
        let short = b"GET / HTTP/1.1\n\n";
        let (out, framing) = through(short, 100);
        assert_eq!(out, short.to_vec(), "handed on at once, not held");
        assert_eq!(framing, Framing::PassThrough);
    }

    #[test]
    fn an_endless_head_is_passed_through_not_buffered() {
        let mut input = b"GET / HTTP/1.1\r\nX: ".to_vec();
        input.extend(std::iter::repeat_n(b'a', HEAD_LIMIT + 10));
        let (out, framing) = through(&input, 4096);
        assert_eq!(framing, Framing::PassThrough);
        assert_eq!(out.len(), input.len());
    }
}
