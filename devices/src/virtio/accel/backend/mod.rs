//! The accelerator backend: what a virtio-accel device hands its work to.
//!
//! The device parses a request, turns it into a [`Job`] that owns its bytes (no guest memory
//! references, except the request's own source and output areas for the in-place operations
//! [`JobOp::EncryptDirect`], [`JobOp::DecryptDirect`] and [`JobOp::CompressDirect`], behind [`GuestBuffers`]), and
//! submits it with a [`CompletionSink`]. A backend may run the job anywhere
//! (worker threads, hardware, a scheduler shared by several VMs keyed on [`Job::tenant`] and
//! [`Job::cost`]) and later calls the sink exactly once with a [`JobResult`].

pub mod aead;
pub mod compress;
mod execute;
pub mod shared;
mod software;

use std::ops::Range;
use std::sync::{Arc, Mutex};

pub use execute::{execute, execute_in};
pub use shared::{SharedAccelerator, TenantHandle};
pub use software::SoftwareAccelerator;

use super::esp_adapter::EspSa;
use super::protocol::Status;
use aead::AeadKey;

/// Identifies the VM (device instance) a job belongs to, for shared schedulers and quotas.
pub type TenantId = u32;

/// What an accelerator can do; the device's configuration space advertises exactly this.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Bitmap of `CRYPTO_*` algorithms (bit n = algorithm n), 0 if no crypto.
    pub crypto_algos: u32,
    /// Bitmap of `COMP_*` algorithms.
    pub comp_algos: u32,
    /// Bitmap of `IPSEC_*` transforms.
    pub ipsec_algos: u32,
    /// Crypto requests may carry their own key.
    pub stateless: bool,
}

/// The operation a job performs.
#[derive(Debug)]
pub enum JobOp {
    /// AES-GCM seal: output is the ciphertext followed by the tag.
    Encrypt {
        /// Expanded key.
        key: Arc<AeadKey>,
        /// 96-bit IV.
        iv: [u8; 12],
        /// Tag bytes to append.
        tag_len: usize,
    },
    /// AES-GCM open: the input ends with the tag; output is the plaintext.
    Decrypt {
        /// Expanded key.
        key: Arc<AeadKey>,
        /// 96-bit IV.
        iv: [u8; 12],
        /// Tag bytes at the end of the source.
        tag_len: usize,
    },
    /// Compress with `COMP_*` algorithm `algo` at `level` (0 = default).
    Compress {
        /// Algorithm.
        algo: u32,
        /// Level.
        level: u32,
    },
    /// Decompress with `COMP_*` algorithm `algo`.
    Decompress {
        /// Algorithm.
        algo: u32,
    },
    /// AES-GCM seal straight from guest memory into guest memory (no host copy of the data):
    /// `io` gives the source bytes and the output area (ciphertext then tag). [`Job::buf`]
    /// holds the request's header and AAD only; [`Job::src`] has the source's length but
    /// does not index `buf`. On success [`JobResult::out`] is `0..len` of the guest output
    /// area, not of the result's `buf`.
    EncryptDirect {
        /// Expanded key.
        key: Arc<AeadKey>,
        /// 96-bit IV.
        iv: [u8; 12],
        /// Tag bytes to append.
        tag_len: usize,
        /// The guest source and output areas.
        io: GuestBuffers,
    },
    /// AES-GCM open straight from guest memory into guest memory, like
    /// [`EncryptDirect`](JobOp::EncryptDirect): `io`'s source is the ciphertext then the
    /// tag, its output the plaintext area. The tag is checked before any plaintext is
    /// written, so a mismatch leaves the guest output untouched.
    DecryptDirect {
        /// Expanded key.
        key: Arc<AeadKey>,
        /// 96-bit IV.
        iv: [u8; 12],
        /// Tag bytes at the end of the source.
        tag_len: usize,
        /// The guest source and output areas.
        io: GuestBuffers,
    },
    /// Compress straight from guest memory into guest memory, like
    /// [`EncryptDirect`](JobOp::EncryptDirect) (same `buf`/`src`/`out` conventions). Only
    /// for outputs that cannot fail midway (LZ4 with room for its worst case): the spec
    /// forbids output bytes on an error status.
    CompressDirect {
        /// Algorithm.
        algo: u32,
        /// Level.
        level: u32,
        /// The guest source and output areas.
        io: GuestBuffers,
    },
    /// ESP-encapsulate an inner packet with an outbound SA.
    EspEncap(Arc<Mutex<EspSa>>),
    /// Verify and decapsulate an ESP packet with an inbound SA.
    EspDecap(Arc<Mutex<EspSa>>),
}

/// Why a job could not reach the guest memory it was given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuestIoError {
    /// The device was reset (or re-activated) since the job was submitted: its guest buffers
    /// may belong to something else now.
    #[error("device reset since the job was submitted")]
    Stale,
    /// The guest range is no longer one contiguous piece of mapped guest memory.
    #[error("guest memory range unavailable")]
    Unmapped,
}

