//! ACPI tables (RSDP, XSDT, FADT, MADT, DSDT) for a hardware-reduced platform.
//!
//! The DSDT lists every virtio-mmio device as `LNRO0005` with its window and interrupt,
//! because the Debian kernel cannot take `virtio_mmio.device=`; the FADT points poweroff
//! (sleep control, S5) and reboot (reset register) at [`crate::power`]'s I/O ports.

use acpi_tables::Aml;
use acpi_tables::aml;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, MADT, ProcessorLocalApic,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryError};

use crate::memory::{GuestMem, HIMEM_START, IOAPIC_ADDR, LAPIC_ADDR};
use crate::power::{RESET_PORT, RESET_VALUE, S5_SLEEP_TYPE, SLEEP_CONTROL_PORT, SLEEP_STATUS_PORT};
use crate::serial::{COM1_GSI, COM1_PORT, COM1_PORTS_LEN};

/// The RSDP sits at the start of the BIOS read-only area, where the kernel also scans.
pub const RSDP_ADDR: u64 = 0xe_0000;
const OEM_ID: [u8; 6] = *b"ACCVM ";
const OEM_TABLE_ID: [u8; 8] = *b"ACCELVM ";
const OEM_REVISION: u32 = 1;
/// IAPC_BOOT_ARCH: no VGA (bit 2), no CMOS RTC (bit 5); no 8042 (bit 1 clear), so the
/// kernel does not probe a keyboard controller that is not there.
const IAPC_NO_VGA: u16 = 1 << 2;
const IAPC_NO_CMOS_RTC: u16 = 1 << 5;

/// A virtio-mmio device as the guest must see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioDeviceInfo {
    /// Window base address.
    pub base: u64,
    /// Window size.
    pub size: u64,
    /// Interrupt (IOAPIC pin = GSI).
    pub gsi: u32,
}

/// Errors writing the tables.
#[derive(Debug, thiserror::Error)]
pub enum AcpiError {
    /// The tables do not fit below 1 MiB.
    #[error("ACPI tables ({0} bytes) do not fit in the BIOS area")]
    TooBig(u64),
    /// A vCPU index does not fit in the 8-bit MADT APIC ID.
    #[error("{0} vCPUs do not fit in the MADT (at most 255)")]
    TooManyCpus(u32),
    /// Writing guest memory failed.
    #[error("cannot write ACPI tables into guest memory")]
    Write(#[source] GuestMemoryError),
}

fn bytes_of(table: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    table.to_aml_bytes(&mut v);
    v
}

/// The DSDT: one `LNRO0005` device per virtio-mmio window, and `_S5_` for poweroff.
pub fn dsdt(devices: &[MmioDeviceInfo]) -> Vec<u8> {
    let mut body = Vec::new();
    let s5 = aml::Package::new(vec![&S5_SLEEP_TYPE, &aml::ZERO]);
    aml::Name::new("_S5_".into(), &s5).to_aml_bytes(&mut body);
    let mut dev_bytes = Vec::new();
    // COM1 as a PNP device: on a hardware-reduced platform Linux maps no legacy ISA IRQs,
    // so the UART's interrupt must come from ACPI (8250_pnp) or the console stays silent.
    let com1_io = aml::IO::new(COM1_PORT, COM1_PORT, 1, COM1_PORTS_LEN as u8);
    let com1_irq = aml::Interrupt::new(true, true, false, false, COM1_GSI);
    let com1_crs = aml::ResourceTemplate::new(vec![&com1_io, &com1_irq]);
    let com1_hid = aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0501"));
    let com1_uid = aml::Name::new("_UID".into(), &aml::ZERO);
    let com1_crs_name = aml::Name::new("_CRS".into(), &com1_crs);
    aml::Device::new("COM1".into(), vec![&com1_hid, &com1_uid, &com1_crs_name])
        .to_aml_bytes(&mut dev_bytes);
    for (i, dev) in devices.iter().enumerate() {
        let mem = aml::Memory32Fixed::new(true, dev.base as u32, dev.size as u32);
        let irq = aml::Interrupt::new(true, true, false, false, dev.gsi);
        let crs = aml::ResourceTemplate::new(vec![&mem, &irq]);
        let hid = aml::Name::new("_HID".into(), &"LNRO0005");
        let uid_value = i as u32;
        let uid = aml::Name::new("_UID".into(), &uid_value);
        let crs_name = aml::Name::new("_CRS".into(), &crs);
        let path = format!("VR{i:02X}");
        aml::Device::new(path.as_str().into(), vec![&hid, &uid, &crs_name])
            .to_aml_bytes(&mut dev_bytes);
    }
    struct Raw(Vec<u8>);
    impl Aml for Raw {
        fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
            sink.vec(&self.0);
        }
    }
    let devs = Raw(dev_bytes);
    aml::Scope::new("\\_SB_".into(), vec![&devs]).to_aml_bytes(&mut body);

