#!/usr/bin/env bash
# TCP throughput of virtio-net over a TAP, accelvm vs QEMU microvm's userspace virtio-net
# (virtio-mmio, vhost=off: this kind of machine has no /dev/vhost-net), same guest image, same
# vCPUs and memory, in the same run: iperf3 host -> guest and guest -> host (-R), median of
# RUNS runs of DURATION seconds each (both guests up at once, runs alternating between them),
# printed as a table with the accelvm/QEMU ratio.
# Runs inside the test host (images/testhost); where this machine has hardware virtualization
# it also runs directly. Networking lives in a private network namespace (192.0.2.0/24).
# Usage: benches/net-throughput.sh [RUNS] [DURATION]   (default 3 runs of 10 s; needs
#        images/build.sh and cargo build --release first)
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${1:-3}"
DURATION="${2:-10}"
[[ "$RUNS" =~ ^[1-9][0-9]*$ && "$DURATION" =~ ^[1-9][0-9]*$ ]] || {
    echo "usage: $0 [RUNS] [DURATION_SECONDS]" >&2
    exit 2
}
[[ -x "$REPO_DIR/target/release/accelvm" ]] || {
    echo "target/release/accelvm missing: cargo build --release first" >&2
    exit 1
}

# Runs where KVM is (busybox sh in the test host). Prints "NETBENCH <vmm> <dir> <run> <Mbit/s>".
# shellcheck disable=SC2016 # expanded by the inner shell
INNER='
IP=/usr/sbin/ip; [ -x "$IP" ] || IP=/sbin/ip
NS="avmbench-$$"
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    $IP netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null
    $IP netns del "$NS" 2>/dev/null
    true
}
trap cleanup EXIT INT TERM
nsx() { $IP netns exec "$NS" "$@"; }
$IP netns add "$NS"
nsx $IP link set lo up
CMD=$(echo "iperf3 -s" | base64 | tr -d "\n")
BASE="console=ttyS0 reboot=acpi panic=-1 quiet 8250.nr_uarts=1 accelvm.cmd=$CMD"
# Both guests run at once, each on its own TAP and subnet, and the runs alternate between them,
# so a change in machine load hits both VMMs alike.
# $! is the VMM itself: ip netns exec execs it (nsx, a function, would add a subshell).
$IP netns exec "$NS" accelvm run --cpus 1 --memory 512 --kernel "$ACCELVM_GUEST_KERNEL" \
    --initrd "$ACCELVM_GUEST_INITRD" --cmdline "$BASE accelvm.ip=192.0.2.2/24" \
    --net tap=avmb-accelvm >accelvm.log 2>&1 &
PIDS="$PIDS $!"
$IP netns exec "$NS" qemu-system-x86_64 -M microvm -accel kvm -cpu host -smp 1 -m 512M \
    -nodefaults -no-user-config -nographic -serial stdio -no-reboot \
    -kernel "$ACCELVM_GUEST_KERNEL" -initrd "$ACCELVM_GUEST_INITRD" \
    -append "$BASE accelvm.ip=198.51.100.2/24" \
    -netdev tap,id=n0,ifname=avmb-qemu,script=no,downscript=no,vhost=off \
    -device virtio-net-device,netdev=n0 </dev/null >qemu.log 2>&1 &
PIDS="$PIDS $!"
for t in "avmb-accelvm 192.0.2.1/24" "avmb-qemu 198.51.100.1/24"; do
    set -- $t
    i=0
    while ! nsx $IP link show $1 >/dev/null 2>&1 && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    nsx $IP addr add $2 dev $1
    nsx $IP link set $1 up
done
for g in 192.0.2.2 198.51.100.2; do
    i=0
    while ! nsx iperf3 -c $g -t 1 >/dev/null 2>&1 && [ $i -lt 120 ]; do sleep 1; i=$((i + 1)); done
done
# CPU of a VMM process in clock ticks: all of it (utime + stime, which includes the time its
# vCPU spent in the guest) and the VMM share alone (minus guest_time, field 43).
cpu() { awk "{ print \$14 + \$15, \$14 + \$15 - \$43 }" /proc/$1/stat; }
# KVM counters of the VM (all vCPUs): VM exits, injected interrupts, HLT exits and ns spent
# halt-polling (successful, failed), from debugfs where the
# kernel has it ("- -" otherwise): what each byte costs the guest in exits.
mount -t debugfs none /sys/kernel/debug 2>/dev/null
kvmstat() {
    for f in exits irq_injections halt_exits halt_poll_success_ns halt_poll_fail_ns; do
        cat /sys/kernel/debug/kvm/$1-*/$f 2>/dev/null | head -1 | grep . || echo -
    done | tr "\n" " "
}
set -- $PIDS
r=1
while [ $r -le "$RUNS" ]; do
    for dir in h2g g2h; do
        for vmm in accelvm qemu; do
            flag=""; [ $dir = g2h ] && flag=-R
            guest=192.0.2.2; pid=$1; [ $vmm = qemu ] && { guest=198.51.100.2; pid=$2; }
            c0=$(cpu $pid); k0=$(kvmstat $pid)
            # JSON: iperf3 3.12 prints no text summary in the test host. The receiving side
            # total is the first bits_per_second after "sum_received".
            mbps=$(nsx iperf3 -c $guest $flag -t "$DURATION" --json 2>&1 |
                awk "/\"sum_received\"/ { s = 1 } s && /\"bits_per_second\"/ { gsub(/[^0-9.]/, \"\", \$2); printf \"%.0f\", \$2 / 1e6; exit }")
            c1=$(cpu $pid); k1=$(kvmstat $pid)
            set -- $k0 $k1
            kd="- - - - -"
            [ "$1" != - ] && [ "$6" != - ] &&
                kd="$(($6 - $1)) $(($7 - $2)) $(($8 - $3)) $(($9 - $4)) $((${10} - $5))"
            set -- $PIDS
            echo "NETBENCH $vmm $dir $r ${mbps:-nan} $c0 $c1 $kd"
        done
    done
    r=$((r + 1))
