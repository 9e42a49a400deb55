//! Building a VM from a [`VmConfig`] and running it to the end.
//!
//! Everything that can fail because of the user's input (configuration, kernel, initrd,
//! command line) is checked before KVM is opened, so those errors are the same on any host.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use kvm_ioctls::{Kvm, VmFd};

use crate::acpi::{self, AcpiError, MmioDeviceInfo};
use crate::boot::{self, BootError, BootSpec};
use crate::bus::{Bus, BusError};
use crate::config::{ConfigError, VmConfig};
use crate::console::{ConsoleOutput, GuestStatus};
use crate::device_manager::{self, DeviceError};
use crate::event_loop::{EventLoop, EventLoopError, StdinSubscriber, Subscriber};
use crate::exit::{ExitReason, ExitSignal};
use crate::kvm::{self, KvmError};
use crate::memory::{self, GuestMem, MIB, MemoryError};
use crate::power::{
    AcpiPowerDevice, I8042_COMMAND_PORT, I8042Reset, POWER_PORTS_LEN, SLEEP_CONTROL_PORT,
};
use crate::serial::{COM1_GSI, COM1_PORT, COM1_PORTS_LEN, SerialDevice};
use crate::signals::{BlockedStopSignals, StopSignalFd, install_vcpu_kick_handler, poll_readable};
use crate::terminal::RawTerminal;
use crate::vcpu::{Vcpu, VcpuContext, VcpuError, stop_vcpus};
use crate::x86::cpuid::{self, CpuidError};

