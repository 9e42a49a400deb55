//! virtio-accel device path vs calling the library directly, 64 B … 64 KiB.
//!
//! The device path is the whole datapath a guest request takes minus the guest: a driver fills
//! a split ring in real guest memory (`MockDriver`), the device's handler pops the chain, copies
//! the request out of guest memory (AES-GCM encrypts of 2 KiB and more run in place on guest
//! memory instead), runs the job on the software backend (inline, or on one worker thread with
//! the completion eventfd round trip), writes output and trailer back and adds the used entry.
//! Each iteration submits a batch of requests, like a driver would.
//!
//! `cargo bench --bench accel_device -- --measurement-time 1 --warm-up-time 0.3` prints
//! criterion's numbers and then a summary table (throughput ratio and per-request overhead,
//! best of 9 interleaved 40 ms slices per variant); `ACCEL_BENCH_TABLE_ONLY=1` prints only the
//! table, `ACCEL_BENCH_ROUNDS=N` takes the best of N slices, `ACCEL_BENCH_BATCH=N` submits N
//! requests per notification (default 32), `ACCEL_BENCH_SIZES=64,16384` and `ACCEL_BENCH_OPS=lz4`
//! pick sizes and operations; `ACCEL_BENCH_PROFILE=device|direct` runs a fixed number of batches
//! of one variant for a profiler (see `profile`). "inline" runs every job on the event-loop thread
//! (`SoftwareAccelerator::new(0)`; the VMM's default `new(1)` does the same for jobs up to
//! 64 KiB), "worker" sends jobs above 4 KiB to a worker thread (`with_inline_bytes(1, 4352)`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accelvm_devices::test_utils::CountingInterrupt;
use accelvm_devices::virtio::accel::backend::aead::AeadKey;
use accelvm_devices::virtio::accel::backend::compress;
use accelvm_devices::virtio::accel::mock_driver::MockDriver;
use accelvm_devices::virtio::accel::protocol::*;
use accelvm_devices::virtio::accel::{Accel, AccelConfig, QueueKind, SoftwareAccelerator};
use accelvm_devices::virtio::{
    ActivationContext, DeviceHandler, VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1, VirtioDevice,
};
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use criterion::{BenchmarkId, Criterion, Throughput};
use vm_memory::endian::{Le32, Le64};
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryMmap};

const SIZES: [usize; 6] = [64, 256, 1024, 4096, 16384, 65536];
/// Requests per notification (`ACCEL_BENCH_BATCH`, default 32, at most 128).
static BATCH_SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

fn batch_size() -> usize {
    *BATCH_SIZE.get_or_init(|| {
        std::env::var("ACCEL_BENCH_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(32usize)
            .clamp(1, 128)
    })
}
const QSIZE: u16 = 256;
const DATA_BASE: u64 = 0x10_0000;
const KEY: [u8; 32] = [0x42; 32];

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Gcm,
    GcmDecrypt,
    Lz4,
}

/// The AES-256-GCM ciphertext and tag of `payload(size)` (IV 0, no AAD).
fn sealed(size: usize) -> (Vec<u8>, aes_gcm::Tag) {
    let mut ct = payload(size);
    let tag = Aes256Gcm::new(&KEY.into())
        .encrypt_inout_detached(&Nonce::from([0u8; 12]), b"", ct.as_mut_slice().into())
        .unwrap();
    (ct, tag)
}

struct Rig {
    drv: MockDriver<'static>,
    handler: Box<dyn DeviceHandler>,
    q: u16,
    completion_fd: usize,
    /// `depth` sets of BATCH request buffers, used in turn.
    reqs: Vec<Req>,
    /// Batches kept in flight: 1 waits for each batch, 2 submits the next before waiting.
    depth: usize,
    next_set: usize,
    in_flight: usize,
    mem: &'static GuestMemoryMmap,
    what: String,
    _dev: Accel,
}

/// One request's guest buffers: the readable request, the output area and, unless the trailer
/// sits at the end of the output area, the trailer's own descriptor.
#[derive(Clone, Copy)]
struct Req {
    req: (u64, u32),
    out: (u64, u32),
    trailer: Option<u64>,
}

