//! A full disk with a real process: the member's Raft log and pinset live on a small tmpfs,
//! mounted in a mount namespace of the daemon's own (so nothing is left mounted on the host),
//! which the test fills through `/proc/<pid>/root`. Writes fail with "No space left on device"
//! and `/health` answers 503 with it; once the filler is removed, writes succeed again within
//! seconds, from the same process. Before, 20 of 20 writes still failed after space was freed
//! while `/health` answered 204, until a restart.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cluster_tests::{curl, stderr, stdout, wait_until, ClusterMember as Member};
use cluster_types::Cid;

const SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// The tmpfs: room for the databases, small enough to fill in a moment.
const DISK_SIZE: &str = "size=64m";

fn cid(i: u32) -> String {
    Cid::raw_sha256(format!("full disk process test {i}").as_bytes()).to_string()
}

/// A member whose `raft/` and `state/` folders are links into `<data>/disk`, where the daemon's
/// launcher mounts a tmpfs before it starts the daemon.
fn member_on_a_small_disk() -> Member {
    let mut member = Member::new(SECRET);
    let data = member.dir.path().to_path_buf();
    let disk = data.join("disk");
    std::fs::create_dir(&disk).unwrap();
    for folder in ["raft", "state"] {
        std::os::unix::fs::symlink(disk.join(folder), data.join(folder)).unwrap();
    }
    member.dir.launcher = vec![
        "unshare".into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        format!(r#"mount -t tmpfs -o {DISK_SIZE} tmpfs "$0" && mkdir "$0/raft" "$0/state" && exec "$@""#),
        disk.display().to_string(),
    ];
    member
}

/// The tmpfs as the daemon sees it (`unshare` and `sh` exec, so the daemon has their pid).
fn disk_of(member: &Member) -> PathBuf {
    let pid = member.process.as_ref().expect("running").pid();
    let inside = member.dir.path().join("disk");
    Path::new(&format!("/proc/{pid}/root")).join(inside.strip_prefix("/").unwrap())
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("filler");
    for size in [1 << 20, 4096, 512] {
        let chunk = vec![0u8; size];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.flush();
    }
    let _ = file.sync_all();
}

fn pin(member: &Member, i: u32) -> Result<(), String> {
    let output = member.ctl(&["pin", "add", "--no-status", &cid(i)]);
    match output.status.success() {
        true => Ok(()),
        false => Err(format!("{}{}", stdout(&output), stderr(&output))),
    }
}

fn health(member: &Member) -> (String, String) {
    curl("GET", &format!("http://127.0.0.1:{}/health", member.dir.rest_port))
}

#[test]
fn a_full_disk_fails_writes_clearly_and_heals_without_a_restart() {
    let mut member = member_on_a_small_disk();
    member.start(None);
    let disk = disk_of(&member);
    assert!(
        disk.join("raft").is_dir(),
        "the daemon's databases are on its tmpfs: {}; log:\n{}",
        disk.display(),
        member.log()
    );
    for i in 0..5 {
        pin(&member, i).unwrap_or_else(|e| panic!("pin {i}: {e}"));
    }
    assert_eq!(health(&member).0, "204");

    fill(&disk.join("filler"));
    // redb reuses free pages in its files first: writes fail once a file must grow.
    let mut refused = None;
    for i in 100..400 {
        if let Err(e) = pin(&member, i) {
            refused = Some(e);
            break;
        }
    }
    let refused = refused.unwrap_or_else(|| panic!("300 writes on a full disk all succeeded; log:\n{}", member.log()));
    assert!(
        refused.contains("No space left on device"),
        "a write on a full disk says why: {refused}"
    );
    let (code, body) = health(&member);
    assert_eq!(code, "503", "unhealthy while the disk is full: {body}");
    assert!(body.contains("No space left on device"), "{body}");

    std::fs::remove_file(disk.join("filler")).unwrap();
    let freed = Instant::now();
    wait_until(
        Duration::from_secs(30),
        "a write to succeed after space was freed",
        || pin(&member, 1000).is_ok(),
    );
    let healed_in = freed.elapsed();
    for i in 1001..1020 {
        pin(&member, i).unwrap_or_else(|e| panic!("write {i} after space was freed: {e}"));
    }
    assert_eq!(health(&member).0, "204", "healthy again");
    let process = member.process.as_mut().unwrap();
    assert_eq!(
        process.exit_code(),
        None,
        "the same process healed; log:\n{}",
        member.log()
    );
    let pinset = member.pinset();
    for i in (0..5).chain(1000..1020) {
        assert!(pinset.contains(&cid(i)), "pin {i} in the pinset");
    }
    println!("writes succeeded again {healed_in:?} after space was freed");

    // Full again: Raft waits for the disk, and SIGTERM still stops the member.
    fill(&disk.join("filler"));
    let refused = (2000..2300).any(|i| pin(&member, i).is_err());
    assert!(refused, "a write fails on the disk filled again");
    let process = member.process.as_mut().unwrap();
    assert!(
        process.terminate(Duration::from_secs(40)),
        "SIGTERM stops a member whose Raft waits for its disk; log:\n{}",
        member.log()
    );
}
