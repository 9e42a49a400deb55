//! `--accel`: a virtio-accel device backed by the software accelerator. Minimal wiring added by
//! the guest-driver work so its tests can run; the VMM owner may replace it.
//!
//! `Accel` implements `VirtioDevice<M>` for `M: GuestMemory`, while the VMM hands devices an
//! `Arc<GuestMemoryMmap>` (a `GuestAddressSpace`): this adapter passes the region collection
//! itself (cheap to clone: the regions are reference counted).

use std::sync::Arc;

use accelvm_devices::virtio::accel::{Accel, AccelConfig, AccelError, SoftwareAccelerator};
use accelvm_devices::virtio::{ActivateError, ActivationContext, DeviceHandler, VirtioDevice};
use vm_memory::GuestMemoryMmap;

use crate::memory::GuestMem;

/// Worker threads of the software accelerator behind `--accel`.
pub const ACCEL_WORKERS: usize = 2;

/// Errors creating the device.
#[derive(Debug, thiserror::Error)]
pub enum AccelDeviceError {
    /// The software accelerator's worker threads could not start.
    #[error("cannot start the software accelerator: {0}")]
    Backend(#[source] std::io::Error),
    /// The device rejected its configuration.
    #[error("cannot create the virtio-accel device: {0}")]
    Device(#[source] AccelError),
}

/// A virtio-accel device with the default configuration and the software backend.
pub struct AccelDevice(Accel);

impl AccelDevice {
    /// Creates the device.
    pub fn new() -> Result<Self, AccelDeviceError> {
        let backend =
            Arc::new(SoftwareAccelerator::new(ACCEL_WORKERS).map_err(AccelDeviceError::Backend)?);
        Accel::new(backend, AccelConfig::default())
            .map(AccelDevice)
            .map_err(AccelDeviceError::Device)
    }
}

type Inner = dyn VirtioDevice<GuestMemoryMmap>;

impl VirtioDevice<GuestMem> for AccelDevice {
    fn device_type(&self) -> u32 {
        (&self.0 as &Inner).device_type()
    }

    fn queue_max_sizes(&self) -> &[u16] {
        (&self.0 as &Inner).queue_max_sizes()
    }

    fn avail_features(&self) -> u64 {
        (&self.0 as &Inner).avail_features()
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        (&self.0 as &Inner).read_config(offset, data)
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        (&mut self.0 as &mut Inner).write_config(offset, data)
    }

    fn activate(
        &mut self,
        ctx: ActivationContext<GuestMem>,
    ) -> Result<Box<dyn DeviceHandler>, ActivateError> {
        let ctx = ActivationContext {
            mem: ctx.mem,
            acked_features: ctx.acked_features,
            queues: ctx.queues,
            interrupt: ctx.interrupt,
        };
        (&mut self.0 as &mut Inner).activate(ctx)
    }

    fn reset(&mut self) {
        (&mut self.0 as &mut Inner).reset()
    }
}
