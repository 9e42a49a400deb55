#!/usr/bin/env bash
# IPsec tunnel benchmark: one accelvm guest per ESP path, each against the same Linux software
# xfrm peer in a network namespace (tunnel mode, rfc4106(gcm(aes)) AES-256, 16-byte ICV), all in
# one test host run (or directly with hardware KVM: ACCELVM_BENCH_DIRECT=1):
#   software   the guest kernel's own ESP (AES-NI rfc4106, virtio_accel not loaded)
#   lookaside  the guest kernel's ESP with virtio_accel's rfc4106 (the device does the AEAD)
#   offload    accel-tool gateway: the device does the whole ESP processing, TUN <-> raw sockets
# Measures iperf3 TCP throughput through the tunnel guest->peer and peer->guest, and UDP
# packets/s delivered for 64-byte payloads guest->peer (iperf3 -u -b 0), and prints a table.
# ACCELVM_BENCH_MODES selects paths (default: software lookaside offload).
# Usage: benches/ipsec.sh [SECONDS]   (default 5 per measurement; needs images/build.sh and
# cargo build --release first)
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECS="${1:-5}"
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }
K_PG=0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3
K_GP=0x202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3fb0b1b2b3

# Guest part (busybox sh in the guest), fetched by the guest over plain TCP: MODE and SECS are
# prepended. Prints BENCH_<name>=<value> lines.
read -r -d '' GUEST <<EOF || true
IP=/usr/sbin/ip
case "\$MODE" in
software | lookaside)
    [ "\$MODE" = lookaside ] && modprobe virtio_accel
    \$IP addr add 198.51.100.2/32 dev lo
    \$IP xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1001 reqid 1 mode tunnel replay-window 64 aead "rfc4106(gcm(aes))" $K_PG 128
    \$IP xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x2002 reqid 1 mode tunnel replay-window 64 aead "rfc4106(gcm(aes))" $K_GP 128
    \$IP xfrm policy add src 198.51.100.2/32 dst 198.51.100.1/32 dir out tmpl src 192.0.2.2 dst 192.0.2.1 proto esp reqid 1 mode tunnel
    \$IP xfrm policy add src 198.51.100.1/32 dst 198.51.100.2/32 dir in tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel
    \$IP route add 198.51.100.1/32 via 192.0.2.1 src 198.51.100.2
    ;;
offload)
    modprobe virtio_accel; modprobe tun
    \$IP tuntap add dev tun0 mode tun
    \$IP addr add 198.51.100.2/32 dev tun0
    \$IP link set tun0 mtu 1400 up
    \$IP route add 198.51.100.1/32 dev tun0 src 198.51.100.2
    accel-tool gateway --tun tun0 --local 192.0.2.2 --remote 192.0.2.1 --spi-out 0x2002 --spi-in 0x1001 --key-out $K_GP --key-in $K_PG --stats-file /tmp/gw.stats >/tmp/gw.out 2>&1 &
    ;;
esac
awk '/^name/ { n = \$3 } /^driver/ { d = \$3 } /^priority/ && n == "rfc4106(gcm(aes))" && \$3 > m { m = \$3; b = d } END { print "BENCH_RFC4106=" b }' /proc/crypto
i=0; while ! ping -c 1 -W 1 198.51.100.1 >/dev/null 2>&1 && [ \$i -lt 60 ]; do i=\$((i + 1)); done
a0=\$(accel-tool stats 2>/dev/null | awk '\$1 == "api_ops" { print \$2 + \$4 }')
iperf3 -c 198.51.100.1 -t \$SECS -f m 2>&1 | awk '/receiver/ { for (i = 2; i <= NF; i++) if (\$i == "Mbits/sec") v = \$(i - 1); print "BENCH_TCP_TX_MBPS=" v }'
sleep 1
iperf3 -c 198.51.100.1 -t \$SECS -f m -R 2>&1 | awk '/receiver/ { for (i = 2; i <= NF; i++) if (\$i == "Mbits/sec") v = \$(i - 1); print "BENCH_TCP_RX_MBPS=" v }'
sleep 1
iperf3 -c 198.51.100.1 -t \$SECS -u -l 64 -b 0 2>&1 | awk '/receiver/ { for (i = 2; i <= NF; i++) { if (\$i ~ /^[0-9.]+-[0-9.]+\$/) d = \$i; if (\$i ~ /^[0-9]+\/[0-9]+\$/) lt = \$i }
    sub(/.*-/, "", d); split(lt, n, "/"); if (d > 0) print "BENCH_UDP64_PPS=" int((n[2] - n[1]) / d) }'
a1=\$(accel-tool stats 2>/dev/null | awk '\$1 == "api_ops" { print \$2 + \$4 }')
echo "BENCH_DEVICE_OPS=\$(( \${a1:-0} - \${a0:-0} ))"
[ -f /tmp/gw.stats ] && grep -E 'GW_(ENCAP_OK|DECAP_OK|MAX_BATCH|BATCHES)=' /tmp/gw.stats | sed 's/^/BENCH_/'
exit 0
EOF

