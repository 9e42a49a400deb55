//! The Linux zero page (`struct boot_params`) for the 64-bit boot protocol.

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use vm_memory::{Bytes, GuestAddress};

use super::{BootError, BootSpec, CMDLINE_START, InitrdPlacement, ZERO_PAGE_START};
use crate::memory::{GuestMem, e820_map};

/// "HdrS".
const HDRS_MAGIC: u32 = 0x5372_6448;
/// Boot sector signature.
const BOOT_FLAG: u16 = 0xaa55;
/// Boot loader type "undefined" (boot.rst: 0xff).
const LOADER_TYPE_UNDEFINED: u8 = 0xff;
/// loadflags: the heap_end_ptr field is valid.
const CAN_USE_HEAP: u8 = 0x80;
/// Alignment a vmlinux without header expects (CONFIG_PHYSICAL_ALIGN).
const DEFAULT_KERNEL_ALIGNMENT: u32 = 0x100_0000;

pub fn write_zero_page(
    mem: &GuestMem,
    spec: &BootSpec,
    header: Option<setup_header>,
    initrd: Option<InitrdPlacement>,
    cmdline_len: usize,
) -> Result<(), BootError> {
    let mut params = boot_params {
        hdr: header.unwrap_or(setup_header {
            kernel_alignment: DEFAULT_KERNEL_ALIGNMENT,
            ..Default::default()
        }),
        ..Default::default()
    };
    params.hdr.header = HDRS_MAGIC;
    params.hdr.boot_flag = BOOT_FLAG;
    params.hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    params.hdr.loadflags |= CAN_USE_HEAP;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_len as u32 + 1;
    if let Some(initrd) = initrd {
        params.hdr.ramdisk_image = initrd.addr as u32;
        params.hdr.ramdisk_size = initrd.size as u32;
    }
    // Boot protocol 2.14: saves the kernel the scan of the BIOS area for the RSDP.
    params.acpi_rsdp_addr = spec.rsdp;
    let map = e820_map(spec.mem_size);
    for (slot, e) in params.e820_table.iter_mut().zip(map.iter()) {
        *slot = boot_e820_entry {
            addr: e.addr,
            size: e.size,
            r#type: e.kind,
        };
    }
    params.e820_entries = map.len().min(params.e820_table.len()) as u8;
    mem.write_obj(params, GuestAddress(ZERO_PAGE_START))
        .map_err(BootError::WriteMemory)
}
