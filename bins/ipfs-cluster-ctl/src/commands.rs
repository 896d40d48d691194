//! What each command does: turns parsed flags into requests (as Go's `main.go` actions do), prints
//! the answers in the chosen encoding, and implements the after-pin status fetch and `--wait`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use cluster_types::{
    AddedOutput, Alert, Bandwidth, Cid, ConnectGraph, GlobalPinInfo, GlobalRepoGc, Id, Metric, PeerId, Pin, PinMode,
    PinOptions, Timestamp, TrackerStatus, TrackerStatusFilter, Version,
};
use http::Method;
use serde::Serialize;

use crate::cli::{
    AddArgs, Cli, Command, Encoding, HealthCommand, IpfsCommand, PeersCommand, PinAddArgs, PinCommand, PinRmArgs,
    PinUpdateArgs, WaitArgs,
};
use crate::client::{self, Client, ClientConfig};
use crate::error::CtlError;
use crate::format::{self, TextFormat};
use crate::paths;

/// How often `--wait` polls the status (Go's `defaultWaitCheckFreq`).
const WAIT_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long to wait before fetching the status after a pin/unpin without `--wait` (Go sleeps 1 s).
const STATUS_DELAY: Duration = Duration::from_secs(1);

/// Where results go, in the chosen encoding.
pub struct Output<W: Write> {
    /// The chosen encoding.
    pub encoding: Encoding,
    writer: W,
}

impl<W: Write> Output<W> {
    /// Output in `encoding` to `writer`.
    pub fn new(encoding: Encoding, writer: W) -> Output<W> {
        Output { encoding, writer }
    }

    /// Prints one object: Go's text layout or indented JSON.
    pub fn emit<T: Serialize + TextFormat>(&mut self, item: &T) -> Result<(), CtlError> {
        let text = match self.encoding {
            Encoding::Text => item.to_text(),
            Encoding::Json => format::json_text(item).map_err(|e| CtlError::local("generating json output", e))?,
        };
        self.writer.write_all(text.as_bytes()).map_err(CtlError::writing)
    }

    /// One `add` output line: `added <cid> <name>`, only the CID when `quiet`, or JSON.
    pub fn emit_added(&mut self, line: &AddedOutput, quiet: bool) -> Result<(), CtlError> {
        let cid = line.cid.map(|c| c.to_string()).unwrap_or_default();
        let text = match (self.encoding, quiet) {
            (Encoding::Json, _) => format::json_text(line).map_err(|e| CtlError::local("generating json output", e))?,
            (Encoding::Text, true) => format!("{cid}\n"),
            (Encoding::Text, false) => format!("added {cid} {}\n", line.name),
        };
        self.write_raw(&text)
    }

    /// Writes text as is, whatever the encoding (`health graph` prints a dot file).
    pub fn write_raw(&mut self, text: &str) -> Result<(), CtlError> {
        self.writer.write_all(text.as_bytes()).map_err(CtlError::writing)
    }

    /// Flushes what is buffered; call before exiting.
    pub fn finish(&mut self) -> Result<(), CtlError> {
        self.writer.flush().map_err(CtlError::writing)
    }
}

/// Prints a failure where Go prints it: API errors on stdout in the chosen encoding, everything
/// else as `error <doing>: <message>` on stderr. Returns the exit code.
pub fn report<O: Write, E: Write>(error: &CtlError, encoding: Encoding, stdout: O, mut stderr: E) -> i32 {
    match error {
        CtlError::Api(api) => {
            let mut out = Output::new(encoding, stdout);
            if out.emit(api).is_err() {
                let _ = writeln!(stderr, "{}", format::api_error_text(api).trim_end());
            }
        }
        CtlError::OutputClosed => {}
        other => {
            let _ = writeln!(stderr, "{other}");
        }
    }
    error.exit_code()
}

/// Builds the client configuration from the global flags, refusing what is not supported.
pub fn client_config(cli: &Cli) -> Result<ClientConfig, CtlError> {
    let secret = cli.secret.as_deref().unwrap_or("");
    // Checked like Go's hex.DecodeString; only libp2p endpoints use it.
    if !secret.len().is_multiple_of(2) || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CtlError::local(
            "parsing secret",
            "encoding/hex: invalid byte or odd length",
        ));
    }
    let secret: Vec<u8> = (0..secret.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&secret[i..i + 2], 16).ok())
        .collect();
    let endpoints = client::parse_hosts(&cli.host).map_err(|e| CtlError::local("parsing host multiaddress", e))?;
    let credentials = cli.basic_auth.as_deref().and_then(client::parse_credentials);
    // As Go: credentials turn on HTTPS unless --force-http, so they are not sent in clear by accident.
    let https = cli.https || (credentials.is_some() && !cli.force_http);
    let timeout = (cli.timeout > 0).then(|| Duration::from_secs(cli.timeout));
    Ok(ClientConfig {
        endpoints,
        credentials,
        timeout,
        debug: cli.debug,
        https,
        no_check_certificate: cli.no_check_certificate,
        secret,
    })
}

