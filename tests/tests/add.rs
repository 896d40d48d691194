//! `POST /add` on a running member, with curl as the client: multipart uploads become blocks on
//! the daemon and one cluster pin of the root, with Kubo's CIDs; the output is NDJSON or one
//! JSON array; wrapping, CAR imports and bad input behave as in Go.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cluster_tests::{run, stdout, wait_until, FakeDaemon, MemberDir};

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// `(http code, body)` of a multipart POST with `files` as `file` parts.
fn post_files(url: &str, files: &[&Path]) -> (String, String) {
    let mut command = Command::new("curl");
    command.args(["-s", "-w", "\n%{http_code}", "-X", "POST"]);
    for file in files {
        command.arg("-F").arg(format!("file=@{}", file.display()));
    }
    command.arg(url);
    let text = stdout(&run(command, Duration::from_secs(60)));
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (code.to_string(), body.to_string())
}

/// A CARv1 holding one raw block, built by hand: header `{"roots":[cid],"version":1}` in
/// DAG-CBOR, then the section.
fn car_of_one_raw_block(data: &[u8]) -> (Vec<u8>, String) {
    let cid = cluster_types::Cid::raw_sha256(data);
    let cid_bytes = cid.to_bytes();
    let mut header = vec![0xa2]; // map(2)
    header.push(0x65);
    header.extend_from_slice(b"roots");
    header.push(0x81); // array(1)
    header.extend_from_slice(&[0xd8, 0x2a]); // tag(42)
    header.push(0x58); // bytes(1-byte length)
    header.push((cid_bytes.len() + 1) as u8);
    header.push(0x00);
    header.extend_from_slice(&cid_bytes);
    header.push(0x67);
    header.extend_from_slice(b"version");
    header.push(0x01);
    let mut car = vec![header.len() as u8];
    car.extend_from_slice(&header);
    car.push((cid_bytes.len() + data.len()) as u8);
    car.extend_from_slice(&cid_bytes);
    car.extend_from_slice(data);
    (car, cid.to_string())
}

#[test]
fn add_imports_files_with_kubo_cids_and_pins_the_root() {
    let daemon = FakeDaemon::start(0);
    let member = MemberDir::init();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);
    let api = format!("http://127.0.0.1:{}", member.rest_port);
    let dir = tempfile::tempdir().unwrap();
    let hello = dir.path().join("hello.txt");
    std::fs::write(&hello, b"hello ipfs cluster test\n").unwrap();

    // One small file, CIDv0 (Kubo's default): the vector Kubo prints, streamed as NDJSON.
    let (code, body) = post_files(&format!("{api}/add?name=greeting"), &[&hello]);
    assert_eq!(code, "200", "{body}");
    let lines = json_lines(&body);
    assert_eq!(lines.len(), 1, "{body}");
    assert_eq!(lines[0]["name"], "hello.txt");
    assert_eq!(lines[0]["cid"], "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9");
    assert_eq!(lines[0]["size"], 32);
    let root = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9";
    let pin = member.ctl(&["--enc", "json", "pin", "ls", root]);
    assert!(pin.status.success(), "the root is in the pinset");
    let pin: serde_json::Value = serde_json::from_str(&stdout(&pin)).unwrap();
    assert_eq!(pin["name"], "greeting");
    wait_until(Duration::from_secs(20), "the daemon pins the root", || {
        daemon.fake.has_pin(&root.parse().unwrap())
    });
    assert!(
        daemon.fake.has_block(&root.parse().unwrap()),
        "the block went to the daemon"
    );

    // CIDv1 with raw leaves (what the JS client sends), answered as one JSON array.
    let (code, body) = post_files(
        &format!("{api}/add?cid-version=1&raw-leaves=true&stream-channels=false"),
        &[&hello],
    );
    assert_eq!(code, "200", "{body}");
    let array: serde_json::Value = serde_json::from_str(&body).unwrap();
    let v1: cluster_types::Cid = array[0]["cid"].as_str().unwrap().parse().unwrap();
    // The same CID js-ipfs printed as zb2rhaUZ... (base58btc).
    assert_eq!(v1, "zb2rhaUZxZXRHcQYpzDT2zt3wtjba3U5LkZr91tXeaRbkFNBr".parse().unwrap());

    // Two files wrapped in a directory: both files, then the directory (name "") last.
    let other = dir.path().join("b.txt");
    std::fs::write(&other, b"second file\n").unwrap();
    let (code, body) = post_files(
        &format!("{api}/add?wrap-with-directory=true&no-pin=true"),
        &[&hello, &other],
    );
    assert_eq!(code, "200", "{body}");
    let lines = json_lines(&body);
    let names: Vec<&str> = lines.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["hello.txt", "b.txt", ""], "{body}");
    let wrapper = lines[2]["cid"].as_str().unwrap();
    assert!(
        !member.ctl(&["pin", "ls", wrapper]).status.success(),
        "no-pin leaves it unpinned"
    );

    // A CAR upload: its blocks are stored and its root pinned.
    let (car, car_root) = car_of_one_raw_block(b"content of a CAR upload");
    let car_file = dir.path().join("upload.car");
    std::fs::write(&car_file, &car).unwrap();
    let (code, body) = post_files(&format!("{api}/add?format=car"), &[&car_file]);
    assert_eq!(code, "200", "{body}");
    let lines = json_lines(&body);
    assert_eq!(lines.len(), 1, "{body}");
    assert_eq!(lines[0]["cid"], car_root);
    assert_eq!(lines[0]["bytes"], 23);
    assert!(member.ctl(&["pin", "ls", &car_root]).status.success());
    assert!(daemon.fake.has_block(&car_root.parse().unwrap()));

    // A corrupted CAR (the block does not match its CID) is refused, nothing pinned.
    let mut bad = car.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    std::fs::write(&car_file, &bad).unwrap();
    let (code, body) = post_files(&format!("{api}/add?format=car&stream-channels=false"), &[&car_file]);
    assert_ne!(code, "200", "{body}");

    // A "multipart" body that never shows its boundary is refused, not buffered whole.
    let endless = dir.path().join("endless.bin");
    std::fs::write(&endless, vec![b'a'; 2 << 20]).unwrap();
    let mut command = Command::new("curl");
    command
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "-H",
            "Content-Type: multipart/form-data; boundary=zzz",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", endless.display()))
        .arg(format!("{api}/add?stream-channels=false"));
    let text = stdout(&run(command, Duration::from_secs(60)));
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    // Go: with stream-channels=false, a failed add is a 500 and its error; a malformed
    // request is the client's error here, a 400.
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("boundary"), "{body}");

    // Bad parameters and bodies are 400s before anything is read.
    for query in [
        "format=tar",
        "chunker=rabin-1-2-3",
        "layout=trickle",
        "hash=blake2b-256",
        "cid-version=7",
    ] {
        let (code, body) = post_files(&format!("{api}/add?{query}"), &[&hello]);
        assert_eq!(code, "400", "{query}: {body}");
    }
    let (code, body) = cluster_tests::curl_with_body("POST", &format!("{api}/add"), "not multipart");
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("multipart/form-data"), "{body}");
}

