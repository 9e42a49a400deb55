//! Kernel image format detection and loading through linux-loader.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{BzImage, Elf, KernelLoader, PvhBootCapability};
use vm_memory::GuestAddress;

use super::BootError;
use crate::memory::{GuestMem, HIMEM_START};

/// How the loaded kernel is entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    /// bzImage through the 64-bit boot protocol.
    BzImage,
    /// ELF vmlinux with a PVH entry point.
    Pvh {
        /// 32-bit entry point.
        entry: u64,
    },
    /// ELF vmlinux without PVH note, entered at `e_entry` in long mode.
    Elf64,
}

/// A loaded kernel.
#[derive(Debug)]
pub struct LoadedKernel {
    pub format: KernelFormat,
    /// 64-bit entry (`startup_64`) for the Linux boot protocol.
    pub entry: u64,
    /// The bzImage setup header, to copy into the zero page.
    pub setup_header: Option<setup_header>,
    /// First byte above everything the kernel will use while it decompresses and starts.
    pub reserved_end: u64,
}

/// "HdrS" at offset 0x202 of a bzImage (Documentation/arch/x86/boot.rst).
const BZIMAGE_MAGIC: &[u8; 4] = b"HdrS";
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// xloadflags bit: the kernel has the legacy 64-bit entry point at +0x200.
const XLF_KERNEL_64: u16 = 1;
/// Offset of `startup_64` from the protected-mode kernel start.
const STARTUP_64_OFFSET: u64 = 0x200;

pub fn load_kernel(mem: &GuestMem, path: &Path) -> Result<LoadedKernel, BootError> {
    let mut file = File::open(path).map_err(|e| BootError::OpenKernel(path.to_owned(), e))?;
    let mut head = [0u8; 0x210];
    let n = read_up_to(&mut file, &mut head).map_err(|e| BootError::OpenKernel(path.into(), e))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| BootError::OpenKernel(path.to_owned(), e))?;
    let load_err = |e| BootError::LoadKernel(path.to_owned(), e);

    if n >= 4 && &head[..4] == ELF_MAGIC {
        let r =
            Elf::load(mem, None, &mut file, Some(GuestAddress(HIMEM_START))).map_err(load_err)?;
        let format = match r.pvh_boot_cap {
            PvhBootCapability::PvhEntryPresent(addr) => KernelFormat::Pvh { entry: addr.0 },
            _ => KernelFormat::Elf64,
        };
        return Ok(LoadedKernel {
            format,
            entry: r.kernel_load.0,
            setup_header: None,
            reserved_end: r.kernel_end,
        });
    }
    if n >= 0x206 && &head[0x202..0x206] == BZIMAGE_MAGIC {
        let r = BzImage::load(mem, None, &mut file, Some(GuestAddress(HIMEM_START)))
            .map_err(load_err)?;
        let hdr = r
            .setup_header
            .ok_or_else(|| BootError::NotAKernel(path.to_owned()))?;
        if hdr.xloadflags & XLF_KERNEL_64 == 0 {
            return Err(BootError::NotKernel64(path.to_owned()));
        }
        // The decompressor writes the kernel at pref_address (relocatable kernels loaded
        // below it) and needs init_size bytes there (boot.rst, "init_size").
        let pref = hdr.pref_address.max(r.kernel_load.0);
        let reserved_end = r.kernel_end.max(pref + u64::from(hdr.init_size));
        return Ok(LoadedKernel {
            format: KernelFormat::BzImage,
            entry: r.kernel_load.0 + STARTUP_64_OFFSET,
            setup_header: Some(hdr),
            reserved_end,
        });
    }
    Err(BootError::NotAKernel(path.to_owned()))
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
