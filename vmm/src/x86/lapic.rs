//! Local APIC LINT pins: LINT0 as ExtINT (the 8259 path) and LINT1 as NMI, as firmware does.

use kvm_ioctls::VcpuFd;

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

/// Errors programming the local APIC.
#[derive(Debug, thiserror::Error)]
#[error("cannot program the local APIC")]
pub struct LapicError(#[source] kvm_ioctls::Error);

fn get_reg(regs: &[std::os::raw::c_char], offset: usize) -> u32 {
    let b: [u8; 4] = std::array::from_fn(|i| regs[offset + i] as u8);
    u32::from_le_bytes(b)
}

fn set_reg(regs: &mut [std::os::raw::c_char], offset: usize, value: u32) {
    for (i, b) in value.to_le_bytes().iter().enumerate() {
        regs[offset + i] = *b as std::os::raw::c_char;
    }
}

fn with_delivery_mode(reg: u32, mode: u32) -> u32 {
    (reg & !0x700) | (mode << 8)
}

/// Configures LINT0/LINT1 of `vcpu`'s local APIC.
pub fn setup_lint(vcpu: &VcpuFd) -> Result<(), LapicError> {
    let mut state = vcpu.get_lapic().map_err(LapicError)?;
    let lvt0 = get_reg(&state.regs, APIC_LVT0);
    set_reg(
        &mut state.regs,
        APIC_LVT0,
        with_delivery_mode(lvt0, APIC_MODE_EXTINT),
    );
    let lvt1 = get_reg(&state.regs, APIC_LVT1);
    set_reg(
        &mut state.regs,
        APIC_LVT1,
        with_delivery_mode(lvt1, APIC_MODE_NMI),
    );
    vcpu.set_lapic(&state).map_err(LapicError)
}
