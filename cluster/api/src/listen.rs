//! The sockets an HTTP endpoint accepts on: TCP and Unix listeners bound from
//! [`HttpAddress`]es, and connections handed over from another transport
//! ([`TunnelConnection`], the libp2p-http endpoint), merged into one stream of connections.

use std::io;
use std::path::{Path, PathBuf};

use cluster_rt::tokio;
use cluster_types::HttpAddress;
use futures::stream::{BoxStream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;

/// What an HTTP connection is read from and written to.
pub trait ConnectionIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ConnectionIo for T {}

/// An HTTP connection that reached the server through another transport: a libp2p stream of
/// the `/libp2p-http` protocol. It is served as plain HTTP (the transport is encrypted).
pub struct TunnelConnection {
    /// The stream.
    pub io: Box<dyn ConnectionIo>,
    /// Who opened it, for logs.
    pub peer: String,
}

impl std::fmt::Debug for TunnelConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TunnelConnection from {}", self.peer)
    }
}

/// A bound listen socket, not yet registered with the runtime.
#[derive(Debug)]
pub(crate) enum BoundListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener, SocketFile),
}

/// The file of a Unix socket we bound: removed when dropped, however the server ends (a failed
/// start included), so no stale file outlives us.
#[derive(Debug)]
pub(crate) struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl BoundListener {
    /// Binds `address`. A Unix socket file left by a process that is gone (connecting to it is
    /// refused) is replaced; anything else in the way is an error.
    pub(crate) fn bind(address: &HttpAddress) -> io::Result<BoundListener> {
        match address {
            HttpAddress::Tcp(address) => {
                let listener = std::net::TcpListener::bind(address.as_str())?;
                listener.set_nonblocking(true)?;
                Ok(BoundListener::Tcp(listener))
            }
            HttpAddress::Unix(path) => {
                remove_stale_socket(path)?;
                let listener = std::os::unix::net::UnixListener::bind(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                let file = SocketFile(path.clone());
                listener.set_nonblocking(true)?;
                Ok(BoundListener::Unix(listener, file))
            }
        }
    }

    /// The TCP address bound (ports resolved), `None` for a Unix socket.
    pub(crate) fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            BoundListener::Tcp(listener) => listener.local_addr().ok(),
            BoundListener::Unix(..) => None,
        }
    }

    /// Where it listens, as an address.
    pub(crate) fn address(&self) -> HttpAddress {
        match self {
            BoundListener::Tcp(listener) => HttpAddress::Tcp(
                listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|e| format!("unknown ({e})")),
            ),
            BoundListener::Unix(_, file) => HttpAddress::Unix(file.0.clone()),
        }
    }
}

/// The sockets of one HTTP endpoint, bound before the member starts and served once it is
/// ready ([`crate::RestServer::new`], [`crate::IpfsProxy::new`]): a busy port fails start-up
/// before the member touches Raft or joins a cluster.
#[derive(Debug)]
pub struct Listeners(pub(crate) Vec<BoundListener>);

impl Listeners {
    /// Binds every address; an empty list is an error (the endpoint would be unreachable).
    /// Needs no runtime.
    pub fn bind(addresses: &[HttpAddress]) -> io::Result<Listeners> {
        bind_all(addresses).map(Listeners)
    }

    /// Every address bound, ports resolved.
    pub fn local_addresses(&self) -> Vec<HttpAddress> {
        self.0.iter().map(BoundListener::address).collect()
    }
}

/// Binds every address; an empty list is an error (the endpoint would be unreachable).
pub(crate) fn bind_all(addresses: &[HttpAddress]) -> io::Result<Vec<BoundListener>> {
    if addresses.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no listen address"));
    }
    // Sockets bound before a failure are closed, and their files removed, by the drop.
    addresses
        .iter()
        .map(|address| BoundListener::bind(address).map_err(|e| io::Error::new(e.kind(), format!("{address}: {e}"))))
        .collect()
}

fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt as _;
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !metadata.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    // Only a refusal proves nobody listens; a permission error or a datagram socket (say,
    // /dev/log) is somebody else's and stays.
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another process is listening on {}", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("{} is in the way and cannot be checked: {e}", path.display()),
        )),
    }
}

/// One accepted connection: its stream, who it is from, and whether it came through the
/// tunnel (the endpoint's TLS applies only to its own listeners).
pub(crate) struct Accepted {
    pub io: Box<dyn ConnectionIo>,
    pub peer: String,
    pub tunnelled: bool,
}

/// Every listener's connections and the tunnel's, as one stream. An `Err` item is a failed
/// `accept` (say, out of file descriptors); the stream goes on after it.
pub(crate) fn incoming(
    listeners: Vec<BoundListener>,
    tunnel: Option<mpsc::Receiver<TunnelConnection>>,
) -> io::Result<futures::stream::SelectAll<BoxStream<'static, io::Result<Accepted>>>> {
    let mut all = futures::stream::SelectAll::new();
    for listener in listeners {
        match listener {
            BoundListener::Tcp(listener) => {
                let listener = TcpListener::from_std(listener)?;
                all.push(
                    futures::stream::unfold(listener, |listener| async move {
                        let accepted = listener.accept().await.map(|(stream, peer)| {
                            // Responses are small or streamed item by item: send each write at once.
                            let _ = stream.set_nodelay(true);
                            Accepted {
                                io: Box::new(stream) as Box<dyn ConnectionIo>,
                                peer: peer.to_string(),
                                tunnelled: false,
                            }
                        });
                        Some((accepted, listener))
                    })
                    .boxed(),
                );
            }
            BoundListener::Unix(listener, file) => {
                let listener = UnixListener::from_std(listener)?;
                let peer = format!("unix:{}", file.0.display());
                // The stream owns the file: dropping it (the server stopping) removes it.
                all.push(
                    futures::stream::unfold((listener, file), move |(listener, file)| {
                        let peer = peer.clone();
                        async move {
                            let accepted = listener.accept().await.map(|(stream, _)| Accepted {
                                io: Box::new(stream) as Box<dyn ConnectionIo>,
                                peer,
                                tunnelled: false,
                            });
                            Some((accepted, (listener, file)))
                        }
                    })
                    .boxed(),
                );
            }
        }
    }
    if let Some(tunnel) = tunnel {
        all.push(
            futures::stream::unfold(tunnel, |mut tunnel| async move {
                let connection = tunnel.recv().await?;
                let accepted = Accepted {
                    io: connection.io,
                    peer: connection.peer,
                    tunnelled: true,
                };
                Some((Ok(accepted), tunnel))
            })
            .boxed(),
        );
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_socket_file_is_replaced_and_a_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let address = HttpAddress::Unix(path.clone());
        let live = BoundListener::bind(&address).unwrap();
        let error = BoundListener::bind(&address).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse, "{error}");
        // A crashed process leaves its file behind: forget the guard to do the same.
        match live {
            BoundListener::Unix(listener, file) => {
                drop(listener);
                std::mem::forget(file);
            }
            BoundListener::Tcp(_) => unreachable!(),
        }
        assert!(path.exists());
        let again = BoundListener::bind(&address).unwrap();
        drop(again);
        assert!(!path.exists(), "dropping the listener removes its file");
    }

    #[test]
    fn a_regular_file_in_the_way_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        std::fs::write(&path, b"data").unwrap();
        let error = BoundListener::bind(&HttpAddress::Unix(path.clone())).unwrap_err();
        assert!(error.to_string().contains("not a socket"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
    }
}