#[test]
fn ctl_add_uploads_files_and_folders_and_prints_like_go() {
    let daemon = FakeDaemon::start(0);
    let member = MemberDir::init();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);
    let dir = tempfile::tempdir().unwrap();
    let hello = dir.path().join("hello.txt");
    std::fs::write(&hello, b"hello ipfs cluster test\n").unwrap();
    let hello_arg = hello.to_str().unwrap();

    let output = member.ctl(&["add", "--wait", "--wt", "30s", hello_arg]);
    assert!(output.status.success(), "{}", cluster_tests::stderr(&output));
    assert_eq!(
        stdout(&output),
        "added QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9 hello.txt\n"
    );
    // --wait returned: the root is pinned on the daemon, unnamed (Go names pins only by --name).
    assert!(daemon
        .fake
        .has_pin(&"QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9".parse().unwrap()));
    let pin = member.ctl(&[
        "--enc",
        "json",
        "pin",
        "ls",
        "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9",
    ]);
    let pin: serde_json::Value = serde_json::from_str(&stdout(&pin)).unwrap();
    assert_eq!(pin["name"], "");

    // A folder: refused without -r; with -r every entry, root last; -Q prints only the root.
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("css")).unwrap();
    std::fs::write(site.join("index.html"), b"<html></html>\n").unwrap();
    std::fs::write(site.join("css/a.css"), b"a {}\n").unwrap();
    std::fs::write(site.join(".hidden"), b"secret\n").unwrap();
    let site_arg = site.to_str().unwrap();
    let output = member.ctl(&["add", site_arg]);
    assert_eq!(output.status.code(), Some(1));
    let output = member.ctl(&["add", "-r", "--cid-version", "1", site_arg]);
    assert!(output.status.success(), "{}", cluster_tests::stderr(&output));
    let text = stdout(&output);
    let names: Vec<&str> = text.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        ["site/css/a.css", "site/index.html", "site/css", "site"],
        "{text}"
    );
    let root = text.lines().last().unwrap().split(' ').nth(1).unwrap().to_string();
    assert!(root.starts_with("bafy"), "CIDv1 dag-pb root: {root}");
    let output = member.ctl(&["add", "-r", "-Q", "--cid-version", "1", site_arg]);
    assert_eq!(stdout(&output), format!("{root}\n"));
    let output = member.ctl(&["add", "-r", "-q", "--cid-version", "1", site_arg]);
    assert_eq!(stdout(&output).lines().count(), 4);
    assert!(member.ctl(&["pin", "ls", &root]).status.success());

    // Hidden files only with -H: a different root.
    let output = member.ctl(&["add", "-r", "-Q", "-H", "--cid-version", "1", site_arg]);
    assert_ne!(stdout(&output), format!("{root}\n"));

    // --no-stream with --enc json: one array.
    let output = member.ctl(&["--enc", "json", "add", "--no-stream", "--no-pin", hello_arg]);
    let array: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(array[0]["cid"], "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9");

    // A URL is downloaded and added as a file named after its last path segment.
    let url = format!("http://127.0.0.1:{}/version", member.rest_port);
    let output = member.ctl(&["add", "--cid-version", "1", &url]);
    assert!(output.status.success(), "{}", cluster_tests::stderr(&output));
    let expected = cluster_types::Cid::raw_sha256(b"{\"version\":\"1.1.6\"}\n");
    assert_eq!(stdout(&output), format!("added {expected} version\n"));
    let output = member.ctl(&["add", "http://127.0.0.1:1/nothing-listens-here"]);
    assert_eq!(output.status.code(), Some(1));

    // Bad options come back as API errors (exit 2).
    let output = member.ctl(&["add", "--layout", "trickle", hello_arg]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(stdout(&output).contains("trickle"), "{}", stdout(&output));
}

