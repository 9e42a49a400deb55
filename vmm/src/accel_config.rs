//! `--accel`: a virtio-accel device backed by the software accelerator.

use std::sync::Arc;

use accelvm_devices::virtio::accel::{Accel, AccelConfig, AccelError, SoftwareAccelerator};

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

/// Builds the `--accel` device with every service the software backend offers.
pub fn build_accel_device() -> Result<Accel, AccelBuildError> {
    let workers = std::env::var(ACCEL_WORKERS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ACCEL_WORKERS);
    let backend = SoftwareAccelerator::new(workers).map_err(AccelBuildError::Backend)?;
    Accel::new(Arc::new(backend), AccelConfig::default()).map_err(AccelBuildError::Device)
}
