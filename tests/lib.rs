//! Helpers for tests that run the real binaries: where they are, free loopback ports, processes
//! that are stopped by PID when a test ends, and waiting for them to answer.
//!
//! The binaries are the workspace's own debug builds (`cargo build --workspace --bins` first;
//! `just test-unit` does it).

// Real processes in real time: not simulator code, so OS threads and sleeps are fine.
#![allow(clippy::disallowed_methods)]

use std::io::Read;
use std::net::SocketAddr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_ipfs::{FakeIpfs, FakeKuboServer};

/// Path of a workspace binary next to the running test executable's profile folder.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} not found: run `cargo build --workspace --bins` first (just test-unit does)",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1 (bound and released; fine for tests on one machine), never one
/// this process was given before, and below the kernel's ephemeral range. A port the kernel
/// chose (a bind to port 0) is one it also gives to outgoing connections: between the probe and
/// the member's own bind, a connection of another member or of `ctl` took one (CI: "binding the
/// REST API: 127.0.0.1:38873: Address already in use"). Each process starts at its own place in
/// the range, so that test processes running at once rarely probe the same ports.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = (FIRST_TEST_PORT, ephemeral_ports_start());
    let span = u32::from(high - low);
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let port = low + ((start + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// Test ports start here: above the ports our members use by default (9094 to 9096) and other
/// well-known services.
const FIRST_TEST_PORT: u16 = 10_000;

/// The first port of the kernel's ephemeral range (`net.ipv4.ip_local_port_range`; 32768 when
/// it cannot be read).
fn ephemeral_ports_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|low| low.parse().ok()))
        .filter(|low: &u16| *low > FIRST_TEST_PORT + 1000)
        .unwrap_or(32_768)
}

