//! Places virtio-mmio devices: a 4 KiB window and a GSI each, an irqfd for the interrupt,
//! one ioeventfd per queue (datamatch on the queue index at QueueNotify), and the window on
//! the MMIO bus. Transport events from a vCPU's register write start or stop the device's
//! handler on the event loop.

use std::sync::{Arc, Mutex};

use accelvm_devices::virtio::VirtioDevice;
use accelvm_devices::virtio::mmio::{MMIO_WINDOW_SIZE, MmioTransport, TransportEvent, regs};
use kvm_ioctls::{IoEventAddress, VmFd};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::acpi::MmioDeviceInfo;
use crate::bus::{Bus, BusDevice, BusError};
use crate::event_loop::EventLoopHandle;
use crate::memory::{GuestMem, IOAPIC_ADDR, VIRTIO_MMIO_BASE};

/// First GSI for virtio devices (0-4 are the PIT, keyboard, cascade and COM ports).
pub const FIRST_VIRTIO_GSI: u32 = 5;
/// Last IOAPIC pin of KVM's in-kernel IOAPIC (24 pins).
pub const LAST_GSI: u32 = 23;
/// Most virtio-mmio devices: one per free IOAPIC pin.
pub const MAX_VIRTIO_DEVICES: usize = (LAST_GSI - FIRST_VIRTIO_GSI + 1) as usize;

/// Errors placing a device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No GSI or window left.
    #[error("too many virtio devices (at most {MAX_VIRTIO_DEVICES})")]
    TooMany,
    /// An eventfd could not be created.
    #[error("cannot create device eventfds")]
    EventFd(#[source] std::io::Error),
    /// KVM refused the irqfd.
    #[error("cannot register the interrupt of virtio device {0}")]
    Irqfd(usize, #[source] kvm_ioctls::Error),
    /// KVM refused an ioeventfd.
    #[error("cannot register queue notification {1} of virtio device {0}")]
    Ioeventfd(usize, u32, #[source] kvm_ioctls::Error),
    /// The window overlaps something.
    #[error("cannot place virtio device window")]
    Bus(#[source] BusError),
}

/// Where device `slot` lives.
pub fn slot_info(slot: usize) -> Result<MmioDeviceInfo, DeviceError> {
    if slot >= MAX_VIRTIO_DEVICES {
        return Err(DeviceError::TooMany);
    }
    let base = VIRTIO_MMIO_BASE + slot as u64 * MMIO_WINDOW_SIZE;
    debug_assert!(base + MMIO_WINDOW_SIZE <= IOAPIC_ADDR);
    Ok(MmioDeviceInfo {
        base,
        size: MMIO_WINDOW_SIZE,
        gsi: FIRST_VIRTIO_GSI + slot as u32,
    })
}

/// One virtio-mmio window on the MMIO bus.
struct VirtioSlot {
    slot: usize,
    transport: MmioTransport<GuestMem>,
    events: Arc<EventLoopHandle>,
}

impl BusDevice for VirtioSlot {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.transport.read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match self.transport.write(offset, data) {
            Some(TransportEvent::Activated(handler)) => self.events.activate(self.slot, handler),
            Some(TransportEvent::Reset) => self.events.deactivate(self.slot),
            None => {}
        }
    }
}

/// Registers device `slot` with KVM and the MMIO bus.
pub fn attach_virtio_device(
    vm: &VmFd,
    mem: &GuestMem,
    bus: &mut Bus,
    events: Arc<EventLoopHandle>,
    slot: usize,
    device: Box<dyn VirtioDevice<GuestMem>>,
) -> Result<MmioDeviceInfo, DeviceError> {
    let info = slot_info(slot)?;
    let irq = EventFd::new(EFD_NONBLOCK).map_err(DeviceError::EventFd)?;
    vm.register_irqfd(&irq, info.gsi)
        .map_err(|e| DeviceError::Irqfd(slot, e))?;
    let transport =
        MmioTransport::new(device, mem.clone(), Arc::new(irq)).map_err(DeviceError::EventFd)?;
    for (queue, kick) in transport.queue_kick_fds().iter().enumerate() {
        let addr = IoEventAddress::Mmio(info.base + regs::QUEUE_NOTIFY);
        vm.register_ioevent(kick, &addr, queue as u32)
            .map_err(|e| DeviceError::Ioeventfd(slot, queue as u32, e))?;
    }
    let window = VirtioSlot {
        slot,
        transport,
        events,
    };
    bus.insert(info.base, info.size, Arc::new(Mutex::new(window)))
        .map_err(DeviceError::Bus)?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_get_distinct_windows_and_gsis_below_the_ioapic() {
        let a = slot_info(0).unwrap();
        let b = slot_info(1).unwrap();
        assert_eq!(a.base, VIRTIO_MMIO_BASE);
        assert_eq!(b.base, VIRTIO_MMIO_BASE + 0x1000);
        assert_eq!((a.gsi, b.gsi), (5, 6));
        let last = slot_info(MAX_VIRTIO_DEVICES - 1).unwrap();
        assert_eq!(last.gsi, LAST_GSI);
        assert!(matches!(
            slot_info(MAX_VIRTIO_DEVICES),
            Err(DeviceError::TooMany)
        ));
    }
}