#[test]
fn ctl_maintenance_commands_against_a_member() {
    let daemon = FakeDaemon::start(0);
    let member = MemberDir::init();
    let mut service = member.start_daemon(&daemon.multiaddr(), &[], "daemon.log");
    member.wait_ready(&mut service);
    let a = cluster_types::Cid::raw_sha256(b"update from").to_string();
    let b = cluster_types::Cid::raw_sha256(b"update to").to_string();

    let output = member.ctl(&["pin", "add", "--ns", "-n", "first", &a]);
    assert!(output.status.success(), "{}", cluster_tests::stderr(&output));
    let output = member.ctl(&["pin", "update", "--ns", &a, &b]);
    assert!(output.status.success(), "{}", cluster_tests::stderr(&output));
    assert!(stdout(&output).starts_with(&b), "{}", stdout(&output));
    let pin = member.ctl(&["--enc", "json", "pin", "ls", &b]);
    let pin: serde_json::Value = serde_json::from_str(&stdout(&pin)).unwrap();
    assert_eq!(pin["pin_update"], a);

    wait_until(Duration::from_secs(30), "a freespace metric", || {
        stdout(&member.ctl(&["health", "metrics"])).contains("freespace")
    });
    let output = member.ctl(&["health", "metrics", "freespace"]);
    assert!(stdout(&output).contains("| freespace: "), "{}", stdout(&output));
    let output = member.ctl(&["health", "graph"]);
    assert!(stdout(&output).starts_with("digraph cluster {"), "{}", stdout(&output));
    let output = member.ctl(&["health", "alerts"]);
    assert!(output.status.success());

    // Paths the daemon resolves: an IPNS name and a path inside a DAG.
    let named = cluster_types::Cid::raw_sha256(b"behind a name");
    daemon.fake.set_resolve("/ipns/docs.example", named);
    let output = member.ctl(&["pin", "add", "--ns", "/ipns/docs.example"]);
    assert!(output.status.success(), "{}", cluster_tests::stderr(&output));
    assert!(stdout(&output).starts_with(&named.to_string()), "{}", stdout(&output));
    let inner = cluster_types::Cid::raw_sha256(b"inside a directory");
    daemon.fake.set_resolve(&format!("/ipfs/{a}/docs/readme"), inner);
    let output = member.ctl(&["pin", "add", "--ns", &format!("/ipfs/{a}/docs/readme")]);
    assert!(output.status.success(), "{}", cluster_tests::stderr(&output));
    assert!(member.ctl(&["pin", "ls", &inner.to_string()]).status.success());
    let output = member.ctl(&["pin", "rm", "--ns", "/ipns/docs.example"]);
    assert!(output.status.success(), "{}", cluster_tests::stderr(&output));
    assert!(!member.ctl(&["pin", "ls", &named.to_string()]).status.success());
    let output = member.ctl(&["pin", "add", "--ns", "/ipns/unknown.example"]);
    assert_eq!(output.status.code(), Some(2), "an unresolvable name is an API error");
    assert!(stdout(&output).contains("could not resolve"), "{}", stdout(&output));

    daemon.fake.add_block_data(b"garbage for the collector");
    let output = member.ctl(&["ipfs", "gc"]);
    assert!(output.status.success(), "{}", cluster_tests::stderr(&output));
    let garbage = cluster_types::Cid::raw_sha256(b"garbage for the collector").to_string();
    assert!(
        stdout(&output).contains(&format!("    - {garbage}")),
        "{}",
        stdout(&output)
    );
}
