#!/usr/bin/env bash
# Builds the test platform images (see README "Test platform"):
#   images/out/vmlinuz             guest/test-host kernel (Debian cloud bzImage, LZ4)
#   images/out/vmlinux             the same kernel unpacked to ELF (for PVH entry)
#   images/out/kernel-version      e.g. 6.1.0-56-cloud-amd64
#   images/out/initrd.img          guest initramfs (busybox, virtio + crypto modules, accelvm init)
#   images/out/testhost-initrd.img test host initramfs (kvm modules, QEMU, iproute2, guest image)
#   images/out/kernel-build        link to extracted headers for out-of-tree modules (guest driver):
#                                  make -C images/out/kernel-build M=$PWD modules
# Idempotent: the kernel package is cached under images/cache/, and each initramfs is rebuilt only
# when a stamp over its inputs changes. Nothing is installed on the system.
set -euo pipefail

IMAGES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$IMAGES_DIR/cache"
OUT="$IMAGES_DIR/out"
REPO_DIR="$(dirname "$IMAGES_DIR")"
META_PKG="linux-image-cloud-amd64"

# Modules the guest loads at boot (modprobe resolves modules.dep order) and ships for request_module.
GUEST_BOOT_MODULES=(virtio_mmio virtio_pci virtio_net)
GUEST_CRYPTO_MODULES=(cryptd crypto_simd aesni_intel ghash_clmulni_intel gf128mul ghash_generic gcm ctr
    af_alg algif_skcipher algif_aead algif_hash seqiv echainiv authenc)
# IPsec in the guest (loaded on demand through modules.alias when `ip xfrm` needs them).
GUEST_NET_MODULES=(xfrm_user xfrm_algo esp4 esp6 esp4_offload esp6_offload xfrm4_tunnel xfrm6_tunnel
    tunnel4 tunnel6)
# Test host: the guest set plus KVM and the networking/IPsec pieces later tests need.
TESTHOST_MODULES=(irqbypass kvm kvm_amd kvm_intel tun bridge veth xfrm_user xfrm_algo xfrm_interface
    esp4 esp6 esp4_offload esp6_offload xfrm4_tunnel xfrm6_tunnel tunnel4 tunnel6 ipv6 af_key
    vhost vhost_net)
# Host tools copied (with their ldd libraries) into the guest image when installed.
GUEST_TOOLS=(iperf3)
# Whole module folders shipped in both images so on-demand template loads (crypto API, xfrm) work.
MODULE_DIRS=(kernel/crypto kernel/arch/x86/crypto kernel/lib/crypto)

QEMU_DATA_FILES=(
    /usr/share/qemu/bios-microvm.bin /usr/share/qemu/qboot.rom /usr/share/qemu/kvmvapic.bin
    /usr/share/qemu/linuxboot.bin /usr/share/qemu/linuxboot_dma.bin /usr/share/qemu/pvh.bin
    /usr/share/qemu/multiboot.bin /usr/share/qemu/multiboot_dma.bin /usr/share/qemu/sgabios.bin
    /usr/share/seabios/bios-256k.bin /usr/share/seabios/bios.bin /usr/share/seabios/bios-microvm.bin
    /usr/share/seabios/vgabios-stdvga.bin /usr/lib/ipxe/qemu/efi-virtio.rom
    /usr/lib/ipxe/qemu/pxe-virtio.rom
)

log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'images/build.sh: error: %s\n' "$*" >&2; exit 1; }

# Runs "$@" and logs how long it took.
timed() {
    local label="$1" start end
    shift
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    log "$label: $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f s", b - a }')"
}

