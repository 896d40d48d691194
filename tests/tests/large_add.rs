//! Large uploads on a running member, unthrottled: 200 MB of random bytes through
//! `ipfs-cluster-ctl add`, 100 MB through `POST /add` and through the IPFS proxy's
//! `/api/v0/add`, each giving the CID Kubo computes while the member's memory stays flat; and
//! large folders (9,600 files in 12 folders, one folder of 6,000 files that Kubo shards).
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_adder::{FileWriter, ImportOptions, Importer};
use cluster_tests::{run, stderr, stdout, FakeDaemon, MemberDir};

const LARGE: u64 = 200 << 20;
/// Debug builds import about 8 MB/s: the other two paths take half as much.
const MEDIUM: u64 = 100 << 20;
/// Most the member's resident memory may grow during one large add.
const RSS_GROWTH_MAX: u64 = 64 << 20;

/// `size` bytes of xorshift noise (incompressible, the same every run), written in 1 MiB pieces.
fn write_noise(path: &Path, size: u64) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut piece = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in piece.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        let n = left.min(piece.len() as u64) as usize;
        file.write_all(&piece[..n]).unwrap();
        left -= n as u64;
    }
    file.flush().unwrap();
}

/// The CID Kubo gives the file with default options (the importer is checked against Kubo's
/// vectors and the real daemon in `real_ipfs.rs`).
fn kubo_cid(path: &Path) -> String {
    use std::io::Read;
    let mut writer = FileWriter::new(&ImportOptions::default()).unwrap();
    let mut file = std::fs::File::open(path).unwrap();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        drop(writer.write(&buffer[..n]));
    }
    writer.finish().cid.to_string()
}

