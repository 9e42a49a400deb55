//! Guest physical memory: the RAM regions, the MMIO hole below 4 GiB and the e820 map.
//!
//! RAM starts at 0 and stops at `MMIO_HOLE_START`; the rest goes above 4 GiB, so the
//! virtio-mmio windows, the IOAPIC and the local APIC sit in a hole the guest never mistakes
//! for RAM.

use vm_memory::{
    GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, MemoryRegionAddress,
};

/// The guest memory type every part of the VMM and every device sees. Cloning it is cheap (the
/// regions are shared), and it implements `GuestMemory` itself, as devices expect.
pub type GuestMem = GuestMemoryMmap;

/// One MiB.
pub const MIB: u64 = 1 << 20;
/// Smallest guest RAM accepted: below this the Debian kernel cannot even decompress itself.
pub const MIN_MEMORY_MIB: u64 = 64;
/// Largest guest RAM accepted (1 TiB); far beyond anything a test host has.
pub const MAX_MEMORY_MIB: u64 = 1 << 20;

/// Start of the 32-bit MMIO hole (3 GiB): no RAM between here and 4 GiB.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
/// End of the 32-bit MMIO hole.
pub const MMIO_HOLE_END: u64 = 1 << 32;
/// First virtio-mmio window; one `MMIO_WINDOW_SIZE` slot per device.
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_0000;
/// IOAPIC registers (KVM's in-kernel IOAPIC).
pub const IOAPIC_ADDR: u64 = 0xfec0_0000;
/// Local APIC registers.
pub const LAPIC_ADDR: u64 = 0xfee0_0000;
/// Three pages KVM needs for the TSS on Intel (VMX real-mode emulation).
pub const KVM_TSS_ADDR: u64 = 0xfffb_d000;
/// One page KVM needs for the identity map on Intel.
pub const KVM_IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;

/// End of conventional memory: the EBDA and the legacy BIOS area follow.
pub const EBDA_START: u64 = 0x9_fc00;
/// The kernel proper is loaded at 1 MiB and above.
pub const HIMEM_START: u64 = 0x10_0000;

/// One contiguous range of the e820 map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// `E820_RAM` or `E820_RESERVED`.
    pub kind: u32,
}

/// Usable RAM.
pub const E820_RAM: u32 = 1;
/// Reserved: not RAM, not to be touched.
pub const E820_RESERVED: u32 = 2;

/// Errors creating guest memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The requested size is outside the accepted range.
    #[error(
        "--memory {0} MiB is out of range: accelvm needs {MIN_MEMORY_MIB}..={MAX_MEMORY_MIB} MiB"
    )]
    BadSize(u64),
    /// mmap of the guest RAM failed.
    #[error("cannot allocate {0} MiB of guest memory")]
    Allocate(u64, #[source] vm_memory::mmap::FromRangesError),
}

/// The RAM ranges (start, length) for `size` bytes of guest memory.
pub fn ram_ranges(size: u64) -> Vec<(GuestAddress, usize)> {
    if size <= MMIO_HOLE_START {
        vec![(GuestAddress(0), size as usize)]
    } else {
        vec![
            (GuestAddress(0), MMIO_HOLE_START as usize),
            (
                GuestAddress(MMIO_HOLE_END),
                (size - MMIO_HOLE_START) as usize,
            ),
        ]
    }
}

/// End (exclusive) of RAM below the MMIO hole.
pub fn low_ram_end(size: u64) -> u64 {
    size.min(MMIO_HOLE_START)
}

/// Allocates `mib` MiB of anonymous guest RAM laid out around the MMIO hole.
pub fn create_guest_memory(mib: u64) -> Result<GuestMem, MemoryError> {
    if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&mib) {
        return Err(MemoryError::BadSize(mib));
    }
    let mem = GuestMemoryMmap::from_ranges(&ram_ranges(mib * MIB))
        .map_err(|e| MemoryError::Allocate(mib, e))?;
    for region in mem.iter() {
        if let Ok(host) = region.get_host_address(MemoryRegionAddress(0)) {
            // Transparent huge pages: 512x fewer page faults while loading the kernel and
            // initrd (most of accelvm's start-up cost) and fewer TLB misses for the guest.
            // SAFETY: madvise only advises about this live mapping; failure is harmless.
            unsafe { libc::madvise(host.cast(), region.len() as usize, libc::MADV_HUGEPAGE) };
        }
    }
    Ok(mem)
}

/// The e820 map the guest gets for `size` bytes of RAM.
pub fn e820_map(size: u64) -> Vec<E820Entry> {
    let mut map = vec![
        E820Entry {
            addr: 0,
            size: EBDA_START,
            kind: E820_RAM,
        },
        // EBDA, VGA hole, option ROMs and BIOS area: the ACPI tables live at 0xe0000.
        E820Entry {
            addr: EBDA_START,
            size: HIMEM_START - EBDA_START,
            kind: E820_RESERVED,
        },
        E820Entry {
            addr: HIMEM_START,
            size: low_ram_end(size) - HIMEM_START,
            kind: E820_RAM,
        },
    ];
    if size > MMIO_HOLE_START {
        map.push(E820Entry {
            addr: MMIO_HOLE_END,
            size: size - MMIO_HOLE_START,
            kind: E820_RAM,
        });
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_memory_is_one_range_and_e820_skips_the_bios_area() {
        assert_eq!(
            ram_ranges(256 * MIB),
            vec![(GuestAddress(0), (256 * MIB) as usize)]
        );
        let map = e820_map(256 * MIB);
        assert_eq!(map.len(), 3);
        assert_eq!(map[2].addr + map[2].size, 256 * MIB);
        assert_eq!(map[1].kind, E820_RESERVED);
    }

    #[test]
    fn large_memory_splits_around_the_hole() {
        let size = 4096 * MIB;
        let r = ram_ranges(size);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].1 as u64, MMIO_HOLE_START);
        assert_eq!(r[1].0, GuestAddress(MMIO_HOLE_END));
        assert_eq!(r[0].1 as u64 + r[1].1 as u64, size);
        let map = e820_map(size);
        assert_eq!(map.last().unwrap().addr, MMIO_HOLE_END);
        // Nothing in the map overlaps the hole.
        assert!(
            map.iter()
                .all(|e| e.addr + e.size <= MMIO_HOLE_START || e.addr >= MMIO_HOLE_END)
        );
    }

    #[test]
    fn sizes_out_of_range_are_refused() {
        assert!(matches!(
            create_guest_memory(0),
            Err(MemoryError::BadSize(0))
        ));
        assert!(matches!(
            create_guest_memory(MIN_MEMORY_MIB - 1),
            Err(MemoryError::BadSize(_))
        ));
    }
}
