//! The PVH boot protocol's `hvm_start_info` (xen/include/public/arch-x86/hvm/start_info.h).

use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use vm_memory::{Bytes, GuestAddress};

use super::{
    BootError, BootSpec, CMDLINE_START, InitrdPlacement, PVH_INFO_START, PVH_MEMMAP_START,
    PVH_MODLIST_START,
};
use crate::memory::{GuestMem, e820_map};

/// XEN_HVM_START_MAGIC_VALUE.
const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
/// Version 1 carries the memory map.
const START_INFO_VERSION: u32 = 1;

pub fn write_start_info(
    mem: &GuestMem,
    spec: &BootSpec,
    initrd: Option<InitrdPlacement>,
) -> Result<(), BootError> {
    let map = e820_map(spec.mem_size);
    let mut info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC,
        version: START_INFO_VERSION,
        cmdline_paddr: CMDLINE_START,
        rsdp_paddr: spec.rsdp,
        memmap_paddr: PVH_MEMMAP_START,
        memmap_entries: map.len() as u32,
        ..Default::default()
    };
    if let Some(initrd) = initrd {
        let module = hvm_modlist_entry {
            paddr: initrd.addr,
            size: initrd.size,
            ..Default::default()
        };
        mem.write_obj(module, GuestAddress(PVH_MODLIST_START))
            .map_err(BootError::WriteMemory)?;
        info.nr_modules = 1;
        info.modlist_paddr = PVH_MODLIST_START;
    }
    for (i, e) in map.iter().enumerate() {
        let entry = hvm_memmap_table_entry {
            addr: e.addr,
            size: e.size,
            type_: e.kind,
            reserved: 0,
        };
        let at = PVH_MEMMAP_START + (i * std::mem::size_of::<hvm_memmap_table_entry>()) as u64;
        mem.write_obj(entry, GuestAddress(at))
            .map_err(BootError::WriteMemory)?;
    }
    mem.write_obj(info, GuestAddress(PVH_INFO_START))
        .map_err(BootError::WriteMemory)
}
