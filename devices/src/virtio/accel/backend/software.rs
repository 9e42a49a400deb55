//! The software accelerator: RustCrypto AES-GCM, zlib-rs deflate, lz4_flex and the ESP engine,
//! run on a pool of worker threads so the VMM's event loop never does the heavy lifting.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{
    Accelerator, Capabilities, CompletionSink, Job, JobResult, SubmitError, execute, execute_in,
};
use crate::virtio::accel::esp_adapter;
use crate::virtio::accel::protocol::{COMP_DEFLATE, COMP_LZ4, CRYPTO_AES_GCM};

/// Jobs that may wait for a worker before `submit` answers BUSY.
pub const MAX_QUEUED_JOBS: usize = 4096;
/// Upper bound on worker threads.
pub const MAX_WORKERS: usize = 64;
/// Jobs up to this many bytes run inline by default (the device bounds how much inline work
/// one pass of its event loop may do: `INLINE_BYTES_PER_PASS` in the handler). A thread
/// handoff costs about 2 µs per request in `benches/accel_device.rs` (two wake-ups: the
/// worker's, then the event loop's), 10 % of AES-GCM on 64 KiB, and about 200 µs in the nested
/// test host, where it made the device's round trip at 16-64 KiB no shorter than QEMU's
/// virtio-crypto; inline it is 0.78-0.80 of QEMU's (docs/virtio-accel-bench.md). Workers keep
/// the larger jobs and those past a pass's budget. The 256 bytes on top let a 64 KiB decrypt
/// (tag) or a request with AAD count as 64 KiB.
pub const DEFAULT_INLINE_BYTES: u64 = (64 << 10) + 256;
/// Jobs `submit` still runs on the caller's thread when it has workers: 4 KiB plus tag, the
/// inline limit before jobs up to 64 KiB ran inline through `run_inline`.
pub const SUBMIT_INLINE_BYTES: u64 = 4096 + 256;

type Work = (Job, Arc<dyn CompletionSink>);

/// A software accelerator with `workers` threads (0 = run jobs inline in `submit`).
pub struct SoftwareAccelerator {
    tx: Option<SyncSender<Work>>,
    workers: Vec<JoinHandle<()>>,
    queued: Arc<AtomicUsize>,
    inline_bytes: u64,
}

impl std::fmt::Debug for SoftwareAccelerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareAccelerator")
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl SoftwareAccelerator {
    /// Jobs accepted but not yet picked up by a worker.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Starts `workers` threads (clamped to [`MAX_WORKERS`]); 0 executes every job inline, on
    /// the caller's thread, which suits benchmarks and single-threaded embedders. Jobs of at
    /// most [`DEFAULT_INLINE_BYTES`] run inline anyway.
    pub fn new(workers: usize) -> std::io::Result<Self> {
        Self::with_inline_bytes(workers, DEFAULT_INLINE_BYTES)
    }

    /// Like [`new`](Self::new), with jobs up to `inline_bytes` (aad + src) run inline
    /// (0: every job goes to a worker).
    pub fn with_inline_bytes(workers: usize, inline_bytes: u64) -> std::io::Result<Self> {
        let workers = workers.min(MAX_WORKERS);
        let queued = Arc::new(AtomicUsize::new(0));
        if workers == 0 {
            return Ok(SoftwareAccelerator {
                tx: None,
                workers: Vec::new(),
                queued,
                inline_bytes,
            });
        }
        let (tx, rx) = sync_channel::<Work>(MAX_QUEUED_JOBS);
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let rx = rx.clone();
            let queued = queued.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("accel-sw-{i}"))
                    .spawn(move || worker(&rx, &queued))?,
            );
        }
        Ok(SoftwareAccelerator {
            tx: Some(tx),
            workers: handles,
            queued,
            inline_bytes,
        })
    }
}

/// Results a worker may hold back before handing them to their sink.
const MAX_HELD_RESULTS: usize = 32;
/// How long the oldest held-back result may wait for the rest of its batch.
const MAX_HOLD: Duration = Duration::from_micros(200);

/// Held results are handed back before a job bigger than this runs (its run time would
/// delay them).
const HOLD_BEHIND_BYTES: u64 = 128 << 10;