impl Req {
    /// Where the device writes this request's trailer.
    fn trailer_at(&self) -> u64 {
        self.trailer
            .unwrap_or(self.out.0 + u64::from(self.out.1) - RESP_LEN)
    }
}

const RESP_LEN: u64 = size_of::<DataResp>() as u64;

/// Where the separate trailers live: one 16-byte slot per request, like the driver's per-request
/// context in the kernel's memory.
const TRAILERS: u64 = DATA_BASE + 0x2000;

/// `ACCEL_BENCH_TRAILER_IN_OUTPUT=1`: the trailer at the end of the output descriptor (the char
/// device's layout, `va_batch.c`) instead of in its own descriptor (the crypto API's, `va_aead.c`
/// and `va_comp.c`).
fn trailer_in_output() -> bool {
    std::env::var_os("ACCEL_BENCH_TRAILER_IN_OUTPUT").is_some_and(|v| v == "1")
}

/// Where a request's bytes lie, from the start of its page-aligned slot: the header, then
/// the source at `size_of::<DataHdr>()`, then the output area at `out_at`. The device's
/// requests and the direct call's buffers use the same layout: the speed of the same LZ4 loop
/// moves by several per cent with the relative alignment of source and output (4 KiB
/// aliasing between loads and stores), which would otherwise count as device overhead.
struct Layout {
    out_at: usize,
    out_len: usize,
    stride: usize,
}

impl Layout {
    /// For a source (or ciphertext and tag) of `data_len` bytes.
    fn new(data_len: usize) -> Layout {
        // Room for LZ4's worst case (what a driver that cannot predict the ratio allocates;
        // it lets the device compress in place) and for a tag; the trailer gets its own
        // descriptor in a compact array, as the kernel driver's crypto API paths do, or the
        // end of the output area (ACCEL_BENCH_TRAILER_IN_OUTPUT=1).
        let out_len = lz4_flex::block::get_maximum_output_size(data_len).max(data_len + 16)
            + if trailer_in_output() {
                RESP_LEN as usize
            } else {
                0
            };
        let out_at = (size_of::<DataHdr>() + data_len).next_multiple_of(64);
        // Never overlapping the next request: the output of one request must not run into
        // the source of the next (a worker may still be reading that source when the event
        // loop writes this request's trailer).
        let stride = (out_at + out_len).next_multiple_of(4096);
        Layout {
            out_at,
            out_len,
            stride,
        }
    }
}

fn payload(size: usize) -> Vec<u8> {
    // Text-like data so LZ4 has something to find.
    (0..size)
        .map(|i| b"virtio accel bench "[i % 19] ^ ((i / 97) as u8 & 3))
        .collect()
}

impl Rig {
    fn new(workers: usize, op: Op, size: usize) -> Rig {
        Rig::with_depth(workers, op, size, 1)
    }

