//! `ipfs-cluster-service state export | import | cleanup` on real member folders: a
//! three-member cluster is stopped, its pinset exported, a bulk file of pins imported on every
//! member, and started again: every member serves the imported pins and the cluster goes on
//! pinning. Also what the commands refuse.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use cluster_tests::{json_values, stderr, stdout, wait_until, ClusterMember as Member};
use cluster_types::Cid;

const SECRET: &str = "2588b80d5cb05374fa142aed6cbb047d1f4ef8ef15e37eba68c65b9d30df67ed";
const BULK: usize = 2_000;

fn cid(i: usize) -> String {
    Cid::raw_sha256(format!("offline state test {i}").as_bytes()).to_string()
}

/// `ipfs-cluster-service --config <member's folder> state <args>`.
fn state(member: &Member, args: &[&str]) -> Output {
    let mut command = Command::new(cluster_tests::bin_path("ipfs-cluster-service"));
    command.arg("--config").arg(member.dir.path()).arg("state").args(args);
    cluster_tests::run(command, Duration::from_secs(120))
}

fn stop(member: &mut Member) {
    let mut process = member.process.take().expect("running");
    assert!(
        process.terminate(Duration::from_secs(30)),
        "clean exit; log:\n{}",
        process.log()
    );
}

/// The pins of an export, in its order.
fn exported(member: &Member) -> Vec<serde_json::Value> {
    let output = state(member, &["export"]);
    assert!(output.status.success(), "export: {}", stderr(&output));
    let pins = json_values(&stdout(&output));
    assert!(
        stderr(&output).contains(&format!("exported {} pins", pins.len())),
        "{}",
        stderr(&output)
    );
    pins
}

#[test]
fn a_stopped_cluster_imports_a_bulk_pinset_on_every_member_and_starts_from_it() {
    let mut members = cluster_tests::start_cluster(3, SECRET);
    for i in 0..3 {
        let output = members[0].ctl(&["pin", "add", "--replication", "2", &cid(i)]);
        assert!(output.status.success(), "pin add: {}", stderr(&output));
    }
    wait_until(Duration::from_secs(30), "every member to hold the three pins", || {
        members.iter().all(|m| m.pinset().len() == 3)
    });

    // A running member's folder is locked.
    let output = state(&members[0], &["export"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("must be stopped"), "{}", stderr(&output));

    for member in &mut members {
        stop(member);
    }
    let pins = exported(&members[1]);
    let mut cids: Vec<&str> = pins.iter().map(|p| p["cid"].as_str().unwrap()).collect();
    cids.sort();
    let mut expected: Vec<String> = (0..3).map(cid).collect();
    expected.sort();
    assert_eq!(cids, expected);

    // The bulk file: the export, and BULK more pins made from its first one.
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("pinset.ndjson");
    let mut text: String = pins.iter().map(|p| format!("{p}\n")).collect();
    for i in 3..3 + BULK {
        let mut pin = pins[0].clone();
        pin["cid"] = cid(i).into();
        pin["name"] = format!("bulk {i}").into();
        text.push_str(&format!("{pin}\n"));
    }
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap();

    // Without --force and without a terminal to confirm on: refused, nothing changed.
    let output = state(&members[0], &["import", file]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--force"), "{}", stderr(&output));
    assert_eq!(exported(&members[0]).len(), 3);
    // A bad line anywhere: refused, nothing changed.
    let bad = folder.path().join("bad.ndjson");
    std::fs::write(&bad, format!("{}\nnot json\n", pins[0])).unwrap();
    let output = state(&members[0], &["import", "--force", bad.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("pin number 2"), "{}", stderr(&output));
    assert_eq!(exported(&members[0]).len(), 3);

    for member in &members {
        let output = state(member, &["import", "--force", file]);
        assert!(output.status.success(), "import: {}", stderr(&output));
        let said = stderr(&output);
        assert!(said.contains(&format!("imported {} pins", BULK + 3)), "{said}");
        assert!(said.contains("in a cluster of 3"), "{said}");
        let raft = member.dir.path().join("raft");
        let segments = std::fs::read_dir(&raft)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".wal"))
            .count();
        assert_eq!(segments, 0, "the old Raft log is gone");
        assert!(
            raft.join("snapshot-deferred.json").exists(),
            "a snapshot of the import replaces it"
        );
    }
    // No --bootstrap: each still belongs to its cluster, now starting from the imported pinset.
    for member in &mut members {
        member.process = Some(member.spawn(None));
    }
    for member in &mut members {
        member.dir.wait_ready(member.process.as_mut().unwrap());
    }
    for (i, member) in members.iter().enumerate() {
        wait_until(Duration::from_secs(60), "the imported pinset on every member", || {
            member.pinset().len() == BULK + 3
        });
        let pin = member.json(&["pin", "ls", &cid(1000)]);
        assert_eq!(pin["name"], "bulk 1000", "member {i}: {pin}");
    }
    let fresh = cid(BULK + 10);
    let output = members[2].ctl(&["pin", "add", "--replication", "2", &fresh]);
    assert!(output.status.success(), "a pin after the import: {}", stderr(&output));
    wait_until(Duration::from_secs(30), "the new pin on every member", || {
        members.iter().all(|m| m.pinset().contains(&fresh))
    });

    // Cleanup: asks first, then forgets the pinset and the Raft data.
    stop(&mut members[2]);
    let output = state(&members[2], &["cleanup"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--force"), "{}", stderr(&output));
    assert_eq!(exported(&members[2]).len(), BULK + 4);
    let output = state(&members[2], &["cleanup", "--force"]);
    assert!(output.status.success(), "cleanup: {}", stderr(&output));
    assert!(exported(&members[2]).is_empty());
    assert!(!Path::new(&members[2].dir.path().join("raft")).exists());
}
