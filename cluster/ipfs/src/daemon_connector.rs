//! Dials the IPFS daemon's HTTP API for hyper's pooled client: over TCP (`host:port`), or over
//! a Unix socket when `node_multiaddress` is `/unix/<path>` (reference §3.3). With a socket, the
//! URI's host (`localhost`) serves only the `Host` header and the pool key.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use cluster_rt::tokio;
use cluster_types::HttpAddress;
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;

/// A hyper connector to one daemon.
#[derive(Clone, Debug)]
pub struct DaemonConnector {
    target: Target,
}

#[derive(Clone, Debug)]
enum Target {
    Tcp(HttpConnector),
    Unix { path: Arc<PathBuf>, timeout: Duration },
}

impl DaemonConnector {
    /// A connector to `address` that gives up connecting after `connect_timeout`.
    pub fn new(address: &HttpAddress, connect_timeout: Duration) -> DaemonConnector {
        let target = match address {
            HttpAddress::Tcp(_) => {
                let mut http = HttpConnector::new();
                http.set_connect_timeout(Some(connect_timeout));
                http.set_nodelay(true);
                // An HTTPS wrapper hands it https URIs too.
                http.enforce_http(false);
                Target::Tcp(http)
            }
            HttpAddress::Unix(path) => Target::Unix {
                path: Arc::new(path.clone()),
                timeout: connect_timeout,
            },
        };
        DaemonConnector { target }
    }
}

/// The authority of request URIs to `address`: its `host:port`, or `localhost` for a socket.
pub fn uri_authority(address: &HttpAddress) -> &str {
    match address {
        HttpAddress::Tcp(authority) => authority,
        HttpAddress::Unix(_) => "localhost",
    }
}

/// A connection to the daemon.
#[derive(Debug)]
pub enum DaemonStream {
    /// Over TCP.
    Tcp(TokioIo<tokio::net::TcpStream>),
    /// Over a Unix socket.
    Unix(TokioIo<tokio::net::UnixStream>),
}

type Connecting = Pin<Box<dyn Future<Output = Result<DaemonStream, io::Error>> + Send>>;

impl tower_service::Service<Uri> for DaemonConnector {
    type Response = DaemonStream;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        match &mut self.target {
            Target::Tcp(http) => {
                let connecting = http.call(uri);
                Box::pin(async move { connecting.await.map(DaemonStream::Tcp).map_err(io::Error::other) })
            }
            Target::Unix { path, timeout } => {
                let (path, timeout) = (path.clone(), *timeout);
                Box::pin(async move {
                    match cluster_rt::timeout(timeout, tokio::net::UnixStream::connect(path.as_path())).await {
                        Ok(Ok(stream)) => Ok(DaemonStream::Unix(TokioIo::new(stream))),
                        Ok(Err(e)) => Err(io::Error::new(e.kind(), format!("dial unix {}: {e}", path.display()))),
                        Err(_) => Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("dial unix {}: no connection within {timeout:?}", path.display()),
                        )),
                    }
                })
            }
        }
    }
}

impl Connection for DaemonStream {
    fn connected(&self) -> Connected {
        match self {
            DaemonStream::Tcp(stream) => stream.connected(),
            DaemonStream::Unix(_) => Connected::new(),
        }
    }
}

impl hyper::rt::Read for DaemonStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<Result<(), io::Error>> {
        match self.get_mut() {
            DaemonStream::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            DaemonStream::Unix(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for DaemonStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, io::Error>> {
        match self.get_mut() {
            DaemonStream::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            DaemonStream::Unix(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        match self.get_mut() {
            DaemonStream::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            DaemonStream::Unix(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        match self.get_mut() {
            DaemonStream::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            DaemonStream::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            DaemonStream::Tcp(stream) => stream.is_write_vectored(),
            DaemonStream::Unix(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<Result<usize, io::Error>> {
        match self.get_mut() {
            DaemonStream::Tcp(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            DaemonStream::Unix(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }
}
