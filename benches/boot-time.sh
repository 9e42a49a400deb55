#!/usr/bin/env bash
# Boot time and memory of accelvm against QEMU's microvm, booting the same guest image with the
# same kernel command line, 1 vCPU and 512 MiB, inside the same nested test host (real KVM):
#   process start -> the guest init's first line (ACCELVM_INIT_START), median of RUNS each
#   (runs alternate between the two VMMs; each VMM is stopped with SIGTERM at that line), and the
#   peak RSS of each VMM process up to then (busybox time -v).
# Times come from /proc/uptime inside the test host (10 ms resolution).
# Then accelvm's own start-up cost, natively on this machine's /dev/kvm: process start -> right
# before the first KVM_RUN (hidden flag --startup-probe), median of RUNS.
# Usage: benches/boot-time.sh [RUNS]   (default 10; needs images/build.sh and a release build)
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${1:-10}"
# Seconds a single boot may take to print its init line (a nested boot occasionally hangs).
BOOT_TIMEOUT="${BOOT_TIMEOUT:-120}"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [RUNS]" >&2; exit 2; }
IMAGES="$REPO_DIR/images/out"
ACCELVM="${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/accelvm"
[[ -x "$ACCELVM" ]] || { echo "$ACCELVM missing: cargo build --release -p accelvm" >&2; exit 1; }
[[ -f "$IMAGES/vmlinuz" ]] || { echo "$IMAGES/vmlinuz missing: images/build.sh" >&2; exit 1; }

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Runs inside the test host (busybox sh). One line per boot:
#   RUN <vmm> <seconds to ACCELVM_INIT_START> <peak RSS KiB> <status>
# shellcheck disable=SC2016 # expanded by the test host's shell
L2_SCRIPT='
APPEND="console=ttyS0 quiet panic=-1"
now() { read -r up _ </proc/uptime; echo "$up"; }
boot() {
    vmm=$1
    rm -f /tmp/con /tmp/mark
    mkfifo /tmp/con
    t0=$(now)
    if [ "$vmm" = accelvm ]; then
        time -o /tmp/rss -v accelvm run --kernel "$ACCELVM_GUEST_KERNEL" --initrd "$ACCELVM_GUEST_INITRD" \
            --cpus 1 --memory 512 --cmdline "$APPEND" --guest-cmd true </dev/null >/tmp/con 2>/dev/null &
    else
        time -o /tmp/rss -v qemu-system-x86_64 -M microvm -accel kvm -cpu host -smp 1 -m 512M \
            -nodefaults -no-user-config -nographic -serial stdio -no-reboot \
            -kernel "$ACCELVM_GUEST_KERNEL" -initrd "$ACCELVM_GUEST_INITRD" \
            -append "$APPEND accelvm.cmd=$(echo true | base64)" </dev/null >/tmp/con 2>/dev/null &
    fi
    tpid=$!
    # A boot that shows no init line within BOOT_TIMEOUT s is stopped and counted as a timeout.
    ( sleep "$BOOT_TIMEOUT"; kill -TERM $(cat /proc/$tpid/task/$tpid/children 2>/dev/null) 2>/dev/null ) &
    watchdog=$!
    # Boot ends at the init s first line: stop the VMM there (SIGTERM) instead of waiting for
    # the guest command, so a run costs one boot. Peak RSS is the VMM process (time -v).
    while IFS= read -r line; do
        case "$line" in
        ACCELVM_INIT_START*)
            now >/tmp/mark
            kill -TERM $(cat /proc/$tpid/task/$tpid/children) ;;
        esac
    done </tmp/con
    kill $watchdog 2>/dev/null
    wait $tpid
    init=$(awk -v t0="$t0" "{ print \$1 - t0; exit }" /tmp/mark 2>/dev/null)
    rss=$(awk -F": " "/Maximum resident/ { print \$2 }" /tmp/rss)
    echo "RUN $vmm ${init:-nan} ${rss:-nan}"
}
i=1
while [ "$i" -le "$RUNS" ]; do
    boot accelvm
    boot qemu
    i=$((i + 1))
done
'
echo "booting the guest $RUNS times with each VMM inside the test host..." >&2
out=$("$REPO_DIR/images/testhost" --timeout $((RUNS * 2 * BOOT_TIMEOUT + 120)) -- \
    sh -c "RUNS=$RUNS; BOOT_TIMEOUT=$BOOT_TIMEOUT; $L2_SCRIPT" 2>/dev/null | tr -d '\r' || true)
runs=$(grep '^RUN ' <<<"$out" || true)
[[ -n "$runs" ]] || { echo "no results; test host output:" >&2; echo "$out" >&2; exit 1; }
echo "$runs" >&2
timeouts() { awk -v vmm="$1" '$2 == vmm && $3 == "nan"' <<<"$runs" | wc -l; }
a_timeouts=$(timeouts accelvm)
q_timeouts=$(timeouts qemu)

col() { awk -v vmm="$1" -v c="$2" '$2 == vmm && $3 != "nan" { print $c }' <<<"$runs" | median; }
a_time=$(col accelvm 3)
q_time=$(col qemu 3)
a_rss=$(col accelvm 4)
q_rss=$(col qemu 4)

echo "accelvm start-up natively (process start -> first KVM_RUN), $RUNS runs..." >&2
startup=()
for ((i = 1; i <= RUNS; i++)); do
    t0=$EPOCHREALTIME
    line=$("$ACCELVM" run --kernel "$IMAGES/vmlinuz" --initrd "$IMAGES/initrd.img" --memory 512 \
        --startup-probe 2>&1 >/dev/null | grep '^ACCELVM_FIRST_KVM_RUN_NS=' || true)
    [[ -n "$line" ]] || { echo "no ACCELVM_FIRST_KVM_RUN_NS line (is /dev/kvm usable?)" >&2; exit 1; }
    ns=${line#ACCELVM_FIRST_KVM_RUN_NS=}
    startup+=("$(awk -v t0="$t0" -v ns="$ns" 'BEGIN { printf "%.2f", (ns / 1e9 - t0) * 1000 }')")
done

printf '\n%-10s %26s %18s\n' "VMM" "start -> init (median s)" "peak RSS (MiB)"
printf '%-10s %26.2f %18.1f\n' accelvm "$a_time" "$(awk -v k="$a_rss" 'BEGIN { print k / 1024 }')"
printf '%-10s %26.2f %18.1f\n' "QEMU" "$q_time" "$(awk -v k="$q_rss" 'BEGIN { print k / 1024 }')"
printf '%-10s %26.2f %18.2f\n' "ratio" "$(awk -v a="$a_time" -v q="$q_time" 'BEGIN { print a / q }')" \
    "$(awk -v a="$a_rss" -v q="$q_rss" 'BEGIN { print a / q }')"
printf '(boots without an init line within %s s, left out above: accelvm %s, QEMU %s)\n' \
    "$BOOT_TIMEOUT" "$a_timeouts" "$q_timeouts"
printf '\naccelvm start-up, process start -> first KVM_RUN (native /dev/kvm, kernel + initrd loaded): median %s ms over %d runs\n' \
    "$(printf '%s\n' "${startup[@]}" | median)" "$RUNS"
