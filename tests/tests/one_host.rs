//! Members beside each other and beside other processes on one host: a member's folder is its
//! own while it runs, every listener is bound before the member joins, and a busy port stops
//! start-up at once with the address and what to change.
#![allow(clippy::disallowed_methods)]

use std::process::Command;
use std::time::Duration;

use cluster_tests::{bin_path, run, stderr, stdout, FakeDaemon, MemberDir};

/// `init --force` in the folder of a running member refuses: it would replace the identity and
/// configuration under the member's feet.
#[test]
fn init_force_refuses_the_folder_of_a_running_member() {
    let daemon = FakeDaemon::start(0);
    let member = MemberDir::init();
    let mut process = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut process);
    let identity_before = std::fs::read_to_string(member.path().join("identity.json")).unwrap();
    let service_before = std::fs::read_to_string(member.path().join("service.json")).unwrap();

    let mut init = Command::new(bin_path("ipfs-cluster-service"));
    init.arg("--config").arg(member.path()).args(["init", "--force"]);
    let output = run(init, Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(1), "stdout: {}", stdout(&output));
    let message = stderr(&output);
    assert!(
        message.contains("a running member uses") && message.contains("stop it first"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(member.path().join("identity.json")).unwrap(),
        identity_before
    );
    assert_eq!(
        std::fs::read_to_string(member.path().join("service.json")).unwrap(),
        service_before
    );
    assert!(member.ctl(&["id"]).status.success(), "the member still answers");

    // Once stopped, --force rewrites the folder.
    assert!(process.terminate(Duration::from_secs(20)), "{}", process.log());
    let mut init = Command::new(bin_path("ipfs-cluster-service"));
    init.arg("--config").arg(member.path()).args(["init", "--force"]);
    let output = run(init, Duration::from_secs(30));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_ne!(
        std::fs::read_to_string(member.path().join("identity.json")).unwrap(),
        identity_before
    );
}