/// Runs the command in `cli` against `client`, printing results to `out`.
pub async fn run<W: Write>(cli: &Cli, client: &Client, out: &mut Output<W>) -> Result<(), CtlError> {
    let Some(command) = &cli.command else { return Ok(()) };
    match command {
        Command::Id => {
            let id: Id = required(client.call(Method::GET, "/id").await?)?;
            out.emit(&id)
        }
        Command::Version => {
            let version: Version = required(client.call(Method::GET, "/version").await?)?;
            out.emit(&version)
        }
        Command::Peers {
            command: PeersCommand::Ls,
        } => client.stream(Method::GET, "/peers", |id: Id| out.emit(&id)).await,
        Command::Peers {
            command: PeersCommand::Rm { peer },
        } => {
            let peer: cluster_types::PeerId = peer.parse().map_err(|e| CtlError::local("parsing peer ID", e))?;
            let _: Option<serde_json::Value> = client.call(Method::DELETE, &format!("/peers/{peer}")).await?;
            Ok(())
        }
        Command::Pin {
            command: PinCommand::Add(args),
        } => pin_add(client, out, args).await,
        Command::Pin {
            command: PinCommand::Rm(args),
        } => pin_rm(client, out, args).await,
        Command::Add(args) => add(client, out, args).await,
        Command::Pin {
            command: PinCommand::Update(args),
        } => pin_update(client, out, args).await,
        Command::Health {
            command: HealthCommand::Metrics { name: None },
        } => {
            let names: Vec<String> = client.call(Method::GET, "/monitor/metrics").await?.unwrap_or_default();
            out.emit(&names)
        }
        Command::Health {
            command: HealthCommand::Metrics { name: Some(name) },
        } => {
            let path = format!("/monitor/metrics/{}", paths::escape_segment(name));
            let metrics: Vec<Metric> = client.call(Method::GET, &path).await?.unwrap_or_default();
            if metrics.is_empty() {
                // The API answers an empty list for any name; say when the name is unknown.
                let names: Vec<String> = client.call(Method::GET, "/monitor/metrics").await?.unwrap_or_default();
                let informer = ["freespace", "ping", "pinqueue"].contains(&name.as_str()) || name.starts_with("tag:");
                if informer && !names.contains(name) {
                    // A metric members publish, not received yet (freespace waits for the daemon).
                    eprintln!("no member has reported {name} yet");
                } else if !names.contains(name) {
                    return Err(CtlError::local(
                        "reading metrics",
                        format!("no metric named {name:?}; this cluster has: {}", names.join(", ")),
                    ));
                }
            }
            out.emit(&metrics)
        }
        Command::Health {
            command: HealthCommand::Alerts,
        } => {
            let alerts: Vec<Alert> = client.call(Method::GET, "/health/alerts").await?.unwrap_or_default();
            out.emit(&alerts)
        }
        Command::Health {
            command: HealthCommand::Bandwidth,
        } => {
            let bandwidth: BTreeMap<String, Bandwidth> =
                client.call(Method::GET, "/health/bandwidth").await?.unwrap_or_default();
            out.emit(&bandwidth)
        }
        Command::Health {
            command: HealthCommand::Graph { file, all_ipfs_peers },
        } => {
            let graph: ConnectGraph = required(client.call(Method::GET, "/health/graph").await?)?;
            let dot = format::graph_dot(&graph, *all_ipfs_peers);
            if file.is_empty() {
                out.write_raw(&dot)
            } else {
                std::fs::write(file, dot).map_err(|e| CtlError::local(&format!("writing {file}"), e))
            }
        }
        Command::Ipfs {
            command: IpfsCommand::Gc { local },
        } => {
            let gc: GlobalRepoGc = required(client.call(Method::POST, &format!("/ipfs/gc?local={local}")).await?)?;
            out.emit(&gc)
        }
        // Printed before any client exists (see main.rs).
        Command::Completion { .. } | Command::Commands => Ok(()),
        Command::Pin {
            command: PinCommand::Ls(args),
        } => match &args.cid {
            Some(text) => {
                let cid = parse_cid(text)?;
                let pin: Pin = required(client.call(Method::GET, &paths::allocation_path(&cid)).await?)?;
                out.emit(&pin)
            }
            None => {
                let path = paths::allocations_path(&args.filter);
                client.stream(Method::GET, &path, |pin: Pin| out.emit(&pin)).await
            }
        },
        Command::Status(args) => {
            let cids = args.cids.iter().map(|c| parse_cid(c)).collect::<Result<Vec<_>, _>>()?;
            match cids.as_slice() {
                [cid] => {
                    let info: GlobalPinInfo =
                        required(client.call(Method::GET, &paths::status_path(cid, args.local)).await?)?;
                    out.emit(&info)
                }
                [] => {
                    let filter = status_filter(args.filter.as_deref().unwrap_or(""))?;
                    let path = paths::status_all_path(args.local, &filter, &[]);
                    client
                        .stream(Method::GET, &path, |info: GlobalPinInfo| out.emit(&info))
                        .await
                }
                // Go's StatusCids ignores --filter.
                many => {
                    let path = paths::status_all_path(args.local, "", many);
                    client
                        .stream(Method::GET, &path, |info: GlobalPinInfo| out.emit(&info))
                        .await
                }
            }
        }
        Command::Recover(args) => match &args.cid {
            Some(text) => {
                let cid = parse_cid(text)?;
                let info: GlobalPinInfo = required(
                    client
                        .call(Method::POST, &paths::recover_path(&cid, args.local))
                        .await?,
                )?;
                out.emit(&info)
            }
            None => {
                let path = paths::recover_all_path(args.local);
                client
                    .stream(Method::POST, &path, |info: GlobalPinInfo| out.emit(&info))
                    .await
            }
        },
    }
}

