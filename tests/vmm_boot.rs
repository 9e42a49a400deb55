//! accelvm boots the real guest image under KVM (inside the test host where this machine has
//! no hardware virtualization): guest commands with their output and exit status, 1 and 2
//! vCPUs, bzImage and PVH vmlinux, the ACPI tables the guest sees, guest poweroff and reboot
//! from an interactive shell, SIGTERM, and no thread or fd left behind. All guests boot in one
//! scenario because each boot is slow under emulation; every boot checks several things.

mod common;

use common::{ScenarioOutput, guest_kernel_version, run_scenario};

/// The guest command of the first boot: facts the test checks, then status 7.
const FACTS_CMD: &str = r#"echo hello-$((6 * 7))
uname -r
echo "NPROC=$(nproc)"
echo "ACPI_TABLES=$(ls /sys/firmware/acpi/tables | grep -E '^(APIC|DSDT|FACP)$' | tr '\n' ,)"
echo "PNP_IDS=$(cat /sys/bus/pnp/devices/*/id | tr '\n' ,)"
echo "TTYS0_IRQ=$(grep -c 'IO-APIC.*ttyS0' /proc/interrupts)"
echo "MEM_MB=$(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo)"
exit 7"#;

/// Interactive guest: waits for the busybox shell, types `$2` into it, and prints accelvm's
/// status as `$1_STATUS=`; stdin is a pipe, so accelvm feeds it to the console.
const INTERACTIVE_FN: &str = r#"
interactive() {
    rm -f shell.in shell.out
    mkfifo shell.in
    accelvm run --kernel "$ACCELVM_GUEST_KERNEL" --initrd "$ACCELVM_GUEST_INITRD" <shell.in >shell.out 2>&1 &
    pid=$!
    exec 3>shell.in
    i=0
    while ! grep -q 'built-in shell' shell.out && [ $i -lt 600 ]; do sleep 0.5; i=$((i + 1)); done
    sleep 1
    printf "$2" >&3
    wait $pid
    echo "$1_STATUS=$?"
    exec 3>&-
    sed "s/^/$1: /" shell.out
}
"#;

/// The guest command of the second boot: two vCPUs and the virtio-rng device found through
/// the DSDT (`LNRO0005`), identified and acknowledged over virtio-mmio.
const DEVICES_CMD: &str = r#"echo "NPROC2=$(nproc)"
echo "CPU1_TIMER=$(awk '/LOC:/ { print ($3 > 0) }' /proc/interrupts)"
echo "ACPI_VIRTIO=$(ls /sys/bus/acpi/devices | grep -c '^LNRO0005:')"
v=/sys/bus/virtio/devices/virtio0
echo "VIRTIO_DEVICE=$(cat $v/device)"
echo "VIRTIO_VENDOR=$(cat $v/vendor)"
echo "VIRTIO_STATUS=$(cat $v/status)"
echo "VIRTIO_VIA=$(basename $(readlink -f $v/..))"
grep -o 'virtio_mmio.device=[^ ]*' /proc/cmdline | sed 's/^/CMDLINE_/'"#;

fn scenario() -> String {
    let facts = FACTS_CMD.replace('\'', r"'\''");
    let devices = DEVICES_CMD.replace('\'', r"'\''");
    format!(
        r#"{INTERACTIVE_FN}
export ACCELVM_CHECK_LEAKS=1
echo "=== boot 1: bzImage, 1 vCPU, guest command"
accelvm run --kernel "$ACCELVM_GUEST_KERNEL" --initrd "$ACCELVM_GUEST_INITRD" --memory 256 --guest-cmd '{facts}'
echo "BOOT1_STATUS=$?"
echo "=== boot 2: bzImage, 2 vCPUs, a virtio-mmio device"
accelvm run --kernel "$ACCELVM_GUEST_KERNEL" --initrd "$ACCELVM_GUEST_INITRD" --cpus 2 --rng --guest-cmd '{devices}'
echo "BOOT2_STATUS=$?"
echo "=== boot 3: ELF vmlinux through PVH, 2 vCPUs"
accelvm run --kernel "$ACCELVM_GUEST_VMLINUX" --initrd "$ACCELVM_GUEST_INITRD" --cpus 2 --guest-cmd 'echo "PVH_NPROC=$(nproc)"; exit 0'
echo "BOOT3_STATUS=$?"
echo "=== boot 4/5: interactive shell, poweroff and reboot"
interactive POWEROFF 'echo TYPED_$((40 + 3))\nx=012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789; echo LEN_${{#x}}\npoweroff -f\n'
interactive REBOOT 'echo TYPED_$((40 + 4))\nreboot -f\n'
echo "=== boot 6: SIGTERM while the guest command runs"
accelvm run --kernel "$ACCELVM_GUEST_KERNEL" --initrd "$ACCELVM_GUEST_INITRD" --guest-cmd 'echo SLEEPING; sleep 600' >sleep.out 2>&1 &
pid=$!
i=0
while ! grep -q SLEEPING sleep.out && [ $i -lt 600 ]; do sleep 0.5; i=$((i + 1)); done
kill -TERM $pid
wait $pid
echo "SIGTERM_STATUS=$?"
sed 's/^/SIGTERM: /' sleep.out
"#
    )
}