# Test host part: one peer namespace per mode, iperf3 server in it, the guest booted with accelvm.
read -r -d '' HOST <<'EOF' || true
IP=/usr/sbin/ip
[ -x "$IP" ] || IP=/sbin/ip
for MODE in $MODES; do
    NS="avmbench-$MODE"
    TAP=avmbesp0
    cleanup() { $IP netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null; $IP netns del "$NS" 2>/dev/null; true; }
    trap cleanup EXIT
    $IP netns add "$NS"
    nsx() { $IP netns exec "$NS" "$@"; }
    nsx $IP link set lo up
    nsx $IP tuntap add dev $TAP mode tap
    nsx $IP addr add 192.0.2.1/24 dev $TAP
    nsx $IP link set $TAP up
    nsx $IP addr add 198.51.100.1/32 dev lo
    nsx $IP xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1001 reqid 1 mode tunnel replay-window 64 aead "rfc4106(gcm(aes))" $K_PG 128
    nsx $IP xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x2002 reqid 1 mode tunnel replay-window 64 aead "rfc4106(gcm(aes))" $K_GP 128
    nsx $IP xfrm policy add src 198.51.100.1/32 dst 198.51.100.2/32 dir out tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel
    nsx $IP xfrm policy add src 198.51.100.2/32 dst 198.51.100.1/32 dir in tmpl src 192.0.2.2 dst 192.0.2.1 proto esp reqid 1 mode tunnel
    { echo "MODE=$MODE SECS=$SECS"; cat /opt/guest-bench.sh; } >guest.sh
    nsx busybox nc -l -p 8000 <guest.sh >/dev/null &
    nsx iperf3 -s -D -B 198.51.100.1
    nsx timeout 600 accelvm run --memory 512 --cpus 1 --kernel "$ACCELVM_GUEST_KERNEL" --initrd "$ACCELVM_GUEST_INITRD" \
        --cmdline "console=ttyS0 reboot=acpi panic=-1 quiet 8250.nr_uarts=1 accelvm.ip=192.0.2.2/24" \
        --net "tap=$TAP,mac=02:00:00:00:00:02" --accel --guest-cmd '
rm -f /tmp/h; mkfifo /tmp/h; exec 9<>/tmp/h; i=0
while [ $i -lt 90 ]; do nc 192.0.2.1 8000 <&9 >/tmp/s.sh && [ -s /tmp/s.sh ] && break; sleep 1; i=$((i + 1)); done
exec sh /tmp/s.sh' >G.out 2>&1 &
    VM=$!
    i=0; while ! nsx ping -c 1 -W 1 192.0.2.2 >/dev/null 2>&1 && [ $i -lt 150 ]; do i=$((i + 1)); done
    nsx $IP route add 198.51.100.2/32 via 192.0.2.2 src 198.51.100.1
    wait $VM || true
    grep '^BENCH_' G.out | tr -d '\r' | sed "s/^/$MODE /"
    grep -q '^BENCH_' G.out || sed "s/^/$MODE guest: /" G.out
    cleanup
done
EOF

GUEST_FILE=$(mktemp)
trap 'rm -f "$GUEST_FILE"' EXIT
printf '%s\n' "$GUEST" >"$GUEST_FILE"
MODES="${ACCELVM_BENCH_MODES:-software lookaside offload}"
SCRIPT="SECS=$SECS; K_PG=$K_PG; K_GP=$K_GP; MODES='$MODES'; $HOST"
if [[ "${ACCELVM_BENCH_DIRECT:-0}" == 1 ]]; then
    mkdir -p /opt && cp "$GUEST_FILE" /opt/guest-bench.sh
    export ACCELVM_GUEST_KERNEL="$REPO_DIR/images/out/vmlinuz" ACCELVM_GUEST_INITRD="$REPO_DIR/images/out/initrd.img"
    PATH="$REPO_DIR/target/release:$PATH" out=$(sh -c "$SCRIPT" 2>&1)
else
    out=$("$REPO_DIR/images/testhost" --batch --add "$GUEST_FILE=/opt/guest-bench.sh" -- sh -c "$SCRIPT" 2>&1 | tr -d '\r')
fi
grep -E '^(software|lookaside|offload) ' <<<"$out" >&2 || { echo "$out" >&2; exit 1; }

val() { awk -v m="$1" -v k="BENCH_$2=" '$1 == m && index($2, k) == 1 { print substr($2, length(k) + 1) }' <<<"$out" | tail -n1; }
printf '\nIPsec tunnel through accelvm (%s s per measurement, iperf3, AES-256-GCM ESP tunnel vs Linux xfrm)\n' "$SECS"
printf '%-10s %-34s %14s %14s %16s %12s\n' "path" "guest rfc4106 driver" "TCP tx Mbit/s" "TCP rx Mbit/s" "UDP 64 B pkt/s" "device ops"
for m in $MODES; do
    drv=$(val "$m" RFC4106)
    [[ "$m" == offload ]] && drv="(device ESP: accel-tool gateway)"
    printf '%-10s %-34s %14s %14s %16s %12s\n' "$m" "${drv:-?}" "$(val "$m" TCP_TX_MBPS)" "$(val "$m" TCP_RX_MBPS)" \
        "$(val "$m" UDP64_PPS)" "$(val "$m" DEVICE_OPS)"
done
