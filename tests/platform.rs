//! Proof that the test platform works before the VMM exists: QEMU's own `microvm` machine boots the
//! guest image under KVM (inside the test host where this machine has no hardware virtualization)
//! and the guest init protocol (accelvm.cmd, accelvm.ip, ACCELVM_EXIT, interactive shell) holds.
//! Guest boots are slow under emulation, so each boot checks several things.

mod common;

use std::time::Duration;

use common::{
    QEMU_MICROVM_GUEST_FN, ScenarioOptions, ScenarioOutput, guest_cmd_arg, guest_kernel_version,
    run_scenario, run_scenario_with,
};

/// The guest: QEMU microvm, with a user-mode netdev (restrict=on) for an eth0 that needs no host
/// networking; `$1` is the kernel command line tail.
const GUEST_FN: &str = r#"
guest() {
    qemu_microvm_guest "$1" -netdev user,id=n0,restrict=on -device virtio-net-device,netdev=n0
}
"#;

/// Runs under the guest's init via accelvm.cmd: prints facts the test checks, then exits with 7.
const GUEST_COMMAND: &str = r#"echo hello
uname -r
cat /proc/cpuinfo | grep -c processor
dmesg | grep -q 'Hypervisor detected: KVM' && echo GUEST_HYPERVISOR=KVM
echo "GUEST_ETH0=$(ip -o -4 addr show dev eth0 | awk '{print $4}')"
echo "GUEST_MODULES=$(awk '{print $1}' /proc/modules | grep -E '^(virtio_mmio|virtio_net|gcm|af_alg)$' | sort | tr '\n' ,)"
/usr/sbin/ip xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x100 reqid 1 mode tunnel \
    aead 'rfc4106(gcm(aes))' 0x000102030405060708090a0b0c0d0e0f10111213 128 && echo GUEST_XFRM=ok
iperf3 --version >/dev/null && echo GUEST_IPERF3=ok
exit 7"#;

fn guest_boot_scenario() -> String {
    format!(
        r#"{QEMU_MICROVM_GUEST_FN}
{GUEST_FN}
echo "HOST_KVM=$([ -c /dev/kvm ] && echo yes || echo no)"
guest 'accelvm.ip=192.0.2.2/24 {cmd}'
echo "QEMU_STATUS=$?"
# Type into the shell only once it is up: bytes sent while the kernel boots get lost.
mkfifo shell.in
guest '' <shell.in >shell.out &
qemu_pid=$!
exec 3>shell.in
i=0
while ! grep -q 'built-in shell' shell.out && [ $i -lt 600 ]; do sleep 0.5; i=$((i + 1)); done
sleep 1
printf 'echo SHELL_$((40 + 2))\nexit\n' >&3
wait $qemu_pid
echo "QEMU_SHELL_STATUS=$?"
exec 3>&-
cat shell.out
"#,
        cmd = guest_cmd_arg(GUEST_COMMAND)
    )
}

fn assert_in_order(out: &ScenarioOutput, lines: &[&str]) {
    let mut last = None;
    for line in lines {
        let idx = out
            .line_index(line)
            .unwrap_or_else(|| panic!("no line {line:?}\n{}", out.dump()));
        assert!(
            last.is_none_or(|l| idx > l),
            "line {line:?} out of order\n{}",
            out.dump()
        );
        last = Some(idx);
    }
}

#[test]
fn microvm_boots_guest_image_under_kvm() {
    let opts = ScenarioOptions {
        timeout: Duration::from_secs(600),
        ..ScenarioOptions::default()
    };
    let out = run_scenario_with(&guest_boot_scenario(), &opts);
    out.assert_success();
    assert_eq!(out.marker("HOST_KVM="), "yes", "{}", out.dump());

    // First boot: accelvm.cmd ran after init started, its output and status came back, QEMU exited.
    let version = guest_kernel_version();
    assert_in_order(
        &out,
        &[
            "ACCELVM_INIT_START",
            "hello",
            &version,
            "2",
            "ACCELVM_EXIT=7",
        ],
    );
    assert_eq!(out.marker("ACCELVM_EXIT="), "7", "{}", out.dump());
    assert_eq!(out.marker("GUEST_HYPERVISOR="), "KVM", "{}", out.dump());
    assert_eq!(out.marker("GUEST_ETH0="), "192.0.2.2/24", "{}", out.dump());
    assert_eq!(
        out.marker("GUEST_MODULES="),
        "af_alg,gcm,virtio_mmio,virtio_net,",
        "{}",
        out.dump()
    );
    // Tools later network/IPsec tests rely on: iproute2's xfrm with on-demand crypto modules, iperf3.
    assert_eq!(out.marker("GUEST_XFRM="), "ok", "{}", out.dump());
    assert_eq!(out.marker("GUEST_IPERF3="), "ok", "{}", out.dump());
    assert!(
        out.markers("accelvm-init:").is_empty(),
        "guest init reported a problem\n{}",
        out.dump()
    );
    assert_eq!(out.marker("QEMU_STATUS="), "0", "{}", out.dump());

    // Second boot: no accelvm.cmd gives a shell on the console; leaving it powers the guest off.
    assert!(out.has_line("SHELL_42"), "{}", out.dump());
    assert_eq!(out.marker("QEMU_SHELL_STATUS="), "0", "{}", out.dump());
    assert_eq!(out.markers("ACCELVM_INIT_START").len(), 2, "{}", out.dump());
}

#[test]
fn scenario_status_and_output_come_back() {
    // The harness itself: a failing scenario's status and both output streams reach the test.
    let out = run_scenario("echo to-stdout; echo to-stderr >&2; exit 3");
    assert_eq!(out.status, 3, "{}", out.dump());
    assert!(out.has_line("to-stdout"), "{}", out.dump());
    assert!(out.has_line("to-stderr"), "{}", out.dump());
}

/// What later network and IPsec tests need from the test host image itself: /dev/net/tun, bridge
/// and veth, `ip xfrm` with rfc4106(gcm(aes)) (its modules load on demand), iperf3. In direct mode
/// these are the machine's own tools, not the platform's, so the check applies to the test host.
#[test]
fn testhost_image_has_network_tools() {
    if common::mode() != common::Mode::Testhost {
        eprintln!("direct mode: the test host image is not used; nothing to check");
        return;
    }
    let out = run_scenario(
        r#"set -e
[ -c /dev/net/tun ] && echo TUN=ok
/usr/sbin/ip link add br-t type bridge
/usr/sbin/ip link add veth-a type veth peer name veth-b
/usr/sbin/ip link set veth-a master br-t
/usr/sbin/ip -o link show veth-a | grep -q 'master br-t' && echo BRIDGE_VETH=ok
/usr/sbin/ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 reqid 1 mode tunnel \
    aead 'rfc4106(gcm(aes))' 0x000102030405060708090a0b0c0d0e0f10111213 128
/usr/sbin/ip xfrm state list | grep -q 'rfc4106(gcm(aes))' && echo XFRM=ok
iperf3 --version >/dev/null && echo IPERF3=ok
"#,
    );
    out.assert_success();
    for tool in ["TUN=", "BRIDGE_VETH=", "XFRM=", "IPERF3="] {
        assert_eq!(out.marker(tool), "ok", "{}", out.dump());
    }
}
