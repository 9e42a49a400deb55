//! The shared accelerator on real worker threads: results, isolation, limits and exit, both
//! through the `Accelerator` trait and through whole devices on mock rings (one per "VM").
//! Nothing here asserts on wall-clock timing; fairness and rates are tested in `scheduler`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use super::*;
use crate::virtio::accel::backend::aead::AeadKey;
use crate::virtio::accel::backend::{JobOp, SoftwareAccelerator};
use crate::virtio::accel::mock_vm::MockAccelDriver;
use crate::virtio::accel::protocol::{COMP_LZ4, CRYPTO_AES_GCM};
use crate::virtio::accel::{Accel, AccelConfig};

fn crypto_caps() -> Capabilities {
    Capabilities {
        crypto_algos: 1 << CRYPTO_AES_GCM,
        stateless: true,
        ..Capabilities::default()
    }
}

/// Runs jobs inline, but only once the gate is open: keeps jobs queued or running on demand.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
    entered: AtomicUsize,
}

impl Gate {
    fn set(&self, open: bool) {
        *self.open.lock().unwrap() = open;
        self.cv.notify_all();
    }
    fn wait_entered(&self, n: usize) {
        while self.entered.load(Ordering::SeqCst) < n {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

struct GatedBackend {
    gate: Arc<Gate>,
    sw: SoftwareAccelerator,
}

impl Accelerator for GatedBackend {
    fn capabilities(&self) -> Capabilities {
        self.sw.capabilities()
    }
    fn submit(&self, job: Job, sink: Arc<dyn CompletionSink>) -> Result<(), SubmitError> {
        self.gate.entered.fetch_add(1, Ordering::SeqCst);
        let mut open = self.gate.open.lock().unwrap();
        while !*open {
            open = self.gate.cv.wait(open).unwrap();
        }
        drop(open);
        self.sw.submit(job, sink)
    }
}

fn shared(workers: usize, gate: Option<Arc<Gate>>) -> SharedAccelerator {
    let sw = SoftwareAccelerator::new(0).unwrap();
    let backend: Arc<dyn Accelerator> = match gate {
        Some(gate) => Arc::new(GatedBackend { gate, sw }),
        None => Arc::new(sw),
    };
    SharedAccelerator::new(
        backend,
        SharedConfig {
            name: "acc0".into(),
            workers,
            offered: crypto_caps(),
            max_tenants: 8,
        },
    )
    .unwrap()
}

fn tenant(name: &str, weight: u32, limits: TenantLimits) -> TenantConfig {
    TenantConfig {
        name: name.into(),
        weight,
        limits,
        caps: crypto_caps(),
    }
}

/// A "VM": a device on the tenant's handle, driven through mock rings.
fn vm(acc: &SharedAccelerator, name: &str, weight: u32, limits: TenantLimits) -> MockAccelDriver {
    let handle = acc.attach(tenant(name, weight, limits)).unwrap();
    let cfg = AccelConfig {
        crypto_queues: 1,
        comp_queues: 0,
        ipsec_queues: 0,
        tenant: handle.id(),
        ..AccelConfig::default()
    };
    MockAccelDriver::new(Accel::new(handle, cfg).unwrap()).unwrap()
}

fn expected_seal(key: &[u8], iv: &[u8; 12], aad: &[u8], pt: &[u8]) -> Vec<u8> {
    let k = AeadKey::new(key).unwrap();
    let mut buf = pt.to_vec();
    let mut tag = [0u8; 16];
    k.seal(iv, aad, &mut buf, 16, &mut tag).unwrap();
    buf.extend_from_slice(&tag);
    buf
}

const OK: u32 = Status::Ok as u32;

#[test]
fn three_vms_get_correct_results_on_real_threads() {
    let acc = shared(2, None);
    let mut vms: Vec<MockAccelDriver> = (0..3)
        .map(|i| {
            vm(
                &acc,
                &format!("vm{i}"),
                1 + i as u32,
                TenantLimits::default(),
            )
        })
        .collect();
    let keys: Vec<[u8; 32]> = (0..3).map(|i| [0x40 + i as u8; 32]).collect();
    let handles: Vec<u64> = vms
        .iter_mut()
        .zip(&keys)
        .map(|(v, k)| {
            let (st, h) = v.create_session(k);
            assert_eq!(st, OK);
            h
        })
        .collect();
    // Interleave submissions from all three, 120 requests each, various sizes.
    let mut expected: Vec<std::collections::HashMap<u64, Vec<u8>>> = vec![Default::default(); 3];
    let mut sent = [0usize; 3];
    let mut got = [0usize; 3];
    while got.iter().sum::<usize>() < 360 {
        for v in 0..3 {
            while sent[v] < 120 && vms[v].free_slots() > 0 {
                let n = [1usize, 64, 1500, 16384, 65000][(sent[v] + v) % 5];
                let pt: Vec<u8> = (0..n).map(|i| (i * 7 + v + sent[v]) as u8).collect();
                let iv = [sent[v] as u8; 12];
                let aad = [v as u8; 20];
                let id = vms[v].submit_aead(true, handles[v], iv, &aad, &pt).unwrap();
                expected[v].insert(id, expected_seal(&keys[v], &iv, &aad, &pt));
                sent[v] += 1;
            }
            for c in vms[v].wait_completions(Duration::from_millis(5)) {
                assert_eq!(c.status, OK, "vm{v} request {}", c.id);
                assert_eq!(c.output, expected[v].remove(&c.id).unwrap(), "vm{v} output");
                got[v] += 1;
            }
        }
    }
    let stats = acc.stats();
    assert_eq!(stats.total.requests, 360);
    assert_eq!(stats.total.errors, 0);
    assert_eq!(stats.tenants.len(), 3);
    for t in &stats.tenants {
        assert_eq!(t.snapshot.counters.requests, 120, "{}", t.name);
    }
}

#[test]
fn another_vms_handle_gets_no_session() {
    let acc = shared(1, None);
    let mut a = vm(&acc, "a", 1, TenantLimits::default());
    let mut b = vm(&acc, "b", 1, TenantLimits::default());
    let (_, ha) = a.create_session(&[1; 32]);
    let (_, hb) = b.create_session(&[2; 32]);
    assert_ne!(ha, hb, "handles are distinct across tenants");
    // B presents A's handle, and a guess one above its own.
    for h in [ha, hb + 1, ha & 0xffff_ffff] {
        b.submit_aead(true, h, [0; 12], &[], b"secret").unwrap();
        let c = b.wait_completions(Duration::from_secs(5));
        assert_eq!(c[0].status, Status::NoSession as u32, "handle {h:#x}");
    }
    // B cannot destroy A's session either, and A's still works.
    assert_eq!(b.destroy_session(ha), Status::NoSession as u32);
    a.submit_aead(true, ha, [0; 12], &[], b"mine").unwrap();
    let c = a.wait_completions(Duration::from_secs(5));
    assert_eq!(c[0].status, OK);
    assert_eq!(c[0].output, expected_seal(&[1; 32], &[0; 12], &[], b"mine"));
}

#[test]
fn over_the_in_flight_limit_a_vm_gets_busy_not_silence() {
    let gate = Arc::new(Gate::default());
    let acc = shared(1, Some(gate.clone()));
    let limits = TenantLimits {
        max_in_flight: 1,
        policy: LimitPolicy::Busy,
        ..TenantLimits::default()
    };
    let mut v = vm(&acc, "v", 1, limits);
    let (_, h) = v.create_session(&[3; 16]);
    for i in 0..3 {
        v.submit_aead(true, h, [i; 12], &[], b"x").unwrap();
    }
    let mut statuses = Vec::new();
    while statuses.len() < 2 {
        statuses.extend(
            v.wait_completions(Duration::from_secs(5))
                .iter()
                .map(|c| c.status),
        );
    }
    assert_eq!(statuses, vec![Status::Busy as u32; 2]);
    gate.set(true);
    let c = v.wait_completions(Duration::from_secs(5));
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].status, OK);
    let s = acc.stats().tenants[0].snapshot.counters;
    assert_eq!((s.busy, s.requests), (2, 1));
    assert_eq!(v.device().metrics().busy.load(Ordering::Relaxed), 2);
}

#[test]
fn in_flight_limit_with_wait_policy_queues_and_completes_everything() {
    let acc = shared(4, None);
    let limits = TenantLimits {
        max_in_flight: 1,
        ..TenantLimits::default()
    };
    let mut v = vm(&acc, "v", 1, limits);
    let (_, h) = v.create_session(&[4; 32]);
    for i in 0..30 {
        v.submit_aead(true, h, [i; 12], &[], &[i; 4000]).unwrap();
    }
    let mut n = 0;
    while n < 30 {
        for c in v.wait_completions(Duration::from_secs(5)) {
            assert_eq!(c.status, OK);
            n += 1;
        }
    }
    assert_eq!(acc.stats().total.busy, 0);
}

#[test]
fn a_vm_exit_wipes_its_queued_jobs_and_leaves_others_running() {
    let gate = Arc::new(Gate::default());
    let acc = shared(1, Some(gate.clone()));
    let leaving = acc
        .attach(tenant("leaving", 1, TenantLimits::default()))
        .unwrap();
    let staying = acc
        .attach(tenant("staying", 1, TenantLimits::default()))
        .unwrap();
    let done = Arc::new(Collect::default());
    let key = Arc::new(AeadKey::new(&[9; 32]).unwrap());
    let weak: Weak<AeadKey> = Arc::downgrade(&key);
    // The first job occupies the only worker at the gate; the rest stay queued.
    for t in 0..4 {
        leaving.submit(aead_job(&key, t), done.clone()).unwrap();
    }
    staying.submit(aead_job(&key, 100), done.clone()).unwrap();
    gate.wait_entered(1);
    drop(key);
    drop(leaving);
    // Only the running job still holds the key; the queued ones are gone with their refs.
    assert_eq!(
        weak.strong_count(),
        2,
        "running job of 'leaving' + queued job of 'staying'"
    );
    gate.set(true);
    done.wait(2);
    let tokens: Vec<u64> = done.results.lock().unwrap().iter().map(|r| r.0).collect();
    assert!(tokens.contains(&0) && tokens.contains(&100), "{tokens:?}");
    assert_eq!(weak.strong_count(), 0, "every key reference released");
    let stats = acc.stats();
    assert_eq!(stats.tenants.len(), 1);
    assert_eq!(
        stats.total.requests, 2,
        "the departed tenant's count is kept"
    );
    // A submission after the accelerator forgot a tenant cannot happen through a handle
    // (dropping it is the only way to leave), but the staying tenant still works.
    staying
        .submit(
            aead_job(&Arc::new(AeadKey::new(&[1; 16]).unwrap()), 101),
            done.clone(),
        )
        .unwrap();
    done.wait(3);
}

#[derive(Default)]
struct Collect {
    results: Mutex<Vec<(u64, Status)>>,
    cv: Condvar,
}

impl Collect {
    fn wait(&self, n: usize) {
        let g = self.results.lock().unwrap();
        let (g, t) = self
            .cv
            .wait_timeout_while(g, Duration::from_secs(10), |r| r.len() < n)
            .unwrap();
        assert!(!t.timed_out(), "only {} results", g.len());
    }
}

impl CompletionSink for Collect {
    fn complete(&self, r: JobResult) {
        self.results.lock().unwrap().push((r.token, r.status));
        self.cv.notify_all();
    }
}

fn aead_job(key: &Arc<AeadKey>, token: u64) -> Job {
    Job {
        tenant: 999, // the handle overrides whatever the device claims
        token,
        op: JobOp::Encrypt {
            key: key.clone(),
            iv: [0; 12],
            tag_len: 16,
        },
        buf: vec![7; 1000],
        aad: 0..0,
        src: 0..1000,
        out_capacity: 1016,
        spare: Vec::new(),
    }
}

#[test]
fn malformed_and_failing_requests_of_one_vm_do_not_disturb_another() {
    let acc = shared(2, None);
    let mut bad = vm(&acc, "bad", 1, TenantLimits::default());
    let mut good = vm(&acc, "good", 1, TenantLimits::default());
    let (_, hb) = bad.create_session(&[5; 32]);
    let (_, hg) = good.create_session(&[6; 32]);
    let mut bad_statuses = Vec::new();
    for i in 0..20u8 {
        // Decrypting garbage fails authentication in the backend; a bogus handle fails in
        // the device; both interleave with the good VM's work (the queue holds 32).
        if i < 10 {
            bad.submit_aead(false, hb, [i; 12], &[], &[i; 100]).unwrap();
            bad.submit_aead(false, hb, [i + 10; 12], &[], &[i; 100])
                .unwrap();
            bad.submit_aead(true, 0xdead_0000_0000 + u64::from(i), [i; 12], &[], b"x")
                .unwrap();
            bad.submit_aead(true, 0xbeef_0000_0000 + u64::from(i), [i; 12], &[], b"x")
                .unwrap();
            let goal = bad_statuses.len() + 4;
            while bad_statuses.len() < goal {
                let c = bad.wait_completions(Duration::from_secs(5));
                bad_statuses.extend(c.iter().map(|c| c.status));
            }
        }
        good.submit_aead(true, hg, [i; 12], b"hdr", &[i; 3000])
            .unwrap();
    }
    let mut good_ok = 0;
    while good_ok < 20 {
        for c in good.wait_completions(Duration::from_secs(5)) {
            assert_eq!(c.status, OK);
            good_ok += 1;
        }
    }
    assert_eq!(
        bad_statuses
            .iter()
            .filter(|s| **s == Status::AuthFailed as u32)
            .count(),
        20
    );
    assert_eq!(
        bad_statuses
            .iter()
            .filter(|s| **s == Status::NoSession as u32)
            .count(),
        20
    );
    let stats = acc.stats();
    let by_name = |n: &str| {
        stats
            .tenants
            .iter()
            .find(|t| t.name == n)
            .unwrap()
            .snapshot
            .counters
    };
    assert_eq!(by_name("good").errors, 0);
    assert_eq!(by_name("good").requests, 20);
    assert_eq!(by_name("good").bytes, 20 * 3003);
    assert_eq!(
        by_name("bad").errors,
        20,
        "auth failures reach the backend, bad handles do not"
    );
}

#[test]
fn attach_checks_capabilities_limits_and_capacity() {
    let acc = shared(1, None);
    let mut cfg = tenant("x", 1, TenantLimits::default());
    cfg.caps.comp_algos = 1 << COMP_LZ4;
    assert!(matches!(acc.attach(cfg), Err(ShareError::NotOffered(_))));
    let bad_bucket = TenantLimits {
        bytes: Some(BucketConfig {
            size: 0,
            one_time_burst: 0,
            refill_time_ms: 10,
        }),
        ..TenantLimits::default()
    };
    assert!(matches!(
        acc.attach(tenant("y", 1, bad_bucket)),
        Err(ShareError::Bucket)
    ));
    let hs: Vec<_> = (0..8)
        .map(|i| {
            acc.attach(tenant(&format!("t{i}"), 1, TenantLimits::default()))
                .unwrap()
        })
        .collect();
    assert!(matches!(
        acc.attach(tenant("z", 1, TenantLimits::default())),
        Err(ShareError::Full(_, 8))
    ));
    drop(hs);
    acc.attach(tenant("z", 1, TenantLimits::default())).unwrap();
    let sw: Arc<dyn Accelerator> = Arc::new(SoftwareAccelerator::new(0).unwrap());
    let too_much = SharedConfig {
        name: "n".into(),
        workers: 1,
        offered: Capabilities {
            crypto_algos: 1 << 7,
            ..Capabilities::default()
        },
        max_tenants: 1,
    };
    assert!(matches!(
        SharedAccelerator::new(sw.clone(), too_much),
        Err(ShareError::Capabilities)
    ));
    let no_workers = SharedConfig {
        name: "n".into(),
        workers: 0,
        offered: crypto_caps(),
        max_tenants: 1,
    };
    assert!(matches!(
        SharedAccelerator::new(sw, no_workers),
        Err(ShareError::Workers(0))
    ));
}

#[test]
fn device_advertises_the_mapping_not_the_backend() {
    let acc = shared(1, None);
    let handle = acc.attach(tenant("v", 1, TenantLimits::default())).unwrap();
    let dev = Accel::new(handle, AccelConfig::default()).unwrap();
    let cs = dev.config_space();
    assert_eq!(cs.crypto_algos.to_native(), 1 << CRYPTO_AES_GCM);
    assert_eq!(
        cs.comp_algos.to_native(),
        0,
        "the software backend has LZ4, the mapping not"
    );
    assert_eq!(cs.ipsec_algos.to_native(), 0);
    assert_eq!(dev.layout().comp, 0);
}
