//! The HTTP/1.1 server loop the REST API and the IPFS proxy share: accepting on every listener
//! (and a libp2p tunnel), one task per connection, keep-alive, the connection limits of
//! [`crate::conn_limits`], TLS, and a graceful then forced shutdown.
//!
//! Owns: connections. Does not own: what a request means (each server passes a [`Handler`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin as StdPin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cluster_rt::tokio;
use futures::StreamExt as _;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{mpsc, watch};

use crate::conn_limits::{
    Admission, ConnRegistry, ConnTicket, DeadlineIo, HttpLimits, TrackedBody, MAX_HEADER_BYTES_MIN,
    TOO_MANY_CONNECTIONS,
};
use crate::listen::{incoming, Accepted, BoundListener, TunnelConnection};
use crate::te_trailers::TrailersForEveryone;

/// How long in-flight requests may run after shutdown begins before their connections are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Where the server is in its life; connections watch it to close gracefully, then forcibly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Draining,
    Closing,
}

/// Answers one request (an HTTP server's whole application logic).
pub(crate) type Handler<B> =
    Arc<dyn Fn(Request<Incoming>) -> StdPin<Box<dyn Future<Output = Response<B>> + Send>> + Send + Sync>;

/// The HTTP/1.1 server loop shared by the REST API and the IPFS proxy: accepts on `listeners`
/// (and takes `tunnel`'s connections) within `limits` until `shutdown` completes, then lets
/// in-flight requests finish for up to 5 s and closes the rest.
pub(crate) async fn serve_http<B>(
    listeners: Vec<BoundListener>,
    tunnel: Option<mpsc::Receiver<TunnelConnection>>,
    what: &'static str,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: HttpLimits,
    handler: Handler<B>,
    shutdown: impl Future<Output = ()>,
) where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let scheme = if tls.is_some() { "HTTPS" } else { "HTTP" };
    for listener in &listeners {
        tracing::info!(addr = %listener.address(), "{what} ({scheme}) listening");
    }
    let mut incoming = match incoming(listeners, tunnel) {
        Ok(incoming) => incoming,
        Err(e) => {
            tracing::error!(error = %e, "{what}: cannot register the listeners");
            return;
        }
    };
    let registry = ConnRegistry::new(limits);
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    // Every connection task holds a sender; `recv` returns `None` once all of them are gone.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = incoming.next() => match accepted {
                Some(Ok(Accepted { io, peer, tunnelled })) => {
                    let handler = handler.clone();
                    let phase = phase_rx.clone();
                    let alive = alive_tx.clone();
                    let tls = tls.clone().filter(|_| !tunnelled);
                    let admission = registry.admit(what);
                    let handshake_timeout = registry.limits().read_header_timeout;
                    let max_header_bytes = registry.limits().max_header_bytes;
                    cluster_rt::spawn(async move {
                        let stream: Box<dyn crate::listen::ConnectionIo> = match tls {
                            None => io,
                            Some(acceptor) => match cluster_rt::timeout(handshake_timeout, acceptor.accept(io)).await {
                                Ok(Ok(stream)) => Box::new(stream),
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, "{what}: TLS handshake failed: {e}");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "{what}: TLS handshake timed out");
                                    return;
                                }
                            },
                        };
                        match admission {
                            Admission::Serve(ticket) => {
                                serve_connection(stream, peer, handler, phase, tunnelled, &ticket, max_header_bytes).await
                            }
                            Admission::Refuse => refuse(stream).await,
                        }
                        drop(alive);
                    });
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "{what}: accept failed");
                    cluster_rt::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
                // Only a tunnel, and its sender is gone: nothing more arrives before shutdown.
                None => {
                    shutdown.as_mut().await;
                    break;
                }
            },
        }
    }
    // Closes the listeners and removes their socket files.
    drop(incoming);
    drop(alive_tx);
    tracing::info!("{what}: shutting down");
    let _ = phase_tx.send(Phase::Draining);
    if cluster_rt::timeout(SHUTDOWN_GRACE, alive_rx.recv()).await.is_err() {
        tracing::warn!("{what}: requests still running after {SHUTDOWN_GRACE:?}; closing their connections");
        let _ = phase_tx.send(Phase::Closing);
        // Connections drop at their next poll; the bound only guards against a stuck task.
        let _ = cluster_rt::timeout(Duration::from_secs(1), alive_rx.recv()).await;
    }
}

