#!/usr/bin/env bash
# The one test command (README, .ci/run): installs missing system packages, builds the test images
# and the release binaries, then runs format, lint and the whole test suite (release, so the test
# host runs the same binaries the tests were built with). Works on a fresh Debian 12 with Rust.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# make, gcc, libelf1, libssl3: out-of-tree guest modules against images/out/kernel-build.
APT_PACKAGES=(qemu-system-x86 busybox-static cpio lz4 xz-utils kmod iproute2 iperf3 gzip make gcc libelf1 libssl3)

TOTAL_START=$(date +%s)
step() {
    local name="$1" start
    shift
    printf '\n==> %s\n' "$name"
    start=$(date +%s)
    "$@"
    printf '==> %s: %d s\n' "$name" "$(($(date +%s) - start))"
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "test.sh: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

install_packages() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        echo "all system packages present"
        return
    fi
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have empty package lists: update once, only when the install needs it.
    if ! as_root apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        as_root apt-get update -q
        as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

rust_components() {
    local c
    for c in rustfmt clippy; do
        if ! cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1; then
            command -v rustup >/dev/null 2>&1 || { echo "test.sh: cargo $c missing and no rustup" >&2; return 1; }
            rustup component add "$c"
        fi
    done
}

step "system packages" install_packages
step "rust components" rust_components
step "images" images/build.sh
step "cargo build --release" cargo build --release --workspace --all-targets
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
step "cargo test --release" cargo test --workspace --release --no-fail-fast
printf '\n==> all passed in %d s\n' "$(($(date +%s) - TOTAL_START))"
