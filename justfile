# Every command a person runs. `just --list` shows them.
# The simulator build lives in its own target dir: a RUSTFLAGS change rebuilds everything.

sim_env := 'RUSTFLAGS="--cfg madsim" RUSTDOCFLAGS="--cfg madsim" CARGO_TARGET_DIR=target-sim'

# Fixed seeds every CI run replays.
sim_seed_start := "1"
sim_seed_count := "8"

default:
    @just --list

# Build every crate and binary (debug).
build:
    cargo build --workspace --bins

# The whole test suite: lint, unit and process tests, the simulator, the real IPFS daemon test.
test: lint test-unit sim sim-seeds-ci sim-determinism sim-replay-check test-real-ipfs test-js-clients fuzz-check
    @echo "all test suites passed"

# Formatting, clippy (with the determinism guard of clippy.toml) in both builds.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    {{sim_env}} cargo clippy -p cluster-sim --all-targets -- -D warnings

# Unit tests and real-process tests against the fake IPFS daemon.
test-unit:
    cargo build --workspace --bins
    cargo test --workspace

# The simulator's fixed seeds.
sim:
    MADSIM_TEST_SEED={{sim_seed_start}} MADSIM_TEST_NUM={{sim_seed_count}} {{sim_env}} cargo test -p cluster-sim -- --nocapture

# N random seeds of every scenario (prints the start seed, one line per test file; a failure
# prints what broke and the command that replays it). Each test file runs in a process of its
# own, its tests one at a time, two files at once (SIM_SEEDS_JOBS): a seed's run also depends on
# the runtimes its process started before it (tokio seeds each runtime's random source from a
# process-wide counter), so a failure replays exactly in a process that runs the same file's
# seeds in the same order, which the printed command does.
sim-seeds N="50":
    scripts/sim-seeds.sh {{N}}

# The random-seed batch CI runs.
sim-seeds-ci:
    just sim-seeds 50

# Reruns one seed of one scenario (the random workload unless a failure named another) and
# prints its line with the trace hash: the same seed always prints the same hash.
sim-replay SEED TEST="random_workload_under_faults_loses_nothing":
    #!/usr/bin/env bash
    set -uo pipefail
    output=$(MADSIM_TEST_SEED={{SEED}} MADSIM_TEST_NUM=1 {{sim_env}} cargo test -q -p cluster-sim -- --exact {{TEST}} --nocapture 2>&1)
    status=$?
    lines=$(grep -E '^seed=|panicked|replay with' <<<"$output" || true)
    if ! grep -qE 'test result: .*(; 1 failed| 1 passed)' <<<"$output"; then
        echo "no scenario named {{TEST}} ran (scenarios are the test functions in sim/tests/)"; exit 1
    fi
    echo "${lines:-seed={{SEED}} {{TEST}}: passed (this scenario prints no trace hash)}"
    exit $status

# Runs every scenario for seeds 7, 8 and 9 twice, each time in a fresh process, and fails
# unless both runs print the same lines (seeds, trace hashes; one test at a time, so lines
# do not interleave). Not madsim's in-process check
# (MADSIM_TEST_CHECK_DETERMINISM): the two runs of that share a process, and tokio's select!
# (openraft's among them) draws its branch order from a process-wide counter, so they diverge
# although every seed replays exactly in a process of its own, which is what sim-replay does.
sim-determinism:
    #!/usr/bin/env bash
    set -euo pipefail
    {{sim_env}} cargo test -q -p cluster-sim --no-run
    for seed in 7 8 9; do
        lines() { MADSIM_TEST_SEED=$seed MADSIM_TEST_NUM=1 {{sim_env}} cargo test -q -p cluster-sim -- --nocapture --test-threads 1 2>&1 | grep -E '^seed=|test result|panicked' | sed 's/; finished in .*//' | sort; }
        first=$(lines); second=$(lines)
        if grep -q panicked <<<"$first"; then echo "seed $seed failed:"; echo "$first"; exit 1; fi
        if [ "$first" != "$second" ]; then
            echo "seed $seed did not replay to the same lines:"; diff <(echo "$first") <(echo "$second") || true; exit 1
        fi
        echo "seed $seed: $(grep -c '^seed=' <<<"$first") scenario lines, the same twice"
    done

