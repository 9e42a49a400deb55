//! CPUID: KVM's supported set, with each vCPU's APIC ID and a flat topology (N cores, one
//! thread each, one package) patched in, and the hypervisor bit set. On a QEMU TCG host (the
//! nested test host) XSAVE is hidden from the guest, see [`hide_xsave`].

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES, kvm_cpuid_entry2};
use kvm_ioctls::Kvm;

/// Errors getting CPUID.
#[derive(Debug, thiserror::Error)]
#[error("cannot get the CPUID leaves KVM supports")]
pub struct CpuidError(#[source] kvm_ioctls::Error);

const LEAF_FEATURES: u32 = 0x1;
const LEAF_CACHE_PARAMS: u32 = 0x4;
const LEAF_EXT_TOPOLOGY: u32 = 0xb;
const LEAF_EXT_TOPOLOGY_V2: u32 = 0x1f;
const LEAF_AMD_SIZE_IDS: u32 = 0x8000_0008;
const LEAF_AMD_EXT_APIC_ID: u32 = 0x8000_001e;
/// CPUID.1:ECX bit 31: running under a hypervisor.
const ECX_HYPERVISOR: u32 = 1 << 31;
/// CPUID.1:EDX bit 28: EBX[23:16] is valid (logical processor count).
const EDX_HTT: u32 = 1 << 28;
/// Leaf 0xb level types.
const LEVEL_TYPE_SMT: u32 = 1;
const LEVEL_TYPE_CORE: u32 = 2;

const LEAF_EXT_FEATURES: u32 = 0x7;
const LEAF_XSAVE: u32 = 0xd;
/// CPUID.1:ECX bits that need XSAVE-managed state: FMA, XSAVE, OSXSAVE, AVX, F16C.
const ECX_XSAVE_DEPENDENT: u32 = (1 << 12) | (1 << 26) | (1 << 27) | (1 << 28) | (1 << 29);
/// CPUID.7.0:EBX AVX2 and the AVX-512 family (5, 16, 17, 21, 26, 27, 28, 30, 31).
const EBX7_XSAVE_DEPENDENT: u32 = (1 << 5)
    | (1 << 16)
    | (1 << 17)
    | (1 << 21)
    | (1 << 26)
    | (1 << 27)
    | (1 << 28)
    | (1 << 30)
    | (1 << 31);
/// CPUID.7.0:ECX AVX-512 VBMI, PKU, OSPKE, VBMI2, VAES, VPCLMULQDQ, VNNI, BITALG, VPOPCNTDQ.
const ECX7_XSAVE_DEPENDENT: u32 = (1 << 1)
    | (1 << 3)
    | (1 << 4)
    | (1 << 6)
    | (1 << 9)
    | (1 << 10)
    | (1 << 11)
    | (1 << 12)
    | (1 << 14);
/// CPUID.7.0:EDX AVX-512 4VNNIW/4FMAPS/VP2INTERSECT/FP16 and AMX (BF16, TILE, INT8).
const EDX7_XSAVE_DEPENDENT: u32 =
    (1 << 2) | (1 << 3) | (1 << 8) | (1 << 22) | (1 << 23) | (1 << 24) | (1 << 25);
/// CPUID.7.1:EAX AVX-VNNI and AVX512-BF16.
const EAX7_1_XSAVE_DEPENDENT: u32 = (1 << 4) | (1 << 5);

/// The CPUID entries KVM can expose, with XSAVE hidden where the host cannot virtualize it.
pub fn supported(kvm: &Kvm) -> Result<CpuId, CpuidError> {
    let mut cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(CpuidError)?;
    let brand = host_brand();
    if brand.contains("QEMU TCG CPU") {
        log::info!(
            "host CPU is \"{brand}\": its nested SVM does not trap XSETBV, so KVM would \
             restore a stale XCR0 around the guest; hiding XSAVE (the guest uses FXSAVE)"
        );
        hide_xsave(cpuid.as_mut_slice());
    }
    Ok(cpuid)
}

/// The host CPU's brand string (CPUID 0x8000_0002..=0x8000_0004).
fn host_brand() -> String {
    use std::arch::x86_64::__cpuid;
    if __cpuid(0x8000_0000).eax < 0x8000_0004 {
        return String::new();
    }
    let mut bytes = Vec::with_capacity(48);
    for leaf in 0x8000_0002..=0x8000_0004u32 {
        let r = __cpuid(leaf);
        for reg in [r.eax, r.ebx, r.ecx, r.edx] {
            bytes.extend_from_slice(&reg.to_le_bytes());
        }
    }
    String::from_utf8_lossy(&bytes)
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string()
}

/// Hides XSAVE and every feature whose state XSAVE manages (AVX*, AVX-512, PKU, AMX).
///
/// QEMU TCG's nested SVM runs an L2 guest's XSETBV without the intercept, so KVM never learns
/// the guest's XCR0: it reports CPUID 0xD sizes for XCR0 = x87 (the guest kernel then warns
/// "XSAVE consistency problem" and drops XSAVE itself), and it loads that stale XCR0 before
/// every VM entry, which would lose SSE/AVX state if the guest kept using XSAVE. Without
/// XSAVE the guest uses FXSAVE from the start, which saves x87 and SSE state in full.
pub fn hide_xsave(entries: &mut [kvm_cpuid_entry2]) {
    for e in entries.iter_mut() {
        match (e.function, e.index) {
            (LEAF_FEATURES, _) => e.ecx &= !ECX_XSAVE_DEPENDENT,
            (LEAF_EXT_FEATURES, 0) => {
                e.ebx &= !EBX7_XSAVE_DEPENDENT;
                e.ecx &= !ECX7_XSAVE_DEPENDENT;
                e.edx &= !EDX7_XSAVE_DEPENDENT;
            }
            (LEAF_EXT_FEATURES, 1) => e.eax &= !EAX7_1_XSAVE_DEPENDENT,
            (LEAF_XSAVE, _) => (e.eax, e.ebx, e.ecx, e.edx) = (0, 0, 0, 0),
            _ => {}
        }
    }
}

/// Bits needed to number `n` items (the x2APIC ID shift of a topology level).
fn bits_for(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

/// Patches one entry for vCPU `cpu_id` of `count`.
pub fn patch_entry(entry: &mut kvm_cpuid_entry2, cpu_id: u32, count: u32) {
    match entry.function {
        LEAF_FEATURES => {
            // EBX[31:24] initial APIC ID, EBX[23:16] logical processors per package.
            entry.ebx = (entry.ebx & 0xffff) | (cpu_id << 24) | ((count & 0xff) << 16);
            entry.ecx |= ECX_HYPERVISOR;
            if count > 1 {
                entry.edx |= EDX_HTT;
            } else {
                entry.edx &= !EDX_HTT;
            }
        }
        LEAF_CACHE_PARAMS => {
            // EAX[31:26]: cores per package - 1. EAX[25:14]: threads sharing this cache - 1:
            // L1/L2 are per core, L3 and beyond shared by the package.
            let level = (entry.eax >> 5) & 0x7;
            let sharing = if level >= 3 { count - 1 } else { 0 };
            entry.eax = (entry.eax & 0x3fff) | ((sharing & 0xfff) << 14) | ((count - 1) << 26);
        }
        LEAF_EXT_TOPOLOGY | LEAF_EXT_TOPOLOGY_V2 => {
            entry.edx = cpu_id;
            match entry.index {
                0 => {
                    entry.eax = 0;
                    entry.ebx = 1;
                    entry.ecx = (LEVEL_TYPE_SMT << 8) | entry.index;
                }
                1 => {
                    entry.eax = bits_for(count);
                    entry.ebx = count;
                    entry.ecx = (LEVEL_TYPE_CORE << 8) | entry.index;
                }
                _ => {
                    entry.eax = 0;
                    entry.ebx = 0;
                    entry.ecx = entry.index;
                }
            }
        }
        LEAF_AMD_SIZE_IDS => {
            // ECX[15:12] APIC ID size, ECX[7:0] number of cores - 1.
            entry.ecx = (bits_for(count) << 12) | ((count - 1) & 0xff);
        }
        LEAF_AMD_EXT_APIC_ID => {
            entry.eax = cpu_id;
            entry.ebx = cpu_id & 0xff; // core (compute unit) ID, one thread per core
            entry.ecx = 0; // node 0, one node per package
        }
        _ => {}
    }
}

/// KVM's supported CPUID adjusted for vCPU `cpu_id` of `count`.
pub fn for_vcpu(base: &CpuId, cpu_id: u32, count: u32) -> CpuId {
    let mut cpuid = base.clone();
    for entry in cpuid.as_mut_slice() {
        patch_entry(entry, cpu_id, count);
    }
    cpuid
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            ..Default::default()
        }
    }

    #[test]
    fn apic_ids_and_topology_are_patched() {
        let mut e = entry(LEAF_FEATURES, 0);
        e.ebx = 0xff00_0a0b;
        patch_entry(&mut e, 3, 4);
        assert_eq!(e.ebx, 0x0304_0a0b);
        assert_ne!(e.ecx & ECX_HYPERVISOR, 0);
        assert_ne!(e.edx & EDX_HTT, 0);

        let mut smt = entry(LEAF_EXT_TOPOLOGY, 0);
        patch_entry(&mut smt, 1, 2);
        assert_eq!((smt.eax, smt.ebx, smt.ecx, smt.edx), (0, 1, 0x100, 1));
        let mut core = entry(LEAF_EXT_TOPOLOGY, 1);
        patch_entry(&mut core, 1, 3);
        assert_eq!((core.eax, core.ebx, core.ecx, core.edx), (2, 3, 0x201, 1));

        let mut amd = entry(LEAF_AMD_SIZE_IDS, 0);
        patch_entry(&mut amd, 0, 2);
        assert_eq!(amd.ecx, (1 << 12) | 1);
        assert_eq!(bits_for(1), 0);
        assert_eq!(bits_for(5), 3);
    }

    #[test]
    fn hiding_xsave_clears_it_and_what_depends_on_it() {
        let mut e = [
            entry(LEAF_FEATURES, 0),
            entry(7, 0),
            entry(7, 1),
            entry(0xd, 0),
        ];
        e[0].ecx = u32::MAX;
        e[1].ebx = u32::MAX;
        e[1].ecx = u32::MAX;
        e[2].eax = u32::MAX;
        e[3].eax = 0x2e7;
        e[3].ebx = 2696;
        hide_xsave(&mut e);
        assert_eq!(e[0].ecx & (1 << 26), 0, "XSAVE");
        assert_eq!(e[0].ecx & (1 << 28), 0, "AVX");
        assert_ne!(e[0].ecx & (1 << 25), 0, "AES-NI stays");
        assert_ne!(e[0].ecx & (1 << 1), 0, "PCLMULQDQ stays");
        assert_eq!(e[1].ebx & (1 << 5), 0, "AVX2");
        assert_ne!(e[1].ebx & (1 << 0), 0, "FSGSBASE stays");
        assert_eq!(e[1].ecx & (1 << 3), 0, "PKU");
        assert_eq!(e[2].eax & (1 << 4), 0, "AVX-VNNI");
        assert_eq!((e[3].eax, e[3].ebx), (0, 0));
    }
}
