//! The comparison peer of the guest driver benchmark (benches/accel-driver.sh): QEMU microvm with
//! virtio-crypto (cryptodev-backend-builtin) and Linux's virtio_crypto driver, which the build
//! makes out of tree (the cloud kernel ships neither it nor crypto_engine). One boot proves the
//! peer path works, so the benchmark's QEMU column cannot silently measure something else:
//! the modules are not loaded at boot, load in order, the driver binds to the device and
//! registers `virtio_crypto_aes_cbc` (its testmgr self-test passed), the NIST CBC-AES128 vectors
//! and random requests up to 64 KiB through AF_ALG by driver name match the kernel's software
//! `cbc(aes-generic)`, the requests raised the device's interrupts, the benchmark mode runs, and
//! asking for a missing driver is a clear error.

mod common;

use std::time::Duration;

use common::{QEMU_MICROVM_GUEST_FN, ScenarioOptions, run_scenario_with};

const GUEST: &str = r#"
echo "ENGINE_AT_BOOT=$(grep -c '^crypto_engine ' /proc/modules)"
echo "VCRYPTO_AT_BOOT=$(grep -c '^virtio_crypto ' /proc/modules)"
modprobe virtio_crypto; echo "MODPROBE=$?"
echo "ENGINE_LOADED=$(grep -c '^crypto_engine ' /proc/modules)"
i=0; until grep -q virtio_crypto_aes_cbc /proc/crypto || [ $i -ge 50 ]; do sleep 0.2; i=$((i + 1)); done
echo "BOUND=$(ls /sys/bus/virtio/drivers/virtio_crypto/ | grep -c '^virtio')"
awk '$1 == "driver" && $3 == "virtio_crypto_aes_cbc" { f = 1 } f && $1 == "selftest" { print "CBC_SELFTEST=" $3; f = 0 }' /proc/crypto
irqs() { awk '/virtio/ { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i } END { print n + 0 }' /proc/interrupts; }
before=$(irqs)
accel-tool skcipher-kat --driver virtio_crypto_aes_cbc; echo "KAT_STATUS=$?"
echo "IRQ_DELTA=$(( $(irqs) - before ))"
accel-tool bench --afalg-skcipher 'cbc(aes)' --driver virtio_crypto_aes_cbc --time-ms 50 --sizes 64,4096 | grep '^AF_ALG' | sed 's/^/BENCHROW /'
accel-tool bench --afalg-skcipher 'cbc(aes)' --driver no_such_driver 2>/tmp/err; echo "MISSING_STATUS=$?"
sed 's/^/MISSING_ERR /' /tmp/err
"#;

#[test]
fn qemu_virtio_crypto_peer_works() {
    let script = format!(
        "{QEMU_MICROVM_GUEST_FN}\ncat >/tmp/g.sh <<'GUEST_END'\n{GUEST}\nGUEST_END\n\
         z=$(gzip -9 </tmp/g.sh | base64 | tr -d '\\n')\n\
         c=$(printf '%s\\n' \"echo $z | base64 -d | gunzip >/tmp/s.sh; sh /tmp/s.sh\" | base64 | tr -d '\\n')\n\
         qemu_microvm_guest \"accelvm.cmd=$c\" -global virtio-mmio.force-legacy=false \
         -object cryptodev-backend-builtin,id=cryptodev0 \
         -device virtio-crypto-device,cryptodev=cryptodev0 </dev/null | tr -d '\\r'\n"
    );
    let opts = ScenarioOptions {
        timeout: Duration::from_secs(600),
        ..Default::default()
    };
    let out = run_scenario_with(&script, &opts);
    out.assert_success();
    let dump = out.dump();
    assert_eq!(out.marker("ACCELVM_EXIT="), "0", "{dump}");
    // Not loaded at boot (other tests' guests stay as they were), loaded in dependency order.
    assert_eq!(out.marker("ENGINE_AT_BOOT="), "0", "{dump}");
    assert_eq!(out.marker("VCRYPTO_AT_BOOT="), "0", "{dump}");
    assert_eq!(out.marker("MODPROBE="), "0", "{dump}");
    assert_eq!(out.marker("ENGINE_LOADED="), "1", "{dump}");
    assert_eq!(out.marker("BOUND="), "1", "{dump}");
    assert_eq!(out.marker("CBC_SELFTEST="), "passed", "{dump}");
    // Known answers and software cross-checks: 2 NIST + 5 sizes x 2 key lengths.
    assert_eq!(out.marker("KAT_STATUS="), "0", "{dump}");
    assert_eq!(out.markers("PASS ").len(), 12, "{dump}");
    assert!(out.markers("FAIL ").is_empty(), "{dump}");
    assert!(
        out.markers("PASS virtio_crypto_aes_cbc NIST SP800-38A CBC-AES128 encrypt: 7649abac")
            .len()
            == 1,
        "{dump}"
    );
    // The requests went to the device: at least one interrupt per request (22 requests).
    let irq: u64 = out.marker("IRQ_DELTA=").parse().expect("IRQ_DELTA number");
    assert!(
        irq >= 22,
        "only {irq} virtio interrupts during the checks\n{dump}"
    );
    // The benchmark mode the comparison uses: one row per size with a positive rate.
    let rows = out.markers("BENCHROW AF_ALG skcipher virtio_crypto_aes_cbc");
    assert_eq!(rows.len(), 2, "{dump}");
    for r in rows {
        let ops: f64 = r
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(ops > 0.0, "bench row without a rate: {r}\n{dump}");
    }
    // A missing driver is a clear error, not a silent measurement of another implementation.
    assert_eq!(out.marker("MISSING_STATUS="), "1", "{dump}");
    assert!(
        out.markers("MISSING_ERR accel-tool: crypto driver no_such_driver is not registered")
            .len()
            == 1,
        "{dump}"
    );
}
