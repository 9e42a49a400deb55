//! Sharing measured at the device level: several virtio-accel devices (one per "VM"), each on
//! its own rings in its own guest memory with its own event-loop thread, over one
//! `SharedAccelerator` with real worker threads running the software backend. These are the
//! property checks that need saturation and latency percentiles, which the emulated test
//! host cannot produce from inside guests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use accelvm_devices::virtio::accel::Accelerator;
use accelvm_devices::virtio::accel::backend::aead::AeadKey;
use accelvm_devices::virtio::accel::backend::shared::{
    BucketConfig, SharedAccelerator, SharedConfig, TenantConfig, TenantLimits,
};
use accelvm_devices::virtio::accel::mock_vm::MockAccelDriver;
use accelvm_devices::virtio::accel::protocol::Status;
use accelvm_devices::virtio::accel::{Accel, AccelConfig, SoftwareAccelerator};

const OK: u32 = Status::Ok as u32;

/// Measurements run one at a time: two of them sharing the CPUs would measure each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Throughput of one paced worker, bytes per second.
const PACE: u64 = 50_000_000;

/// A software backend that also takes at least `cost / PACE` per job, sleeping the rest:
/// a fixed-throughput device like a hardware engine. It makes the accelerator, not the
/// load generator on a small shared host, the bottleneck, which is what "saturation" means
/// for the scheduler. Results are still computed (and checked) by the real backend.
struct Paced(SoftwareAccelerator);

impl Accelerator for Paced {
    fn capabilities(&self) -> accelvm_devices::virtio::accel::backend::Capabilities {
        self.0.capabilities()
    }
    fn submit(
        &self,
        job: accelvm_devices::virtio::accel::backend::Job,
        sink: Arc<dyn accelvm_devices::virtio::accel::backend::CompletionSink>,
    ) -> Result<(), accelvm_devices::virtio::accel::backend::SubmitError> {
        let until = Instant::now() + Duration::from_nanos(job.cost() * 1_000_000_000 / PACE);
        struct Delay {
            until: Instant,
            sink: Arc<dyn accelvm_devices::virtio::accel::backend::CompletionSink>,
        }
        impl accelvm_devices::virtio::accel::backend::CompletionSink for Delay {
            fn complete(&self, r: accelvm_devices::virtio::accel::backend::JobResult) {
                let left = self.until.saturating_duration_since(Instant::now());
                thread::sleep(left);
                self.sink.complete(r);
            }
        }
        self.0.submit(job, Arc::new(Delay { until, sink }))
    }
}

pub fn paced_accelerator(workers: usize) -> Arc<SharedAccelerator> {
    let sw = SoftwareAccelerator::new(0).unwrap();
    let offered = sw.capabilities();
    Arc::new(
        SharedAccelerator::new(
            Arc::new(Paced(sw)),
            SharedConfig {
                name: "paced".into(),
                workers,
                offered,
                max_tenants: 8,
            },
        )
        .unwrap(),
    )
}

pub fn accelerator(workers: usize) -> Arc<SharedAccelerator> {
    let sw = SoftwareAccelerator::new(0).unwrap();
    let offered = sw.capabilities();
    Arc::new(
        SharedAccelerator::new(
            Arc::new(sw),
            SharedConfig {
                name: "acc".into(),
                workers,
                offered,
                max_tenants: 8,
            },
        )
        .unwrap(),
    )
}

pub fn vm(
    acc: &SharedAccelerator,
    name: &str,
    weight: u32,
    limits: TenantLimits,
) -> MockAccelDriver {
    let caps = acc.offered();
    let handle = acc
        .attach(TenantConfig {
            name: name.into(),
            weight,
            limits,
            caps,
        })
        .unwrap();
    let cfg = AccelConfig {
        crypto_queues: 1,
        tenant: handle.id(),
        ..AccelConfig::default()
    };
    MockAccelDriver::new(Accel::new(handle, cfg).unwrap()).unwrap()
}

pub fn seal(key: &[u8], iv: &[u8; 12], pt: &[u8]) -> Vec<u8> {
    let k = AeadKey::new(key).unwrap();
    let mut buf = pt.to_vec();
    let mut tag = [0u8; 16];
    k.seal(iv, &[], &mut buf, 16, &mut tag).unwrap();
    buf.extend_from_slice(&tag);
    buf
}