/// An answer that must have a body (a 204 here means a broken server).
fn required<T>(answer: Option<T>) -> Result<T, CtlError> {
    answer.ok_or_else(|| CtlError::local("decoding response", "the API answered without a body"))
}

fn parse_cid(text: &str) -> Result<Cid, CtlError> {
    text.parse().map_err(|e| CtlError::local("parsing cid", e))
}

/// The `--filter` of `status` as sent: the recognized status names (Go drops unknown ones and
/// refuses a filter that names none).
pub fn status_filter(text: &str) -> Result<String, CtlError> {
    let names: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|name| TrackerStatusFilter::parse(name).is_ok_and(|f| !f.is_any()))
        .collect();
    if names.is_empty() && !text.trim().is_empty() {
        return Err(CtlError::local("parsing filter flag", "invalid filter name"));
    }
    Ok(names.join(","))
}

/// `--metadata k=v` values (Go's `parseMetadata`).
pub fn parse_metadata(items: &[String]) -> Result<BTreeMap<String, String>, CtlError> {
    let mut metadata = BTreeMap::new();
    for item in items {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| CtlError::local("parsing metadata", "metadata were not in the format key=value"))?;
        metadata.insert(key.to_string(), value.to_string());
    }
    Ok(metadata)
}

/// A `--wait-timeout` value: a Go duration (`30s`, `2m`) or a bare number of seconds; zero means
/// no timeout.
pub fn parse_wait_timeout(text: Option<&str>) -> Result<Option<Duration>, CtlError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let duration = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => cluster_types::duration::parse(text).map_err(|e| CtlError::local("parsing wait-timeout", e))?,
    };
    Ok((!duration.is_zero()).then_some(duration))
}

/// `--allocations a,b`: the peer ids; empty when not given. Go refuses the whole list if one
/// does not decode.
fn parse_allocations(list: Option<&str>) -> Result<Vec<PeerId>, CtlError> {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .map(|text| {
            text.parse::<PeerId>()
                .map_err(|_| CtlError::local("decoding allocations", "some peer IDs could not be decoded"))
        })
        .collect()
}

/// `--expire-in <duration>` as a time after `now`; zero (no expiry) when not given.
fn expire_at(expire_in: Option<&str>, now: Timestamp) -> Result<Timestamp, CtlError> {
    match expire_in.filter(|t| !t.is_empty()) {
        None => Ok(Timestamp::ZERO),
        Some(text) => {
            let duration = cluster_types::duration::parse(text).map_err(|e| CtlError::local("parsing expire-in", e))?;
            Ok(now.add(duration))
        }
    }
}

