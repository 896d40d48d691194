//! The command line: global flags and commands of Go's `ipfs-cluster-ctl` v1.1.6, as clap derive
//! types. Help texts are Go's `Usage` (short) and `Description` (long) strings.
//!
//! Differences from Go's urfave/cli that a user may notice: flags may follow positional arguments,
//! global flags may follow the command, multi-letter aliases need two dashes (`--rmin`, not
//! `-rmin`), and every usage error exits with code 1 (urfave exits 1 for bad flags and 3 for an
//! unknown command; one code is simpler to script against).

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The API address used when `--host` is not given.
pub const DEFAULT_HOST: &str = "/ip4/127.0.0.1/tcp/9094";

const DESCRIPTION: &str = "\
ipfs-cluster-ctl is a tool to manage IPFS Cluster nodes.

Use \"ipfs-cluster-ctl help\" to list all available commands and
\"ipfs-cluster-ctl help <command>\" to get usage information for a
specific one.

ipfs-cluster-ctl uses the IPFS Cluster API to perform requests and
display responses in a user-readable format. The location of the IPFS
Cluster server is assumed to be /ip4/127.0.0.1/tcp/9094, but can be configured
with the --host option. If several multiaddresses are specified
(comma-separated), requests will be sent to the first one and fail-over
over to the others.

The host may also be a Unix socket (/unix/<path>), or a member's cluster
address (/ip4/<host>/tcp/9096/p2p/<peer id>, or /dnsaddr/<domain>) to reach
its API over libp2p with the cluster --secret.";

/// Help section of the flags that apply to every command.
const GLOBAL: &str = "Global options";

/// Output encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Encoding {
    /// Go's human-readable layouts.
    Text,
    /// Every object as JSON indented with 4 spaces.
    Json,
}

/// `ipfs-cluster-ctl`: CLI for IPFS Cluster.
#[derive(Debug, Parser)]
#[command(name = "ipfs-cluster-ctl", about = "CLI for IPFS Cluster", long_about = DESCRIPTION)]
#[command(disable_version_flag = true)]
pub struct Cli {
    /// API endpoint multiaddresses (comma-separated)
    #[arg(short = 'l', long, global = true, help_heading = GLOBAL, default_value = DEFAULT_HOST)]
    pub host: String,
    /// cluster secret (32 byte pnet-key) as needed. Only when using the LibP2P endpoint
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub secret: Option<String>,
    /// use https to connect to the API
    // Not global: `add -s` is the chunker, as in Go (whose globals precede the command).
    #[arg(short = 's', long, help_heading = GLOBAL)]
    pub https: bool,
    /// do not verify server TLS certificate. only valid with --https flag
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub no_check_certificate: bool,
    /// output format encoding [text, json]
    #[arg(
        long = "encoding",
        visible_alias = "enc",
        value_enum,
        global = true, help_heading = GLOBAL,
        default_value = "text"
    )]
    pub encoding: Encoding,
    /// number of seconds to wait before timing out a request
    #[arg(short = 't', long, global = true, help_heading = GLOBAL, default_value_t = 0)]
    pub timeout: u64,
    /// set debug log level
    #[arg(short = 'd', long, global = true, help_heading = GLOBAL)]
    pub debug: bool,
    /// <username>[:<password>] specify BasicAuth credentials for server that requires
    /// authorization. implies --https, which you can disable with --force-http
    #[arg(long, global = true, help_heading = GLOBAL, env = "CLUSTER_CREDENTIALS", hide_env_values = true)]
    pub basic_auth: Option<String>,
    /// force HTTP. only valid when using BasicAuth
    // Not global (Go's global flags come before the command too): `health graph -f <file>`
    // needs the short name.
    #[arg(short = 'f', long, help_heading = GLOBAL)]
    pub force_http: bool,
    /// print the version
    #[arg(short = 'v', long)]
    pub version: bool,
    /// The command to run; none prints the help.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Retrieve peer information
    #[command(
        long_about = "Retrieve peer information.\n\nThis command displays information about the peer that the tool is contacting\n(usually running in localhost)."
    )]
    Id,
    /// Add a file or directory to ipfs and pin it in the cluster
    #[command(long_about = ADD_DESCRIPTION)]
    Add(AddArgs),
    /// List and manage IPFS Cluster peers
    Peers {
        /// What to do with peers.
        #[command(subcommand)]
        command: PeersCommand,
    },
    /// Pin and unpin and list items in IPFS Cluster
    Pin {
        /// What to do with pins.
        #[command(subcommand)]
        command: PinCommand,
    },
    /// Retrieve the status of tracked items
    #[command(long_about = STATUS_DESCRIPTION)]
    Status(StatusArgs),
    /// Recover tracked items in error state
    #[command(long_about = RECOVER_DESCRIPTION)]
    Recover(RecoverArgs),
    /// Retrieve cluster version
    #[command(
        long_about = "Retrieve cluster version.\n\nThis command retrieves the IPFS Cluster version and can be used\nto check that it matches the CLI version (shown by -v)."
    )]
    Version,
    /// Cluster monitoring information
    Health {
        /// What to show.
        #[command(subcommand)]
        command: HealthCommand,
    },
    /// Manage IPFS daemon
    Ipfs {
        /// What to do.
        #[command(subcommand)]
        command: IpfsCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell)
    #[command(
        long_about = "Print a shell completion script.\n\nFor bash: ipfs-cluster-ctl completion bash > /etc/bash_completion.d/ipfs-cluster-ctl\nFor zsh: ipfs-cluster-ctl completion zsh > \"${fpath[1]}/_ipfs-cluster-ctl\"\nFor fish: ipfs-cluster-ctl completion fish > ~/.config/fish/completions/ipfs-cluster-ctl.fish"
    )]
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// List all commands
    #[command(hide = true)]
    Commands,
}

