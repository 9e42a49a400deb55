//! COM1: a vm-superio 16550 at 0x3f8 on IRQ 4, output to the console, input from stdin.

use std::io::Write;

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::bus::BusDevice;

/// COM1 base port.
pub const COM1_PORT: u16 = 0x3f8;
/// Its eight registers.
pub const COM1_PORTS_LEN: u64 = 8;
/// Its ISA interrupt.
pub const COM1_GSI: u32 = 4;

/// Raises the UART interrupt through an irqfd.
pub struct IrqfdTrigger(pub EventFd);

impl Trigger for IrqfdTrigger {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// The UART on the PIO bus.
pub struct SerialDevice<W: Write + Send> {
    serial: Serial<IrqfdTrigger, NoEvents, W>,
}

impl<W: Write + Send> SerialDevice<W> {
    /// A UART writing to `out` and interrupting through `irq`.
    pub fn new(irq: EventFd, out: W) -> Self {
        SerialDevice {
            serial: Serial::new(IrqfdTrigger(irq), out),
        }
    }

    /// Free space in the receive FIFO.
    pub fn rx_capacity(&self) -> usize {
        self.serial.fifo_capacity()
    }

    /// Queues guest input; returns how many bytes were taken.
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        match self.serial.enqueue_raw_bytes(bytes) {
            Ok(n) => n,
            Err(e) => {
                log::warn!("serial input dropped: {e:?}");
                0
            }
        }
    }
}

impl<W: Write + Send> BusDevice for SerialDevice<W> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(first) = data.first_mut() {
            *first = self.serial.read(offset as u8);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Some(&b) = data.first()
            && let Err(e) = self.serial.write(offset as u8, b)
        {
            log::warn!("serial write failed: {e:?}");
        }
    }
}
