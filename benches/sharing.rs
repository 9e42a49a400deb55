//! Aggregate throughput of 1, 2 and 3 VMs sharing one accelerator.
//!
//! Each "VM" is a virtio-accel device on its own rings in its own guest memory with its own
//! event-loop thread, driven by a load thread that keeps its queue full of AES-256-GCM
//! encryptions; all devices map to one `SharedAccelerator` (software backend, `WORKERS`
//! worker threads). Prints a table; the goal (issue 7) is 3-VM aggregate >= 0.9 of one VM.
//!
//! Run: `cargo bench --bench sharing` (env `SHARING_BENCH_SECS`, default 3 s per point).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use accelvm_devices::virtio::accel::backend::shared::{
    SharedAccelerator, SharedConfig, TenantConfig, TenantLimits,
};
use accelvm_devices::virtio::accel::mock_vm::MockAccelDriver;
use accelvm_devices::virtio::accel::protocol::Status;
use accelvm_devices::virtio::accel::{Accel, AccelConfig, Accelerator, SoftwareAccelerator};

const WORKERS: usize = 2;

fn accelerator() -> Arc<SharedAccelerator> {
    let sw = SoftwareAccelerator::new(0).unwrap();
    let offered = sw.capabilities();
    Arc::new(
        SharedAccelerator::new(
            Arc::new(sw),
            SharedConfig {
                name: "bench".into(),
                workers: WORKERS,
                offered,
                max_tenants: 8,
            },
        )
        .unwrap(),
    )
}

fn vm(acc: &SharedAccelerator, i: usize) -> MockAccelDriver {
    let handle = acc
        .attach(TenantConfig {
            name: format!("vm{i}"),
            weight: 1,
            limits: TenantLimits::default(),
            caps: acc.offered(),
        })
        .unwrap();
    let cfg = AccelConfig {
        crypto_queues: 1,
        tenant: handle.id(),
        ..AccelConfig::default()
    };
    MockAccelDriver::new(Accel::new(handle, cfg).unwrap()).unwrap()
}

fn load(mut v: MockAccelDriver, size: usize, stop: Arc<AtomicBool>) {
    let (st, h) = v.create_session(&[0x11; 32]);
    assert_eq!(st, Status::Ok as u32);
    let payload = vec![0xa5u8; size];
    while !stop.load(Ordering::Relaxed) || v.outstanding() > 0 {
        while !stop.load(Ordering::Relaxed) && v.free_slots() > 0 {
            v.submit_aead(true, h, [1; 12], &[], &payload).unwrap();
        }
        for c in v.wait_completions(Duration::from_millis(50)) {
            assert_eq!(c.status, Status::Ok as u32);
        }
    }
}

/// Aggregate MB/s (aad + src bytes) of `n` VMs over `secs` after a warm-up.
fn aggregate(n: usize, size: usize, secs: f64) -> (f64, Vec<f64>) {
    let acc = accelerator();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let v = vm(&acc, i);
            let stop = stop.clone();
            thread::spawn(move || load(v, size, stop))
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let before = acc.stats();
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs_f64(secs));
    let after = acc.stats();
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let per: Vec<f64> = before
        .tenants
        .iter()
        .zip(&after.tenants)
        .map(|(b, a)| {
            (a.snapshot.counters.bytes - b.snapshot.counters.bytes) as f64 / elapsed / 1e6
        })
        .collect();
    (
        (after.total.bytes - before.total.bytes) as f64 / elapsed / 1e6,
        per,
    )
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run briefly then.
    let benching = std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("SHARING_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 3.0 } else { 0.2 });
    println!(
        "one software accelerator, {WORKERS} workers, AES-256-GCM encrypt, {secs} s per point"
    );
    println!(
        "{:>8} {:>4} {:>14} {:>10} {:>28}",
        "size", "VMs", "aggregate MB/s", "vs 1 VM", "per VM MB/s"
    );
    for size in [16 << 10, 64 << 10] {
        let mut one = 0.0;
        for n in 1..=3 {
            let (agg, per) = aggregate(n, size, secs);
            if n == 1 {
                one = agg;
            }
            let per: Vec<String> = per.iter().map(|p| format!("{p:.0}")).collect();
            println!(
                "{:>8} {:>4} {:>14.0} {:>10.2} {:>28}",
                size,
                n,
                agg,
                agg / one,
                per.join(" / ")
            );
        }
    }
}
