#!/usr/bin/env bash
# Sets up and starts a one-member IPFS Cluster beside a local IPFS daemon, all on loopback:
#   bash scripts/quickstart.sh        # install what is missing, build, start, print next steps
#   bash scripts/quickstart.sh stop   # stop what it started (by PID)
# Everything lives in .data/ in this checkout. The IPFS daemon is Kubo if `ipfs` is on PATH,
# else js-ipfs from npm (tests/jsipfs); either is configured offline before it starts.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
DATA="$ROOT/.data"
API_PORT=${IPFS_API_PORT:-5012}
REST_PORT=${CLUSTER_REST_PORT:-9094}
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

echo "== tools"
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
command -v just >/dev/null || cargo install just --locked

echo "== build (release)"
(cd "$ROOT" && cargo build --release --bins)
BIN="$ROOT/target/release"

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
export IPFS_CLUSTER_PATH="$DATA/cluster"
if [ ! -f "$IPFS_CLUSTER_PATH/service.json" ]; then
    "$BIN/ipfs-cluster-service" init
fi
if [ -f "$DATA/cluster.pid" ] && kill -0 "$(cat "$DATA/cluster.pid")" 2>/dev/null; then
    echo "already running (pid $(cat "$DATA/cluster.pid"))"
else
    CLUSTER_IPFSHTTP_NODEMULTIADDRESS="/ip4/127.0.0.1/tcp/$API_PORT" \
    CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS="/ip4/127.0.0.1/tcp/$REST_PORT" \
    CLUSTER_LISTENMULTIADDRESS="/ip4/127.0.0.1/tcp/9096" \
        nohup "$BIN/ipfs-cluster-service" daemon >"$DATA/cluster.log" 2>&1 &
    echo $! >"$DATA/cluster.pid"
    echo "ipfs-cluster-service started (pid $!, log $DATA/cluster.log)"
fi
CTL="$BIN/ipfs-cluster-ctl --host /ip4/127.0.0.1/tcp/$REST_PORT"
for _ in $(seq 1 100); do $CTL id >/dev/null 2>&1 && break; sleep 0.2; done
$CTL id

cat <<NEXT

A one-member cluster is running. Try:
  CID=\$(curl -s -X POST -F file=@README.md "http://127.0.0.1:$API_PORT/api/v0/add?pin=false" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Hash"])')
  $CTL pin add \$CID
  $CTL status \$CID
  $CTL pin ls
  $CTL pin rm \$CID
Stop everything with: bash scripts/quickstart.sh stop
NEXT
