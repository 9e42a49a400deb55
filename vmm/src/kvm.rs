//! Opening KVM and creating the VM: memory slots, in-kernel irqchip (PIC + IOAPIC + LAPICs)
//! and PIT.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use kvm_bindings::{KVM_PIT_SPEAKER_DUMMY, kvm_pit_config, kvm_userspace_memory_region};
use kvm_ioctls::{Cap, Kvm, VmFd};
use vm_memory::{Address, GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};

use crate::memory::{GuestMem, KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR};

/// The device node used unless `ACCELVM_KVM_DEVICE` or `--kvm-device` says otherwise.
pub const DEFAULT_KVM_DEVICE: &str = "/dev/kvm";
/// Present when /dev/kvm is PVM, which cannot run an unmodified kernel natively.
pub const KVM_PVM_SYSFS: &str = "/sys/module/kvm_pvm";
/// KVM API version every KVM since 2.6.22 reports.
const KVM_API_VERSION: i32 = 12;

/// Errors opening KVM or creating the VM.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// The device node does not exist.
    #[error(
        "no KVM device at {0} (is the kvm module loaded and is this machine able to virtualize?)"
    )]
    NoDevice(PathBuf),
    /// No permission to open the device node.
    #[error(
        "no permission to open {0} (run as root or join the group that owns it, usually 'kvm')"
    )]
    NoPermission(PathBuf),
    /// Opening failed for another reason (e.g. not a KVM device).
    #[error("cannot open KVM device {0}: {1}")]
    Open(PathBuf, #[source] kvm_ioctls::Error),
    /// The node is not KVM or speaks another API.
    #[error("{0} is not a usable KVM device (API version {1}, expected 12)")]
    BadApi(PathBuf, i32),
    /// A capability the VMM needs is missing.
    #[error("KVM lacks a required capability: {0}")]
    MissingCap(&'static str),
    /// The VM could not be created or configured.
    #[error("cannot {0}")]
    Vm(&'static str, #[source] kvm_ioctls::Error),
}

/// Whether /dev/kvm is the software-only PVM hypervisor.
pub fn is_pvm() -> bool {
    Path::new(KVM_PVM_SYSFS).exists()
}

/// Opens the KVM device at `path` and checks the API.
pub fn open(path: &Path) -> Result<Kvm, KvmError> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| KvmError::NoDevice(path.to_owned()))?;
    let kvm = Kvm::new_with_path(&cpath).map_err(|e| match e.errno() {
        libc::ENOENT | libc::ENODEV | libc::ENXIO => KvmError::NoDevice(path.to_owned()),
        libc::EACCES | libc::EPERM => KvmError::NoPermission(path.to_owned()),
        _ => KvmError::Open(path.to_owned(), e),
    })?;
    let api = kvm.get_api_version();
    if api != KVM_API_VERSION {
        return Err(KvmError::BadApi(path.to_owned(), api));
    }
    for (cap, name) in [
        (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
        (Cap::Irqfd, "KVM_CAP_IRQFD"),
        (Cap::Ioeventfd, "KVM_CAP_IOEVENTFD"),
        (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
        (Cap::Pit2, "KVM_CAP_PIT2"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(KvmError::MissingCap(name));
        }
    }
    Ok(kvm)
}

/// Creates the VM with memory, irqchip and PIT.
pub fn create_vm(kvm: &Kvm, mem: &GuestMem) -> Result<VmFd, KvmError> {
    let vm = kvm
        .create_vm()
        .map_err(|e| KvmError::Vm("create the VM", e))?;
    for (slot, region) in mem.iter().enumerate() {
        let host = region
            .get_host_address(MemoryRegionAddress(0))
            .map_err(|_| KvmError::MissingCap("host address of guest memory"))?;
        let region = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().raw_value(),
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the region is a live mmap shared by every clone of `mem`; the Vmm holds a
        // clone until after the VM fd is closed, so KVM never sees it unmapped. The slots are
        // the non-overlapping regions of one GuestMemoryMmap.
        unsafe { vm.set_user_memory_region(region) }
            .map_err(|e| KvmError::Vm("register guest memory", e))?;
    }
    vm.set_tss_address(KVM_TSS_ADDR as usize)
        .map_err(|e| KvmError::Vm("set the TSS address", e))?;
    vm.set_identity_map_address(KVM_IDENTITY_MAP_ADDR)
        .map_err(|e| KvmError::Vm("set the identity map address", e))?;
    vm.create_irq_chip()
        .map_err(|e| KvmError::Vm("create the in-kernel irqchip", e))?;
    let pit = kvm_pit_config {
        // Port 0x61 speaker reads are served in-kernel with a dummy speaker.
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit)
        .map_err(|e| KvmError::Vm("create the in-kernel PIT", e))?;
    Ok(vm)
}

/// Most vCPUs this KVM supports.
pub fn max_vcpus(kvm: &Kvm) -> usize {
    kvm.get_max_vcpus()
}
