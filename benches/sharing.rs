//! Aggregate throughput of 1, 2 and 3 VMs sharing one accelerator.
//!
//! Each "VM" is a virtio-accel device on its own rings in its own guest memory with its own
//! event-loop thread, driven by a load thread that keeps its queue full (128 requests in
//! flight) of deflate compressions or AES-256-GCM encryptions; all devices map to one
//! `SharedAccelerator` (software backend, 1 or 2 worker threads). The goal (issue 7) is a
//! 3-VM aggregate >= 0.9 of one VM alone.
//!
//! The generators are kept cheap so one VM can saturate a worker: the mock driver writes
//! each request straight into guest memory, kicks only when the device has not suppressed
//! notifications (as a Linux driver does), and does not copy outputs back out (only statuses
//! are checked; `SHARING_BENCH_READ_OUTPUT=1` copies them as before).
//!
//! A row measures the accelerator only if the accelerator is the bottleneck, so every point
//! reports why it got the number it got:
//! - "backlog": share of 1 ms samples in which some request was queued at the accelerator
//!   waiting for a worker. Near 100% means the load generators kept it saturated (a worker
//!   that came free always had work); lower means the row measures the generators.
//! - "wk cpu": the worker threads' on-CPU time over workers x elapsed (from
//!   /proc/self/task/*/schedstat); "wk wait": their time runnable but not running (waiting
//!   for a core the load generators, the device threads or other processes held); "wk idle"
//!   the rest (waiting for a job or for the scheduler's lock). A saturated accelerator with a
//!   low "wk cpu" and ~0 "wk idle" is short of cores, not slow; "wk idle" with a backlog
//!   would mean dispatch loses time.
//! - "MB/s/core": bytes per worker on-CPU second, i.e. what one worker does per core it gets:
//!   the accelerator's efficiency, independent of how many cores the rest of the machine left
//!   it.
//! - "gen cores": cores used by the generators' load and device threads; "dev wake": times
//!   per request a device's event-loop thread went to sleep and had to be woken again (each
//!   wakeup costs the waker, often the worker, a futex/eventfd syscall and an IPI).
//!
//! Software workers are CPU threads: on a machine with few cores, workers plus generators
//! compete for the same cores (2 workers on 2 cores can only get what the 1-6 generator
//! threads leave). Rounds are interleaved (every row once per round) so a burst of outside
//! load hits all rows alike; the summary gives the median and the min-max over rounds, and
//! the load average at each point.
//!
//! Run: `cargo bench --bench sharing` (env `SHARING_BENCH_SECS`, default 3 s per point;
//! `SHARING_BENCH_ROUNDS`, default 3; `SHARING_BENCH_WORKERS` overrides the worker count
//! of every row; `SHARING_BENCH_ONLY` keeps the rows whose "label size" contains it, e.g.
//! "Gcm/1w 16384"; `SHARING_BENCH_IN_FLIGHT`, requests each VM keeps in flight, default and
//! at most 128).

use std::collections::HashMap;
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

/// Requests each VM keeps in flight by default (the mock driver's ring holds 128).
const IN_FLIGHT: usize = 128;
/// A row is "saturated" when a request was waiting at the accelerator in this share of
/// samples.
const SATURATED_BACKLOG: f64 = 0.95;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn accelerator(workers: usize) -> Arc<SharedAccelerator> {
    let sw = SoftwareAccelerator::new(0).unwrap();
    let offered = sw.capabilities();
    Arc::new(
        SharedAccelerator::new(
            Arc::new(sw),
            SharedConfig {
                name: "bench".into(),
                workers,
                offered,
                max_tenants: 8,
            },
        )
        .unwrap(),
    )
}

/// The work each VM floods the accelerator with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    /// AES-256-GCM encryption: about as costly per byte as the load generator's copies.
    Gcm,
    /// Deflate (level 6) of text: far costlier per byte than the generator's copies.
    Deflate,
}

