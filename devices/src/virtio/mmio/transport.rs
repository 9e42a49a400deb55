//! The register file of one virtio-mmio device and its status state machine.
//!
//! Feature negotiation and queue configuration happen here; at DRIVER_OK the device receives
//! its queues and kick eventfds in an [`ActivationContext`] and the VMM receives the device's
//! [`DeviceHandler`] in a [`TransportEvent`]. A malformed driver sequence never panics: the
//! write is ignored (with a log line) or the device is marked DEVICE_NEEDS_RESET.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use log::{debug, warn};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemory;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::interrupt::{IrqLine, MmioInterrupt};
use super::{MMIO_MAGIC_VALUE, MMIO_VENDOR_ID, MMIO_VERSION, regs};
use crate::virtio::{
    ActivatedQueue, ActivationContext, DeviceHandler, InterruptKind, VIRTIO_F_EVENT_IDX,
    VIRTIO_F_VERSION_1, VirtioDevice, VirtioInterrupt, status,
};

/// What the VMM must do after a register write.
pub enum TransportEvent {
    /// The driver set DRIVER_OK: run this handler on the event loop.
    Activated(Box<dyn DeviceHandler>),
    /// The driver reset an active device: stop running its handler.
    Reset,
}

impl std::fmt::Debug for TransportEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportEvent::Activated(_) => f.write_str("Activated"),
            TransportEvent::Reset => f.write_str("Reset"),
        }
    }
}

/// One virtio-mmio device window (virtio 1.2 §4.2).
pub struct MmioTransport<M: GuestMemory> {
    device: Box<dyn VirtioDevice<M>>,
    mem: M,
    queues: Vec<Queue>,
    kicks: Vec<EventFd>,
    interrupt_status: Arc<AtomicU32>,
    config_generation: Arc<AtomicU32>,
    irq: Arc<dyn IrqLine>,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    acked_features: u64,
    queue_sel: u32,
    shm_sel: u32,
    activated: bool,
}

