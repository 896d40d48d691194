//! Command-line definitions and the `init`, `daemon` and `state` commands.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use cluster_api::{IpfsProxy, IpfsProxyConfig, RestServer, RestServerConfig};
use cluster_ipfs::{KuboConnector, KuboConnectorConfig};
use cluster_node::{Cluster, ClusterDeps, DataFolder, Identity, ServiceConfig};
use cluster_p2p::{HttpTunnelServer, P2pConfig, P2pTransport};

/// IPFS Cluster member daemon (Rust implementation, REST-compatible with ipfs-cluster 1.1.6).
#[derive(Parser, Debug)]
#[command(name = "ipfs-cluster-service", version = cluster_types::VERSION, about, long_about = None)]
struct Cli {
    /// Configuration and data folder.
    #[arg(short = 'c', long = "config", env = "IPFS_CLUSTER_PATH", global = true)]
    config: Option<PathBuf>,
    /// Debug logging (same as --loglevel debug).
    #[arg(short = 'd', long, global = true)]
    debug: bool,
    /// Log level, e.g. "info" or "info,cluster_tracker=debug" (openraft stays at warn unless
    /// named here; RUST_LOG, when set, replaces this whole filter).
    #[arg(
        short = 'l',
        long = "loglevel",
        env = "IPFS_CLUSTER_LOG_LEVEL",
        default_value = "info",
        global = true
    )]
    loglevel: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a configuration (service.json) and identity (identity.json).
    Init(InitArgs),
    /// Run the cluster member.
    Daemon(DaemonArgs),
    /// Print this member's peer id (from identity.json), e.g. to build a --bootstrap address.
    Id,
    /// Export, import or remove this member's pinset (state) while the member is stopped.
    #[command(subcommand)]
    State(StateCommand),
    /// Print the version.
    Version,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum ConsensusKind {
    Raft,
    Crdt,
}

#[derive(Parser, Debug)]
struct InitArgs {
    /// Consensus component (only raft is supported).
    #[arg(long, value_enum, default_value = "raft")]
    consensus: ConsensusKind,
    /// Overwrite an existing configuration.
    #[arg(short = 'f', long)]
    force: bool,
    /// Initial cluster members (comma-separated multiaddresses with /p2p/<id>).
    #[arg(long, value_delimiter = ',')]
    peers: Vec<String>,
    /// Use random free ports for every listener (REST API, IPFS proxy, pinning service API,
    /// cluster), for another member on the same host.
    #[arg(long, conflicts_with = "port_base")]
    randomports: bool,
    /// Listen on four consecutive ports from this one: REST API, IPFS proxy, cluster, pinning
    /// service API (Go's defaults are --port-base 9094). For several members on one host.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..=65532))]
    port_base: Option<u16>,
    /// Datastore (accepted for compatibility; the pinset store is always redb).
    #[arg(long)]
    datastore: Option<String>,
}

#[derive(Parser, Debug)]
struct DaemonArgs {
    /// Join a running cluster through these members (multiaddresses ending in /p2p/<peer id>).
    /// Ignored when this member already belongs to a cluster.
    #[arg(short = 'j', long, value_delimiter = ',')]
    bootstrap: Vec<String>,
    /// Leave the cluster on shutdown.
    #[arg(short = 'x', long)]
    leave: bool,
}

