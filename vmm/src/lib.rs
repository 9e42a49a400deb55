//! accelvm: a small KVM VMM that boots an unmodified Linux (bzImage or ELF vmlinux) with
//! virtio-mmio devices described in ACPI.
//!
//! Use [`VmConfig`] to describe the VM, [`Vmm::new`] to build it and [`Vmm::run`] to run it:
//!
//! ```no_run
//! let mut config = accelvm::VmConfig::new("images/out/vmlinuz");
//! config.initrd = Some("images/out/initrd.img".into());
//! config.guest_cmd = Some("uname -r".into());
//! let outcome = accelvm::Vmm::new(config)?.run()?;
//! println!("guest exit status: {:?}", outcome.guest_status);
//! # Ok::<(), accelvm::VmmError>(())
//! ```

pub mod accel_config;
pub mod acpi;
pub mod bench_backend;
pub mod boot;
pub mod bus;
pub mod cli;
pub mod config;
pub mod console;
pub mod device_manager;
pub mod event_loop;
pub mod exit;
pub mod fleet;
pub mod kvm;
pub mod memory;
pub mod net_config;
pub mod power;
pub mod serial;
pub mod signals;
pub mod terminal;
pub mod vcpu;
mod vmm;
pub mod x86;

pub use config::VmConfig;
pub use exit::ExitReason;
pub use memory::GuestMem;
pub use vmm::{VmOutcome, Vmm, VmmError};
