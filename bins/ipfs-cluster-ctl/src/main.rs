//! `ipfs-cluster-ctl`: the command-line client of the IPFS Cluster REST API, compatible with Go's
//! ipfs-cluster-ctl v1.1.6 (commands, flags, text and JSON output, exit codes).
//!
//! Layout: [`cli`] parses the command line, [`commands`] runs a command, [`client`] talks HTTP,
//! [`format`] renders Go's text layouts, [`error`] maps failures to output and exit codes. This
//! file only wires them together. The binary never runs under the simulator: it uses real tokio
//! and hyper, and builds to an empty `main` under `--cfg madsim`.

#[cfg(not(madsim))]
mod answers;
#[cfg(not(madsim))]
mod args;
#[cfg(not(madsim))]
mod cli;
#[cfg(not(madsim))]
mod client;
#[cfg(not(madsim))]
mod commands;
#[cfg(not(madsim))]
mod error;
#[cfg(not(madsim))]
mod format;
#[cfg(not(madsim))]
mod paths;
#[cfg(not(madsim))]
mod upload;
#[cfg(not(madsim))]
mod wait;

#[cfg(not(madsim))]
fn main() {
    std::process::exit(run());
}

#[cfg(not(madsim))]
fn run() -> i32 {
    use clap::{CommandFactory, Parser};

    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and similar print on stdout and succeed; every usage error exits 1, the
            // code Go's ctl uses for bad flags (see cli.rs).
            return if e.use_stderr() {
                error::EXIT_ERROR
            } else {
                error::EXIT_OK
            };
        }
    };
    if cli.version {
        println!("ipfs-cluster-ctl version {}", cluster_types::VERSION);
        return error::EXIT_OK;
    }
    if let Some(cli::Command::Commands) = &cli.command {
        use std::io::Write as _;
        let written = std::io::stdout()
            .lock()
            .write_all(commands::command_list().as_bytes())
            .map_err(error::CtlError::writing);
        return written.err().map_or(error::EXIT_OK, |e| report_local(&e));
    }
    if let Some(cli::Command::Completion { shell }) = &cli.command {
        let written = commands::completion(*shell, &mut std::io::stdout().lock());
        return written.err().map_or(error::EXIT_OK, |e| report_local(&e));
    }
    if cli.command.is_none() {
        // Go's urfave/cli shows the help when no command is given.
        let _ = cli::Cli::command().print_help();
        return error::EXIT_OK;
    }
    let result = client_and_runtime(&cli).and_then(|(runtime, client)| {
        // Buffered, so a large listing is not one write per line; flushed before any error is
        // printed, so items always come before the error that ended a stream.
        let mut out = commands::Output::new(cli.encoding, std::io::BufWriter::new(std::io::stdout().lock()));
        let result = runtime.block_on(commands::run(&cli, &client, &mut out));
        let flushed = out.finish();
        result.and(flushed)
    });
    match result {
        Ok(()) => error::EXIT_OK,
        Err(e) => commands::report(&e, cli.encoding, std::io::stdout().lock(), std::io::stderr().lock()),
    }
}

/// Reports a failure of a command that needs no server (its output is text, never JSON).
#[cfg(not(madsim))]
fn report_local(error: &error::CtlError) -> i32 {
    commands::report(
        error,
        cli::Encoding::Text,
        std::io::stdout().lock(),
        std::io::stderr().lock(),
    )
}

#[cfg(not(madsim))]
fn client_and_runtime(cli: &cli::Cli) -> Result<(tokio::runtime::Runtime, client::Client), error::CtlError> {
    let config = commands::client_config(cli)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| error::CtlError::local("starting runtime", e))?;
    // The hyper client needs a runtime context to be built.
    let client = {
        let _guard = runtime.enter();
        client::Client::new(config)?
    };
    Ok((runtime, client))
}

#[cfg(madsim)]
fn main() {}
