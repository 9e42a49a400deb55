//! Initrd placement: as high as the kernel allows, page aligned, above the kernel.

use std::fs::File;
use std::path::Path;

use vm_memory::{Bytes, GuestAddress};

use super::{BootError, InitrdPlacement};
use crate::memory::{GuestMem, MIB};

const PAGE_SIZE: u64 = 4096;

/// Where an initrd of `size` bytes goes when it must start at or above `floor` and end at
/// or below `limit`; `None` if it does not fit.
pub fn place(size: u64, floor: u64, limit: u64) -> Option<u64> {
    let addr = limit.checked_sub(size)? & !(PAGE_SIZE - 1);
    let floor = floor.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1);
    (addr >= floor).then_some(addr)
}

pub fn load_initrd(
    mem: &GuestMem,
    path: &Path,
    floor: u64,
    limit: u64,
) -> Result<InitrdPlacement, BootError> {
    let read_err = |e| BootError::ReadInitrd(path.to_owned(), e);
    let mut file = File::open(path).map_err(read_err)?;
    let size = file.metadata().map_err(read_err)?.len();
    let addr = place(size, floor, limit).ok_or(BootError::InitrdTooLarge {
        path: path.to_owned(),
        size_mib: size.div_ceil(MIB),
        avail_mib: limit.saturating_sub(floor) / MIB,
    })?;
    mem.read_exact_volatile_from(GuestAddress(addr), &mut file, size as usize)
        .map_err(|e| BootError::ReadInitrd(path.to_owned(), std::io::Error::other(e)))?;
    Ok(InitrdPlacement { addr, size })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_high_aligned_and_above_the_floor() {
        assert_eq!(place(0x1800, 0x10_0000, 0x20_0000), Some(0x1f_e000));
        assert_eq!(place(0x10_0000, 0x10_0000, 0x20_0000), Some(0x10_0000));
        assert_eq!(place(0x10_0001, 0x10_0000, 0x20_0000), None);
        assert_eq!(place(10, 0, 5), None);
        // A floor that is not page aligned rounds up.
        assert_eq!(place(0x1000, 0x1001, 0x3000), Some(0x2000));
        assert_eq!(place(0x1000, 0x2001, 0x3000), None);
    }
}