/// The pin options `pin add` sends, from its flags (Go's `pin add` action).
pub fn pin_add_options(args: &PinAddArgs, now: Timestamp) -> Result<PinOptions, CtlError> {
    let (mut min, mut max) = (args.replication_min, args.replication_max);
    if args.replication != 0 {
        (min, max) = (args.replication, args.replication);
    }
    // Go always sends `user-allocations`, empty when no peers were given.
    let allocations = parse_allocations(args.allocations.as_deref())?;
    let expire_at = expire_at(args.expire_in.as_deref(), now)?;
    Ok(PinOptions {
        replication_factor_min: min,
        replication_factor_max: max,
        name: args.name.clone(),
        mode: PinMode::from_text(&args.mode),
        user_allocations: Some(allocations),
        expire_at,
        metadata: parse_metadata(&args.metadata)?,
        ..PinOptions::default()
    })
}

async fn pin_add<W: Write>(client: &Client, out: &mut Output<W>, args: &PinAddArgs) -> Result<(), CtlError> {
    let options = pin_add_options(args, Timestamp::now())?;
    let wait_timeout = parse_wait_timeout(args.wait.wait_timeout.as_deref())?;
    let path = paths::pin_path(&args.target, &options).map_err(|e| CtlError::local("parsing path", e))?;
    let pin: Pin = required(client.call(Method::POST, &path).await?)?;
    after_pin(
        client,
        out,
        pin,
        TrackerStatus::Pinned,
        args.no_status,
        &args.wait,
        wait_timeout,
    )
    .await
}

/// `pin update <from> <to>`: pins `to` with `pin-update=<from>`, so the cluster copies the
/// existing pin's options and allocations (Go's `pin update` action).
async fn pin_update<W: Write>(client: &Client, out: &mut Output<W>, args: &PinUpdateArgs) -> Result<(), CtlError> {
    let from = parse_cid(&args.from)?;
    let wait_timeout = parse_wait_timeout(args.wait.wait_timeout.as_deref())?;
    let options = PinOptions {
        name: args.name.clone(),
        expire_at: expire_at(args.expire_in.as_deref(), Timestamp::now())?,
        pin_update: Some(from),
        user_allocations: Some(Vec::new()),
        ..PinOptions::default()
    };
    let path = paths::pin_path(&args.to, &options).map_err(|e| CtlError::local("parsing path", e))?;
    let pin: Pin = required(client.call(Method::POST, &path).await?)?;
    after_pin(
        client,
        out,
        pin,
        TrackerStatus::Pinned,
        args.no_status,
        &args.wait,
        wait_timeout,
    )
    .await
}

/// The `/add` query Go's ctl sends (`AddParams.ToQueryString`, sorted by name), from the flags.
pub fn add_query(args: &AddArgs, now: Timestamp) -> Result<Vec<(String, String)>, CtlError> {
    // Go's ctl: a non-default hash implies CIDv1, and CIDv1 implies raw leaves.
    let cid_version = if args.hash != "sha2-256" { 1 } else { args.cid_version };
    let raw_leaves = args.raw_leaves || cid_version > 0;
    let wrap = args.wrap_with_directory || args.paths.len() > 1;
    let allocations: Vec<String> = parse_allocations(args.allocations.as_deref())?
        .iter()
        .map(ToString::to_string)
        .collect();
    let bool_text = |b: bool| b.to_string();
    let mut query: Vec<(String, String)> = vec![
        ("chunker".into(), args.chunker.clone()),
        ("cid-version".into(), cid_version.to_string()),
        ("format".into(), args.format.clone()),
        ("hash".into(), args.hash.clone()),
        ("hidden".into(), bool_text(args.hidden)),
        ("layout".into(), args.layout.clone()),
        ("local".into(), bool_text(args.local)),
        ("mode".into(), "recursive".into()),
        ("name".into(), args.name.clone()),
        ("no-pin".into(), bool_text(args.no_pin)),
        ("nocopy".into(), bool_text(args.nocopy)),
        ("progress".into(), "false".into()),
        ("raw-leaves".into(), bool_text(raw_leaves)),
        ("recursive".into(), bool_text(args.recursive)),
        ("replication-max".into(), args.replication_max.to_string()),
        ("replication-min".into(), args.replication_min.to_string()),
        ("shard".into(), "false".into()),
        ("shard-size".into(), "104857600".into()),
        ("stream-channels".into(), "true".into()),
        ("user-allocations".into(), allocations.join(",")),
        ("wrap-with-directory".into(), bool_text(wrap)),
    ];
    let expire = expire_at(args.expire_in.as_deref(), now)?;
    if !expire.is_zero() {
        query.push(("expire-at".into(), expire.to_string()));
    }
    for (key, value) in parse_metadata(&args.metadata)? {
        query.push((format!("meta-{key}"), value));
    }
    query.sort();
    Ok(query)
}