/// Resident memory of a process, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Samples a process's RSS every 50 ms until dropped; `peak()` is the highest seen.
struct RssWatch {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssWatch {
    fn start(pid: u32) -> RssWatch {
        let peak = Arc::new(AtomicU64::new(rss_bytes(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_peak, thread_stop) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: an add that never ends is stopped by the test's own limits first.
            for _ in 0..20 * 60 * 10 {
                if thread_stop.load(Ordering::Relaxed) {
                    return;
                }
                thread_peak.fetch_max(rss_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        RssWatch {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    fn peak(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// Runs `command` while watching the member's RSS; returns its output and the RSS growth.
fn add_watching(member_pid: u32, command: Command, what: &str) -> (std::process::Output, u64) {
    let before = rss_bytes(member_pid);
    let watch = RssWatch::start(member_pid);
    let started = Instant::now();
    let output = run(command, Duration::from_secs(600));
    let peak = watch.peak();
    let growth = peak.saturating_sub(before);
    eprintln!(
        "{what}: {:.1} s, member RSS {} MiB before, peak {} MiB",
        started.elapsed().as_secs_f64(),
        before >> 20,
        peak >> 20
    );
    (output, growth)
}

fn curl_add(url: &str, file: &Path) -> Command {
    let mut command = Command::new("curl");
    command
        .args(["-s", "-S", "-w", "\n%{http_code}", "-X", "POST", "-F"])
        .arg(format!("file=@{}", file.display()))
        .arg(url);
    command
}

/// The `Hash` or `cid` of the last JSON line of an add answer, and the HTTP code curl printed.
fn added_cid(text: &str, key: &str) -> (Option<String>, String) {
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text));
    let last = body.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("");
    let value: serde_json::Value = serde_json::from_str(last).unwrap_or(serde_json::Value::Null);
    let cid = value[key]
        .as_str()
        .or_else(|| value[key]["/"].as_str())
        .map(str::to_string);
    (cid, code.to_string())
}

#[test]
fn large_files_are_added_through_ctl_rest_and_proxy_with_flat_memory() {
    let daemon = FakeDaemon::start(0);
    let member = MemberDir::init();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);
    let pid = service.pid();
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    write_noise(&big, LARGE);
    let expected = kubo_cid(&big);

    let mut ctl = Command::new(cluster_tests::bin_path("ipfs-cluster-ctl"));
    ctl.arg("--host").arg(member.host()).arg("add").arg(&big);
    let (output, growth) = add_watching(pid, ctl, "ctl add 200 MiB");
    assert!(
        output.status.success(),
        "ctl add: {}{}",
        stdout(&output),
        stderr(&output)
    );
    assert_eq!(stdout(&output), format!("added {expected} big.bin\n"));
    assert!(
        growth < RSS_GROWTH_MAX,
        "ctl add: the member grew by {} MiB",
        growth >> 20
    );

    let medium = dir.path().join("medium.bin");
    write_noise(&medium, MEDIUM);
    let expected = kubo_cid(&medium);
    let url = format!("http://127.0.0.1:{}/add", member.rest_port);
    let (output, growth) = add_watching(pid, curl_add(&url, &medium), "POST /add 100 MiB");
    let (cid, code) = added_cid(&stdout(&output), "cid");
    assert_eq!(code, "200", "{}", stdout(&output));
    assert_eq!(cid.as_deref(), Some(expected.as_str()), "{}", stdout(&output));
    assert!(growth < RSS_GROWTH_MAX, "/add: the member grew by {} MiB", growth >> 20);

    let url = format!("http://127.0.0.1:{}/api/v0/add", member.proxy_port);
    let (output, growth) = add_watching(pid, curl_add(&url, &medium), "proxy add 100 MiB");
    let (cid, code) = added_cid(&stdout(&output), "Hash");
    assert_eq!(code, "200", "{}", stdout(&output));
    assert_eq!(cid.as_deref(), Some(expected.as_str()), "{}", stdout(&output));
    assert!(
        growth < RSS_GROWTH_MAX,
        "proxy add: the member grew by {} MiB",
        growth >> 20
    );
    assert!(daemon.fake.has_pin(&expected.parse().unwrap()));
}

/// The root CID Kubo gives the folder `root` (wrapped as ctl uploads it: the folder itself).
fn kubo_folder_cid(root: &Path) -> String {
    let mut importer = Importer::new(ImportOptions::default()).unwrap();
    let name = root.file_name().unwrap().to_string_lossy().into_owned();
    let mut stack = vec![(root.to_path_buf(), name)];
    while let Some((path, relative)) = stack.pop() {
        importer.add_directory(&relative).unwrap();
        let mut entries: Vec<_> = std::fs::read_dir(&path).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let child = format!("{relative}/{}", entry.file_name().to_string_lossy());
            if entry.path().is_dir() {
                stack.push((entry.path(), child));
            } else {
                let data = std::fs::read(entry.path()).unwrap();
                let mut file = importer.start_file(&child).unwrap().unwrap();
                drop(file.write(&data));
                file.finish().unwrap();
            }
        }
    }
    importer.finish().unwrap().root.to_string()
}

#[test]
fn large_folders_are_added_including_one_kubo_shards() {
    let daemon = FakeDaemon::start(0);
    let member = MemberDir::init();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);
    let dir = tempfile::tempdir().unwrap();

    // 9,600 files in 12 folders.
    let many = dir.path().join("many");
    for folder in 0..12 {
        let path = many.join(format!("folder-{folder:02}"));
        std::fs::create_dir_all(&path).unwrap();
        for file in 0..800 {
            std::fs::write(path.join(format!("file-{file:04}.txt")), format!("{folder} {file}\n")).unwrap();
        }
    }
    // 6,000 files in one folder: over Kubo's 256 KiB estimate, so Kubo shards it (HAMT).
    let wide = dir.path().join("wide");
    std::fs::create_dir_all(&wide).unwrap();
    for file in 0..6000 {
        std::fs::write(
            wide.join(format!("a-file-with-a-longer-name-{file:05}.txt")),
            format!("{file}\n"),
        )
        .unwrap();
    }
    for (folder, files) in [(&many, 9600 + 12 + 1), (&wide, 6000 + 1)] {
        let expected = kubo_folder_cid(folder);
        let output = member.ctl(&["add", "-r", folder.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "ctl add -r {}: {}{}",
            folder.display(),
            stdout(&output),
            stderr(&output)
        );
        let text = stdout(&output);
        assert_eq!(text.lines().count(), files, "one line per file and folder");
        let last = text.lines().last().unwrap();
        assert_eq!(
            last,
            format!("added {expected} {}", folder.file_name().unwrap().to_string_lossy())
        );
    }
}

/// A tree of 100,000 files (100 folders of 1,000) is added whole, with Kubo's root CID.
#[test]
fn a_tree_of_100000_files_is_added() {
    let daemon = FakeDaemon::start(0);
    let member = MemberDir::init();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    for folder in 0..100 {
        let path = tree.join(format!("folder-{folder:03}"));
        std::fs::create_dir_all(&path).unwrap();
        for file in 0..1000 {
            std::fs::write(path.join(format!("{file:04}")), format!("{folder}/{file}\n")).unwrap();
        }
    }
    let expected = kubo_folder_cid(&tree);
    let mut ctl = Command::new(cluster_tests::bin_path("ipfs-cluster-ctl"));
    ctl.arg("--host")
        .arg(member.host())
        .args(["add", "-r", "-Q"])
        .arg(&tree);
    let started = Instant::now();
    let output = run(ctl, Duration::from_secs(600));
    eprintln!("ctl add -r of 100,000 files: {:.1} s", started.elapsed().as_secs_f64());
    assert!(output.status.success(), "{}{}", stdout(&output), stderr(&output));
    assert_eq!(stdout(&output), format!("{expected}\n"));
    assert!(daemon.fake.has_pin(&expected.parse().unwrap()));
}
