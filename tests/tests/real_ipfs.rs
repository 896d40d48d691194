//! Against a real IPFS daemon: Kubo when `ipfs` is on PATH, else js-ipfs from npm
//! (`just jsipfs-install`). The daemon is configured offline and loopback-only before it
//! starts; `just test-real-ipfs` also runs this inside a network namespace with only `lo`.
//!
//! Proves we speak Kubo RPC for real: content added to the daemon, pinned through
//! `ipfs-cluster-ctl`, is pinned in the daemon's own `pin/ls`; `pin rm` removes it; a restart
//! keeps the pinset.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cluster_tests::{free_port, run, stderr, stdout, wait_until, MemberDir, Process};

struct RealDaemon {
    process: Process,
    api_port: u16,
    _repo: tempfile::TempDir,
    kind: &'static str,
}

fn jsipfs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("jsipfs")
}

fn command_exists(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

impl RealDaemon {
    fn start() -> RealDaemon {
        let repo = tempfile::tempdir().unwrap();
        let (api_port, swarm_port, gateway_port, rpc_port) = (free_port(), free_port(), free_port(), free_port());
        let kubo = command_exists("ipfs");
        let jsipfs = jsipfs_dir().join("node_modules/.bin/jsipfs");
        assert!(
            kubo || jsipfs.exists(),
            "no IPFS daemon: install js-ipfs with `just jsipfs-install` (or put Kubo on PATH)"
        );
        let polyfill = format!("--require {}", jsipfs_dir().join("polyfill.cjs").display());
        let daemon_command = |args: &[&str]| {
            let mut command = if kubo {
                Command::new("ipfs")
            } else {
                Command::new(&jsipfs)
            };
            command.args(args).env("IPFS_PATH", repo.path());
            if !kubo {
                command.env("NODE_OPTIONS", &polyfill);
            }
            command
        };
        let output = run(
            daemon_command(&["init", "--profile", "test", "--empty-repo"]),
            Duration::from_secs(120),
        );
        assert!(output.status.success(), "ipfs init: {}", stderr(&output));
        let mut configure = Command::new("python3");
        configure
            .arg(jsipfs_dir().join("configure-offline.py"))
            .arg(repo.path().join("config"));
        for port in [api_port, swarm_port, gateway_port, rpc_port] {
            configure.arg(port.to_string());
        }
        let output = run(configure, Duration::from_secs(30));
        assert!(output.status.success(), "configure offline: {}", stderr(&output));
        let mut args = vec!["daemon", "--offline"];
        if !kubo {
            args.push("--enable-preload=false");
        }
        let mut process = Process::spawn("ipfs daemon", daemon_command(&args), &repo.path().join("daemon.log"));
        wait_until(Duration::from_secs(120), "the IPFS daemon API", || {
            if let Some(code) = process.exit_code() {
                panic!("IPFS daemon exited with {code:?}:\n{}", process.log());
            }
            rpc(api_port, "version", &[]).is_some()
        });
        RealDaemon {
            process,
            api_port,
            _repo: repo,
            kind: if kubo { "kubo" } else { "js-ipfs" },
        }
    }

    fn multiaddr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.api_port)
    }

    /// Adds `data` to the daemon without pinning; returns the daemon's CID text.
    fn add(&self, data: &str, cid_version: u8) -> String {
        let file = self._repo.path().join(format!("upload-{cid_version}.txt"));
        std::fs::write(&file, data).unwrap();
        let url = format!(
            "http://127.0.0.1:{}/api/v0/add?pin=false&cid-version={cid_version}{}",
            self.api_port,
            if cid_version == 1 { "&raw-leaves=true" } else { "" }
        );
        let mut curl = Command::new("curl");
        curl.args(["-s", "-X", "POST", "-F", &format!("file=@{}", file.display()), &url]);
        let output = run(curl, Duration::from_secs(30));
        let json: serde_json::Value =
            serde_json::from_str(stdout(&output).trim()).unwrap_or_else(|e| panic!("add: {e}: {}", stdout(&output)));
        json["Hash"].as_str().unwrap().to_string()
    }

    /// Whether the daemon itself lists `cid` as a recursive pin.
    fn has_recursive_pin(&self, cid: &str) -> bool {
        match rpc(self.api_port, "pin/ls", &[("arg", cid), ("type", "recursive")]) {
            Some(json) => json["Keys"].as_object().is_some_and(|keys| !keys.is_empty()),
            None => false,
        }
    }
}

