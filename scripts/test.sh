#!/usr/bin/env bash
# The whole test suite, the README's second command: installs `just` when it is missing (the
# test recipes are in the justfile), then runs `just test`. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# One pass over a clean tree: incremental compilation would only add gigabytes to the target dirs.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
command -v just >/dev/null 2>&1 || cargo install just --locked
exec just test "$@"