/// A child process that is killed (by its PID) and reaped when dropped.
pub struct Process {
    child: Option<Child>,
    name: String,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with stdout and stderr going to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Process {
        let file = std::fs::File::create(log).expect("log file");
        let err = file.try_clone().expect("log file clone");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Process {
            child: Some(child),
            name: name.to_string(),
            log: log.to_path_buf(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The log so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Sends SIGTERM and waits up to `limit` for a clean exit; returns whether it exited cleanly.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Kills with SIGKILL (a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process has exited; its exit code if so.
    pub fn exit_code(&mut self) -> Option<Option<i32>> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .map(|s| s.code())
    }

    /// The process name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 100 ms until it returns true or `limit` passes.
pub fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a command to completion (bounded by `limit`) and returns its output. The output is read
/// while the command runs: a command that writes more than a pipe holds must not block on it.
/// A command that leaves a process running in the background with its output inherited keeps
/// the pipes open: run such scripts with their output in files.
pub fn run(mut command: Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().unwrap_or_default();
            panic!(
                "{command:?} did not finish within {limit:?}; stderr: {}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// A member's config folder set up by `ipfs-cluster-service init` with loopback ports.
pub struct MemberDir {
    /// The temporary folder (removed on drop).
    pub dir: tempfile::TempDir,
    /// The REST API port.
    pub rest_port: u16,
    /// The cluster (libp2p) port.
    pub cluster_port: u16,
    /// The IPFS proxy port.
    pub proxy_port: u16,
    /// `user:password` when the REST API requires basic auth; [`MemberDir::ctl`] sends it.
    pub credentials: Option<String>,
    /// The REST API serves HTTPS with a self-signed certificate; [`MemberDir::ctl`] then uses
    /// `--https --no-check-certificate`.
    pub https: bool,
    /// A command the daemon is started through (it ends by running its arguments), as
    /// `unshare` with a mount; empty to start the daemon directly.
    pub launcher: Vec<String>,
}

impl MemberDir {
    /// Runs `init` in a new temporary folder and points the REST API at a free loopback port.
    pub fn init() -> MemberDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let rest_port = free_port();
        let mut command = Command::new(bin_path("ipfs-cluster-service"));
        command.arg("--config").arg(dir.path()).arg("init");
        let output = run(command, Duration::from_secs(30));
        assert!(
            output.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let path = dir.path().join("service.json");
        let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        json["api"]["restapi"]["http_listen_multiaddress"] = format!("/ip4/127.0.0.1/tcp/{rest_port}").into();
        let cluster_port = free_port();
        json["cluster"]["listen_multiaddress"] = serde_json::json!([format!("/ip4/127.0.0.1/tcp/{cluster_port}")]);
        let proxy_port = free_port();
        json["api"]["ipfsproxy"]["listen_multiaddress"] = format!("/ip4/127.0.0.1/tcp/{proxy_port}").into();
        std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        MemberDir {
            dir,
            rest_port,
            cluster_port,
            proxy_port,
            credentials: None,
            https: false,
            launcher: Vec::new(),
        }
    }

    /// Sets `cluster.secret` (64 hex characters) in service.json.
    pub fn set_secret(&self, secret_hex: &str) {
        let path = self.path().join("service.json");
        let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        json["cluster"]["secret"] = secret_hex.into();
        std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    }

    /// Requires basic auth on the REST API (`basic_auth_credentials`) from the next start.
    pub fn set_basic_auth(&mut self, user: &str, password: &str) {
        let path = self.path().join("service.json");
        let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        json["api"]["restapi"]["basic_auth_credentials"] = serde_json::json!({ user: password });
        std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        self.credentials = Some(format!("{user}:{password}"));
    }

    /// Serves the REST API over HTTPS from the next start, with a new self-signed certificate
    /// for 127.0.0.1 (files `tls/cert.pem`, `tls/key.pem` in the member's folder).
    pub fn enable_https(&mut self) {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("self-signed certificate");
        let tls = self.path().join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::write(tls.join("cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(tls.join("key.pem"), certified.key_pair.serialize_pem()).unwrap();
        let path = self.path().join("service.json");
        let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        json["api"]["restapi"]["ssl_cert_file"] = "tls/cert.pem".into();
        json["api"]["restapi"]["ssl_key_file"] = "tls/key.pem".into();
        std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        self.https = true;
    }

    /// The member's peer id, from identity.json.
    pub fn peer_id(&self) -> String {
        let text = std::fs::read_to_string(self.path().join("identity.json")).expect("identity.json");
        let json: serde_json::Value = serde_json::from_str(&text).expect("identity.json is JSON");
        json["id"].as_str().expect("id").to_string()
    }

    /// The member's cluster address with its peer id, for `--bootstrap`.
    pub fn cluster_address(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.cluster_port, self.peer_id())
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `--host` value for ipfs-cluster-ctl.
    pub fn host(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.rest_port)
    }

    /// Starts `ipfs-cluster-service daemon` with extra environment variables.
    pub fn start_daemon(&self, ipfs_api: &str, env: &[(&str, &str)], log_name: &str) -> Process {
        self.start_daemon_with(ipfs_api, &[], env, log_name)
    }

    /// Starts `ipfs-cluster-service daemon <daemon_args>` with extra environment variables.
    pub fn start_daemon_with(
        &self,
        ipfs_api: &str,
        daemon_args: &[&str],
        env: &[(&str, &str)],
        log_name: &str,
    ) -> Process {
        let mut command = match self.launcher.split_first() {
            None => Command::new(bin_path("ipfs-cluster-service")),
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(bin_path("ipfs-cluster-service"));
                command
            }
        };
        command
            .arg("--config")
            .arg(self.path())
            .arg("daemon")
            .args(daemon_args)
            .env("CLUSTER_IPFSHTTP_NODEMULTIADDRESS", ipfs_api)
            .env("CLUSTER_IPFSPROXY_NODEMULTIADDRESS", ipfs_api)
            .env("RUST_BACKTRACE", "1");
        for (key, value) in env {
            command.env(key, value);
        }
        Process::spawn("ipfs-cluster-service", command, &self.path().join(log_name))
    }

    /// Runs ipfs-cluster-ctl against this member.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut command = Command::new(bin_path("ipfs-cluster-ctl"));
        command.arg("--host").arg(self.host());
        if let Some(credentials) = &self.credentials {
            command.args(["--basic-auth", credentials]);
        }
        if self.https {
            command.args(["--https", "--no-check-certificate"]);
        } else if self.credentials.is_some() {
            command.arg("--force-http");
        }
        command.args(args);
        run(command, Duration::from_secs(60))
    }

    /// Waits until the REST API answers `ctl id`.
    pub fn wait_ready(&self, daemon: &mut Process) {
        wait_until(Duration::from_secs(30), "the REST API to answer", || {
            if let Some(code) = daemon.exit_code() {
                panic!(
                    "daemon exited with {code:?} before becoming ready; log:\n{}",
                    daemon.log()
                );
            }
            self.ctl(&["id"]).status.success()
        });
    }
}

/// A member folder, its fake daemon, and its process while running.
pub struct ClusterMember {
    /// The member's folder and ports.
    pub dir: MemberDir,
    /// Its IPFS daemon.
    pub daemon: FakeDaemon,
    /// Its process while it runs.
    pub process: Option<Process>,
    /// How many times it was started (each start logs to its own file).
    pub runs: u32,
    /// `CLUSTER_*` settings every start gets.
    pub env: Vec<(&'static str, &'static str)>,
}

impl ClusterMember {
    /// A new folder with `secret`, beside a new fake daemon.
    pub fn new(secret: &str) -> ClusterMember {
        let dir = MemberDir::init();
        dir.set_secret(secret);
        ClusterMember {
            dir,
            daemon: FakeDaemon::start(0),
            process: None,
            runs: 0,
            env: vec![("CLUSTER_RAFT_WAITFORLEADERTIMEOUT", "10s")],
        }
    }

    /// Starts the daemon (joining through `bootstrap` if given) and waits for its REST API.
    pub fn start(&mut self, bootstrap: Option<&ClusterMember>) {
        let process = self.spawn(bootstrap);
        self.process = Some(process);
        self.dir.wait_ready(self.process.as_mut().unwrap());
    }

    /// Starts the daemon without waiting for it.
    pub fn spawn(&mut self, bootstrap: Option<&ClusterMember>) -> Process {
        self.runs += 1;
        let address = bootstrap.map(|m| m.dir.cluster_address());
        let mut args = Vec::new();
        if let Some(address) = &address {
            args.extend(["--bootstrap", address.as_str()]);
        }
        self.dir.start_daemon_with(
            &self.daemon.multiaddr(),
            &args,
            &self.env,
            &format!("daemon-{}.log", self.runs),
        )
    }

    /// The log of the running process.
    pub fn log(&self) -> String {
        self.process.as_ref().map(|p| p.log()).unwrap_or_default()
    }

    /// Runs ipfs-cluster-ctl against this member.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        self.dir.ctl(args)
    }

    /// ipfs-cluster-ctl `--enc json` output of one value.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--enc", "json"];
        all.extend_from_slice(args);
        let output = self.ctl(&all);
        assert!(output.status.success(), "ctl {args:?} failed: {}", stderr(&output));
        serde_json::from_str(&stdout(&output)).unwrap_or_else(|e| panic!("ctl {args:?}: {e}: {}", stdout(&output)))
    }

    /// CIDs in this member's copy of the shared pinset.
    pub fn pinset(&self) -> Vec<String> {
        let output = self.ctl(&["--enc", "json", "pin", "ls"]);
        assert!(output.status.success(), "pin ls: {}", stderr(&output));
        json_values(&stdout(&output))
            .iter()
            .map(|pin| pin["cid"].as_str().expect("cid").to_string())
            .collect()
    }

    /// Whether its log says it became the Raft leader.
    pub fn is_leader(&self) -> bool {
        self.log().contains("this member is now the raft leader")
    }
}

/// Starts `count` members with `secret`: the first alone, the others joining through it, one
/// after the other, each waited for.
pub fn start_cluster(count: usize, secret: &str) -> Vec<ClusterMember> {
    let mut members: Vec<ClusterMember> = (0..count).map(|_| ClusterMember::new(secret)).collect();
    join_through_first(&mut members);
    members
}

/// Starts `members[0]` alone, then the others joining through it, each waited for.
pub fn join_through_first(members: &mut [ClusterMember]) {
    members[0].start(None);
    let (first, rest) = members.split_at_mut(1);
    for member in rest {
        member.start(Some(&first[0]));
    }
}

/// Every JSON value in ctl's `--enc json` output (one indented value per item).
pub fn json_values(text: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .map(|v| v.unwrap_or_else(|e| panic!("ctl output is not JSON: {e}: {text}")))
        .collect()
}

/// stdout of a command as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr of a command as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A fake daemon served over HTTP from a runtime owned by the test.
pub struct FakeDaemon {
    /// The daemon's pinset and fault knobs.
    pub fake: Arc<FakeIpfs>,
    server: Option<FakeKuboServer>,
    runtime: cluster_rt::tokio::runtime::Runtime,
}

impl FakeDaemon {
    /// Serves a new fake daemon on 127.0.0.1:`port` (0 for any free port).
    pub fn start(port: u16) -> FakeDaemon {
        let runtime = cluster_rt::tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let fake = Arc::new(FakeIpfs::new("12D3KooWFakeDaemonForClusterTests".into()));
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let server = runtime
            .block_on(FakeKuboServer::start(fake.clone(), address))
            .expect("fake daemon binds");
        FakeDaemon {
            fake,
            server: Some(server),
            runtime,
        }
    }

    /// The daemon's API multiaddress, for `ipfshttp.node_multiaddress`.
    pub fn multiaddr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.port())
    }

    /// The daemon's API as `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    fn port(&self) -> u16 {
        self.server.as_ref().unwrap().local_addr().port()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _guard = self.runtime.enter();
            server.shutdown();
        }
    }
}

