#!/usr/bin/env bash
# Instructions per request: the virtio-accel device path (inline, benches/accel_device.rs's Rig)
# against the direct library call, counted by valgrind's callgrind. Unlike the timed table of
# `cargo bench --bench accel_device`, a count does not move with the host's load or speed; it
# does not see cache misses either (the device's ring and metadata lines cost more time per
# instruction than the library's inner loop), so it bounds the timed overhead from below.
# Each cell runs the variant twice (ITERS and 3 x ITERS batches of 32) and takes the difference,
# so set-up costs cancel. Usage: benches/accel-instructions.sh   (ACCEL_BENCH_OPS, ACCEL_BENCH_SIZES
# as for the bench; ITERS, default 100; needs valgrind: apt-get install valgrind)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v valgrind >/dev/null || { echo "accel-instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
ITERS="${ITERS:-100}"
[[ "$ITERS" =~ ^[1-9][0-9]*$ ]] || { echo "ITERS: a positive number" >&2; exit 2; }
OPS="${ACCEL_BENCH_OPS:-encrypt,lz4}"
SIZES="${ACCEL_BENCH_SIZES:-64,4096,16384,65536}"
BATCH=32

bin=$(cargo bench --bench accel_device --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -n1)
[[ -x "$bin" ]] || { echo "accel-instructions.sh: cannot find the accel_device bench binary" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Instructions of one run: variant $1, op $2, size $3, batches $4.
count() {
    ACCEL_BENCH_PROFILE="$1" ACCEL_BENCH_OPS="$2" ACCEL_BENCH_SIZES="$3" ACCEL_BENCH_ITERS="$4" \
        valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$bin" --bench 2>&1 |
        awk '/Collected :/ { print $NF }'
}
# Instructions per request of variant $1 for op $2 and size $3.
per_request() {
    local a b
    a=$(count "$1" "$2" "$3" "$ITERS")
    b=$(count "$1" "$2" "$3" $((3 * ITERS)))
    awk -v a="$a" -v b="$b" -v n=$((2 * ITERS * BATCH)) 'BEGIN { printf "%.0f", (b - a) / n }'
}

printf '%-10s %7s %10s %10s %10s %7s\n' op size direct device overhead ratio
for op in ${OPS//,/ }; do
    for size in ${SIZES//,/ }; do
        d=$(per_request direct "$op" "$size")
        v=$(per_request device "$op" "$size")
        printf '%-10s %7s %10s %10s %10s %7s\n' "$op" "$size" "$d" "$v" $((v - d)) \
            "$(awk -v d="$d" -v v="$v" 'BEGIN { printf "%.3f", d / v }')"
    done
done
echo "instructions per request (callgrind); ratio = direct / device: the timed ratio if every"
echo "instruction took the same time"