# Proves replay through `just sim-replay` itself: it prints one trace hash, the same seed prints
# the same hash twice (and with RUST_LOG=info, so logs read in a replay are the failing run's),
# another seed a different one.
sim-replay-check:
    #!/usr/bin/env bash
    set -euo pipefail
    hash() {
        local out; out=$(just sim-replay "$1")
        [ "$(grep -c 'trace_hash=' <<<"$out")" = 1 ] || { echo "sim-replay $1 printed not exactly one trace hash:"; echo "$out"; exit 1; } >&2
        grep -o 'trace_hash=[0-9a-f]*' <<<"$out"
    }
    first=$(hash 11); second=$(hash 11); other=$(hash 12); logged=$(RUST_LOG=info hash 11)
    echo "seed 11: $first, again: $second, with RUST_LOG=info: $logged; seed 12: $other"
    [ -n "$first" ] && [ "$first" = "$second" ] || { echo "seed 11 did not replay to the same trace hash"; exit 1; }
    [ "$first" = "$logged" ] || { echo "seed 11 took another schedule with RUST_LOG=info: logs must not change a run"; exit 1; }
    [ "$first" != "$other" ] || { echo "seeds 11 and 12 gave the same trace hash"; exit 1; }

# How many times faster than real time the simulator runs a busy 5-member cluster (target ≥ 100×).
sim-speed SEEDS="5":
    SIM_SPEED_SEEDS={{SEEDS}} {{sim_env}} cargo bench -p cluster-sim --bench sim_speed

# A simulated member holding 40 % of PINS pins (replication 2, 5 members) is lost for good: how
# long until every pin is back on two live members, at what peak Raft entry rate.
bench-repinning PINS="100000":
    REPIN_PINS={{PINS}} {{sim_env}} cargo bench -p cluster-sim --bench repinning_at_scale

# The same with real processes: 4 members (release build) and PINS pins at replication 2, one
# killed with SIGKILL: time until every pin is back on two live daemons, and the leader's RSS.
bench-repinning-rss PINS="100000":
    cargo build --release --bins
    python3 scripts/repinning-rss.py {{PINS}}

# Ingest against etcd: bench/compare.sh (etcd 3-member, then our leader's POST /pins/<cid>) at
# 1, 16 and 64 connections, RUNS times on fresh clusters the script starts (release build, fake
# daemons, loopback); prints each table and the median ratio ours/etcd. Installs etcd and wrk
# from Debian's packages when missing.
bench-ingest RUNS="3":
    #!/usr/bin/env bash
    set -euo pipefail
    if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null || ! command -v wrk >/dev/null; then
        apt-get install -y -q etcd-server etcd-client wrk >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q etcd-server etcd-client wrk >/dev/null; }
    fi
    cargo build --release --bins
    RUNS={{RUNS}} python3 scripts/bench-ingest.py

# Scale: PINS pins into a 3-member cluster through the REST API, then each member's RSS and disk
# bytes per pin, the rate of GET /allocations, GET /pins?local=true and the cluster-wide GET /pins,
# and a follower's restart.
bench-scale PINS="200000":
    #!/usr/bin/env bash
    set -euo pipefail
    command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
    cargo build --release --bins
    python3 scripts/bench-scale.py {{PINS}}

# Micro-benchmarks of the pinset store and the pin encoding: encode/decode (binary and JSON),
# grouped applies, a full listing, random reads and bytes per pin, over PINS pins.
bench-store PINS="200000":
    STORE_BENCH_PINS={{PINS}} cargo bench -p cluster-state --bench store