/// Results finished by one worker for one sink, delivered together.
struct Held {
    sink: Option<Arc<dyn CompletionSink>>,
    results: Vec<JobResult>,
    since: Instant,
}

impl Held {
    fn flush(&mut self) {
        if let Some(sink) = self.sink.take() {
            sink.complete_batch(&mut self.results);
        }
        // A sink whose complete_batch left results behind must not get them twice.
        self.results.clear();
    }

    fn push(&mut self, sink: Arc<dyn CompletionSink>, result: JobResult) {
        // Results go back in batches per sink; a job for another sink ends the batch.
        if self
            .sink
            .as_ref()
            .is_some_and(|s| !std::ptr::addr_eq(Arc::as_ptr(s), Arc::as_ptr(&sink)))
        {
            self.flush();
        }
        if self.sink.is_none() {
            self.since = Instant::now();
            self.sink = Some(sink);
        }
        self.results.push(result);
        if self.results.len() >= MAX_HELD_RESULTS || self.since.elapsed() >= MAX_HOLD {
            self.flush();
        }
    }
}

fn worker(rx: &Mutex<Receiver<Work>>, queued: &AtomicUsize) {
    let mut held = Held {
        sink: None,
        results: Vec::with_capacity(MAX_HELD_RESULTS),
        since: Instant::now(),
    };
    loop {
        // While results are held, only look for more work without blocking: when the queue
        // runs dry the batch goes out (the event loop is woken once per batch, not per job).
        // Holding the lock only while receiving lets the other workers run jobs meanwhile.
        // A busy lock means another worker waits in `recv` (the queue is empty) or takes the
        // next job: either way this worker must not wait with results held.
        let next = if held.sink.is_none() {
            match rx.lock() {
                Ok(rx) => rx.recv().map_err(|_| TryRecvError::Disconnected),
                Err(_) => Err(TryRecvError::Disconnected),
            }
        } else {
            match rx.try_lock() {
                Ok(rx) => rx.try_recv(),
                Err(TryLockError::WouldBlock) => Err(TryRecvError::Empty),
                Err(TryLockError::Poisoned(_)) => Err(TryRecvError::Disconnected),
            }
        };
        match next {
            Ok((job, sink)) => {
                queued.fetch_sub(1, Ordering::Relaxed);
                // Finished results do not wait behind a long job.
                if job.cost() > HOLD_BEHIND_BYTES || held.since.elapsed() >= MAX_HOLD {
                    held.flush();
                }
                held.push(sink, execute(job));
            }
            Err(TryRecvError::Empty) => held.flush(),
            Err(TryRecvError::Disconnected) => return held.flush(),
        }
    }
}

impl Accelerator for SoftwareAccelerator {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            crypto_algos: 1 << CRYPTO_AES_GCM,
            comp_algos: (1 << COMP_DEFLATE) | (1 << COMP_LZ4),
            ipsec_algos: esp_adapter::SUPPORTED_TRANSFORMS,
            stateless: true,
        }
    }

    fn run_inline(&self, job: &mut Job) -> Option<JobResult> {
        if self.tx.is_some() && job.cost() > self.inline_bytes {
            return None;
        }
        Some(execute_in(job))
    }

    fn submit(&self, job: Job, sink: Arc<dyn CompletionSink>) -> Result<(), SubmitError> {
        // A job submitted (not offered to `run_inline`) comes from a device whose pass is past
        // its inline budget, or from a shared accelerator's scheduler: only small jobs run on
        // the caller's thread here, so that budget really bounds the event loop's work.
        let inline = job.cost() <= self.inline_bytes.min(SUBMIT_INLINE_BYTES);
        let Some(tx) = self.tx.as_ref().filter(|_| !inline) else {
            sink.complete(execute(job));
            return Ok(());
        };
        self.queued.fetch_add(1, Ordering::Relaxed);
        tx.try_send((job, sink)).map_err(|e| {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            match e {
                TrySendError::Full((job, _)) => SubmitError::Busy(Box::new(job)),
                TrySendError::Disconnected((job, _)) => SubmitError::Stopped(Box::new(job)),
            }
        })
    }
}

impl Drop for SoftwareAccelerator {
    fn drop(&mut self) {
        // Closing the channel ends the workers once the queued jobs are done.
        self.tx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