need_tools() {
    local missing=() t
    for t in apt-cache apt-get dpkg-deb depmod modprobe lz4 xz cpio gzip busybox ldd sha256sum; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    [[ ${#missing[@]} -eq 0 ]] || die "missing tools: ${missing[*]} (run ./test.sh or install kmod lz4 cpio busybox-static)"
    IP_BIN=/usr/sbin/ip
    [[ -x "$IP_BIN" ]] || IP_BIN=/sbin/ip
    [[ -x "$IP_BIN" ]] || die "iproute2's ip not found (apt-get install iproute2)"
    # The initramfs copies busybox alone: it must be busybox-static, not the dynamic busybox package.
    if ldd "$(command -v busybox)" >/dev/null 2>&1; then
        die "$(command -v busybox) is dynamically linked: install busybox-static"
    fi
}

APT_UPDATED=0
# Refreshes apt's package lists, once per run. A machine's lists can be months old, and the
# archive drops superseded kernels: resolving from stale lists names a kernel whose headers
# (seen in CI: linux-headers-6.1.0-48, a 404) or source can no longer be downloaded.
apt_update_once() {
    [[ $APT_UPDATED -eq 1 ]] && return
    APT_UPDATED=1
    log "refreshing apt's package lists (apt-get update)"
    # Without root (or offline) the lists stay as they are; a download they name may then
    # fail, and says which package.
    apt-get update -qq >&2 || log "apt-get update failed; resolving from the lists as they are"
}

# Prints the concrete linux-image-*-cloud-amd64 package the metapackage depends on.
resolve_kernel_pkg() {
    apt-cache depends "$META_PKG" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

# Downloads (cached) and extracts the kernel package; sets KVER and KROOT.
fetch_kernel() {
    local pkg deb
    pkg=$(resolve_kernel_pkg)
    # Anything of that kernel still to download: resolve again from fresh lists first, so the
    # image, headers and source all come from the archive's current kernel. A fully cached
    # kernel builds offline.
    if [[ -z "$pkg" || ! -f "$CACHE/kernel-${pkg#linux-image-}/.extracted" ||
        ! -f "$CACHE/headers-${pkg#linux-image-}/.extracted" ]]; then
        apt_update_once
        pkg=$(resolve_kernel_pkg)
    fi
    [[ -n "$pkg" ]] || die "cannot resolve $META_PKG to a kernel package"
    KVER=${pkg#linux-image-}
    KROOT="$CACHE/kernel-$KVER/root"
    mkdir -p "$CACHE/debs"
    deb=$(find "$CACHE/debs" -maxdepth 1 -name "${pkg}_*.deb" | LC_ALL=C sort | tail -n1)
    if [[ -z "$deb" ]]; then
        log "downloading $pkg"
        (cd "$CACHE/debs" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) ||
            true
        deb=$(find "$CACHE/debs" -maxdepth 1 -name "${pkg}_*.deb" | head -n1)
        [[ -n "$deb" ]] || die "apt-get download $pkg failed"
    fi
    KDEB="$deb"
    if [[ ! -f "$CACHE/kernel-$KVER/.extracted" ]]; then
        log "extracting $(basename "$deb")"
        rm -rf "$CACHE/kernel-$KVER"
        mkdir -p "$KROOT"
        dpkg-deb -x "$deb" "$KROOT"
        # The package ships no modules.dep (its postinst makes it).
        depmod -b "$KROOT" "$KVER"
        touch "$CACHE/kernel-$KVER/.extracted"
    fi
    log "kernel $KVER"
}

# Extracts the headers, common headers and kbuild packages of KVER into one folder (cached) and
# links images/out/kernel-build to it, so guest modules build with `make -C ... M=...`.
fetch_kernel_headers() {
    local hroot="$CACHE/headers-$KVER/root" version pkgs p deb kdir
    kdir="$hroot/usr/src/linux-headers-$KVER"
    if [[ ! -f "$CACHE/headers-$KVER/.extracted" ]]; then
        version=$(dpkg-deb -f "$KDEB" Version)
        mapfile -t pkgs < <(apt-cache depends "linux-headers-$KVER" |
            awk '/Depends: linux-(headers|kbuild)-/ { print $2 }')
        pkgs=("linux-headers-$KVER" "${pkgs[@]}")
        [[ ${#pkgs[@]} -ge 3 ]] || die "cannot resolve the headers packages of $KVER"
        rm -rf "$CACHE/headers-$KVER"
        mkdir -p "$hroot"
        for p in "${pkgs[@]}"; do
            deb=$(find "$CACHE/debs" -maxdepth 1 -name "${p}_${version}_*.deb" | head -n1)
            if [[ -z "$deb" ]]; then
                log "downloading $p=$version"
                (cd "$CACHE/debs" && apt-get download -q "$p=$version" 2>&1 |
                    grep -v '^W: Download is performed unsandboxed' >&2) || true
                deb=$(find "$CACHE/debs" -maxdepth 1 -name "${p}_${version}_*.deb" | head -n1)
                [[ -n "$deb" ]] || die "apt-get download $p=$version failed"
            fi
            dpkg-deb -x "$deb" "$hroot"
        done
        # The flavour's Makefile includes the -common one by its installed /usr/src path.
        sed -i "s|^include /usr/src/|include $hroot/usr/src/|" "$kdir/Makefile"
        touch "$CACHE/headers-$KVER/.extracted"
    fi
    ln -sfn "$kdir" "$OUT/kernel-build"
}

# Unpacks the ELF vmlinux from the bzImage's LZ4 payload (the extract-vmlinux approach: find the
# legacy LZ4 frame magic, decompress from there, trailing bytes are ignored).
unpack_vmlinux() {
    local bz="$1" dst="$2" off
    off=$(LC_ALL=C grep -obUaP '\x02\x21\x4c\x18' "$bz" | head -n1 | cut -d: -f1) ||
        die "no LZ4 payload found in $bz"
    tail -c +"$((off + 1))" "$bz" | lz4 -dc 2>/dev/null >"$dst.tmp" || true
    [[ "$(head -c4 "$dst.tmp" | od -An -tx1 | tr -d ' \n')" == 7f454c46 ]] ||
        die "unpacked vmlinux from $bz is not an ELF file"
    mv "$dst.tmp" "$dst"
}

install_kernel_outputs() {
    mkdir -p "$OUT"
    local bz="$KROOT/boot/vmlinuz-$KVER"
    if [[ ! -f "$OUT/vmlinuz" || ! -f "$OUT/kernel-version" || "$(cat "$OUT/kernel-version")" != "$KVER" ]] ||
        ! cmp -s "$bz" "$OUT/vmlinuz"; then
        cp "$bz" "$OUT/vmlinuz.tmp" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
        rm -f "$OUT/vmlinux"
    fi
    if [[ ! -f "$OUT/vmlinux" ]]; then
        timed "unpack vmlinux" unpack_vmlinux "$bz" "$OUT/vmlinux"
    fi
    printf '%s\n' "$KVER" >"$OUT/kernel-version"
}

# Copies an ELF file into ROOT at DEST (default: same path) plus every library ldd reports,
# at the library's own path, so the dynamic loader finds them without an ld.so.cache.
copy_with_libs() {
    local src="$1" root="$2" dest="${3:-$1}" lib
    install -D -m 0755 "$src" "$root$dest"
    if ldd "$src" >/dev/null 2>&1; then
        while read -r lib; do
            [[ -n "$lib" && -e "$root$lib" ]] && continue
            install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
        done < <(ldd "$src" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
    fi
}

# Copies the named modules, their dependencies, and MODULE_DIRS into ROOT, then runs depmod there.
copy_modules() {
    local root="$1" m f
    shift
    local dst="$root/lib/modules/$KVER"
    mkdir -p "$dst"
    cp "$KROOT/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$dst/"
    for m in "$@"; do
        # --show-depends lists "insmod /path/x.ko" lines in load order, builtins as "builtin x".
        while read -r f; do
            f=${f#"$KROOT/lib/modules/$KVER/"}
            install -D -m 0644 "$KROOT/lib/modules/$KVER/$f" "$dst/$f"
        done < <(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" { print $2 }')
    done
    for m in "${MODULE_DIRS[@]}"; do
        mkdir -p "$dst/$m"
        cp -a "$KROOT/lib/modules/$KVER/$m/." "$dst/$m/"
    done
    # Out-of-tree modules (guest driver) land in extra/ before depmod.
    depmod -b "$root" "$KVER"
}

# Creates the skeleton every initramfs shares: busybox with applet links, mount points, console.
make_base_root() {
    local root="$1" a
    rm -rf "$root"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib/x86_64-linux-gnu,lib64,etc,proc,sys,dev,tmp,run,root,mnt}
    install -m 0755 "$(command -v busybox)" "$root/bin/busybox"
    for a in $(busybox --list-full); do
        [[ -e "$root/$a" ]] || ln -s /bin/busybox "$root/$a"
    done
    # Kernel opens /dev/console for init; devtmpfs is mounted over /dev by init anyway.
    if [[ $(id -u) -eq 0 ]]; then
        mknod -m 600 "$root/dev/console" c 5 1
        mknod -m 666 "$root/dev/null" c 1 3
    fi
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\n' >"$root/etc/group"
    printf '%s\n' "$KVER" >"$root/etc/accelvm-kernel-version"
}

# Writes an uncompressed newc cpio of ROOT to DST. Uncompressed on purpose: the test host under TCG
# reaches its ready marker ~1.5 s sooner than with a gzip -1 one (3.2 s vs 4.8 s, measured).
make_cpio() {
    local root="$1" dst="$2"
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$dst.tmp"
    mv "$dst.tmp" "$dst"
}

# ---- Guest driver (virtio_accel.ko) and accel-tool: owned by the guest-driver work (issue 6) ----
GUEST_DRIVER_DIR="$REPO_DIR/guest-drivers/virtio-accel"
# Software counterparts the driver's tests and benchmarks compare with (lz4.ko needs lib/lz4).
GUEST_DRIVER_MODULES=(lz4 lz4hc)
ACCEL_TOOL_BIN="$REPO_DIR/target/x86_64-unknown-linux-gnu/release/accel-tool"

# Builds the guest driver modules against KHDR (make is incremental; the .ko files land next to the
# sources, where add_guest_extras picks them up).
build_guest_driver() {
    [[ -d "$GUEST_DRIVER_DIR" ]] || return 0
    fetch_kernel_headers
    KHDR="$CACHE/headers-$KVER/root/usr/src/linux-headers-$KVER"
    make -s -C "$KHDR" M="$GUEST_DRIVER_DIR" modules >&2 || die "guest driver build failed"
}

# Builds accel-tool as a static binary (glibc crt-static) for the guest image. A separate --target
# keeps its artifacts (and RUSTFLAGS) apart from the host build in target/release.
build_accel_tool() {
    [[ -d "$REPO_DIR/guest-tools/accel-tool" ]] || return 0
    command -v cargo >/dev/null 2>&1 || die "cargo not found (needed for accel-tool)"
    (cd "$REPO_DIR" && RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --release \
        -p accel-tool --target x86_64-unknown-linux-gnu >&2) || die "accel-tool build failed"
    # A static(-pie) binary has no program interpreter (ldd says "statically linked", status 0).
    if readelf -lW "$ACCEL_TOOL_BIN" | grep -q 'program interpreter'; then
        die "$ACCEL_TOOL_BIN is not static"
    fi
}

# Hook for the guest driver and guest tools: copies them in if they exist.
add_guest_extras() {
    local root="$1" ko t
    # Guest driver modules built by guest-drivers/ (make) go to extra/ so depmod/modprobe see them.
    while IFS= read -r -d '' ko; do
        install -D -m 0644 "$ko" "$root/lib/modules/$KVER/extra/$(basename "$ko")"
    done < <([[ -d "$REPO_DIR/guest-drivers" ]] && find "$REPO_DIR/guest-drivers" -name '*.ko' -print0)
    [[ -x "$ACCEL_TOOL_BIN" ]] && install -D -m 0755 "$ACCEL_TOOL_BIN" "$root/usr/bin/accel-tool"
    # Guest tools from the host system (with their libraries).
    for t in "${GUEST_TOOLS[@]}"; do
        if command -v "$t" >/dev/null 2>&1; then
            copy_with_libs "$(command -v "$t")" "$root" "/usr/bin/$t"
        else
            log "note: $t not installed on the build machine; guest image ships without it"
        fi
    done
    # iproute2's ip for `ip xfrm` (busybox's applet lacks it) at /usr/sbin/ip; see build_testhost_initrd.
    copy_with_libs "$IP_BIN" "$root" /usr/sbin/ip
    # Free-form overlay: images/guest-extra/ is copied over the root as is (e.g. etc/accelvm/modules
    # lists extra modules for init to load; usr/bin/ tools).
    if [[ -d "$IMAGES_DIR/guest-extra" ]]; then
        cp -a "$IMAGES_DIR/guest-extra/." "$root/"
        rm -f "$root/README.md"
    fi
}

# ---- QEMU's virtio-crypto as a benchmark peer (issue 6) ----
# The cloud kernel has CONFIG_CRYPTO_HW unset: no crypto_engine.ko, no virtio_crypto.ko. Both are
# built out of tree from Debian's linux-source package of the image kernel's exact version, against
# the same headers as the guest driver. They land in extra/virtio-crypto/ of the guest image; init
# does not load them (only a virtio-crypto device, i.e. QEMU, would bind; the benchmark modprobes).
VCRYPTO_SRC_FILES=(drivers/crypto/virtio/virtio_crypto_common.h drivers/crypto/virtio/virtio_crypto_mgr.c
    drivers/crypto/virtio/virtio_crypto_skcipher_algs.c drivers/crypto/virtio/virtio_crypto_akcipher_algs.c
    drivers/crypto/virtio/virtio_crypto_core.c crypto/crypto_engine.c crypto/internal.h)

# Sets VCRYPTO_DIR to a folder holding crypto_engine.ko and virtio_crypto.ko for KVER (cached).
build_virtio_crypto() {
    local version series src deb tarball f
    version=$(dpkg-deb -f "$KDEB" Version)
    series=$(printf '%s\n' "$KVER" | cut -d. -f1,2)
    src="linux-source-$series"
    VCRYPTO_DIR="$CACHE/virtio-crypto-$version"
    if [[ -f "$VCRYPTO_DIR/.built" && -f "$VCRYPTO_DIR/virtio_crypto.ko" && -f "$VCRYPTO_DIR/crypto_engine.ko" ]]; then
        return
    fi
    if [[ ! -f "$VCRYPTO_DIR/.extracted" ]]; then
        deb=$(find "$CACHE/debs" -maxdepth 1 -name "${src}_${version}_all.deb" | head -n1)
        if [[ -z "$deb" ]]; then
            log "downloading $src=$version (for virtio_crypto.ko and crypto_engine.ko)"
            (cd "$CACHE/debs" && apt-get download -q "$src=$version" 2>&1 |
                grep -v '^W: Download is performed unsandboxed' >&2) || true
            deb=$(find "$CACHE/debs" -maxdepth 1 -name "${src}_${version}_all.deb" | head -n1)
            [[ -n "$deb" ]] || die "apt-get download $src=$version failed"
        fi
        rm -rf "$VCRYPTO_DIR"
        mkdir -p "$VCRYPTO_DIR/tree"
        # Only the few files needed: the source package holds a 138 MB .tar.xz of the whole tree.
        tarball="./usr/src/$src.tar.xz"
        dpkg-deb --fsys-tarfile "$deb" | tar -xO "$tarball" | xz -dc |
            tar -x -C "$VCRYPTO_DIR/tree" "${VCRYPTO_SRC_FILES[@]/#/$src/}" ||
            die "extracting virtio-crypto sources from $deb failed"
        for f in "${VCRYPTO_SRC_FILES[@]}"; do
            cp "$VCRYPTO_DIR/tree/$src/$f" "$VCRYPTO_DIR/"
        done
        rm -rf "$VCRYPTO_DIR/tree"
        # One Kbuild for both: modpost resolves virtio_crypto's crypto_engine_* imports from the
        # sibling module (the kernel exports none of them), and depmod orders the loads.
        cat >"$VCRYPTO_DIR/Kbuild" <<'KBUILD'
obj-m += crypto_engine.o virtio_crypto.o
virtio_crypto-objs := virtio_crypto_skcipher_algs.o virtio_crypto_akcipher_algs.o virtio_crypto_mgr.o virtio_crypto_core.o
KBUILD
        touch "$VCRYPTO_DIR/.extracted"
    fi
    fetch_kernel_headers
    make -s -C "$CACHE/headers-$KVER/root/usr/src/linux-headers-$KVER" M="$VCRYPTO_DIR" modules >&2 ||
        die "virtio_crypto/crypto_engine build failed"
    touch "$VCRYPTO_DIR/.built"
}

# ---- IPsec (issue 8): the full-offload gateway's inner interface is a TUN ----
GUEST_IPSEC_MODULES=(tun)

# Prints a hash over everything that goes into an image, so unchanged inputs skip the rebuild.
inputs_stamp() {
    {
        printf '%s\n' "$KVER" "$@"
        sha256sum "${BASH_SOURCE[0]}"
        local p
        for p in "$@"; do
            if [[ -e "$p" ]]; then
                find "$p" \( -type f -o -type l \) -printf '%p %s %T@\n' 2>/dev/null | LC_ALL=C sort
            fi
        done
    } | sha256sum | cut -d' ' -f1
}

build_guest_initrd() {
    local root="$CACHE/guest-root" stamp
    local -a gd_kos=()
    if [[ -d "$REPO_DIR/guest-drivers" ]]; then
        mapfile -t gd_kos < <(find "$REPO_DIR/guest-drivers" -name '*.ko' | LC_ALL=C sort)
    fi
    stamp=$(inputs_stamp "$IMAGES_DIR/guest" "$IMAGES_DIR/guest-extra" "$(command -v busybox)" "$IP_BIN" \
        "$(command -v iperf3 || true)" "${gd_kos[@]}" "$ACCEL_TOOL_BIN" "$VCRYPTO_DIR/crypto_engine.ko" \
        "$VCRYPTO_DIR/virtio_crypto.ko")
    if [[ -f "$OUT/initrd.img" && "$(cat "$CACHE/guest.stamp" 2>/dev/null)" == "$stamp" ]]; then
        log "guest initrd up to date"
        return
    fi
    make_base_root "$root"
    install -m 0755 "$IMAGES_DIR/guest/init" "$root/init"
    add_guest_extras "$root"
    install -D -m 0644 -t "$root/lib/modules/$KVER/extra/virtio-crypto" "$VCRYPTO_DIR/crypto_engine.ko" \
        "$VCRYPTO_DIR/virtio_crypto.ko"
    copy_modules "$root" "${GUEST_BOOT_MODULES[@]}" "${GUEST_CRYPTO_MODULES[@]}" "${GUEST_NET_MODULES[@]}" \
        "${GUEST_DRIVER_MODULES[@]}" "${GUEST_IPSEC_MODULES[@]}"
    make_cpio "$root" "$OUT/initrd.img"
    printf '%s\n' "$stamp" >"$CACHE/guest.stamp"
    log "guest initrd: $(du -h "$OUT/initrd.img" | cut -f1)"
}

build_testhost_initrd() {
    local root="$CACHE/testhost-root" stamp qemu f
    qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"
    stamp=$(inputs_stamp "$IMAGES_DIR/testhost-init" "$qemu" "$IP_BIN" "$OUT/initrd.img" "$OUT/vmlinuz" \
        "$OUT/vmlinux" "$(command -v busybox)")
    if [[ -f "$OUT/testhost-initrd.img" && "$(cat "$CACHE/testhost.stamp" 2>/dev/null)" == "$stamp" ]]; then
        log "test host initrd up to date"
        return
    fi
    make_base_root "$root"
    install -m 0755 "$IMAGES_DIR/testhost-init/init" "$root/init"
    copy_modules "$root" "${GUEST_BOOT_MODULES[@]}" "${GUEST_CRYPTO_MODULES[@]}" "${GUEST_NET_MODULES[@]}" \
        "${TESTHOST_MODULES[@]}"
    copy_with_libs "$qemu" "$root" /usr/bin/qemu-system-x86_64
    # TCG accel module lets QEMU fall back to emulation inside the test host if ever needed.
    f=/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so
    [[ -f "$f" ]] && copy_with_libs "$f" "$root"
    for f in "${QEMU_DATA_FILES[@]}"; do
        if [[ -e "$f" ]]; then
            install -D -m 0644 "$(readlink -f "$f")" "$root$f"
        else
            log "note: QEMU data file $f missing on the build machine"
        fi
    done
    # iproute2's ip (for ip xfrm; busybox ip lacks it) at /usr/sbin/ip; busybox's applet stays at
    # /sbin/ip, and busybox sh runs its applet for a bare `ip`: scripts call /usr/sbin/ip by full path.
    copy_with_libs "$IP_BIN" "$root" /usr/sbin/ip
    command -v iperf3 >/dev/null 2>&1 && copy_with_libs "$(command -v iperf3)" "$root" /usr/bin/iperf3
    mkdir -p "$root/guest" "$root/opt/accelvm/bin" "$root/testhost"
    for f in vmlinuz vmlinux initrd.img kernel-version; do
        cp "$OUT/$f" "$root/guest/$f"
    done
    make_cpio "$root" "$OUT/testhost-initrd.img"
    printf '%s\n' "$stamp" >"$CACHE/testhost.stamp"
    log "test host initrd: $(du -h "$OUT/testhost-initrd.img" | cut -f1)"
}

main() {
    local t0
    t0=$(date +%s.%N)
    need_tools
    mkdir -p "$CACHE" "$OUT"
    timed "kernel package" fetch_kernel
    install_kernel_outputs
    timed "kernel headers" fetch_kernel_headers
    timed "guest driver" build_guest_driver
    timed "accel-tool" build_accel_tool
    timed "virtio-crypto modules" build_virtio_crypto
    timed "guest initrd" build_guest_initrd
    timed "test host initrd" build_testhost_initrd
    log "done in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'): $OUT"
}

main "$@"