    fn with_depth(workers: usize, op: Op, size: usize, depth: usize) -> Rig {
        let mem: &'static GuestMemoryMmap = Box::leak(Box::new(
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap(),
        ));
        // With workers, jobs above 4 KiB go to them (the VMM's default until jobs up to 64 KiB
        // ran inline; still the path of larger jobs and of those past a pass's inline budget).
        let backend =
            Arc::new(SoftwareAccelerator::with_inline_bytes(workers, 4096 + 256).unwrap());
        let cfg = AccelConfig {
            crypto_queues: 1,
            comp_queues: 1,
            ipsec_queues: 1,
            queue_size: QSIZE,
            ..Default::default()
        };
        let mut dev = Accel::new(backend, cfg).unwrap();
        let n = dev.layout().num_queues();
        let (mut drv, queues) = MockDriver::new(mem, n, QSIZE);
        let features = (1u64 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_F_EVENT_IDX) | 0xf;
        let ctx = ActivationContext {
            mem: mem.clone(),
            acked_features: features,
            queues,
            interrupt: Arc::new(CountingInterrupt::default()),
        };
        let mut handler = VirtioDevice::<GuestMemoryMmap>::activate(&mut dev, ctx).unwrap();
        let completion_fd = handler.fds().len() - 1;
        // A session for the crypto requests.
        let mut ctrl = CtrlHdr {
            opcode: Le32::from(CTRL_CREATE_SESSION),
            reserved: Le32::from(0),
        }
        .as_slice()
        .to_vec();
        let mut key = CryptoKey {
            algo: Le32::from(CRYPTO_AES_GCM),
            key_len: Le32::from(32),
            key: [0; 32],
        };
        key.key.copy_from_slice(&KEY);
        ctrl.extend_from_slice(key.as_slice());
        mem.write_slice(&ctrl, GuestAddress(DATA_BASE)).unwrap();
        drv.push(
            0,
            &[
                (DATA_BASE, ctrl.len() as u32, false),
                (DATA_BASE + 0x1000, 16, true),
            ],
        );
        drv.notify(0);
        handler.handle(0);
        let resp: CtrlResp = mem.read_obj(GuestAddress(DATA_BASE + 0x1000)).unwrap();
        assert_eq!(resp.status.to_native(), 0);
        let session = resp.handle.to_native();

        let (kind, hdr) = match op {
            Op::Gcm => (
                QueueKind::Crypto,
                DataHdr {
                    opcode: Le32::from(OP_ENCRYPT),
                    handle: Le64::from(session),
                    src_len: Le32::from(size as u32),
                    tag_len: Le32::from(16),
                    iv_len: Le32::from(IV_LEN),
                    ..Default::default()
                },
            ),
            Op::GcmDecrypt => (
                QueueKind::Crypto,
                DataHdr {
                    opcode: Le32::from(OP_DECRYPT),
                    handle: Le64::from(session),
                    src_len: Le32::from(size as u32 + 16),
                    tag_len: Le32::from(16),
                    iv_len: Le32::from(IV_LEN),
                    ..Default::default()
                },
            ),
            Op::Lz4 => (
                QueueKind::Compression,
                DataHdr {
                    opcode: Le32::from(OP_COMPRESS),
                    algo: Le32::from(COMP_LZ4),
                    src_len: Le32::from(size as u32),
                    ..Default::default()
                },
            ),
        };
        let q = dev.layout().index(kind, 0);
        let data = if op == Op::GcmDecrypt {
            let (mut ct, tag) = sealed(size);
            ct.extend_from_slice(&tag);
            ct
        } else {
            payload(size)
        };
        // Request (header and source) and output descriptor per slot, as `Layout` says.
        let in_output = trailer_in_output();
        let l = Layout::new(data.len());
        let mut reqs = Vec::new();
        for i in 0..(batch_size() * depth) as u64 {
            let r = DATA_BASE + 0x10_000 + i * l.stride as u64;
            let req = [hdr.as_slice(), &data].concat();
            mem.write_slice(&req, GuestAddress(r)).unwrap();
            reqs.push(Req {
                req: (r, req.len() as u32),
                out: (r + l.out_at as u64, l.out_len as u32),
                trailer: (!in_output).then_some(TRAILERS + 16 * i),
            });
        }
        // No status yet: a trailer the device never writes must not read as OK.
        for rq in &reqs {
            mem.write_obj(Le32::from(u32::MAX), GuestAddress(rq.trailer_at()))
                .unwrap();
        }
        let mut rig = Rig {
            drv,
            handler,
            q,
            completion_fd,
            reqs,
            depth,
            next_set: 0,
            in_flight: 0,
            mem,
            what: format!(
                "{}, {size} bytes, {workers} workers, depth {depth}",
                name(op)
            ),
            _dev: dev,
        };
        for _ in 0..depth {
            rig.batch(); // warm the buffer pool and check the results once
        }
        rig.assert_ok();
        rig
    }

    /// Submits BATCH requests and notifies once, then runs the device until no more than
    /// `depth - 1` batches are in flight: with depth 2 the device works on one batch while the
    /// completions of the other are handled, as a driver that keeps its queue busy sees it.
    fn batch(&mut self) {
        let n = batch_size();
        let set = &self.reqs[self.next_set * n..][..n];
        self.next_set = (self.next_set + 1) % self.depth;
        for rq in set {
            let (r, rl) = rq.req;
            let (o, ol) = rq.out;
            match rq.trailer {
                Some(t) => self.drv.push(
                    self.q,
                    &[(r, rl, false), (o, ol, true), (t, RESP_LEN as u32, true)],
                ),
                None => self.drv.push(self.q, &[(r, rl, false), (o, ol, true)]),
            };
        }
        self.in_flight += n;
        self.drv.notify(self.q);
        self.handler.handle(self.q as usize);
        self.in_flight -= self.drv.used(self.q).len();
        self.wait_until((self.depth - 1) * n);
    }

    /// Every request of the last round answered OK (a failing request would be timed as a
    /// fast one: a bench that measured errors once hid that a trailer overwrote the next
    /// request's source).
    fn assert_ok(&mut self) {
        self.wait_until(0);
        for (i, rq) in self.reqs.iter().enumerate() {
            let resp: DataResp = self.mem.read_obj(GuestAddress(rq.trailer_at())).unwrap();
            assert_eq!(
                resp.status.to_native(),
                0,
                "bench request {i} failed ({})",
                self.what
            );
            // Poisoned again, so the next check sees only what later rounds wrote.
            self.mem
                .write_obj(Le32::from(u32::MAX), GuestAddress(rq.trailer_at()))
                .unwrap();
        }
    }

    /// Runs the device until at most `left` requests are in flight.
    fn wait_until(&mut self, left: usize) {
        let fd = self.handler.fds()[self.completion_fd];
        while self.in_flight > left {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            unsafe { libc::poll(&mut pfd, 1, 1000) };
            self.handler.handle(self.completion_fd);
            self.in_flight -= self.drv.used(self.q).len();
        }
    }
}

