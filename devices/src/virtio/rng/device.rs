//! The entropy device as the transport sees it: no configuration space, one queue.

use vm_memory::GuestMemory;

use super::handler::RngHandler;
use super::{QUEUE_SIZE, REQUEST_QUEUE, VIRTIO_ID_RNG};
use crate::virtio::{
    ActivateError, ActivationContext, DeviceHandler, VIRTIO_F_VERSION_1, VirtioDevice,
};

/// A virtio-rng device backed by the host's getrandom(2).
#[derive(Debug, Default)]
pub struct Rng {
    queue_sizes: [u16; 1],
}

impl Rng {
    /// A new, inactive device.
    pub fn new() -> Self {
        Rng {
            queue_sizes: [QUEUE_SIZE],
        }
    }
}

impl<M: GuestMemory + Send + 'static> VirtioDevice<M> for Rng {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_RNG
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn avail_features(&self) -> u64 {
        1 << VIRTIO_F_VERSION_1
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        // virtio 1.2 §5.4.4: the entropy device has no configuration.
        data.fill(0);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(
        &mut self,
        ctx: ActivationContext<M>,
    ) -> Result<Box<dyn DeviceHandler>, ActivateError> {
        let (_, queue) = ctx
            .queues
            .into_iter()
            .find(|(i, _)| *i == REQUEST_QUEUE)
            .ok_or(ActivateError::QueueNotReady(REQUEST_QUEUE))?;
        Ok(Box::new(RngHandler::new(ctx.mem, queue, ctx.interrupt)))
    }

    fn reset(&mut self) {}
}
