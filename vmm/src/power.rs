//! ACPI power control (hardware-reduced sleep control/status and reset registers) and the
//! keyboard-controller reset pulse: every way the guest says "poweroff" or "reboot".

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::exit::{ExitReason, ExitSignal};

/// FADT SLEEP_CONTROL_REG.
pub const SLEEP_CONTROL_PORT: u16 = 0x600;
/// FADT SLEEP_STATUS_REG.
pub const SLEEP_STATUS_PORT: u16 = 0x601;
/// FADT RESET_REG.
pub const RESET_PORT: u16 = 0x602;
/// Ports covered by [`AcpiPowerDevice`].
pub const POWER_PORTS_LEN: u64 = 3;
/// FADT RESET_VALUE.
pub const RESET_VALUE: u8 = 0x1;
/// SLP_TYP the DSDT's `_S5_` announces.
pub const S5_SLEEP_TYPE: u8 = 5;
/// ACPI 6.5 §4.8.3.7: SLP_EN is bit 5 of the sleep control register, SLP_TYP bits 2-4.
const SLP_EN: u8 = 1 << 5;
const SLP_TYP_SHIFT: u8 = 2;
const SLP_TYP_MASK: u8 = 0x7;
/// Sleep status WAK_STS: reported set so a guest polling after a non-S5 sleep continues.
const WAK_STS: u8 = 1 << 7;

/// i8042 command port and its "pulse reset line" command, the kernel's `reboot=k` path.
pub const I8042_COMMAND_PORT: u16 = 0x64;
const I8042_RESET_CMD: u8 = 0xfe;

/// The three ACPI registers at `SLEEP_CONTROL_PORT`.
pub struct AcpiPowerDevice {
    exit: Arc<ExitSignal>,
}

impl AcpiPowerDevice {
    /// Reports poweroff and reboot to `exit`.
    pub fn new(exit: Arc<ExitSignal>) -> Self {
        AcpiPowerDevice { exit }
    }
}

impl BusDevice for AcpiPowerDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset == u64::from(SLEEP_STATUS_PORT - SLEEP_CONTROL_PORT) {
            data[0] = WAK_STS;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&value) = data.first() else { return };
        match offset {
            0 => {
                let slp_typ = (value >> SLP_TYP_SHIFT) & SLP_TYP_MASK;
                if value & SLP_EN != 0 && slp_typ == S5_SLEEP_TYPE {
                    self.exit.request(ExitReason::Poweroff);
                }
            }
            2 if value == RESET_VALUE => self.exit.request(ExitReason::Reset),
            _ => {}
        }
    }
}

/// Just enough of an i8042 to catch the reset command; everything else reads as "absent".
pub struct I8042Reset {
    exit: Arc<ExitSignal>,
}

impl I8042Reset {
    /// Reports the reset pulse to `exit`.
    pub fn new(exit: Arc<ExitSignal>) -> Self {
        I8042Reset { exit }
    }
}

impl BusDevice for I8042Reset {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        if data.first() == Some(&I8042_RESET_CMD) {
            self.exit.request(ExitReason::Reset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s5_and_reset_writes_stop_the_vm() {
        let exit = Arc::new(ExitSignal::new().unwrap());
        let mut dev = AcpiPowerDevice::new(exit.clone());
        dev.write(0, &[(3 << SLP_TYP_SHIFT) | SLP_EN]); // S3: ignored
        dev.write(0, &[S5_SLEEP_TYPE << SLP_TYP_SHIFT]); // no SLP_EN: ignored
        dev.write(2, &[7]); // wrong reset value
        assert!(!exit.is_requested());
        dev.write(0, &[(S5_SLEEP_TYPE << SLP_TYP_SHIFT) | SLP_EN]);
        assert_eq!(exit.reason(), Some(ExitReason::Poweroff));

        let exit = Arc::new(ExitSignal::new().unwrap());
        AcpiPowerDevice::new(exit.clone()).write(2, &[RESET_VALUE]);
        assert_eq!(exit.reason(), Some(ExitReason::Reset));

        let exit = Arc::new(ExitSignal::new().unwrap());
        let mut kbd = I8042Reset::new(exit.clone());
        kbd.write(0, &[0xaa]);
        assert!(!exit.is_requested());
        kbd.write(0, &[I8042_RESET_CMD]);
        assert_eq!(exit.reason(), Some(ExitReason::Reset));
    }
}
