//! IPsec end to end against ordinary Linux xfrm, with a guest under KVM (inside the test host
//! where this machine has no hardware virtualization). The host side of each scenario is a
//! network namespace it creates, running Linux's software ESP with matching SAs in tunnel mode
//! over a TAP into the guest; it is deleted on exit whatever happened. Addresses: outer
//! 192.0.2.1 (peer) / 192.0.2.2 (guest), inner 198.51.100.1 (peer) / 198.51.100.2 (guest).
//!
//! Both guest paths see the same peer and the same checks: pings and a 1 MB TCP transfer through
//! the tunnel in both directions (echoed, compared byte for byte), device statistics, a tampered
//! and a replayed ESP packet injected from the peer's side of the wire (dropped and counted), and
//! SA removal stopping traffic. One guest boot per path: emulated boots are slow.

mod common;

use common::{ScenarioOutput, run_scenario};

/// Keys (AES-256 + 4-byte salt, as `ip xfrm ... aead` takes them), one per direction.
const K_PEER_TO_GUEST: &str =
    "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3";
const K_GUEST_TO_PEER: &str =
    "0x202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3fb0b1b2b3";

/// The peer: namespace, TAP, software xfrm, the traffic, the injections. `@GUEST@` is the
/// guest's script, served to it over plain TCP (the kernel command line is too short for it).
const PEER: &str = r#"IP=/usr/sbin/ip
[ -x "$IP" ] || IP=/sbin/ip
NS="avmipsec-$$"
TAP=avmesp0
GMAC=02:00:00:00:00:02
BASE_CMDLINE="console=ttyS0 reboot=acpi panic=-1 quiet 8250.nr_uarts=1 accelvm.ip=192.0.2.2/24"
VM=""
TAIL=""
cleanup() {
    [ -n "$VM" ] && kill "$VM" 2>/dev/null
    [ -n "$TAIL" ] && kill "$TAIL" 2>/dev/null
    $IP netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null
    $IP netns del "$NS" 2>/dev/null
    true
}
trap cleanup EXIT INT TERM
nsx() { $IP netns exec "$NS" "$@"; }
wait_line() {
    i=0
    while ! grep -q "$2" "$1" 2>/dev/null && [ $i -lt 900 ]; do sleep 0.2; i=$((i + 1)); done
    grep -q "$2" "$1"
}
tcp_send() { # tcp_send ADDR PORT TEXT: retried until the listener is there
    i=0
    until echo "$3" | nsx busybox nc "$1" "$2" >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -ge 60 ] && return 1; sleep 1
    done
}
$IP netns add "$NS" || { echo "NETNS_SETUP_FAILED"; exit 1; }
nsx $IP link set lo up
nsx $IP tuntap add dev $TAP mode tap
nsx $IP addr add 192.0.2.1/24 dev $TAP
nsx $IP link set $TAP up
nsx $IP addr add 198.51.100.1/32 dev lo
xs() { nsx $IP xfrm "$@" || echo "PEER_XFRM_FAILED: $*"; }
xs state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1001 reqid 1 mode tunnel replay-window 64 \
    aead "rfc4106(gcm(aes))" @K_PG@ 128
xs state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x2002 reqid 1 mode tunnel replay-window 64 \
    aead "rfc4106(gcm(aes))" @K_GP@ 128
xs policy add src 198.51.100.1/32 dst 198.51.100.2/32 dir out \
    tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel
xs policy add src 198.51.100.2/32 dst 198.51.100.1/32 dir in \
    tmpl src 192.0.2.2 dst 192.0.2.1 proto esp reqid 1 mode tunnel

cat >guest.sh <<'GUEST_EOF'
@GUEST@
GUEST_EOF
nsx busybox nc -l -p 8000 <guest.sh >/dev/null &
head -c 1000000 /dev/urandom >h2g.bin
echo "HOST_H2G_MD5=$(md5sum <h2g.bin | cut -d' ' -f1)"
rm -f hold; mkfifo hold; exec 9<>hold
nsx busybox nc -l -p 5001 <&9 >echo.bin &
ECHO_RX=$!
nsx busybox nc -l -p 5002 <h2g.bin >/dev/null &

nsx accelvm run --memory 384 --kernel "$ACCELVM_GUEST_KERNEL" --initrd "$ACCELVM_GUEST_INITRD" \
    --cmdline "$BASE_CMDLINE" --net "tap=$TAP,mac=$GMAC" --accel --guest-cmd '