/// The library call the device wraps, on BATCH distinct host buffers of the same size laid
/// out like the device's guest buffers ([`Layout`]): equal working sets and alignment.
struct Direct {
    op: Op,
    /// Page-aligned slots of `layout.stride` bytes in `arena`, from `base`.
    arena: Vec<u8>,
    base: usize,
    layout: Layout,
    data_len: usize,
    key: AeadKey,
}

impl Direct {
    fn new(op: Op, size: usize) -> Direct {
        // Ciphertext and tag in one buffer, as the device's requests carry them.
        let data = if op == Op::GcmDecrypt {
            let (mut ct, tag) = sealed(size);
            ct.extend_from_slice(&tag);
            ct
        } else {
            payload(size)
        };
        let layout = Layout::new(data.len());
        let mut arena = vec![0u8; layout.stride * batch_size() + 4096];
        let base = arena.as_ptr().align_offset(4096);
        for i in 0..batch_size() {
            let at = base + i * layout.stride + size_of::<DataHdr>();
            arena[at..at + data.len()].copy_from_slice(&data);
        }
        Direct {
            op,
            arena,
            base,
            layout,
            data_len: data.len(),
            key: AeadKey::new(&KEY).unwrap(),
        }
    }

    fn batch(&mut self) {
        let l = &self.layout;
        for i in 0..batch_size() {
            let slot = &mut self.arena[self.base + i * l.stride..][..l.stride];
            let (head, tail) = slot.split_at_mut(l.out_at);
            let buf = &head[size_of::<DataHdr>()..][..self.data_len];
            let out = &mut tail[..l.out_len];
            match self.op {
                Op::Gcm => {
                    // The backend's own AES-GCM call (`AeadKey::seal_to`, out of place from
                    // source to output, as the device runs it in place on guest memory): the
                    // code the device runs, for the same reason as LZ4 below.
                    let mut tag = [0u8; 16];
                    self.key
                        .seal_to(&[0; 12], b"", buf, &mut out[..buf.len()], 16, &mut tag)
                        .unwrap();
                    black_box(tag);
                }
                Op::GcmDecrypt => {
                    // Likewise `AeadKey::open_to` (and the ciphertext stays valid).
                    let (ct, tag) = buf.split_at(buf.len() - 16);
                    self.key
                        .open_to(&[0; 12], b"", ct, tag, &mut out[..ct.len()])
                        .unwrap();
                    black_box(&out[..]);
                }
                Op::Lz4 => {
                    // The backend's own LZ4 function (lz4_flex with a reused per-thread hash
                    // table), the code the device runs: lz4_flex's loop is generic, so a call
                    // from this crate would be a second copy of it, compiled and placed apart,
                    // and its speed moves with placement by more than the device's overhead.
                    black_box(compress::lz4_compress(buf, out).unwrap());
                }
            }
        }
    }
}