/// Keeps `v`'s queue full of `size`-byte encryptions until `stop`; checks every result
/// against an independent computation when `verify`. Returns (completed, bytes).
pub fn flood(v: &mut MockAccelDriver, size: usize, stop: &AtomicBool, verify: bool) -> (u64, u64) {
    let key = [0x33u8; 32];
    let (st, h) = v.create_session(&key);
    assert_eq!(st, OK);
    let mut n = 0u64;
    let mut sent = 0u64;
    let mut want: HashMap<u64, [u8; 12]> = HashMap::new();
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let expected_for = |iv: &[u8; 12]| seal(&key, iv, &payload);
    let mut cache: HashMap<[u8; 12], Vec<u8>> = HashMap::new();
    while !stop.load(Ordering::Relaxed) || v.outstanding() > 0 {
        while !stop.load(Ordering::Relaxed) && v.free_slots() > 0 {
            let iv = [(sent % 4) as u8; 12];
            let id = v.submit_aead(true, h, iv, &[], &payload).unwrap();
            want.insert(id, iv);
            sent += 1;
        }
        for c in v.wait_completions(Duration::from_millis(50)) {
            assert_eq!(c.status, OK);
            let iv = want.remove(&c.id).unwrap();
            if verify {
                let e = cache.entry(iv).or_insert_with(|| expected_for(&iv));
                assert_eq!(&c.output, e, "wrong ciphertext");
            }
            n += 1;
        }
    }
    (n, n * size as u64)
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Closed loop: one request at a time; returns the latencies.
fn probe(v: &mut MockAccelDriver, size: usize, samples: usize) -> Vec<Duration> {
    let key = [0x44u8; 16];
    let (_, h) = v.create_session(&key);
    let pt = vec![0x5a; size];
    let mut lat = Vec::with_capacity(samples);
    for i in 0..samples {
        let iv = [i as u8; 12];
        v.submit_aead(true, h, iv, &[], &pt).unwrap();
        let c = loop {
            let c = v.wait_completions(Duration::from_secs(10));
            if !c.is_empty() {
                break c;
            }
        };
        assert_eq!(c[0].status, OK);
        assert_eq!(c[0].output, seal(&key, &iv, &pt));
        lat.push(c[0].completed - c[0].submitted);
    }
    lat
}

/// Runs `vms` flooding concurrently for `warmup + window`; returns each VM's bytes
/// completed during the window, read from the accelerator's per-tenant counters.
fn window_bytes(
    acc: &Arc<SharedAccelerator>,
    vms: Vec<MockAccelDriver>,
    size: usize,
    window: Duration,
    must_queue: &[&str],
) -> Vec<u64> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(vms.len() + 1));
    let threads: Vec<_> = vms
        .into_iter()
        .map(|mut v| {
            let (stop, start) = (stop.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                flood(&mut v, size, &stop, false)
            })
        })
        .collect();
    start.wait();
    thread::sleep(Duration::from_millis(500));
    let before = acc.stats();
    let mut saturated_samples = 0;
    let t0 = Instant::now();
    while t0.elapsed() < window {
        thread::sleep(Duration::from_millis(50));
        // Saturation: the named tenants have work waiting at the accelerator.
        let st = acc.stats();
        if st
            .tenants
            .iter()
            .filter(|t| must_queue.contains(&t.name.as_str()))
            .all(|t| t.snapshot.queued > 0)
        {
            saturated_samples += 1;
        }
    }
    let after = acc.stats();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let samples = window.as_millis() as usize / 50;
    assert!(
        saturated_samples * 10 >= samples * 8,
        "tenants were not saturated ({saturated_samples}/{samples} samples)"
    );
    before
        .tenants
        .iter()
        .zip(&after.tenants)
        .map(|(b, a)| a.snapshot.counters.bytes - b.snapshot.counters.bytes)
        .collect()
}

#[test]
fn weights_one_to_three_under_saturation() {
    let _serial = serial();
    let acc = paced_accelerator(1);
    let vms = vec![
        vm(&acc, "w1", 1, TenantLimits::default()),
        vm(&acc, "w3", 3, TenantLimits::default()),
    ];
    let bytes = window_bytes(&acc, vms, 64 << 10, Duration::from_secs(3), &["w1", "w3"]);
    let ratio = bytes[1] as f64 / bytes[0] as f64;
    println!("weights 1:3 -> bytes {bytes:?}, ratio {ratio:.3}");
    assert!(
        (ratio - 3.0).abs() <= 0.3,
        "throughput ratio {ratio:.3}, want 3 ± 10%"
    );
}

#[test]
fn three_vms_equal_weights_share_equally() {
    let _serial = serial();
    let acc = paced_accelerator(2);
    let vms = (0..3)
        .map(|i| vm(&acc, &format!("v{i}"), 1, TenantLimits::default()))
        .collect();
    let bytes = window_bytes(
        &acc,
        vms,
        32 << 10,
        Duration::from_secs(3),
        &["v0", "v1", "v2"],
    );
    let mean = bytes.iter().sum::<u64>() as f64 / 3.0;
    println!("equal weights, 3 VMs -> bytes {bytes:?}");
    for b in &bytes {
        assert!(
            (*b as f64 - mean).abs() <= 0.1 * mean,
            "{bytes:?} not within 10% of equal"
        );
    }
}