/// Serves one connection (HTTP/1.1 with keep-alive) until it ends or the server shuts down.
/// `half_close`: the client may close its sending side once the request is out and still get
/// its answer (libp2p-http clients do). Elsewhere that EOF means the client left, and hyper
/// then stops the work in flight.
async fn serve_connection<S, B>(
    stream: S,
    peer: String,
    handler: Handler<B>,
    mut phase: watch::Receiver<Phase>,
    half_close: bool,
    ticket: &ConnTicket,
    max_header_bytes: usize,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let clock = ticket.clock.clone();
    let service_clock = clock.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        service_clock.request_started();
        let response = handler(request);
        let clock = service_clock.clone();
        async move { Ok::<_, Infallible>(response.await.map(|body| TrackedBody::new(body, clock))) }
    });
    let mut builder = http1::Builder::new();
    // The deadlines are on the stream (DeadlineIo); hyper's own header timer (30 s by default)
    // would also run between requests and cut idle_timeout short.
    builder
        .keep_alive(true)
        .half_close(half_close)
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_header_size(max_header_bytes.max(MAX_HEADER_BYTES_MIN));
    let stream = DeadlineIo::new(TrailersForEveryone::new(stream), clock.clone());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        // Idle, and chosen to make room for a new connection.
        _ = clock.evicted() => return,
        // An error means the server was dropped: fall through and close.
        _ = phase.wait_for(|p| *p != Phase::Running) => {}
    }
    // Finish the request in flight (if any), then close instead of waiting for another one.
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = phase.wait_for(|p| *p == Phase::Closing) => {}
    }
}

