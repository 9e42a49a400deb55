//! Serving entropy requests on the VMM's event loop.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use log::warn;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestMemory};
use vmm_sys_util::eventfd::EventFd;

use super::{MAX_REQUEST_BYTES, REQUEST_QUEUE};
use crate::virtio::{ActivatedQueue, DeviceHandler, InterruptKind, VirtioInterrupt};

/// Errors while serving the queue; the device stops serving until reset.
#[derive(Debug, thiserror::Error)]
pub enum RngError {
    /// The rings are unreadable or corrupt.
    #[error("virtio-rng queue error")]
    Queue(#[source] virtio_queue::Error),
    /// getrandom failed.
    #[error("getrandom failed")]
    Random(#[source] std::io::Error),
    /// The interrupt could not be raised.
    #[error("cannot interrupt the guest")]
    Interrupt(#[source] std::io::Error),
}

/// The activated device: fills each chain's writable buffers with random bytes.
pub struct RngHandler<M: GuestMemory> {
    mem: M,
    queue: Queue,
    kick: EventFd,
    interrupt: Arc<dyn VirtioInterrupt>,
    broken: bool,
    /// Bytes served so far (diagnostics).
    pub served: u64,
}

fn fill_random(buf: &mut [u8]) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: getrandom writes at most `len - done` bytes into the valid buffer tail.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

impl<M: GuestMemory> RngHandler<M> {
    /// Serves `queue` of guest memory `mem`.
    pub fn new(mem: M, queue: ActivatedQueue, interrupt: Arc<dyn VirtioInterrupt>) -> Self {
        RngHandler {
            mem,
            queue: queue.queue,
            kick: queue.kick,
            interrupt,
            broken: false,
            served: 0,
        }
    }

    /// Serves every available request (the canonical drain loop), then interrupts the guest
    /// if the driver wants it.
    pub fn process_queue(&mut self) -> Result<(), RngError> {
        let mem = &self.mem;
        let mut used = false;
        let mut buf = vec![0u8; MAX_REQUEST_BYTES];
        loop {
            self.queue
                .disable_notification(mem)
                .map_err(RngError::Queue)?;
            // `iter` (not `pop_descriptor_chain`, which turns every error into an empty ring):
            // an available index more than a ring ahead is an error that stops the device;
            // read as "empty" while `enable_notification` saw new buffers, it spun here.
            while let Some(chain) = self.queue.iter(mem).map_err(RngError::Queue)?.next() {
                let head = chain.head_index();
                let mut written = 0usize;
                for desc in chain {
                    if !desc.is_write_only() {
                        continue; // the spec has no readable part; ignore it
                    }
                    let len = (desc.len() as usize).min(MAX_REQUEST_BYTES - written);
                    fill_random(&mut buf[..len]).map_err(RngError::Random)?;
                    if mem.write_slice(&buf[..len], desc.addr()).is_err() {
                        warn!("virtio-rng: buffer outside guest memory, request truncated");
                        break;
                    }
                    written += len;
                    if written == MAX_REQUEST_BYTES {
                        break;
                    }
                }
                self.queue
                    .add_used(mem, head, written as u32)
                    .map_err(RngError::Queue)?;
                self.served += written as u64;
                used = true;
            }
            if !self
                .queue
                .enable_notification(mem)
                .map_err(RngError::Queue)?
            {
                break;
            }
        }
        if used
            && self
                .queue
                .needs_notification(mem)
                .map_err(RngError::Queue)?
        {
            self.interrupt
                .trigger(InterruptKind::Queue(REQUEST_QUEUE))
                .map_err(RngError::Interrupt)?;
        }
        Ok(())
    }
}

impl<M: GuestMemory + Send> DeviceHandler for RngHandler<M> {
    fn fds(&self) -> Vec<RawFd> {
        vec![self.kick.as_raw_fd()]
    }

    fn handle(&mut self, _index: usize) {
        let _ = self.kick.read();
        if self.broken {
            return;
        }
        if let Err(e) = self.process_queue() {
            // A guest that corrupts its rings only loses its own entropy device.
            warn!("virtio-rng: {e}; stopping until the driver resets the device");
            self.broken = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::CountingInterrupt;
    use virtio_queue::desc::{RawDescriptor, split::Descriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    const F_WRITE: u16 = 2;

    #[test]
    fn writable_buffers_are_filled_and_capped() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap();
        let vq = MockSplitQueue::new(&mem, 16);
        let descs = [
            RawDescriptor::from(Descriptor::new(0x10_0000, 100, F_WRITE, 0)),
            RawDescriptor::from(Descriptor::new(0x20_0000, 200_000, F_WRITE, 0)),
            // Outside the 16 MiB of memory: served as 0 bytes, not a crash.
            RawDescriptor::from(Descriptor::new(0x4000_0000, 16, F_WRITE, 0)),
        ];
        vq.build_multiple_desc_chains(&descs).unwrap();
        let queue: Queue = vq.create_queue().unwrap();
        let int = Arc::new(CountingInterrupt::default());
        let mut h = RngHandler::new(
            mem.clone(),
            ActivatedQueue {
                queue,
                kick: EventFd::new(0).unwrap(),
            },
            int.clone(),
        );
        h.process_queue().unwrap();
        let used = vq.used();
        assert_eq!(used.idx().load(), 3);
        let lens: Vec<u32> = (0..3)
            .map(|i| used.ring().ref_at(i).unwrap().load().len())
            .collect();
        assert_eq!(lens, vec![100, MAX_REQUEST_BYTES as u32, 0]);
        assert_eq!(int.queue_count(), 1);
        let mut head = [0u8; 100];
        mem.read_slice(&mut head, GuestAddress(0x10_0000)).unwrap();
        assert!(head.iter().any(|&b| b != 0), "no random bytes written");
    }

    /// An available index more than a ring ahead is an error (the device stops until reset),
    /// not an endless loop.
    #[test]
    fn an_available_index_beyond_the_ring_is_an_error() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap();
        let vq = MockSplitQueue::new(&mem, 16);
        let queue: Queue = vq.create_queue().unwrap();
        vq.avail().idx().store(16 + 3);
        let mut h = RngHandler::new(
            mem.clone(),
            ActivatedQueue {
                queue,
                kick: EventFd::new(0).unwrap(),
            },
            Arc::new(CountingInterrupt::default()),
        );
        assert!(h.process_queue().is_err());
        assert_eq!(vq.used().idx().load(), 0);
    }
}