/// POSTs a Kubo RPC call; `None` on an error status or no answer.
fn rpc(port: u16, path: &str, args: &[(&str, &str)]) -> Option<serde_json::Value> {
    let query: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let url = format!("http://127.0.0.1:{port}/api/v0/{path}?{}", query.join("&"));
    let mut curl = Command::new("curl");
    curl.args(["-s", "-f", "-X", "POST", &url]);
    let output = run(curl, Duration::from_secs(30));
    if !output.status.success() {
        return None;
    }
    serde_json::from_str(stdout(&output).trim()).ok()
}

fn local_status(member: &MemberDir, cid: &str) -> String {
    let output = member.ctl(&["--enc", "json", "status", cid]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap_or(serde_json::Value::Null);
    json["peer_map"]
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(|v| v["status"].as_str())
        .unwrap_or("")
        .to_string()
}

#[test]
fn pins_reach_a_real_ipfs_daemon() {
    let mut daemon = RealDaemon::start();
    eprintln!("real IPFS daemon: {} on port {}", daemon.kind, daemon.api_port);
    let member = MemberDir::init();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);

    let id = member.ctl(&["--enc", "json", "id"]);
    let id: serde_json::Value = serde_json::from_str(&stdout(&id)).unwrap();
    let daemon_id = rpc(daemon.api_port, "id", &[]).unwrap();
    assert_eq!(
        id["ipfs"]["id"], daemon_id["ID"],
        "cluster /id reports the daemon's peer id"
    );
    assert_eq!(id["ipfs"]["error"], "");

    let v0 = daemon.add("hello ipfs cluster test\n", 0);
    let v1 = daemon.add("hello again, raw leaves and CIDv1\n", 1);
    assert!(!daemon.has_recursive_pin(&v0));
    for cid in [&v0, &v1] {
        let output = member.ctl(&["pin", "add", "--no-status", "--name", "real", cid]);
        assert!(output.status.success(), "pin add {cid}: {}", stderr(&output));
    }
    for cid in [&v0, &v1] {
        wait_until(Duration::from_secs(60), "pinned on the real daemon", || {
            local_status(&member, cid) == "pinned"
        });
        assert!(daemon.has_recursive_pin(cid), "the daemon's own pin/ls shows {cid}");
    }

    let output = member.ctl(&["pin", "rm", "--no-status", &v0]);
    assert!(output.status.success(), "pin rm: {}", stderr(&output));
    wait_until(Duration::from_secs(60), "unpinned on the real daemon", || {
        !daemon.has_recursive_pin(&v0)
    });

    assert!(
        service.terminate(Duration::from_secs(30)),
        "clean shutdown:\n{}",
        service.log()
    );
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon2.log");
    member.wait_ready(&mut service);
    let list = member.ctl(&["--enc", "json", "pin", "ls"]);
    let text = stdout(&list);
    assert_eq!(text.matches("\"cid\"").count(), 1, "one pin left after restart: {text}");
    wait_until(Duration::from_secs(60), "still pinned after restart", || {
        local_status(&member, &v1) == "pinned"
    });
    assert!(daemon.has_recursive_pin(&v1));
    assert!(service.terminate(Duration::from_secs(30)));
    daemon.process.terminate(Duration::from_secs(20));
}

