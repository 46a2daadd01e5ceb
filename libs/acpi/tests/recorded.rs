//! Tables recorded from QEMU 7.2 with SeaBIOS (see fixtures/record.sh).

mod common;

use common::recorded;
use rexo_acpi::{
    AddressSpace, BootArch, GenericAddress, InterruptOverride, IoApic, IsaRoute, LocalApic,
    LocalApicNmi, McfgSegment, PmTimer, Polarity, ResetRegister, SleepRegister, TriggerMode,
    find_rsdp_bios, parse,
};

/// Checks everything QEMU's SeaBIOS tables have in common across machine types.
fn check_common(machine: &str, rsdp: u64, cpus: u32) -> rexo_acpi::AcpiInfo {
    let mem = recorded(machine);
    assert_eq!(find_rsdp_bios(&mem), Some(rsdp), "{machine}");
    let info = parse(&mem, rsdp).unwrap();
    assert_eq!(
        info.warnings().count(),
        0,
        "{machine}: {:?}",
        info.warnings().collect::<Vec<_>>()
    );
    assert_eq!(info.revision, 0);
    assert_eq!(&info.oem_id, b"BOCHS ");

    let expected: Vec<LocalApic> = (0..cpus)
        .map(|i| LocalApic {
            processor_uid: i,
            apic_id: i,
            enabled: true,
            online_capable: false,
            x2apic: false,
        })
        .collect();
    assert_eq!(info.local_apics(), &expected[..]);
    assert_eq!(info.local_apic_address, 0xFEE0_0000);
    assert!(info.pcat_compat);
    assert_eq!(
        info.io_apics(),
        &[IoApic {
            id: 0,
            address: 0xFEC0_0000,
            gsi_base: 0
        }]
    );

    let iso = |irq, gsi, polarity, trigger| InterruptOverride {
        bus: 0,
        irq,
        gsi,
        polarity,
        trigger,
    };
    let level = |irq: u8| {
        iso(
            irq,
            u32::from(irq),
            Polarity::ActiveHigh,
            TriggerMode::Level,
        )
    };
    assert_eq!(
        info.interrupt_overrides(),
        &[
            iso(0, 2, Polarity::BusDefault, TriggerMode::BusDefault),
            level(5),
            level(9),
            level(10),
            level(11)
        ]
    );
    assert_eq!(info.isa_irq_to_gsi(0), 2);
    assert_eq!(info.isa_irq_to_gsi(1), 1);
    // PCI INTx lines (5, 9, 10, 11) are level-triggered, active high; the IDE
    // channels' IRQs 14 and 15 keep the ISA defaults (edge, active high).
    let route = |gsi, level| IsaRoute {
        gsi,
        active_low: false,
        level,
    };
    for irq in [5, 9, 10, 11] {
        assert_eq!(
            info.isa_route(irq),
            route(u32::from(irq), true),
            "IRQ {irq}"
        );
    }
    assert_eq!(info.isa_route(14), route(14, false));
    assert_eq!(info.isa_route(15), route(15, false));
    assert_eq!(info.isa_route(0), route(2, false));
    assert_eq!(
        info.local_apic_nmis(),
        &[LocalApicNmi {
            processor_uid: None,
            lint: 1,
            polarity: Polarity::BusDefault,
            trigger: TriggerMode::BusDefault
        }]
    );

    let hpet = info.hpet.unwrap();
    assert_eq!(hpet.base_address, 0xFED0_0000);
    assert_eq!((hpet.number, hpet.minimum_tick), (0, 0));
    assert_eq!(
        (hpet.comparators, hpet.pci_vendor_id, hpet.hardware_revision),
        (3, 0x8086, 1)
    );
    assert!(hpet.counter_64bit && hpet.legacy_replacement);

    let fadt = info.fadt.unwrap();
    assert_eq!(fadt.sci_interrupt, 9);
    assert_eq!(fadt.smi_command_port, 0xB2);
    assert_eq!(fadt.pm1a_event_block, Some(0x600));
    assert_eq!(fadt.pm1b_event_block, None);
    assert_eq!(fadt.pm1a_control_block, Some(0x604));
    assert_eq!(fadt.pm1b_control_block, None);
    assert_eq!(
        fadt.pm_timer,
        Some(PmTimer {
            port: 0x608,
            bits: 24
        })
    );
    assert_eq!(fadt.century, Some(0x32));
    // The fixed hardware's ports, for the kernel alone (QEMU's PIIX4 and ICH9 both at the
    // PM base 0x600, GPE0 at 0xAFE0 on pc, 0x620 on q35; q35's reset register is 0xCF9).
    let [
        pm1a_event,
        pm1b_event,
        pm1a_control,
        _,
        _,
        timer,
        gpe0,
        gpe1,
        smi,
        reset,
    ] = fadt.io_ports();
    assert!(matches!(reset, (0, 0) | (0xCF9, 1)), "{reset:x?}");
    assert_eq!((pm1a_event, pm1b_event), ((0x600, 4), (0, 0)));
    assert_eq!((pm1a_control, timer), ((0x604, 2), (0x608, 4)));
    assert!(matches!(gpe0, (0xAFE0, 4) | (0x620, 16)), "{gpe0:x?}");
    assert_eq!((gpe1, smi), ((0, 0), (0xB2, 1)));
    assert!(!fadt.hardware_reduced);
    assert_eq!((fadt.sleep_control, fadt.sleep_status), (None, None));
    assert_eq!(fadt.sleep_register(), Ok(SleepRegister::Pm1a(0x604)));
    assert_eq!(info.find_s5(&mem), Ok(Some((0, 0))));

    let facs = info.table(b"FACS").unwrap();
    assert_eq!((facs.address, facs.length), (0x0FFE_0000, 64));
    assert_eq!(fadt.facs, Some(0x0FFE_0000));
    let dsdt = info.table(b"DSDT").unwrap();
    assert_eq!((dsdt.address, fadt.dsdt), (0x0FFE_0040, Some(0x0FFE_0040)));
    assert_eq!(info.tables()[0].signature.0, *b"RSDT");
    assert_eq!(info.tables()[0].address, info.root_table);
    info
}

