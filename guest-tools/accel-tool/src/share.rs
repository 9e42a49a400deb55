//! Commands for the sharing tests (issue 7): sustained verified load, per-request latency
//! percentiles, and the cross-VM handle checks. Every result the device returns is checked:
//! these commands prove both the load a guest puts on a shared accelerator and that the
//! answers it gets back stay correct.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::dev::{AccelDev, DataOp};
use crate::uapi::{self, op, status};
use crate::util::{Rng, text_like};

/// Largest request a sharing command sends (the driver's data limit is larger).
const MAX_SIZE: usize = 128 << 10;
/// Most load threads (each keeps one batch in flight).
const MAX_THREADS: usize = 16;
/// Most seconds a command runs.
const MAX_SECS: u64 = 3600;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Deflate,
    Gcm,
}

/// Options shared by `load` and `latency`.
#[derive(Clone, Debug)]
pub struct ShareOpts {
    pub kind: Kind,
    pub size: usize,
    pub threads: usize,
    pub batch: usize,
    pub secs: u64,
    pub level: u32,
    /// `latency`: print a histogram line every this many ms (0 = only the summary).
    pub window_ms: u64,
}

impl ShareOpts {
    pub fn parse(args: &[String], latency: bool) -> Result<Self, String> {
        let mut o = ShareOpts {
            kind: if latency { Kind::Gcm } else { Kind::Deflate },
            size: if latency { 1024 } else { 64 << 10 },
            threads: 1,
            batch: if latency { 1 } else { 8 },
            secs: 10,
            level: 0,
            window_ms: 0,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let v = it.next().ok_or(format!("{a} needs a value"))?;
            let num = |max: u64| -> Result<u64, String> {
                match v.parse::<u64>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ => Err(format!("{a}: 1..={max}")),
                }
            };
            match a.as_str() {
                "--op" => {
                    o.kind = match v.as_str() {
                        "deflate" => Kind::Deflate,
                        "gcm" => Kind::Gcm,
                        _ => return Err("--op: deflate or gcm".into()),
                    }
                }
                "--size" => o.size = num(MAX_SIZE as u64)? as usize,
                "--threads" if !latency => o.threads = num(MAX_THREADS as u64)? as usize,
                "--batch" if !latency => o.batch = num(uapi::MAX_BATCH as u64)? as usize,
                "--secs" => o.secs = num(MAX_SECS)?,
                "--level" => o.level = num(9)? as u32,
                "--window-ms" if latency => o.window_ms = num(MAX_SECS * 1000)?,
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(o)
    }
}

/// One request template and the answer every copy of it must get.
struct Work {
    template: DataOp,
    expect: Vec<u8>,
}

fn template(dev: &AccelDev, o: &ShareOpts, key_seed: u64) -> io::Result<(Work, Option<u64>)> {
    let mut rng = Rng::new(key_seed);
    let (t, session) = match o.kind {
        Kind::Deflate => (
            DataOp {
                opcode: op::COMPRESS,
                algo: uapi::COMP_DEFLATE,
                level: o.level,
                src: text_like(o.size, o.size as u64),
                dst: vec![0; o.size + o.size / 8 + 1024],
                ..Default::default()
            },
            None,
        ),
        Kind::Gcm => {
            let h = dev.session_create(&rng.bytes(16))?;
            (
                DataOp {
                    opcode: op::ENCRYPT,
                    handle: h,
                    tag_len: 16,
                    iv: rng.bytes(12).try_into().expect("12 bytes"),
                    src: rng.bytes(o.size),
                    dst: vec![0; o.size + 16],
                    ..Default::default()
                },
                Some(h),
            )
        }
    };
    // The reference answer, checked once by the inverse operation on the device.
    let mut first = [t.clone()];
    run_checked(dev, &mut first)?;
    let expect = first[0].dst.clone();
    let mut inverse = [DataOp {
        opcode: if o.kind == Kind::Deflate {
            op::DECOMPRESS
        } else {
            op::DECRYPT
        },
        src: expect.clone(),
        dst: vec![0; o.size],
        ..t.clone()
    }];
    run_checked(dev, &mut inverse)?;
    if inverse[0].dst != t.src {
        return Err(io::Error::other(
            "the inverse operation did not give the input back",
        ));
    }
    Ok((
        Work {
            template: t,
            expect,
        },
        session,
    ))
}

fn run_checked(dev: &AccelDev, ops: &mut [DataOp]) -> io::Result<()> {
    dev.batch(ops)?;
    match ops.iter().find(|o| o.status != status::OK) {
        Some(o) => Err(io::Error::other(format!("device status {}", o.status))),
        None => Ok(()),
    }
}

/// `load`: THREADS threads each keep a batch of BATCH requests in flight for SECS seconds and
/// compare every answer with the reference; prints ops, bytes and wrong answers.
pub fn load(index: u32, o: &ShareOpts) -> io::Result<bool> {
    // One file for all threads: the driver's sessions belong to the file that created them.
    let dev = Arc::new(AccelDev::open(index)?);
    let (work, session) = template(&dev, o, 7)?;
    let work = Arc::new(work);
    let stop = Arc::new(AtomicBool::new(false));
    let (ops, wrong) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    println!(
        "LOAD_START op={:?} size={} threads={} batch={}",
        o.kind, o.size, o.threads, o.batch
    );
    let start = Instant::now();
    let threads: Vec<_> = (0..o.threads)
        .map(|_| {
            let (dev, work, stop) = (dev.clone(), work.clone(), stop.clone());
            let (ops, wrong) = (ops.clone(), wrong.clone());
            let batch = o.batch;
            std::thread::spawn(move || -> io::Result<()> {
                let mut b = vec![work.template.clone(); batch];
                while !stop.load(Ordering::Relaxed) {
                    for op in b.iter_mut() {
                        op.dst.resize(work.template.dst.len(), 0);
                    }
                    dev.batch(&mut b)?;
                    // A failed request ends the run (it would fail again at once, forever).
                    if let Some(op) = b.iter().find(|op| op.status != status::OK) {
                        stop.store(true, Ordering::Relaxed);
                        return Err(io::Error::other(format!("device status {}", op.status)));
                    }
                    let bad = b.iter().filter(|op| op.dst != work.expect).count() as u64;
                    wrong.fetch_add(bad, Ordering::Relaxed);
                    ops.fetch_add(batch as u64 - bad, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(o.secs));
    stop.store(true, Ordering::Relaxed);
    let mut failed = None;
    for t in threads {
        if let Err(e) = t
            .join()
            .map_err(|_| io::Error::other("load thread panicked"))?
        {
            failed = Some(e);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if let Some(h) = session {
        dev.session_destroy(h)?;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let (n, w) = (ops.load(Ordering::Relaxed), wrong.load(Ordering::Relaxed));
    println!(
        "LOAD_DONE ok={n} wrong={w} bytes={} secs={secs:.2} MBps={:.2}",
        n * o.size as u64,
        n as f64 * o.size as f64 / secs / 1e6
    );
    Ok(w == 0 && n > 0)
}

/// Latency histogram buckets: bucket i holds [LAT_BASE_US * 1.15^i, LAT_BASE_US * 1.15^(i+1)).
const LAT_BASE_US: f64 = 50.0;
const LAT_RATIO: f64 = 1.15;
const LAT_BUCKETS: usize = 80;

fn bucket(us: u64) -> usize {
    let x = (us as f64 / LAT_BASE_US).max(1.0);
    ((x.ln() / LAT_RATIO.ln()) as usize).min(LAT_BUCKETS - 1)
}

/// `LATWIN n=N h=i:count,...`: a window's histogram, so a test can merge windows it knows were
/// alone or under a flood (from the order of console lines) and take percentiles of the union.
fn print_window(h: &[u64; LAT_BUCKETS]) {
    let n: u64 = h.iter().sum();
    let cells: Vec<String> = h
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(i, c)| format!("{i}:{c}"))
        .collect();
    println!("LATWIN n={n} h={}", cells.join(","));
}

/// `latency`: one request at a time for SECS seconds, each answer checked; prints the
/// percentiles of the round trip as the guest sees it, and with `--window-ms` a histogram
/// (buckets of 15% from 50 us) per window.
pub fn latency(index: u32, o: &ShareOpts) -> io::Result<bool> {
    let dev = AccelDev::open(index)?;
    let (work, session) = template(&dev, o, 11)?;
    let mut lat = Vec::new();
    let mut wrong = 0u64;
    let mut one = [work.template.clone()];
    let mut hist = [0u64; LAT_BUCKETS];
    let start = Instant::now();
    let mut window_start = start;
    while start.elapsed() < Duration::from_secs(o.secs) {
        one[0].dst.resize(work.template.dst.len(), 0);
        let t = Instant::now();
        dev.batch(&mut one)?;
        let us = t.elapsed().as_micros() as u64;
        lat.push(us);
        hist[bucket(us)] += 1;
        if one[0].status != status::OK || one[0].dst != work.expect {
            wrong += 1;
        }
        if o.window_ms > 0 && window_start.elapsed() >= Duration::from_millis(o.window_ms) {
            print_window(&hist);
            hist = [0; LAT_BUCKETS];
            window_start = Instant::now();
        }
    }
    if let Some(h) = session {
        dev.session_destroy(h)?;
    }
    lat.sort_unstable();
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
    println!(
        "LATENCY n={} wrong={wrong} p50_us={} p90_us={} p99_us={} max_us={}",
        lat.len(),
        pct(50),
        pct(90),
        pct(99),
        lat[lat.len() - 1]
    );
    Ok(wrong == 0)
}

/// `hold-session`: creates a session, prints its handle, keeps it for SECS seconds, and checks
/// it still encrypts correctly at the end (no other VM could use or destroy it meanwhile).
pub fn hold_session(index: u32, secs: u64) -> io::Result<bool> {
    let dev = AccelDev::open(index)?;
    let o = ShareOpts::parse(&[], true).map_err(io::Error::other)?;
    let (work, session) = template(&dev, &o, 13)?;
    let h = session.expect("gcm has a session");
    println!("HELD_HANDLE={h:#x}");
    std::thread::sleep(Duration::from_secs(secs.min(MAX_SECS)));
    let mut one = [work.template.clone()];
    run_checked(&dev, &mut one)?;
    let ok = one[0].dst == work.expect;
    dev.session_destroy(h)?;
    println!("HELD_HANDLE_STILL_OK={ok}");
    Ok(ok)
}

/// `probe-handles`: creates its own session, then uses every handle of the other tenants
/// 1..=TENANTS with low part 1..=LOW (handles are tenant << 32 | n): each must get NO_SESSION
/// for encryption and an error for destroy; its own handle must still work.
pub fn probe_handles(index: u32, tenants: u32, low: u32) -> io::Result<bool> {
    let dev = AccelDev::open(index)?;
    let o = ShareOpts::parse(&[], true).map_err(io::Error::other)?;
    let (work, session) = template(&dev, &o, 17)?;
    let own = session.expect("gcm has a session");
    let own_tenant = (own >> 32) as u32;
    let (mut refused, mut accepted, mut destroyed) = (0u64, 0u64, 0u64);
    for t in (1..=tenants.min(1024)).filter(|&t| t != own_tenant) {
        for n in 1..=u64::from(low.min(4096)) {
            let h = (u64::from(t) << 32) | n;
            let mut one = [DataOp {
                handle: h,
                ..work.template.clone()
            }];
            dev.batch(&mut one)?;
            if one[0].status == status::NO_SESSION {
                refused += 1;
            } else {
                accepted += 1;
                println!("FOREIGN_HANDLE_ACCEPTED={h:#x} status={}", one[0].status);
            }
            if dev.session_destroy(h).is_ok() {
                destroyed += 1;
                println!("FOREIGN_HANDLE_DESTROYED={h:#x}");
            }
        }
    }
    let mut one = [work.template.clone()];
    run_checked(&dev, &mut one)?;
    let own_ok = one[0].dst == work.expect;
    dev.session_destroy(own)?;
    println!(
        "PROBE own={own:#x} tenants=1..{tenants} low=1..{low} refused={refused} accepted={accepted} destroyed={destroyed} own_ok={own_ok}"
    );
    Ok(accepted == 0 && destroyed == 0 && own_ok && refused > 0)
}
