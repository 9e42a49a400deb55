//! The transport-agnostic virtio device model shared by every device and transport here.

pub mod accel;
mod device;
mod interrupt;
pub mod mmio;
pub mod net;
pub mod rng;

pub use device::{ActivateError, ActivatedQueue, ActivationContext, DeviceHandler, VirtioDevice};
pub use interrupt::{InterruptKind, VirtioInterrupt};

/// virtio 1.2 §6: the driver and device both offer VERSION_1 for a modern (non-legacy) device.
pub const VIRTIO_F_VERSION_1: u32 = 32;
/// virtio 1.2 §6: the driver may use indirect descriptors.
pub const VIRTIO_F_INDIRECT_DESC: u32 = 28;
/// virtio 1.2 §6: used_event / avail_event notification suppression.
pub const VIRTIO_F_EVENT_IDX: u32 = 29;

/// Device status bits (virtio 1.2 §2.1).
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u32 = 1;
    /// The guest has a driver for it.
    pub const DRIVER: u32 = 2;
    /// The driver is ready to drive the device.
    pub const DRIVER_OK: u32 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u32 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u32 = 64;
    /// The driver gave up on the device.
    pub const FAILED: u32 = 128;
}