/// `add`: uploads the paths, prints each added entry as it comes (`added <cid> <name>`, only
/// CIDs with -q, only the root with -Q), and with `--wait` waits for the root to be pinned.
/// On a terminal, progress goes to stderr.
async fn add<W: Write>(client: &Client, out: &mut Output<W>, args: &AddArgs) -> Result<(), CtlError> {
    use std::io::IsTerminal;
    let wait_timeout = parse_wait_timeout(args.wait_timeout.as_deref())?;
    // Go's footgun check (several paths imply wrapping).
    if args.format == "car" && (args.wrap_with_directory || args.paths.len() > 1) {
        return Err(CtlError::local(
            "",
            "only a single CAR file can be added and wrap-with-directory is not supported",
        ));
    }
    // URLs are downloaded first (to a temporary folder, removed at the end), then added as
    // files named after the URL's last path segment, as Go's web files are.
    let downloads = DownloadDir::new()?;
    let mut paths = Vec::with_capacity(args.paths.len());
    for arg in &args.paths {
        if arg.starts_with("http://") || arg.starts_with("https://") {
            let name = url::Url::parse(arg)
                .ok()
                .and_then(|u| u.path_segments().and_then(|mut s| s.next_back().map(str::to_string)))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "index".to_string());
            let dest = downloads.path.join(format!("{}", paths.len())).join(&name);
            client.download(arg, &dest).await?;
            paths.push(dest.to_string_lossy().into_owned());
        } else {
            paths.push(arg.clone());
        }
    }
    let parts = crate::upload::plan(&paths, args.recursive, args.hidden).map_err(|e| CtlError::local("adding", e))?;
    let total = crate::upload::total_bytes(&parts);
    let show_progress =
        !args.quiet && !args.quieter && out.encoding == Encoding::Text && std::io::stderr().is_terminal();
    let mut query = add_query(args, Timestamp::now())?;
    if show_progress {
        for pair in query.iter_mut().filter(|(k, _)| k == "progress") {
            pair.1 = "true".into();
        }
    }
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&query)
        .finish();
    let make = || {
        let body = crate::upload::MultipartBody::new(parts.clone());
        let content_type = body.content_type();
        Ok((http_body_util::BodyExt::boxed_unsync(body), content_type))
    };
    // Entries are printed once the whole add succeeded: an entry of an add that then failed
    // (a full disk, a lost connection) was not pinned, and "added <cid>" would say it was.
    let mut added: Vec<AddedOutput> = Vec::new();
    let uploaded = client
        .upload(&format!("/add?{encoded}"), &make, |line: AddedOutput| {
            if line.cid.is_some() {
                added.push(line);
            } else if show_progress {
                eprint!(
                    "\r{}: {} / {}   ",
                    line.name,
                    format::humanize_bytes(line.bytes),
                    format::humanize_bytes(total)
                );
            }
            Ok(())
        })
        .await;
    if show_progress {
        // Cleared before anything else is printed, the error included.
        eprint!("\r\x1b[K");
    }
    uploaded?;
    let root_cid = added.last().and_then(|line| line.cid);
    print_added(out, args, added)?;
    if args.wait && !args.no_pin {
        if let Some(cid) = root_cid {
            // Go waits for the allocation's own minimum, which the cluster may have defaulted;
            // the flag's value only when the allocation cannot be read.
            let limit = match client.call::<Pin>(Method::GET, &paths::allocation_path(&cid)).await {
                Ok(Some(pin)) => i64::from(pin.options.replication_factor_min),
                _ => i64::from(args.replication_min),
            };
            wait_for(client, &cid, TrackerStatus::Pinned, wait_timeout, limit).await?;
        }
    }
    Ok(())
}

/// Prints the entries of a finished add as Go does: every entry as it came (`added <cid>
/// <name>`, only CIDs with -q), only the root with -Q, or one JSON array with --no-stream.
/// Nothing at all when nothing was added.
fn print_added<W: Write>(out: &mut Output<W>, args: &AddArgs, mut added: Vec<AddedOutput>) -> Result<(), CtlError> {
    let Some(root) = added.last().cloned() else {
        return Ok(());
    };
    if args.quieter {
        // -Q keeps only the root (still a list with --no-stream).
        added = vec![root];
    }
    let quiet = args.quiet || args.quieter;
    if args.no_stream && out.encoding == Encoding::Json {
        let text = format::json_text(&added).map_err(|e| CtlError::local("generating json output", e))?;
        return out.write_raw(&text);
    }
    for line in &added {
        out.emit_added(line, quiet)?;
    }
    Ok(())
}