    let mut table = Sdt::new(*b"DSDT", 36, 6, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    for b in body {
        acpi_tables::AmlSink::byte(&mut table, b);
    }
    table.update_checksum();
    table.as_slice().to_vec()
}

fn fadt(dsdt_addr: u64) -> Vec<u8> {
    let io_byte = |port: u16| {
        GAS::new(
            AddressSpace::SystemIo,
            8,
            0,
            AccessSize::ByteAccess,
            port.into(),
        )
    };
    let mut b = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .dsdt_64(dsdt_addr)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::ResetRegSup)
        // No fixed power/sleep buttons.
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton);
    b.iapc_boot_arch = (IAPC_NO_VGA | IAPC_NO_CMOS_RTC).into();
    b.reset_reg = io_byte(RESET_PORT);
    b.reset_value = RESET_VALUE;
    b.sleep_control_reg = io_byte(SLEEP_CONTROL_PORT);
    b.sleep_status_reg = io_byte(SLEEP_STATUS_PORT);
    b.hypervisor_vendor_identity = u64::from_le_bytes(*b"ACCELVM\0").into();
    bytes_of(&b.finalize())
}

fn madt(cpus: u32) -> Result<Vec<u8>, AcpiError> {
    if cpus > 255 {
        return Err(AcpiError::TooManyCpus(cpus));
    }
    let mut madt = MADT::new(
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
        LocalInterruptController::Address(LAPIC_ADDR as u32),
    );
    for id in 0..cpus as u8 {
        madt.add_structure(ProcessorLocalApic::new(id, id, EnabledStatus::Enabled));
    }
    madt.add_structure(IoApic::new(0, IOAPIC_ADDR as u32, 0));
    Ok(bytes_of(&madt))
}

/// Writes all tables; returns the RSDP address.
pub fn write_tables(
    mem: &GuestMem,
    cpus: u32,
    devices: &[MmioDeviceInfo],
) -> Result<u64, AcpiError> {
    let align = |a: u64| (a + 63) & !63;
    let dsdt_addr = align(RSDP_ADDR + Rsdp::len() as u64);
    let dsdt = dsdt(devices);
    let fadt_addr = align(dsdt_addr + dsdt.len() as u64);
    let fadt = fadt(dsdt_addr);
    let madt_addr = align(fadt_addr + fadt.len() as u64);
    let madt = madt(cpus)?;
    let xsdt_addr = align(madt_addr + madt.len() as u64);
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);
    let xsdt = bytes_of(&xsdt);
    let end = xsdt_addr + xsdt.len() as u64;
    if end > HIMEM_START {
        return Err(AcpiError::TooBig(end - RSDP_ADDR));
    }
    let rsdp = bytes_of(&Rsdp::new(OEM_ID, xsdt_addr));
    for (addr, bytes) in [
        (RSDP_ADDR, &rsdp),
        (dsdt_addr, &dsdt),
        (fadt_addr, &fadt),
        (madt_addr, &madt),
        (xsdt_addr, &xsdt),
    ] {
        mem.write_slice(bytes, GuestAddress(addr))
            .map_err(AcpiError::Write)?;
    }
    Ok(RSDP_ADDR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::create_guest_memory;

    fn checksum_ok(t: &[u8]) -> bool {
        t.iter().fold(0u8, |a, b| a.wrapping_add(*b)) == 0
    }

    #[test]
    fn tables_have_valid_checksums_and_list_devices() {
        let devs = [
            MmioDeviceInfo {
                base: 0xd000_0000,
                size: 0x1000,
                gsi: 5,
            },
            MmioDeviceInfo {
                base: 0xd000_1000,
                size: 0x1000,
                gsi: 6,
            },
        ];
        let d = dsdt(&devs);
        assert!(checksum_ok(&d));
        assert_eq!(&d[..4], b"DSDT");
        assert_eq!(
            u32::from_le_bytes(d[4..8].try_into().unwrap()) as usize,
            d.len()
        );
        let count = d.windows(8).filter(|w| w == b"LNRO0005").count();
        assert_eq!(count, 2);
        assert!(d.windows(4).any(|w| w == b"_S5_"));
        assert!(d.windows(4).any(|w| w == b"COM1"));
        let f = fadt(0x1234);
        assert!(checksum_ok(&f));
        let m = madt(4).unwrap();
        assert!(checksum_ok(&m));
        // Header + 4 local APICs (8 bytes) + 1 IOAPIC (12 bytes).
        assert_eq!(m.len(), 44 + 4 * 8 + 12);
        assert!(matches!(madt(256), Err(AcpiError::TooManyCpus(256))));

        let mem = create_guest_memory(64).unwrap();
        let rsdp = write_tables(&mem, 2, &devs).unwrap();
        let mut sig = [0u8; 8];
        mem.read_slice(&mut sig, GuestAddress(rsdp)).unwrap();
        assert_eq!(&sig, b"RSD PTR ");
    }
}
