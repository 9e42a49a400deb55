#!/usr/bin/env bash
# Boot times of the test platform, as a table of medians over a few runs:
#   - test host: images/testhost started -> TESTHOST_READY on its console, and -> QEMU exited
#     (command `true`), measured on this machine;
#   - L2 guest: QEMU microvm under KVM inside the test host, process start -> ACCELVM_INIT_START
#     and -> ACCELVM_EXIT, measured inside the test host with /proc/uptime (10 ms resolution).
# Usage: benches/testhost-boot.sh [RUNS]   (default 3; needs images/build.sh first)
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${1:-3}"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [RUNS]" >&2; exit 2; }
TESTHOST="$REPO_DIR/images/testhost"

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) printf "%.2f\n", v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

host_ready=()
host_total=()
for ((i = 1; i <= RUNS; i++)); do
    start=$EPOCHREALTIME
    ready=""
    while IFS= read -r line; do
        if [[ -z "$ready" && "$line" == TESTHOST_READY* ]]; then
            ready=$EPOCHREALTIME
        fi
    done < <("$TESTHOST" -- true 2>/dev/null)
    end=$EPOCHREALTIME
    [[ -n "$ready" ]] || { echo "test host run $i: no TESTHOST_READY" >&2; exit 1; }
    host_ready+=("$(awk -v a="$start" -v b="$ready" 'BEGIN { print b - a }')")
    host_total+=("$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')")
    printf 'test host run %d: ready %.2f s, exit %.2f s\n' "$i" "${host_ready[-1]}" "${host_total[-1]}" >&2
done

# Runs inside the test host (busybox sh): boots the guest RUNS times and prints one line per boot.
# shellcheck disable=SC2016 # expanded by the test host's shell
L2_SCRIPT='
now() { read -r up _ </proc/uptime; echo "$up"; }
cmd=$(echo "echo l2-bench" | base64)
i=1
while [ "$i" -le "$RUNS" ]; do
    t0=$(now)
    # Bounded: a nested boot very rarely hangs (seen once in ~40); it is reported, not waited for.
    timeout 120 qemu-system-x86_64 -M microvm -accel kvm -cpu host -smp 1 -m 512M \
        -nodefaults -no-user-config -nographic -serial stdio -no-reboot \
        -kernel "$ACCELVM_GUEST_KERNEL" -initrd "$ACCELVM_GUEST_INITRD" \
        -append "console=ttyS0 quiet panic=-1 accelvm.cmd=$cmd" </dev/null |
    while IFS= read -r line; do
        case "$line" in
        ACCELVM_INIT_START*) echo "L2_MARK init $(now)" ;;
        ACCELVM_EXIT=*) echo "L2_MARK exit $(now)" ;;
        esac
    done >/tmp/marks
    t1=$(now)
    init=$(awk "/init/ { print \$3 - $t0 }" /tmp/marks)
    exit=$(awk "/exit/ { print \$3 - $t0 }" /tmp/marks)
    echo "L2_RUN $i ${init:-nan} ${exit:-nan} $(awk "BEGIN { print $t1 - $t0 }")"
    i=$((i + 1))
done
'
l2_out=$("$TESTHOST" -- sh -c "RUNS=$RUNS; $L2_SCRIPT" 2>/dev/null | tr -d '\r')
grep '^L2_RUN' <<<"$l2_out" >&2 || { echo "no L2 results; test host output:" >&2; echo "$l2_out" >&2; exit 1; }
hung=$(grep -c '^L2_RUN .* nan' <<<"$l2_out" || true)
[[ $hung -eq 0 ]] || echo "warning: $hung L2 boot(s) hung (killed after 120 s); medians exclude them" >&2

printf '\n%-44s %10s  (%s runs)\n' "boot phase" "median s" "$RUNS"
printf '%-44s %10s\n' "test host: start -> TESTHOST_READY" "$(printf '%s\n' "${host_ready[@]}" | median)"
printf '%-44s %10s\n' "test host: start -> exit (command: true)" "$(printf '%s\n' "${host_total[@]}" | median)"
printf '%-44s %10s\n' "L2 microvm: QEMU start -> ACCELVM_INIT_START" "$(awk '/^L2_RUN/ && $3 != "nan" { print $3 }' <<<"$l2_out" | median)"
printf '%-44s %10s\n' "L2 microvm: QEMU start -> ACCELVM_EXIT" "$(awk '/^L2_RUN/ && $4 != "nan" { print $4 }' <<<"$l2_out" | median)"
[[ $hung -eq 0 ]] || printf '%-44s %10s\n' "L2 microvm: hung boots" "$hung"
printf '%-44s %10s\n' "L2 microvm: QEMU start -> QEMU exited" "$(awk '/^L2_RUN/ && $4 != "nan" { print $5 }' <<<"$l2_out" | median)"