fn vm(acc: &SharedAccelerator, i: usize, work: Work) -> MockAccelDriver {
    let handle = acc
        .attach(TenantConfig {
            name: format!("vm{i}"),
            weight: 1,
            limits: TenantLimits::default(),
            caps: acc.offered(),
        })
        .unwrap();
    let cfg = AccelConfig {
        // The mock drives the first data queue: crypto's, or compression's without crypto.
        crypto_queues: u16::from(work == Work::Gcm),
        comp_queues: 1,
        tenant: handle.id(),
        ..AccelConfig::default()
    };
    MockAccelDriver::new(Accel::new(handle, cfg).unwrap()).unwrap()
}

/// Text-like compressible data (words from a small vocabulary).
fn text(size: usize) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "virtio ", "accel ", "queue ", "guest ", "session ", "tunnel\n", "0x1f2e ", "lz4 ",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(size + 8);
    while v.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(WORDS[(x % 8) as usize].as_bytes());
    }
    v.truncate(size);
    v
}

fn load(mut v: MockAccelDriver, size: usize, work: Work, in_flight: usize, stop: Arc<AtomicBool>) {
    let h = if work == Work::Gcm {
        let (st, h) = v.create_session(&[0x11; 32]);
        assert_eq!(st, Status::Ok as u32);
        h
    } else {
        0
    };
    // Only statuses are checked: copying every output out would be generator work.
    v.set_read_output(std::env::var_os("SHARING_BENCH_READ_OUTPUT").is_some());
    let payload = text(size);
    while !stop.load(Ordering::Relaxed) || v.outstanding() > 0 {
        while !stop.load(Ordering::Relaxed) && v.outstanding() < in_flight && v.free_slots() > 0 {
            match work {
                Work::Gcm => v.submit_aead(true, h, [1; 12], &[], &payload),
                Work::Deflate => v.submit_compress(&payload, size + 1024),
            }
            .unwrap();
        }
        for c in v.wait_completions(Duration::from_millis(50)) {
            assert_eq!(c.status, Status::Ok as u32);
        }
    }
}

/// What the kernel says about one thread.
#[derive(Clone, Debug, Default)]
struct ThreadTimes {
    name: String,
    /// Nanoseconds on a CPU.
    on: u64,
    /// Nanoseconds runnable but waiting for a CPU.
    wait: u64,
    /// Times it went to sleep (voluntary context switches).
    sleeps: u64,
}

/// [`ThreadTimes`] of each thread of this process, by tid (`/proc/self/task/*/schedstat`
/// and `status`).
fn thread_times() -> HashMap<u32, ThreadTimes> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let p = e.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(p.join("schedstat")).unwrap_or_default();
        let mut f = stat
            .split_whitespace()
            .map(|x| x.parse::<u64>().unwrap_or(0));
        let (on, wait) = (f.next().unwrap_or(0), f.next().unwrap_or(0));
        let status = std::fs::read_to_string(p.join("status")).unwrap_or_default();
        let sleeps = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        out.insert(
            tid,
            ThreadTimes {
                name: comm.trim().to_string(),
                on,
                wait,
                sleeps,
            },
        );
    }
    out
}

/// One measured point.
#[derive(Clone, Debug, Default)]
struct Point {
    /// Aggregate MB/s (aad + src bytes).
    agg: f64,
    /// MB/s of each VM.
    per: Vec<f64>,
    /// Share of samples with a request queued at the accelerator (waiting for a worker).
    backlog: f64,
    /// Workers' on-CPU time / (workers x elapsed).
    wk_cpu: f64,
    /// Workers' runqueue wait / (workers x elapsed).
    wk_wait: f64,
    /// MB per worker on-CPU second.
    per_core: f64,
    /// Cores used by the load and device threads.
    gen_cores: f64,
    /// Times the devices' event-loop threads went to sleep (and so had to be woken) per
    /// request.
    dev_wakeups: f64,
    /// Load average (1 min) when the point ended.
    load: String,
}

impl Point {
    /// Share of the workers' time spent neither running nor runnable: blocked on the lock or
    /// waiting for a job. With a backlog this should be ~0, or dispatch is losing time.
    fn wk_idle(&self) -> f64 {
        (1.0 - self.wk_cpu - self.wk_wait).max(0.0)
    }
}

