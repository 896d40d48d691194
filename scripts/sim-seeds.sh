#!/usr/bin/env bash
# N random seeds of every simulator scenario (release build), for `just sim-seeds N`.
#
# Each test file runs in a process of its own, its tests one at a time, SIM_SEEDS_JOBS files
# at once (default 2). A seed's run depends on the runtimes its process started before it
# (tokio seeds each runtime's random source from a process-wide counter), so a file's seeds run
# exactly as in a serial run of that file, and a failure replays with the command printed.
# Prints the start seed, one line per file, and for each failing file what broke and the
# command that reruns it as it ran.
set -euo pipefail

N=${1:?usage: scripts/sim-seeds.sh N}
JOBS=${SIM_SEEDS_JOBS:-2}
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg madsim" RUSTDOCFLAGS="--cfg madsim" CARGO_TARGET_DIR=target-sim
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

start=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
echo "sim-seeds: seeds $start .. $((start + N - 1)), $JOBS test files at a time"

# The test executables: the library's unit tests and one per file of sim/tests.
cargo test -p cluster-sim --release --no-run --message-format=json-render-diagnostics >"$work/build.json"
python3 - "$work/build.json" >"$work/executables" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if message.get("reason") == "compiler-artifact" and message.get("executable") and message["profile"]["test"]:
        target = message["target"]
        name = "lib" if "lib" in target["kind"] else target["name"]
        print(name, message["executable"])
EOF

run_file() {
    local name=$1 executable=$2
    local log="$work/$name.log"
    # Test binaries run from their package's folder, as under `cargo test`.
    if (cd sim && MADSIM_TEST_SEED=$start MADSIM_TEST_NUM=$N CARGO_MANIFEST_DIR="$PWD" \
        "$executable" --test-threads=1 --nocapture >"$log" 2>&1); then
        echo "$name: $(grep -E '^test result' "$log" | tail -n 1)"
    else
        echo "$name: FAILED"
        echo "$name" >>"$work/failed"
    fi
}
export -f run_file
export work start N
xargs -P "$JOBS" -n 2 bash -c 'run_file "$@"' _ <"$work/executables"

[ -s "$work/failed" ] || exit 0
while read -r name; do
    echo "sim-seeds: $name FAILED. What broke:"
    grep -A3 'panicked at' "$work/$name.log" | grep -vE '^\s*$|^stack backtrace' | cut -c1-2000 | head -n 40
    which=$([ "$name" = lib ] && echo "--lib" || echo "--test $name")
    echo "replay this run as it ran: MADSIM_TEST_SEED=$start MADSIM_TEST_NUM=$N RUSTFLAGS='--cfg madsim' RUSTDOCFLAGS='--cfg madsim' CARGO_TARGET_DIR=target-sim cargo test -p cluster-sim --release $which -- --test-threads=1 --nocapture"
done <"$work/failed"
exit 1
