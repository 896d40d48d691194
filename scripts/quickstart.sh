#!/usr/bin/env bash
# Sets up and starts a one-member IPFS Cluster beside a local IPFS daemon, all on loopback:
#   bash scripts/quickstart.sh        # build, start, print next steps
#   bash scripts/quickstart.sh stop   # stop what it started (by PID)
# Everything lives in .data/ in this checkout. The IPFS daemon is Kubo if `ipfs` is on PATH,
# else js-ipfs from npm (tests/jsipfs); either is configured offline before it starts.
# The ports it uses are written into the member's service.json, so the member can later be
# started by hand with plain `ipfs-cluster-service -c .data/cluster daemon`.
#
# Settings (environment): IPFS_API_PORT (5012), CLUSTER_REST_PORT (9094), CLUSTER_PROXY_PORT
# (9095), CLUSTER_PORT (9096); QUICKSTART_DATA (.data); QUICKSTART_PROFILE (release; the
# tests use debug) and QUICKSTART_SKIP_BUILD=1 (the tests built the binaries already).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
DATA=${QUICKSTART_DATA:-$ROOT/.data}
PROFILE=${QUICKSTART_PROFILE:-release}
API_PORT=${IPFS_API_PORT:-5012}
REST_PORT=${CLUSTER_REST_PORT:-9094}
PROXY_PORT=${CLUSTER_PROXY_PORT:-9095}
CLUSTER_PORT=${CLUSTER_PORT:-9096}
mkdir -p "$DATA"

stop_pid() { # name
    local file="$DATA/$1.pid"
    if [ -f "$file" ]; then
        local pid; pid=$(cat "$file")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"; echo "stopped $1 (pid $pid)"
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        fi
        rm -f "$file"
    fi
}

if [ "${1:-}" = "stop" ]; then
    stop_pid cluster
    stop_pid ipfs
    exit 0
fi

echo "== build ($PROFILE)"
if [ "${QUICKSTART_SKIP_BUILD:-}" = 1 ]; then
    echo "skipped (QUICKSTART_SKIP_BUILD=1)"
elif [ "$PROFILE" = release ]; then
    command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
    (cd "$ROOT" && cargo build --release --bins)
else
    (cd "$ROOT" && cargo build --bins)
fi
BIN="$ROOT/target/$PROFILE"

wait_http() { # url, seconds
    for _ in $(seq 1 $(( $2 * 5 ))); do
        curl -s -o /dev/null -X POST "$1" && return 0
        sleep 0.2
    done
    return 1
}

echo "== IPFS daemon"
if [ -f "$DATA/ipfs.pid" ] && kill -0 "$(cat "$DATA/ipfs.pid")" 2>/dev/null; then
    echo "already running (pid $(cat "$DATA/ipfs.pid"))"
elif command -v ipfs >/dev/null; then
    export IPFS_PATH="$DATA/kubo"
    if [ ! -f "$IPFS_PATH/config" ]; then
        ipfs init --profile test --empty-repo >/dev/null
        python3 "$ROOT/tests/jsipfs/configure-offline.py" "$IPFS_PATH/config" "$API_PORT" 4012 9190 5013
    fi
    nohup ipfs daemon --offline >"$DATA/ipfs.log" 2>&1 &
    echo $! >"$DATA/ipfs.pid"
    echo "Kubo started (pid $!, log $DATA/ipfs.log)"
else
    (cd "$ROOT/tests/jsipfs" && { [ -x node_modules/.bin/jsipfs ] || npm install --ignore-scripts --no-audit --no-fund; })
    export IPFS_PATH="$DATA/jsipfs"
    JSIPFS="$ROOT/tests/jsipfs/node_modules/.bin/jsipfs"
    if [ ! -f "$IPFS_PATH/config" ]; then
        NODE_OPTIONS="--require $ROOT/tests/jsipfs/polyfill.cjs" "$JSIPFS" init --profile test --empty-repo >/dev/null
        python3 "$ROOT/tests/jsipfs/configure-offline.py" "$IPFS_PATH/config" "$API_PORT" 4012 9190 5013
    fi
    NODE_OPTIONS="--require $ROOT/tests/jsipfs/polyfill.cjs" nohup "$JSIPFS" daemon --offline --enable-preload=false \
        >"$DATA/ipfs.log" 2>&1 &
    echo $! >"$DATA/ipfs.pid"
    echo "js-ipfs started (pid $!, log $DATA/ipfs.log)"
fi
wait_http "http://127.0.0.1:$API_PORT/api/v0/version" 60 || { echo "IPFS daemon did not come up; see $DATA/ipfs.log"; exit 1; }

echo "== cluster member"
CLUSTER_DIR="$DATA/cluster"
if [ ! -f "$CLUSTER_DIR/service.json" ]; then
    "$BIN/ipfs-cluster-service" -c "$CLUSTER_DIR" init
fi
# The ports this script uses go into service.json, the daemon's as well as the member's own, so
# the IPFS proxy forwards to the daemon that runs (also for a folder from an earlier run).
python3 - "$CLUSTER_DIR/service.json" "$API_PORT" "$REST_PORT" "$PROXY_PORT" "$CLUSTER_PORT" <<'PY'
import json, sys
path, api, rest, proxy, cluster = sys.argv[1:]
config = json.load(open(path))
daemon = f"/ip4/127.0.0.1/tcp/{api}"
config["ipfs_connector"]["ipfshttp"]["node_multiaddress"] = daemon
config["api"]["ipfsproxy"]["node_multiaddress"] = daemon
config["api"]["ipfsproxy"]["listen_multiaddress"] = f"/ip4/127.0.0.1/tcp/{proxy}"
config["api"]["restapi"]["http_listen_multiaddress"] = f"/ip4/127.0.0.1/tcp/{rest}"
config["cluster"]["listen_multiaddress"] = [f"/ip4/127.0.0.1/tcp/{cluster}"]
with open(path + ".tmp", "w") as out:
    json.dump(config, out, indent=2)
PY
mv "$CLUSTER_DIR/service.json.tmp" "$CLUSTER_DIR/service.json"
if [ -f "$DATA/cluster.pid" ] && kill -0 "$(cat "$DATA/cluster.pid")" 2>/dev/null; then
    echo "already running (pid $(cat "$DATA/cluster.pid"))"
else
    nohup "$BIN/ipfs-cluster-service" -c "$CLUSTER_DIR" daemon >"$DATA/cluster.log" 2>&1 &
    echo $! >"$DATA/cluster.pid"
    echo "ipfs-cluster-service started (pid $!, log $DATA/cluster.log)"
fi
HOST="--host /ip4/127.0.0.1/tcp/$REST_PORT"
for _ in $(seq 1 100); do "$BIN/ipfs-cluster-ctl" $HOST id >/dev/null 2>&1 && break; sleep 0.2; done
"$BIN/ipfs-cluster-ctl" $HOST id
CTL="ipfs-cluster-ctl $HOST"

cat <<NEXT

A one-member cluster is running (REST API 127.0.0.1:$REST_PORT, IPFS proxy 127.0.0.1:$PROXY_PORT).
Put the binaries on your PATH for this shell:
  export PATH="$BIN:\$PATH"
(or install them: cargo install --path bins/ipfs-cluster-service && cargo install --path bins/ipfs-cluster-ctl)
Then try:
  $CTL add README.md
  $CTL pin ls
  $CTL status <cid>
  $CTL pin rm <cid>
Stop everything with: bash scripts/quickstart.sh stop
NEXT