/// `(status code, body)` of one request made with curl.
pub fn curl(method: &str, url: &str) -> (String, String) {
    curl_request(method, url, None)
}

/// `(status code, body)` of one request with a body, made with curl.
pub fn curl_with_body(method: &str, url: &str, body: &str) -> (String, String) {
    curl_request(method, url, Some(body))
}

fn curl_request(method: &str, url: &str, body: Option<&str>) -> (String, String) {
    let mut command = Command::new("curl");
    command.args(["-s", "-w", "\n%{http_code}", "-X", method]);
    if let Some(body) = body {
        command.args(["-d", body]);
    }
    command.arg(url);
    let text = stdout(&run(command, Duration::from_secs(60)));
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (code.to_string(), body.to_string())
}

/// The runtime a front's accept loop and forwarding tasks run on; dropping it ends them.
fn front_runtime() -> cluster_rt::tokio::runtime::Runtime {
    cluster_rt::tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Forwards `client`'s bytes to a new connection to `target` (`host:port`) and back.
async fn pipe_to<S>(mut client: S, target: &str)
where
    S: cluster_rt::tokio::io::AsyncRead + cluster_rt::tokio::io::AsyncWrite + Unpin,
{
    if let Ok(mut server) = cluster_rt::tokio::net::TcpStream::connect(target).await {
        let _ = cluster_rt::tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

/// A TLS front for a plain server on loopback: accepts TLS on its own port with a new
/// self-signed certificate for 127.0.0.1 and forwards the decrypted bytes to `target`.
pub struct TlsFront {
    /// The port the front accepts TLS on.
    pub port: u16,
    /// The certificate (PEM) that clients must trust, e.g. through `SSL_CERT_FILE`.
    pub cert_file: PathBuf,
    _dir: tempfile::TempDir,
    /// Dropping it ends the accept loop and every forwarding task.
    _runtime: cluster_rt::tokio::runtime::Runtime,
}

impl TlsFront {
    /// Starts forwarding to `target` (`host:port`).
    pub fn start(target: &str) -> TlsFront {
        use cluster_rt::tokio;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("self-signed certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        let cert_file = dir.path().join("front.pem");
        std::fs::write(&cert_file, certified.cert.pem()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(certified.cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der())),
            )
            .expect("TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = front_runtime();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("TLS front binds");
        let port = listener.local_addr().unwrap().port();
        let target = target.to_string();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(client).await {
                        pipe_to(tls, &target).await;
                    }
                });
            }
        });
        TlsFront {
            port,
            cert_file,
            _dir: dir,
            _runtime: runtime,
        }
    }

    /// `/ip4/127.0.0.1/tcp/<port>` of the front.
    pub fn multiaddr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.port)
    }
}

