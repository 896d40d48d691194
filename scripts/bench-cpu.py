#!/usr/bin/env python3
"""CPU per write: starts the bench cluster of scripts/bench-ingest.py (3 members, release build,
fake IPFS daemons, loopback), loads the leader with wrk (bench/wrk-pins.lua, CONNS connections
for DURATION seconds) and prints, per member and daemon, its CPU (utime+stime from /proc) and
context switches per write. PERF=DIR also records `perf record --call-graph dwarf` of each
member and daemon into DIR for the same window; SYSCALLS=1 counts each process's system calls
of the kinds in `SYSCALL_KINDS` (`perf stat` on their tracepoints) and prints them per write.
Every process it starts is stopped by PID.
Run by `just bench-cpu CONNS`.

Env: CONNS [64], DURATION [10] seconds, PERF [unset], PERF_FREQ [199] samples per second,
SYSCALLS [unset], WARMUP [0] seconds of the same load before the measured window (a cluster
that already holds pins: ingest slows as the pinset grows).
"""
import importlib.util, os, re, shutil, subprocess, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("bench_ingest", os.path.join(ROOT, "scripts", "bench-ingest.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
CONNS = int(os.environ.get("CONNS", "64"))
DURATION = int(os.environ.get("DURATION", "10"))
TICK = os.sysconf("SC_CLK_TCK")
SYSCALL_KINDS = ["fdatasync", "pwrite64", "write", "writev", "sendto", "sendmsg", "recvfrom", "read", "readv",
                 "futex", "epoll_wait"]


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def context_switches(pid):
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as status:
            total += sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)
    return total


def main():
    work = tempfile.mkdtemp(prefix="bench-cpu-")
    try:
        measure(work)
    finally:
        bench.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def measure(work):
    members, leader = bench.start_cluster(work)
    url = f"http://127.0.0.1:{members[leader]['rest']}"
    cids = os.path.join(work, "cids.txt")
    warmup = int(os.environ.get("WARMUP", "0"))
    subprocess.run(["python3", os.path.join(ROOT, "bench", "gen-cids.py"), str(max(CONNS, 1) * 4000 + 200000), cids,
                    "--prefix", f"cpu-{time.time_ns()}-"], check=True, capture_output=True)
    if warmup > 0:
        warm_cids = os.path.join(work, "warm-cids.txt")
        subprocess.run(["python3", os.path.join(ROOT, "bench", "gen-cids.py"), str(20000 * warmup), warm_cids,
                        "--prefix", f"warm-{time.time_ns()}-"], check=True, capture_output=True)
        subprocess.run(["wrk", f"-t{min(2, CONNS)}", f"-c{CONNS}", f"-d{warmup}s", "-s",
                        os.path.join(ROOT, "bench", "wrk-pins.lua"), url], check=True, capture_output=True,
                       env=dict(os.environ, CIDS_FILE=warm_cids, CIDS_PER_THREAD=str(10000 * warmup)),
                       timeout=warmup + 60)
    processes = {}
    for i, member in enumerate(members):
        processes[f"member {i}{' (leader)' if i == leader else ''}"] = member["process"].pid
        processes[f"daemon {i}"] = member["daemon"].pid
    before = {name: (cpu_seconds(pid), context_switches(pid)) for name, pid in processes.items()}
    recorders = []
    if os.environ.get("PERF"):
        os.makedirs(os.environ["PERF"], exist_ok=True)
        for name, pid in processes.items():
            out = os.path.join(os.environ["PERF"], name.split(" (")[0].replace(" ", "-") + ".data")
            recorders.append(subprocess.Popen(["perf", "record", "-F", os.environ.get("PERF_FREQ", "199"), "--call-graph", "dwarf,16384", "-p", str(pid),
                                               "-o", out, "--", "sleep", str(max(DURATION - 2, 1))],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    counters = {}
    if os.environ.get("SYSCALLS"):
        events = ",".join(f"syscalls:sys_enter_{kind}" for kind in SYSCALL_KINDS)
        for name, pid in processes.items():
            counters[name] = subprocess.Popen(["perf", "stat", "-x", ",", "-e", events, "-p", str(pid), "--", "sleep",
                                               str(max(DURATION - 2, 1))], stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE, text=True)
    started = time.time()
    output = subprocess.run(["wrk", f"-t{min(2, CONNS)}", f"-c{CONNS}", f"-d{DURATION}s", "--latency", "-s",
                             os.path.join(ROOT, "bench", "wrk-pins.lua"), url],
                            capture_output=True, text=True, env=dict(os.environ, CIDS_FILE=cids), timeout=DURATION + 60).stdout
    elapsed = time.time() - started
    for recorder in recorders:
        recorder.wait(timeout=DURATION + 60)
    syscalls = {}
    for name, counter in counters.items():
        _, errors = counter.communicate(timeout=DURATION + 60)
        for line in errors.splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[2].startswith("syscalls:sys_enter_") and fields[0].isdigit():
                syscalls.setdefault(name, {})[fields[2].removeprefix("syscalls:sys_enter_")] = int(fields[0])
    after = {name: (cpu_seconds(pid), context_switches(pid)) for name, pid in processes.items()}
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not rate:
        raise SystemExit(f"wrk printed no rate:\n{output}")
    writes = float(rate.group(1)) * DURATION
    print(f"{CONNS} connection(s), {DURATION} s: {float(rate.group(1)):.0f} writes/s")
    percentiles = re.findall(r"^\s+(50|90|99)%\s+(\S+)", output, re.MULTILINE)
    if percentiles:
        print("  latency " + ", ".join(f"p{p} {v}" for p, v in percentiles))
    total = 0.0
    for name in processes:
        used = after[name][0] - before[name][0]
        total += used
        switches = after[name][1] - before[name][1]
        print(f"  {name:18s} CPU {used / elapsed * 100:5.1f} %  {used / writes * 1e6:6.0f} us/write  "
              f"{switches / writes:5.1f} context switches/write")
    if syscalls:
        # The counters ran for DURATION - 2 seconds of the load, at its rate.
        window_writes = float(rate.group(1)) * max(DURATION - 2, 1)
        print("  system calls per write:")
        for name, counts in syscalls.items():
            shown = ", ".join(f"{kind} {counts[kind] / window_writes:.2f}" for kind in SYSCALL_KINDS if counts.get(kind))
            print(f"    {name:18s} {shown}")
    # Percentages are of one core, as top shows them: the machine has os.cpu_count() * 100 %.
    print(f"  all six: {total / elapsed * 100:.0f} % of one core (the machine has {os.cpu_count()}), "
          f"{total / writes * 1e6:.0f} us/write")


if __name__ == "__main__":
    main()