#[derive(Subcommand, Debug)]
enum StateCommand {
    /// Write the pinset as JSON, one pin per line, to stdout or a file: a backup, or what
    /// `state import` reads on this or another member. It is the pinset as the member last
    /// stopped cleanly (after a crash, start it and stop it once to include what its Raft log
    /// holds beyond that).
    Export {
        /// Write to this file instead of stdout.
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
    },
    /// Replace the pinset with an exported one (from FILE, or stdin) and empty the Raft data,
    /// so the member starts from it. Stop every member and import the same file on each
    /// before starting them again. Also the bulk path for loading millions of pins.
    Import(ImportArgs),
    /// Remove the pinset and the Raft data: the next start is a first start (a member of a
    /// cluster then rejoins with --bootstrap).
    Cleanup {
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
}

#[derive(Parser, Debug)]
struct ImportArgs {
    /// The exported pinset; stdin when absent.
    file: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(short = 'f', long)]
    force: bool,
    /// Set every pin's replication factor minimum to this (when above 0).
    #[arg(long = "replication-min", visible_alias = "rmin", default_value_t = 0)]
    replication_min: i32,
    /// Set every pin's replication factor maximum to this (when above 0).
    #[arg(long = "replication-max", visible_alias = "rmax", default_value_t = 0)]
    replication_max: i32,
    /// Set every pin's allocations to these peer ids (comma-separated).
    #[arg(long = "allocations", visible_alias = "allocs", value_delimiter = ',')]
    allocations: Vec<String>,
}

fn config_dir(cli: &Cli) -> PathBuf {
    if let Some(dir) = &cli.config {
        return dir.clone();
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".ipfs-cluster")
}

