//! virtio-accel: crypto (AES-GCM), compression (deflate, LZ4) and IPsec ESP offload.
//!
//! The wire protocol is specified in docs/virtio-accel.md and declared in the C uapi header;
//! [`protocol`] mirrors it. Requests are split off the ring ([`chain`]), parsed ([`request`]),
//! turned into backend jobs ([`backend`]) and completed on the event loop ([`handler`]).

pub mod backend;
pub mod chain;
mod device;
pub mod esp;
pub mod esp_adapter;
#[cfg(any(test, feature = "test-utils"))]
pub mod fuzzing;
mod handler;
pub mod metrics;
#[cfg(any(test, feature = "test-utils"))]
pub mod mock_driver;
#[cfg(any(test, feature = "test-utils"))]
pub mod mock_vm;
pub mod protocol;
pub mod request;
pub mod session;

#[cfg(test)]
mod tests;

pub use backend::{Accelerator, SoftwareAccelerator};
pub use device::{Accel, AccelConfig, AccelError};
pub use handler::AccelHandler;
pub use metrics::AccelMetrics;

/// Largest `max_data_size` a device may be configured with (aad + src, and output).
pub const MAX_DATA_SIZE_LIMIT: u32 = 1 << 20;
/// Default `max_data_size`: Linux's scomp scratch buffers are 128 KiB, IPsec packets 64 KiB.
pub const DEFAULT_MAX_DATA_SIZE: u32 = 256 << 10;
/// Output bytes the device may write beyond `max_data_size` (AEAD tags, ESP headers,
/// padding and outer IP headers).
pub const OUTPUT_SLACK: u32 = 1024;
/// Largest device-readable area: data header, stateless key block and data.
pub const MAX_READABLE_BYTES: usize = 64 + 40 + MAX_DATA_SIZE_LIMIT as usize;
/// Default host memory one device may pin in requests in flight (readable copies and output
/// buffers); beyond it the device stops taking chains off its rings until completions free
/// some ([`AccelConfig::max_inflight_bytes`]).
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 64 << 20;
/// Most descriptors one request may use (direct or indirect).
pub const MAX_CHAIN_SEGMENTS: usize = 1024;
/// Largest queue size the device offers.
pub const QUEUE_SIZE: u16 = 256;
/// Most data queues per service.
pub const MAX_QUEUES_PER_SERVICE: u16 = 64;

/// What a queue carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueKind {
    /// Queue 0: sessions and SAs.
    Control,
    /// AEAD requests.
    Crypto,
    /// Compression requests.
    Compression,
    /// ESP requests.
    Ipsec,
}

/// Number of data queues per service; fixes every queue's index (spec §"Virtqueues").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueLayout {
    /// Crypto data queues.
    pub crypto: u16,
    /// Compression data queues.
    pub comp: u16,
    /// IPsec data queues.
    pub ipsec: u16,
}

impl QueueLayout {
    /// Total number of queues, control queue included.
    pub fn num_queues(&self) -> usize {
        1 + self.crypto as usize + self.comp as usize + self.ipsec as usize
    }

    /// Index of the `i`-th data queue of `kind` (0 for the control queue).
    pub fn index(&self, kind: QueueKind, i: u16) -> u16 {
        match kind {
            QueueKind::Control => 0,
            QueueKind::Crypto => 1 + i,
            QueueKind::Compression => 1 + self.crypto + i,
            QueueKind::Ipsec => 1 + self.crypto + self.comp + i,
        }
    }

    /// What queue `index` carries, `None` past the last queue.
    pub fn kind(&self, index: u16) -> Option<QueueKind> {
        let i = index as usize;
        let (c, p) = (self.crypto as usize, self.comp as usize);
        match i {
            0 => Some(QueueKind::Control),
            _ if i <= c => Some(QueueKind::Crypto),
            _ if i <= c + p => Some(QueueKind::Compression),
            _ if i < self.num_queues() => Some(QueueKind::Ipsec),
            _ => None,
        }
    }
}