/// Measures `n` VMs for `secs` after a warm-up.
fn aggregate(n: usize, size: usize, work: Work, secs: f64, workers: usize) -> Point {
    let in_flight = env_or("SHARING_BENCH_IN_FLIGHT", IN_FLIGHT);
    let acc = accelerator(workers);
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let v = vm(&acc, i, work);
            let stop = stop.clone();
            thread::Builder::new()
                .name(format!("load-vm{i}"))
                .spawn(move || load(v, size, work, in_flight, stop))
                .unwrap()
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let before = acc.stats();
    let cpu0 = thread_times();
    let t0 = Instant::now();
    let (mut samples, mut waiting) = (0u32, 0u32);
    while t0.elapsed().as_secs_f64() < secs {
        thread::sleep(Duration::from_millis(1));
        samples += 1;
        let queued: u32 = acc.stats().tenants.iter().map(|t| t.snapshot.queued).sum();
        waiting += u32::from(queued > 0);
    }
    let after = acc.stats();
    let cpu1 = thread_times();
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let main_tid = std::process::id();
    let (mut wk_on, mut wk_wait, mut gen_on, mut dev_sleeps) = (0u64, 0u64, 0u64, 0u64);
    for (tid, t1) in &cpu1 {
        let Some(t0) = cpu0.get(tid) else {
            continue;
        };
        let on = t1.on.saturating_sub(t0.on);
        if t1.name.starts_with("accel-bench") {
            wk_on += on;
            wk_wait += t1.wait.saturating_sub(t0.wait);
        } else if *tid != main_tid {
            gen_on += on;
        }
        if t1.name.starts_with("mock-accel") {
            dev_sleeps += t1.sleeps.saturating_sub(t0.sleeps);
        }
    }
    let per: Vec<f64> = before
        .tenants
        .iter()
        .zip(&after.tenants)
        .map(|(b, a)| {
            (a.snapshot.counters.bytes - b.snapshot.counters.bytes) as f64 / elapsed / 1e6
        })
        .collect();
    let bytes = (after.total.bytes - before.total.bytes) as f64;
    let requests = (after.total.requests - before.total.requests).max(1);
    let worker_ns = workers as f64 * elapsed * 1e9;
    Point {
        agg: bytes / elapsed / 1e6,
        per,
        backlog: f64::from(waiting) / f64::from(samples.max(1)),
        wk_cpu: wk_on as f64 / worker_ns,
        wk_wait: wk_wait as f64 / worker_ns,
        per_core: bytes / (wk_on.max(1) as f64 / 1e9) / 1e6,
        gen_cores: gen_on as f64 / (elapsed * 1e9),
        dev_wakeups: dev_sleeps as f64 / requests as f64,
        load: loadavg(),
    }
}

/// One row of the table: a workload on an accelerator with some workers.
#[derive(Clone, Copy)]
struct Row {
    work: Work,
    size: usize,
    workers: usize,
}