#[test]
fn q35_with_4_cpus() {
    let info = check_common("q35-smp4", 0xF59E0, 4);
    let sigs: Vec<[u8; 4]> = info.tables().iter().map(|t| t.signature.0).collect();
    assert_eq!(
        sigs,
        [
            *b"RSDT", *b"FACP", *b"FACS", *b"DSDT", *b"APIC", *b"HPET", *b"MCFG", *b"WAET"
        ]
    );
    assert_eq!(info.root_table, 0x0FFE_2353);
    let madt = info.table(b"APIC").unwrap();
    assert_eq!((madt.address, madt.length), (0x0FFE_2227, 144));
    assert_eq!(
        info.mcfg_segments(),
        &[McfgSegment {
            base: 0xB000_0000,
            segment: 0,
            start_bus: 0,
            end_bus: 255
        }]
    );
    let fadt = info.fadt.unwrap();
    assert_eq!(fadt.revision, 3);
    assert_eq!(fadt.flags, 0x84A5);
    assert_eq!(
        fadt.reset,
        Some(ResetRegister {
            register: GenericAddress {
                space: AddressSpace::SystemIo,
                bit_width: 8,
                bit_offset: 0,
                access_size: 0,
                address: 0xCF9
            },
            value: 0xF
        })
    );
    let arch = fadt.boot_arch.unwrap();
    assert_eq!(arch, BootArch(2));
    assert!(arch.has_8042() && !arch.legacy_devices() && !arch.vga_not_present());
    assert!(
        !arch.msi_not_supported() && !arch.pcie_aspm_controls() && !arch.cmos_rtc_not_present()
    );
}

#[test]
fn q35_with_8_cpus() {
    let info = check_common("q35-smp8", 0xF59E0, 8);
    assert_eq!(info.mcfg_segments().len(), 1);
    assert_eq!(info.root_table, 0x0FFE_24CC);
}

#[test]
fn pc_with_4_cpus() {
    let info = check_common("pc-smp4", 0xF59D0, 4);
    // The i440FX machine has no PCIe ECAM, and an ACPI 1.0 FADT: no reset register and no
    // IAPC_BOOT_ARCH.
    assert!(info.mcfg_segments().is_empty());
    assert!(info.table(b"MCFG").is_none());
    let fadt = info.fadt.unwrap();
    assert_eq!(fadt.revision, 1);
    assert_eq!(fadt.reset, None);
    assert_eq!(fadt.boot_arch, None);
}
