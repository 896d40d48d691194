//! Limits on an HTTP server's connections: Go's `net/http` deadlines, read from the same keys
//! of `service.json`, and a cap on connections at once.
//!
//! - `read_header_timeout`: a request head must arrive within it, counted from its first byte
//!   (from the connection's start for the first request).
//! - `idle_timeout`: how long a keep-alive connection waits for its next request.
//! - `read_timeout`: reading one whole request, head and body, from its first byte (0: none).
//! - `write_timeout`: from a request's head to the end of its answer (0: none; a long stream
//!   such as `GET /pins` of millions of pins is cut at this deadline, as in Go).
//! - `max_header_bytes`: a larger head is answered 431.
//! - `max_connections` (ours): at the cap, the connection idle the longest is closed to make
//!   room (waiting for its next request, or opened more than [`SILENT_GRACE`] ago without a
//!   byte sent); when none is idle the newcomer is answered 503. Idle connections can so never
//!   lock the API out; slow ones are bounded by the deadlines above.
//!
//! Deadlines are enforced on the connection's reads and writes ([`DeadlineIo`]), as Go does:
//! a read or write past its deadline fails and hyper closes the connection.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use cluster_rt::tokio;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

pub use crate::http_limits::{HttpLimits, MAX_HEADER_BYTES_MIN};

/// How long a new connection may stay silent before it counts as idle for the cap: a client
/// sends its request right after connecting.
pub const SILENT_GRACE: Duration = Duration::from_millis(250);

/// Where a connection is between requests, and its deadlines.
#[derive(Debug)]
struct ClockState {
    /// Waiting for the next request since then (`None`: reading or answering one).
    idle_since: Option<Instant>,
    /// When the request being read began (its first byte, or the connection's start).
    request_began: Instant,
    /// When the connection was accepted, and whether it has sent a byte since.
    accepted: Instant,
    spoke: bool,
    read_deadline: Option<Instant>,
    write_deadline: Option<Instant>,
    /// The tasks waiting on a read or a write: a new deadline must wake them so that they wait
    /// for it rather than for the old one (or none).
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
}

impl ClockState {
    fn wake(&mut self) {
        for waker in [self.read_waker.take(), self.write_waker.take()].into_iter().flatten() {
            waker.wake();
        }
    }
}

/// One connection's phase and deadlines, shared by its IO, its service and its answers.
#[derive(Debug)]
pub(crate) struct ConnClock {
    limits: Arc<HttpLimits>,
    state: Mutex<ClockState>,
    /// Wakes the connection's task when it is chosen to make room for a newcomer.
    evicted: Notify,
}