/// Everything that can stop a VM from being built or run.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Guest memory.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// Kernel, initrd or command line.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// ACPI tables.
    #[error(transparent)]
    Acpi(#[from] AcpiError),
    /// KVM.
    #[error(transparent)]
    Kvm(#[from] KvmError),
    /// More vCPUs than this KVM supports.
    #[error("--cpus {0} exceeds the {1} vCPUs this KVM supports")]
    TooManyCpus(u32, usize),
    /// CPUID.
    #[error(transparent)]
    Cpuid(#[from] CpuidError),
    /// vCPU setup.
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    /// Device placement.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Legacy device placement.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Event loop.
    #[error(transparent)]
    EventLoop(#[from] EventLoopError),
    /// Host resources (eventfds, signals, poll).
    #[error("{0}")]
    Host(&'static str, #[source] io::Error),
    /// KVM refused an irqfd for a legacy device.
    #[error("cannot register the serial port interrupt")]
    SerialIrq(#[source] kvm_ioctls::Error),
    /// The guest or a vCPU failed.
    #[error("{0}")]
    Guest(String),
}

/// How a VM ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmOutcome {
    /// Why it stopped.
    pub reason: ExitReason,
    /// The `ACCELVM_EXIT=<n>` status, when a guest command ran and reported one.
    pub guest_status: Option<i32>,
}

/// A built VM, ready to run.
pub struct Vmm {
    // Field order is drop order: vCPU fds, then the VM, then KVM, then memory.
    vcpus: Vec<Vcpu>,
    event_loop: EventLoop,
    ctx: VcpuContext,
    exit: Arc<ExitSignal>,
    guest_status: Option<GuestStatus>,
    interactive: bool,
    devices: Vec<MmioDeviceInfo>,
    _vm: VmFd,
    _kvm: Kvm,
    _mem: GuestMem,
}

impl Vmm {
    /// Validates `config`, loads the guest, creates the VM, its devices and vCPUs.
    pub fn new(mut config: VmConfig) -> Result<Self, VmmError> {
        config.validate()?;
        let mem = memory::create_guest_memory(config.memory_mib)?;
        let devices: Vec<MmioDeviceInfo> = (0..config.devices.len())
            .map(device_manager::slot_info)
            .collect::<Result<_, _>>()?;
        let cmdline = config.full_cmdline(&devices);
        let rsdp = acpi::write_tables(&mem, config.cpus, &devices)?;
        let entry = boot::load_guest(
            &mem,
            &BootSpec {
                kernel: config.kernel.clone(),
                initrd: config.initrd.clone(),
                cmdline,
                mem_size: config.memory_mib * MIB,
                rsdp,
            },
        )?;

        let kvm = kvm::open(&config.kvm_device)?;
        let max = kvm::max_vcpus(&kvm);
        if config.cpus as usize > max {
            return Err(VmmError::TooManyCpus(config.cpus, max));
        }
        let vm = kvm::create_vm(&kvm, &mem)?;
        let exit =
            Arc::new(ExitSignal::new().map_err(|e| VmmError::Host("cannot create an eventfd", e))?);

        let guest_status = config.guest_cmd.as_ref().map(|_| GuestStatus::default());
        let serial_irq = vmm_sys_util::eventfd::EventFd::new(vmm_sys_util::eventfd::EFD_NONBLOCK)
            .map_err(|e| VmmError::Host("cannot create an eventfd", e))?;
        vm.register_irqfd(&serial_irq, COM1_GSI)
            .map_err(VmmError::SerialIrq)?;
        let serial = Arc::new(Mutex::new(SerialDevice::new(
            serial_irq,
            ConsoleOutput::new(io::stdout(), guest_status.clone()),
        )));
        let mut pio = Bus::new();
        pio.insert(u64::from(COM1_PORT), COM1_PORTS_LEN, serial.clone())?;
        pio.insert(
            u64::from(SLEEP_CONTROL_PORT),
            POWER_PORTS_LEN,
            Arc::new(Mutex::new(AcpiPowerDevice::new(exit.clone()))),
        )?;
        pio.insert(
            u64::from(I8042_COMMAND_PORT),
            1,
            Arc::new(Mutex::new(I8042Reset::new(exit.clone()))),
        )?;

        let mut initial: Vec<Subscriber> = Vec::new();
        let interactive = config.stdin_to_guest && config.guest_cmd.is_none();
        if interactive {
            let sink_serial = serial.clone();
            let cap_serial = serial.clone();
            let stdin = StdinSubscriber::new(
                move |bytes: &[u8]| {
                    sink_serial
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .enqueue_input(bytes)
                },
                Box::new(move || {
                    cap_serial
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .rx_capacity()
                }),
            )
            .map_err(|e| VmmError::Host("cannot create the stdin retry timer", e))?;
            initial.push(Arc::new(Mutex::new(stdin)));
        }
        // Threads inherit the signal mask: the loop must never take SIGTERM/SIGINT.
        let blocked = BlockedStopSignals::new()
            .map_err(|e| VmmError::Host("cannot block SIGTERM/SIGINT", e))?;
        let event_loop = EventLoop::spawn(initial)?;
        drop(blocked);

        let handle = Arc::new(event_loop.handle());
        let mut mmio = Bus::new();
        for (slot, device) in config.devices.drain(..).enumerate() {
            device_manager::attach_virtio_device(
                &vm,
                &mem,
                &mut mmio,
                handle.clone(),
                slot,
                device,
            )?;
        }

        let base_cpuid = cpuid::supported(&kvm)?;
        let count = config.cpus as u8;
        let vcpus = (0..count)
            .map(|id| Vcpu::new(&vm, &base_cpuid, &mem, entry, id, count))
            .collect::<Result<Vec<_>, _>>()?;
        let ctx = VcpuContext {
            pio: Arc::new(pio),
            mmio: Arc::new(mmio),
            exit: exit.clone(),
            startup_probe: config.startup_probe,
        };
        Ok(Vmm {
            vcpus,
            event_loop,
            ctx,
            exit,
            guest_status,
            interactive,
            devices,
            _vm: vm,
            _kvm: kvm,
            _mem: mem,
        })
    }

    /// The virtio-mmio windows the guest sees.
    pub fn devices(&self) -> &[MmioDeviceInfo] {
        &self.devices
    }

    /// Runs the guest until it powers off or reboots, a vCPU fails, or SIGTERM/SIGINT
    /// arrives. Every thread is joined and every fd closed before this returns.
    pub fn run(mut self) -> Result<VmOutcome, VmmError> {
        install_vcpu_kick_handler()
            .map_err(|e| VmmError::Host("cannot install the vCPU kick handler", e))?;
        let blocked = BlockedStopSignals::new()
            .map_err(|e| VmmError::Host("cannot block SIGTERM/SIGINT", e))?;
        let sigfd =
            StopSignalFd::new().map_err(|e| VmmError::Host("cannot create a signalfd", e))?;
        let raw = if self.interactive {
            RawTerminal::enable()
        } else {
            None
        };

        let mut threads = Vec::new();
        for vcpu in self.vcpus.drain(..) {
            match vcpu.spawn(self.ctx.clone()) {
                Ok(t) => threads.push(t),
                Err(e) => {
                    self.exit.request(ExitReason::Failed(e.to_string()));
                    break;
                }
            }
        }
        let wait = self.wait(&sigfd);

        stop_vcpus(threads);
        self.event_loop.stop();
        drop(raw);
        drop(sigfd);
        drop(blocked);
        wait?;

        let reason = self
            .exit
            .reason()
            .unwrap_or(ExitReason::Failed("VM stopped without a reason".into()));
        if let ExitReason::Failed(msg) = reason {
            return Err(VmmError::Guest(msg));
        }
        let guest_status = self
            .guest_status
            .as_ref()
            .and_then(|s| *s.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(VmOutcome {
            reason,
            guest_status,
        })
    }

    fn wait(&self, sigfd: &StopSignalFd) -> Result<(), VmmError> {
        let fds = [self.exit.eventfd().as_raw_fd(), sigfd.as_raw_fd()];
        while !self.exit.is_requested() {
            let ready = match poll_readable(&fds) {
                Ok(r) => r,
                Err(e) => {
                    self.exit
                        .request(ExitReason::Failed(format!("poll failed: {e}")));
                    return Err(VmmError::Host("cannot wait for the VM", e));
                }
            };
            if ready[1]
                && let Some(sig) = sigfd.read()
            {
                self.exit.request(ExitReason::Signal(sig));
            }
            if ready[0] {
                let _ = self.exit.eventfd().read();
            }
        }
        Ok(())
    }
}