rm -f /tmp/h; mkfifo /tmp/h; exec 9<>/tmp/h; i=0
while [ $i -lt 90 ]; do nc 192.0.2.1 8000 <&9 >/tmp/s.sh && [ -s /tmp/s.sh ] && break; sleep 1; i=$((i + 1)); done
exec sh /tmp/s.sh' >G.out 2>&1 &
VM=$!
# The guest's console, live (the emulated run is long; progress shows on the test host console).
rm -f gpipe; mkfifo gpipe
awk '{ print "guest: " $0; fflush() }' <gpipe &
AWK=$!
tail -f G.out >gpipe &
TAIL=$!
i=0; while ! nsx ping -c 1 -W 1 192.0.2.2 >/dev/null 2>&1 && [ $i -lt 150 ]; do i=$((i + 1)); done
nsx $IP route add 198.51.100.2/32 via 192.0.2.2 src 198.51.100.1

# Guest downloads h2g.bin through the tunnel and sends it back (bounded: a broken tunnel must
# fail the test with the guest's output, not hang it).
( sleep 300; kill $ECHO_RX 2>/dev/null ) &
WATCHDOG=$!
wait $ECHO_RX
kill $WATCHDOG 2>/dev/null
cmp h2g.bin echo.bin && echo ECHO_MATCH
echo "ECHO_BYTES=$(wc -c <echo.bin)"
nsx ping -c 3 -W 2 198.51.100.2 >/dev/null && echo HOST_TUNNEL_PING_OK

# Tampered packet: the peer's next ESP frame goes to a wrong MAC (the guest's IP layer drops it),
# esp-inject re-sends it to the guest with one ciphertext byte flipped: a sequence number the
# guest has not seen, so the ICV check, not the anti-replay check, must reject it.
nsx $IP neigh replace 192.0.2.2 lladdr 02:00:00:00:00:99 dev $TAP nud permanent
nsx accel-tool esp-inject --ifname $TAP --dst 192.0.2.2 --mac $GMAC --mode tamper --delay-ms 0 \
    >inject.out 2>&1 &
INJ=$!
sleep 0.5
nsx ping -c 1 -W 3 198.51.100.2 >/dev/null 2>&1 && echo HOST_PING_DURING_TAMPER=ok ||
    echo HOST_PING_DURING_TAMPER=fail
wait $INJ
nsx $IP neigh replace 192.0.2.2 lladdr $GMAC dev $TAP nud permanent
# Replayed packet: the next ESP frame again, three times, after the original was delivered.
nsx accel-tool esp-inject --ifname $TAP --dst 192.0.2.2 --mac $GMAC --mode replay --copies 3 \
    --delay-ms 500 >>inject.out 2>&1 &
INJ=$!
sleep 0.5
nsx ping -c 1 -W 3 198.51.100.2 >/dev/null 2>&1 && echo HOST_PING_DURING_REPLAY=ok ||
    echo HOST_PING_DURING_REPLAY=fail
wait $INJ
cat inject.out
sleep 1
# Through the tunnel: the guest reports its counters, then removes its SAs.
tcp_send 198.51.100.2 7000 go && echo HOST_GO_SENT
wait_line G.out GUEST_SA_REMOVED
nsx ping -c 2 -W 1 198.51.100.2 >/dev/null 2>&1 && echo HOST_PING_AFTER_SA_DEL=ok ||
    echo HOST_PING_AFTER_SA_DEL=fail
# Plain TCP on the outer addresses (no policy covers them): the guest may finish.
tcp_send 192.0.2.2 7001 done
nsx $IP -s xfrm state | sed 's/^/peer xfrm: /'
( sleep 240; kill $VM 2>/dev/null ) &
WATCHDOG=$!
wait $VM
echo "VM_STATUS=$?"
kill $WATCHDOG 2>/dev/null
VM=""
sleep 1
kill $TAIL 2>/dev/null
TAIL=""
wait $AWK
"#;

