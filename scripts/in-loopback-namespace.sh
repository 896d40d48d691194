#!/usr/bin/env bash
# Runs a command inside a fresh network namespace that has only the loopback interface, when the
# machine allows it (root with `unshare -n`); otherwise runs it as is. Tests that start real IPFS
# daemons use it as a safety belt: even a misconfigured daemon cannot reach another host.
set -euo pipefail
if command -v unshare >/dev/null 2>&1 && unshare -n true 2>/dev/null; then
    exec unshare -n bash -c 'ip link set lo up 2>/dev/null || true; exec "$@"' bash "$@"
fi
echo "in-loopback-namespace: unshare -n is not available; running without a namespace" >&2
exec "$@"
