//! Bad input to `accelvm run` gets one line on stderr naming the problem and exit status 1,
//! never a panic. These run natively, without KVM: the kernel is a tiny hand-made bzImage and
//! a missing or unusable /dev/kvm is simulated with the hidden `--kvm-device` option.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("accelvm-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The smallest bzImage linux-loader accepts: a setup header (boot protocol 2.15, 64-bit
/// entry) and one page of `hlt` as the "kernel". `setup_sects` can lie to make it corrupt.
fn fake_bzimage(setup_sects: u8) -> Vec<u8> {
    let mut img = vec![0u8; 1024];
    let put = |img: &mut Vec<u8>, off: usize, bytes: &[u8]| {
        img[off..off + bytes.len()].copy_from_slice(bytes)
    };
    put(&mut img, 0x1f1, &[setup_sects]);
    put(&mut img, 0x1fe, &0xaa55u16.to_le_bytes());
    put(&mut img, 0x202, b"HdrS");
    put(&mut img, 0x206, &0x020fu16.to_le_bytes());
    put(&mut img, 0x211, &[1]); // loadflags: LOADED_HIGH
    put(&mut img, 0x214, &0x10_0000u32.to_le_bytes()); // code32_start
    put(&mut img, 0x22c, &0x7fff_ffffu32.to_le_bytes()); // initrd_addr_max
    put(&mut img, 0x236, &1u16.to_le_bytes()); // xloadflags: XLF_KERNEL_64
    put(&mut img, 0x238, &2048u32.to_le_bytes()); // cmdline_size
    put(&mut img, 0x258, &0x100_0000u64.to_le_bytes()); // pref_address
    put(&mut img, 0x260, &0x10_0000u32.to_le_bytes()); // init_size
    img.extend(std::iter::repeat_n(0xf4u8, 4096));
    img
}

fn accelvm() -> PathBuf {
    let bin = common::bin_dir().join("accelvm");
    assert!(
        bin.is_file(),
        "{} missing: run `cargo build --release --workspace` first",
        bin.display()
    );
    bin
}

fn run(args: &[&str]) -> Output {
    Command::new(accelvm())
        .args(args)
        .env_remove("ACCELVM_KVM_DEVICE")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("cannot run accelvm")
}

