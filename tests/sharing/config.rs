//! `accelvm run --config` refuses invalid files before any VM exists, with one line naming
//! the problem and status 1.

use std::process::Command;

use crate::common::bin_dir;

fn run_config(text: &str) -> (i32, String) {
    let dir =
        std::env::temp_dir().join(format!("accelvm-cfg-{}-{}", std::process::id(), text.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    // A kernel file that exists, so only the mapping is wrong.
    std::fs::write(dir.join("k"), b"not a kernel").unwrap();
    std::fs::write(&file, text.replace("KDIR", &dir.display().to_string())).unwrap();
    let out = Command::new(bin_dir().join("accelvm"))
        .args(["run", "--config"])
        .arg(&file)
        .env("ACCELVM_KVM_DEVICE", "/nonexistent/kvm")
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const ACC: &str = "[[accelerator]]\nname = \"acc\"\ncrypto = [\"aes-gcm\"]\n";

fn vm(name: &str, mapping: &str) -> String {
    format!(
        "[[vm]]\nname = \"{name}\"\nkernel = \"KDIR/k\"\ninitrd = \"\"\n[[vm.accel]]\naccelerator = \"acc\"\n{mapping}\n"
    )
}

#[test]
fn bad_configurations_get_one_clear_line() {
    let cases = [
        (
            format!("{ACC}{}", vm("a", "services = [\"compression\"]")),
            "vm a: accelerator acc does not offer compression",
        ),
        (
            format!("{ACC}{}{}", vm("a", "mode = \"exclusive\""), vm("b", "")),
            "accelerator acc is mapped exclusively by vm a and also by vm b",
        ),
        (
            "[[vm]]\nname = \"a\"\n[[vm.accel]]\naccelerator = \"gpu0\"\n".to_string(),
            "vm a: unknown accelerator \"gpu0\"",
        ),
        (
            format!(
                "{ACC}{}",
                vm("a", "bandwidth = { size = 0, refill-time-ms = 100 }")
            ),
            "invalid bandwidth",
        ),
        (format!("{ACC}{}", vm("a", "weight = 0")), "invalid weight"),
        (
            format!("{ACC}{}", vm("a", "")).replace("vcpus", "x") + "bogus = 1\n",
            "unknown field",
        ),
        // NICs: the same checks as `--net`, and a TAP may belong to one NIC only. Nothing is
        // opened or created for these (the file is refused first).
        (
            format!(
                "{ACC}{}[[vm.net]]\ntap = \"avmcfg0\"\n{}[[vm.net]]\ntap = \"avmcfg0\"\n",
                vm("a", ""),
                vm("b", "")
            ),
            "TAP \"avmcfg0\" is used by vm a and again by vm b",
        ),
        (
            format!(
                "{ACC}{}[[vm.net]]\ntap = \"avmcfg0\"\nmac = \"02:00:00:00:00\"\n",
                vm("a", "")
            ),
            "vm a: [[vm.net]] tap = \"avmcfg0\": invalid MAC address \"02:00:00:00:00\"",
        ),
        (
            format!("{ACC}{}[[vm.net]]\ntap = \"tap%d\"\n", vm("a", "")),
            "invalid TAP name \"tap%d\"",
        ),
        // `lo` exists and is no TAP: opening it fails, named, before any VM starts.
        (
            format!("{ACC}{}[[vm.net]]\ntap = \"lo\"\n", vm("a", "")),
            "vm a: cannot attach to TAP \"lo\"",
        ),
    ];
    for (text, needle) in cases {
        let (code, stderr) = run_config(&text);
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("accelvm: error: "), "{stderr}");
        assert!(stderr.contains(needle), "want {needle:?} in {stderr}");
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let out = Command::new(bin_dir().join("accelvm"))
        .args(["run", "--config", "/nonexistent/accelvm.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("cannot read /nonexistent/accelvm.toml"),
        "{stderr}"
    );
}

#[test]
fn stats_without_a_running_accelvm_is_a_clear_error() {
    let out = Command::new(bin_dir().join("accelvm"))
        .args(["stats", "--socket", "/nonexistent/accelvm.sock"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("cannot read stats from /nonexistent/accelvm.sock"),
        "{stderr}"
    );
}
