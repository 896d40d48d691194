//! `fake-ipfs-daemon`: a stand-in for an IPFS daemon, to try several cluster members on one
//! machine without an IPFS repository for each. It answers the Kubo RPC calls a member makes
//! (`id`, `pin/add`, `pin/rm`, `pin/ls`, `repo/stat`, `block/put`, `add`, ...) and keeps pins
//! and block ids in memory; it stores no content and forgets everything when it stops. Thin:
//! the daemon is `cluster_ipfs::FakeKuboServer`, the same one the tests use.

#[cfg(not(madsim))]
fn main() {
    std::process::exit(serve::main());
}

#[cfg(madsim)]
fn main() {}

#[cfg(not(madsim))]
mod serve {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use clap::Parser;
    use cluster_ipfs::{FakeIpfs, FakeKuboServer};

    /// A stand-in for an IPFS daemon (Kubo RPC API), for trying a cluster: pins live in memory
    /// and no content is stored.
    #[derive(Parser, Debug)]
    #[command(name = "fake-ipfs-daemon", version = cluster_types::VERSION)]
    struct Cli {
        /// Where the API listens: a multiaddress (/ip4/127.0.0.1/tcp/5001) or host:port.
        #[arg(long, default_value = "/ip4/127.0.0.1/tcp/5001")]
        api: String,

        /// A file of CIDs, one per line, that the daemon holds pinned (recursively) from the
        /// start: a daemon beside a member whose pinset was imported, for benchmarks at scale.
        #[arg(long, value_name = "FILE")]
        pins: Option<std::path::PathBuf>,
    }

    /// The CIDs of `path`, one per line (blank lines skipped).
    fn read_cids(path: &std::path::Path) -> Result<Vec<cluster_types::Cid>, String> {
        use std::io::BufRead;
        let file = std::fs::File::open(path).map_err(|e| format!("--pins {}: {e}", path.display()))?;
        let mut cids = Vec::new();
        for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| format!("--pins {}: {e}", path.display()))?;
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            let cid = text.parse().map_err(|e| {
                format!(
                    "--pins {} line {}: {text:?} is not a CID: {e}",
                    path.display(),
                    number + 1
                )
            })?;
            cids.push(cid);
        }
        Ok(cids)
    }

    /// `/ip4|ip6/<ip>/tcp/<port>` or `ip:port`.
    fn socket_address(text: &str) -> Result<SocketAddr, String> {
        if let Ok(address) = text.parse::<SocketAddr>() {
            return Ok(address);
        }
        let parsed: multiaddr::Multiaddr = text
            .parse()
            .map_err(|e| format!("--api {text:?} is neither a multiaddress nor host:port: {e}"))?;
        let (mut ip, mut port) = (None, None);
        for protocol in parsed.iter() {
            match protocol {
                multiaddr::Protocol::Ip4(v4) => ip = Some(std::net::IpAddr::V4(v4)),
                multiaddr::Protocol::Ip6(v6) => ip = Some(std::net::IpAddr::V6(v6)),
                multiaddr::Protocol::Tcp(p) => port = Some(p),
                _ => {}
            }
        }
        match (ip, port) {
            (Some(ip), Some(port)) => Ok(SocketAddr::new(ip, port)),
            _ => Err(format!("--api {text:?} has no /ip4|ip6/<ip>/tcp/<port>")),
        }
    }

    pub fn main() -> i32 {
        let cli = Cli::parse();
        let address = match socket_address(&cli.api) {
            Ok(address) => address,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        let held = match cli.pins.as_deref().map(read_cids).transpose() {
            Ok(held) => held.unwrap_or_default(),
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        let runtime = match cluster_rt::tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("error: starting the runtime: {e}");
                return 1;
            }
        };
        runtime.block_on(async move {
            // A peer id of the right shape, different for every daemon started.
            let mut seed = [0u8; 32];
            cluster_rt::fill_random(&mut seed);
            let peer = cluster_types::PeerId::from_ed25519_seed(seed).to_string();
            let fake = Arc::new(FakeIpfs::new(peer.clone()));
            let holding = held.len();
            fake.hold_pins(held);
            let server = match FakeKuboServer::start(fake, address).await {
                Ok(server) => server,
                Err(e) => {
                    eprintln!("error: listening on {address}: {e}");
                    return 1;
                }
            };
            eprintln!(
                "fake IPFS daemon {peer}: API on {} (pins in memory, no content stored; {holding} pins held from the start)",
                server.multiaddr()
            );
            wait_for_signal().await;
            server.shutdown();
            0
        })
    }

    async fn wait_for_signal() {
        use cluster_rt::tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                cluster_rt::tokio::select! {
                    _ = cluster_rt::tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = cluster_rt::tokio::signal::ctrl_c().await;
            }
        }
    }
}
