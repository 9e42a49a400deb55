//! The event-loop side of virtio-accel: drains queues, submits jobs to the backend, and
//! completes requests when the backend's results come back through a completion eventfd.
//!
//! Everything here runs on the VMM's event-loop thread; only `Completions::complete` is
//! called from backend worker threads.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::endian::Le32;
use vm_memory::{ByteValued, GuestMemory};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use zeroize::Zeroize;

mod control;
mod direct;

use direct::DIRECT_MIN_BYTES;

use super::backend::{
    Accelerator, Capabilities, CompletionSink, Job, JobOp, JobResult, SubmitError, TenantId,
};
use super::chain::{ChainError, InPlaceMemory, SplitChain, SplitResult, WritableArea, split_chain};
use super::device::State;
use super::metrics::AccelMetrics;
use super::protocol::{
    CryptoKey, DataHdr, DataResp, Status, VIRTIO_ACCEL_F_COMPRESSION, VIRTIO_ACCEL_F_CRYPTO,
    VIRTIO_ACCEL_F_IPSEC, VIRTIO_ACCEL_F_STATELESS,
};
use super::request::{DataOp, parse_data_sized};
use super::session::{Tables, expand_key};
use super::{OUTPUT_SLACK, QueueKind, QueueLayout};
use crate::virtio::{ActivationContext, InterruptKind, VIRTIO_F_EVENT_IDX, VirtioInterrupt};

/// Recycled buffers kept for reuse.
const POOL_MAX_BUFFERS: usize = 128;
/// Larger buffers are freed rather than pooled, so a burst of big requests does not pin memory.
const POOL_MAX_BUFFER_BYTES: usize = 320 << 10;
/// Spare capacity for an AEAD tag appended to the readable copy.
const TAG_SLACK: usize = 16;
/// Bytes of jobs one pass may run inline (`Accelerator::run_inline`); later jobs of the pass
/// go to the backend's workers, so a full ring cannot hold the event loop (and every other
/// device on it) much longer than one of 4 KiB jobs did when only those ran inline: 256
/// entries of 4 KiB plus tag, ~0.3 ms natively.
const INLINE_BYTES_PER_PASS: u64 = 256 * (4096 + 256);

/// Finished results waiting for the event loop.
#[derive(Default)]
struct Done {
    results: Vec<JobResult>,
    /// The handler is in `run()` and drains `results` before it leaves (checked under this
    /// lock), so a completion needs no wakeup: jobs run inline, and workers finishing while
    /// the handler works, cost no eventfd write and no extra pass.
    draining: bool,
}

/// Results handed back by the backend, plus the eventfd that wakes the event loop.
struct Completions {
    done: Mutex<Done>,
    evt: EventFd,
}