fn name(op: Op) -> &'static str {
    match op {
        Op::Gcm => "aes256gcm_encrypt",
        Op::GcmDecrypt => "aes256gcm_decrypt",
        Op::Lz4 => "lz4_compress",
    }
}

fn criterion_benches(c: &mut Criterion) {
    for op in [Op::Gcm, Op::GcmDecrypt, Op::Lz4] {
        let mut g = c.benchmark_group(name(op));
        for size in SIZES {
            g.throughput(Throughput::Bytes((size * batch_size()) as u64));
            let mut direct = Direct::new(op, size);
            g.bench_with_input(BenchmarkId::new("direct", size), &size, |b, _| {
                b.iter(|| direct.batch())
            });
            let mut inline = Rig::new(0, op, size);
            g.bench_with_input(BenchmarkId::new("device_inline", size), &size, |b, _| {
                b.iter(|| inline.batch())
            });
            let mut worker = Rig::new(1, op, size);
            g.bench_with_input(BenchmarkId::new("device_worker", size), &size, |b, _| {
                b.iter(|| worker.batch())
            });
            let mut piped = Rig::with_depth(1, op, size, 2);
            g.bench_with_input(BenchmarkId::new("device_worker_x2", size), &size, |b, _| {
                b.iter(|| piped.batch())
            });
        }
        g.finish();
    }
}

/// Time per request of one batch of `f` (BATCH requests), repeated for about `slice`.
fn per_req(slice: Duration, f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < slice || n == 0 {
        f();
        n += 1;
    }
    start.elapsed().as_secs_f64() / (n as f64 * batch_size() as f64)
}

