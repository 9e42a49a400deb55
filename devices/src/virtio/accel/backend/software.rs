//! The software accelerator: RustCrypto AES-GCM, zlib-rs deflate, lz4_flex and the ESP engine,
//! run on a pool of worker threads so the VMM's event loop never does the heavy lifting.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{Accelerator, Capabilities, CompletionSink, Job, SubmitError, execute};
use crate::virtio::accel::esp_adapter;
use crate::virtio::accel::protocol::{COMP_DEFLATE, COMP_LZ4, CRYPTO_AES_GCM};

/// Jobs that may wait for a worker before `submit` answers BUSY.
pub const MAX_QUEUED_JOBS: usize = 4096;
/// Upper bound on worker threads.
pub const MAX_WORKERS: usize = 64;
/// Jobs up to this many bytes run inline by default: a thread handoff costs more than AES-GCM
/// or LZ4 on 2 KiB, and the event loop is blocked for only about a microsecond.
pub const DEFAULT_INLINE_BYTES: u64 = 2048;

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

fn worker(rx: &Mutex<Receiver<Work>>, queued: &AtomicUsize) {
    loop {
        // Holding the lock only while receiving lets the other workers run jobs meanwhile.
        let next = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((job, sink)) = next else { return };
        queued.fetch_sub(1, Ordering::Relaxed);
        sink.complete(execute(job));
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

    fn submit(&self, job: Job, sink: Arc<dyn CompletionSink>) -> Result<(), SubmitError> {
        let Some(tx) = self.tx.as_ref().filter(|_| job.cost() > self.inline_bytes) else {
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
