//! The virtio-mmio transport (virtio 1.2 §4.2, version 2 "modern" register layout).
//!
//! [`MmioTransport`] owns the register file of one device window and drives a
//! [`VirtioDevice`](super::VirtioDevice). It knows nothing about KVM: the VMM routes the
//! window's MMIO accesses to [`MmioTransport::read`]/[`MmioTransport::write`], registers the
//! per-queue [`MmioTransport::queue_kick_fds`] as ioeventfds, wires an [`IrqLine`] (an irqfd)
//! and runs the [`DeviceHandler`](super::DeviceHandler) handed back in
//! [`TransportEvent::Activated`] on its event loop.

mod interrupt;
mod transport;

pub use interrupt::{IrqLine, MmioInterrupt};
pub use transport::{MmioTransport, TransportEvent};

/// Size of one device's register window; devices are placed on 4 KiB boundaries.
pub const MMIO_WINDOW_SIZE: u64 = 0x1000;

/// "virt" in little endian (virtio 1.2 §4.2.2).
pub const MMIO_MAGIC_VALUE: u32 = 0x7472_6976;
/// Register layout version 2: the non-legacy interface.
pub const MMIO_VERSION: u32 = 2;
/// Vendor ID reported to the driver ("AVM\0" would be cute; any value is allowed).
pub const MMIO_VENDOR_ID: u32 = 0x0041_564d;

/// InterruptStatus bit: a used buffer notification (virtio 1.2 §4.2.2).
pub const INT_VRING: u32 = 1;
/// InterruptStatus bit: a configuration change notification.
pub const INT_CONFIG: u32 = 2;

/// Register offsets inside the window (virtio 1.2 §4.2.2, table "MMIO Device Register Layout").
pub mod regs {
    /// R: magic value 0x74726976.
    pub const MAGIC_VALUE: u64 = 0x000;
    /// R: device version number (2).
    pub const VERSION: u64 = 0x004;
    /// R: virtio subsystem device ID.
    pub const DEVICE_ID: u64 = 0x008;
    /// R: virtio subsystem vendor ID.
    pub const VENDOR_ID: u64 = 0x00c;
    /// R: 32 feature bits selected by DEVICE_FEATURES_SEL.
    pub const DEVICE_FEATURES: u64 = 0x010;
    /// W: which 32-bit word DEVICE_FEATURES shows.
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    /// W: 32 feature bits accepted by the driver, selected by DRIVER_FEATURES_SEL.
    pub const DRIVER_FEATURES: u64 = 0x020;
    /// W: which 32-bit word DRIVER_FEATURES writes.
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    /// W: queue index the queue registers refer to.
    pub const QUEUE_SEL: u64 = 0x030;
    /// R: maximum size of the selected queue (0 if it does not exist).
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    /// W: size the driver chose for the selected queue.
    pub const QUEUE_NUM: u64 = 0x038;
    /// RW: the selected queue is ready.
    pub const QUEUE_READY: u64 = 0x044;
    /// W: queue notification; the value is the queue index.
    pub const QUEUE_NOTIFY: u64 = 0x050;
    /// R: pending interrupt causes.
    pub const INTERRUPT_STATUS: u64 = 0x060;
    /// W: interrupt causes the driver handled.
    pub const INTERRUPT_ACK: u64 = 0x064;
    /// RW: device status; writing 0 resets the device.
    pub const STATUS: u64 = 0x070;
    /// W: descriptor table address, low 32 bits.
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    /// W: descriptor table address, high 32 bits.
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    /// W: driver (available) ring address, low 32 bits.
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    /// W: driver (available) ring address, high 32 bits.
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    /// W: device (used) ring address, low 32 bits.
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    /// W: device (used) ring address, high 32 bits.
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    /// W: shared memory region selector.
    pub const SHM_SEL: u64 = 0x0ac;
    /// R: shared memory region length, low 32 bits (all ones: no such region).
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    /// R: shared memory region length, high 32 bits.
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    /// R: shared memory region base, low 32 bits.
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    /// R: shared memory region base, high 32 bits.
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    /// RW: per-queue reset (VIRTIO_F_RING_RESET, not offered here).
    pub const QUEUE_RESET: u64 = 0x0c0;
    /// R: changes whenever the device configuration changes.
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    /// Start of the device-specific configuration space.
    pub const CONFIG: u64 = 0x100;
}