/// Time per request of each variant in `rounds` interleaved slices (`ACCEL_BENCH_ROUNDS`,
/// default 9): `[round][variant]`.
fn rounds_of(fs: &mut [&mut dyn FnMut()]) -> Vec<Vec<f64>> {
    // More rounds give a steadier estimate on a busy host.
    let rounds = std::env::var("ACCEL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9usize)
        .clamp(1, 1000);
    for f in fs.iter_mut() {
        f(); // warm up
    }
    (0..rounds)
        .map(|_| {
            fs.iter_mut()
                .map(|f| per_req(Duration::from_millis(40), *f))
                .collect()
        })
        .collect()
}

/// The minimum over the rounds for each variant: on a shared, noisy host the minimum is the
/// estimate least disturbed by other processes, and interleaving exposes all variants to the
/// same background load.
fn best_of(rounds: &[Vec<f64>]) -> Vec<f64> {
    let mut best = vec![f64::MAX; rounds.first().map_or(0, Vec::len)];
    for r in rounds {
        for (b, &t) in best.iter_mut().zip(r) {
            *b = b.min(t);
        }
    }
    best
}

/// The median over the rounds of `direct / variant` within each round. Where the host's
/// speed itself drifts (a shared machine whose CPU ran the same loop in 80 ms or 150 ms from
/// one second to the next), the two minima can come from different phases; a ratio taken
/// within one round compares slices run back to back.
fn paired_median(rounds: &[Vec<f64>], variant: usize) -> f64 {
    let mut r: Vec<f64> = rounds.iter().map(|t| t[0] / t[variant]).collect();
    r.sort_by(f64::total_cmp);
    let n = r.len();
    if n % 2 == 1 {
        r[n / 2]
    } else {
        (r[n / 2 - 1] + r[n / 2]) / 2.0
    }
}

/// The sizes to run: `ACCEL_BENCH_SIZES=64,16384` picks some of [`SIZES`].
fn sizes() -> Vec<usize> {
    let pick = std::env::var("ACCEL_BENCH_SIZES").unwrap_or_default();
    let picked: Vec<usize> = pick
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    SIZES
        .into_iter()
        .filter(|s| picked.is_empty() || picked.contains(s))
        .collect()
}

/// The operations to run: `ACCEL_BENCH_OPS=lz4` picks those whose name contains one of the
/// comma-separated words.
fn ops() -> Vec<Op> {
    let pick = std::env::var("ACCEL_BENCH_OPS").unwrap_or_default();
    let words: Vec<&str> = pick
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    [Op::Gcm, Op::GcmDecrypt, Op::Lz4]
        .into_iter()
        .filter(|&op| words.is_empty() || words.iter().any(|w| name(op).contains(w)))
        .collect()
}

fn table() {
    println!(
        "\nvirtio-accel device path vs direct library call ({} requests per notification)",
        batch_size()
    );
    println!(
        "ratio = device throughput / direct (best round of each); ovh = extra time per request \
         (µs); r med = median over the rounds of the ratio within one round. worker x2 keeps \
         two batches in flight (the driver submits the next batch before the last completes)."
    );
    println!(
        "{:<18} {:>6} {:>8} {:>7} {:>6} {:>7} {:>6} {:>7} {:>6} {:>7}",
        "op", "size", "direct", "inline", "", "worker", "", "wkr x2", "", "inline"
    );
    println!(
        "{:<18} {:>6} {:>8} {:>7} {:>6} {:>7} {:>6} {:>7} {:>6} {:>7}",
        "", "bytes", "MB/s", "ratio", "ovh", "ratio", "ovh", "ratio", "ovh", "r med"
    );
    for op in ops() {
        for size in sizes() {
            let mut d = Direct::new(op, size);
            let mut i = Rig::new(0, op, size);
            let mut w = Rig::new(1, op, size);
            let mut p = Rig::with_depth(1, op, size, 2);
            let rounds = rounds_of(&mut [
                &mut || d.batch(),
                &mut || i.batch(),
                &mut || w.batch(),
                &mut || p.batch(),
            ]);
            let t = best_of(&rounds);
            for rig in [&mut i, &mut w, &mut p] {
                rig.assert_ok();
            }
            let td = t[0];
            let cols: Vec<String> = t[1..]
                .iter()
                .map(|&tv| format!("{:>7.2} {:>6.2}", td / tv, (tv - td) * 1e6))
                .collect();
            println!(
                "{:<18} {:>6} {:>8.0} {} {:>7.2}",
                name(op),
                size,
                size as f64 / td / 1e6,
                cols.join(" "),
                paired_median(&rounds, 1)
            );
        }
    }
}

/// `ACCEL_BENCH_PROFILE=device|direct`: runs `ACCEL_BENCH_ITERS` batches (default 1000) of one
/// variant (device inline, or the direct call) for the first picked operation and size, and
/// nothing else: a fixed amount of work for a profiler. Under `valgrind --tool=callgrind`, two
/// iteration counts give instructions per request, a measure the host's load cannot move.
fn profile(what: &str) {
    let (Some(&op), Some(&size)) = (ops().first(), sizes().first()) else {
        return;
    };
    let iters: usize = std::env::var("ACCEL_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut run: Box<dyn FnMut()> = match what {
        "direct" => {
            let mut d = Direct::new(op, size);
            Box::new(move || d.batch())
        }
        _ => {
            let mut rig = Rig::new(0, op, size);
            Box::new(move || rig.batch())
        }
    };
    for _ in 0..iters {
        run();
    }
}

fn main() {
    if let Ok(what) = std::env::var("ACCEL_BENCH_PROFILE") {
        return profile(&what);
    }
    let bench_mode = std::env::args().any(|a| a == "--bench");
    // ACCEL_BENCH_TABLE_ONLY=1 skips criterion and prints only the summary table.
    if std::env::var_os("ACCEL_BENCH_TABLE_ONLY").is_none() {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c);
        c.final_summary();
    }
    if bench_mode {
        table();
    }
}