done
# Console tails of both guests, shown by report() only when a run failed.
tail -n 30 accelvm.log | sed "s/^/accelvm.log: /"
tail -n 30 qemu.log | sed "s/^/qemu.log: /"
'

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) printf "%.0f\n", v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Seconds of VMM CPU (outside guest mode) per GB over all runs of one VMM and direction.
cpu_per_gb() {
    awk -v v="$1" -v d="$2" -v t="$DURATION" -v hz="$(getconf CLK_TCK)" '
        $1 == "NETBENCH" && $2 == v && $3 == d && NF >= 9 { ticks += $9 - $7; gb += $5 * t / 8000 }
        END { if (gb > 0) printf "%.2f", ticks / hz / gb; else print "n/a" }'
}

# VM exits and injected interrupts per MB moved over all runs ("n/a" without debugfs).
kvm_per_mb() {
    awk -v v="$1" -v d="$2" -v t="$DURATION" -v f="$3" '
        $1 == "NETBENCH" && $2 == v && $3 == d && NF >= 11 && $f != "-" { n += $f; mb += $5 * t / 8 }
        END { if (mb > 0) printf "%.1f", n / mb; else print "n/a" }'
}

report() {
    local where="$1" out="$2" dir a q
    grep '^NETBENCH' <<<"$out" >&2 || { echo "$where: no results; output:" >&2; echo "$out" >&2; return 1; }
    if awk '$1 == "NETBENCH" && $5 == "nan" { bad = 1 } END { exit !bad }' <<<"$out"; then
        echo "$where: an iperf3 run failed; output:" >&2
        echo "$out" >&2
        return 1
    fi
    printf '\n%s: iperf3 TCP, median of %s x %s s, 1 vCPU / 512 MiB guests\n' "$where" "$RUNS" "$DURATION"
    printf '%-16s %14s %14s %8s %18s %18s\n' direction "accelvm Mb/s" "QEMU Mb/s" ratio \
        "accelvm VMM s/GB" "QEMU VMM s/GB"
    for dir in h2g g2h; do
        a=$(awk -v d=$dir '$1 == "NETBENCH" && $2 == "accelvm" && $3 == d { print $5 }' <<<"$out" | median)
        q=$(awk -v d=$dir '$1 == "NETBENCH" && $2 == "qemu" && $3 == d { print $5 }' <<<"$out" | median)
        printf '%-16s %14s %14s %8s %18s %18s\n' "$([ $dir = h2g ] && echo 'host -> guest' || echo 'guest -> host')" \
            "$a" "$q" "$(awk -v a="$a" -v q="$q" 'BEGIN { if (q > 0) printf "%.2fx", a / q; else print "n/a" }')" \
            "$(cpu_per_gb accelvm $dir <<<"$out")" "$(cpu_per_gb qemu $dir <<<"$out")"
    done
    printf '(VMM s/GB: CPU seconds the VMM process spent outside the guest per GB moved, all runs)\n'
    printf '%-16s %14s %14s %16s %16s\n' direction "accelvm exits" "QEMU exits" "accelvm irqs" "QEMU irqs"
    for dir in h2g g2h; do
        printf '%-16s %14s %14s %16s %16s\n' "$([ $dir = h2g ] && echo 'host -> guest' || echo 'guest -> host')" \
            "$(kvm_per_mb accelvm $dir 10 <<<"$out")" "$(kvm_per_mb qemu $dir 10 <<<"$out")" \
            "$(kvm_per_mb accelvm $dir 11 <<<"$out")" "$(kvm_per_mb qemu $dir 11 <<<"$out")"
    done
    printf '(per MB moved, all runs: VM exits and interrupts injected, from the KVM debugfs counters)\n'
}

out=$("$REPO_DIR/images/testhost" --batch --timeout 1800 -- sh -c "RUNS=$RUNS; DURATION=$DURATION; $INNER" 2>/dev/null | tr -d '\r')
report "test host (nested KVM under TCG)" "$out"

# Directly too, where an unmodified guest runs under this machine's KVM.
if grep -qwE 'vmx|svm' /proc/cpuinfo && [[ -w /dev/kvm && ! -e /sys/module/kvm_pvm ]]; then
    images="$REPO_DIR/images/out"
    out=$(cd "$(mktemp -d)" && PATH="$REPO_DIR/target/release:$PATH" ACCELVM_GUEST_KERNEL="$images/vmlinuz" \
        ACCELVM_GUEST_INITRD="$images/initrd.img" RUNS=$RUNS DURATION=$DURATION sh -c "$INNER" 2>&1)
    report "this machine (KVM)" "$out"
else
    printf '\n(no hardware virtualization here: direct run skipped)\n'
fi
