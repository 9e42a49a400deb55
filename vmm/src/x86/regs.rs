//! Boot CPU registers: flat GDT, identity page tables and the entry state of the 64-bit Linux
//! boot protocol or of PVH.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryError};

use crate::boot::{
    BOOT_STACK_POINTER, EntryPoint, GDT_START, IDT_START, PML4_START, PVH_INFO_START,
    ZERO_PAGE_START,
};
use crate::memory::GuestMem;

const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// Bit 1 of RFLAGS is reserved and always set.
const RFLAGS_RESERVED: u64 = 2;
/// The identity map covers the first 4 GiB with 2 MiB pages: 4 page directories.
const IDENTITY_MAP_GIB: u64 = 4;
/// Page table entry flags: present, writable; PS for a 2 MiB page.
const PTE_PRESENT_RW: u64 = 0x3;
const PDE_HUGE: u64 = 0x80;
/// x87 control word and MXCSR after FNINIT / reset.
const FPU_FCW: u16 = 0x37f;
const MXCSR_DEFAULT: u32 = 0x1f80;

/// Errors programming the boot CPU.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    /// Writing the GDT or page tables failed.
    #[error("cannot write boot page tables or GDT")]
    Memory(#[source] GuestMemoryError),
    /// A register ioctl failed.
    #[error("cannot set vCPU {0} registers")]
    Ioctl(&'static str, #[source] kvm_ioctls::Error),
}

/// A GDT descriptor from flags (type/S/DPL/P in bits 0-7, AVL/L/DB/G in bits 12-15), base
/// and limit, in the layout of the Intel SDM vol. 3 §3.4.5.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << 32)
        | ((flags as u64 & 0xf0ff) << 40)
        | ((limit as u64 & 0x000f_0000) << 32)
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
}

/// The KVM segment register for GDT entry `index` holding `entry`.
pub fn segment(index: u16, entry: u64) -> kvm_segment {
    let g = ((entry >> 55) & 1) as u8;
    let raw_limit = ((entry & 0xffff) | ((entry >> 32) & 0xf_0000)) as u32;
    kvm_segment {
        base: ((entry >> 16) & 0xff_ffff) | ((entry >> 32) & 0xff00_0000),
        limit: if g == 1 {
            (raw_limit << 12) | 0xfff
        } else {
            raw_limit
        },
        selector: index * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        unusable: if (entry >> 47) & 1 == 1 { 0 } else { 1 },
        padding: 0,
    }
}

/// Writes the GDT/IDT and, for the 64-bit entry, the identity page tables; returns the
/// code, data and TSS descriptors to load.
fn write_tables(mem: &GuestMem, entry: EntryPoint) -> Result<[u64; 4], RegsError> {
    let gdt = match entry {
        EntryPoint::Linux64 { .. } => [
            0,
            gdt_entry(0xa09b, 0, 0xfffff), // 64-bit code
            gdt_entry(0xc093, 0, 0xfffff), // data
            gdt_entry(0x808b, 0, 0xfffff), // TSS
        ],
        EntryPoint::Pvh { .. } => [
            0,
            gdt_entry(0xc09b, 0, 0xfffff), // 32-bit flat code (PVH spec)
            gdt_entry(0xc093, 0, 0xfffff), // flat data
            gdt_entry(0x008b, 0, 0x67),    // TSS
        ],
    };
    for (i, e) in gdt.iter().enumerate() {
        mem.write_obj(*e, GuestAddress(GDT_START + i as u64 * 8))
            .map_err(RegsError::Memory)?;
    }
    mem.write_obj(0u64, GuestAddress(IDT_START))
        .map_err(RegsError::Memory)?;
    if let EntryPoint::Linux64 { .. } = entry {
        let pdpt = PML4_START + 0x1000;
        let pd = PML4_START + 0x2000;
        mem.write_obj(pdpt | PTE_PRESENT_RW, GuestAddress(PML4_START))
            .map_err(RegsError::Memory)?;
        for i in 0..IDENTITY_MAP_GIB {
            let table = pd + i * 0x1000;
            mem.write_obj(table | PTE_PRESENT_RW, GuestAddress(pdpt + i * 8))
                .map_err(RegsError::Memory)?;
            for j in 0..512u64 {
                let page = ((i << 30) + (j << 21)) | PTE_PRESENT_RW | PDE_HUGE;
                mem.write_obj(page, GuestAddress(table + j * 8))
                    .map_err(RegsError::Memory)?;
            }
        }
    }
    Ok(gdt)
}

/// Puts the boot CPU at `entry`, with the state the boot protocol promises.
pub fn setup_boot_cpu(vcpu: &VcpuFd, mem: &GuestMem, entry: EntryPoint) -> Result<(), RegsError> {
    let gdt = write_tables(mem, entry)?;
    let mut sregs: kvm_sregs = vcpu
        .get_sregs()
        .map_err(|e| RegsError::Ioctl("special", e))?;
    let code = segment(1, gdt[1]);
    let data = segment(2, gdt[2]);
    let tss = segment(3, gdt[3]);
    sregs.gdt.base = GDT_START;
    sregs.gdt.limit = (gdt.len() * 8 - 1) as u16;
    sregs.idt.base = IDT_START;
    sregs.idt.limit = 7;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    let mut regs = kvm_regs {
        rflags: RFLAGS_RESERVED,
        ..Default::default()
    };
    match entry {
        EntryPoint::Linux64 { rip } => {
            sregs.cr0 |= CR0_PE | CR0_ET | CR0_PG;
            sregs.cr3 = PML4_START;
            sregs.cr4 |= CR4_PAE;
            sregs.efer |= EFER_LME | EFER_LMA;
            regs.rip = rip;
            regs.rsp = BOOT_STACK_POINTER;
            regs.rbp = BOOT_STACK_POINTER;
            regs.rsi = ZERO_PAGE_START;
        }
        EntryPoint::Pvh { rip } => {
            sregs.cr0 = CR0_PE | CR0_ET;
            sregs.cr4 = 0;
            sregs.efer = 0;
            regs.rip = rip;
            regs.rbx = PVH_INFO_START;
        }
    }
    vcpu.set_sregs(&sregs)
        .map_err(|e| RegsError::Ioctl("special", e))?;
    vcpu.set_regs(&regs)
        .map_err(|e| RegsError::Ioctl("general", e))?;
    Ok(())
}

/// Sane FPU state for every vCPU.
pub fn setup_fpu(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let fpu = kvm_fpu {
        fcw: FPU_FCW,
        mxcsr: MXCSR_DEFAULT,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(|e| RegsError::Ioctl("FPU", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entries_decode_to_the_expected_segments() {
        let code = gdt_entry(0xa09b, 0, 0xfffff);
        assert_eq!(code, 0x00af_9b00_0000_ffff);
        let s = segment(1, code);
        assert_eq!(
            (s.selector, s.type_, s.l, s.db, s.g, s.present),
            (8, 0xb, 1, 0, 1, 1)
        );
        assert_eq!(s.limit, 0xffff_ffff);
        let data = segment(2, gdt_entry(0xc093, 0, 0xfffff));
        assert_eq!((data.type_, data.db, data.s, data.unusable), (3, 1, 1, 0));
        let tss = segment(3, gdt_entry(0x008b, 0, 0x67));
        assert_eq!((tss.type_, tss.limit, tss.s), (0xb, 0x67, 0));
    }
}
