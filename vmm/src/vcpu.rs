//! vCPUs: creation and per-CPU state, and the run loop of each vCPU thread. Exits are
//! dispatched to the PIO/MMIO buses; poweroff, reboot and errors go to the [`ExitSignal`].

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use kvm_bindings::CpuId;
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};
use log::{debug, warn};
use vmm_sys_util::signal::Killable;

use crate::boot::EntryPoint;
use crate::bus::Bus;
use crate::exit::{ExitReason, ExitSignal};
use crate::memory::GuestMem;
use crate::signals::vcpu_kick_signal;
use crate::x86::{cpuid, lapic, msr, regs};

/// KVM_SYSTEM_EVENT_* types.
const SYSTEM_EVENT_SHUTDOWN: u32 = 1;
const SYSTEM_EVENT_RESET: u32 = 2;
const SYSTEM_EVENT_CRASH: u32 = 3;
/// How often a stopping vCPU is re-kicked (a kick landing just before KVM_RUN is lost).
const KICK_INTERVAL: Duration = Duration::from_millis(2);

/// Errors creating or configuring a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// KVM_CREATE_VCPU failed.
    #[error("cannot create vCPU {0}")]
    Create(u8, #[source] kvm_ioctls::Error),
    /// KVM_SET_CPUID2 failed.
    #[error("cannot set CPUID of vCPU {0}")]
    Cpuid(u8, #[source] kvm_ioctls::Error),
    /// MSRs could not be set.
    #[error("vCPU {0}")]
    Msr(u8, #[source] msr::MsrError),
    /// The local APIC could not be programmed.
    #[error("vCPU {0}")]
    Lapic(u8, #[source] lapic::LapicError),
    /// Registers could not be set.
    #[error("vCPU {0}")]
    Regs(u8, #[source] regs::RegsError),
    /// The thread could not be spawned.
    #[error("cannot spawn the thread of vCPU {0}")]
    Spawn(u8, #[source] std::io::Error),
}

/// What a vCPU thread needs besides its fd.
#[derive(Clone)]
pub struct VcpuContext {
    /// Port I/O devices.
    pub pio: Arc<Bus>,
    /// MMIO devices.
    pub mmio: Arc<Bus>,
    /// Where stop requests go.
    pub exit: Arc<ExitSignal>,
    /// Print a timestamp and stop right before the first KVM_RUN of the boot CPU.
    pub startup_probe: bool,
}

/// One configured vCPU, not yet running.
pub struct Vcpu {
    id: u8,
    fd: VcpuFd,
}

impl Vcpu {
    /// Creates vCPU `id` of `count` with CPUID, MSRs, LAPIC and FPU set; the boot CPU
    /// (id 0) also gets the entry state, the others wait for INIT/SIPI in the kernel.
    pub fn new(
        vm: &VmFd,
        base_cpuid: &CpuId,
        mem: &GuestMem,
        entry: EntryPoint,
        id: u8,
        count: u8,
    ) -> Result<Self, VcpuError> {
        let fd = vm
            .create_vcpu(u64::from(id))
            .map_err(|e| VcpuError::Create(id, e))?;
        let cpuid = cpuid::for_vcpu(base_cpuid, u32::from(id), u32::from(count));
        fd.set_cpuid2(&cpuid).map_err(|e| VcpuError::Cpuid(id, e))?;
        msr::setup_msrs(&fd).map_err(|e| VcpuError::Msr(id, e))?;
        regs::setup_fpu(&fd).map_err(|e| VcpuError::Regs(id, e))?;
        lapic::setup_lint(&fd).map_err(|e| VcpuError::Lapic(id, e))?;
        if id == 0 {
            regs::setup_boot_cpu(&fd, mem, entry).map_err(|e| VcpuError::Regs(id, e))?;
        }
        Ok(Vcpu { id, fd })
    }

    /// Starts the vCPU's thread.
    pub fn spawn(self, ctx: VcpuContext) -> Result<JoinHandle<()>, VcpuError> {
        let id = self.id;
        std::thread::Builder::new()
            .name(format!("vcpu{id}"))
            .spawn(move || self.run(ctx))
            .map_err(|e| VcpuError::Spawn(id, e))
    }

    fn run(mut self, ctx: VcpuContext) {
        let mut first = true;
        while !ctx.exit.is_requested() {
            if first && self.id == 0 && ctx.startup_probe {
                println_probe();
                ctx.exit.request(ExitReason::StartupProbe);
                break;
            }
            first = false;
            if let Some(reason) = self.run_once(&ctx) {
                ctx.exit.request(reason);
            }
        }
        // The fd closes here, on the vCPU's own thread, after its last KVM_RUN.
    }

    fn run_once(&mut self, ctx: &VcpuContext) -> Option<ExitReason> {
        match self.fd.run() {
            Ok(VcpuExit::IoIn(port, data)) => {
                if !ctx.pio.read(u64::from(port), data) {
                    data.fill(0xff); // nothing there: an open ISA bus reads all ones
                }
                None
            }
            Ok(VcpuExit::IoOut(port, data)) => {
                if !ctx.pio.write(u64::from(port), data) {
                    debug!("vcpu{}: write to unclaimed port {port:#x}", self.id);
                }
                None
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                if !ctx.mmio.read(addr, data) {
                    debug!("vcpu{}: read of unclaimed MMIO {addr:#x}", self.id);
                    data.fill(0);
                }
                None
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                if !ctx.mmio.write(addr, data) {
                    debug!("vcpu{}: write to unclaimed MMIO {addr:#x}", self.id);
                }
                None
            }
            // With the in-kernel irqchip HLT stays in KVM; a stray exit is harmless.
            Ok(VcpuExit::Hlt) => None,
            // A triple fault: a PC resets; we stop and say so (the registers are gone: on AMD
            // KVM reinitialises the VMCB on the shutdown intercept).
            Ok(VcpuExit::Shutdown) => Some(ExitReason::TripleFault),
            Ok(VcpuExit::SystemEvent(kind, _)) => match kind {
                SYSTEM_EVENT_SHUTDOWN => Some(ExitReason::Poweroff),
                SYSTEM_EVENT_RESET => Some(ExitReason::Reset),
                SYSTEM_EVENT_CRASH => Some(ExitReason::Failed("guest crashed".into())),
                other => {
                    warn!("vcpu{}: unknown system event {other}", self.id);
                    None
                }
            },
            Ok(VcpuExit::FailEntry(reason, cpu)) => Some(ExitReason::Failed(format!(
                "vCPU {} failed to enter the guest (hardware reason {reason:#x}, cpu {cpu})",
                self.id
            ))),
            Ok(VcpuExit::InternalError) => Some(ExitReason::Failed(format!(
                "KVM internal error on vCPU {} (an instruction KVM cannot emulate)",
                self.id
            ))),
            Ok(VcpuExit::Intr) => None,
            Ok(other) => Some(ExitReason::Failed(format!(
                "vCPU {} stopped on an unexpected exit: {other:?}",
                self.id
            ))),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => None,
            Err(e) => Some(ExitReason::Failed(format!(
                "KVM_RUN on vCPU {} failed: {e}",
                self.id
            ))),
        }
    }
}

fn println_probe() {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    let ns = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128;
    eprintln!("ACCELVM_FIRST_KVM_RUN_NS={ns}");
}

/// Kicks every vCPU thread out of KVM_RUN until it ends, then joins it.
pub fn stop_vcpus(threads: Vec<JoinHandle<()>>) {
    for thread in threads {
        while !thread.is_finished() {
            // The thread may exit between the check and the kill: ESRCH is fine.
            let _ = thread.kill(vcpu_kick_signal());
            std::thread::sleep(KICK_INTERVAL);
        }
        if thread.join().is_err() {
            warn!("a vCPU thread panicked");
        }
    }
}