/// `data` as one multipart file part named `name`, posted to `url`; the raw answer.
fn post_file(url: &str, dir: &std::path::Path, name: &str, data: &[u8]) -> String {
    let file = dir.join(name);
    std::fs::write(&file, data).unwrap();
    let mut curl = Command::new("curl");
    curl.args(["-s", "-X", "POST", "-F", &format!("file=@{}", file.display()), url]);
    stdout(&run(curl, Duration::from_secs(60)))
}

fn same_content_id(a: &str, b: &str) -> bool {
    let (a, b): (cluster_types::Cid, cluster_types::Cid) = (a.parse().unwrap(), b.parse().unwrap());
    // js-ipfs prints CIDv1 in base58btc where Kubo prints base32: compare what they name.
    a.0.hash() == b.0.hash() && a.0.codec() == b.0.codec()
}

#[test]
fn cluster_add_computes_the_daemons_cids_and_the_daemon_reads_the_content_back() {
    let mut daemon = RealDaemon::start();
    let member = MemberDir::init();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);
    let dir = tempfile::tempdir().unwrap();
    // 60 000 bytes that are not all alike: 235 chunks of 256 bytes make a two-level tree.
    let data: Vec<u8> = (0..60_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let cases = [
        "cid-version=0",
        "cid-version=1&raw-leaves=true",
        "cid-version=0&raw-leaves=true",
        "chunker=size-1024&cid-version=0",
        "chunker=size-256&cid-version=0",
        "chunker=size-256&cid-version=1&raw-leaves=true",
    ];
    for case in cases {
        let daemon_url = format!(
            "http://127.0.0.1:{}/api/v0/add?only-hash=true&pin=false&{case}",
            daemon.api_port
        );
        let answer = post_file(&daemon_url, dir.path(), "data.bin", &data);
        let theirs: serde_json::Value =
            serde_json::from_str(answer.trim()).unwrap_or_else(|e| panic!("{case}: {e}: {answer}"));
        let theirs = theirs["Hash"].as_str().unwrap().to_string();

        let cluster_url = format!("http://127.0.0.1:{}/add?stream-channels=false&{case}", member.rest_port);
        let answer = post_file(&cluster_url, dir.path(), "data.bin", &data);
        let ours: serde_json::Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{case}: {e}: {answer}"));
        let ours = ours[0]["cid"]
            .as_str()
            .unwrap_or_else(|| panic!("{case}: {answer}"))
            .to_string();
        assert!(
            same_content_id(&ours, &theirs),
            "{case}: cluster {ours}, daemon {theirs}"
        );

        // The blocks the cluster put into the daemon are the whole DAG: it reads the file back.
        let mut cat = Command::new("curl");
        cat.args([
            "-s",
            "-f",
            "-X",
            "POST",
            &format!("http://127.0.0.1:{}/api/v0/cat?arg={ours}", daemon.api_port),
        ]);
        let output = run(cat, Duration::from_secs(60));
        assert!(output.status.success(), "{case}: the daemon cannot cat {ours}");
        assert!(output.stdout == data, "{case}: the daemon reads back other bytes");
        wait_until(Duration::from_secs(60), "the added root pinned on the daemon", || {
            daemon.has_recursive_pin(&ours)
        });
    }
    assert!(service.terminate(Duration::from_secs(30)));
    daemon.process.terminate(Duration::from_secs(20));
}

/// A folder of `count` small files as one multipart body (Go's layout: the folder part, then
/// each file named `<folder>/<name>`, query-escaped); the body and its boundary.
fn multipart_folder(folder: &str, count: usize) -> (Vec<u8>, String) {
    let boundary = "real-daemon-folder-boundary".to_string();
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{folder}\"\r\nContent-Type: application/x-directory\r\n\r\n\r\n"
        )
        .as_bytes(),
    );
    for i in 0..count {
        let name = format!("{folder}%2Fa-file-with-a-longer-name-{i:05}.txt");
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n{i}\n\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (body, boundary)
}

