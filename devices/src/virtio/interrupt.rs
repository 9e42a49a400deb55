//! How a device tells its transport that the guest must be interrupted.

/// Why the guest is interrupted (virtio-mmio's InterruptStatus bits, virtio-pci's vectors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptKind {
    /// A used buffer was added to the queue with this index.
    Queue(u16),
    /// The configuration space changed.
    Config,
}

/// Raises guest interrupts for one device; implemented by the transport (e.g. an irqfd behind
/// virtio-mmio's interrupt status register), so the device never sees how interrupts are wired.
pub trait VirtioInterrupt: Send + Sync {
    /// Interrupts the guest. An error means the interrupt could not be delivered.
    fn trigger(&self, kind: InterruptKind) -> std::io::Result<()>;
}
