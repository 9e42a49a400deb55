//! Port I/O and MMIO dispatch from vCPU exits to devices, by address range.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A device on a bus; `offset` is relative to the range the device was inserted at.
pub trait BusDevice: Send {
    /// Guest read of `data.len()` bytes.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Guest write.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// Errors inserting a device.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The range overlaps another device or is empty.
    #[error("bus range {base:#x}+{len:#x} overlaps another device or is empty")]
    Overlap {
        /// Start of the refused range.
        base: u64,
        /// Its length.
        len: u64,
    },
}

type Entry = (u64, Arc<Mutex<dyn BusDevice>>);

/// An address space (PIO or MMIO) of non-overlapping device ranges.
#[derive(Default)]
pub struct Bus {
    devices: BTreeMap<u64, Entry>,
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Places `device` at `[base, base + len)`.
    pub fn insert(
        &mut self,
        base: u64,
        len: u64,
        device: Arc<Mutex<dyn BusDevice>>,
    ) -> Result<(), BusError> {
        let end = base.checked_add(len).filter(|_| len > 0);
        let overlaps = |end: u64| {
            self.devices
                .range(..end)
                .next_back()
                .is_some_and(|(&b, (l, _))| b + l > base)
        };
        match end {
            Some(end) if !overlaps(end) => {
                self.devices.insert(base, (len, device));
                Ok(())
            }
            _ => Err(BusError::Overlap { base, len }),
        }
    }

    fn find(&self, addr: u64) -> Option<(u64, &Arc<Mutex<dyn BusDevice>>)> {
        let (&base, (len, dev)) = self.devices.range(..=addr).next_back()?;
        (addr - base < *len).then_some((addr - base, dev))
    }

    /// Dispatches a read; returns false (and leaves `data` alone) if nothing is there.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr) {
            Some((offset, dev)) => {
                dev.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .read(offset, data);
                true
            }
            None => false,
        }
    }

    /// Dispatches a write; returns false if nothing is there.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr) {
            Some((offset, dev)) => {
                dev.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .write(offset, data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(Vec<(u64, u8)>);
    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.0.push((offset, data[0]));
        }
    }

    #[test]
    fn dispatch_by_range_and_refuse_overlaps() {
        let mut bus = Bus::new();
        let a = Arc::new(Mutex::new(Recorder(vec![])));
        bus.insert(0x3f8, 8, a.clone()).unwrap();
        assert!(bus.insert(0x3f0, 9, a.clone()).is_err());
        assert!(bus.insert(0x3ff, 1, a.clone()).is_err());
        assert!(bus.insert(0x400, 0, a.clone()).is_err());
        bus.insert(0x400, 1, a.clone()).unwrap();
        let mut d = [0u8; 1];
        assert!(bus.read(0x3fa, &mut d));
        assert_eq!(d, [2]);
        assert!(!bus.read(0x3f7, &mut d));
        assert!(!bus.read(0x401, &mut d));
        assert!(bus.write(0x3ff, &[9]));
        assert_eq!(a.lock().unwrap().0, vec![(7, 9)]);
    }
}
