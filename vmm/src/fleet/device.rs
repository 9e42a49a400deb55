//! Puts a virtio-accel device on the VMM's memory type.
//!
//! The device works on any `GuestMemory`; the VMM's transport hands out an
//! `Arc<GuestMemoryMmap>`. Cloning the collection shares the same mappings, so the device
//! sees exactly the guest's RAM.

use accelvm_devices::virtio::accel::Accel;
use accelvm_devices::virtio::{ActivateError, ActivationContext, DeviceHandler, VirtioDevice};
use vm_memory::GuestMemoryMmap;

use crate::memory::GuestMem;

/// A virtio-accel device attachable to an accelvm VM.
pub struct AccelDevice(pub Accel);

impl VirtioDevice<GuestMem> for AccelDevice {
    fn device_type(&self) -> u32 {
        VirtioDevice::<GuestMemoryMmap>::device_type(&self.0)
    }

    fn queue_max_sizes(&self) -> &[u16] {
        VirtioDevice::<GuestMemoryMmap>::queue_max_sizes(&self.0)
    }

    fn avail_features(&self) -> u64 {
        VirtioDevice::<GuestMemoryMmap>::avail_features(&self.0)
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        VirtioDevice::<GuestMemoryMmap>::read_config(&self.0, offset, data)
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        VirtioDevice::<GuestMemoryMmap>::write_config(&mut self.0, offset, data)
    }

    fn activate(
        &mut self,
        ctx: ActivationContext<GuestMem>,
    ) -> Result<Box<dyn DeviceHandler>, ActivateError> {
        let ctx = ActivationContext {
            mem: (*ctx.mem).clone(),
            acked_features: ctx.acked_features,
            queues: ctx.queues,
            interrupt: ctx.interrupt,
        };
        VirtioDevice::<GuestMemoryMmap>::activate(&mut self.0, ctx)
    }

    fn reset(&mut self) {
        VirtioDevice::<GuestMemoryMmap>::reset(&mut self.0)
    }
}