# CPU per write: the bench cluster (3 members, release build, fake daemons) under wrk at CONNS
# connections; each member's and daemon's CPU and context switches per write. PERF=DIR records
# perf profiles of the same window.
bench-cpu CONNS="64":
    #!/usr/bin/env bash
    set -euo pipefail
    command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
    cargo build --release --bins
    CONNS={{CONNS}} python3 scripts/bench-cpu.py

# Failover under load: per run a fresh 3-member cluster (release build, fake daemons), wrk at 16
# connections through one follower, a probe writing through the other; the leader gets SIGKILL.
# Prints how long until writes succeed again, per run and the median of RUNS.
bench-failover RUNS="5":
    #!/usr/bin/env bash
    set -euo pipefail
    command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
    cargo build --release --bins
    python3 scripts/bench-failover.py {{RUNS}}

# Floods against the leader (members limited to 256 open files): 400 idle connections, then
# 60,000-character peer ids from 12 threads; prints /health and pin latency and elections.
bench-floods:
    cargo build --release --bins
    python3 scripts/bench-floods.py

# Installs the real IPFS daemon used by the tests (js-ipfs from npm, pinned by the lockfile).
jsipfs-install:
    #!/usr/bin/env bash
    set -euo pipefail
    cd tests/jsipfs
    if [ ! -x node_modules/.bin/jsipfs ]; then
        # Not `npm ci`: npm 11 refuses this lockfile over an optional dependency ("Missing:
        # headless@"), while `npm install` installs exactly the locked versions and leaves it unchanged.
        # --ignore-scripts: electron and wrtc install scripts would download binaries we do not need.
        npm install --ignore-scripts --no-audit --no-fund
    fi

# Real processes against a real IPFS daemon (Kubo if on PATH, else js-ipfs), offline, loopback-only namespace.
# `--workspace` with the feature named by package (here and in test-js-clients): with `-p` alone,
# cargo resolves the features of one package's dependencies, which differ from the workspace's,
# and builds every dependency a second time.
test-real-ipfs: jsipfs-install
    cargo build --workspace --bins
    cargo test --workspace --features cluster-tests/real-ipfs --test real_ipfs --test quickstart --no-run
    scripts/in-loopback-namespace.sh cargo test --offline --workspace --features cluster-tests/real-ipfs --test real_ipfs --test quickstart -- --nocapture

# The JavaScript clients the compatibility tests drive (versions locked in package-lock.json).
jsclients-install:
    #!/usr/bin/env bash
    set -euo pipefail
    cd tests/jsclients
    if [ ! -d node_modules/@nftstorage/ipfs-cluster ] || [ ! -d node_modules/kubo-rpc-client ] || [ ! -d node_modules/libp2p ]; then
        npm ci --ignore-scripts --no-audit --no-fund
    fi

# Real third-party clients (@nftstorage/ipfs-cluster, kubo-rpc-client, js-libp2p) against running members.
test-js-clients: jsclients-install
    cargo build --workspace --bins
    cargo test --workspace --features cluster-tests/js-clients --test js_clients

# Starts a one-member cluster beside a local IPFS daemon (see README).
run:
    bash scripts/quickstart.sh

# Stops what `just run` started.
stop:
    bash scripts/quickstart.sh stop

# Fuzzes one target (fuzz/fuzz_targets/) for SECONDS (0: until stopped); no target lists them.
fuzz TARGET="" SECONDS="0":
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -z "{{TARGET}}" ]; then echo "fuzz targets (just fuzz TARGET [SECONDS]):"; bash scripts/fuzz.sh list; exit 0; fi
    bash scripts/fuzz.sh run {{TARGET}} {{SECONDS}}

# Builds every fuzz target, replays the kept inputs and fuzzes each for a few seconds.
fuzz-check SECONDS="5":
    bash scripts/fuzz.sh check {{SECONDS}}
