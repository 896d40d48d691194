#!/usr/bin/env python3
"""Scale figures: a 3-member cluster (release build, fake IPFS daemons, loopback) is loaded with
PINS pins through the REST API (wrk, 64 connections, bench/wrk-pins.lua), then prints per
member: RSS, disk bytes per pin (pinset and Raft log), the rate of GET /allocations,
GET /pins?local=true and the cluster-wide GET /pins to /dev/null, and how long a restarted
follower takes to serve requests.
Run by `just bench-scale PINS`; every process it starts is stopped by PID.
"""
import http.client, importlib.util, os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("bench_ingest", os.path.join(ROOT, "scripts", "bench-ingest.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
PINS = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000


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
    """GET path, read the body to the end; returns (seconds, bytes, lines)."""
    began = time.time()
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


def count_pins(port):
    # One pin per line in the streamed NDJSON.
    return stream(port, "/allocations")[2]


def main():
    work = tempfile.mkdtemp(prefix="bench-scale-")
    members, leader = bench.start_cluster(work)
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
    time.sleep(5)
    for i, member in enumerate(members):
        rss, hwm = rss_mb(member["process"].pid)
        state = folder_bytes(os.path.join(member["folder"], "state"))
        raft = folder_bytes(os.path.join(member["folder"], "raft"))
        role = "leader" if i == leader else "follower"
        print(f"member {i} ({role}): RSS {rss:.0f} MB (high-water {hwm:.0f} MB), {rss * 1024 * 1024 / loaded:.0f} bytes/pin; "
              f"disk: pinset {state / loaded:.0f} bytes/pin, raft log and snapshot {raft / loaded:.0f} bytes/pin", flush=True)
    for path in ("/allocations", "/pins?local=true", "/pins"):
        seconds, size, lines = stream(members[leader]["rest"], path)
        print(f"GET {path}: {lines} pins in {seconds:.2f} s = {lines / seconds:.0f} pins/s ({size / seconds / 1e6:.0f} MB/s)", flush=True)
    follower = (leader + 1) % len(members)
    process = members[follower]["process"]
    process.send_signal(15)
    process.wait(timeout=60)
    env = dict(os.environ, CLUSTER_IPFSHTTP_NODEMULTIADDRESS=f"/ip4/127.0.0.1/tcp/{members[follower]['ipfs']}")
    began = time.time()
    members[follower]["process"] = bench.spawn([os.path.join(bench.BIN, "ipfs-cluster-service"), "--config", members[follower]["folder"], "daemon"],
                                               os.path.join(work, f"member-{follower}-restart.log"), env)
    bench.wait("the restarted follower to answer", 600, lambda: bench.answers(members[follower]["rest"])[0] == 200)
    print(f"follower {follower} restarted with {loaded} pins: serving requests after {time.time() - began:.2f} s", flush=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.stop_all()
