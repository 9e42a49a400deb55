//! Counters as JSON (what the API serves) and as the table `accelvm stats` prints from it.

use std::fmt::Write;

use accelvm_devices::virtio::accel::backend::shared::Counters;
use serde_json::{Value, json};

use super::Registry;

fn counters(c: &Counters) -> Value {
    json!({
        "requests": c.requests,
        "bytes": c.bytes,
        "errors": c.errors,
        "busy": c.busy,
        "queue_wait_ns": c.queue_wait_ns,
        "throttled_ns": c.throttled_ns,
    })
}

/// The stats document: accelerators with their tenants, and VMs with their devices.
pub fn to_json(registry: &Registry) -> Value {
    let accelerators: Vec<Value> = registry
        .accelerators
        .iter()
        .map(|a| {
            let s = a.stats();
            let tenants: Vec<Value> = s
                .tenants
                .iter()
                .map(|t| {
                    let mut v = counters(&t.snapshot.counters);
                    v["id"] = json!(t.id);
                    v["vm"] = json!(t.name);
                    v["weight"] = json!(t.snapshot.weight);
                    v["queued"] = json!(t.snapshot.queued);
                    v["running"] = json!(t.snapshot.running);
                    v
                })
                .collect();
            let mut v = counters(&s.total);
            v["name"] = json!(s.name);
            v["workers"] = json!(s.workers);
            v["running"] = json!(s.running);
            v["tenants"] = json!(tenants);
            v
        })
        .collect();
    let vms: Vec<Value> = registry
        .vms
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|vm| {
            let devices: Vec<Value> = vm
                .devices
                .iter()
                .map(|(acc, m)| {
                    let mut d = serde_json::Map::new();
                    d.insert("accelerator".into(), json!(acc));
                    for (k, v) in m.snapshot() {
                        d.insert(k.into(), json!(v));
                    }
                    Value::Object(d)
                })
                .collect();
            json!({ "name": vm.name, "state": vm.state, "devices": devices })
        })
        .collect();
    json!({ "accelerators": accelerators, "vms": vms })
}

fn n(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The table `accelvm stats` prints: one row per accelerator, one per tenant under it, then
/// the VMs with their device-level error counters.
pub fn to_table(doc: &Value) -> String {
    let mut out = String::new();
    let head = format!(
        "{:<24} {:>6} {:>7} {:>10} {:>14} {:>7} {:>7} {:>11} {:>13}",
        "ACCELERATOR / VM",
        "WEIGHT",
        "QUEUED",
        "REQUESTS",
        "BYTES",
        "ERRORS",
        "BUSY",
        "WAIT_MS",
        "THROTTLED_MS"
    );
    let _ = writeln!(out, "{head}");
    let row = |out: &mut String, name: String, weight: String, queued: String, v: &Value| {
        let _ = writeln!(
            out,
            "{:<24} {:>6} {:>7} {:>10} {:>14} {:>7} {:>7} {:>11.1} {:>13.1}",
            name,
            weight,
            queued,
            n(v, "requests"),
            n(v, "bytes"),
            n(v, "errors"),
            n(v, "busy"),
            n(v, "queue_wait_ns") as f64 / 1e6,
            n(v, "throttled_ns") as f64 / 1e6
        );
    };
    for a in doc["accelerators"].as_array().into_iter().flatten() {
        let name = format!("{} ({} workers)", s(a, "name"), n(a, "workers"));
        row(&mut out, name, "-".into(), "-".into(), a);
        for t in a["tenants"].as_array().into_iter().flatten() {
            let name = format!("  {}", s(t, "vm"));
            row(
                &mut out,
                name,
                n(t, "weight").to_string(),
                n(t, "queued").to_string(),
                t,
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<16} {:<28} {:<12} {:>10} {:>14} {:>10}",
        "VM", "STATE", "ACCELERATOR", "OK", "BYTES_IN", "REFUSED"
    );
    for vm in doc["vms"].as_array().into_iter().flatten() {
        let devices = vm["devices"].as_array().cloned().unwrap_or_default();
        if devices.is_empty() {
            let _ = writeln!(
                out,
                "{:<16} {:<28} {:<12}",
                s(vm, "name"),
                s(vm, "state"),
                "-"
            );
        }
        for d in &devices {
            let refused: u64 = [
                "bad_request",
                "not_supported",
                "no_session",
                "busy",
                "dropped_no_trailer",
                "bad_address",
                "bad_direction",
                "chain_too_long",
            ]
            .iter()
            .map(|k| n(d, k))
            .sum();
            let _ = writeln!(
                out,
                "{:<16} {:<28} {:<12} {:>10} {:>14} {:>10}",
                s(vm, "name"),
                s(vm, "state"),
                s(d, "accelerator"),
                n(d, "requests_ok"),
                n(d, "bytes_in"),
                refused
            );
        }
    }
    out
}
