//! `accel-tool bench`: ops/s, MB/s and per-op latency, 64 B … 64 KiB: the device (char device
//! batches and through the crypto API via AF_ALG) against the guest's own AES-NI and software
//! GCM (AF_ALG by driver name), and device compression against the kernel's software one.

use std::io;
use std::time::{Duration, Instant};

use crate::afalg::AeadTfm;
use crate::dev::{AccelDev, Area, DataOp};
use crate::selftest::{DEV_GCM, SW_GCM};
use crate::uapi::{self, Op, op, status};
use crate::util::{Rng, text_like};

pub struct BenchOpts {
    pub time: Duration,
    pub sizes: Vec<usize>,
    pub batch: usize,
    pub aead: bool,
    pub comp: bool,
    /// `--afalg-skcipher NAME --driver DRIVER`: measure that skcipher driver only (a peer such
    /// as QEMU's virtio-crypto; no virtio-accel device needed).
    pub skcipher: Option<(String, String)>,
}

impl Default for BenchOpts {
    fn default() -> Self {
        BenchOpts {
            time: Duration::from_millis(500),
            sizes: vec![64, 256, 1024, 4096, 16384, 65536],
            batch: 16,
            aead: true,
            comp: true,
            skcipher: None,
        }
    }
}

struct Row {
    what: String,
    size: usize,
    ops: u64,
    elapsed: Duration,
}

fn print_header() {
    println!(
        "{:<34} {:>7} {:>11} {:>10} {:>12}",
        "path", "size", "ops/s", "MB/s", "latency_us"
    );
}

fn print_row(r: &Row) {
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let ops = r.ops as f64 / secs;
    println!(
        "{:<34} {:>7} {:>11.0} {:>10.1} {:>12.2}",
        r.what,
        r.size,
        ops,
        ops * r.size as f64 / 1e6,
        1e6 / ops.max(1e-9)
    );
}

/// Runs `f` (which performs `per_call` ops) until `time` has passed; at least 3 calls.
fn timed(
    time: Duration,
    per_call: u64,
    mut f: impl FnMut() -> io::Result<()>,
) -> io::Result<(u64, Duration)> {
    f()?; // warm-up (session setup, page faults)
    let start = Instant::now();
    let mut ops = 0;
    let mut calls = 0;
    while calls < 3 || start.elapsed() < time {
        f()?;
        ops += per_call;
        calls += 1;
    }
    Ok((ops, start.elapsed()))
}

fn afalg_row(name: &str, label: &str, size: usize, time: Duration) -> io::Result<Row> {
    let mut rng = Rng::new(size as u64);
    let tfm = AeadTfm::new(name, &rng.bytes(16), 16)?;
    let opfd = tfm.op()?;
    let (iv, data) = (rng.bytes(12), rng.bytes(size));
    let mut out = Vec::with_capacity(size + 16);
    let (ops, elapsed) = timed(time, 1, || opfd.crypt_buf(true, &iv, 0, &data, &mut out))?;
    Ok(Row {
        what: label.into(),
        size,
        ops,
        elapsed,
    })
}

fn chardev_aead_row(dev: &AccelDev, size: usize, batch: usize, time: Duration) -> io::Result<Row> {
    let mut rng = Rng::new(size as u64);
    let h = dev.session_create(&rng.bytes(16))?;
    let mut ops: Vec<DataOp> = (0..batch)
        .map(|_| DataOp {
            opcode: op::ENCRYPT,
            handle: h,
            tag_len: 16,
            iv: rng.bytes(12).try_into().unwrap(),
            src: rng.bytes(size),
            dst: vec![0; size + 16],
            ..Default::default()
        })
        .collect();
    let r = timed(time, batch as u64, || {
        for o in ops.iter_mut() {
            o.dst.resize(size + 16, 0);
        }
        dev.batch(&mut ops)?;
        if ops.iter().any(|o| o.status != status::OK) {
            return Err(io::Error::other(format!("device status {}", ops[0].status)));
        }
        Ok(())
    });
    dev.session_destroy(h)?;
    let (ops, elapsed) = r?;
    Ok(Row {
        what: format!("device chardev batch {batch}"),
        size,
        ops,
        elapsed,
    })
}

/// Like [`chardev_aead_row`] with every buffer in the file's mmap()ed area: nothing is copied
/// between user space and the kernel, and each 4 KiB-and-larger buffer is one contiguous run
/// the device serves in place.
fn chardev_mapped_row(
    dev: &AccelDev,
    area: &mut Area,
    size: usize,
    batch: usize,
    time: Duration,
) -> io::Result<Row> {
    let mut rng = Rng::new(size as u64);
    let h = dev.session_create(&rng.bytes(16))?;
    // Source then output per op, page aligned, like buffers a network function keeps there.
    let stride = (2 * size + 16).next_multiple_of(4096);
    if stride * batch > area.bytes().len() {
        return Err(io::Error::other("mapped area too small for this batch"));
    }
    let mut ops: Vec<Op> = (0..batch)
        .map(|i| {
            let at = i * stride;
            area.bytes_mut()[at..][..size].copy_from_slice(&rng.bytes(size));
            crate::selftest::mapped_op(
                op::ENCRYPT,
                h,
                &rng.bytes(12),
                (0, 0),
                (at as u64, size),
                ((at + size) as u64, size + 16),
            )
        })
        .collect();
    let r = timed(time, batch as u64, || {
        for o in ops.iter_mut() {
            o.dst_len = (size + 16) as u32;
        }
        dev.batch_mapped(area, &mut ops)?;
        if let Some(o) = ops
            .iter()
            .find(|o| o.status != status::OK || o.dst_len as usize != size + 16)
        {
            return Err(io::Error::other(format!(
                "device status {} error {}",
                o.status, o.error
            )));
        }
        Ok(())
    });
    dev.session_destroy(h)?;
    let (ops, elapsed) = r?;
    Ok(Row {
        what: format!("device chardev mapped batch {batch}"),
        size,
        ops,
        elapsed,
    })
}

