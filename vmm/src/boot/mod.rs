//! Loading a Linux guest: kernel image, initrd, command line and the boot protocol data.
//!
//! A bzImage boots through the 64-bit Linux boot protocol (zero page at `ZERO_PAGE_START`,
//! entry at `startup_64`); an ELF vmlinux boots through PVH when it carries the Xen PVH note
//! (start info at `PVH_INFO_START`, 32-bit protected-mode entry) and through the 64-bit
//! protocol otherwise.

mod initrd;
mod kernel;
mod params;
mod pvh;

use std::path::PathBuf;

use linux_loader::cmdline::Cmdline;
use vm_memory::{GuestAddress, GuestMemoryError};

use crate::memory::{GuestMem, low_ram_end};

pub use kernel::KernelFormat;

/// GDT used for the boot CPU's flat segments.
pub const GDT_START: u64 = 0x500;
/// An empty IDT: the kernel installs its own before enabling interrupts.
pub const IDT_START: u64 = 0x520;
/// PVH `hvm_start_info`, followed by the module list and the memory map.
pub const PVH_INFO_START: u64 = 0x6000;
/// PVH module list (the initrd).
pub const PVH_MODLIST_START: u64 = 0x6040;
/// PVH memory map.
pub const PVH_MEMMAP_START: u64 = 0x6080;
/// The Linux zero page (`struct boot_params`).
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack pointer of the boot CPU.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Level-4 page table of the boot identity map; PDPT and PDs follow.
pub const PML4_START: u64 = 0x9000;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x2_0000;
/// Most bytes (with the NUL) the command line may take, when the kernel does not say.
pub const DEFAULT_CMDLINE_MAX: usize = 2048;

/// Errors loading the guest.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The kernel image cannot be opened.
    #[error("cannot open kernel image {0}: {1}")]
    OpenKernel(PathBuf, #[source] std::io::Error),
    /// The file is neither a bzImage nor an ELF.
    #[error("{0} is not a Linux kernel (neither a bzImage nor an ELF vmlinux)")]
    NotAKernel(PathBuf),
    /// The bzImage has no 64-bit entry point.
    #[error("{0} is a bzImage without a 64-bit entry point (XLF_KERNEL_64), which accelvm needs")]
    NotKernel64(PathBuf),
    /// linux-loader refused the image (truncated, corrupt, or larger than guest RAM).
    #[error("cannot load kernel image {0} (corrupt, or too big for guest memory): {1}")]
    LoadKernel(PathBuf, #[source] linux_loader::loader::Error),
    /// The initrd cannot be opened or read.
    #[error("cannot read initrd {0}: {1}")]
    ReadInitrd(PathBuf, #[source] std::io::Error),
    /// The initrd does not fit between the kernel and the end of low RAM.
    #[error(
        "initrd {path} ({size_mib} MiB) does not fit in guest memory: {avail_mib} MiB are free \
         above the kernel; raise --memory"
    )]
    InitrdTooLarge {
        /// The initrd file.
        path: PathBuf,
        /// Its size, rounded up.
        size_mib: u64,
        /// Space left for it, rounded down.
        avail_mib: u64,
    },
    /// The kernel command line holds characters the kernel does not accept.
    #[error("invalid kernel command line: {0}")]
    Cmdline(#[source] linux_loader::cmdline::Error),
    /// The kernel command line is longer than the kernel accepts.
    #[error("kernel command line is {len} bytes, the kernel accepts at most {max}")]
    CmdlineTooLong {
        /// Its length (with the NUL).
        len: usize,
        /// The kernel's limit.
        max: usize,
    },
    /// Writing boot data into guest memory failed.
    #[error("cannot write boot data into guest memory")]
    WriteMemory(#[source] GuestMemoryError),
}

/// Where and how the boot CPU starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryPoint {
    /// 64-bit Linux boot protocol: long mode, `rsi` = zero page.
    Linux64 {
        /// `startup_64`.
        rip: u64,
    },
    /// PVH: 32-bit protected mode without paging, `rbx` = start info.
    Pvh {
        /// The PVH entry from the ELF note.
        rip: u64,
    },
}

/// What to boot.
#[derive(Debug)]
pub struct BootSpec {
    /// Kernel image (bzImage or ELF vmlinux).
    pub kernel: PathBuf,
    /// Optional initrd.
    pub initrd: Option<PathBuf>,
    /// The full command line.
    pub cmdline: String,
    /// Guest RAM size in bytes.
    pub mem_size: u64,
    /// Address of the ACPI RSDP (passed through the zero page / start info).
    pub rsdp: u64,
}

/// Loads kernel, initrd and command line and writes the boot protocol data.
pub fn load_guest(mem: &GuestMem, spec: &BootSpec) -> Result<EntryPoint, BootError> {
    let loaded = kernel::load_kernel(mem, &spec.kernel)?;
    let max_cmdline = loaded
        .setup_header
        .map(|h| h.cmdline_size as usize)
        .filter(|&s| s > 0)
        .unwrap_or(DEFAULT_CMDLINE_MAX);
    write_cmdline(mem, &spec.cmdline, max_cmdline)?;

    let initrd = match &spec.initrd {
        Some(path) => {
            let limit = loaded
                .setup_header
                .map(|h| u64::from(h.initrd_addr_max) + 1)
                .unwrap_or(u64::MAX)
                .min(low_ram_end(spec.mem_size));
            Some(initrd::load_initrd(mem, path, loaded.reserved_end, limit)?)
        }
        None => None,
    };

    match loaded.format {
        KernelFormat::Pvh { entry } => {
            pvh::write_start_info(mem, spec, initrd)?;
            Ok(EntryPoint::Pvh { rip: entry })
        }
        KernelFormat::BzImage | KernelFormat::Elf64 => {
            params::write_zero_page(mem, spec, loaded.setup_header, initrd, spec.cmdline.len())?;
            Ok(EntryPoint::Linux64 { rip: loaded.entry })
        }
    }
}

fn write_cmdline(mem: &GuestMem, cmdline: &str, max: usize) -> Result<(), BootError> {
    // The size limit (with the NUL) comes from the kernel header, so check it ourselves and
    // give Cmdline enough room to report only character errors.
    if cmdline.len() + 1 > max {
        return Err(BootError::CmdlineTooLong {
            len: cmdline.len() + 1,
            max,
        });
    }
    let cl = Cmdline::try_from(cmdline, max).map_err(BootError::Cmdline)?;
    linux_loader::loader::load_cmdline(mem, GuestAddress(CMDLINE_START), &cl).map_err(|_| {
        BootError::WriteMemory(GuestMemoryError::InvalidGuestAddress(GuestAddress(
            CMDLINE_START,
        )))
    })
}

/// Where the initrd went.
#[derive(Clone, Copy, Debug)]
pub struct InitrdPlacement {
    /// Guest physical address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
}