/// POSTs a prepared multipart body; the raw answer.
fn post_multipart(url: &str, dir: &Path, body: &[u8], boundary: &str) -> String {
    let file = dir.join("upload.multipart");
    std::fs::write(&file, body).unwrap();
    let mut curl = Command::new("curl");
    curl.args(["-s", "-X", "POST", "-H"])
        .arg(format!("Content-Type: multipart/form-data; boundary={boundary}"))
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(url);
    stdout(&run(curl, Duration::from_secs(300)))
}

/// A folder big enough that Kubo shards it (4,000 entries, over 256 KiB of names and CIDs) gets
/// the daemon's HAMT root CID, and the daemon lists every entry from the blocks the cluster put.
/// js-ipfs 0.66 shards by entry count, and only when asked (`shard-split-threshold`); 4,000
/// entries are over both its rule and Kubo's, so both build the same HAMT.
#[test]
fn a_folder_kubo_shards_gets_the_daemons_hamt_cid() {
    let mut daemon = RealDaemon::start();
    let member = MemberDir::init();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);
    let dir = tempfile::tempdir().unwrap();
    let count = 4000;
    let (body, boundary) = multipart_folder("wide", count);
    for case in ["cid-version=0", "cid-version=1&raw-leaves=true"] {
        let shard = if daemon.kind == "js-ipfs" {
            "&shard-split-threshold=1000"
        } else {
            ""
        };
        let daemon_url = format!(
            "http://127.0.0.1:{}/api/v0/add?only-hash=true&pin=false&{case}{shard}",
            daemon.api_port
        );
        let answer = post_multipart(&daemon_url, dir.path(), &body, &boundary);
        let last = answer.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        let theirs: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{case}: {e}: {last}"));
        assert_eq!(theirs["Name"], "wide", "{case}: the root comes last: {last}");
        let theirs = theirs["Hash"].as_str().unwrap().to_string();

        let cluster_url = format!("http://127.0.0.1:{}/add?stream-channels=false&{case}", member.rest_port);
        let answer = post_multipart(&cluster_url, dir.path(), &body, &boundary);
        let ours: serde_json::Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{case}: {e}: {answer}"));
        let entries = ours.as_array().unwrap_or_else(|| panic!("{case}: {answer}"));
        assert_eq!(entries.len(), count + 1, "{case}");
        let root = entries.last().unwrap();
        assert_eq!(root["name"], "wide");
        let ours = root["cid"].as_str().unwrap().to_string();
        assert!(
            same_content_id(&ours, &theirs),
            "{case}: cluster {ours}, daemon {theirs}"
        );

        // The daemon walks the HAMT from the blocks the cluster put into it.
        let listing = rpc(daemon.api_port, "ls", &[("arg", &ours)])
            .unwrap_or_else(|| panic!("{case}: the daemon cannot list {ours}"));
        let links = listing["Objects"][0]["Links"].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(links, count, "{case}: the daemon lists every entry of {ours}");
        wait_until(Duration::from_secs(60), "the added root pinned on the daemon", || {
            daemon.has_recursive_pin(&ours)
        });
    }
    assert!(service.terminate(Duration::from_secs(30)));
    daemon.process.terminate(Duration::from_secs(20));
}

/// The connector conformance suite (the one the fakes pass) against the real daemon: what the
/// cluster relies on holds for a daemon, not only for our fakes.
#[test]
fn the_kubo_connector_passes_the_conformance_suite_against_the_real_daemon() {
    use cluster_ipfs::{KuboConnector, KuboConnectorConfig};
    let mut daemon = RealDaemon::start();
    eprintln!("real IPFS daemon: {} on port {}", daemon.kind, daemon.api_port);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let node_address = KuboConnectorConfig::address_from_multiaddr(&daemon.multiaddr()).unwrap();
        let connector = KuboConnector::new(KuboConnectorConfig {
            node_address,
            request_timeout: Duration::from_secs(30),
            pin_timeout: Duration::from_secs(30),
            unpin_timeout: Duration::from_secs(30),
        });
        cluster_ipfs::testing::run_conformance_suite(&connector, "real-daemon").await;
    });
    daemon.process.terminate(Duration::from_secs(20));
}
