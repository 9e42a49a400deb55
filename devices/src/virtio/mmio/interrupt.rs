//! virtio-mmio interrupts: a status register the driver reads and acknowledges, plus one
//! interrupt line (an irqfd under KVM) raised whenever a cause is added.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use vmm_sys_util::eventfd::EventFd;

use super::{INT_CONFIG, INT_VRING};
use crate::virtio::{InterruptKind, VirtioInterrupt};

/// The wire that interrupts the guest; under KVM an irqfd-registered eventfd.
pub trait IrqLine: Send + Sync {
    /// Asserts the line (an edge: the guest sees one interrupt).
    fn raise(&self) -> io::Result<()>;
}

impl IrqLine for EventFd {
    fn raise(&self) -> io::Result<()> {
        self.write(1)
    }
}

/// The [`VirtioInterrupt`] a virtio-mmio transport gives its device.
pub struct MmioInterrupt {
    status: Arc<AtomicU32>,
    config_generation: Arc<AtomicU32>,
    line: Arc<dyn IrqLine>,
}

impl MmioInterrupt {
    pub(super) fn new(
        status: Arc<AtomicU32>,
        config_generation: Arc<AtomicU32>,
        line: Arc<dyn IrqLine>,
    ) -> Self {
        MmioInterrupt {
            status,
            config_generation,
            line,
        }
    }
}

impl VirtioInterrupt for MmioInterrupt {
    fn trigger(&self, kind: InterruptKind) -> io::Result<()> {
        let bit = match kind {
            InterruptKind::Queue(_) => INT_VRING,
            InterruptKind::Config => {
                // virtio 1.2 §4.2.2: ConfigGeneration changes with every config change, so a
                // driver reading the config across a change re-reads it.
                self.config_generation.fetch_add(1, Ordering::SeqCst);
                INT_CONFIG
            }
        };
        // Set the cause before raising the line: the guest handler reads InterruptStatus.
        self.status.fetch_or(bit, Ordering::SeqCst);
        self.line.raise()
    }
}
