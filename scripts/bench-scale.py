#!/usr/bin/env python3
"""Scale figures: a 3-member cluster (release build, fake IPFS daemons, loopback) is loaded with
PINS pins, then prints per member: RSS, disk bytes per pin (pinset and Raft log), the rate of
GET /allocations, GET /pins?local=true and the cluster-wide GET /pins to /dev/null, and how long
a restarted follower takes to serve requests.

The pins go in through the bulk path by default: the members are stopped, each imports the same
file of PINS pins (`ipfs-cluster-service state import`, two allocations each, round robin) and
starts again. Each fake daemon is restarted holding the pins allocated to its member (unless
HELD=0), so the figures measure the cluster, not a tracker pinning millions on its daemon.
LOAD=rest loads them through the REST API instead (wrk, 64 connections,
bench/wrk-pins.lua), one Raft write per pin. LISTINGS (comma-separated paths) picks the
listings timed. KEEP=SECONDS keeps the cluster up that long after the figures (to profile it by
hand: the members' PIDs and REST ports are printed).
Run by `just bench-scale PINS`; every process it starts is stopped by PID.
"""
import base64, hashlib, http.client, importlib.util, json, os, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("bench_ingest", os.path.join(ROOT, "scripts", "bench-ingest.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
PINS = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
LOAD = os.environ.get("LOAD", "import")
HELD = os.environ.get("HELD", "1") != "0"


def rss_mb(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


def folder_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def stream(port, path, limit=1800):
    """GET path, read the body to the end; returns (seconds, bytes, lines). With curl, as
    `curl | wc` reads it (Python's chunked reader is slower than our listings)."""
    began = time.time()
    if shutil.which("curl") and shutil.which("wc"):
        counted = subprocess.run(f"curl -s --max-time {limit} 'http://127.0.0.1:{port}{path}' | wc -c -l",
                                 shell=True, check=True, capture_output=True, text=True).stdout.split()
        return time.time() - began, int(counted[1]), int(counted[0])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=limit)
    connection.request("GET", path)
    response = connection.getresponse()
    size = lines = 0
    while True:
        chunk = response.read(1 << 20)
        if not chunk:
            break
        size += len(chunk)
        lines += chunk.count(b"\n")
    return time.time() - began, size, lines


def timed_listing(port, path, limit=1800):
    """(seconds, bytes, lines) of GET path: timed as the figure is defined, the body to
    /dev/null (`curl -o /dev/null`: a `wc` reading a pipe takes a good part of one of the two
    cores from the cluster), then its lines counted in a second, untimed read."""
    if not shutil.which("curl"):
        return stream(port, path, limit)
    began = time.time()
    size = subprocess.run(["curl", "-s", "--max-time", str(limit), "-o", "/dev/null", "-w", "%{size_download}",
                           f"http://127.0.0.1:{port}{path}"], check=True, capture_output=True, text=True).stdout
    seconds = time.time() - began
    return seconds, int(size), stream(port, path, limit)[2]


def count_pins(port):
    # One pin per line in the streamed NDJSON.
    return stream(port, "/allocations")[2]


def cid_of(data):
    # CIDv1, raw codec, sha256: as bench/gen-cids.py writes them.
    multihash = bytes([0x12, 32]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(bytes([1, 0x55]) + multihash).decode().lower().rstrip("=")


def load_by_rest(work, members, leader):
    cids = os.path.join(work, "cids.txt")
    subprocess.run(["python3", os.path.join(ROOT, "bench", "gen-cids.py"), str(PINS), cids, "--prefix", f"scale-{time.time_ns()}-"],
                   check=True, capture_output=True)
    url = f"http://127.0.0.1:{members[leader]['rest']}"
    print(f"loading {PINS} pins through {url} (wrk, 64 connections)", flush=True)
    began = time.time()
    # One wrk thread walks the CID list in order (64 connections); wrk stops at a duration, not
    # a count, so it runs in rounds from a little before the count reached (pins are idempotent).
    env = dict(os.environ, CIDS_FILE=cids)
    loaded = 0
    for _ in range(20):
        remaining = PINS - loaded
        if remaining <= 0:
            break
        offset = max(0, loaded - 1000)
        env["CID_OFFSET"] = str(offset)
        env["CIDS_PER_THREAD"] = str(PINS - offset)
        seconds = max(5, min(120, remaining // 2500 + 1))
        subprocess.run(["wrk", "-t1", "-c64", f"-d{seconds}s", "--timeout", "10s", "-s", os.path.join(ROOT, "bench", "wrk-pins.lua"), url],
                       env=env, check=True, capture_output=True)
        loaded = count_pins(members[leader]["rest"])
    took = time.time() - began
    print(f"{loaded} pins loaded in {took:.0f} s ({loaded / took:.0f} pins/s)", flush=True)
    return loaded


def start_member(work, member, name):
    env = dict(os.environ, CLUSTER_IPFSHTTP_NODEMULTIADDRESS=f"/ip4/127.0.0.1/tcp/{member['ipfs']}")
    member["process"] = bench.spawn([os.path.join(bench.BIN, "ipfs-cluster-service"), "--config", member["folder"], "daemon"],
                                    os.path.join(work, name), env)


def stop_member(member):
    member["process"].send_signal(15)
    member["process"].wait(timeout=120)


def load_by_import(work, members):
    """Stops the members, imports PINS pins on each, starts them again; returns the count."""
    for member in members:
        stop_member(member)
    peers = [m["peer"] for m in members]
    path = os.path.join(work, "pinset.ndjson")
    prefix = f"scale-{time.time_ns()}-"
    began = time.time()
    held = [open(os.path.join(work, f"held-{m}.txt"), "w") for m in range(len(members))]
    with open(path, "w") as out:
        for i in range(PINS):
            cid = cid_of(f"{prefix}{i}".encode())
            pin = {"cid": cid, "type": "pin", "mode": "recursive", "name": "",
                   "allocations": [peers[i % 3], peers[(i + 1) % 3]], "replication_factor_min": 2,
                   "replication_factor_max": 2, "max_depth": -1, "metadata": {}, "origins": [],
                   "timestamp": "2026-12-06T00:00:00Z", "expire_at": "0001-01-01T00:00:00Z"}
            out.write(json.dumps(pin, separators=(",", ":")) + "\n")
            held[i % 3].write(cid + "\n")
            held[(i + 1) % 3].write(cid + "\n")
    for f in held:
        f.close()
    print(f"wrote {PINS} pins to {path} ({os.path.getsize(path) / 1e6:.0f} MB) in {time.time() - began:.0f} s", flush=True)
    for i, member in enumerate(members):
        began = time.time()
        output = subprocess.run([os.path.join(bench.BIN, "ipfs-cluster-service"), "--config", member["folder"], "state", "import", "--force", path],
                                capture_output=True, text=True)
        if output.returncode != 0:
            sys.exit(f"state import on member {i} failed: {output.stderr}")
        took = time.time() - began
        print(f"member {i}: state import of {PINS} pins in {took:.1f} s ({PINS / took:.0f} pins/s)", flush=True)
    if HELD:
        for i, member in enumerate(members):
            member["daemon"].send_signal(15)
            member["daemon"].wait(timeout=60)
            member["daemon"] = bench.spawn([os.path.join(bench.BIN, "fake-ipfs-daemon"), "--api", f"/ip4/127.0.0.1/tcp/{member['ipfs']}",
                                            "--pins", os.path.join(work, f"held-{i}.txt")], os.path.join(work, f"ipfs-{i}-held.log"))
        for i, member in enumerate(members):
            bench.wait(f"fake daemon {i} to hold its pins", 600,
                       lambda: "held from the start" in open(os.path.join(work, f"ipfs-{i}-held.log")).read())
        print("the fake daemons were restarted holding the pins allocated to their members", flush=True)
    began = time.time()
    for i, member in enumerate(members):
        start_member(work, member, f"member-{i}-imported.log")
    for i, member in enumerate(members):
        bench.wait(f"member {i} to answer after the import", 900, lambda: bench.answers(member["rest"])[0] == 200)
    print(f"the three members serve requests {time.time() - began:.1f} s after they were started on the imported pinset", flush=True)
    leader = None
    def found():
        nonlocal leader
        for i in range(len(members)):
            if "this member is now the raft leader" in open(os.path.join(work, f"member-{i}-imported.log")).read():
                leader = i
                return True
        return False
    bench.wait("a leader after the import", 120, found)
    loaded = count_pins(members[leader]["rest"])
    return loaded, leader


def main():
    work = tempfile.mkdtemp(prefix="bench-scale-")
    members, leader = bench.start_cluster(work)
    if LOAD == "rest":
        loaded = load_by_rest(work, members, leader)
    else:
        loaded, leader = load_by_import(work, members)
    time.sleep(5)
    for i, member in enumerate(members):
        rss, hwm = rss_mb(member["process"].pid)
        state = folder_bytes(os.path.join(member["folder"], "state"))
        raft = folder_bytes(os.path.join(member["folder"], "raft"))
        role = "leader" if i == leader else "follower"
        print(f"member {i} ({role}): RSS {rss:.0f} MB (high-water {hwm:.0f} MB), {rss * 1024 * 1024 / loaded:.0f} bytes/pin; "
              f"disk: pinset {state / loaded:.0f} bytes/pin, raft log and snapshot {raft / loaded:.0f} bytes/pin", flush=True)
    for path in os.environ.get("LISTINGS", "/allocations,/pins?local=true,/pins").split(","):
        seconds, size, lines = timed_listing(members[leader]["rest"], path)
        print(f"GET {path}: {lines} pins in {seconds:.2f} s = {lines / seconds:.0f} pins/s ({size / seconds / 1e6:.0f} MB/s)", flush=True)
    follower = (leader + 1) % len(members)
    stop_member(members[follower])
    began = time.time()
    start_member(work, members[follower], f"member-{follower}-restart.log")
    bench.wait("the restarted follower to answer", 600, lambda: bench.answers(members[follower]["rest"])[0] == 200)
    print(f"follower {follower} restarted with {loaded} pins: serving requests after {time.time() - began:.2f} s", flush=True)
    keep = float(os.environ.get("KEEP", "0"))
    if keep > 0:
        for i, member in enumerate(members):
            print(f"member {i}: PID {member['process'].pid}, REST port {member['rest']}", flush=True)
        print(f"keeping the cluster up for {keep:.0f} s", flush=True)
        time.sleep(keep)


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.stop_all()
