//! The README's first command, `bash scripts/quickstart.sh`, run for real (with the debug
//! binaries the tests built, a data folder and ports of its own): it starts an IPFS daemon and a
//! member whose service.json names the ports in use, so the IPFS proxy reaches the daemon; it
//! says how to put the binaries on PATH and suggests `ipfs-cluster-ctl add`; `stop` stops both.
//! Needs the real IPFS daemon (js-ipfs or Kubo), hence the `real-ipfs` feature.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cluster_tests::{bin_path, curl, free_port, run, stderr, stdout};

fn quickstart(data: &Path, ports: [u16; 4], argument: Option<&str>) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut command = Command::new("bash");
    command.arg(root.join("scripts/quickstart.sh"));
    command.args(argument);
    command
        .env("QUICKSTART_PROFILE", "debug")
        .env("QUICKSTART_SKIP_BUILD", "1")
        .env("QUICKSTART_DATA", data)
        .env("IPFS_API_PORT", ports[0].to_string())
        .env("CLUSTER_REST_PORT", ports[1].to_string())
        .env("CLUSTER_PROXY_PORT", ports[2].to_string())
        .env("CLUSTER_PORT", ports[3].to_string());
    run(command, Duration::from_secs(600))
}

/// One test: the quickstart's IPFS daemon uses fixed swarm and gateway ports.
#[test]
fn the_quickstart_starts_a_working_member_and_stops_it() {
    let data = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let output = quickstart(data.path(), ports, None);
    let text = stdout(&output);
    let pids: Vec<String> = ["ipfs", "cluster"]
        .iter()
        .filter_map(|name| std::fs::read_to_string(data.path().join(format!("{name}.pid"))).ok())
        .collect();
    // While it runs, the proxy reaches the daemon (it answered 502 when service.json still
    // named port 5001) and `ipfs-cluster-ctl add` adds and pins.
    let served = output.status.success().then(|| serves_the_proxy_and_adds(ports));
    let stopped = quickstart(data.path(), ports, Some("stop"));
    assert!(output.status.success(), "quickstart:\n{text}\n{}", stderr(&output));
    served.expect("ran").unwrap();
    assert!(stopped.status.success(), "quickstart stop: {}", stderr(&stopped));
    assert_eq!(pids.len(), 2, "both daemons were started by PID");
    for pid in &pids {
        assert!(
            !Path::new(&format!("/proc/{}", pid.trim())).exists(),
            "pid {pid} stopped"
        );
    }

    assert!(
        !text.contains("cargo install just"),
        "the quickstart does not install just"
    );
    let binaries = bin_path("ipfs-cluster-ctl").parent().unwrap().display().to_string();
    assert!(text.contains(&format!("export PATH=\"{binaries}:$PATH\"")), "{text}");
    assert!(text.contains("cargo install --path bins/ipfs-cluster-ctl"), "{text}");
    assert!(
        text.contains(&format!("--host /ip4/127.0.0.1/tcp/{} add README.md", ports[1])),
        "{text}"
    );

    // The ports in use are in service.json: the daemon started by hand finds everything.
    let service: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.path().join("cluster/service.json")).unwrap()).unwrap();
    let daemon = format!("/ip4/127.0.0.1/tcp/{}", ports[0]);
    assert_eq!(
        service["ipfs_connector"]["ipfshttp"]["node_multiaddress"],
        daemon.as_str()
    );
    assert_eq!(service["api"]["ipfsproxy"]["node_multiaddress"], daemon.as_str());
}

fn serves_the_proxy_and_adds(ports: [u16; 4]) -> Result<(), String> {
    let (code, body) = curl("POST", &format!("http://127.0.0.1:{}/api/v0/version", ports[2]));
    if code != "200" {
        return Err(format!("proxy /api/v0/version: {code} {body}"));
    }
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let mut add = Command::new(bin_path("ipfs-cluster-ctl"));
    add.args(["--host", &format!("/ip4/127.0.0.1/tcp/{}", ports[1]), "add", "--wait"])
        .arg(&readme);
    let added = run(add, Duration::from_secs(120));
    if !added.status.success() || !stdout(&added).starts_with("added ") {
        return Err(format!("ctl add: {}{}", stdout(&added), stderr(&added)));
    }
    Ok(())
}
