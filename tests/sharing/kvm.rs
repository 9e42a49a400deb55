//! Several real guests in one accelvm process, each its own KVM VM with a virtio-accel device
//! mapped onto one shared accelerator, run through the test-platform harness.
//!
//! What this checks under KVM: every guest of a 2- and a 3-VM configuration boots, finds its
//! own virtio-accel device (ID 0xffff), and runs its command; console lines carry the VM's
//! name; `accelvm stats` reads every tenant while the guests run; killing one guest (a guest
//! kernel panic) ends only that VM while the others finish; the exit status is the first
//! failing VM's. Request traffic driven by the guests through the guest driver is checked in
//! `kvm_load`; `device_level` checks the same properties without KVM.

use crate::common::{ScenarioOutput, run_scenario};

fn toml_vm(name: &str, weight: u32, cmd: &str) -> String {
    format!(
        r#"
[[vm]]
name = "{name}"
kernel = "KERNEL"
initrd = "INITRD"
memory = 256
guest-cmd = '{cmd}'
  [[vm.accel]]
  accelerator = "acc0"
  weight = {weight}
"#
    )
}

const ACC: &str = r#"
[[accelerator]]
name = "acc0"
workers = 2
max-tenants = 3
"#;

/// Writes `toml` to FILE in the scenario, with the harness's image paths filled in.
fn write_config(file: &str, toml: &str) -> String {
    format!(
        "cat > {file}.in <<'ACCELVM_EOF'\n{toml}\nACCELVM_EOF\n\
         sed -e \"s|KERNEL|$ACCELVM_GUEST_KERNEL|\" -e \"s|INITRD|$ACCELVM_GUEST_INITRD|\" {file}.in > {file}\n"
    )
}

/// A guest command: the virtio device IDs it sees, then a marker with its name.
fn probe_cmd(name: &str) -> String {
    format!(
        "echo DEVICES_{name}=$(cat /sys/bus/virtio/devices/*/device | tr \"\\n\" ,); sleep 2; echo FINISHED_{name}"
    )
}

fn scenario() -> String {
    let two = format!(
        "{ACC}{}{}",
        toml_vm("alpha", 1, &probe_cmd("alpha")),
        toml_vm("beta", 3, &(probe_cmd("beta") + "; exit 5"))
    );
    // gamma panics its kernel a moment after booting, while alpha and beta keep running.
    let three = format!(
        "{ACC}{}{}{}",
        toml_vm(
            "alpha",
            1,
            &(probe_cmd("alpha") + "; sleep 6; echo LATE_alpha")
        ),
        toml_vm(
            "beta",
            1,
            &(probe_cmd("beta") + "; sleep 6; echo LATE_beta")
        ),
        toml_vm(
            "gamma",
            1,
            "echo GAMMA_UP; sleep 1; echo c > /proc/sysrq-trigger; echo NOT_REACHED"
        )
    );
    format!(
        r#"{w2}{w3}
echo "=== two VMs"
accelvm run --config two.toml
echo "TWO_STATUS=$?"
echo "=== three VMs, stats while running, gamma killed"
accelvm run --config three.toml --api-socket api.sock > three.out 2>&1 &
pid=$!
i=0
while [ $i -lt 600 ]; do
    if accelvm stats --socket api.sock --json > stats.json 2>/dev/null && [ "$(grep -c '"running"' stats.json)" -ge 3 ]; then break; fi
    sleep 0.2; i=$((i + 1))
done
accelvm stats --socket api.sock > stats.txt 2>&1
echo "STATS_TABLE_STATUS=$?"
wait $pid
echo "THREE_STATUS=$?"
sed 's/^/three: /' three.out
sed 's/^/table: /' stats.txt
echo "STATS_JSON=$(tr -d '\n ' < stats.json)"
test -e api.sock && echo SOCKET_LEFT_BEHIND
"#,
        w2 = write_config("two.toml", &two),
        w3 = write_config("three.toml", &three),
    )
}

fn line_starting<'a>(out: &'a ScenarioOutput, prefix: &str) -> Option<&'a str> {
    out.lines().find(|l| l.starts_with(prefix))
}

#[test]
fn two_and_three_guests_share_one_accelerator() {
    let out = run_scenario(&scenario());
    let dump = out.dump();
    // Two VMs: both see their virtio-accel device, lines are prefixed, beta's 5 is the status.
    for name in ["alpha", "beta"] {
        let line = line_starting(&out, &format!("[{name}] DEVICES_{name}="))
            .unwrap_or_else(|| panic!("{name} did not report its devices:\n{dump}"));
        assert!(line.contains("0xffff"), "{line}");
        assert!(out.has_line(&format!("[{name}] FINISHED_{name}")), "{dump}");
    }
    assert!(
        out.has_line("TWO_STATUS=5"),
        "the first failing VM's status:\n{dump}"
    );

    // Three VMs: gamma panicked; alpha and beta ran to the end; status 1 names gamma.
    assert!(out.has_line("three: [gamma] GAMMA_UP"), "{dump}");
    assert!(!dump.contains("NOT_REACHED"), "{dump}");
    for name in ["alpha", "beta"] {
        assert!(
            out.has_line(&format!("three: [{name}] LATE_{name}")),
            "{name} was disturbed:\n{dump}"
        );
    }
    assert!(out.has_line("THREE_STATUS=1"), "{dump}");
    assert!(
        dump.contains("three: accelvm: error: vm gamma: the guest stopped (reboot or panic)"),
        "{dump}"
    );
    // Stats while running: one accelerator, three tenants with their weights, three VMs.
    assert!(out.has_line("STATS_TABLE_STATUS=0"), "{dump}");
    let json = line_starting(&out, "STATS_JSON=").expect("stats json");
    for name in ["alpha", "beta", "gamma"] {
        assert!(json.contains(&format!("\"vm\":\"{name}\"")), "{json}");
        assert!(dump.contains(&format!("table:   {name}")), "{dump}");
    }
    assert!(
        json.contains("\"name\":\"acc0\"") && json.contains("\"workers\":2"),
        "{json}"
    );
    assert!(
        !out.has_line("SOCKET_LEFT_BEHIND"),
        "the API socket is removed at exit"
    );
}
