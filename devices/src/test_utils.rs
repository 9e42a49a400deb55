//! Helpers for tests, benches and embedders: counting interrupts and mock guest memory.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::virtio::{InterruptKind, VirtioInterrupt};

/// An interrupt that counts how often each kind was raised.
#[derive(Debug, Default)]
pub struct CountingInterrupt {
    queue: AtomicUsize,
    config: AtomicUsize,
}

impl CountingInterrupt {
    /// Number of queue interrupts raised so far.
    pub fn queue_count(&self) -> usize {
        self.queue.load(Ordering::SeqCst)
    }
    /// Number of configuration-change interrupts raised so far.
    pub fn config_count(&self) -> usize {
        self.config.load(Ordering::SeqCst)
    }
}

impl VirtioInterrupt for CountingInterrupt {
    fn trigger(&self, kind: InterruptKind) -> std::io::Result<()> {
        match kind {
            InterruptKind::Queue(_) => self.queue.fetch_add(1, Ordering::SeqCst),
            InterruptKind::Config => self.config.fetch_add(1, Ordering::SeqCst),
        };
        Ok(())
    }
}
