#!/usr/bin/env bash
# Boots the default test guest with accelvm and gives you its shell.
# Builds the images and the release binary on first use. Where this machine has no hardware
# virtualization (or /dev/kvm is the software-only kvm_pvm), the guest runs inside the nested
# test host (images/testhost), which provides a real KVM under QEMU's TCG.
# Extra arguments are passed to `accelvm run` (e.g. ./boot.sh --cpus 2 --accel).
set -euo pipefail
cd "$(dirname "$0")"

say() { printf 'boot.sh: %s\n' "$*" >&2; }

if [ ! -f images/out/vmlinuz ] || [ ! -f images/out/initrd.img ] || [ ! -f images/out/testhost-initrd.img ]; then
  say "building the guest and test-host images (first use)"
  ./images/build.sh
fi
say "building accelvm (release)"
cargo build --release --quiet -p accelvm

hw_virt() {
  grep -qwE 'vmx|svm' /proc/cpuinfo && [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]
}

mode=${ACCELVM_TEST_MODE:-}
if [ -z "$mode" ]; then
  if hw_virt; then mode=direct; else mode=testhost; fi
fi
case "$mode" in
  direct)
    exec target/release/accelvm run "$@"
    ;;
  testhost)
    say "no hardware virtualization here: booting the guest inside the nested test host (slower)"
    exec ./images/testhost -- accelvm run --kernel /guest/vmlinuz --initrd /guest/initrd.img "$@"
    ;;
  *)
    say "ACCELVM_TEST_MODE must be 'direct' or 'testhost', not '$mode'"
    exit 2
    ;;
esac