/// `commands`: every command path, one per line, as Go's hidden `commands` prints them.
pub fn command_list() -> String {
    use clap::CommandFactory;
    fn walk(command: &clap::Command, prefix: &str, out: &mut String) {
        for sub in command
            .get_subcommands()
            .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        {
            let path = format!("{prefix} {}", sub.get_name());
            out.push_str(&path);
            out.push('\n');
            walk(sub, &path, out);
        }
    }
    let mut out = String::new();
    walk(&Cli::command(), "ipfs-cluster-ctl", &mut out);
    out
}

/// A temporary folder for downloaded URLs, removed when dropped.
struct DownloadDir {
    path: std::path::PathBuf,
}

impl DownloadDir {
    /// A new, empty folder of our own (created exclusively, so two runs never share one).
    fn new() -> Result<DownloadDir, CtlError> {
        let base = std::env::temp_dir();
        for attempt in 0..1000 {
            let path = base.join(format!("ipfs-cluster-ctl-{}-{attempt}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(DownloadDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(CtlError::local("creating a download folder", e)),
            }
        }
        Err(CtlError::local("creating a download folder", "no free name"))
    }
}

impl Drop for DownloadDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `completion <shell>`: the completion script for `shell`.
pub fn completion<W: Write>(shell: clap_complete::Shell, writer: &mut W) -> Result<(), CtlError> {
    use clap::CommandFactory;
    let mut command = Cli::command();
    // Generated into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "ipfs-cluster-ctl", &mut script);
    writer
        .write_all(&script)
        .and_then(|()| writer.flush())
        .map_err(CtlError::writing)
}

async fn pin_rm<W: Write>(client: &Client, out: &mut Output<W>, args: &PinRmArgs) -> Result<(), CtlError> {
    let wait_timeout = parse_wait_timeout(args.wait.wait_timeout.as_deref())?;
    let path = paths::unpin_path(&args.target).map_err(|e| CtlError::local("parsing path", e))?;
    let pin: Pin = required(client.call(Method::DELETE, &path).await?)?;
    after_pin(
        client,
        out,
        pin,
        TrackerStatus::Unpinned,
        args.no_status,
        &args.wait,
        wait_timeout,
    )
    .await
}

/// Go's `handlePinResponseFormatFlags`: optionally wait for the target status, then print the pin
/// (`--no-status`) or the status (the one `--wait` ended with, or one fetched after 1 s).
async fn after_pin<W: Write>(
    client: &Client,
    out: &mut Output<W>,
    pin: Pin,
    target: TrackerStatus,
    no_status: bool,
    wait: &WaitArgs,
    wait_timeout: Option<Duration>,
) -> Result<(), CtlError> {
    let mut status = None;
    if wait.wait {
        let limit = wait.wait_limit.unwrap_or(match target {
            TrackerStatus::Pinned => i64::from(pin.options.replication_factor_min),
            _ => 0,
        });
        status = Some(wait_for(client, &pin.cid, target, wait_timeout, limit).await?);
    }
    if no_status {
        return out.emit(&pin);
    }
    let status = match status {
        Some(status) => status,
        None => {
            tokio::time::sleep(STATUS_DELAY).await;
            required(client.call(Method::GET, &paths::status_path(&pin.cid, false)).await?)?
        }
    };
    out.emit(&status)
}

/// Polls `GET /pins/<cid>` every second until [`status_reached`] says so, or `timeout` passes.
async fn wait_for(
    client: &Client,
    cid: &Cid,
    target: TrackerStatus,
    timeout: Option<Duration>,
    limit: i64,
) -> Result<GlobalPinInfo, CtlError> {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    // The deadline ends the wait, not the operation: it was committed and goes on.
    let what_goes_on = match target {
        TrackerStatus::Unpinned => "is out of the pinset and the cluster keeps unpinning it",
        _ => "stays in the pinset and the cluster keeps pinning it",
    };
    let expired = || CtlError::Deadline {
        doing: "waiting for pin status".into(),
        note: Some(format!(
            "{cid} {what_goes_on}; follow it with: ipfs-cluster-ctl status {cid}"
        )),
    };
    loop {
        let next_poll = tokio::time::Instant::now() + WAIT_CHECK_EVERY;
        match deadline {
            Some(deadline) if deadline <= next_poll => {
                tokio::time::sleep_until(deadline).await;
                return Err(expired());
            }
            _ => tokio::time::sleep_until(next_poll).await,
        }
        let path = paths::status_path(cid, false);
        let poll = client.call(Method::GET, &path);
        let answer = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, poll).await.map_err(|_| expired())??,
            None => poll.await?,
        };
        let info: GlobalPinInfo = required(answer)?;
        if status_reached(target, &info, limit).map_err(|e| CtlError::local("waiting for pin status", e))? {
            return Ok(info);
        }
    }
}