impl<M: GuestMemory + Clone + Send + 'static> MmioTransport<M> {
    /// Wraps `device`; `irq` is raised whenever the device interrupts the guest.
    ///
    /// Fails only if the kernel refuses to create the per-queue eventfds.
    pub fn new(
        device: Box<dyn VirtioDevice<M>>,
        mem: M,
        irq: Arc<dyn IrqLine>,
    ) -> std::io::Result<Self> {
        let mut queues = Vec::new();
        let mut kicks = Vec::new();
        for &max in device.queue_max_sizes() {
            // A size that is not a power of two (or 0) is a device bug; clamp to a valid queue.
            let queue = Queue::new(max).or_else(|_| Queue::new(256)).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
            })?;
            queues.push(queue);
            kicks.push(EventFd::new(EFD_NONBLOCK)?);
        }
        Ok(MmioTransport {
            device,
            mem,
            queues,
            kicks,
            interrupt_status: Arc::new(AtomicU32::new(0)),
            config_generation: Arc::new(AtomicU32::new(0)),
            irq,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            acked_features: 0,
            queue_sel: 0,
            shm_sel: 0,
            activated: false,
        })
    }

    /// The eventfd written on a QueueNotify of each queue, in queue order. The VMM registers
    /// them as ioeventfds (datamatch = queue index) so notifies never leave the kernel.
    pub fn queue_kick_fds(&self) -> &[EventFd] {
        &self.kicks
    }

    /// The virtio device ID of the wrapped device.
    pub fn device_type(&self) -> u32 {
        self.device.device_type()
    }

    /// Current device status register (for diagnostics and tests).
    pub fn status(&self) -> u32 {
        self.status
    }

    /// Whether the device is running (DRIVER_OK was accepted).
    pub fn is_activated(&self) -> bool {
        self.activated
    }

    fn selected_queue(&self) -> Option<&Queue> {
        self.queues.get(self.queue_sel as usize)
    }

    /// Handles a read of `data.len()` bytes at `offset` inside the window.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= regs::CONFIG {
            self.device.read_config(offset - regs::CONFIG, data);
            return;
        }
        if data.len() != 4 {
            // virtio 1.2 §4.2.2.2: registers are accessed as 32-bit words.
            warn!(
                "virtio-mmio: {}-byte read of register {offset:#x} ignored",
                data.len()
            );
            data.fill(0);
            return;
        }
        let value = match offset {
            regs::MAGIC_VALUE => MMIO_MAGIC_VALUE,
            regs::VERSION => MMIO_VERSION,
            regs::DEVICE_ID => self.device.device_type(),
            regs::VENDOR_ID => MMIO_VENDOR_ID,
            regs::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device.avail_features() as u32,
                1 => (self.device.avail_features() >> 32) as u32,
                _ => 0,
            },
            regs::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size())),
            regs::QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready())),
            regs::INTERRUPT_STATUS => self.interrupt_status.load(Ordering::SeqCst),
            regs::STATUS => self.status,
            // No shared memory regions: length reads as all ones (virtio 1.2 §4.2.2).
            regs::SHM_LEN_LOW | regs::SHM_LEN_HIGH => u32::MAX,
            regs::SHM_BASE_LOW | regs::SHM_BASE_HIGH => u32::MAX,
            regs::QUEUE_RESET => 0,
            regs::CONFIG_GENERATION => self.config_generation.load(Ordering::SeqCst),
            _ => {
                debug!("virtio-mmio: read of unknown register {offset:#x}");
                0
            }
        };
        data.copy_from_slice(&value.to_le_bytes());
    }

    /// Handles a write at `offset`; returns what the VMM must do about the device's handler.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Option<TransportEvent> {
        if offset >= regs::CONFIG {
            // virtio 1.2 §4.2.2.2: the driver writes config only after FEATURES_OK... but some
            // devices have writable config earlier; the device ignores read-only fields.
            self.device.write_config(offset - regs::CONFIG, data);
            return None;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            warn!(
                "virtio-mmio: {}-byte write of register {offset:#x} ignored",
                data.len()
            );
            return None;
        };
        let value = u32::from_le_bytes(bytes);
        match offset {
            regs::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            regs::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            regs::DRIVER_FEATURES => self.write_driver_features(value),
            regs::QUEUE_SEL => self.queue_sel = value,
            regs::QUEUE_NUM
            | regs::QUEUE_READY
            | regs::QUEUE_DESC_LOW
            | regs::QUEUE_DESC_HIGH
            | regs::QUEUE_DRIVER_LOW
            | regs::QUEUE_DRIVER_HIGH
            | regs::QUEUE_DEVICE_LOW
            | regs::QUEUE_DEVICE_HIGH => self.write_queue_register(offset, value),
            regs::QUEUE_NOTIFY => self.notify(value),
            regs::INTERRUPT_ACK => {
                self.interrupt_status.fetch_and(!value, Ordering::SeqCst);
            }
            regs::STATUS => return self.write_status(value),
            regs::SHM_SEL => self.shm_sel = value,
            _ => debug!("virtio-mmio: write of {value:#x} to unknown register {offset:#x} ignored"),
        }
        None
    }

    fn write_driver_features(&mut self, value: u32) {
        // virtio 1.2 §3.1.1: features are written between DRIVER and FEATURES_OK only.
        if self.status & status::DRIVER == 0 || self.status & status::FEATURES_OK != 0 {
            warn!(
                "virtio-mmio: driver features written in status {:#x}, ignored",
                self.status
            );
            return;
        }
        let shift = match self.driver_features_sel {
            0 => 0,
            1 => 32,
            _ => return,
        };
        let mask = 0xffff_ffffu64 << shift;
        self.acked_features = (self.acked_features & !mask) | (u64::from(value) << shift);
    }

    fn write_queue_register(&mut self, offset: u64, value: u32) {
        // virtio 1.2 §4.2.2.3: the driver configures a queue before setting it ready, and only
        // before DRIVER_OK; later writes would change rings under the device's feet.
        if self.activated {
            warn!("virtio-mmio: queue register {offset:#x} written after DRIVER_OK, ignored");
            return;
        }
        let Some(queue) = self.queues.get_mut(self.queue_sel as usize) else {
            warn!(
                "virtio-mmio: queue register write for missing queue {}",
                self.queue_sel
            );
            return;
        };
        if offset != regs::QUEUE_READY && queue.ready() {
            warn!(
                "virtio-mmio: queue {} reconfigured while ready, ignored",
                self.queue_sel
            );
            return;
        }
        match offset {
            regs::QUEUE_NUM => {
                // Queue::set_size refuses sizes that are 0, above max or not a power of two;
                // is_valid() then rejects the queue at activation.
                queue.set_size(value.min(u32::from(u16::MAX)) as u16)
            }
            regs::QUEUE_READY => queue.set_ready(value == 1),
            regs::QUEUE_DESC_LOW => queue.set_desc_table_address(Some(value), None),
            regs::QUEUE_DESC_HIGH => queue.set_desc_table_address(None, Some(value)),
            regs::QUEUE_DRIVER_LOW => queue.set_avail_ring_address(Some(value), None),
            regs::QUEUE_DRIVER_HIGH => queue.set_avail_ring_address(None, Some(value)),
            regs::QUEUE_DEVICE_LOW => queue.set_used_ring_address(Some(value), None),
            regs::QUEUE_DEVICE_HIGH => queue.set_used_ring_address(None, Some(value)),
            _ => {}
        }
    }

    fn notify(&mut self, value: u32) {
        // Normally consumed by the ioeventfd in the kernel; this is the slow path for VMMs
        // that did not register one.
        match self.kicks.get(value as usize) {
            Some(kick) => {
                if let Err(e) = kick.write(1) {
                    warn!("virtio-mmio: queue {value} kick failed: {e}");
                }
            }
            None => warn!("virtio-mmio: notify for missing queue {value}"),
        }
    }

    fn write_status(&mut self, value: u32) -> Option<TransportEvent> {
        if value == 0 {
            return self.reset();
        }
        // virtio 1.2 §2.1.2: the driver MUST NOT clear a device status bit.
        if value & self.status != self.status {
            warn!(
                "virtio-mmio: status {:#x} -> {value:#x} clears bits, ignored",
                self.status
            );
            return None;
        }
        let added = value & !self.status;
        let mut value = value;
        if added & status::FEATURES_OK != 0 && !self.features_acceptable() {
            // virtio 1.2 §3.1.1: the device does not set FEATURES_OK when it cannot accept
            // the features; the driver reads it back and gives up.
            warn!(
                "virtio-mmio: driver features {:#x} refused",
                self.acked_features
            );
            value &= !status::FEATURES_OK;
        }
        self.status = value;
        if added & status::DRIVER_OK != 0 && !self.activated {
            return self.activate();
        }
        None
    }

    fn features_acceptable(&self) -> bool {
        let avail = self.device.avail_features();
        self.acked_features & !avail == 0 && self.acked_features & (1 << VIRTIO_F_VERSION_1) != 0
    }

    fn activate(&mut self) -> Option<TransportEvent> {
        if self.status & status::FEATURES_OK == 0 {
            warn!("virtio-mmio: DRIVER_OK without FEATURES_OK");
            return self.needs_reset();
        }
        let mem = &self.mem;
        let event_idx = self.acked_features & (1 << VIRTIO_F_EVENT_IDX) != 0;
        let mut queues = Vec::new();
        for (index, queue) in self.queues.iter_mut().enumerate() {
            if !queue.ready() {
                continue;
            }
            if !queue.is_valid(mem) {
                warn!("virtio-mmio: queue {index} is invalid (size or rings outside memory)");
                return self.needs_reset();
            }
            queue.set_event_idx(event_idx);
            let kick = match self.kicks[index].try_clone() {
                Ok(kick) => kick,
                Err(e) => {
                    warn!("virtio-mmio: cannot clone kick eventfd: {e}");
                    return self.needs_reset();
                }
            };
            // The device owns the ring state from now on; the transport keeps a reset copy.
            let taken = std::mem::replace(queue, fresh_queue(queue.max_size()));
            queue.set_ready(true);
            queues.push((index as u16, ActivatedQueue { queue: taken, kick }));
        }
        let interrupt = Arc::new(MmioInterrupt::new(
            self.interrupt_status.clone(),
            self.config_generation.clone(),
            self.irq.clone(),
        ));
        let ctx = ActivationContext {
            mem: self.mem.clone(),
            acked_features: self.acked_features,
            queues,
            interrupt,
        };
        match self.device.activate(ctx) {
            Ok(handler) => {
                self.activated = true;
                Some(TransportEvent::Activated(handler))
            }
            Err(e) => {
                warn!(
                    "virtio-mmio: device type {} failed to activate: {e}",
                    self.device_type()
                );
                self.needs_reset()
            }
        }
    }

    fn needs_reset(&mut self) -> Option<TransportEvent> {
        // virtio 1.2 §2.1.2: set DEVICE_NEEDS_RESET and send a configuration change notification.
        self.status |= status::DEVICE_NEEDS_RESET;
        let interrupt = MmioInterrupt::new(
            self.interrupt_status.clone(),
            self.config_generation.clone(),
            self.irq.clone(),
        );
        if let Err(e) = interrupt.trigger(InterruptKind::Config) {
            warn!("virtio-mmio: cannot signal DEVICE_NEEDS_RESET: {e}");
        }
        None
    }

    fn reset(&mut self) -> Option<TransportEvent> {
        let was_active = self.activated;
        self.device.reset();
        for queue in &mut self.queues {
            queue.reset();
        }
        // Drain stale kicks so a new activation does not see a phantom notify.
        for kick in &self.kicks {
            let _ = kick.read();
        }
        self.status = 0;
        self.acked_features = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.queue_sel = 0;
        self.shm_sel = 0;
        self.interrupt_status.store(0, Ordering::SeqCst);
        self.activated = false;
        was_active.then_some(TransportEvent::Reset)
    }
}

fn fresh_queue(max: u16) -> Queue {
    // `max` came from an existing Queue, so it is valid; fall back defensively anyway.
    Queue::new(max).unwrap_or_else(|_| Queue::new(256).expect("256 is a valid queue size"))
}

#[cfg(test)]
mod tests;