fn aead(dev: &AccelDev, o: &BenchOpts) -> io::Result<()> {
    // Room for a batch of the largest size's sources and outputs.
    let biggest = o.sizes.iter().max().copied().unwrap_or(0);
    let need = (2 * biggest + 16).next_multiple_of(4096) * o.batch.max(1);
    let mut area = dev.map_area(need.min(uapi::AREA_MAX))?;
    println!("AES-128-GCM encrypt (16-byte tag), {:?} per cell", o.time);
    print_header();
    let aesni = AeadTfm::new("generic-gcm-aesni", &[0; 16], 16).is_ok();
    for &size in &o.sizes {
        print_row(&afalg_row(
            DEV_GCM,
            "device AF_ALG virtio_accel-gcm-aes",
            size,
            o.time,
        )?);
        print_row(&chardev_aead_row(dev, size, 1, o.time)?);
        if o.batch > 1 {
            print_row(&chardev_aead_row(dev, size, o.batch, o.time)?);
        }
        print_row(&chardev_mapped_row(
            dev,
            &mut area,
            size,
            o.batch.max(1),
            o.time,
        )?);
        if aesni {
            print_row(&afalg_row(
                "generic-gcm-aesni",
                "guest AES-NI generic-gcm-aesni",
                size,
                o.time,
            )?);
        }
        print_row(&afalg_row(
            SW_GCM,
            "guest software gcm_base(generic)",
            size,
            o.time,
        )?);
    }
    if !aesni {
        println!("(no generic-gcm-aesni in this guest: AES-NI missing or aesni_intel not loaded)");
    }
    Ok(())
}

fn comp(dev: &AccelDev, o: &BenchOpts) -> io::Result<()> {
    let _ = std::process::Command::new("modprobe").arg("lz4").status();
    println!("\nCompression of text-like data, {:?} per cell", o.time);
    print_header();
    for (alg, algo) in [("deflate", uapi::COMP_DEFLATE), ("lz4", uapi::COMP_LZ4)] {
        for &size in o.sizes.iter().filter(|&&s| s >= 1024) {
            let data = text_like(size, size as u64);
            let cap = size + size / 8 + 1024;
            let batch = o.batch.max(1);
            let mut ops: Vec<DataOp> = (0..batch)
                .map(|_| DataOp {
                    opcode: op::COMPRESS,
                    algo,
                    src: data.clone(),
                    dst: vec![0; cap],
                    ..Default::default()
                })
                .collect();
            let (n, elapsed) = timed(o.time, batch as u64, || {
                for op in ops.iter_mut() {
                    op.dst.resize(cap, 0);
                }
                dev.batch(&mut ops)?;
                if ops.iter().any(|op| op.status != status::OK) {
                    return Err(io::Error::other("compress failed"));
                }
                Ok(())
            })?;
            let ratio = ops[0].dst.len() as f64 / size as f64;
            print_row(&Row {
                what: format!("device chardev {alg} b{batch} r{ratio:.2}"),
                size,
                ops: n,
                elapsed,
            });
            for (driver, label) in [
                (
                    format!("virtio_accel-{alg}"),
                    format!("device kernel-acomp {alg}"),
                ),
                (
                    format!("{alg}-scomp"),
                    format!("guest software {alg}-scomp"),
                ),
            ] {
                // Calibrate the iteration count to roughly the cell time.
                let (_, _, ns) = dev.kcomp(&driver, false, &data, cap, 4)?;
                let iters = ((o.time.as_nanos() as u64 * 4) / ns.max(1)).clamp(4, 100_000) as u32;
                let (_, used, ns) = dev.kcomp(&driver, false, &data, cap, iters)?;
                print_row(&Row {
                    what: format!("{label} ({used})").chars().take(34).collect(),
                    size,
                    ops: iters as u64,
                    elapsed: Duration::from_nanos(ns),
                });
            }
        }
    }
    Ok(())
}

pub fn run(index: u32, o: &BenchOpts) -> io::Result<()> {
    if let Some((name, driver)) = &o.skcipher {
        return crate::skcipher::bench(name, driver, &o.sizes, o.time);
    }
    let dev = AccelDev::open(index)?;
    let s0 = dev.stats()?;
    if o.aead {
        aead(&dev, o)?;
    }
    if o.comp {
        comp(&dev, o)?;
    }
    let s1 = dev.stats()?;
    println!(
        "\ndevice ops during the benchmark: encrypt {} compress {}",
        s1.ops[0] - s0.ops[0],
        s1.ops[2] - s0.ops[2]
    );
    Ok(())
}