/// Go's `statusReached`: an error status anywhere fails; with a positive `limit` (capped at the
/// number of peers), enough peers at `target` is success; otherwise every peer must be at `target`
/// (`remote` counts as done when waiting for `pinned`).
pub fn status_reached(target: TrackerStatus, info: &GlobalPinInfo, limit: i64) -> Result<bool, String> {
    let failed = info.peer_map.values().any(|s| {
        matches!(
            s.status,
            TrackerStatus::Undefined
                | TrackerStatus::ClusterError
                | TrackerStatus::PinError
                | TrackerStatus::UnpinError
        )
    });
    if failed {
        return Err(format!("error has occurred while attempting to reach status: {target}"));
    }
    let limit = limit.min(info.peer_map.len() as i64);
    if limit > 0 {
        let reached = info.peer_map.values().filter(|s| s.status == target).count() as i64;
        return Ok(reached >= limit);
    }
    Ok(info
        .peer_map
        .values()
        .all(|s| s.status == target || (target == TrackerStatus::Pinned && s.status == TrackerStatus::Remote)))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use cluster_types::{ApiError, PinInfoShort};

    use super::*;

    fn info(statuses: &[TrackerStatus]) -> GlobalPinInfo {
        let mut peer_map = BTreeMap::new();
        for (i, status) in statuses.iter().enumerate() {
            peer_map.insert(
                format!("peer{i}"),
                PinInfoShort {
                    status: *status,
                    ..Default::default()
                },
            );
        }
        GlobalPinInfo {
            cid: "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9".parse().unwrap(),
            name: String::new(),
            allocations: vec![],
            origins: vec![],
            created: Timestamp::ZERO,
            metadata: BTreeMap::new(),
            peer_map,
        }
    }

    #[test]
    fn wait_conditions_follow_go() {
        use TrackerStatus::*;
        let pinned = TrackerStatus::Pinned;
        assert_eq!(status_reached(pinned, &info(&[Pinned, Remote, Pinned]), 0), Ok(true));
        assert_eq!(status_reached(pinned, &info(&[Pinned, Pinning]), 0), Ok(false));
        assert_eq!(status_reached(pinned, &info(&[Pinned, Pinning]), 1), Ok(true));
        assert_eq!(status_reached(pinned, &info(&[Pinned, Pinning]), 2), Ok(false));
        // A limit above the peer count is capped; -1 means "all peers".
        assert_eq!(status_reached(pinned, &info(&[Pinned, Pinned]), 5), Ok(true));
        assert_eq!(status_reached(pinned, &info(&[Pinned, Remote]), -1), Ok(true));
        assert!(status_reached(pinned, &info(&[Pinned, PinError]), 1).is_err());
        assert!(status_reached(pinned, &info(&[Undefined]), 1).is_err());
        let unpinned = TrackerStatus::Unpinned;
        assert_eq!(status_reached(unpinned, &info(&[Unpinned, Remote]), 0), Ok(false));
        assert_eq!(status_reached(unpinned, &info(&[Unpinned, Unpinned]), 0), Ok(true));
    }

    #[test]
    fn pin_add_flags_become_options() {
        let cli = Cli::try_parse_from([
            "ipfs-cluster-ctl",
            "pin",
            "add",
            "-r",
            "3",
            "--rmin",
            "1",
            "--mode",
            "direct",
            "--expire-in",
            "1m",
            "--metadata",
            "a=b=c",
            "--allocs",
            &format!(" {} ", PeerId::from_ed25519_seed([1; 32])),
            "cid",
        ])
        .unwrap();
        let Some(Command::Pin {
            command: PinCommand::Add(args),
        }) = &cli.command
        else {
            panic!("not pin add")
        };
        let now = Timestamp::from_unix(1_000, 0);
        let options = pin_add_options(args, now).unwrap();
        assert_eq!((options.replication_factor_min, options.replication_factor_max), (3, 3));
        assert_eq!(options.mode, PinMode::Direct);
        assert_eq!(options.expire_at, Timestamp::from_unix(1_060, 0));
        assert_eq!(options.metadata.get("a").map(String::as_str), Some("b=c"));
        assert_eq!(options.user_allocations, Some(vec![PeerId::from_ed25519_seed([1; 32])]));
    }

    #[test]
    fn bad_pin_add_flags_are_local_errors() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["ipfs-cluster-ctl", "pin", "add", "cid"];
            argv.extend_from_slice(extra);
            let cli = Cli::try_parse_from(argv).unwrap();
            let Some(Command::Pin {
                command: PinCommand::Add(args),
            }) = cli.command
            else {
                panic!("not pin add")
            };
            pin_add_options(&args, Timestamp::ZERO)
        };
        assert_eq!(
            parse(&["--metadata", "novalue"]).unwrap_err().to_string(),
            "error parsing metadata: metadata were not in the format key=value"
        );
        assert_eq!(
            parse(&["--allocs", "x,y"]).unwrap_err().to_string(),
            "error decoding allocations: some peer IDs could not be decoded"
        );
        assert!(parse(&["--expire-in", "soon"])
            .unwrap_err()
            .to_string()
            .starts_with("error parsing expire-in"));
        assert_eq!(parse(&[]).unwrap().user_allocations, Some(vec![]));
    }

    #[test]
    fn filters_and_timeouts_parse() {
        assert_eq!(status_filter("").unwrap(), "");
        assert_eq!(status_filter("pinned, error,bogus").unwrap(), "pinned,error");
        assert_eq!(
            status_filter("bogus").unwrap_err().to_string(),
            "error parsing filter flag: invalid filter name"
        );
        assert_eq!(parse_wait_timeout(None).unwrap(), None);
        assert_eq!(parse_wait_timeout(Some("0")).unwrap(), None);
        assert_eq!(parse_wait_timeout(Some("90")).unwrap(), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_wait_timeout(Some("1m30s")).unwrap(),
            Some(Duration::from_secs(90))
        );
        assert!(parse_wait_timeout(Some("later")).is_err());
    }

    #[test]
    fn commands_lists_every_command_path() {
        let list = command_list();
        for path in [
            "ipfs-cluster-ctl add",
            "ipfs-cluster-ctl pin update",
            "ipfs-cluster-ctl health graph",
            "ipfs-cluster-ctl ipfs gc",
        ] {
            assert!(list.lines().any(|l| l == path), "{path} missing:\n{list}");
        }
        assert!(!list.contains("commands"));
    }

    #[test]
    fn config_https_credentials_and_secrets() {
        let config = |argv: &[&str]| {
            let mut full = vec!["ipfs-cluster-ctl"];
            full.extend_from_slice(argv);
            full.push("id");
            client_config(&Cli::try_parse_from(full).unwrap())
        };
        let plain = config(&["--timeout", "5"]).unwrap();
        assert_eq!(plain.timeout, Some(Duration::from_secs(5)));
        assert!(plain.credentials.is_none());
        assert!(!plain.https);
        assert!(config(&["--https"]).unwrap().https);
        let no_check = config(&["--https", "--no-check-certificate"]).unwrap();
        assert!(no_check.https && no_check.no_check_certificate);
        assert!(matches!(
            config(&["--host", "https://h:1"]).unwrap().endpoints[0],
            client::Endpoint::Http { https: true, .. }
        ));
        // Credentials imply HTTPS, unless --force-http (as Go).
        let implied = config(&["--basic-auth", "u:p"]).unwrap();
        assert!(implied.https);
        let forced = config(&["--basic-auth", "u:p", "--force-http"]).unwrap();
        assert!(!forced.https);
        assert_eq!(forced.credentials.unwrap().password, "p");
        assert!(config(&["--secret", "zz"]).is_err());
        assert_eq!(config(&["--secret", "00ff"]).unwrap().secret, vec![0, 255]);
        assert!(config(&["--host", "nonsense"])
            .unwrap_err()
            .to_string()
            .starts_with("error parsing host multiaddress"));
    }

    #[test]
    fn report_prints_like_go() {
        let api = CtlError::Api(ApiError {
            code: 500,
            message: "boom".into(),
        });
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        assert_eq!(report(&api, Encoding::Text, &mut stdout, &mut stderr), 2);
        assert_eq!(
            String::from_utf8(stdout).unwrap(),
            "An error occurred:\n  Code: 500\n  Message: boom\n"
        );
        assert!(stderr.is_empty());

        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        assert_eq!(report(&api, Encoding::Json, &mut stdout, &mut stderr), 2);
        assert_eq!(
            String::from_utf8(stdout).unwrap(),
            "{\n    \"code\": 500,\n    \"message\": \"boom\"\n}\n"
        );

        let local = CtlError::local("parsing cid", "bad");
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        assert_eq!(report(&local, Encoding::Text, &mut stdout, &mut stderr), 1);
        assert!(stdout.is_empty());
        assert_eq!(String::from_utf8(stderr).unwrap(), "error parsing cid: bad\n");

        let deadline = CtlError::Deadline {
            doing: "waiting for pin status".into(),
            note: None,
        };
        assert_eq!(report(&deadline, Encoding::Text, Vec::new(), Vec::new()), 62);
    }
}