fn init_logging(cli: &Cli) {
    let level = if cli.debug {
        "debug".to_string()
    } else {
        cli.loglevel.clone()
    };
    let rust_log = std::env::var("RUST_LOG").ok();
    crate::logging::init(&crate::logging::filter_directives(&level, rust_log.as_deref()));
}

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging(&cli);
    let result = match &cli.command {
        Command::Version => {
            println!("{}", cluster_types::VERSION);
            Ok(())
        }
        Command::Init(args) => init(&config_dir(&cli), args),
        Command::Daemon(args) => daemon(&config_dir(&cli), args),
        Command::Id => Identity::load(&config_dir(&cli).join("identity.json"))
            .map(|identity| {
                println!("{}", identity.peer_id);
            })
            .map_err(anyhow::Error::from),
        Command::State(command) => state(&config_dir(&cli), command),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// The `state` commands, on the stopped member's data folder (its lock refuses a running one).
fn state(dir: &Path, command: &StateCommand) -> anyhow::Result<()> {
    let lock = || DataFolder::lock(dir).context("the member must be stopped to use its pinset offline");
    match command {
        StateCommand::Export { file } => {
            let data = lock()?;
            let count = match file {
                Some(path) => {
                    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
                    cluster_node::export_state(&data, &mut std::io::BufWriter::new(file))?
                }
                None => cluster_node::export_state(&data, &mut std::io::BufWriter::new(std::io::stdout().lock()))?,
            };
            eprintln!("exported {count} pins");
            Ok(())
        }
        StateCommand::Import(args) => {
            let allocations = args
                .allocations
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().map_err(|e| anyhow::anyhow!("--allocations: {p}: {e}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let overrides = cluster_node::ImportOverrides {
                replication_factor_min: args.replication_min,
                replication_factor_max: args.replication_max,
                allocations,
            };
            let mut service = ServiceConfig::load(&dir.join("service.json"))?;
            service.apply_env(std::env::vars())?;
            let config = service.validate()?;
            let identity = Identity::load(&dir.join("identity.json"))?;
            let data = lock()?;
            if !args.force && !confirmed("The pinset (state) of this peer will be replaced. Continue? [y/n]:")? {
                return Ok(());
            }
            let imported = match &args.file {
                Some(path) => {
                    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
                    cluster_node::import_state(
                        &data,
                        &config,
                        &identity,
                        &mut std::io::BufReader::new(file),
                        &overrides,
                    )?
                }
                None => {
                    eprintln!("reading from stdin, Ctrl-D to finish");
                    let stdin = std::io::stdin().lock();
                    cluster_node::import_state(
                        &data,
                        &config,
                        &identity,
                        &mut std::io::BufReader::new(stdin),
                        &overrides,
                    )?
                }
            };
            let members: Vec<String> = imported.members.iter().map(|m| m.peer_id.to_string()).collect();
            eprintln!(
                "imported {} pins; started again, this member begins from them in a cluster of {}: {}. Import the same \
                 file on every member before starting them.",
                imported.pins,
                members.len(),
                members.join(", ")
            );
            Ok(())
        }
        StateCommand::Cleanup { force } => {
            let data = lock()?;
            if !force && !confirmed("The peer state will be removed.  Existing pins may be lost. Continue? [y/n]:")? {
                return Ok(());
            }
            cluster_node::cleanup_state(&data)?;
            eprintln!("removed the pinset and the Raft data in {}", dir.display());
            Ok(())
        }
    }
}

/// Asks `question` on the terminal; without one, refuses (scripts pass --force).
fn confirmed(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal};
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to confirm on: pass --force");
    }
    eprint!("{question} ");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// The ports of a member's listeners.
#[derive(Debug, Clone, Copy)]
struct ListenPorts {
    rest: u16,
    proxy: u16,
    cluster: u16,
    pinning_service: u16,
}

/// Four different free ports, held together while chosen so none is handed out twice.
fn free_ports() -> anyhow::Result<ListenPorts> {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port");
    let held = [bind()?, bind()?, bind()?, bind()?];
    let port = |i: usize| -> anyhow::Result<u16> { Ok(held[i].local_addr()?.port()) };
    Ok(ListenPorts {
        rest: port(0)?,
        proxy: port(1)?,
        cluster: port(2)?,
        pinning_service: port(3)?,
    })
}

/// Writes the listen ports into a service.json, keeping each address's host.
fn set_listen_ports(json: &mut serde_json::Value, ports: ListenPorts) {
    json["api"]["restapi"]["http_listen_multiaddress"] = format!("/ip4/127.0.0.1/tcp/{}", ports.rest).into();
    json["api"]["ipfsproxy"]["listen_multiaddress"] = format!("/ip4/127.0.0.1/tcp/{}", ports.proxy).into();
    json["api"]["pinsvcapi"]["http_listen_multiaddress"] =
        format!("/ip4/127.0.0.1/tcp/{}", ports.pinning_service).into();
    json["cluster"]["listen_multiaddress"] = serde_json::json!([format!("/ip4/0.0.0.0/tcp/{}", ports.cluster)]);
}

fn init(dir: &Path, args: &InitArgs) -> anyhow::Result<()> {
    if args.consensus == ConsensusKind::Crdt {
        bail!("crdt consensus is not supported by this implementation; use --consensus raft");
    }
    let service_file = dir.join("service.json");
    let identity_file = dir.join("identity.json");
    if !args.force && (service_file.exists() || identity_file.exists()) {
        bail!(
            "{} already has a configuration; use --force to overwrite it",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Held until init ends: a running member holds it too, and must not have its identity and
    // configuration replaced under it.
    let _folder = match DataFolder::lock(dir) {
        Ok(folder) => folder,
        Err(cluster_node::NodeError::Locked { lock, .. }) => bail!(
            "a running member uses {} ({lock} is held): stop it first, then run init again",
            dir.display()
        ),
        Err(e) => return Err(e.into()),
    };
    let mut json = ServiceConfig::default_json(&init_peername(), &init_secret());
    // As Go: peer ids in init_peerset, their addresses in the peerstore file.
    let peer_ids = peer_ids_of(&args.peers)?;
    if !peer_ids.is_empty() {
        json["consensus"]["raft"]["init_peerset"] = serde_json::json!(peer_ids);
    }
    if let Some(ports) = init_ports(args)? {
        set_listen_ports(&mut json, ports);
    }
    // As Go's init: CLUSTER_* variables are written into the configuration.
    let mut service = ServiceConfig {
        file: service_file.display().to_string(),
        json,
    };
    let proxy_daemon_given = std::env::var_os("CLUSTER_IPFSPROXY_NODEMULTIADDRESS").is_some();
    service.apply_env(std::env::vars())?;
    let mut json = service.json;
    if !proxy_daemon_given {
        // The proxy talks to the daemon the connector uses unless told otherwise.
        json["api"]["ipfsproxy"]["node_multiaddress"] = json["ipfs_connector"]["ipfshttp"]["node_multiaddress"].clone();
    }
    // Validate what we are about to write, so init never produces a file that daemon refuses.
    let text = serde_json::to_string_pretty(&json)?;
    ServiceConfig::parse(&text, &service_file.display().to_string())?.validate()?;
    let identity = Identity::generate();
    write_file(&service_file, &text)?;
    write_file(&identity_file, &identity.to_json())?;
    if !args.peers.is_empty() {
        write_file(&dir.join(cluster_node::PEERSTORE_FILE), &args.peers.join("\n"))?;
    }
    println!("configuration written to {}", service_file.display());
    println!(
        "identity written to {} (peer id {})",
        identity_file.display(),
        identity.peer_id
    );
    Ok(())
}

/// `CLUSTER_SECRET`, or 32 random bytes in hex.
fn init_secret() -> String {
    match std::env::var("CLUSTER_SECRET") {
        Ok(text) if !text.is_empty() => text,
        _ => {
            let mut bytes = [0u8; 32];
            cluster_rt::fill_random(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    }
}

/// `CLUSTER_PEERNAME`, or the host's name.
fn init_peername() -> String {
    std::env::var("CLUSTER_PEERNAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "ipfs-cluster-peer".to_string())
}

/// The peer id of each `--peers` address.
fn peer_ids_of(addresses: &[String]) -> anyhow::Result<Vec<String>> {
    let mut peer_ids = Vec::new();
    for address in addresses {
        let parsed: multiaddr::Multiaddr = address
            .parse()
            .with_context(|| format!("--peers: {address:?} is not a multiaddress"))?;
        let Some(peer) = parsed.iter().find_map(|p| match p {
            multiaddr::Protocol::P2p(peer) => Some(peer.to_string()),
            _ => None,
        }) else {
            bail!("--peers: {address:?} has no /p2p/<peer id>");
        };
        peer_ids.push(peer);
    }
    Ok(peer_ids)
}

/// The ports `--randomports` or `--port-base` ask for, if any.
fn init_ports(args: &InitArgs) -> anyhow::Result<Option<ListenPorts>> {
    if args.randomports {
        return Ok(Some(free_ports()?));
    }
    Ok(args.port_base.map(|base| ListenPorts {
        rest: base,
        proxy: base + 1,
        cluster: base + 2,
        pinning_service: base + 3,
    }))
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, format!("{text}\n")).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn daemon(dir: &Path, args: &DaemonArgs) -> anyhow::Result<()> {
    let mut service = ServiceConfig::load(&dir.join("service.json"))?;
    let applied = service.apply_env(std::env::vars())?;
    for name in applied {
        tracing::info!("configuration override from environment: {name}");
    }
    for warning in service.warnings() {
        tracing::warn!("{warning}");
    }
    let mut config = service.validate()?;
    if args.leave {
        config.cluster.leave_on_shutdown = true;
    }
    let identity = Identity::load(&dir.join("identity.json"))?;
    let data = DataFolder::lock(dir)?;
    let runtime = cluster_rt::tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_daemon(
        dir.to_path_buf(),
        config,
        identity,
        data,
        args.bootstrap.clone(),
    ))
}

/// The address other members should dial: a concrete listen address (libp2p expands 0.0.0.0 to
/// each interface), loopback when the members we know are on loopback, otherwise not.
fn advertised_address(listening: &[multiaddr::Multiaddr], known_members: &[String]) -> Option<String> {
    use multiaddr::Protocol;
    let is_loopback = |address: &multiaddr::Multiaddr| {
        address.iter().any(|p| match p {
            Protocol::Ip4(ip) => ip.is_loopback(),
            Protocol::Ip6(ip) => ip.is_loopback(),
            _ => false,
        })
    };
    let members_on_loopback = known_members
        .iter()
        .filter_map(|text| text.parse::<multiaddr::Multiaddr>().ok())
        .any(|address| is_loopback(&address));
    let concrete: Vec<&multiaddr::Multiaddr> = listening
        .iter()
        .filter(|a| !a.iter().any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_unspecified())))
        .collect();
    concrete
        .iter()
        .find(|a| is_loopback(a) == members_on_loopback)
        .or(concrete.first())
        .map(|a| {
            a.iter()
                .filter(|p| !matches!(p, Protocol::P2p(_)))
                .collect::<multiaddr::Multiaddr>()
                .to_string()
        })
}

/// Where a listener failed to bind, and what to change: the address, and for a port in use,
/// the service.json key and `init --port-base` for a new member.
fn listen_failure(what: &str, key: &str, dir: &Path, error: &dyn std::fmt::Display) -> anyhow::Error {
    let text = error.to_string();
    let in_use = text.contains("in use");
    let mut message = format!("binding the {what}: {text}");
    if in_use {
        message.push_str(&format!(
            "; another process listens there (another member on this host?): give this member ports of its own \
             with {key} in {}, or create a new member with `ipfs-cluster-service init --port-base <port>`",
            dir.join("service.json").display()
        ));
    }
    anyhow::anyhow!(message)
}

/// The connections the REST API's libp2p endpoint hands to the REST server.
type TunnelReceiver = cluster_rt::tokio::sync::mpsc::Receiver<cluster_api::TunnelConnection>;

/// The sockets of the REST API and the IPFS proxy, bound before the member starts.
struct HttpListeners {
    rest: Option<cluster_api::Listeners>,
    proxy: Option<cluster_api::Listeners>,
}

fn bind_http_listeners(dir: &Path, config: &cluster_node::NodeConfig) -> anyhow::Result<HttpListeners> {
    let bind = |addresses: &Option<Vec<cluster_api::HttpAddress>>, what: &str, key: &str| {
        addresses
            .as_ref()
            .map(|listen| cluster_api::Listeners::bind(listen).map_err(|e| listen_failure(what, key, dir, &e)))
            .transpose()
    };
    Ok(HttpListeners {
        rest: bind(&config.rest.listen, "REST API", "api.restapi.http_listen_multiaddress")?,
        proxy: bind(&config.proxy.listen, "IPFS proxy", "api.ipfsproxy.listen_multiaddress")?,
    })
}

async fn run_daemon(
    dir: PathBuf,
    config: cluster_node::NodeConfig,
    identity: Identity,
    data: DataFolder,
    bootstrap: Vec<String>,
) -> anyhow::Result<()> {
    tracing::info!("starting member {} ({})", identity.peer_id, config.cluster.peername);
    // Every listener first: a port in use stops start-up here, before Raft or a join, so a
    // member that cannot serve never becomes a voter of anyone's cluster.
    let listeners = bind_http_listeners(&dir, &config)?;
    let transport = P2pTransport::start(P2pConfig {
        keypair: identity.keypair.clone(),
        secret: config.cluster.secret.clone(),
        listen: config.cluster.listen_multiaddress.clone(),
    })
    .await
    .map_err(|e| listen_failure("cluster peer-to-peer host", "cluster.listen_multiaddress", &dir, &e))?;
    // Without a secret and without credentials, the cluster host would hand the whole API to
    // anyone who reaches its port.
    let api_open_to_anyone = config.cluster.secret.is_empty() && config.rest.credentials.is_none();
    let (tunnel, api_host) = match &listeners.rest {
        Some(_) => libp2p_http_endpoint(&transport, config.rest.libp2p.clone(), api_open_to_anyone)
            .await
            .map_err(|e| {
                listen_failure(
                    "REST API's libp2p host",
                    "api.restapi.libp2p_listen_multiaddress",
                    &dir,
                    &format!("{e:#}"),
                )
            })?,
        None => (None, None),
    };
    let ipfs = Arc::new(KuboConnector::new(KuboConnectorConfig {
        node_address: config.ipfs.node_address.clone(),
        request_timeout: config.ipfs.request_timeout,
        pin_timeout: config.ipfs.pin_timeout,
        unpin_timeout: config.ipfs.unpin_timeout,
    }));
    let (rest_config, proxy_config) = http_server_configs(&config);
    let known_members: Vec<String> = bootstrap.iter().chain(&config.init_peerset).cloned().collect();
    let advertised = advertised_address(transport.listen_addresses(), &known_members);
    tracing::info!("other members reach this one at {advertised:?}");
    let cluster = Cluster::start(ClusterDeps {
        config,
        identity,
        data,
        ipfs,
        rpc: Some(transport.clone()),
        state: None,
        disk: Arc::new(cluster_node::RealDisk),
        bootstrap,
        advertised_address: advertised,
    })
    .await?;
    // Whatever can still fail is done before the join: a member that joined is a voter.
    let (rest_server, proxy_server) = match http_servers(listeners, rest_config, proxy_config, &cluster) {
        Ok(servers) => servers,
        Err(e) => {
            cluster.shutdown().await;
            transport.stop();
            return Err(e);
        }
    };
    transport.serve(cluster.rpc_handler());
    if let Err(e) = cluster.join().await {
        cluster.shutdown().await;
        transport.stop();
        bail!("{e}");
    }
    serve_until_stopped(&cluster, rest_server.map(|rest| (rest, tunnel)), proxy_server).await;
    drop(api_host);
    cluster.shutdown().await;
    transport.stop();
    tracing::info!("stopped");
    Ok(())
}

/// The REST API and the IPFS proxy on their bound listeners, not serving yet.
fn http_servers(
    listeners: HttpListeners,
    rest_config: RestServerConfig,
    proxy_config: Option<IpfsProxyConfig>,
    cluster: &Arc<Cluster>,
) -> anyhow::Result<(Option<RestServer>, Option<IpfsProxy>)> {
    let rest = listeners
        .rest
        .map(|rest| RestServer::new(rest_config, rest, cluster.clone()).context("starting the REST API"))
        .transpose()?;
    let proxy = match (listeners.proxy, proxy_config) {
        (Some(proxy), Some(config)) => {
            Some(IpfsProxy::new(config, proxy, cluster.clone()).context("starting the IPFS proxy")?)
        }
        _ => None,
    };
    Ok((rest, proxy))
}

/// The REST API's and the IPFS proxy's settings (listeners are bound apart).
fn http_server_configs(config: &cluster_node::NodeConfig) -> (RestServerConfig, Option<IpfsProxyConfig>) {
    let rest_config = RestServerConfig {
        listen: Vec::new(),
        headers: config.rest.headers.clone(),
        credentials: config.rest.credentials.clone(),
        cors: config.rest.cors.clone(),
        tls: config.rest.tls.clone(),
        limits: config.rest.limits.clone(),
    };
    let proxy_config = config.proxy.listen.as_ref().map(|listen| IpfsProxyConfig {
        extract_headers_extra: config.proxy.extract_headers_extra.clone(),
        extract_headers_path: config.proxy.extract_headers_path.clone(),
        extract_headers_ttl: config.proxy.extract_headers_ttl,
        node_https: config.proxy.node_https,
        limits: config.proxy.limits.clone(),
        ..IpfsProxyConfig::new(listen.clone(), config.proxy.node_address.clone())
    });
    (rest_config, proxy_config)
}

/// Serves the REST API (with its libp2p tunnel) and the proxy until a signal comes or the
/// member is removed, then lets them finish.
async fn serve_until_stopped(
    cluster: &Cluster,
    rest_server: Option<(RestServer, Option<TunnelReceiver>)>,
    proxy_server: Option<IpfsProxy>,
) {
    let (stop_tx, stop_rx) = cluster_rt::tokio::sync::watch::channel(false);
    let mut server_task = None;
    if let Some((server, tunnel)) = rest_server {
        tracing::info!("REST API listening on {}", list(&server.local_addresses()));
        let server = match tunnel {
            Some(tunnel) => server.with_tunnel(tunnel),
            None => server,
        };
        let mut stop = stop_rx.clone();
        server_task = Some(cluster_rt::spawn(server.serve(async move {
            let _ = stop.changed().await;
        })));
    }
    let mut proxy_task = None;
    if let Some(proxy) = proxy_server {
        tracing::info!("IPFS proxy listening on {}", list(&proxy.local_addresses()));
        let mut stop = stop_rx.clone();
        proxy_task = Some(cluster_rt::spawn(proxy.serve(async move {
            let _ = stop.changed().await;
        })));
    }
    tracing::info!("IPFS Cluster member is READY");
    let trimmer = cluster_rt::spawn(crate::memory::trim_periodically());
    cluster_rt::tokio::select! {
        _ = wait_for_signal() => {}
        _ = cluster.removed() => tracing::warn!("removed from the cluster: shutting down"),
    }
    tracing::info!("shutting down");
    trimmer.abort();
    let _ = stop_tx.send(true);
    for task in [server_task, proxy_task].into_iter().flatten() {
        let _ = task.await;
    }
}

/// The REST API's libp2p endpoint, as Go's: `/libp2p-http` streams on the cluster's own host,
/// so whoever holds the cluster secret reaches the API at the member's cluster address; or, with
/// `restapi.libp2p_listen_multiaddress`, on a host of its own (returned: it lives while kept).
///
/// Unlike Go, the cluster host does not serve it when the API would be open to anyone
/// (`api_open_to_anyone`: no cluster secret and no `basic_auth_credentials`); an API host the
/// configuration asks for by name is served as asked.
async fn libp2p_http_endpoint(
    transport: &P2pTransport,
    own_host: Option<cluster_node::RestLibp2pHost>,
    api_open_to_anyone: bool,
) -> anyhow::Result<(Option<TunnelReceiver>, Option<HttpTunnelServer>)> {
    let (mut streams, host) = match own_host {
        None if api_open_to_anyone => {
            tracing::warn!(
                "REST API (libp2p-http): not served on the cluster host, which has no secret, while \
                 the API has no basic_auth_credentials: set either to reach the API over libp2p"
            );
            return Ok((None, None));
        }
        None => {
            let streams = transport.http_connections().context("taking the libp2p-http streams")?;
            announce(transport.listen_addresses(), transport.peer_id());
            (streams, None)
        }
        Some(config) => {
            let keypair =
                libp2p_identity::Keypair::from_protobuf_encoding(&config.private_key).context("restapi.private_key")?;
            let (host, streams) = HttpTunnelServer::start(keypair, &config.listen)
                .await
                .context("starting the REST API's libp2p host")?;
            announce(host.listen_addresses(), host.peer_id());
            (streams, Some(host))
        }
    };
    let (connections, tunnel) = cluster_rt::tokio::sync::mpsc::channel(64);
    cluster_rt::spawn(async move {
        use futures::StreamExt as _;
        while let Some((peer, stream)) = streams.next().await {
            let connection = cluster_api::TunnelConnection {
                io: Box::new(stream),
                peer: peer.to_string(),
            };
            if connections.send(connection).await.is_err() {
                break;
            }
        }
    });
    Ok((Some(tunnel), host))
}

fn announce(addresses: &[multiaddr::Multiaddr], peer: libp2p_identity::PeerId) {
    for address in addresses {
        tracing::info!("REST API (libp2p-http) listening on {address}/p2p/{peer}");
    }
}

/// `a, b` of listen addresses, for messages.
fn list(addresses: &[cluster_api::HttpAddress]) -> String {
    addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

async fn wait_for_signal() {
    use cluster_rt::tokio::signal::unix::{signal, SignalKind};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            let _ = cluster_rt::tokio::signal::ctrl_c().await;
            return;
        }
    };
    cluster_rt::tokio::select! {
        _ = cluster_rt::tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
