#!/usr/bin/env python3
"""Floods against the leader of a 3-member cluster (release build, fake IPFS daemons, loopback;
each member limited to 256 open files with prlimit, as in issue 15):

1. idle connections: 400 TCP connections to the REST API that never send a byte, reopened as
   soon as the server closes them;
2. overlong URLs: 12 threads sending DELETE /peers/<60,000 characters> over and over.

During each flood (20 s) a probe makes GET /health and POST /pins/<new CID> on fresh
connections every 100 ms and prints their latency (p50, p99, max) and failures, and whether a
new Raft leader was elected. Run by `just bench-floods`; every process it starts is stopped by PID.
"""
import base64, hashlib, http.client, importlib.util, os, socket, statistics, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("bench_ingest", os.path.join(ROOT, "scripts", "bench-ingest.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
FLOOD_SECONDS = 20
IDLE_CONNECTIONS = 400
URL_THREADS = 12
OPEN_FILES = 256

# Members run under a descriptor limit, the fake daemons too.
_spawn = bench.spawn
bench.spawn = lambda args, log, env=None: _spawn(["prlimit", f"--nofile={OPEN_FILES}:{OPEN_FILES}", "--"] + args, log, env)


def probe_cid(i):
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(f"flood {time.time_ns()} {i}".encode()).digest()
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def timed(port, method, path):
    began = time.time()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request(method, path)
        response = connection.getresponse()
        response.read()
        connection.close()
        return time.time() - began, response.status
    except OSError as e:
        return time.time() - began, type(e).__name__


def leaders_elected(work):
    return sum(open(os.path.join(work, f"member-{i}.log")).read().count("this member is now the raft leader")
               for i in range(bench.MEMBERS))


def idle_flood(port, stop):
    held = []
    while not stop.is_set():
        alive = []
        for s in held:
            try:
                s.setblocking(False)
                if s.recv(1, socket.MSG_PEEK) == b"":
                    s.close()
                    continue
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                continue
            alive.append(s)
        held = alive
        while len(held) < IDLE_CONNECTIONS and not stop.is_set():
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        time.sleep(0.05)
    for s in held:
        s.close()


def url_flood(port, stop):
    long = "1" * 60_000
    while not stop.is_set():
        timed(port, "DELETE", f"/peers/{long}")


def run(name, flood, port, work):
    before = leaders_elected(work)
    stop = threading.Event()
    threads = [threading.Thread(target=flood, args=(port, stop)) for _ in range(1 if flood is idle_flood else URL_THREADS)]
    for t in threads:
        t.start()
    time.sleep(2)  # the flood is on
    health, pins, failures = [], [], {}
    deadline = time.time() + FLOOD_SECONDS
    i = 0
    while time.time() < deadline:
        i += 1
        for kind, method, path, into in (("health", "GET", "/health", health), ("pin", "POST", f"/pins/{probe_cid(i)}", pins)):
            seconds, status = timed(port, method, path)
            into.append(seconds)
            if not (isinstance(status, int) and status < 300):
                failures[f"{kind} {status}"] = failures.get(f"{kind} {status}", 0) + 1
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join()
    elected = leaders_elected(work) - before

    def figures(values):
        values = sorted(values)
        return (f"p50 {statistics.median(values) * 1000:.1f} ms, p99 {values[int(len(values) * 0.99) - 1] * 1000:.1f} ms, "
                f"max {values[-1] * 1000:.1f} ms")

    print(f"{name}: GET /health {figures(health)}; POST /pins {figures(pins)}; "
          f"failures {failures or 'none'}; leaders elected meanwhile: {elected}", flush=True)


def main():
    work = tempfile.mkdtemp(prefix="bench-floods-")
    members, leader = bench.start_cluster(work)
    port = members[leader]["rest"]
    print(f"3 members, {OPEN_FILES} open files each; flooding the leader's REST API on port {port}", flush=True)
    run(f"{IDLE_CONNECTIONS} idle connections", idle_flood, port, work)
    run(f"{URL_THREADS} threads of 60,000-character peer ids", url_flood, port, work)


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.stop_all()
