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
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

impl BoundListener {
    /// Binds `address`. A Unix socket file left by a process that is gone is replaced; one that
    /// another process still answers on is an "address in use" error.
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
                listener.set_nonblocking(true)?;
                Ok(BoundListener::Unix(listener, path.clone()))
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
            BoundListener::Unix(_, path) => HttpAddress::Unix(path.clone()),
        }
    }
}

/// Binds every address; an empty list is an error (the endpoint would be unreachable).
pub(crate) fn bind_all(addresses: &[HttpAddress]) -> io::Result<Vec<BoundListener>> {
    if addresses.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no listen address"));
    }
    let mut bound = Vec::with_capacity(addresses.len());
    for address in addresses {
        match BoundListener::bind(address) {
            Ok(listener) => bound.push(listener),
            Err(e) => {
                // Sockets bound so far are closed by the drop; their files must go too.
                remove_socket_files(&bound);
                return Err(io::Error::new(e.kind(), format!("{address}: {e}")));
            }
        }
    }
    Ok(bound)
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
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another process is listening on {}", path.display()),
        )),
        Err(_) => std::fs::remove_file(path),
    }
}

/// Removes the socket files of the Unix listeners among `listeners`.
pub(crate) fn remove_socket_files(listeners: &[BoundListener]) {
    for listener in listeners {
        if let BoundListener::Unix(_, path) = listener {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// One accepted connection: its stream, who it is from, and whether the endpoint's TLS applies
/// (it does to its own listeners, not to tunnelled streams).
pub(crate) struct Accepted {
    pub io: Box<dyn ConnectionIo>,
    pub peer: String,
    pub tls: bool,
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
                                tls: true,
                            }
                        });
                        Some((accepted, listener))
                    })
                    .boxed(),
                );
            }
            BoundListener::Unix(listener, path) => {
                let listener = UnixListener::from_std(listener)?;
                let peer = format!("unix:{}", path.display());
                all.push(
                    futures::stream::unfold(listener, move |listener| {
                        let peer = peer.clone();
                        async move {
                            let accepted = listener.accept().await.map(|(stream, _)| Accepted {
                                io: Box::new(stream) as Box<dyn ConnectionIo>,
                                peer,
                                tls: true,
                            });
                            Some((accepted, listener))
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
                    tls: false,
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
        // Dropping the listener leaves its file behind, as a crashed process would.
        drop(live);
        assert!(path.exists());
        let again = BoundListener::bind(&address).unwrap();
        remove_socket_files(&[again]);
        assert!(!path.exists());
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