/// Guest memory that jobs read and write in place, implemented by the device over the
/// memory of one activation (the device crate's `InPlaceMemory`).
pub trait GuestAccess: Send + Sync + std::fmt::Debug {
    /// Runs `f` on the guest bytes `src` and the guest area `out` (address, length), as
    /// one contiguous mapping each, if activation `epoch` is still current; nothing is
    /// written to the guest unless this returns `Ok`.
    fn with(
        &self,
        epoch: u64,
        src: (u64, usize),
        out: (u64, usize),
        f: &mut dyn FnMut(&[u8], &mut [u8]),
    ) -> Result<(), GuestIoError>;
}

/// Guest memory a job reads its source from and writes its output to, in place: a shared
/// handle on the memory plus the two ranges (no allocation per job).
#[derive(Debug)]
pub struct GuestBuffers {
    access: Arc<dyn GuestAccess>,
    epoch: u64,
    src: (u64, usize),
    out: (u64, usize),
}

impl GuestBuffers {
    /// Source `src` and output area `out` (guest address, length) of activation `epoch`.
    pub fn new(
        access: Arc<dyn GuestAccess>,
        epoch: u64,
        src: (u64, usize),
        out: (u64, usize),
    ) -> Self {
        GuestBuffers {
            access,
            epoch,
            src,
            out,
        }
    }

    /// Source length in bytes.
    pub fn src_len(&self) -> usize {
        self.src.1
    }

    /// Output area length in bytes.
    pub fn out_len(&self) -> usize {
        self.out.1
    }

    /// Runs `f` on the source bytes and the output area (lengths as above); nothing is
    /// written to the guest unless this returns `Ok`.
    pub fn with(&self, f: &mut dyn FnMut(&[u8], &mut [u8])) -> Result<(), GuestIoError> {
        self.access.with(self.epoch, self.src, self.out, f)
    }
}

/// One unit of work. It owns its buffer, so it can outlive the request's guest memory view.
#[derive(Debug)]
pub struct Job {
    /// The VM this job belongs to.
    pub tenant: TenantId,
    /// Opaque to the backend; echoed in the result.
    pub token: u64,
    /// The operation.
    pub op: JobOp,
    /// The whole device-readable part of the request; `aad` and `src` index into it.
    pub buf: Vec<u8>,
    /// Associated data (crypto only; empty otherwise).
    pub aad: Range<usize>,
    /// Source data.
    pub src: Range<usize>,
    /// Bytes the guest made available for output.
    pub out_capacity: usize,
    /// A recycled buffer the backend may use for output.
    pub spare: Vec<u8>,
}

impl Job {
    /// Bytes the job consumes, the unit for fair sharing and byte-rate limits.
    pub fn cost(&self) -> u64 {
        (self.src.len() + self.aad.len()) as u64
    }
}

/// What a job produced.
#[derive(Debug)]
pub struct JobResult {
    /// [`Job::token`].
    pub token: u64,
    /// Outcome.
    pub status: Status,
    /// Holds the output at `out`.
    pub buf: Vec<u8>,
    /// Output bytes in `buf` (empty unless `status` is OK).
    pub out: Range<usize>,
    /// With `OutputTooSmall`: the bytes needed, if known.
    pub needed: u32,
    /// The other buffer, returned for reuse.
    pub spare: Vec<u8>,
}

impl JobResult {
    /// A result carrying no output.
    pub fn status(job: Job, status: Status) -> Self {
        JobResult {
            token: job.token,
            status,
            buf: job.buf,
            out: 0..0,
            needed: 0,
            spare: job.spare,
        }
    }
}

/// Receives finished jobs; called exactly once per accepted job, from any thread.
pub trait CompletionSink: Send + Sync {
    /// Delivers a result.
    fn complete(&self, result: JobResult);

    /// Delivers several results at once (draining `results`), so a sink that wakes its owner
    /// can do it once per batch instead of once per job. The default delivers them one by one.
    fn complete_batch(&self, results: &mut Vec<JobResult>) {
        for r in results.drain(..) {
            self.complete(r);
        }
    }
}

/// Why a backend did not accept a job; the job is handed back.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Over quota or queue full: the device answers BUSY.
    #[error("accelerator busy")]
    Busy(Box<Job>),
    /// The backend is shutting down.
    #[error("accelerator stopped")]
    Stopped(Box<Job>),
}

/// A host accelerator. Several devices (VMs) may share one.
pub trait Accelerator: Send + Sync {
    /// What the accelerator offers.
    fn capabilities(&self) -> Capabilities;
    /// Queues a job; `sink.complete` is called once when it is done (possibly before
    /// `submit` returns).
    fn submit(&self, job: Job, sink: Arc<dyn CompletionSink>) -> Result<(), SubmitError>;

    /// Runs `job` on the caller's thread and returns its result (which takes the job's
    /// buffers), if this accelerator would run it there anyway (small jobs on a software
    /// backend); `None` leaves the job untouched for [`submit`](Accelerator::submit). The
    /// device then completes the request without any in-flight bookkeeping, and without
    /// moving the job around by value. The default never runs inline (a shared backend must
    /// not: it schedules every job).
    fn run_inline(&self, _job: &mut Job) -> Option<JobResult> {
        None
    }
}
