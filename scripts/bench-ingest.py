#!/usr/bin/env python3
"""Ingest against etcd: starts a 3-member cluster (release build) beside 3 fake IPFS daemons
on loopback, runs bench/compare.sh (etcd, then POST /pins/<cid> on our leader, at 1, 16 and 64
connections) RUNS times, and stops every process it started by PID. Prints compare.sh's table
per run, then the median ratio ours/etcd per level. Run by `just bench-ingest`.

Env: RUNS [3], DURATION [10] seconds per level, LEVELS ["1 16 64"], MEMBERS [3].
"""
import json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time, http.client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BENCH_BIN") or os.path.join(ROOT, "target", "release")
SECRET = "5e" * 32
RUNS = int(os.environ.get("RUNS", "3"))
MEMBERS = int(os.environ.get("MEMBERS", "3"))
started = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args, log, env=None):
    process = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    started.append(process)
    return process


def answers(port, path="/id"):
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    except OSError:
        return None, b""


def wait(what, limit, check):
    deadline = time.time() + limit
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise SystemExit(f"timed out after {limit} s waiting for {what}")


def start_cluster(work):
    members = []
    for i in range(MEMBERS):
        folder = os.path.join(work, f"member-{i}")
        ipfs_port = free_port()
        daemon = spawn([os.path.join(BIN, "fake-ipfs-daemon"), "--api", f"/ip4/127.0.0.1/tcp/{ipfs_port}"], os.path.join(work, f"ipfs-{i}.log"))
        subprocess.run([os.path.join(BIN, "ipfs-cluster-service"), "--config", folder, "init"], check=True, capture_output=True)
        path = os.path.join(folder, "service.json")
        config = json.load(open(path))
        rest, cluster_port = free_port(), free_port()
        config["cluster"]["secret"] = SECRET
        config["cluster"]["listen_multiaddress"] = [f"/ip4/127.0.0.1/tcp/{cluster_port}"]
        config["api"]["restapi"]["http_listen_multiaddress"] = f"/ip4/127.0.0.1/tcp/{rest}"
        config["api"]["ipfsproxy"]["listen_multiaddress"] = f"/ip4/127.0.0.1/tcp/{free_port()}"
        json.dump(config, open(path, "w"), indent=2)
        peer = json.load(open(os.path.join(folder, "identity.json")))["id"]
        members.append({"folder": folder, "rest": rest, "cluster": cluster_port, "ipfs": ipfs_port, "peer": peer, "daemon": daemon})
    env = dict(os.environ)
    for i, member in enumerate(members):
        env["CLUSTER_IPFSHTTP_NODEMULTIADDRESS"] = f"/ip4/127.0.0.1/tcp/{member['ipfs']}"
        args = [os.path.join(BIN, "ipfs-cluster-service"), "--config", member["folder"], "daemon"]
        if i > 0:
            args += ["--bootstrap", f"/ip4/127.0.0.1/tcp/{members[0]['cluster']}/p2p/{members[0]['peer']}"]
        member["process"] = spawn(args, os.path.join(work, f"member-{i}.log"), env)
        wait(f"member {i} to answer", 60, lambda: answers(member["rest"])[0] == 200)
    wait(f"{MEMBERS} members in the cluster", 60, lambda: answers(members[0]["rest"], "/peers")[1].count(b'"peername"') == MEMBERS)
    time.sleep(3)  # free-space metrics known everywhere
    leader = None
    def found():
        nonlocal leader
        for i in range(MEMBERS):
            if "this member is now the raft leader" in open(os.path.join(work, f"member-{i}.log")).read():
                leader = i
                return True
        return False
    wait("a leader", 30, found)
    return members, leader


def stop_all():
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    started.clear()


def drop_all_but_wrk_output(work):
    """The members' and etcd's data and the CID lists (half a gigabyte a run) go; the raw wrk
    output that compare.sh prints the folder of stays."""
    compare = os.path.join(work, "compare")
    for folder, names in ((work, os.listdir(work)), (compare, os.listdir(compare))):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isdir(path) and path != compare:
                shutil.rmtree(path, ignore_errors=True)
            elif name.startswith("cids"):
                os.unlink(path)


def main():
    ratios = {}
    for run in range(1, RUNS + 1):
        work = tempfile.mkdtemp(prefix="bench-ingest-")
        members, leader = start_cluster(work)
        url = f"http://127.0.0.1:{members[leader]['rest']}"
        print(f"run {run}/{RUNS}: {MEMBERS} members in {work}, leader member {leader} at {url}", flush=True)
        output = subprocess.run(["bash", os.path.join(ROOT, "bench", "compare.sh"), url], check=True,
                                stdout=subprocess.PIPE, text=True, env=dict(os.environ, MEMBERS=str(MEMBERS),
                                WORKDIR=os.path.join(work, "compare"))).stdout
        print(output, flush=True)
        stop_all()
        drop_all_but_wrk_output(work)
        for line in output.splitlines():
            parts = line.split("|")
            if len(parts) == 4 and parts[0].strip().isdigit():
                ratios.setdefault(int(parts[0]), []).append(float(parts[3].split()[0]))
    print(f"ours/etcd writes/s, median of {RUNS} run(s):")
    for level, values in sorted(ratios.items()):
        print(f"  {level:>3} connection(s): {statistics.median(values):.2f}  (runs: {', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
