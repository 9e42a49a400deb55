//! The accelerator backend: what a virtio-accel device hands its work to.
//!
//! The device parses a request, turns it into a [`Job`] that owns its bytes (no guest memory
//! references), and submits it with a [`CompletionSink`]. A backend may run the job anywhere
//! (worker threads, hardware, a scheduler shared by several VMs keyed on [`Job::tenant`] and
//! [`Job::cost`]) and later calls the sink exactly once with a [`JobResult`].

pub mod aead;
pub mod compress;
mod execute;
pub mod shared;
mod software;

use std::ops::Range;
use std::sync::{Arc, Mutex};

pub use execute::execute;
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
    /// ESP-encapsulate an inner packet with an outbound SA.
    EspEncap(Arc<Mutex<EspSa>>),
    /// Verify and decapsulate an ESP packet with an inbound SA.
    EspDecap(Arc<Mutex<EspSa>>),
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
}