/// Guest side, shared by both paths; `@SETUP@`, `@REPORT@` and `@REMOVE@` are per path.
const GUEST: &str = r#"IP=/usr/sbin/ip
# A driver statistic (0 without the driver).
st() { accel-tool stats 2>/dev/null | awk -v k="$1" -v f="$2" '$1 == k { v = $f } END { print v + 0 }'; }
@SETUP@
enc0=$(st encrypt 3); dec0=$(st decrypt 3); auth0=$(st api_ops 6)
ee0=$(st esp_encap 3); ed0=$(st esp_decap 3)
i=0; while ! ping -c 1 -W 1 198.51.100.1 >/dev/null 2>&1 && [ $i -lt 60 ]; do i=$((i + 1)); done
ping -c 3 -W 2 198.51.100.1 >/dev/null && echo GUEST_TUNNEL_PING_OK
rm -f /tmp/hold; mkfifo /tmp/hold; exec 8<>/tmp/hold
nc 198.51.100.1 5002 <&8 >/tmp/h2g.bin
echo "GUEST_H2G_BYTES=$(wc -c </tmp/h2g.bin)"
echo "GUEST_H2G_MD5=$(md5sum </tmp/h2g.bin | cut -d' ' -f1)"
nc 198.51.100.1 5001 </tmp/h2g.bin >/dev/null && echo GUEST_ECHO_SENT
timeout 180 nc -l -p 7000 >/tmp/go
echo "GUEST_GO=$(cat /tmp/go)"
sleep 0.5
echo "GUEST_DEV_ENC_DELTA=$(( $(st encrypt 3) - enc0 ))"
echo "GUEST_DEV_DEC_DELTA=$(( $(st decrypt 3) - dec0 ))"
echo "GUEST_DEV_AUTH_DELTA=$(( $(st api_ops 6) - auth0 ))"
echo "GUEST_DEV_ESP_ENCAP_DELTA=$(( $(st esp_encap 3) - ee0 ))"
echo "GUEST_DEV_ESP_DECAP_DELTA=$(( $(st esp_decap 3) - ed0 ))"
@REPORT@
enc1=$(st encrypt 3); dec1=$(st decrypt 3); ee1=$(st esp_encap 3); ed1=$(st esp_decap 3)
@REMOVE@
ping -c 2 -W 1 198.51.100.1 >/dev/null 2>&1 && echo GUEST_PING_AFTER_SA_DEL=ok ||
    echo GUEST_PING_AFTER_SA_DEL=fail
echo GUEST_SA_REMOVED
timeout 120 nc -l -p 7001 >/dev/null
echo "GUEST_DEV_OK_OPS_AFTER_DEL=$(( $(st encrypt 3) - enc1 + $(st decrypt 3) - dec1 + $(st esp_encap 3) - ee1 + $(st esp_decap 3) - ed1 ))"
@AFTER@
accel-tool stats
exit 0
"#;

/// Look-aside: the kernel's xfrm with AEAD rfc4106(gcm(aes)), which resolves to virtio_accel's
/// implementation by priority.
const LOOKASIDE_SETUP: &str = r#"modprobe virtio_accel || echo GUEST_NO_DRIVER
x() { $IP xfrm "$@" || echo "GUEST_XFRM_CMD_FAILED: $*"; }
$IP addr add 198.51.100.2/32 dev lo
x state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1001 reqid 1 mode tunnel replay-window 64 aead "rfc4106(gcm(aes))" @K_PG@ 128
x state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x2002 reqid 1 mode tunnel replay-window 64 aead "rfc4106(gcm(aes))" @K_GP@ 128
x policy add src 198.51.100.2/32 dst 198.51.100.1/32 dir out tmpl src 192.0.2.2 dst 192.0.2.1 proto esp reqid 1 mode tunnel
x policy add src 198.51.100.1/32 dst 198.51.100.2/32 dir in tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel
$IP route add 198.51.100.1/32 via 192.0.2.1 src 198.51.100.2
accel-tool info | awk '$3 == "rfc4106(gcm(aes))" { print "GUEST_RFC4106_DRIVER=" $4; print "GUEST_RFC4106_REFCNT=" $10 }'
awk '/^name/ { n = $3 } /^driver/ { d = $3 } /^priority/ && n == "rfc4106(gcm(aes))" && $3 > m { m = $3; b = d }
    END { print "GUEST_RFC4106_BEST=" b " " m }' /proc/crypto"#;

/// Baseline: the same xfrm configuration with virtio_accel not loaded (the kernel's AES-NI
/// rfc4106). Proves the peer, the traffic checks and the injections on their own.
fn software_setup() -> String {
    LOOKASIDE_SETUP.replacen("modprobe virtio_accel || echo GUEST_NO_DRIVER\n", "", 1)
}

const LOOKASIDE_REPORT: &str = r#"$IP -s xfrm state get src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1001 |
    awk '$1 == "replay-window" && $3 == "replay" { print "GUEST_XFRM_REPLAY=" $4; print "GUEST_XFRM_ICV_FAILED=" $6 }'
awk '{ print "GUEST_XFRMSTAT_" $1 "=" $2 }' /proc/net/xfrm_stat | grep -E 'InStateProtoError|InStateSeqError'"#;