/// A Unix-socket front for a TCP server on loopback: accepts on `<dir>/front.sock` and forwards
/// the bytes to `target`, as a daemon listening on a socket would be reached.
pub struct UnixFront {
    /// The socket path.
    pub path: PathBuf,
    _dir: tempfile::TempDir,
    /// Dropping it ends the accept loop and every forwarding task.
    _runtime: cluster_rt::tokio::runtime::Runtime,
}

impl UnixFront {
    /// Starts forwarding to `target` (`host:port`).
    pub fn start(target: &str) -> UnixFront {
        use cluster_rt::tokio;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("front.sock");
        let runtime = front_runtime();
        let listener = {
            let _guard = runtime.enter();
            tokio::net::UnixListener::bind(&path).expect("unix front binds")
        };
        let target = target.to_string();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let target = target.clone();
                tokio::spawn(async move { pipe_to(client, &target).await });
            }
        });
        UnixFront {
            path,
            _dir: dir,
            _runtime: runtime,
        }
    }

    /// `/unix/<path>` of the front.
    pub fn multiaddr(&self) -> String {
        format!("/unix{}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_fresh_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port was given twice");
        let ephemeral = ephemeral_ports_start();
        assert!(
            ports.iter().all(|p| (FIRST_TEST_PORT..ephemeral).contains(p)),
            "ports outside {FIRST_TEST_PORT}..{ephemeral}: {ports:?}"
        );
    }
}
