//! `ipfs-cluster-service`: runs a cluster member. Thin: parses arguments, loads the
//! configuration, wires the components and maps errors to exit codes. The work is in
//! `cluster-node`.

#[cfg(not(madsim))]
mod commands;
#[cfg(not(madsim))]
mod logging;
mod memory;

#[cfg(not(madsim))]
fn main() {
    std::process::exit(commands::main());
}

#[cfg(madsim)]
fn main() {}