#[test]
fn a_flooding_vm_keeps_a_light_vms_p99_within_three_times_solo() {
    let _serial = serial();
    const SIZE: usize = 64 << 10;
    let acc = paced_accelerator(2);
    let mut light = vm(&acc, "light", 1, TenantLimits::default());
    let mut heavy = vm(&acc, "heavy", 1, TenantLimits::default());
    probe(&mut light, SIZE, 50);
    let solo = percentile(probe(&mut light, SIZE, 400), 0.99);
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let flooder = thread::spawn(move || flood(&mut heavy, SIZE, &s2, false));
    thread::sleep(Duration::from_millis(300));
    let loaded = probe(&mut light, SIZE, 400);
    let busy = acc
        .stats()
        .tenants
        .iter()
        .find(|t| t.name == "heavy")
        .unwrap()
        .snapshot
        .queued;
    stop.store(true, Ordering::Relaxed);
    let (heavy_ops, _) = flooder.join().unwrap();
    let under_flood = percentile(loaded, 0.99);
    println!(
        "light p99 solo {solo:?}, under flood {under_flood:?} ({heavy_ops} flood requests, {busy} queued)"
    );
    assert!(
        heavy_ops > 400,
        "the flood did not flood ({heavy_ops} requests)"
    );
    assert!(
        under_flood <= solo * 3,
        "p99 under flood {under_flood:?} > 3 x solo {solo:?}"
    );
}

#[test]
fn a_byte_rate_limit_holds_within_ten_percent() {
    let _serial = serial();
    const RATE: u64 = 10_000_000;
    let acc = paced_accelerator(2);
    let limits = TenantLimits {
        bytes: Some(BucketConfig::per_second(RATE, 100)),
        ..TenantLimits::default()
    };
    let limited = vm(&acc, "limited", 1, limits);
    let free = vm(&acc, "free", 1, TenantLimits::default());
    let window = Duration::from_secs(3);
    let t0 = Instant::now();
    let bytes = window_bytes(&acc, vec![limited, free], 16 << 10, window, &["limited"]);
    let _ = t0;
    let rate = bytes[0] as f64 / window.as_secs_f64();
    println!(
        "limit {RATE} B/s -> measured {rate:.0} B/s; unlimited neighbour {} B/s",
        bytes[1] as f64 / 3.0
    );
    assert!(
        (rate - RATE as f64).abs() <= 0.1 * RATE as f64,
        "rate {rate:.0} B/s for a {RATE} B/s limit"
    );
    assert!(
        bytes[1] > bytes[0],
        "the unlimited VM is not held back by its neighbour's limit"
    );
    let limited_stats = acc.stats();
    assert!(limited_stats.tenants.is_empty() || limited_stats.total.throttled_ns > 0);
}

#[test]
fn killing_one_vm_mid_stream_leaves_the_others_correct() {
    let _serial = serial();
    let acc = accelerator(2);
    let stop = Arc::new(AtomicBool::new(false));
    let survivors: Vec<_> = (0..2)
        .map(|i| {
            let mut v = vm(&acc, &format!("s{i}"), 1, TenantLimits::default());
            let stop = stop.clone();
            thread::spawn(move || flood(&mut v, 4096 + i * 1000, &stop, true))
        })
        .collect();
    let mut victim = vm(&acc, "victim", 1, TenantLimits::default());
    let (_, h) = victim.create_session(&[7; 32]);
    for i in 0..30u8 {
        victim
            .submit_aead(true, h, [i; 12], &[], &[i; 60000])
            .unwrap();
    }
    thread::sleep(Duration::from_millis(20));
    // The VM dies with requests queued and running: its event loop and device go away.
    drop(victim);
    let at_kill = acc.stats();
    thread::sleep(Duration::from_millis(500));
    let stats = acc.stats();
    stop.store(true, Ordering::Relaxed);
    for s in survivors {
        let (n, _) = s.join().unwrap();
        assert!(n > 100, "survivor stalled after {n} requests");
    }
    for (a, b) in at_kill.tenants.iter().zip(&stats.tenants) {
        assert!(
            b.snapshot.counters.requests > a.snapshot.counters.requests + 50,
            "{} made no progress after the kill",
            b.name
        );
    }
    assert_eq!(stats.tenants.len(), 2, "the victim detached");
    assert!(
        stats
            .tenants
            .iter()
            .all(|t| t.snapshot.counters.errors == 0)
    );
}

#[test]
fn cross_vm_handles_are_refused() {
    let acc = accelerator(1);
    let mut a = vm(&acc, "a", 1, TenantLimits::default());
    let mut b = vm(&acc, "b", 1, TenantLimits::default());
    let handles: Vec<u64> = (0..4).map(|i| a.create_session(&[i; 32]).1).collect();
    let (_, own) = b.create_session(&[9; 32]);
    for h in handles {
        b.submit_aead(true, h, [0; 12], &[], b"probe").unwrap();
        let c = b.wait_completions(Duration::from_secs(5));
        assert_eq!(
            c[0].status,
            Status::NoSession as u32,
            "handle {h:#x} of vm a"
        );
    }
    b.submit_aead(true, own, [0; 12], &[], b"probe").unwrap();
    assert_eq!(b.wait_completions(Duration::from_secs(5))[0].status, OK);
}