impl Row {
    fn label(&self) -> String {
        format!("{:?}/{}w", self.work, self.workers)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn print_point(row: &Row, n: usize, p: &Point, one: f64) {
    let per: Vec<String> = p.per.iter().map(|x| format!("{x:.0}")).collect();
    println!(
        "{:>10} {:>6} {:>3} {:>8.1} {:>6.2} {:>7} {:>6} {:>7} {:>7} {:>9.0} {:>9.2} {:>8.2} {:>16} {:>5}",
        row.label(),
        row.size,
        n,
        p.agg,
        p.agg / one,
        pct(p.backlog),
        pct(p.wk_cpu),
        pct(p.wk_wait),
        pct(p.wk_idle()),
        p.per_core,
        p.gen_cores,
        p.dev_wakeups,
        per.join("/"),
        p.load
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run briefly then.
    let benching = std::env::args().any(|a| a == "--bench");
    let secs: f64 = env_or("SHARING_BENCH_SECS", if benching { 3.0 } else { 0.2 });
    let rounds: usize = env_or("SHARING_BENCH_ROUNDS", if benching { 3 } else { 1 }).max(1);
    let workers = |default: usize| env_or("SHARING_BENCH_WORKERS", default);
    let rows = [
        Row {
            work: Work::Deflate,
            size: 64 << 10,
            workers: workers(1),
        },
        Row {
            work: Work::Deflate,
            size: 64 << 10,
            workers: workers(2),
        },
        Row {
            work: Work::Gcm,
            size: 16 << 10,
            workers: workers(1),
        },
        Row {
            work: Work::Gcm,
            size: 64 << 10,
            workers: workers(1),
        },
        // Small requests: per-request costs (dispatch, wakeups, copies) dominate.
        Row {
            work: Work::Gcm,
            size: 1 << 10,
            workers: workers(1),
        },
    ];
    println!(
        "one software accelerator shared by 1-3 VMs ({} requests in flight each), \
         {secs} s per point, {rounds} interleaved rounds, {} CPUs, load average {}",
        env_or("SHARING_BENCH_IN_FLIGHT", IN_FLIGHT),
        thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let header = format!(
        "{:>10} {:>6} {:>3} {:>8} {:>6} {:>7} {:>6} {:>7} {:>7} {:>9} {:>9} {:>8} {:>16} {:>5}",
        "work",
        "size",
        "VMs",
        "MB/s",
        "vs 1",
        "backlog",
        "wk cpu",
        "wk wait",
        "wk idle",
        "MB/s/core",
        "gen cores",
        "dev wake",
        "per VM MB/s",
        "load"
    );
    println!("{header}");
    // Rows whose label and size contain this string (e.g. "Gcm/1w 16384"), all by default.
    let only = std::env::var("SHARING_BENCH_ONLY").unwrap_or_default();
    let rows: Vec<Row> = rows
        .into_iter()
        .filter(|r| format!("{} {}", r.label(), r.size).contains(&only))
        .collect();
    // points[row][n - 1][round]
    let mut points = vec![vec![Vec::<Point>::new(); 3]; rows.len()];
    for round in 0..rounds {
        for (r, row) in rows.iter().enumerate() {
            for n in 1..=3 {
                let p = aggregate(n, row.size, row.work, secs, row.workers);
                let one = if n == 1 {
                    p.agg
                } else {
                    points[r][0][round].agg
                };
                print_point(row, n, &p, one);
                points[r][n - 1].push(p);
            }
        }
    }
    println!(
        "\nsummary over {rounds} rounds: median aggregate MB/s [min-max], median of the \
         per-round ratios to 1 VM [min-max], lowest backlog, median worker CPU and idle and \
         MB/s per worker core; 'sat' = backlog >= {:.0}% in every round (the row measures the \
         accelerator, not the generators)",
        SATURATED_BACKLOG * 100.0
    );
    println!(
        "{:>10} {:>6} {:>3} {:>22} {:>18} {:>7} {:>6} {:>7} {:>9} {:>4} {:>9}",
        "work",
        "size",
        "VMs",
        "MB/s [min-max]",
        "vs 1 [min-max]",
        "backlog",
        "wk cpu",
        "wk idle",
        "MB/s/core",
        "sat",
        "load"
    );
    for (r, row) in rows.iter().enumerate() {
        for n in 1..=3 {
            let ps = &points[r][n - 1];
            let aggs: Vec<f64> = ps.iter().map(|p| p.agg).collect();
            let ratios: Vec<f64> = ps
                .iter()
                .zip(&points[r][0])
                .map(|(p, o)| p.agg / o.agg)
                .collect();
            let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
            let backlog = min(&ps.iter().map(|p| p.backlog).collect::<Vec<_>>());
            let loads: Vec<f64> = ps.iter().filter_map(|p| p.load.parse().ok()).collect();
            println!(
                "{:>10} {:>6} {:>3} {:>22} {:>18} {:>7} {:>6} {:>7} {:>9.0} {:>4} {:>9}",
                row.label(),
                row.size,
                n,
                format!(
                    "{:.1} [{:.0}-{:.0}]",
                    median(aggs.clone()),
                    min(&aggs),
                    max(&aggs)
                ),
                format!(
                    "{:.2} [{:.2}-{:.2}]",
                    median(ratios.clone()),
                    min(&ratios),
                    max(&ratios)
                ),
                pct(backlog),
                pct(median(ps.iter().map(|p| p.wk_cpu).collect())),
                pct(median(ps.iter().map(Point::wk_idle).collect())),
                median(ps.iter().map(|p| p.per_core).collect()),
                if backlog >= SATURATED_BACKLOG {
                    "yes"
                } else {
                    "no"
                },
                format!("{:.1}-{:.1}", min(&loads), max(&loads)),
            );
        }
    }
}