impl Completions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Done> {
        self.done.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CompletionSink for Completions {
    fn complete(&self, result: JobResult) {
        let mut done = self.lock();
        done.results.push(result);
        // One wakeup per batch: the handler drains everything it finds.
        if done.results.len() == 1 && !done.draining {
            let _ = self.evt.write(1);
        }
    }

    fn complete_batch(&self, results: &mut Vec<JobResult>) {
        if results.is_empty() {
            return;
        }
        let mut done = self.lock();
        let wake = done.results.is_empty() && !done.draining;
        done.results.append(results);
        // A wakeup costs a syscall here and a context switch (an IPI when the event loop is
        // idle on another CPU) there: one per batch, not one per job.
        if wake {
            let _ = self.evt.write(1);
        }
    }
}

/// Hashes the in-flight table's keys: tokens the device numbers itself (the guest cannot
/// choose them, so no flooding), for which SipHash costs more than the lookup it serves.
#[derive(Default)]
struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: sequential tokens spread over all bits (hashbrown uses the
        // top ones as tags, the low ones as bucket index).
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The counters every successful request bumps, summed on the event loop and added to the
/// shared [`AccelMetrics`] once per pass: an atomic add per counter per request cost more
/// than a small request's bookkeeping.
#[derive(Default)]
struct HotCounts {
    requests_ok: u64,
    bytes_in: u64,
    bytes_out: u64,
    in_place: u64,
}

impl HotCounts {
    fn flush(&mut self, m: &AccelMetrics) {
        let c = std::mem::take(self);
        for (counter, n) in [
            (&m.requests_ok, c.requests_ok),
            (&m.bytes_in, c.bytes_in),
            (&m.bytes_out, c.bytes_out),
            (&m.in_place, c.in_place),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

struct HQueue {
    index: u16,
    kind: QueueKind,
    queue: Queue,
    kick: EventFd,
    signal: bool,
    broken: bool,
    deferred: bool,
}

struct InFlight {
    qpos: usize,
    head: u16,
    area: WritableArea,
    bytes_in: u64,
    held: usize,
    /// The job writes its output into `area` itself (`JobOp::EncryptDirect` and co).
    direct: bool,
}

/// Runs one activated virtio-accel device on the VMM's event loop.
pub struct AccelHandler<M> {
    /// Shared with in-place jobs, which keep the memory mapped while they run.
    mem: Arc<M>,
    in_place_mem: Arc<InPlaceMemory<M>>,
    queues: Vec<HQueue>,
    interrupt: Arc<dyn VirtioInterrupt>,
    state: Arc<Mutex<State>>,
    epoch: u64,
    stale: bool,
    backend: Arc<dyn Accelerator>,
    caps: Capabilities,
    layout: QueueLayout,
    sink: Arc<Completions>,
    scratch: Vec<JobResult>,
    /// Chains popped in one pass, kept to reuse the allocation.
    popped: Vec<SplitResult>,
    inflight: HashMap<u64, InFlight, BuildHasherDefault<TokenHasher>>,
    next_token: u64,
    pool: Vec<Vec<u8>>,
    metrics: Arc<AccelMetrics>,
    counts: HotCounts,
    /// What this pass may still run inline ([`INLINE_BYTES_PER_PASS`]).
    inline_left: u64,
    max_data: usize,
    max_readable: usize,
    inflight_bytes: usize,
    max_inflight_bytes: usize,
    tenant: TenantId,
    stateless: bool,
    acked: u64,
}

impl<M: GuestMemory + Send + Sync + 'static> AccelHandler<M> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        ctx: ActivationContext<M>,
        layout: QueueLayout,
        backend: Arc<dyn Accelerator>,
        state: Arc<Mutex<State>>,
        epoch: u64,
        metrics: Arc<AccelMetrics>,
        max_data: u32,
        tenant: TenantId,
        max_inflight_bytes: usize,
    ) -> std::io::Result<Self> {
        let event_idx = ctx.acked_features & (1 << VIRTIO_F_EVENT_IDX) != 0;
        let mut queues = Vec::new();
        for (index, aq) in ctx.queues {
            // Queues past the layout cannot carry anything; the transport should not have them.
            let Some(kind) = layout.kind(index) else {
                continue;
            };
            let mut queue = aq.queue;
            queue.set_event_idx(event_idx);
            queues.push(HQueue {
                index,
                kind,
                queue,
                kick: aq.kick,
                signal: false,
                broken: false,
                deferred: false,
            });
        }
        let gate = state.lock().unwrap_or_else(|e| e.into_inner()).gate.clone();
        let mem = Arc::new(ctx.mem);
        Ok(AccelHandler {
            in_place_mem: InPlaceMemory::new(mem.clone(), gate),
            mem,
            queues,
            interrupt: ctx.interrupt,
            state,
            epoch,
            stale: false,
            caps: backend.capabilities(),
            backend,
            layout,
            sink: Arc::new(Completions {
                done: Mutex::new(Done::default()),
                evt: EventFd::new(EFD_NONBLOCK)?,
            }),
            scratch: Vec::new(),
            popped: Vec::new(),
            inflight: HashMap::default(),
            next_token: 0,
            pool: Vec::new(),
            metrics,
            counts: HotCounts::default(),
            inline_left: INLINE_BYTES_PER_PASS,
            max_data: max_data as usize,
            max_readable: size_of::<DataHdr>() + size_of::<CryptoKey>() + max_data as usize,
            inflight_bytes: 0,
            max_inflight_bytes,
            tenant,
            stateless: ctx.acked_features & (1 << VIRTIO_ACCEL_F_STATELESS) != 0,
            acked: ctx.acked_features,
        })
    }

    /// Requests submitted to the backend and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        // The length is kept: those bytes are initialised, so the next user overwrites them
        // instead of zero-filling a fresh buffer.
        if self.pool.len() < POOL_MAX_BUFFERS
            && buf.capacity() > 0
            && buf.capacity() <= POOL_MAX_BUFFER_BYTES
        {
            self.pool.push(buf);
        }
    }

    fn process_queue(&mut self, qpos: usize, tables: &mut Tables) {
        if self.queues[qpos].broken {
            return;
        }
        self.queues[qpos].deferred = false;
        let mut batch = std::mem::take(&mut self.popped);
        let mut budget = self.max_inflight_bytes.saturating_sub(self.inflight_bytes);
        let max_readable = self.max_readable;
        let out_cap = self.max_data + OUTPUT_SLACK as usize;
        {
            let (mem, q, pool) = (&*self.mem, &mut self.queues[qpos], &mut self.pool);
            // Data requests may leave a large source in guest memory (see `data`).
            let defer = match q.kind {
                // Nothing there runs in place: copy everything at once.
                QueueKind::Control | QueueKind::Ipsec => usize::MAX,
                _ => DIRECT_MIN_BYTES,
            };
            // virtio 1.2 §2.7.10: suppress notifications while draining, then re-check.
            loop {
                if q.queue.disable_notification(mem).is_err() {
                    q.broken = true;
                    break;
                }
                // One read of the available index for all the chains it announces. An index
                // more than a ring ahead of ours is a broken driver: the queue stops (until
                // reset). Treating it as an empty ring, as `pop_descriptor_chain` does, spun
                // here for ever, since `enable_notification` keeps reporting new buffers.
                let mut avail = match q.queue.iter(mem) {
                    Ok(avail) => avail,
                    Err(e) => {
                        log::warn!("virtio-accel: queue {} stopped: {e}", q.index);
                        q.broken = true;
                        break;
                    }
                };
                while budget > 0 {
                    let Some(chain) = avail.next() else {
                        break;
                    };
                    let buf = pool.pop().unwrap_or_default();
                    let peek = size_of::<DataHdr>();
                    let r = split_chain(chain, mem, buf, TAG_SLACK, max_readable, defer, peek);
                    if let Ok(sc) = &r {
                        let held = sc.readable_len() + sc.writable.len().min(out_cap);
                        budget = budget.saturating_sub(held.max(1));
                    }
                    batch.push(r);
                }
                if budget == 0 {
                    // Too much host memory pinned by this device: leave the rest in the ring
                    // (notifications stay off) and come back when completions free some.
                    q.deferred = true;
                    break;
                }
                match q.queue.enable_notification(mem) {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(_) => {
                        q.broken = true;
                        break;
                    }
                }
            }
        }
        for item in batch.drain(..) {
            match item {
                Ok(sc) => match self.queues[qpos].kind {
                    QueueKind::Control => self.control(qpos, sc, tables),
                    kind => self.data(qpos, kind, sc, tables),
                },
                Err((head, err, buf)) => self.drop_chain(qpos, head, err, buf),
            }
        }
        self.popped = batch;
    }

    /// Answers a chain that cannot carry a request with an empty used entry.
    fn drop_chain(&mut self, qpos: usize, head: u16, err: ChainError, buf: Vec<u8>) {
        let m = &self.metrics;
        match err {
            ChainError::ReadableAfterWritable => &m.bad_direction,
            ChainError::TooManySegments | ChainError::ReadableTooLong(_) => &m.chain_too_long,
            _ => &m.bad_address,
        }
        .fetch_add(1, Ordering::Relaxed);
        log::debug!("virtio-accel: dropping chain {head}: {err}");
        self.recycle(buf);
        self.add_used(qpos, head, 0);
    }

    fn add_used(&mut self, qpos: usize, head: u16, len: u32) {
        let q = &mut self.queues[qpos];
        if q.queue.add_used(&*self.mem, head, len).is_err() {
            self.metrics.add_used_failed.fetch_add(1, Ordering::Relaxed);
            q.broken = true;
        }
        q.signal = true;
    }

    /// Completes a data request without running it.
    fn finish_now(
        &mut self,
        qpos: usize,
        head: u16,
        area: &WritableArea,
        status: Status,
        needed: u32,
    ) {
        self.metrics.count_status(status);
        let resp = DataResp {
            status: Le32::from(status as u32),
            len: Le32::from(needed),
        };
        let trailer = size_of::<DataResp>();
        let used = if area
            .write_at(&*self.mem, area.len() - trailer, resp.as_slice())
            .is_ok()
        {
            trailer as u32
        } else {
            self.metrics.write_failed.fetch_add(1, Ordering::Relaxed);
            0
        };
        self.add_used(qpos, head, used);
    }

    fn build_op(
        &self,
        kind: QueueKind,
        sc: &mut SplitChain,
        tables: &Tables,
    ) -> Result<(JobOp, super::request::DataRequest), Status> {
        // Spec §3: a service the driver did not negotiate is NOTSUPP.
        let feature = match kind {
            QueueKind::Crypto => VIRTIO_ACCEL_F_CRYPTO,
            QueueKind::Compression => VIRTIO_ACCEL_F_COMPRESSION,
            _ => VIRTIO_ACCEL_F_IPSEC,
        };
        if self.acked & (1 << feature) == 0 {
            return Err(Status::NotSupp);
        }
        let req = parse_data_sized(&sc.readable, sc.readable_len(), kind, self.max_data)
            .map_err(|e| e.status())?;
        let op = match req.op {
            DataOp::Encrypt | DataOp::Decrypt => {
                let key = match &req.key {
                    Some(r) => {
                        let block = &mut sc.readable[r.clone()];
                        let mut wire = CryptoKey::from_slice(block)
                            .copied()
                            .ok_or(Status::BadMsg)?;
                        block.zeroize();
                        if !self.stateless {
                            wire.key.zeroize();
                            return Err(Status::NotSupp);
                        }
                        Arc::new(expand_key(&mut wire)?)
                    }
                    None => tables
                        .session(req.handle)
                        .cloned()
                        .ok_or(Status::NoSession)?,
                };
                let (iv, tag_len) = (req.iv, req.tag_len);
                if req.op == DataOp::Encrypt {
                    JobOp::Encrypt { key, iv, tag_len }
                } else {
                    JobOp::Decrypt { key, iv, tag_len }
                }
            }
            DataOp::Compress | DataOp::Decompress => {
                if req.algo >= 32 || self.caps.comp_algos & (1 << req.algo) == 0 {
                    return Err(Status::NotSupp);
                }
                if req.op == DataOp::Compress {
                    JobOp::Compress {
                        algo: req.algo,
                        level: req.level,
                    }
                } else {
                    JobOp::Decompress { algo: req.algo }
                }
            }
            DataOp::EspEncap | DataOp::EspDecap => {
                let sa = tables.sa(req.handle).cloned().ok_or(Status::NoSession)?;
                let inbound = sa.lock().unwrap_or_else(|e| e.into_inner()).inbound();
                if inbound != (req.op == DataOp::EspDecap) {
                    return Err(Status::BadMsg);
                }
                if inbound {
                    JobOp::EspDecap(sa)
                } else {
                    JobOp::EspEncap(sa)
                }
            }
        };
        Ok((op, req))
    }

    fn data(&mut self, qpos: usize, kind: QueueKind, mut sc: SplitChain, tables: &Tables) {
        let trailer = size_of::<DataResp>();
        if sc.writable.len() < trailer {
            self.metrics
                .dropped_no_trailer
                .fetch_add(1, Ordering::Relaxed);
            self.recycle(sc.readable);
            return self.add_used(qpos, sc.head, 0);
        }
        let out_capacity = (sc.writable.len() - trailer).min(self.max_data + OUTPUT_SLACK as usize);
        // An AES-GCM or LZ4 compress job whose source was left in guest memory runs in place;
        // everything else (and one that does not qualify) gets the rest of its bytes copied.
        let mut io = self.in_place(kind, &mut sc, out_capacity);
        if io.is_none()
            && let Err(e) = sc.fill_all(&*self.mem)
        {
            return self.drop_chain(qpos, sc.head, e, sc.readable);
        }
        let (mut op, req) = match self.build_op(kind, &mut sc, tables) {
            Ok(x) => x,
            Err(status) => {
                self.finish_now(qpos, sc.head, &sc.writable, status, 0);
                return self.recycle(sc.readable);
            }
        };
        let direct = self.make_direct(&mut op, &mut io);
        self.next_token += 1;
        let token = self.next_token;
        // AEAD works in place; only compression and ESP write into a second buffer. Handing a
        // pooled buffer to an in-place job would cost the next request a fresh allocation.
        let in_place = matches!(
            op,
            JobOp::Encrypt { .. }
                | JobOp::Decrypt { .. }
                | JobOp::EncryptDirect { .. }
                | JobOp::DecryptDirect { .. }
                | JobOp::CompressDirect { .. }
        );
        let spare = if in_place {
            Vec::new()
        } else {
            self.pool.pop().unwrap_or_default()
        };
        let mut job = Job {
            tenant: self.tenant,
            token,
            op,
            buf: sc.readable,
            aad: req.aad,
            src: req.src,
            out_capacity,
            spare,
        };
        let bytes_in = job.cost();
        let held = job.buf.len() + out_capacity;
        let f = InFlight {
            qpos,
            head: sc.head,
            area: sc.writable,
            bytes_in,
            held,
            direct,
        };
        // A job the backend runs right here completes without the in-flight table.
        if bytes_in <= self.inline_left
            && let Some(result) = self.backend.run_inline(&mut job)
        {
            self.inline_left -= bytes_in;
            return self.finish(f, result);
        }
        self.inflight_bytes += held;
        self.inflight.insert(token, f);
        let sink: Arc<dyn CompletionSink> = self.sink.clone();
        if let Err(e) = self.backend.submit(job, sink) {
            let (job, status) = match e {
                SubmitError::Busy(job) => (job, Status::Busy),
                SubmitError::Stopped(job) => (job, Status::Err),
            };
            if let Some(f) = self.inflight.remove(&token) {
                self.inflight_bytes -= f.held;
                self.finish_now(qpos, f.head, &f.area, status, 0);
            }
            self.recycle(job.buf);
            self.recycle(job.spare);
        }
    }

    fn drain_completions(&mut self) {
        std::mem::swap(&mut self.sink.lock().results, &mut self.scratch);
        let mut results = std::mem::take(&mut self.scratch);
        for r in results.drain(..) {
            let Some(f) = self.inflight.remove(&r.token) else {
                self.metrics
                    .stale_completions
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            };
            self.inflight_bytes -= f.held;
            self.finish(f, r);
        }
        self.scratch = results;
    }

    /// Writes a finished job's output (unless it wrote it in place) and trailer, and adds
    /// the used entry.
    fn finish(&mut self, f: InFlight, r: JobResult) {
        let trailer = size_of::<DataResp>();
        let mut status = r.status;
        let mut len = r.needed;
        let mut used = trailer;
        if status == Status::Ok {
            // An in-place job already wrote its output; `out` is its guest extent.
            let written = if f.direct {
                (r.out.end <= f.area.len()).then_some(r.out.len())
            } else {
                r.buf
                    .get(r.out.clone())
                    .filter(|out| f.area.write_at(&*self.mem, 0, out).is_ok())
                    .map(|out| out.len())
            };
            if let Some(n) = written {
                len = n as u32;
                used += n;
                self.counts.requests_ok += 1;
                self.counts.bytes_in += f.bytes_in;
                self.counts.bytes_out += n as u64;
            } else {
                // The output area was checked at parse time; only a memory change
                // behind our back gets here.
                self.metrics.write_failed.fetch_add(1, Ordering::Relaxed);
                status = Status::Err;
                len = 0;
            }
        }
        self.metrics.count_status(status);
        let resp = DataResp {
            status: Le32::from(status as u32),
            len: Le32::from(len),
        };
        if f.area
            .write_at(&*self.mem, f.area.len() - trailer, resp.as_slice())
            .is_err()
        {
            self.metrics.write_failed.fetch_add(1, Ordering::Relaxed);
            used = 0;
        }
        self.add_used(f.qpos, f.head, used as u32);
        self.recycle(r.buf);
        self.recycle(r.spare);
    }

    fn signal(&mut self) {
        for q in &mut self.queues {
            if !std::mem::take(&mut q.signal) {
                continue;
            }
            // virtio 1.2 §2.7.10: with EVENT_IDX only interrupt when the driver asked for it.
            if q.queue.needs_notification(&*self.mem).unwrap_or(true) {
                self.metrics.interrupts.fetch_add(1, Ordering::Relaxed);
                if self
                    .interrupt
                    .trigger(InterruptKind::Queue(q.index))
                    .is_err()
                {
                    self.metrics
                        .interrupt_failed
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Processes everything pending: queue `qpos` (if given) and finished jobs.
    fn run(&mut self, qpos: Option<usize>) {
        let state = self.state.clone();
        // Holding the state lock for the whole pass is what lets reset() wait for us.
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        if self.stale || st.epoch != self.epoch {
            // A stale handler leaves kicks alone: they belong to the next activation. The
            // event loop removes this handler at the end of the batch that showed them (the
            // transport queues that removal before the guest can kick again), so the unread
            // eventfd does not make the loop spin.
            self.stale = true;
            let n = std::mem::take(&mut self.sink.lock().results).len();
            self.metrics
                .stale_completions
                .fetch_add(n as u64, Ordering::Relaxed);
            self.inflight.clear();
            self.inflight_bytes = 0;
            return;
        }
        if let Some(qpos) = qpos {
            // The kick is consumed only here, under the state lock and after the epoch check:
            // a kick read by a handler that reset() already made stale would be lost to the
            // next handler, which shares the kick eventfd. (The event loop drops a stale
            // handler only after the current batch of events; the driver of the re-activated
            // device may kick in between, and with EVENT_IDX it never kicks that queue again
            // until the device answers.)
            let _ = self.queues[qpos].kick.read();
        }
        // Completions from here until `draining` is cleared are drained by this pass.
        self.sink.lock().draining = true;
        self.inline_left = INLINE_BYTES_PER_PASS;
        if let Some(qpos) = qpos {
            self.process_queue(qpos, &mut st.tables);
        }
        loop {
            self.drain_completions();
            // Queues left waiting for host memory resume once completions released some.
            let deferred = self.queues.iter().any(|q| q.deferred && !q.broken);
            if deferred && self.inflight_bytes < self.max_inflight_bytes {
                for i in 0..self.queues.len() {
                    if self.queues[i].deferred && !self.queues[i].broken {
                        self.process_queue(i, &mut st.tables);
                    }
                }
                continue;
            }
            // Leave only with nothing left behind: a result that arrived after the last drain
            // saw `draining` set and wrote no wakeup.
            let mut done = self.sink.lock();
            if done.results.is_empty() {
                done.draining = false;
                break;
            }
        }
        self.counts.flush(&self.metrics);
        self.signal();
        drop(st);
    }
}

impl<M: GuestMemory + Send + Sync + 'static> crate::virtio::DeviceHandler for AccelHandler<M> {
    fn fds(&self) -> Vec<RawFd> {
        let mut fds: Vec<RawFd> = self.queues.iter().map(|q| q.kick.as_raw_fd()).collect();
        fds.push(self.sink.evt.as_raw_fd());
        fds
    }

    fn handle(&mut self, index: usize) {
        if index < self.queues.len() {
            // run() reads the kick, unless this handler is stale (see there).
            self.run(Some(index));
        } else if index == self.queues.len() {
            let _ = self.sink.evt.read();
            self.run(None);
        }
    }
}