/// Answers a connection over the cap with 503 and closes it.
async fn refuse<S: tokio::io::AsyncWrite + Unpin>(mut stream: S) {
    use tokio::io::AsyncWriteExt;
    let _ = cluster_rt::timeout(Duration::from_secs(1), async {
        stream.write_all(TOO_MANY_CONNECTIONS).await?;
        stream.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_types::HttpAddress;
    use http_body_util::Full;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const REQUEST: &[u8] = b"GET /id HTTP/1.1\r\nHost: x\r\n\r\n";

    /// A server answering "ok" to everything within `limits`; its address and its stopper.
    fn start(limits: HttpLimits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = BoundListener::bind(&HttpAddress::Tcp("127.0.0.1:0".into())).unwrap();
        let addr = listener.tcp_addr().unwrap();
        // Reads the whole body first, as a handler of uploads does.
        let handler: Handler<Full<Bytes>> = Arc::new(|request: Request<Incoming>| {
            Box::pin(async move {
                use http_body_util::BodyExt;
                let _ = request.into_body().collect().await;
                Response::new(Full::new(Bytes::from_static(b"ok")))
            })
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve_http(
            vec![listener],
            None,
            "test",
            None,
            limits,
            handler,
            async move {
                let _ = stopped.await;
            },
        ));
        (addr, stop)
    }

    fn limits() -> HttpLimits {
        HttpLimits {
            read_header_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(900),
            ..HttpLimits::rest_default()
        }
    }

    /// Reads one answer's head and body ("ok", or the 503's JSON).
    async fn answer(stream: &mut TcpStream) -> String {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .expect("an answer")
                .expect("read");
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).to_string();
            if n == 0 || text.ends_with("ok") || text.ends_with('}') {
                return text;
            }
        }
    }

    /// Whether the server closed `stream` within `limit` (EOF or a reset), whatever it sent
    /// before.
    async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
        let mut buf = [0u8; 1024];
        let closed = async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(limit, closed).await.is_ok()
    }

    #[tokio::test]
    async fn a_head_must_come_within_read_header_timeout_and_idle_waits_idle_timeout() {
        let (addr, _stop) = start(limits());
        // Nothing sent: closed once read_header_timeout passed.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
        // A head sent a byte at a time: its deadline is from the first byte, so it is cut.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let mut cut = false;
        for byte in REQUEST.iter().take(REQUEST.len() - 1) {
            if slow.write_all(&[*byte]).await.is_err() {
                cut = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            cut || closed_within(&mut slow, Duration::from_secs(1)).await,
            "a trickled head is cut"
        );
        // Between requests the connection waits idle_timeout, longer than read_header_timeout.
        let mut kept = TcpStream::connect(addr).await.unwrap();
        kept.write_all(REQUEST).await.unwrap();
        assert!(answer(&mut kept).await.starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(500)).await;
        kept.write_all(REQUEST).await.unwrap();
        assert!(
            answer(&mut kept).await.starts_with("HTTP/1.1 200"),
            "still open after 500 ms idle"
        );
        assert!(
            closed_within(&mut kept, Duration::from_secs(3)).await,
            "closed after idle_timeout"
        );
    }

    #[tokio::test]
    async fn at_max_connections_the_idlest_makes_room_and_else_newcomers_get_503() {
        let (addr, _stop) = start(HttpLimits {
            max_connections: 2,
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            ..HttpLimits::rest_default()
        });
        let mut first = TcpStream::connect(addr).await.unwrap();
        first.write_all(REQUEST).await.unwrap();
        assert!(answer(&mut first).await.starts_with("HTTP/1.1 200"));
        let mut second = TcpStream::connect(addr).await.unwrap();
        second.write_all(REQUEST).await.unwrap();
        assert!(answer(&mut second).await.starts_with("HTTP/1.1 200"));
        // Both idle: a third connection closes the one idle the longest and is served.
        let mut third = TcpStream::connect(addr).await.unwrap();
        third.write_all(REQUEST).await.unwrap();
        assert!(answer(&mut third).await.starts_with("HTTP/1.1 200"));
        assert!(
            closed_within(&mut first, Duration::from_secs(2)).await,
            "the idlest made room"
        );
        // Two connections in the middle of their heads take both places (the idle ones make
        // room), so a third newcomer is refused.
        let mut slow1 = TcpStream::connect(addr).await.unwrap();
        slow1.write_all(b"GET /id").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut slow2 = TcpStream::connect(addr).await.unwrap();
        slow2.write_all(b"GET /id").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut refused = TcpStream::connect(addr).await.unwrap();
        let text = answer(&mut refused).await;
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert!(text.contains("too many connections"), "{text}");
        // Connections that never say anything are idle once their grace has passed: a flood of
        // them cannot keep a client out.
        drop((slow1, slow2));
        let mut silent = Vec::new();
        for _ in 0..4 {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(crate::conn_limits::SILENT_GRACE + Duration::from_millis(100)).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(REQUEST).await.unwrap();
        assert!(answer(&mut client).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn a_head_over_max_header_bytes_is_431_and_a_slow_body_is_cut_at_read_timeout() {
        let (addr, _stop) = start(HttpLimits {
            max_header_bytes: 4096,
            read_timeout: Some(Duration::from_millis(400)),
            idle_timeout: Duration::from_secs(30),
            read_header_timeout: Duration::from_secs(30),
            ..limits()
        });
        let mut big = TcpStream::connect(addr).await.unwrap();
        let head = format!("GET /id HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(5000));
        big.write_all(head.as_bytes()).await.unwrap();
        let text = answer(&mut big).await;
        assert!(text.starts_with("HTTP/1.1 431"), "{text}");
        // A body that never comes whole is cut at read_timeout (the other deadlines are far).
        let mut body = TcpStream::connect(addr).await.unwrap();
        body.write_all(b"POST /pins HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n12345")
            .await
            .unwrap();
        assert!(closed_within(&mut body, Duration::from_secs(3)).await);
    }
}
