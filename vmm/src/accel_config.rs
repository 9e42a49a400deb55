//! `--accel`: a virtio-accel device backed by the software accelerator.
//!
//! The device is generic over a plain `GuestMemory`, while this VMM hands its devices the
//! address space (`Arc<GuestMemoryMmap>`); the adapter below gives the device a clone of the
//! region collection at activation (cheap: the regions are shared, and guest RAM never changes
//! after boot here).

use std::sync::Arc;

use accelvm_devices::virtio::accel::{Accel, AccelConfig, AccelError, SoftwareAccelerator};
use accelvm_devices::virtio::{ActivateError, ActivationContext, DeviceHandler, VirtioDevice};
use vm_memory::GuestMemoryMmap;

use crate::memory::GuestMem;

/// Worker threads of the software accelerator behind `--accel`.
pub const ACCEL_WORKERS: usize = 2;
/// Overrides [`ACCEL_WORKERS`] (0 = run jobs inline on the event loop), for diagnosis.
pub const ACCEL_WORKERS_ENV: &str = "ACCELVM_ACCEL_WORKERS";

/// Why the `--accel` device could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AccelBuildError {
    /// The software accelerator's worker threads could not start.
    #[error("--accel: cannot start the software accelerator")]
    Backend(#[source] std::io::Error),
    /// The device refused its configuration.
    #[error("--accel")]
    Device(#[source] AccelError),
}

/// The virtio-accel device as this VMM's devices are typed.
pub struct AccelDevice(Accel);

/// Builds the `--accel` device with every service the software backend offers.
pub fn build_accel_device() -> Result<AccelDevice, AccelBuildError> {
    let workers = std::env::var(ACCEL_WORKERS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ACCEL_WORKERS);
    let backend = SoftwareAccelerator::new(workers).map_err(AccelBuildError::Backend)?;
    let accel =
        Accel::new(Arc::new(backend), AccelConfig::default()).map_err(AccelBuildError::Device)?;
    Ok(AccelDevice(accel))
}

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
        self.0.activate(ctx)
    }
    fn reset(&mut self) {
        VirtioDevice::<GuestMemoryMmap>::reset(&mut self.0)
    }
}
