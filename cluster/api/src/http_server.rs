//! The HTTP/1.1 server loop the REST API and the IPFS proxy share: accepting on every listener
//! (and a libp2p tunnel), one task per connection, keep-alive, the header read timeout, TLS, and a
//! graceful then forced shutdown.
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

use crate::listen::{incoming, Accepted, BoundListener, TunnelConnection};
use crate::te_trailers::TrailersForEveryone;

/// How long in-flight requests may run after shutdown begins before their connections are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a connection may take to send a request head. hyper also runs this timer while a
/// keep-alive connection waits for its next request, so it doubles as the idle timeout.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

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
/// (and takes `tunnel`'s connections) until `shutdown` completes, then lets in-flight requests
/// finish for up to 5 s and closes the rest.
pub(crate) async fn serve_http<B>(
    listeners: Vec<BoundListener>,
    tunnel: Option<mpsc::Receiver<TunnelConnection>>,
    what: &'static str,
    tls: Option<tokio_rustls::TlsAcceptor>,
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
                    cluster_rt::spawn(async move {
                        match tls {
                            None => serve_connection(io, peer, handler, phase, tunnelled).await,
                            Some(acceptor) => match cluster_rt::timeout(HEADER_READ_TIMEOUT, acceptor.accept(io)).await {
                                Ok(Ok(stream)) => serve_connection(stream, peer, handler, phase, false).await,
                                Ok(Err(e)) => tracing::debug!(%peer, "{what}: TLS handshake failed: {e}"),
                                Err(_) => tracing::debug!(%peer, "{what}: TLS handshake timed out"),
                            },
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
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let response = handler(request);
        async move { Ok::<_, Infallible>(response.await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .half_close(half_close)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(TrailersForEveryone::new(stream)), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
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