fn leak_lines(out: &ScenarioOutput) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split("ACCELVM_LEAK_CHECK ").nth(1))
        .map(str::to_string)
        .collect()
}

#[test]
fn accelvm_boots_the_guest_image() {
    let out = run_scenario(&scenario());
    out.assert_success();
    let dump = out.dump();

    // Boot 1: the command ran, its output came back in order, its status is accelvm's, and
    // the marker line itself is consumed by accelvm.
    assert_eq!(out.marker("BOOT1_STATUS="), "7", "{dump}");
    let start = out.line_index("ACCELVM_INIT_START").expect(&dump);
    let hello = out.line_index("hello-42").expect(&dump);
    let version = out.line_index(&guest_kernel_version()).expect(&dump);
    assert!(start < hello && hello < version, "{dump}");
    assert_eq!(out.marker("NPROC="), "1", "{dump}");
    assert!(
        out.markers("ACCELVM_EXIT=").is_empty(),
        "marker line leaked\n{dump}"
    );
    // The guest found the ACPI tables and the UART described in the DSDT, whose interrupt
    // arrives through the IOAPIC.
    assert_eq!(out.marker("ACPI_TABLES="), "APIC,DSDT,FACP,", "{dump}");
    assert!(out.marker("PNP_IDS=").contains("PNP0501"), "{dump}");
    assert_eq!(out.marker("TTYS0_IRQ="), "1", "{dump}");
    let mem: u32 = out.marker("MEM_MB=").parse().expect(&dump);
    assert!(
        (150..=256).contains(&mem),
        "guest sees {mem} MiB of 256\n{dump}"
    );

    // Boots 2 and 3: two vCPUs, both running (the second takes timer interrupts).
    assert_eq!(out.marker("BOOT2_STATUS="), "0", "{dump}");
    assert_eq!(out.marker("NPROC2="), "2", "{dump}");
    assert_eq!(out.marker("CPU1_TIMER="), "1", "{dump}");
    // The virtio-rng device: found through ACPI, probed by virtio_mmio (ID 4, our vendor ID),
    // acknowledged by the virtio core (no virtio_rng driver in the image); also on the cmdline.
    assert_eq!(out.marker("ACPI_VIRTIO="), "1", "{dump}");
    assert_eq!(out.marker("VIRTIO_DEVICE="), "0x0004", "{dump}");
    assert_eq!(out.marker("VIRTIO_VENDOR="), "0x41564d", "{dump}");
    assert_eq!(out.marker("VIRTIO_STATUS="), "0x00000001", "{dump}");
    assert_eq!(out.marker("VIRTIO_VIA="), "LNRO0005:00", "{dump}");
    assert_eq!(
        out.marker("CMDLINE_virtio_mmio.device="),
        "4K@0xd0000000:5",
        "{dump}"
    );
    assert_eq!(out.marker("BOOT3_STATUS="), "0", "{dump}");
    assert_eq!(out.marker("PVH_NPROC="), "2", "{dump}");

    // Boots 4 and 5: typed input reached the shell; poweroff and reboot end accelvm with 0.
    assert_eq!(out.marker("POWEROFF_STATUS="), "0", "{dump}");
    assert!(out.has_line("POWEROFF: TYPED_43"), "{dump}");
    // A line longer than the UART's 64-byte FIFO arrives whole.
    assert!(out.has_line("POWEROFF: LEN_120"), "{dump}");
    assert_eq!(out.marker("REBOOT_STATUS="), "0", "{dump}");
    assert!(out.has_line("REBOOT: TYPED_44"), "{dump}");

    // Boot 6: SIGTERM stops the VM; with a guest command and no status: 128 + SIGTERM.
    assert_eq!(out.marker("SIGTERM_STATUS="), "143", "{dump}");

    // Every accelvm process ended with only its main thread and the fds it started with.
    let leaks = leak_lines(&out);
    assert_eq!(leaks.len(), 6, "expected one leak report per boot\n{dump}");
    for report in leaks {
        let fields: Vec<(&str, &str)> = report
            .split_whitespace()
            .filter_map(|f| f.split_once('='))
            .collect();
        let get = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        assert_eq!(get("threads"), Some("1"), "{report}\n{dump}");
        assert_eq!(get("fds_before"), get("fds_after"), "{report}\n{dump}");
    }
}
