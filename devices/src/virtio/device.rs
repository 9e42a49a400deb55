//! The device trait every virtio device implements and every transport drives.
//!
//! A transport (virtio-mmio here, virtio-pci in another VMM) owns the registers, the feature
//! negotiation bookkeeping and the queue configuration; when the driver sets DRIVER_OK it
//! hands the device an [`ActivationContext`] and runs the returned [`DeviceHandler`] on the
//! VMM's event loop. Device work therefore never runs on a vCPU thread.

use std::sync::Arc;

use virtio_queue::Queue;
use vmm_sys_util::eventfd::EventFd;

use super::VirtioInterrupt;

/// One queue made ready by the driver, with the eventfd the transport signals on a notify.
#[derive(Debug)]
pub struct ActivatedQueue {
    /// The queue, configured by the driver (addresses, size, ready) and checked valid.
    pub queue: Queue,
    /// Written by the transport (an ioeventfd under KVM) when the driver notifies this queue.
    pub kick: EventFd,
}

/// Everything a device needs to start working, handed over at DRIVER_OK.
pub struct ActivationContext<M> {
    /// Guest memory; every access goes through it, bounds-checked.
    pub mem: M,
    /// Features the driver accepted (a subset of [`VirtioDevice::avail_features`]).
    pub acked_features: u64,
    /// The device's queues, in index order; queues the driver did not enable are absent.
    pub queues: Vec<(u16, ActivatedQueue)>,
    /// Raises the device's interrupts.
    pub interrupt: Arc<dyn VirtioInterrupt>,
}

/// Why a device refused to activate.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// A queue the device cannot work without was not enabled by the driver.
    #[error("required queue {0} is not ready")]
    QueueNotReady(u16),
    /// The driver accepted a feature combination the device cannot honour.
    #[error("unsupported feature combination {0:#x}")]
    BadFeatures(u64),
    /// The device could not start its workers or open its backend.
    #[error("device backend failed to start: {0}")]
    Backend(String),
}

/// Work a device does after activation: the VMM polls `fds()` and calls `handle` with the
/// index of each fd that became readable. Runs on the VMM's event-loop thread.
pub trait DeviceHandler: Send {
    /// File descriptors to watch for readability (queue kicks, TAP, completion eventfds).
    fn fds(&self) -> Vec<std::os::fd::RawFd>;
    /// Called when `fds()[index]` is readable.
    fn handle(&mut self, index: usize);
}

/// A virtio device, independent of transport and hypervisor.
pub trait VirtioDevice<M>: Send {
    /// The virtio device ID (virtio 1.2 §5).
    fn device_type(&self) -> u32;
    /// Maximum size of each queue; its length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Feature bits the device offers.
    fn avail_features(&self) -> u64;
    /// Reads device-specific configuration space at `offset`; out-of-range bytes read as 0.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes device-specific configuration space; writes to read-only fields are ignored.
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Starts the device; the returned handler is run on the VMM's event loop until reset.
    fn activate(
        &mut self,
        ctx: ActivationContext<M>,
    ) -> Result<Box<dyn DeviceHandler>, ActivateError>;
    /// Returns the device to its initial state: drops sessions, keys and queues.
    fn reset(&mut self);
}
