//! `host:port` of a TCP multiaddress, the form every listen and node address in `service.json`
//! takes (`/ip4/H/tcp/P`, `/ip6/H/tcp/P`, `/dns|dns4|dns6/H/tcp/P`), and the addresses of HTTP
//! endpoints (the APIs we serve, the IPFS daemon we call), which may also be Unix sockets
//! (`/unix/<path>`).

use std::path::PathBuf;

/// Where an HTTP endpoint is: one we serve (REST API, IPFS proxy) or the IPFS daemon's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAddress {
    /// `host:port`, from `/ip4|ip6|dns/<host>/tcp/<port>`.
    Tcp(String),
    /// A Unix domain socket, from `/unix/<absolute path>`.
    Unix(PathBuf),
}

impl HttpAddress {
    /// Parses a multiaddress: TCP as [`tcp_address`], or `/unix/<path>`.
    pub fn parse(text: &str) -> Result<HttpAddress, String> {
        // A `/unix` path runs to the end of the address, slashes included (as in Go's multiaddr).
        if let Some(path) = text.strip_prefix("/unix/") {
            if path.is_empty() || path.split('/').any(|segment| segment == "..") {
                return Err(format!("{text:?}: the /unix path must be absolute, without '..'"));
            }
            return Ok(HttpAddress::Unix(PathBuf::from(format!("/{path}"))));
        }
        tcp_address(text).map(HttpAddress::Tcp)
    }
}

impl std::fmt::Display for HttpAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpAddress::Tcp(address) => f.write_str(address),
            HttpAddress::Unix(path) => write!(f, "/unix{}", path.display()),
        }
    }
}

/// `host:port` (IPv6 hosts in brackets) of a `/<host protocol>/<host>/tcp/<port>` multiaddress.
pub fn tcp_address(text: &str) -> Result<String, String> {
    use multiaddr::Protocol;
    let address: multiaddr::Multiaddr = text
        .parse()
        .map_err(|e| format!("invalid multiaddress {text:?}: {e}"))?;
    let mut protocols = address.iter();
    let host = match protocols.next() {
        Some(Protocol::Ip4(ip)) => ip.to_string(),
        Some(Protocol::Ip6(ip)) => format!("[{ip}]"),
        Some(Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name)) => name.to_string(),
        _ => {
            return Err(format!(
                "{text:?} must start with /ip4, /ip6 or /dns (expected /ip4/<host>/tcp/<port>)"
            ))
        }
    };
    match protocols.next() {
        Some(Protocol::Tcp(port)) => Ok(format!("{host}:{port}")),
        _ => Err(format!(
            "{text:?} is not a TCP address (expected /ip4/<host>/tcp/<port>)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiaddresses_become_host_port() {
        assert_eq!(tcp_address("/ip4/127.0.0.1/tcp/9094").unwrap(), "127.0.0.1:9094");
        assert_eq!(tcp_address("/ip6/::1/tcp/5001").unwrap(), "[::1]:5001");
        assert_eq!(tcp_address("/dns4/ipfs.example/tcp/5001").unwrap(), "ipfs.example:5001");
        for bad in [
            "",
            "127.0.0.1:5001",
            "/ip4/127.0.0.1",
            "/ip4/127.0.0.1/udp/5001",
            "/tcp/5001",
        ] {
            assert!(tcp_address(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn http_addresses_are_tcp_or_unix_sockets() {
        assert_eq!(
            HttpAddress::parse("/ip4/127.0.0.1/tcp/9094").unwrap(),
            HttpAddress::Tcp("127.0.0.1:9094".into())
        );
        let unix = HttpAddress::parse("/unix/run/cluster/api.sock").unwrap();
        assert_eq!(unix, HttpAddress::Unix(PathBuf::from("/run/cluster/api.sock")));
        assert_eq!(unix.to_string(), "/unix/run/cluster/api.sock");
        for bad in ["/unix/", "/unix/a/../b", "/ip4/127.0.0.1/udp/1"] {
            assert!(HttpAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
