//! x86-64 vCPU state: CPUID, MSRs, local APIC, and the registers of the boot CPU.

pub mod cpuid;
pub mod lapic;
pub mod msr;
pub mod regs;
