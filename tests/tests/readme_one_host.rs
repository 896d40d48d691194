//! The README's "Three members on one host" commands, run verbatim: the block after the
//! `<!-- one-host: ... -->` marker starts three stand-in daemons and three members with
//! `init --port-base` and `--bootstrap`, adds a file with replication 2; the next block stops
//! everything by PID. If the README changes, this test runs what it says.
//!
//! The block uses fixed ports (5101-5301, 9194-9397), so this file holds this one test.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cluster_tests::{bin_path, stderr, stdout};

/// The `sh` code blocks after `marker`, in order.
fn code_blocks_after(readme: &str, marker: &str) -> Vec<String> {
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README.md has no {marker:?} marker"));
    let mut blocks = Vec::new();
    let mut rest = &readme[start..];
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + "```sh\n".len()..];
        let close = body.find("```").expect("a closed code block");
        blocks.push(body[..close].to_string());
        rest = &body[close + 3..];
    }
    blocks
}

/// Runs `script` with bash in `dir`, the binaries first on PATH. Its output goes to files, not
/// pipes: a daemon it leaves running in the background would otherwise hold a pipe open, and
/// reading the output would wait for that daemon to end.
fn bash(script: &str, dir: &Path, limit: Duration) -> std::process::Output {
    let binaries = bin_path("ipfs-cluster-service")
        .parent()
        .expect("the binaries' folder")
        .to_path_buf();
    let path = format!("{}:{}", binaries.display(), std::env::var("PATH").unwrap_or_default());
    let (out_file, err_file) = (dir.join("script.out"), dir.join("script.err"));
    let mut command = Command::new("bash");
    command
        .args(["-e", "-o", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("CLUSTER_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&out_file).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err_file).unwrap()));
    let mut child = command.spawn().expect("bash");
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for bash") {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let status = child.wait().expect("wait for bash");
            eprintln!("the script did not finish within {limit:?}");
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::process::Output {
        status,
        stdout: std::fs::read(&out_file).unwrap_or_default(),
        stderr: std::fs::read(&err_file).unwrap_or_default(),
    }
}

fn alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{}", pid.trim())).exists()
}

#[test]
fn the_readme_runs_three_members_on_one_host() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let blocks = code_blocks_after(&readme, "<!-- one-host:");
    assert!(blocks.len() >= 2, "a start block and a stop block");
    let dir = tempfile::tempdir().unwrap();
    let started = run_and_report(&blocks[0], dir.path());
    let pids: Vec<String> = std::fs::read_dir(dir.path().join("demo"))
        .unwrap()
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "pid").then(|| std::fs::read_to_string(path).unwrap())
        })
        .collect();
    assert_eq!(pids.len(), 6, "three daemons and three members have PID files");

    // Stop first, so a failed check below leaves nothing running.
    let stopped = bash(&blocks[1], dir.path(), Duration::from_secs(60));
    assert!(stopped.status.success(), "stop block: {}", stderr(&stopped));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while pids.iter().any(|pid| alive(pid)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(pids.iter().all(|pid| !alive(pid)), "every process stopped by its PID");

    let output = started.expect("the start block ran");
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "start block failed:\n{text}\n{}",
        stderr(&output)
    );
    assert_eq!(
        text.matches("Sees 2 other peers").count(),
        3,
        "peers ls lists three members:\n{text}"
    );
    assert_eq!(text.matches("PINNED").count(), 2, "pinned on two members:\n{text}");
    assert_eq!(text.matches("REMOTE").count(), 1, "remote on the third:\n{text}");
}

/// Runs the start block; on a failure, the members' logs go with the error.
fn run_and_report(script: &str, dir: &Path) -> Option<std::process::Output> {
    let output = bash(script, dir, Duration::from_secs(240));
    if !output.status.success() {
        for name in ["m1", "m2", "m3"] {
            let log = std::fs::read_to_string(dir.join(format!("demo/{name}.log"))).unwrap_or_default();
            eprintln!("--- demo/{name}.log\n{log}");
        }
    }
    Some(output)
}
