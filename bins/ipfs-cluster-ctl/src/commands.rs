//! What each command does: turns parsed flags into requests (as Go's `main.go` actions do) and
//! prints the answers in the chosen encoding. Flag parsing is in [`crate::args`]; the after-pin
//! status fetch and `--wait` in [`crate::wait`].

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use cluster_types::{
    AddedOutput, Alert, Bandwidth, ConnectGraph, GlobalPinInfo, GlobalRepoGc, Id, Metric, Pin, PinOptions, Timestamp,
    TrackerStatus, Version,
};
use http::Method;
use serde::Serialize;

use crate::args::{add_query, expire_at, parse_cid, parse_wait_timeout, pin_add_options, status_filter};
use crate::cli::{
    AddArgs, Cli, Command, Encoding, HealthCommand, IpfsCommand, PeersCommand, PinAddArgs, PinCommand, PinRmArgs,
    PinUpdateArgs,
};
use crate::client::{self, Client, ClientConfig};
use crate::error::CtlError;
use crate::format::{self, TextFormat};
use crate::paths;
use crate::wait::{after_pin, wait_for};

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
pub(crate) fn required<T>(answer: Option<T>) -> Result<T, CtlError> {
    answer.ok_or_else(|| CtlError::local("decoding response", "the API answered without a body"))
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
        pin_update: Some(Box::new(from)),
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

#[cfg(test)]
mod tests {
    use clap::Parser;
    use cluster_types::ApiError;

    use super::*;

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