/// `health` subcommands.
#[derive(Debug, Subcommand)]
pub enum HealthCommand {
    /// create a graph displaying connectivity of cluster peers
    #[command(
        long_about = "create a graph displaying connectivity of cluster peers.\n\nThis command queries all connected cluster peers and their ipfs peers to generate a\ngraph of the connections. Output is a dot file encoding the cluster's connection state."
    )]
    Graph {
        /// writes to an output file instead of stdout
        #[arg(short = 'f', long, default_value = "")]
        file: String,
        /// causes the graph to mark nodes for ipfs peers not directly in the cluster
        #[arg(long = "all-ipfs-peers")]
        all_ipfs_peers: bool,
    },
    /// List latest metrics logged by this peer
    #[command(
        long_about = "List latest metrics logged by this peer.\n\nThis commands displays the latest valid metrics of the given type logged\nby this peer for all current cluster peers. If no argument is given, the\nnames of the available metrics are listed."
    )]
    Metrics {
        /// The metric name; none lists the names.
        #[arg(value_name = "metric name")]
        name: Option<String>,
    },
    /// List the latest expired metric alerts
    #[command(
        long_about = "List the latest expired metric alerts.\n\nThis command provides a list of \"alerts\" that the cluster has seen.\n\nAn alert is triggered when one of the metrics seen for a peer expires, and no\nnew metrics have been received."
    )]
    Alerts,
    /// Show bandwidth statistics
    Bandwidth,
}

/// `ipfs` subcommands.
#[derive(Debug, Subcommand)]
pub enum IpfsCommand {
    /// run garbage collection on IPFS repos of cluster peers
    #[command(
        long_about = "run garbage collection on IPFS repos of cluster peers.\n\nThis command will instruct current Cluster peers to run \"repo gc\" on their\nrespective IPFS daemons.\n\nWhen --local flag is passed, it will garbage collect only on the local IPFS\ndeamon, otherwise on all IPFS daemons."
    )]
    Gc {
        /// run garbage collection only on the local ipfs daemon
        #[arg(long)]
        local: bool,
    },
}

const ADD_DESCRIPTION: &str = "\
Add a file or directory to ipfs and pin it in the cluster.

Add allows to add and replicate content to several ipfs daemons, performing
a Cluster Pin operation on success. It takes elements from local paths as
well as from web URLs (accessed with a GET request). Providing several
arguments will automatically set --wrap-in-directory.

Cluster \"add\" works, by default, just like \"ipfs add\" and has similar options
in terms of DAG layout, chunker, hash function etc. It also supports adding
CAR files directly (--format car), as long as they have a single root. When
adding CAR files, all the options related to dag-building are ignored.

Added content will be allocated and sent block by block to the peers that
should pin it (among which may not necessarily be the local ipfs daemon).
Once all the blocks have arrived, they will be \"cluster-pinned\". This makes
cluster add slower than a local ipfs add, but the result is a fully replicated
on completion. If you prefer faster adding, use the --local flag to add
directly to the local IPFS node and pin in the destinations after that.
Note that the local IPFS node may not be among the destinations, which will
leave the unpinned content in it.

Optional replication-min and replication-max factors can be provided: -1 means
\"pin everywhere\" and 0 means use cluster's default setting (i.e., replication
factor set in config). Positive values indicate how many peers should pin this
content.";