/// Asserts status 1 and exactly one stderr line, `accelvm: error: ...`, containing `needle`.
fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got: {stderr}");
    assert!(lines[0].starts_with("accelvm: error: "), "{stderr}");
    assert!(
        lines[0].contains(needle),
        "expected {needle:?} in: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const NO_KVM: &str = "/nonexistent/kvm";

#[test]
fn zero_or_too_many_vcpus_are_refused() {
    let dir = Scratch::new("cpus");
    let k = dir.file("bzImage", &fake_bzimage(1));
    for n in ["0", "255"] {
        let out = run(&[
            "run",
            "--kernel",
            s(&k),
            "--no-initrd",
            "--cpus",
            n,
            "--kvm-device",
            NO_KVM,
        ]);
        assert_one_line_error(&out, &format!("--cpus must be between 1 and 254, got {n}"));
    }
}

#[test]
fn too_little_memory_is_refused() {
    let dir = Scratch::new("mem");
    let k = dir.file("bzImage", &fake_bzimage(1));
    let out = run(&[
        "run",
        "--kernel",
        s(&k),
        "--no-initrd",
        "--memory",
        "16",
        "--kvm-device",
        NO_KVM,
    ]);
    assert_one_line_error(&out, "--memory must be between 64 and");
}

#[test]
fn missing_kernel_and_initrd_are_named() {
    let dir = Scratch::new("missing");
    let k = dir.file("bzImage", &fake_bzimage(1));
    let missing = dir.0.join("no-such-vmlinuz");
    let out = run(&[
        "run",
        "--kernel",
        s(&missing),
        "--no-initrd",
        "--kvm-device",
        NO_KVM,
    ]);
    assert_one_line_error(
        &out,
        &format!("kernel image {} does not exist", missing.display()),
    );
    let out = run(&[
        "run",
        "--kernel",
        s(&k),
        "--initrd",
        s(&missing),
        "--kvm-device",
        NO_KVM,
    ]);
    assert_one_line_error(
        &out,
        &format!("initrd {} does not exist", missing.display()),
    );
    // No --kernel and no images folder: the default lookup says what to do.
    let out = Command::new(accelvm())
        .args(["run", "--kvm-device", NO_KVM])
        .env("ACCELVM_IMAGES_DIR", &missing)
        .output()
        .unwrap();
    assert_one_line_error(&out, "does not exist");
}

#[test]
fn corrupt_kernels_are_refused() {
    let dir = Scratch::new("corrupt");
    let garbage = dir.file("garbage", &[0x5a; 8192]);
    let out = run(&[
        "run",
        "--kernel",
        s(&garbage),
        "--no-initrd",
        "--kvm-device",
        NO_KVM,
    ]);
    assert_one_line_error(
        &out,
        "is not a Linux kernel (neither a bzImage nor an ELF vmlinux)",
    );
    let empty = dir.file("empty", &[]);
    let out = run(&[
        "run",
        "--kernel",
        s(&empty),
        "--no-initrd",
        "--kvm-device",
        NO_KVM,
    ]);
    assert_one_line_error(&out, "is not a Linux kernel");
    // A header that promises 200 setup sectors in a 5 KiB file.
    let truncated = dir.file("truncated", &fake_bzimage(200));
    let out = run(&[
        "run",
        "--kernel",
        s(&truncated),
        "--no-initrd",
        "--kvm-device",
        NO_KVM,
    ]);
    assert_one_line_error(&out, "cannot load kernel image");
    // An ELF header with nothing behind it.
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(64, 0);
    let elf = dir.file("elf", &elf);
    let out = run(&[
        "run",
        "--kernel",
        s(&elf),
        "--no-initrd",
        "--kvm-device",
        NO_KVM,
    ]);
    assert_one_line_error(&out, "cannot load kernel image");
}

#[test]
fn initrd_that_does_not_fit_is_refused() {
    let dir = Scratch::new("initrd");
    let k = dir.file("bzImage", &fake_bzimage(1));
    let initrd = dir.0.join("big.img");
    // 100 MiB sparse: more than 64 MiB of guest RAM can hold.
    let f = std::fs::File::create(&initrd).unwrap();
    f.set_len(100 << 20).unwrap();
    let out = run(&[
        "run",
        "--kernel",
        s(&k),
        "--initrd",
        s(&initrd),
        "--memory",
        "64",
        "--kvm-device",
        NO_KVM,
    ]);
    assert_one_line_error(&out, "(100 MiB) does not fit in guest memory");
}

#[test]
fn overlong_command_line_is_refused() {
    let dir = Scratch::new("cmdline");
    let k = dir.file("bzImage", &fake_bzimage(1));
    let long = "x".repeat(3000);
    let out = run(&[
        "run",
        "--kernel",
        s(&k),
        "--no-initrd",
        "--cmdline",
        &long,
        "--kvm-device",
        NO_KVM,
    ]);
    assert_one_line_error(
        &out,
        "kernel command line is 3001 bytes, the kernel accepts at most 2048",
    );
}

#[test]
fn missing_or_unusable_kvm_device_is_named() {
    let dir = Scratch::new("kvm");
    let k = dir.file("bzImage", &fake_bzimage(1));
    let out = run(&[
        "run",
        "--kernel",
        s(&k),
        "--no-initrd",
        "--kvm-device",
        NO_KVM,
    ]);
    assert_one_line_error(&out, "no KVM device at /nonexistent/kvm");
    // The environment variable works too.
    let out = Command::new(accelvm())
        .args(["run", "--kernel", s(&k), "--no-initrd"])
        .env("ACCELVM_KVM_DEVICE", NO_KVM)
        .output()
        .unwrap();
    assert_one_line_error(&out, "no KVM device at /nonexistent/kvm");
    // A device node that is not KVM.
    let out = run(&[
        "run",
        "--kernel",
        s(&k),
        "--no-initrd",
        "--kvm-device",
        "/dev/null",
    ]);
    assert_one_line_error(&out, "/dev/null is not a usable KVM device");
}

#[test]
fn kvm_device_without_permission_is_named() {
    let dir = Scratch::new("perm");
    let k = dir.file("bzImage", &fake_bzimage(1));
    let node = dir.file("kvm", &[]);
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o000)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        // Root opens anything: drop to nobody, whom the 0000 node refuses.
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(accelvm());
        c
    } else {
        Command::new(accelvm())
    };
    let out = cmd
        .args([
            "run",
            "--kernel",
            s(&k),
            "--no-initrd",
            "--kvm-device",
            s(&node),
        ])
        .output()
        .expect("cannot run accelvm (setpriv is in util-linux)");
    assert_one_line_error(&out, &format!("no permission to open {}", node.display()));
}

#[test]
fn malformed_flags_get_one_line_too() {
    let out = run(&["run", "--memory", "lots"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("accelvm: error: invalid value 'lots' for '--memory"),
        "{stderr}"
    );
}

#[test]
fn help_documents_every_flag() {
    let out = run(&["run", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--kernel",
        "--initrd",
        "--no-initrd",
        "--cmdline",
        "--cpus",
        "--memory",
        "--guest-cmd",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(
        help.contains("images/out"),
        "default images not documented:\n{help}"
    );
    let out = run(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("run"));
}
