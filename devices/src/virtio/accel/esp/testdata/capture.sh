#!/bin/bash
# Capture ESP packets from Linux xfrm (software ESP, rfc4106(gcm(aes))) as interoperability test
# vectors for the ESP engine, written to linux-xfrm.txt next to this script.
#
# The development machine's kernel has no ESP/GCM, so this boots the Debian 12 cloud kernel under
# QEMU TCG (no KVM needed) with a tiny initramfs: two network namespaces joined by a veth pair,
# matching xfrm SAs and policies, a UDP sender in netns "a", and in netns "b" a UDP receiver (proves
# Linux itself accepted the packet) plus an AF_PACKET sniffer that prints the ESP packets in hex.
# Addresses: 192.0.2.0/24 and 2001:db8::/32 (documentation ranges) only. The namespaces live and
# die inside the throwaway VM, so a failure leaves nothing behind on the host; QEMU is bounded by
# a 600 s timeout.
#
# If to-linux.txt exists (ESP packets made by our engine, written by the test
# `tests_linux::engine_packets_for_linux` with ACCELVM_ESP_REGEN=1), they are injected into netns b
# with the same SAs and the UDP payloads Linux delivers are written to linux-accepted.txt.
#
# Needs: apt (linux-image-cloud-amd64), gcc with static glibc, busybox-static, iproute2, kmod (depmod),
# cpio, qemu-system-x86. Usage: capture.sh [OUTPUT [ACCEPTED_OUTPUT]]; everything temporary is removed on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/linux-xfrm.txt}
accepted=${2:-$here/linux-accepted.txt}
work=$(mktemp -d /tmp/esp-capture.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

apt-get download linux-image-cloud-amd64 >/dev/null
pkg=$(dpkg-deb -f linux-image-cloud-amd64_*.deb Depends | grep -o 'linux-image-[0-9][^ ,]*')
apt-get download "$pkg" >/dev/null
dpkg-deb -x "$pkg"_*.deb kernel
kver=$(ls kernel/lib/modules)

root=$work/initrd
mkdir -p "$root"/{bin,sbin,proc,sys,dev,run,tmp,usr/sbin,lib/modules/"$kver"/kernel}
for d in net/ipv4 net/ipv6 net/xfrm net/key crypto arch/x86/crypto lib drivers/net/veth.ko; do
    mkdir -p "$root/lib/modules/$kver/kernel/$(dirname $d)"
    cp -r "kernel/lib/modules/$kver/kernel/$d" "$root/lib/modules/$kver/kernel/$d"
done
cp "kernel/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$kver/"
depmod -b "$root" "$kver"
cp /usr/bin/busybox "$root/bin/busybox"
ln -s /bin/busybox "$root/sbin/modprobe"
# iproute2's ip (busybox's ip has no xfrm), with its shared libraries.
cp "$(command -v ip)" "$root/usr/sbin/ip"
for lib in $(ldd "$(command -v ip)" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
gcc -static -O2 -Wall -o "$root/bin/esptool" "$here/esptool.c"
if [ -f "$here/to-linux.txt" ]; then cp "$here/to-linux.txt" "$root/to-linux.txt"; fi

cat >"$root/init" <<'GUEST'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs run /run
for m in veth xfrm_algo xfrm_user esp4 esp6 gf128mul ghash-generic ctr gcm seqiv cryptd crypto_simd \
         aesni-intel ghash-clmulni-intel; do modprobe $m 2>/dev/null; done
IP=/usr/sbin/ip
$IP netns add a && $IP netns add b
$IP link add va netns a type veth peer name vb netns b
for ns in a b; do $IP -n $ns link set lo up; done
$IP -n a addr add 192.0.2.1/24 dev va; $IP -n b addr add 192.0.2.2/24 dev vb
$IP -n a addr add 2001:db8::1/64 dev va nodad; $IP -n b addr add 2001:db8::2/64 dev vb nodad
$IP -n a link set va up; $IP -n b link set vb up
# Static neighbours: no ARP/ND traffic races with the captured packets.
$IP -n a neigh add 192.0.2.2 lladdr 02:00:00:00:00:02 dev va
$IP -n b link set vb address 02:00:00:00:00:02
$IP -n a -6 neigh add 2001:db8::2 lladdr 02:00:00:00:00:02 dev va
# Inner addresses of the IPv6-in-IPv4 tunnel.
$IP -n a addr add 2001:db8:1::1/64 dev va nodad; $IP -n b addr add 2001:db8:1::2/64 dev vb nodad
$IP -n a -6 neigh add 2001:db8:1::2 lladdr 02:00:00:00:00:02 dev va

# runcase NAME SPI MODE KEY ICV_BITS OUTER_SRC OUTER_DST INNER_SRC INNER_DST [STATE_EXTRA [SEND_EXTRA]]
# Four datagrams per SA, one byte apart, so every ESP padding length (0..3) occurs.
runcase() {
    echo "CASE $1 spi=$2 mode=$3 key=$4 icv=$5 src=$6 dst=$7 isrc=$8 idst=$9 extra=${10:-none}"
    for ns in a b; do
        dir=out; [ $ns = b ] && dir=in
        $IP -n $ns xfrm state add src $6 dst $7 proto esp spi $2 reqid 7 mode $3 \
            aead 'rfc4106(gcm(aes))' $4 $5 ${10} || echo "CASEFAIL $1 state"
        # The selector names UDP by number: the initramfs has no /etc/protocols.
        $IP -n $ns xfrm policy add src $8 dst $9 proto 17 dir $dir \
            tmpl src $6 dst $7 proto esp reqid 7 mode $3 || echo "CASEFAIL $1 policy"
    done
    fam=4; case $9 in *:*) fam=6;; esac
    $IP netns exec b /bin/esptool recv $fam 5001 4 >/tmp/recv &
    r=$!
    $IP netns exec b /bin/esptool sniff vb $1 4 >/tmp/sniff &
    s=$!
    sleep 1
    for msg in 1 22 333 4444; do
        $IP netns exec a /bin/esptool send $8 $9 5001 "accelvm ESP capture $1: $msg" ${11} ||
            echo "CASEFAIL $1 send"
    done
    wait $s || echo "CASEFAIL $1 sniff"
    wait $r || echo "CASEFAIL $1 recv"
    cat /tmp/sniff
    sed "s/^RECV /RECV $1 /" /tmp/recv
    for ns in a b; do $IP -n $ns xfrm state flush; $IP -n $ns xfrm policy flush; done
}
K128=0x000102030405060708090a0b0c0d0e0fcafebabe
K192=0x000102030405060708090a0b0c0d0e0f1011121314151617f00dface
K256=0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fdeadbeef
V4="192.0.2.1 192.0.2.2 192.0.2.1 192.0.2.2"
V6="2001:db8::1 2001:db8::2 2001:db8::1 2001:db8::2"
runcase tunnel4 0x00001001 tunnel $K128 128 $V4
runcase tunnel4-icv8 0x00001002 tunnel $K256 64 $V4
runcase transport4 0x00001003 transport $K128 96 $V4
runcase tunnel6 0x00001004 tunnel $K256 128 $V6
runcase transport6 0x00001005 transport $K128 128 $V6
runcase tunnel6-aes192-icv12 0x00001006 tunnel $K192 96 $V6
runcase tunnel4-tfc 0x00001007 tunnel $K128 128 $V4 "tfcpad 120"
runcase transport4-options 0x00001008 transport $K256 128 $V4 "" ipopt
# IPv6 inside IPv4 (next header 41): the state's selector must not be tied to IPv4.
runcase tunnel6in4 0x0000100c tunnel $K128 128 192.0.2.1 192.0.2.2 2001:db8:1::1 2001:db8:1::2 \
    "flag af-unspec"
runcase tunnel4-esn 0x00001009 tunnel $K128 128 $V4 "flag esn replay-window 64"
# ESN across the 2^32 boundary (sequence numbers 2^32-2 .. 2^32+1) and with a high half of 7.
runcase tunnel6-esn-wrap 0x0000100a tunnel $K256 128 $V6 \
    "flag esn replay-window 64 replay-seq 0xfffffffd replay-oseq 0xfffffffd"
runcase transport4-esn-hi 0x0000100b transport $K128 64 $V4 \
    "flag esn replay-window 128 replay-seq-hi 7 replay-seq 16 replay-oseq-hi 7 replay-oseq 16"

# Our engine's packets into Linux: inbound SA and policy in b only, raw injection from a.
if [ -f /to-linux.txt ]; then
    grep '^CASE' /to-linux.txt | while read -r _ name spi mode key icv src dst isrc idst extra; do
        spi=${spi#spi=} mode=${mode#mode=} key=${key#key=} icv=${icv#icv=} src=${src#src=} dst=${dst#dst=}
        isrc=${isrc#isrc=} idst=${idst#idst=}
        extra=${extra#extra=}; [ "$extra" = none ] && extra=
        $IP -n b xfrm state add src $src dst $dst proto esp spi $spi reqid 9 mode $mode \
            aead 'rfc4106(gcm(aes))' $key $icv $extra || echo "CASEFAIL $name inject-state"
        $IP -n b xfrm policy add src $isrc dst $idst proto 17 dir in \
            tmpl src $src dst $dst proto esp reqid 9 mode $mode || echo "CASEFAIL $name inject-policy"
        fam=4; case $idst in *:*) fam=6;; esac
        n=$(grep -c "^INJECT $name " /to-linux.txt)
        $IP netns exec b /bin/esptool recv $fam 5002 $n >/tmp/recv &
        r=$!
        sleep 1
        grep "^INJECT $name " /to-linux.txt | while read -r _ _ hex; do
            $IP netns exec a /bin/esptool inject va $hex || echo "CASEFAIL $name inject"
        done
        wait $r || echo "CASEFAIL $name accept"
        sed "s/^RECV /ACCEPTED $name /" /tmp/recv
        $IP -n b xfrm state flush; $IP -n b xfrm policy flush
    done
fi
echo CAPTURE_DONE
poweroff -f
GUEST
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >initrd.img

timeout 600 qemu-system-x86_64 -M q35 -accel tcg -cpu max -m 768 -smp 1 -nographic -no-reboot \
    -kernel kernel/boot/vmlinuz-"$kver" -initrd initrd.img \
    -append "console=ttyS0 quiet panic=-1" </dev/null | tr -d '\r' |
    sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g' | tee serial.log
grep -q CAPTURE_DONE serial.log || { echo "capture VM did not finish" >&2; exit 1; }
if grep -q CASEFAIL serial.log; then grep CASEFAIL serial.log >&2; exit 1; fi
{
    echo "# ESP packets captured from Linux $kver xfrm by capture.sh (do not edit)."
    echo "# CASE lines give the SA; ESPCAP lines the outer IP packet; RECV the UDP payload Linux delivered."
    grep -E '^(CASE|ESPCAP|RECV) ' serial.log
} >"$out"
echo "wrote $out"
if grep -q '^ACCEPTED ' serial.log; then
    {
        echo "# UDP payloads Linux $kver delivered from our engine's ESP packets (to-linux.txt)."
        grep '^ACCEPTED ' serial.log
    } >"$accepted"
    echo "wrote $accepted"
fi
