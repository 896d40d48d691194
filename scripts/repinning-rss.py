#!/usr/bin/env python3
"""The repinning figure with real processes: 4 members (release build) beside 4 fake IPFS
daemons on loopback, PINS pins at replication 2 through the REST API, then a member that holds
about half of them is killed with SIGKILL. Prints how long until every pin is allocated to, and
pinned on, two live members, and the RSS of the leader (the member that decides) before and
during the repair. Run by `just bench-repinning-rss`; every process it starts is stopped by PID.
"""
import base64, hashlib, http.client, json, os, signal, socket, subprocess, sys, tempfile, threading, time

PINS = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
SECRET = "3c" * 32
MEMBERS = 4
started = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cid(i):
    digest = hashlib.sha256(f"repinning rss {i}".encode()).digest()
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + digest
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def spawn(args, log, env=None):
    process = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    started.append(process)
    return process


def request(port, method, path, timeout=60):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request(method, path)
    response = connection.getresponse()
    return response.status, response.read()


def rss(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) // 1024
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


def wait(what, limit, check):
    deadline = time.time() + limit
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise SystemExit(f"timed out after {limit} s waiting for {what}")


def main():
    work = tempfile.mkdtemp(prefix="repinning-rss-")
    members = []
    for i in range(MEMBERS):
        folder = os.path.join(work, f"member-{i}")
        ipfs_port = free_port()
        spawn([os.path.join(BIN, "fake-ipfs-daemon"), "--api", f"/ip4/127.0.0.1/tcp/{ipfs_port}"], os.path.join(work, f"ipfs-{i}.log"))
        subprocess.run([os.path.join(BIN, "ipfs-cluster-service"), "--config", folder, "init"], check=True, capture_output=True)
        path = os.path.join(folder, "service.json")
        config = json.load(open(path))
        rest, cluster_port = free_port(), free_port()
        config["cluster"]["secret"] = SECRET
        config["cluster"]["listen_multiaddress"] = [f"/ip4/127.0.0.1/tcp/{cluster_port}"]
        config["cluster"]["repinning_grace_period"] = "10s"
        config["api"]["restapi"]["http_listen_multiaddress"] = f"/ip4/127.0.0.1/tcp/{rest}"
        config["api"]["ipfsproxy"]["listen_multiaddress"] = f"/ip4/127.0.0.1/tcp/{free_port()}"
        config["informer"]["disk"]["metric_ttl"] = "5s"
        json.dump(config, open(path, "w"), indent=2)
        peer = json.load(open(os.path.join(folder, "identity.json")))["id"]
        members.append({"folder": folder, "rest": rest, "cluster": cluster_port, "ipfs": ipfs_port, "peer": peer})
    env = dict(os.environ)
    for i, member in enumerate(members):
        env["CLUSTER_IPFSHTTP_NODEMULTIADDRESS"] = f"/ip4/127.0.0.1/tcp/{member['ipfs']}"
        args = [os.path.join(BIN, "ipfs-cluster-service"), "--config", member["folder"], "daemon"]
        if i > 0:
            args += ["--bootstrap", f"/ip4/127.0.0.1/tcp/{members[0]['cluster']}/p2p/{members[0]['peer']}"]
        member["process"] = spawn(args, os.path.join(work, f"member-{i}.log"), env)
        wait(f"member {i} to answer", 60, lambda: _answers(member["rest"]))
    wait("4 members in the cluster", 60, lambda: len(_json_values(request(members[0]["rest"], "GET", "/peers")[1])) == MEMBERS)
    time.sleep(8)  # every member's free-space metric is known

    began = time.time()
    per_thread = (PINS + 15) // 16

    def load(first):
        connection = http.client.HTTPConnection("127.0.0.1", members[first % MEMBERS]["rest"], timeout=120)
        for i in range(first * per_thread, min(PINS, (first + 1) * per_thread)):
            for _ in range(5):
                try:
                    connection.request("POST", f"/pins/{cid(i)}?replication-min=2&replication-max=2")
                    response = connection.getresponse()
                    response.read()
                    if response.status < 300:
                        break
                except (OSError, http.client.HTTPException):
                    connection = http.client.HTTPConnection("127.0.0.1", members[first % MEMBERS]["rest"], timeout=120)
                time.sleep(0.5)
            else:
                raise SystemExit(f"pin {i} failed 5 times")

    threads = [threading.Thread(target=load, args=(t,)) for t in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"{PINS} pins at replication 2 through the REST API in {time.time() - began:.0f} s")
    wait("every pin on two daemons", 1800, lambda: sum(_daemon_pins(m) for m in members) >= 2 * PINS)

    leader = next(i for i, m in enumerate(members) if "this member is now the raft leader" in open(os.path.join(work, f"member-{i}.log")).read())
    allocations = _json_values(request(members[leader]["rest"], "GET", "/allocations", timeout=600)[1])
    held = {i: sum(1 for p in allocations if members[i]["peer"] in p.get("allocations", [])) for i in range(MEMBERS)}
    victim = max((i for i in range(MEMBERS) if i != leader), key=lambda i: held[i])
    pid = members[leader]["process"].pid
    before = rss(pid)
    print(f"leader member {leader}: RSS {before[0]} MB (high-water {before[1]} MB) with the pinset loaded")
    members[victim]["process"].send_signal(signal.SIGKILL)
    members[victim]["process"].wait()
    killed = time.time()
    lost = members[victim]["peer"]
    peak = 0
    moved_at = None
    while time.time() - killed < 1800:
        peak = max(peak, rss(pid)[0])
        if moved_at is None:
            allocations = _json_values(request(members[leader]["rest"], "GET", "/allocations", timeout=600)[1])
            if not any(lost in p.get("allocations", []) for p in allocations):
                moved_at = time.time() - killed
        elif sum(_daemon_pins(m) for i, m in enumerate(members) if i != victim) >= 2 * PINS:
            break
        time.sleep(0.5)
    else:
        raise SystemExit("replication not restored within 30 minutes")
    restored = time.time() - killed
    after = rss(pid)
    print(f"member {victim} killed (it held {held[victim]} pins); all re-allocated after {moved_at:.1f} s; every pin on two live daemons after {restored:.1f} s (grace 10 s, metric ttl 5 s)")
    print(f"leader RSS during the repair: peak sampled {peak} MB, high-water {after[1]} MB, now {after[0]} MB")


def _answers(port):
    try:
        return request(port, "GET", "/id", timeout=5)[0] == 200
    except OSError:
        return False


def _json_values(body):
    text = body.decode()
    decoder, values, index = json.JSONDecoder(), [], 0
    while index < len(text):
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            break
        value, index = decoder.raw_decode(text, index)
        values.extend(value if isinstance(value, list) else [value])
    return values


def _daemon_pins(member):
    try:
        status, body = request(member["ipfs"], "POST", "/api/v0/pin/ls?type=recursive&stream=true", timeout=120)
    except OSError:
        return 0
    return len(_json_values(body)) if status == 200 else 0


if __name__ == "__main__":
    try:
        main()
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