/// Flags of `add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The files or folders to add.
    #[arg(value_name = "path", required = true)]
    pub paths: Vec<String>,
    /// Add directory paths recursively
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Write only hashes to output (one per line)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write only final hash to output
    #[arg(short = 'Q', long)]
    pub quieter: bool,
    /// Buffer output locally. Produce a valid JSON array on --enc=json.
    #[arg(long)]
    pub no_stream: bool,
    /// Add to local peer but pin normally
    #[arg(long)]
    pub local: bool,
    /// Sets a name for this pin
    #[arg(short = 'n', long, default_value = "")]
    pub name: String,
    /// Sets the minimum replication factor for pinning this file
    #[arg(
        long = "replication-min",
        visible_alias = "rmin",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub replication_min: i32,
    /// Sets the maximum replication factor for pinning this file
    #[arg(
        long = "replication-max",
        visible_alias = "rmax",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub replication_max: i32,
    /// Duration after which the pin should be unpinned automatically
    #[arg(long)]
    pub expire_in: Option<String>,
    /// Pin metadata: key=value. Can be added multiple times
    #[arg(long)]
    pub metadata: Vec<String>,
    /// Optional comma-separated list of peer IDs
    #[arg(long = "allocations", visible_alias = "allocs")]
    pub allocations: Option<String>,
    /// Do not pin after adding
    #[arg(long)]
    pub no_pin: bool,
    /// Wait for all nodes to report a status of pinned before returning
    #[arg(long)]
    pub wait: bool,
    /// How long to --wait (a duration such as 30s or 2m; a bare number is seconds). Default: forever
    #[arg(long = "wait-timeout", visible_alias = "wt")]
    pub wait_timeout: Option<String>,
    /// Wrap a with a directory object
    #[arg(short = 'w', long)]
    pub wrap_with_directory: bool,
    /// 'unixfs' (add files) or 'car' (import CAR file)
    #[arg(long, default_value = "unixfs")]
    pub format: String,
    /// Dag layout to use for dag generation: balanced or trickle
    #[arg(long, default_value = "")]
    pub layout: String,
    /// Include files that are hidden. Only takes effect on recursive add
    #[arg(short = 'H', long)]
    pub hidden: bool,
    /// 'size-<size>' or 'rabin-<min>-<avg>-<max>'
    #[arg(short = 's', long, default_value = "size-262144")]
    pub chunker: String,
    /// Use raw blocks for leaves (experimental)
    #[arg(long)]
    pub raw_leaves: bool,
    /// CID version. Non default implies raw-leaves
    #[arg(long, default_value_t = 0)]
    pub cid_version: u32,
    /// Hash function to use. Implies cid-version=1
    #[arg(long, default_value = "sha2-256")]
    pub hash: String,
    /// Add the URL using filestore. Implies raw-leaves. (experimental)
    #[arg(long)]
    pub nocopy: bool,
}

/// `peers` subcommands.
#[derive(Debug, Subcommand)]
pub enum PeersCommand {
    /// list the nodes participating in the IPFS Cluster
    #[command(
        long_about = "list the nodes participating in the IPFS Cluster.\n\nThis command provides a list of the ID information of all the peers in the Cluster."
    )]
    Ls,
    /// remove a peer from the Cluster
    #[command(
        long_about = "remove a peer from the Cluster.\n\nThis command removes a peer from the cluster. If the peer is online, it will\nautomatically shut down. All other cluster peers should be online for the\noperation to succeed, otherwise some nodes may be left with an outdated list of\ncluster peers."
    )]
    Rm {
        /// The peer ID to remove.
        #[arg(value_name = "peer ID")]
        peer: String,
    },
}

/// `pin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PinCommand {
    /// Pin an item in the cluster
    #[command(long_about = PIN_ADD_DESCRIPTION)]
    Add(PinAddArgs),
    /// Unpin an item from the cluster
    #[command(long_about = PIN_RM_DESCRIPTION)]
    Rm(PinRmArgs),
    /// List items in the cluster pinset
    #[command(long_about = PIN_LS_DESCRIPTION)]
    Ls(PinLsArgs),
    /// Pin a new item based on an existing one
    #[command(long_about = PIN_UPDATE_DESCRIPTION)]
    Update(PinUpdateArgs),
}

const PIN_UPDATE_DESCRIPTION: &str = "\
Pin a new item based on an existing one.

This command will pin a new item to the cluster, using the same options
(replication factors, allocations, ...) as an existing pin. The new item
is allocated to the same peers as the existing one, which makes the
update fast when the two share most of their blocks. The existing pin
is not removed.";