impl ConnClock {
    fn new(limits: Arc<HttpLimits>) -> ConnClock {
        let now = Instant::now();
        let read_deadline = Some(head_deadline(&limits, now));
        ConnClock {
            limits,
            state: Mutex::new(ClockState {
                idle_since: None,
                request_began: now,
                accepted: now,
                spoke: false,
                read_deadline,
                write_deadline: None,
                read_waker: None,
                write_waker: None,
            }),
            evicted: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes arrived: on an idle connection they begin the next request's head.
    fn bytes_read(&self) {
        let mut state = self.lock();
        state.spoke = true;
        if state.idle_since.take().is_some() {
            let now = Instant::now();
            state.request_began = now;
            state.read_deadline = Some(head_deadline(&self.limits, now));
        }
    }

    /// A request's head was read: its body has until `read_timeout`, its answer until
    /// `write_timeout`.
    pub(crate) fn request_started(&self) {
        let mut state = self.lock();
        state.idle_since = None;
        state.read_deadline = self.limits.read_timeout.map(|t| state.request_began + t);
        state.write_deadline = self.limits.write_timeout.map(|t| Instant::now() + t);
        state.wake();
    }

    /// The answer was written (or dropped): the connection waits for the next request.
    pub(crate) fn response_done(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        state.idle_since = Some(now);
        state.read_deadline = Some(now + self.limits.idle_timeout);
        state.write_deadline = None;
        state.wake();
    }

    /// Since when the connection is idle: waiting for its next request, or silent since it
    /// was accepted (once [`SILENT_GRACE`] has passed).
    fn idle_since(&self, now: Instant) -> Option<Instant> {
        let state = self.lock();
        match state.idle_since {
            Some(since) => Some(since),
            None if !state.spoke && now.duration_since(state.accepted) >= SILENT_GRACE => Some(state.accepted),
            None => None,
        }
    }

    /// Resolves when this connection is chosen to make room.
    pub(crate) async fn evicted(&self) {
        self.evicted.notified().await
    }
}

fn head_deadline(limits: &HttpLimits, began: Instant) -> Instant {
    let head = began + limits.read_header_timeout;
    match limits.read_timeout {
        Some(whole) => head.min(began + whole),
        None => head,
    }
}

/// The connections of one server, for the cap.
#[derive(Debug)]
pub(crate) struct ConnRegistry {
    limits: Arc<HttpLimits>,
    live: Mutex<HashMap<u64, Arc<ConnClock>>>,
    next_id: AtomicU64,
    refused: AtomicU64,
    evicted: AtomicU64,
    /// When a refusal was last logged (at most one warning per minute).
    last_warning: Mutex<Option<Instant>>,
}

/// What [`ConnRegistry::admit`] decided for a new connection.
pub(crate) enum Admission {
    /// Serve it; dropping the ticket forgets it.
    Serve(ConnTicket),
    /// Answer 503 and close: every connection is busy.
    Refuse,
}

/// A served connection's place in the registry.
pub(crate) struct ConnTicket {
    registry: Arc<ConnRegistry>,
    id: u64,
    /// Its clock.
    pub(crate) clock: Arc<ConnClock>,
}

impl Drop for ConnTicket {
    fn drop(&mut self) {
        self.registry
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl ConnRegistry {
    pub(crate) fn new(limits: HttpLimits) -> Arc<ConnRegistry> {
        Arc::new(ConnRegistry {
            limits: Arc::new(limits),
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            last_warning: Mutex::new(None),
        })
    }

    pub(crate) fn limits(&self) -> &HttpLimits {
        &self.limits
    }

    /// Admits a new connection: at the cap the connection idle the longest is closed to make
    /// room, and when none is idle the newcomer is refused.
    pub(crate) fn admit(self: &Arc<Self>, what: &str) -> Admission {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.len() >= self.limits.max_connections.max(1) {
            let now = Instant::now();
            let idlest = live
                .iter()
                .filter_map(|(id, clock)| clock.idle_since(now).map(|since| (since, *id)))
                .min();
            match idlest {
                Some((_, id)) => {
                    if let Some(clock) = live.remove(&id) {
                        clock.evicted.notify_one();
                    }
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
                    drop(live);
                    self.warn_refused(what, refused);
                    return Admission::Refuse;
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let clock = Arc::new(ConnClock::new(self.limits.clone()));
        live.insert(id, clock.clone());
        Admission::Serve(ConnTicket {
            registry: self.clone(),
            id,
            clock,
        })
    }

    fn warn_refused(&self, what: &str, refused: u64) {
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60)) {
            *last = Some(now);
            tracing::warn!(
                "{what}: {} connections are busy (max_connections); new ones are answered 503 \
                 ({refused} so far)",
                self.limits.max_connections
            );
        }
    }

    /// Connections served now.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.live.lock().unwrap().len()
    }

    /// Connections refused and idle connections closed to make room, since the start.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.refused.load(Ordering::Relaxed),
            self.evicted.load(Ordering::Relaxed),
        )
    }
}

/// The answer to a connection over the cap.
pub(crate) const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 56\r\n\r\n\
{\"code\":503,\"message\":\"too many connections, try again\"}";

/// A connection's stream with the deadlines of its [`ConnClock`] on its reads and writes.
pub(crate) struct DeadlineIo<S> {
    inner: S,
    clock: Arc<ConnClock>,
    read_timer: Option<(Instant, Pin<Box<Sleep>>)>,
    write_timer: Option<(Instant, Pin<Box<Sleep>>)>,
}

impl<S> DeadlineIo<S> {
    pub(crate) fn new(inner: S, clock: Arc<ConnClock>) -> DeadlineIo<S> {
        DeadlineIo {
            inner,
            clock,
            read_timer: None,
            write_timer: None,
        }
    }
}

/// Whether `deadline` has passed, polling a timer for it (so the task wakes when it does).
fn expired(timer: &mut Option<(Instant, Pin<Box<Sleep>>)>, deadline: Option<Instant>, cx: &mut Context<'_>) -> bool {
    let Some(deadline) = deadline else {
        *timer = None;
        return false;
    };
    match timer {
        Some((at, sleep)) if *at == deadline => sleep.as_mut().poll(cx).is_ready(),
        _ => {
            let mut sleep = Box::pin(tokio::time::sleep_until(deadline));
            let ready = sleep.as_mut().poll(cx).is_ready();
            *timer = Some((deadline, sleep));
            ready
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} deadline passed"))
}

impl<S: AsyncRead + Unpin> AsyncRead for DeadlineIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let deadline = this.clock.lock().read_deadline;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Poll::Ready(Err(timed_out("read")));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.clock.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if expired(&mut this.read_timer, deadline, cx) {
                    return Poll::Ready(Err(timed_out("read")));
                }
                let mut state = this.clock.lock();
                if state.read_deadline != deadline {
                    // Changed while the inner read was polled: look again at once.
                    cx.waker().wake_by_ref();
                } else {
                    state.read_waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> DeadlineIo<S> {
    fn guard_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let deadline = self.clock.lock().write_deadline;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Poll::Ready(Err(timed_out("write")));
        }
        match op(Pin::new(&mut self.inner), cx) {
            Poll::Pending => {
                if expired(&mut self.write_timer, deadline, cx) {
                    return Poll::Ready(Err(timed_out("write")));
                }
                let mut state = self.clock.lock();
                if state.write_deadline != deadline {
                    cx.waker().wake_by_ref();
                } else {
                    state.write_waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.guard_write(cx, |inner, cx| inner.poll_write(cx, data))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.guard_write(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard_write(cx, |inner, cx| inner.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An answer's body that tells the connection's clock when it is done (ended or dropped).
pub(crate) struct TrackedBody<B> {
    inner: Pin<Box<B>>,
    clock: Option<Arc<ConnClock>>,
}

impl<B> TrackedBody<B> {
    pub(crate) fn new(inner: B, clock: Arc<ConnClock>) -> TrackedBody<B> {
        TrackedBody {
            inner: Box::pin(inner),
            clock: Some(clock),
        }
    }

    fn done(&mut self) {
        if let Some(clock) = self.clock.take() {
            clock.response_done();
        }
    }
}

impl<B> Drop for TrackedBody<B> {
    fn drop(&mut self) {
        self.done();
    }
}

impl<B: Body<Data = Bytes>> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.done();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: usize) -> HttpLimits {
        HttpLimits {
            max_connections,
            ..HttpLimits::rest_default()
        }
    }

    #[test]
    fn the_connection_idle_longest_makes_room_and_busy_ones_are_never_evicted() {
        let registry = ConnRegistry::new(limits(2));
        let Admission::Serve(first) = registry.admit("test") else {
            panic!("first refused")
        };
        let Admission::Serve(second) = registry.admit("test") else {
            panic!("second refused")
        };
        // Both are reading their first request: nobody idle, the third is refused.
        first.clock.bytes_read();
        second.clock.bytes_read();
        assert!(matches!(registry.admit("test"), Admission::Refuse));
        assert_eq!(registry.counts(), (1, 0));
        first.clock.request_started();
        first.clock.response_done();
        // The first waits for its next request: it makes room.
        let Admission::Serve(third) = registry.admit("test") else {
            panic!("third refused")
        };
        assert_eq!(registry.counts(), (1, 1));
        assert_eq!(registry.live(), 2);
        drop(first);
        assert_eq!(registry.live(), 2, "the evicted one was already forgotten");
        drop((second, third));
        assert_eq!(registry.live(), 0);
    }

    #[test]
    fn a_connection_silent_past_the_grace_counts_as_idle() {
        let clock = ConnClock::new(Arc::new(limits(1)));
        let accepted = clock.lock().accepted;
        assert_eq!(
            clock.idle_since(accepted),
            None,
            "a client gets time to send its request"
        );
        assert_eq!(clock.idle_since(accepted + SILENT_GRACE), Some(accepted));
        clock.bytes_read();
        assert_eq!(
            clock.idle_since(accepted + SILENT_GRACE),
            None,
            "it spoke: reading its head"
        );
    }

    #[test]
    fn deadlines_follow_the_phases_of_a_request() {
        let limits = Arc::new(HttpLimits {
            read_timeout: Some(Duration::from_secs(30)),
            write_timeout: Some(Duration::from_secs(50)),
            ..HttpLimits::rest_default()
        });
        let clock = ConnClock::new(limits.clone());
        let state = |clock: &ConnClock| {
            let s = clock.lock();
            (s.idle_since.is_some(), s.read_deadline, s.write_deadline)
        };
        let (idle, read, write) = state(&clock);
        assert!(!idle && write.is_none());
        let began = clock.lock().request_began;
        assert_eq!(
            read,
            Some(began + Duration::from_secs(5)),
            "the first head: read_header_timeout"
        );
        clock.request_started();
        let (_, read, write) = state(&clock);
        assert_eq!(
            read,
            Some(began + Duration::from_secs(30)),
            "the body: read_timeout from the first byte"
        );
        assert!(write.is_some());
        clock.response_done();
        let (idle, read, write) = state(&clock);
        let since = clock.lock().idle_since.unwrap();
        assert!(idle && write.is_none());
        assert_eq!(
            read,
            Some(since + Duration::from_secs(120)),
            "between requests: idle_timeout"
        );
        clock.bytes_read();
        let (idle, read, _) = state(&clock);
        let began = clock.lock().request_began;
        assert!(!idle);
        assert_eq!(read, Some(began + Duration::from_secs(5)), "the next head");
        clock.bytes_read();
        assert_eq!(
            state(&clock).1,
            Some(began + Duration::from_secs(5)),
            "more bytes do not extend it"
        );
    }
}
