//! The configuration checks: every refusal names what is wrong.

use super::*;
use accelvm_devices::virtio::net::MacAddrError;

const ACC: &str = r#"
[[accelerator]]
name = "acc"
workers = 2
crypto = ["aes-gcm"]
"#;

fn vm(name: &str, mapping: &str) -> String {
    format!(
        "[[vm]]\nname = \"{name}\"\nkernel = \"/k\"\n[[vm.accel]]\naccelerator = \"acc\"\n{mapping}\n"
    )
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn the_example_file_is_valid() {
    let text = include_str!("../../../../examples/sharing.toml");
    let plan = parse(text).unwrap();
    assert_eq!(plan.accelerators.len(), 2);
    assert_eq!(plan.vms.len(), 2);
    let web = &plan.vms[0].accels[0];
    assert_eq!(web.weight, 3);
    assert_eq!(web.caps.comp_algos, 0, "web maps crypto and ipsec only");
    assert_ne!(web.caps.ipsec_algos, 0);
    let batch = &plan.vms[1].accels[0];
    assert_eq!(batch.limits.bytes.unwrap().size, 10485760);
    assert_eq!(batch.limits.ops.unwrap().one_time_burst, 5000);
    assert_eq!(plan.accelerators[1].offered.crypto_algos, 0);
    assert_eq!(plan.accelerators[1].offered.comp_algos, 1 << COMP_LZ4);
}

#[test]
fn mappings_get_what_they_ask_for() {
    let text = format!(
        "{ACC}{}{}",
        vm("a", "weight = 2"),
        vm("b", "services = [\"crypto\"]")
    );
    let plan = parse(&text).unwrap();
    assert_eq!(plan.vms[0].accels[0].weight, 2);
    assert_eq!(plan.vms[0].accels[0].caps.crypto_algos, 1 << CRYPTO_AES_GCM);
    assert_eq!(plan.vms[1].accels[0].limits.policy, LimitPolicy::Wait);
}

#[test]
fn a_missing_capability_is_refused() {
    let e = err(&format!("{ACC}{}", vm("a", "services = [\"compression\"]")));
    assert_eq!(e, "vm a: accelerator acc does not offer compression");
}

#[test]
fn an_exclusive_accelerator_claimed_twice_is_refused() {
    let e = err(&format!(
        "{ACC}{}{}",
        vm("a", "mode = \"exclusive\""),
        vm("b", "")
    ));
    assert_eq!(
        e,
        "accelerator acc is mapped exclusively by vm a and also by vm b"
    );
    let e = err(&format!(
        "{ACC}{}{}",
        vm("a", ""),
        vm("b", "mode = \"exclusive\"")
    ));
    assert_eq!(
        e,
        "accelerator acc is mapped exclusively by vm b and also by vm a"
    );
    parse(&format!("{ACC}{}", vm("a", "mode = \"exclusive\""))).unwrap();
}

#[test]
fn unknown_names_are_refused() {
    let e = err(&format!(
        "{ACC}[[vm]]\nname = \"a\"\n[[vm.accel]]\naccelerator = \"nope\"\n"
    ));
    assert_eq!(e, "vm a: unknown accelerator \"nope\"");
    let e = err("[[accelerator]]\nname = \"x\"\nbackend = \"fpga\"\n[[vm]]\nname = \"a\"\n");
    assert!(e.contains("unknown backend \"fpga\""), "{e}");
    let e = err("[[accelerator]]\nname = \"x\"\ncrypto = [\"des\"]\n[[vm]]\nname = \"a\"\n");
    assert!(e.contains("unknown crypto algorithm \"des\""), "{e}");
    let e = err(&format!("{ACC}{}", vm("a", "services = [\"gpu\"]")));
    assert!(e.contains("unknown service \"gpu\""), "{e}");
    let e = err("[[vm]]\nname = \"a\"\nvcpu = 2\n");
    assert!(e.contains("unknown field `vcpu`"), "{e}");
    let e = err(&format!("{ACC}{ACC}[[vm]]\nname = \"a\"\n"));
    assert_eq!(e, "duplicate accelerator name \"acc\"");
    let e = err("[[vm]]\nname = \"a\"\n[[vm]]\nname = \"a\"\n");
    assert_eq!(e, "duplicate vm name \"a\"");
    let e = err("[[vm]]\nname = \"a b\"\n");
    assert!(e.starts_with("invalid vm name"), "{e}");
    assert_eq!(err(ACC), "the configuration declares no [[vm]]");
}

#[test]
fn invalid_limits_are_refused() {
    for (mapping, needle) in [
        ("weight = 0", "invalid weight: 0 is outside 1..=1000"),
        (
            "bandwidth = { size = 0, refill-time-ms = 100 }",
            "invalid bandwidth",
        ),
        ("ops = { size = 10, refill-time-ms = 0 }", "invalid ops"),
        ("on-limit = \"drop\"", "invalid on-limit: \"drop\""),
        ("on-limit = \"busy\"", "\"busy\" needs max-in-flight > 0"),
        ("max-sessions = 0", "invalid max-sessions"),
        ("queues = 0", "invalid queues"),
        ("mode = \"private\"", "invalid mode"),
        ("max-in-flight = -1", "invalid value"),
    ] {
        let e = err(&format!("{ACC}{}", vm("a", mapping)));
        assert!(e.contains(needle), "{mapping}: {e}");
    }
    let e = err(&format!(
        "[[accelerator]]\nname = \"acc\"\nworkers = 0\n{}",
        vm("a", "")
    ));
    assert!(e.contains("workers must be between 1 and 64, got 0"), "{e}");
    let e = err(&format!(
        "[[accelerator]]\nname = \"acc\"\nmax-tenants = 1\n{}{}",
        vm("a", ""),
        vm("b", "")
    ));
    assert_eq!(
        e,
        "accelerator acc serves at most 1 mappings, 2 are configured"
    );
}

fn net_vm(name: &str, nets: &[&str]) -> String {
    let mut t = format!("[[vm]]\nname = \"{name}\"\nkernel = \"/k\"\n");
    for n in nets {
        t.push_str(&format!("[[vm.net]]\n{n}\n"));
    }
    t
}

#[test]
fn nets_become_the_same_specs_as_the_net_option() {
    let text = format!(
        "{}{}",
        net_vm(
            "a",
            &[
                "tap = \"avm0\"\nmac = \"02:00:00:00:00:0a\"",
                "tap = \"avm1\""
            ]
        ),
        net_vm("b", &["tap = \"avm2\""])
    );
    let plan = parse(&text).unwrap();
    let expected: NetPlan = "tap=avm0,mac=02:00:00:00:00:0a".parse().unwrap();
    assert_eq!(plan.vms[0].nets[0], expected);
    assert_eq!(plan.vms[0].nets[1], "tap=avm1".parse().unwrap());
    assert_eq!(
        plan.vms[1].nets,
        vec!["tap=avm2".parse::<NetPlan>().unwrap()]
    );
    assert!(parse(&net_vm("c", &[])).unwrap().vms[0].nets.is_empty());
}

#[test]
fn a_tap_named_twice_is_refused() {
    let e = err(&format!(
        "{}{}",
        net_vm("a", &["tap = \"avm0\""]),
        net_vm("b", &["tap = \"avm1\"", "tap = \"avm0\""])
    ));
    assert_eq!(e, "TAP \"avm0\" is used by vm a and again by vm b");
    let e = err(&net_vm("a", &["tap = \"avm0\"", "tap = \"avm0\""]));
    assert_eq!(e, "TAP \"avm0\" is used by vm a and again by vm a");
}

#[test]
fn bad_nets_are_refused_with_the_reason() {
    let net_err = |net: &str| parse(&net_vm("a", &[net])).unwrap_err();
    let e = net_err("tap = \"avm0\"\nmac = \"02:00:00:00:00\"");
    assert!(
        matches!(&e, FileError::BadNet(vm, tap, NetSpecError::Mac(_)) if vm == "a" && tap == "avm0"),
        "{e:?}"
    );
    let e = net_err("tap = \"avm0\"\nmac = \"01:00:5e:00:00:01\"");
    assert!(
        matches!(
            &e,
            FileError::BadNet(_, _, NetSpecError::Mac(MacAddrError::Multicast(_)))
        ),
        "{e:?}"
    );
    for tap in ["", "name-much-too-long", "tap%d", "a b"] {
        let e = net_err(&format!("tap = {tap:?}"));
        assert!(
            matches!(&e, FileError::BadNet(_, t, NetSpecError::TapName(_)) if t == tap),
            "{tap:?}: {e:?}"
        );
    }
    // The one line accelvm prints: the VM, the TAP, and (from the source) the reason.
    let e = net_err("tap = \"avm0\"\nmac = \"zz\"");
    assert_eq!(e.to_string(), "vm a: [[vm.net]] tap = \"avm0\"");
    let reason = std::error::Error::source(&e).unwrap().to_string();
    assert!(reason.contains("invalid MAC address \"zz\""), "{reason}");
    let e = err(&net_vm("a", &["mac = \"02:00:00:00:00:01\""]));
    assert!(e.contains("missing field `tap`"), "{e}");
    let e = err(&net_vm("a", &["tap = \"avm0\"\nspeed = 10"]));
    assert!(e.contains("unknown field `speed`"), "{e}");
    let nine: Vec<String> = (0..9).map(|i| format!("tap = \"avm{i}\"")).collect();
    let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
    assert_eq!(
        err(&net_vm("a", &nine)),
        "vm a: 9 [[vm.net]] devices, at most 8 are supported"
    );
}