/// Flags of `pin update`.
#[derive(Debug, Args)]
pub struct PinUpdateArgs {
    /// The CID of the existing pin.
    #[arg(value_name = "from-CID")]
    pub from: String,
    /// The CID or IPFS path to pin in its place.
    #[arg(value_name = "to-CID|Path")]
    pub to: String,
    /// Sets a name for this updated pin
    #[arg(short = 'n', long, default_value = "")]
    pub name: String,
    /// Duration after which the pin should be unpinned automatically after updating
    #[arg(long)]
    pub expire_in: Option<String>,
    /// Prevents fetching pin status after updating (faster, quieter)
    #[arg(long = "no-status", visible_alias = "ns")]
    pub no_status: bool,
    /// The --wait family.
    #[command(flatten)]
    pub wait: WaitArgs,
}

const PIN_ADD_DESCRIPTION: &str = "\
Pin an item in the cluster.

This command tells IPFS Cluster to start managing a CID. Depending on
the pinning strategy, this will trigger IPFS pin requests. The CID will
become part of the Cluster's state and will tracked from this point.

When the request has succeeded, the command returns the status of the CID
in the cluster and should be part of the list offered by \"pin ls\".

An optional replication factor can be provided: -1 means \"pin everywhere\"
and 0 means use cluster's default setting (i.e., replication factor set in
config). Positive values indicate how many peers should pin this content.

An optional allocations argument can be provided, allocations should be a
comma-separated list of peer IDs on which we want to pin. Peers in allocations
are prioritized over automatically-determined ones, but replication factors
would still be respected.";

const PIN_RM_DESCRIPTION: &str = "\
Unpin an item from the cluster.

This command tells IPFS Cluster to no longer manage a CID. This will
trigger unpinning operations in all the IPFS nodes holding the content.

When the request has succeeded, the command returns the status of the CID
in the cluster. The CID should disappear from the list offered by \"pin ls\",
although unpinning operations in the cluster may take longer or fail.";

const PIN_LS_DESCRIPTION: &str = "\
List items in the cluster pinset.

This command will list the CIDs which are tracked by IPFS Cluster and to
which peers they are currently allocated. This list does not include
any monitoring information about the IPFS status of the CIDs, it
merely represents the list of pins which are part of the shared state of
the cluster. For IPFS-status information about the pins, use \"status\".

The filter only takes effect when listing all pins. The possible values are:
  - all (default)
  - pin (normal pins, recursive or direct)
  - meta-pin (sharded pins)
  - clusterdag-pin (sharding-dag root pins)
  - shard-pin (individual shard pins)";

const STATUS_DESCRIPTION: &str = "\
Retrieve the status of tracked items.

This command retrieves the status of the CIDs tracked by IPFS
Cluster, including which member is pinning them and any errors.
If one of several CIDs are provided, the status will be only fetched
for a single item.  Metadata CIDs are included in the status response.

When the --local flag is passed, it will only fetch the status from the
contacted cluster peer. By default, status will be fetched from all peers.

When the --filter flag is passed, it will only fetch the peer information
where status of the pin matches at least one of the filter values (a comma
separated list). The following are valid status values:

  - cluster_error
  - error
  - pin_error
  - pin_queued
  - pinned
  - pinning
  - queued
  - remote
  - sharded
  - unexpectedly_unpinned
  - unpin_error
  - unpin_queued
  - unpinned
  - unpinning";

const RECOVER_DESCRIPTION: &str = "\
Recover tracked items in error state.

This command asks Cluster peers to re-track or re-forget CIDs in
error state, usually because the IPFS pin or unpin operation has failed.

The command will wait for any operations to succeed and will return the status
of the item upon completion. Note that, when running on the full sets of tracked
CIDs (without argument), it may take a considerably long time.

When the --local flag is passed, it will only trigger recover
operations on the contacted peer (as opposed to on every peer).";

