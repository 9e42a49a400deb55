//! virtio-rng (virtio 1.2 §5.4, "entropy device"): one request queue whose device-writable
//! buffers are filled with bytes from the host's getrandom(2).

mod device;
mod handler;

pub use device::Rng;
pub use handler::RngHandler;

/// virtio device ID of the entropy device.
pub const VIRTIO_ID_RNG: u32 = 4;
/// The only queue: requestq.
pub const REQUEST_QUEUE: u16 = 0;
/// Queue size offered to the driver.
pub const QUEUE_SIZE: u16 = 256;
/// Most bytes served per request, whatever the guest asks for (bounds host work per chain).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