const LOOKASIDE_REMOVE: &str = r#"$IP xfrm state flush
echo "GUEST_XFRM_STATES_LEFT=$($IP xfrm state | grep -c '^src')""#;

/// Full offload: accel-tool gateway between a TUN and the raw ESP sockets.
const OFFLOAD_SETUP: &str = r#"modprobe virtio_accel || echo GUEST_NO_DRIVER
modprobe tun || echo GUEST_NO_TUN
$IP tuntap add dev tun0 mode tun
$IP addr add 198.51.100.2/32 dev tun0
$IP link set tun0 mtu 1400 up
$IP route add 198.51.100.1/32 dev tun0 src 198.51.100.2
accel-tool gateway --tun tun0 --local 192.0.2.2 --remote 192.0.2.1 --spi-out 0x2002 --spi-in 0x1001 --key-out @K_GP@ --key-in @K_PG@ --stats-file /tmp/gw.stats >/tmp/gw.out 2>&1 &
GW=$!
i=0; while [ ! -s /tmp/gw.stats ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
grep -q GATEWAY_READY /tmp/gw.out && echo GUEST_GATEWAY_READY || cat /tmp/gw.out"#;

const OFFLOAD_REPORT: &str = r#"cat /tmp/gw.stats"#;

const OFFLOAD_REMOVE: &str = r#"kill -USR1 $GW
i=0; while ! grep -q GW_SAS_REMOVED=1 /tmp/gw.stats && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done"#;

const OFFLOAD_AFTER: &str = r#"sed 's/^GW_/AFTER_GW_/' /tmp/gw.stats
kill $GW; wait $GW; echo "GUEST_GATEWAY_STATUS=$?""#;

fn scenario(setup: &str, report: &str, remove: &str, after: &str) -> ScenarioOutput {
    let guest = GUEST
        .replace("@SETUP@", setup)
        .replace("@REPORT@", report)
        .replace("@REMOVE@", remove)
        .replace("@AFTER@", after);
    let script = PEER
        .replace("@GUEST@", &guest)
        .replace("@K_PG@", K_PEER_TO_GUEST)
        .replace("@K_GP@", K_GUEST_TO_PEER);
    let out = run_scenario(&script);
    out.assert_success();
    assert!(
        !out.has_line("NETNS_SETUP_FAILED"),
        "cannot create a network namespace\n{}",
        out.dump()
    );
    out
}

fn number(out: &ScenarioOutput, prefix: &str) -> u64 {
    out.marker(prefix)
        .parse()
        .unwrap_or_else(|_| panic!("{prefix} is not a number\n{}", out.dump()))
}

/// What both paths must show: traffic through the tunnel both ways, byte for byte, the
/// injected packets dropped, and no traffic once the guest's SAs are gone.
fn assert_tunnel(out: &ScenarioOutput) {
    let dump = out.dump();
    assert!(
        !dump.contains("PEER_XFRM_FAILED") && !dump.contains("GUEST_XFRM_CMD_FAILED"),
        "{dump}"
    );
    for line in [
        "guest: GUEST_TUNNEL_PING_OK",
        "guest: GUEST_H2G_BYTES=1000000",
        "guest: GUEST_ECHO_SENT",
        "ECHO_BYTES=1000000",
        "ECHO_MATCH",
        "HOST_TUNNEL_PING_OK",
        // The tampered echo request never got an answer; the replay did not disturb the SA.
        "HOST_PING_DURING_TAMPER=fail",
        "HOST_PING_DURING_REPLAY=ok",
        "HOST_GO_SENT",
        "guest: GUEST_GO=go",
        "guest: GUEST_PING_AFTER_SA_DEL=fail",
        "HOST_PING_AFTER_SA_DEL=fail",
        "VM_STATUS=0",
    ] {
        assert!(out.has_line(line), "missing {line:?}\n{dump}");
    }
    assert_eq!(
        out.marker("guest: GUEST_H2G_MD5="),
        out.marker("HOST_H2G_MD5="),
        "{dump}"
    );
    assert!(
        dump.contains("INJECT_SENT mode=tamper") && dump.contains("INJECT_SENT mode=replay"),
        "{dump}"
    );
    // After SA removal not one operation succeeded on the device.
    assert_eq!(
        number(out, "guest: GUEST_DEV_OK_OPS_AFTER_DEL="),
        0,
        "{dump}"
    );
}

#[test]
fn software_kernel_esp_baseline_interoperates_and_drops_injected_packets() {
    let out = scenario(&software_setup(), LOOKASIDE_REPORT, LOOKASIDE_REMOVE, "");
    let dump = out.dump();
    assert_tunnel(&out);
    assert!(
        !out.marker("guest: GUEST_RFC4106_BEST=")
            .starts_with("virtio_accel"),
        "{dump}"
    );
    // xfrm's own counters: the tampered packet failed the ICV check, the three copies of
    // the replayed one hit the replay window.
    assert_eq!(number(&out, "guest: GUEST_XFRM_ICV_FAILED="), 1, "{dump}");
    assert_eq!(number(&out, "guest: GUEST_XFRM_REPLAY="), 3, "{dump}");
    assert_eq!(out.marker("guest: GUEST_XFRM_STATES_LEFT="), "0", "{dump}");
}

#[test]
fn lookaside_kernel_esp_uses_the_device_and_interoperates_with_linux() {
    let out = scenario(LOOKASIDE_SETUP, LOOKASIDE_REPORT, LOOKASIDE_REMOVE, "");
    let dump = out.dump();
    assert_tunnel(&out);
    // xfrm took virtio-accel's rfc4106 (the highest priority) for both SAs.
    assert!(
        out.marker("guest: GUEST_RFC4106_BEST=")
            .starts_with("virtio_accel"),
        "{dump}"
    );
    assert!(number(&out, "guest: GUEST_RFC4106_REFCNT=") >= 3, "{dump}");
    // 1 MB each way in ~1.4 KB segments plus the ACKs: the device encrypted and decrypted
    // every ESP packet.
    let enc = number(&out, "guest: GUEST_DEV_ENC_DELTA=");
    let dec = number(&out, "guest: GUEST_DEV_DEC_DELTA=");
    assert!(enc >= 700 && dec >= 700, "enc {enc} dec {dec}\n{dump}");
    // The tampered packet reached the device and failed its ICV check there; the replayed
    // ones were stopped by xfrm's replay window before any crypto.
    assert_eq!(number(&out, "guest: GUEST_DEV_AUTH_DELTA="), 1, "{dump}");
    assert_eq!(number(&out, "guest: GUEST_XFRM_ICV_FAILED="), 1, "{dump}");
    assert_eq!(number(&out, "guest: GUEST_XFRM_REPLAY="), 3, "{dump}");
    assert_eq!(out.marker("guest: GUEST_XFRM_STATES_LEFT="), "0", "{dump}");
}

#[test]
fn full_offload_gateway_does_esp_on_the_device_and_interoperates_with_linux() {
    let out = scenario(OFFLOAD_SETUP, OFFLOAD_REPORT, OFFLOAD_REMOVE, OFFLOAD_AFTER);
    let dump = out.dump();
    assert_tunnel(&out);
    assert!(out.has_line("guest: GUEST_GATEWAY_READY"), "{dump}");
    // Every ESP packet was built and checked by the device (its ESP ops, not the crypto ones).
    let encap = number(&out, "guest: GW_ENCAP_OK=");
    let decap = number(&out, "guest: GW_DECAP_OK=");
    assert!(
        encap >= 700 && decap >= 700,
        "encap {encap} decap {decap}\n{dump}"
    );
    // The driver's counters agree (the snapshot before the transfer may miss the first pings).
    assert!(
        number(&out, "guest: GUEST_DEV_ESP_ENCAP_DELTA=") >= 700,
        "{dump}"
    );
    assert!(
        number(&out, "guest: GUEST_DEV_ESP_DECAP_DELTA=") >= 700,
        "{dump}"
    );
    assert_eq!(number(&out, "guest: GUEST_DEV_ENC_DELTA="), 0, "{dump}");
    assert_eq!(number(&out, "guest: GW_SA_OUT_PACKETS="), encap, "{dump}");
    // The device rejected the tampered packet on its ICV and the three copies of the
    // replayed one on its anti-replay window, and counted both per SA.
    assert_eq!(number(&out, "guest: GW_AUTH_FAILED="), 1, "{dump}");
    assert_eq!(number(&out, "guest: GW_REPLAY="), 3, "{dump}");
    assert_eq!(number(&out, "guest: GW_SA_IN_AUTH_FAILURES="), 1, "{dump}");
    assert_eq!(number(&out, "guest: GW_SA_IN_REPLAY_DROPS="), 3, "{dump}");
    assert_eq!(number(&out, "guest: GW_SEND_ERRORS="), 0, "{dump}");
    // After SIGUSR1 the SAs are gone and what arrived was refused.
    assert_eq!(number(&out, "guest: AFTER_GW_SAS_REMOVED="), 1, "{dump}");
    assert_eq!(out.marker("guest: GUEST_GATEWAY_STATUS="), "0", "{dump}");
}
