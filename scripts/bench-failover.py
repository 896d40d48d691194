#!/usr/bin/env python3
"""Failover under load: a fresh 3-member cluster (release build, fake IPFS daemons, loopback) per
run; wrk pins through follower B at 16 connections while a probe pins one CID at a time through
follower A; after 6 s the leader gets SIGKILL. Prints, per run, how long after the kill the first
probe write started after it succeeded, and the median over RUNS runs.
Run by `just bench-failover RUNS`; every process it starts is stopped by PID.
"""
import base64, hashlib, http.client, importlib.util, os, shutil, signal, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("bench_ingest", os.path.join(ROOT, "scripts", "bench-ingest.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
LOAD_SECONDS = 20
KILL_AFTER = 6


def probe_cid(run, i):
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(f"failover {time.time_ns()} {run} {i}".encode()).digest()
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def one_run(run):
    work = tempfile.mkdtemp(prefix="bench-failover-")
    try:
        return measure(run, work)
    finally:
        bench.stop_all()
        # A run leaves about 90 MB of logs and member data behind.
        shutil.rmtree(work, ignore_errors=True)


def measure(run, work):
    members, leader = bench.start_cluster(work)
    a, b = [i for i in range(len(members)) if i != leader][:2]
    cids = os.path.join(work, "cids.txt")
    subprocess.run(["python3", os.path.join(ROOT, "bench", "gen-cids.py"), "200000", cids, "--prefix", f"failover-{time.time_ns()}-"],
                   check=True, capture_output=True)
    env = dict(os.environ, CIDS_FILE=cids, CID_OFFSET="0", CIDS_PER_THREAD="100000")
    wrk = subprocess.Popen(["wrk", "-t2", "-c16", f"-d{LOAD_SECONDS}s", "--timeout", "10s", "-s", os.path.join(ROOT, "bench", "wrk-pins.lua"),
                            f"http://127.0.0.1:{members[b]['rest']}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    succeeded = []  # (started, ended) of each probe write that succeeded
    stop = time.time() + LOAD_SECONDS - 2

    def probe():
        for i in range(1_000_000):
            if time.time() >= stop:
                return
            started = time.time()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", members[a]["rest"], timeout=10)
                connection.request("POST", f"/pins/{probe_cid(run, i)}")
                response = connection.getresponse()
                response.read()
                if response.status < 300:
                    succeeded.append((started, time.time()))
            except OSError:
                time.sleep(0.01)

    thread = threading.Thread(target=probe)
    thread.start()
    time.sleep(KILL_AFTER)
    killed = time.time()
    members[leader]["process"].send_signal(signal.SIGKILL)
    thread.join()
    wrk.wait(timeout=LOAD_SECONDS + 30)
    after = [ended for started, ended in succeeded if started >= killed]
    bench.stop_all()
    if not after:
        print(f"run {run}: no write succeeded after the kill", flush=True)
        return None
    seconds = after[0] - killed
    print(f"run {run}: writes succeed again {seconds:.3f} s after the leader's SIGKILL "
          f"({len(succeeded)} probe writes in all)", flush=True)
    return seconds


def main():
    results = []
    for run in range(1, RUNS + 1):
        seconds = one_run(run)
        if seconds is not None:
            results.append(seconds)
    if results:
        print(f"failover: median {statistics.median(results):.3f} s, min {min(results):.3f} s, max {max(results):.3f} s "
              f"over {len(results)} of {RUNS} runs", flush=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.stop_all()
