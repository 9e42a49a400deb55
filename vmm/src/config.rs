//! What to run: the VM configuration, its validation and the kernel command line it implies.

use std::path::{Path, PathBuf};

use accelvm_devices::virtio::VirtioDevice;

use crate::acpi::MmioDeviceInfo;
use crate::kvm::DEFAULT_KVM_DEVICE;
use crate::memory::{GuestMem, MAX_MEMORY_MIB, MIN_MEMORY_MIB};

/// Kernel command line used when none is given: serial console, reboot through the ACPI
/// reset register, reboot (which ends accelvm) on panic, one UART to probe, no chatter.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=acpi panic=-1 quiet 8250.nr_uarts=1";
/// Default guest RAM.
pub const DEFAULT_MEMORY_MIB: u64 = 512;
/// Most vCPUs: APIC IDs are 8-bit in the MADT and 0xff is the broadcast ID.
pub const MAX_VCPUS: u32 = 254;

/// Errors in the configuration, found before any VM exists.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--cpus` outside 1..=MAX_VCPUS.
    #[error("--cpus must be between 1 and {MAX_VCPUS}, got {0}")]
    BadCpus(u32),
    /// `--memory` outside the accepted range.
    #[error("--memory must be between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB} MiB, got {0}")]
    BadMemory(u64),
    /// A file does not exist or is not a regular file.
    #[error("{what} {path} does not exist or is not a regular file")]
    MissingFile {
        /// "kernel image" or "initrd".
        what: &'static str,
        /// The path given.
        path: PathBuf,
    },
}

/// Everything needed to build a VM.
pub struct VmConfig {
    /// Kernel image: bzImage or ELF vmlinux.
    pub kernel: PathBuf,
    /// Initrd, if any.
    pub initrd: Option<PathBuf>,
    /// Base kernel command line (accelvm appends its own parameters).
    pub cmdline: String,
    /// Number of vCPUs.
    pub cpus: u32,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// Command for the guest init to run (`accelvm.cmd=`), whose status accelvm returns.
    pub guest_cmd: Option<String>,
    /// The KVM device node.
    pub kvm_device: PathBuf,
    /// Feed stdin to the guest console (raw mode when it is a terminal).
    pub stdin_to_guest: bool,
    /// Stop right before the first KVM_RUN, printing a timestamp (start-up cost probe).
    pub startup_probe: bool,
    /// virtio devices, placed on virtio-mmio windows in this order.
    pub devices: Vec<Box<dyn VirtioDevice<GuestMem>>>,
}

impl VmConfig {
    /// A configuration with defaults for everything but the kernel.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        VmConfig {
            kernel: kernel.into(),
            initrd: None,
            cmdline: DEFAULT_CMDLINE.into(),
            cpus: 1,
            memory_mib: DEFAULT_MEMORY_MIB,
            guest_cmd: None,
            kvm_device: DEFAULT_KVM_DEVICE.into(),
            stdin_to_guest: false,
            startup_probe: false,
            devices: Vec::new(),
        }
    }

    /// Checks everything that can be checked without loading or KVM.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_VCPUS).contains(&self.cpus) {
            return Err(ConfigError::BadCpus(self.cpus));
        }
        if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&self.memory_mib) {
            return Err(ConfigError::BadMemory(self.memory_mib));
        }
        check_file("kernel image", &self.kernel)?;
        if let Some(initrd) = &self.initrd {
            check_file("initrd", initrd)?;
        }
        Ok(())
    }

    /// The command line the guest gets: the base, the guest command, and one
    /// `virtio_mmio.device=` per device for kernels built with
    /// CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES (others find the devices in the DSDT).
    pub fn full_cmdline(&self, devices: &[MmioDeviceInfo]) -> String {
        let mut cmdline = self.cmdline.trim().to_string();
        for dev in devices {
            cmdline.push_str(&format!(
                " virtio_mmio.device={}K@{:#x}:{}",
                dev.size / 1024,
                dev.base,
                dev.gsi
            ));
        }
        if let Some(cmd) = &self.guest_cmd {
            cmdline.push_str(" accelvm.cmd=");
            cmdline.push_str(&base64(cmd.as_bytes()));
        }
        cmdline.trim_start().to_string()
    }
}

fn check_file(what: &'static str, path: &Path) -> Result<(), ConfigError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(ConfigError::MissingFile {
            what,
            path: path.to_owned(),
        })
    }
}

/// Standard base64 with padding (RFC 4648 §4), as the guest's `base64 -d` expects.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn cmdline_gets_devices_and_guest_command() {
        let mut c = VmConfig::new("/nonexistent");
        c.guest_cmd = Some("echo hi".into());
        let devs = [MmioDeviceInfo {
            base: 0xd000_0000,
            size: 0x1000,
            gsi: 5,
        }];
        let line = c.full_cmdline(&devs);
        assert!(line.starts_with(DEFAULT_CMDLINE));
        assert!(line.contains(" virtio_mmio.device=4K@0xd0000000:5"));
        assert!(line.ends_with(" accelvm.cmd=ZWNobyBoaQ=="));
    }

    #[test]
    fn validation_names_the_problem() {
        let mut c = VmConfig::new("/nonexistent/vmlinuz");
        c.cpus = 0;
        assert!(matches!(c.validate(), Err(ConfigError::BadCpus(0))));
        c.cpus = 1;
        c.memory_mib = 1;
        assert!(matches!(c.validate(), Err(ConfigError::BadMemory(1))));
        c.memory_mib = 256;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::MissingFile {
                what: "kernel image",
                ..
            })
        ));
    }
}