/// Flags of `pin add`.
#[derive(Debug, Args)]
pub struct PinAddArgs {
    /// The CID or IPFS path to pin.
    #[arg(value_name = "CID|Path")]
    pub target: String,
    /// Sets a custom replication factor (overrides -rmax and -rmin)
    #[arg(short = 'r', long, default_value_t = 0, allow_negative_numbers = true)]
    pub replication: i32,
    /// Sets the minimum replication factor for this pin
    #[arg(
        long = "replication-min",
        visible_alias = "rmin",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub replication_min: i32,
    /// Sets the maximum replication factor for this pin
    #[arg(
        long = "replication-max",
        visible_alias = "rmax",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub replication_max: i32,
    /// Optional comma-separated list of peer IDs
    #[arg(long = "allocations", visible_alias = "allocs")]
    pub allocations: Option<String>,
    /// Sets a name for this pin
    #[arg(short = 'n', long, default_value = "")]
    pub name: String,
    /// Select a way to pin: recursive or direct
    #[arg(long, default_value = "recursive")]
    pub mode: String,
    /// Duration after which pin should be unpinned automatically
    #[arg(long)]
    pub expire_in: Option<String>,
    /// Pin metadata: key=value. Can be added multiple times
    #[arg(long)]
    pub metadata: Vec<String>,
    /// Prevents fetching pin status after pinning (faster, quieter)
    #[arg(long = "no-status", visible_alias = "ns")]
    pub no_status: bool,
    /// The --wait family.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Flags of `pin rm`.
#[derive(Debug, Args)]
pub struct PinRmArgs {
    /// The CID or IPFS path to unpin.
    #[arg(value_name = "CID|Path")]
    pub target: String,
    /// Prevents fetching pin status after unpinning (faster, quieter)
    #[arg(long = "no-status", visible_alias = "ns")]
    pub no_status: bool,
    /// The --wait family.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The `--wait` family shared by `pin add` and `pin rm`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait for the pin to reach the minimum replication factor before returning
    #[arg(short = 'w', long)]
    pub wait: bool,
    /// How many peers should reach the desired status to finish waiting
    #[arg(long = "wait-limit", visible_alias = "wl")]
    pub wait_limit: Option<i64>,
    /// How long to --wait (a duration such as 30s or 2m; a bare number is seconds). Default: forever
    #[arg(long = "wait-timeout", visible_alias = "wt")]
    pub wait_timeout: Option<String>,
}

/// Flags of `pin ls`.
#[derive(Debug, Args)]
pub struct PinLsArgs {
    /// Show only this CID's allocation.
    #[arg(value_name = "CID")]
    pub cid: Option<String>,
    /// Comma separated list of pin types. See help above.
    #[arg(long, default_value = "all")]
    pub filter: String,
}

/// Flags of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// CIDs to show; none shows every tracked item.
    #[arg(value_name = "CID")]
    pub cids: Vec<String>,
    /// run operation only on the contacted peer
    #[arg(long)]
    pub local: bool,
    /// comma-separated list of filters
    #[arg(long)]
    pub filter: Option<String>,
}

/// Flags of `recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The CID to recover; none recovers every item in error.
    #[arg(value_name = "CID")]
    pub cid: Option<String>,
    /// run operation only on the contacted peer
    #[arg(long)]
    pub local: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn go_flag_spellings_parse() {
        let cli = Cli::try_parse_from([
            "ipfs-cluster-ctl",
            "--enc",
            "json",
            "-l",
            "/ip4/10.0.0.1/tcp/9094",
            "pin",
            "add",
            "--rmin",
            "-1",
            "--rmax",
            "3",
            "--allocs",
            "a,b",
            "-n",
            "x",
            "--metadata",
            "k=v",
            "--metadata",
            "a=b",
            "--ns",
            "-w",
            "--wl",
            "2",
            "--wt",
            "30s",
            "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9",
        ])
        .unwrap();
        assert_eq!(cli.encoding, Encoding::Json);
        assert_eq!(cli.host, "/ip4/10.0.0.1/tcp/9094");
        let Some(Command::Pin {
            command: PinCommand::Add(args),
        }) = cli.command
        else {
            panic!("not pin add")
        };
        assert_eq!((args.replication_min, args.replication_max), (-1, 3));
        assert_eq!(args.allocations.as_deref(), Some("a,b"));
        assert_eq!(args.metadata, vec!["k=v", "a=b"]);
        assert!(args.no_status && args.wait.wait);
        assert_eq!(args.wait.wait_limit, Some(2));
        assert_eq!(args.wait.wait_timeout.as_deref(), Some("30s"));
    }

    #[test]
    fn defaults_match_go() {
        let cli = Cli::try_parse_from(["ipfs-cluster-ctl", "pin", "ls"]).unwrap();
        assert_eq!(cli.host, DEFAULT_HOST);
        assert_eq!(cli.encoding, Encoding::Text);
        assert_eq!(cli.timeout, 0);
        let Some(Command::Pin {
            command: PinCommand::Ls(args),
        }) = cli.command
        else {
            panic!("not pin ls")
        };
        assert_eq!(args.filter, "all");
        assert!(Cli::try_parse_from(["ipfs-cluster-ctl", "--enc", "yaml", "id"]).is_err());
    }
}
