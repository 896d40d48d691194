#!/usr/bin/env bash
# Builds and runs the fuzz targets of fuzz/ with libFuzzer on the stable toolchain: the
# sanitizer-coverage flags cargo-fuzz would pass (without a sanitizer, which needs nightly).
#
#   scripts/fuzz.sh list                       the targets
#   scripts/fuzz.sh build                      builds every target
#   scripts/fuzz.sh run TARGET [SECONDS] [ARGS]  fuzzes one target (0 seconds: until stopped);
#                                              the corpus grows in fuzz/corpus/TARGET, a crash
#                                              lands in fuzz/artifacts/TARGET
#   scripts/fuzz.sh check [SECONDS]            CI: builds every target, replays its seeds and
#                                              regressions, then fuzzes each for SECONDS (5)
#
# A crash found is fixed, and its input is kept in fuzz/regressions/TARGET/ so that `check`
# replays it on every CI run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

host=$(rustc -vV | sed -n 's/^host: //p')
targets() { sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^cluster-fuzz$'; }

build() {
    # An explicit --target keeps these flags off build scripts and proc macros, which are not
    # linked with libFuzzer.
    RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing" \
    CARGO_INCREMENTAL=0 cargo build --locked --release --target "$host" --bins "$@"
}

binary() { echo "target/$host/release/$1"; }

# Inputs that must keep passing: the hand-made seeds and every crash fixed so far.
kept_inputs() {
    local dir
    for dir in "seeds/$1" "regressions/$1"; do
        [ -d "$dir" ] && find "$dir" -type f
    done
    return 0
}

run() {
    local target=$1 seconds=${2:-0}
    shift $(( $# >= 2 ? 2 : 1 ))
    mkdir -p "corpus/$target" "artifacts/$target"
    local seeds=()
    [ -d "seeds/$target" ] && seeds+=("seeds/$target")
    [ -d "regressions/$target" ] && seeds+=("regressions/$target")
    "$(binary "$target")" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="artifacts/$target/" -print_final_stats=1 "$@" \
        "corpus/$target" "${seeds[@]}"
}

case "${1:-}" in
    list) targets ;;
    build) build ;;
    run)
        [ -n "${2:-}" ] || { echo "usage: scripts/fuzz.sh run TARGET [SECONDS] [libFuzzer args]"; echo "targets:"; targets; exit 2; }
        targets | grep -qx "$2" || { echo "no fuzz target named $2; the targets are:"; targets; exit 2; }
        build --bin "$2"
        shift
        run "$@"
        ;;
    check)
        seconds=${2:-5}
        build
        for target in $(targets); do
            mapfile -t kept < <(kept_inputs "$target")
            kept_dirs=()
            for dir in "seeds/$target" "regressions/$target"; do [ -d "$dir" ] && kept_dirs+=("$dir"); done
            # A scratch corpus: CI must not grow the one in the tree.
            scratch=$(mktemp -d)
            mkdir "$scratch/corpus" "$scratch/crashes"
            if [ ${#kept[@]} -gt 0 ] && ! "$(binary "$target")" -runs=1 "${kept[@]}" > "$scratch/log" 2>&1; then
                echo "fuzz target $target fails on a kept input; the log ends:"; tail -n 40 "$scratch/log"; exit 1
            fi
            if ! "$(binary "$target")" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
                -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$scratch/crashes/" "$scratch/corpus" \
                ${kept_dirs[@]+"${kept_dirs[@]}"} > "$scratch/log" 2>&1; then
                echo "fuzz target $target crashed within ${seconds}s; the log ends:"
                tail -n 40 "$scratch/log"; ls "$scratch/crashes"; exit 1
            fi
            echo "fuzz $target: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$scratch/log" | grep -o '[0-9]*$' || echo '?') executions in ${seconds}s, no crash"
            rm -rf "$scratch"
        done
        ;;
    *) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
