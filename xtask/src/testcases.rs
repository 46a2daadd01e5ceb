//! The table of QEMU tests: adding a test is adding one [`Case`] to [`CASES`].
//! (Host tests and kernel tests are discovered, not listed: see `harness`.)

use crate::diskimage::Attach;
use crate::netclient::Client;
use crate::qemu::Machine;

/// How a case boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boot {
    /// `-kernel` with the PVH note.
    Pvh,
    /// The GRUB ISO under the machine's BIOS (SeaBIOS).
    IsoBios,
    /// The GRUB ISO under OVMF (UEFI).
    IsoUefi,
    /// A bootable disk made by `cargo xtask disk partition ... --boot`'s code, holding
    /// httpd's site in its Rexo file system (`fsimage::bootable_site`), attached as the
    /// device model `device` and booted by SeaBIOS, or by OVMF when `uefi`.
    Disk {
        /// The device model with its properties.
        device: &'static str,
        /// OVMF instead of SeaBIOS.
        uefi: bool,
    },
}

impl Boot {
    /// Whether the case boots under OVMF.
    pub fn uefi(self) -> bool {
        matches!(self, Boot::IsoUefi | Boot::Disk { uefi: true, .. })
    }
}

/// How many vCPUs a case gets, or expects in the ready line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cores {
    /// Exactly this many.
    N(u32),
    /// The kernel's maximum (read from docs/kernel-interface.md).
    Max,
    /// One more than the kernel's maximum.
    AboveMax,
}

/// An extra QEMU argument that needs set-up by the harness (plain strings go in
/// [`Case::qemu_args`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// `-acpitable file=F` for an ACPI table (signature [`BAD_TABLE_SIG`]), whose
    /// checksum the harness then breaks in guest memory through QEMU's gdb stub
    /// (QEMU itself recomputes `-acpitable` checksums).
    BadChecksumTable,
    /// QEMU started stopped under its gdb stub, which sets every vCPU's x87 control word
    /// to [`LEFT_X87_CONTROL_WORD`] and MXCSR to [`LEFT_MXCSR`] before the firmware's
    /// first instruction, as a loader or firmware may leave them (INIT keeps them).
    FpuControlsLeftChanged,
    /// A network interface of this model (with its properties, e.g.
    /// `virtio-net-pci,disable-modern=on`) on QEMU's UDP `socket` backend, with the
    /// network peer of `netcheck` on the host end (`xtask/src/netpeer.rs`); the case
    /// fails when the peer's check fails. NICs are numbered in their order here.
    Nic(&'static str),
    /// A network interface of this model on QEMU's UDP `socket` backend sending to its
    /// own port: every frame it sends comes back to it (no peer).
    LoopNic(&'static str),
    /// A fresh zeroed raw image of [`DISK_BYTES`] attached as this device model, for a
    /// guest that writes where it likes: not checked afterwards.
    ScratchDisk(&'static str),
    /// A fresh zeroed raw image of [`DISK_BYTES`] attached as this device model, for the
    /// monitor's `extents`: afterwards the host reads its extent table with `libs/xn`
    /// and checks it holds exactly the monitor's last listing of disk 0
    /// (`xnimage::check_after_monitor`).
    XnDisk(&'static str),
    /// An image of [`DISK_BYTES`] holding an extent table made for a disk of half its
    /// size (sectors 0+64 held by the monitor) and its locator, as a disk grown after
    /// its format, attached as this device model; afterwards checked as [`Arg::XnDisk`]
    /// (`xnimage::create_grown`).
    GrownXnDisk(&'static str),
    /// A fresh zeroed raw image of [`DISK_BYTES`] in the case's scratch folder, attached
    /// so; after the run every sector must hold `diskcheck`'s pattern
    /// (`xtask/src/diskimage.rs`). Disks are numbered in their order here.
    Disk(Attach),
    /// A BMFS image (`cargo xtask disk`'s format) holding every BareMetal test program
    /// of `target/baremetal/` as `NAME.app` (`storage.bin` is `storage.app`), attached
    /// as this device model; its contents are not checked afterwards.
    BmfsDisk(&'static str),
    /// A Rexo file system image made by `cargo xtask fs`'s code
    /// (`fsimage::image_for_monitor`), attached as this device model; afterwards the
    /// host mounts it and checks what the case's input did (`check_after_monitor`).
    RexoFsDisk(&'static str),
    /// A partitioned image (`cargo xtask disk partition`'s code,
    /// `fsimage::partitioned_for_monitor`): BMFS with the notes, the Rexo file system
    /// with a text file; afterwards the host reads back what the case's input wrote.
    PartitionedDisk(&'static str),
    /// A BMFS image holding `cargo xtask disk`'s site files (`disk::site_files`),
    /// attached as this device model, for httpd to serve.
    SiteDisk(&'static str),
    /// The same site files on a Rexo file system image, with a nested page
    /// (`fsimage::image_of_site`).
    RexoFsSiteDisk(&'static str),
    /// That image with its bitmap block damaged (`fsimage::damaged_image_of_site`): the
    /// check refuses it, the files all read.
    DamagedRexoFsSiteDisk(&'static str),
    /// A `qemu-xhci` controller with a `usb-kbd` and QEMU's monitor on a socket: once
    /// the serial shows the keyboard attached, these keys are typed on it (`sendkey`).
    UsbKeyboard(&'static [&'static str]),
    /// A `qemu-xhci` controller with nothing connected and QEMU's monitor on a socket:
    /// once the serial shows the controller bound empty
    /// ([`usbkeys::EMPTY`](crate::usbkeys::EMPTY)), a `usb-kbd` is plugged in
    /// (`device_add`), and once the serial shows it attached these keys are typed on it.
    UsbKeyboardPlugged(&'static [&'static str]),
    /// QEMU's human monitor on a socket ([`hmp`](crate::hmp)): once the serial shows a
    /// line containing `after`, `command` is run there (e.g. `mce`, injecting a machine
    /// check); the case fails when it cannot be sent or QEMU shows no prompt after it.
    Monitor {
        /// The serial text to wait for.
        after: &'static str,
        /// The monitor command, one line without its newline.
        command: &'static str,
    },
    /// SIGKILL QEMU as soon as the serial shows `diskcheck: disk K: flushed` for every
    /// disk, before anything else can write the images: what the images then hold is
    /// what the flush made durable.
    KillAfterFlush,
    /// A network interface of this model (with its properties, e.g.
    /// `virtio-net-pci,mq=on,vectors=6`) on a tap device with
    /// [`queuepeer::QUEUES`](crate::queuepeer::QUEUES) queues in a network namespace
    /// made for the case, QEMU running inside it, with the peer of `netqueues` at the
    /// host end (`xtask/src/queuepeer.rs`); the case fails when the peer's check fails.
    /// Needs root (the case fails saying so otherwise).
    TapQueues(&'static str),
    /// A network interface of this model on a single-queue tap device in a network
    /// namespace made for the case, QEMU running inside it; the case's
    /// [`Case::client`] runs inside the namespace too and reaches the guest at
    /// [`tapnet::GUEST`](crate::tapnet::GUEST) (the guest needs `ip=` on its command
    /// line). A tap offers virtio-net its offloads (checksum, TSO). Needs root (the case
    /// fails saying so otherwise).
    Tap(&'static str),
    /// The same on a multi-queue tap device with two queues (the model needs `mq=on`
    /// to offer them as two queue pairs), the client in the namespace as for [`Arg::Tap`].
    TapPairs(&'static str),
    /// The same as [`Arg::Tap`], with the client in a second namespace behind the tap's
    /// (at [`tapnet::FAR`](crate::tapnet::FAR)), which routes to it over a path that
    /// takes 1,400-byte datagrams ([`TapNet::with_narrow_path`](crate::tapnet::TapNet::with_narrow_path)):
    /// the guest's full-sized datagrams to the client are refused there, with an ICMP
    /// "fragmentation needed" naming 1,400.
    TapNarrowPath(&'static str),
    /// A network interface of this model on QEMU's UDP `socket` backend with the SYN
    /// flood peer on the host end (`xtask/src/synflood.rs`): the guest must be
    /// `httpd-test` at `ip=10.0.2.15/24`; the case fails when the peer's check fails.
    SynFlood(&'static str),
    /// A network interface of this model on QEMU user networking (its DHCP server,
    /// 10.0.2.15 for the guest), with free host ports on 127.0.0.1 forwarded to the
    /// guest's `tcp` and `udp` ports; the case's [`Case::client`] gets them
    /// (`xtask/src/netclient.rs`). Interfaces are numbered in their order here.
    UserNet {
        /// The device, e.g. `virtio-net-pci`.
        model: &'static str,
        /// Guest TCP ports to forward.
        tcp: &'static [u16],
        /// Guest UDP ports to forward.
        udp: &'static [u16],
    },
}

impl Arg {
    /// Whether this is a network interface on a tap device in a network namespace made
    /// for the case (which needs root and iproute2's `ip`).
    pub fn on_tap(&self) -> bool {
        matches!(
            self,
            Arg::Tap(_) | Arg::TapPairs(_) | Arg::TapQueues(_) | Arg::TapNarrowPath(_)
        )
    }
}

/// The size of each disk image of [`Arg::Disk`]: the guest writes and reads all of it.
pub const DISK_BYTES: u64 = 8 << 20;

/// The signature of the deliberately broken ACPI table.
pub const BAD_TABLE_SIG: &str = "RXBD";

/// The x87 control word [`Arg::FpuControlsLeftChanged`] leaves: reset's, every x87
/// exception unmasked.
pub const LEFT_X87_CONTROL_WORD: u16 = 0x0040;
/// The MXCSR [`Arg::FpuControlsLeftChanged`] leaves: every SIMD exception masked but
/// rounding toward zero, flushing to zero and denormals as zero.
pub const LEFT_MXCSR: u32 = 0xFFC0;

/// Something the serial output must show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The ready line, with this core count and `mem=` within `[min, max]` MiB.
    Ready {
        /// Expected `cores=`.
        cores: Cores,
        /// Lowest plausible `mem=`.
        mem_min: u64,
        /// Highest plausible `mem=`.
        mem_max: u64,
    },
    /// A line containing this text (case-sensitive).
    Has(&'static str),
    /// At least this many lines containing this text (case-sensitive).
    Count(&'static str, usize),
    /// No line containing this text (case-sensitive), for the whole run.
    Lacks(&'static str),
    /// A warning log line (level `WARN`) containing this text (case-insensitive;
    /// empty: any warning; `{max}` and `{max+1}` stand for the kernel's maximum core
    /// count and one more).
    Warn(&'static str),
    /// After a `backtrace:` line, a frame line naming a Rust function (`::`).
    SymbolizedFrame,
    /// Kernel log lines whose whole messages (after `[T us cN] LEVEL `) are these, in this
    /// order (other lines between); a `*` in one stands for any text.
    Logged(&'static [&'static str]),
    /// A line of QEMU's own output (its stderr: `-trace` events) containing this text,
    /// looked for once the run ended (so only in cases that run to an exit or are killed
    /// after their flush, [`Arg::KillAfterFlush`]).
    QemuSaid(&'static str),
    /// No line of QEMU's own output containing this text, for the whole run.
    QemuNeverSaid(&'static str),
}

/// One QEMU test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    /// Full name, `group::name`.
    pub name: &'static str,
    /// Boot path.
    pub boot: Boot,
    /// Machine type.
    pub machine: Machine,
    /// Extra `-machine` properties.
    pub machine_props: &'static [&'static str],
    /// vCPUs.
    pub cores: Cores,
    /// Memory in MiB.
    pub mem_mib: u64,
    /// Kernel command line.
    pub append: &'static str,
    /// Extra QEMU arguments, passed as they are.
    pub qemu_args: &'static [&'static str],
    /// Extra QEMU arguments that need set-up.
    pub qemu: &'static [Arg],
    /// Seconds before the run counts as hung (TCG).
    pub timeout_s: u64,
    /// The QEMU exit status required; `None`: stop QEMU once every check passed and the
    /// [`Case::client`], if any, finished.
    pub exit: Option<i32>,
    /// Typed on the serial console (for interactive apps such as the monitor).
    pub input: &'static str,
    /// What the output must show.
    pub checks: &'static [Check],
    /// A host-side check run against the guest's services (through [`Arg::UserNet`]'s
    /// forwards) once the serial shows its start line; its failure fails the case.
    pub client: Option<Client>,
}

/// A base case: PVH on microvm, 2 cores, 256 MiB, `app=hello`, 20 s, stop at ready.
const BASE: Case = Case {
    name: "",
    boot: Boot::Pvh,
    machine: Machine::Microvm,
    machine_props: &[],
    cores: Cores::N(2),
    mem_mib: 256,
    append: "app=hello",
    qemu_args: &[],
    qemu: &[],
    timeout_s: 20,
    exit: None,
    input: "",
    checks: &[],
    client: None,
};

/// The ready line for `cores` cores and a machine of `mib` MiB.
const fn ready(cores: u32, mib: u64) -> Check {
    Check::Ready {
        cores: Cores::N(cores),
        mem_min: mib - 16,
        mem_max: mib,
    }
}

/// A ready line with any memory size.
const fn ready_cores(cores: Cores) -> Check {
    Check::Ready {
        cores,
        mem_min: 0,
        mem_max: u64::MAX,
    }
}

/// What every crash report shows.
const CRASH_EXIT: Option<i32> = Some(35);

/// QEMU's trace of a shutdown the guest asked for (ACPI's sleep request), on its stderr.
/// A reset under `-no-reboot` also ends QEMU with status 0 but does not pass through it.
const SHUTDOWN_TRACE: &[&str] = &["-trace", "qemu_system_shutdown_request"];
/// The traced line's cause: `SHUTDOWN_CAUSE_GUEST_SHUTDOWN` (6 in QEMU's `ShutdownCause`).
const GUEST_SHUTDOWN: Check = Check::QemuSaid("qemu_system_shutdown_request reason=6");

/// What a `netqueues` case checks after its driver's line `pairs` (two queue pairs) and
/// `netqueues`' first line `nic`: queue 2 refused both ways, 300 frames out on each
/// queue, the host's 512 datagrams in on both (netqueues fails if a receive queue gets
/// none), and the core slept waiting for 20 more on receive queue 1, woken by that
/// queue's MSI-X message (netqueues fails if it never slept or the naps ran their full
/// length).
const fn queue_checks(pairs: &'static str, nic: &'static str) -> [Check; 8] {
    [
        Check::Has(pairs),
        Check::Has(nic),
        Check::Count("on queue 2 refused: the device has no queue 2", 2),
        Check::Has("sent 300 frames on each of 2 transmit queues"),
        Check::Has("received 512 datagrams of 16 flows byte-exact: queue 0 "),
        Check::Has("times waiting for 20 datagrams on receive queue 1"),
        Check::Has("netqueues: done, 1 interface(s)"),
        Check::Lacks("FAILED"),
    ]
}

/// `net::virtio-mq` and its legacy twin: [`queue_checks`] on virtio-net.
const VIRTIO_MQ_CHECKS: [Check; 8] = queue_checks(
    "2 queue pair(s) (the device offers 2)",
    "netqueues: nic 0: virtio-net at",
);

/// `net::e1000e-mq`: [`queue_checks`] on the 82574 (the driver is `e1000`).
const E1000E_MQ_CHECKS: [Check; 8] = queue_checks(
    "2 queue pair(s) (RSS over IP addresses and TCP ports, MSI-X wake-ups)",
    "netqueues: nic 0: e1000 at",
);

/// `net::netdemo`: DHCP, ping, TCP and UDP echo over the TCP/IP library OS on
/// virtio-net (QEMU user networking), with the echo client of `xtask/src/echoclient.rs`.
const NETDEMO: Case = Case {
    name: "net::netdemo",
    machine: Machine::Q35,
    append: "app=netdemo",
    qemu: &[Arg::UserNet {
        model: "virtio-net-pci",
        tcp: &[crate::echoclient::PORT],
        udp: &[crate::echoclient::PORT],
    }],
    client: Some(crate::echoclient::NETDEMO),
    timeout_s: 240,
    exit: Some(0),
    checks: &[
        Check::Has("by DHCP in"),
        Check::Has("bytes from 10.0.2.2"),
        // Its closing counters name the leases lost and refused (none: QEMU's lease lasts
        // a day, and its address and router are good).
        Check::Has(", 0 DHCP leases lost, 0 refused"),
        Check::Has("netdemo: done"),
        Check::Lacks("FAILED"),
    ],
    ..BASE
};

/// The checks of a [`REXOFS_MONITOR`] case, with `extra` ones after them.
macro_rules! rexofs_monitor_checks {
    ($($extra:expr),*) => {
        &[
            Check::Has("docs/"),
            Check::Has("307200 bytes"),
            Check::Has("hello from the host tool"),
            Check::Has("line two^[c"),
            Check::Has("/new made"),
            Check::Has("/docs/hello.txt copied to /new/copy.txt (36 bytes)"),
            Check::Has("/new/written.txt: 16 bytes written"),
            Check::Has("/big.bin removed"),
            Check::Has("fs rm: "),
            Check::Has("fs cat: "),
            Check::Has("2 entries in /new"),
            Check::Has("blocks used"),
            Check::Has("the Rexo file system is consistent: 3 directories, 3 files"),
            Check::Lacks("panicked"),
            $($extra,)*
        ]
    };
}

/// Every QEMU test.
pub const CASES: &[Case] = &[
    // Boot matrix: machines and boot paths.
    Case {
        name: "boot::pvh-microvm",
        checks: &[ready(2, 256)],
        ..BASE
    },
    Case {
        name: "boot::pvh-q35",
        machine: Machine::Q35,
        checks: &[ready(2, 256)],
        ..BASE
    },
    Case {
        name: "boot::pvh-pc",
        machine: Machine::Pc,
        checks: &[ready(2, 256)],
        ..BASE
    },
    Case {
        name: "boot::iso-seabios-q35",
        boot: Boot::IsoBios,
        machine: Machine::Q35,
        timeout_s: 40,
        checks: &[
            Check::Has("(Multiboot2)"),
            Check::Has("console: framebuffer"),
            Check::Has("text, WriteCombining)"),
            ready(2, 256),
        ],
        ..BASE
    },
    Case {
        name: "boot::iso-ovmf-q35",
        boot: Boot::IsoUefi,
        machine: Machine::Q35,
        timeout_s: 90,
        checks: &[
            Check::Has("(Multiboot2)"),
            Check::Has("console: framebuffer"),
            Check::Has("text, WriteCombining)"),
            ready(2, 256),
        ],
        ..BASE
    },
    Case {
        name: "boot::clock-without-pit",
        machine: Machine::Q35,
        machine_props: &["pit=off"],
        checks: &[Check::Has("(Hpet)"), ready(2, 256)],
        ..BASE
    },
    Case {
        name: "boot::clock-without-hpet",
        machine: Machine::Q35,
        machine_props: &["hpet=off"],
        checks: &[Check::Has("(Pit)"), ready(2, 256)],
        ..BASE
    },
    Case {
        name: "boot::module",
        qemu_args: &["-initrd", "Cargo.toml"],
        checks: &[Check::Has("module 0: ["), ready(2, 256)],
        ..BASE
    },
    // The kernel tests on the PC machines too (IO-APIC with ISA overrides, HPET, SeaBIOS tables).
    Case {
        name: "boot::kernel-tests-q35",
        machine: Machine::Q35,
        append: "test",
        timeout_s: 60,
        exit: Some(33),
        checks: &[Check::Has("rexo: tests done")],
        ..BASE
    },
    Case {
        name: "boot::kernel-tests-pc-1-core",
        machine: Machine::Pc,
        cores: Cores::N(1),
        append: "test",
        timeout_s: 60,
        exit: Some(33),
        checks: &[Check::Has("rexo: tests done")],
        ..BASE
    },
    // Leaving the machine: the app returns and ACPI powers off (QEMU exits 0, and traces
    // the guest's shutdown request, which a reset under -no-reboot does not; a failed
    // power-off exits 33); reboot through the ACPI reset register, else the keyboard
    // controller, else a triple fault (-no-reboot turns any of them into exit 0, so the
    // reboot cases show that one worked, not which: docs/testing.md).
    Case {
        name: "power::off-microvm",
        qemu_args: SHUTDOWN_TRACE,
        exit: Some(0),
        checks: &[
            Check::Has("all 2 cores answered"),
            Check::Has("powering off"),
            GUEST_SHUTDOWN,
        ],
        ..BASE
    },
    Case {
        name: "power::off-q35",
        machine: Machine::Q35,
        qemu_args: SHUTDOWN_TRACE,
        exit: Some(0),
        checks: &[
            Check::Has("all 2 cores answered"),
            Check::Has("powering off"),
            GUEST_SHUTDOWN,
        ],
        ..BASE
    },
    Case {
        name: "power::off-pc",
        machine: Machine::Pc,
        qemu_args: SHUTDOWN_TRACE,
        exit: Some(0),
        checks: &[
            Check::Has("all 2 cores answered"),
            Check::Has("powering off"),
            GUEST_SHUTDOWN,
        ],
        ..BASE
    },
    Case {
        name: "power::reboot-q35",
        machine: Machine::Q35,
        append: "app=reboot",
        exit: Some(0),
        checks: &[Check::Has("reboot: resetting")],
        ..BASE
    },
    Case {
        name: "power::reboot-pc",
        machine: Machine::Pc,
        append: "app=reboot",
        exit: Some(0),
        checks: &[Check::Has("reboot: resetting")],
        ..BASE
    },
    // A reboot tells the disks as a power-off does: the monitor runs diskcheck over two
    // disks, then `reboot`; each disk's line names the reboot, and the images hold every
    // sector diskcheck wrote (throttled, as in drivers::two-disks).
    Case {
        name: "power::reboot-disks",
        append: "app=monitor",
        qemu: &[
            Arg::Disk(Attach::Throttled("nvme,serial=rexo0")),
            Arg::Disk(Attach::Throttled("virtio-blk-pci")),
        ],
        input: "run diskcheck\rreboot\r",
        timeout_s: 180,
        checks: &[
            Check::Count(DISK_READ_BACK, 2),
            Check::Has("diskcheck: done, 2 disk(s)"),
            Check::Has(" disk 0: told of the reboot"),
            Check::Has(" disk 1: told of the reboot"),
            Check::Lacks("not told of the"),
            Check::Lacks("FAILED"),
        ],
        ..DISK
    },
    // A reboot flushes an ATA disk and leaves it spinning, as Linux does (STANDBY
    // IMMEDIATE is for the power-off): QEMU's trace of the ATA commands the disk ran
    // (AHCI's go through the same path) shows FLUSH CACHE EXT (0xea) and no 0xe0.
    Case {
        name: "power::reboot-flushes-ahci",
        append: "app=monitor",
        qemu_args: &["-nic", "none", "-trace", "ide_exec_cmd"],
        qemu: &[Arg::ScratchDisk("ide-hd,bus=ide.0")],
        input: "devices\rreboot\r",
        checks: REBOOT_FLUSHES,
        ..DISK
    },
    Case {
        name: "power::reboot-flushes-ata-pc",
        machine: Machine::Pc,
        append: "app=monitor",
        qemu_args: &["-nic", "none", "-trace", "ide_exec_cmd"],
        qemu: &[Arg::ScratchDisk("ide-hd,bus=ide.0")],
        input: "devices\rreboot\r",
        checks: REBOOT_FLUSHES,
        ..DISK
    },
    // Core counts (microvm).
    Case {
        name: "boot::cores-1",
        cores: Cores::N(1),
        checks: &[ready(1, 256)],
        ..BASE
    },
    Case {
        name: "boot::cores-2",
        cores: Cores::N(2),
        checks: &[ready(2, 256)],
        ..BASE
    },
    Case {
        name: "boot::cores-4",
        cores: Cores::N(4),
        checks: &[ready(4, 256)],
        ..BASE
    },
    Case {
        name: "boot::cores-8",
        cores: Cores::N(8),
        checks: &[ready(8, 256)],
        ..BASE
    },
    // The other cores' kernel stacks come before their interrupt stacks in memory, so that
    // with 8 cores the boot writes no 2 MiB region of guest RAM past 6 MiB (docs/boot.md).
    Case {
        name: "boot::stacks-first-8",
        cores: Cores::N(8),
        append: "test=tests::the_other_cores_kernel_stacks_lie_below_their_interrupt_stacks",
        exit: Some(33),
        checks: &[
            Check::Has(
                "test tests::the_other_cores_kernel_stacks_lie_below_their_interrupt_stacks ... ok",
            ),
            Check::Has("tests: 8 cores' kernel stacks end by"),
        ],
        ..BASE
    },
    // Memory sizes (microvm).
    Case {
        name: "boot::mem-64m",
        mem_mib: 64,
        checks: &[ready(2, 64)],
        ..BASE
    },
    Case {
        name: "boot::mem-1g",
        mem_mib: 1024,
        checks: &[ready(2, 1024)],
        ..BASE
    },
    Case {
        name: "boot::mem-6g",
        mem_mib: 6144,
        // Holes below 4 GiB (PCI, firmware) take some of it.
        checks: &[Check::Ready {
            cores: Cores::N(2),
            mem_min: 5120,
            mem_max: 6143,
        }],
        ..BASE
    },
    // A CPU older than Intel's family 6 (its vendor and family set in its CPUID): the
    // other cores' INIT is followed by the MP initialization sequence's 10 ms wait
    // before their start-up IPI (every other case's CPU, AMD family 0xF, waits none).
    Case {
        name: "boot::cores-wait-after-init-on-old-cpus",
        qemu_args: &["-cpu", "max,vendor=GenuineIntel,family=5,model=4"],
        append: "log=debug",
        checks: &[
            Check::Has("smp: waiting 10 ms between INIT and the start-up IPI"),
            ready(2, 256),
        ],
        ..BASE
    },
    // Every core's x87 control word and MXCSR as a loader or firmware may leave them
    // (set through QEMU's gdb stub before the firmware runs; INIT keeps them): each core
    // loads its own (MXCSR 0xffc0 on every core without it).
    Case {
        name: "boot::fpu-controls-left-changed-q35",
        machine: Machine::Q35,
        cores: Cores::N(4),
        qemu: &[Arg::FpuControlsLeftChanged],
        append: "test=tests::every_core_runs_with_caches_on_and_its_x87_unit_initialised",
        timeout_s: 60,
        exit: Some(33),
        checks: &[
            ready_cores(Cores::N(4)),
            Check::Has(
                "test tests::every_core_runs_with_caches_on_and_its_x87_unit_initialised ... ok",
            ),
            Check::Lacks("FAILED"),
        ],
        ..BASE
    },
    // A CPU of 48 physical address bits: device windows still end at the identity map's
    // 2^47 (past it they would land in the upper half).
    Case {
        name: "boot::device-window-past-the-identity-map",
        qemu_args: &["-cpu", "max,phys-bits=48"],
        append: "test=tests::a_device_window_past_the_identity_map_is_refused",
        timeout_s: 60,
        exit: Some(33),
        checks: &[
            Check::Has("48 physical address bits"),
            Check::Has("test tests::a_device_window_past_the_identity_map_is_refused ... ok"),
        ],
        ..BASE
    },
    // A 2 MiB page holding RAM and device space (q35's first: the VGA window and the BIOS
    // beside low RAM) is mapped in 4 KiB pages, its device space uncached.
    Case {
        name: "boot::device-space-beside-ram-q35",
        machine: Machine::Q35,
        append: "test=tests::device_space_in_a_2_mib_page_with_ram_is_uncached",
        timeout_s: 60,
        exit: Some(33),
        checks: &[
            Check::Has("pages without RAM in the 2 MiB at 0x0 are uncached"),
            Check::Has("test tests::device_space_in_a_2_mib_page_with_ram_is_uncached ... ok"),
        ],
        ..BASE
    },
    // GRUB's framebuffer under SeaBIOS is mapped write-combining, and every core's IA32_PAT
    // holds the kernel's table (TCG keeps the MSR and the entries, though it ignores types).
    Case {
        name: "boot::framebuffer-write-combining-iso",
        boot: Boot::IsoBios,
        machine: Machine::Q35,
        append: "test=tests::every_core_has_the_kernels_pat_and_the_framebuffer_is_write_combining",
        timeout_s: 60,
        exit: Some(33),
        checks: &[
            Check::Has("IA32_PAT 0x7040600070106 on 2 cores; the framebuffer's"),
            Check::Has("pages at 0x"),
            Check::Has("are write-combining"),
            Check::Has(
                "test tests::every_core_has_the_kernels_pat_and_the_framebuffer_is_write_combining ... ok",
            ),
        ],
        ..BASE
    },
    // The ports of ACPI's fixed hardware (q35's PM1a control block at 0x604 among them) go
    // to no driver.
    Case {
        name: "boot::acpi-ports-are-the-kernels-q35",
        machine: Machine::Q35,
        append: "test=tests::acpi_fixed_hardware_ports_go_to_no_driver",
        timeout_s: 60,
        exit: Some(33),
        checks: &[
            Check::Has("the PM1a control block at 0x604 is the kernel's"),
            Check::Has("test tests::acpi_fixed_hardware_ports_go_to_no_driver ... ok"),
        ],
        ..BASE
    },
    // The identity map above 4 GiB (write-back, writable) and of device memory (uncached).
    Case {
        name: "boot::identity-map-6g",
        mem_mib: 6144,
        append: "test=tests::all_ram_is_identity_mapped",
        timeout_s: 60,
        exit: Some(33),
        checks: &[
            Check::Has("test tests::all_ram_is_identity_mapped ... ok"),
            Check::Has("above 4 GiB, is mapped and writable"),
        ],
        ..BASE
    },
    // Crash reports: exit 35, the vector or panic message, registers, a symbolized backtrace.
    Case {
        name: "crash::pagefault",
        append: "app=hello crash=pagefault",
        exit: CRASH_EXIT,
        checks: &[
            Check::Has("!!! rexo: crash on core 0: page fault (vector 14, error code 0x0)"),
            Check::Has("!!! rexo: read of an unmapped page at 0x8 (null pointer)"),
            Check::Lacks("instead of faulting"),
            Check::Has("rip="),
            Check::Has("rsp="),
            Check::Has("cr2="),
            Check::Has("backtrace:"),
            Check::SymbolizedFrame,
            Check::Has("!!! rexo: halted"),
        ],
        ..BASE
    },
    Case {
        name: "crash::divide",
        append: "app=hello crash=divide",
        exit: CRASH_EXIT,
        checks: &[
            Check::Has("!!! rexo: crash on core 0: divide error (vector 0, error code 0x0)"),
            Check::Lacks("did not raise a divide error"),
            Check::Has("rip="),
            Check::Has("rsp="),
            Check::Has("cr2="),
            Check::Has("backtrace:"),
            Check::SymbolizedFrame,
            Check::Has("!!! rexo: halted"),
        ],
        ..BASE
    },
    Case {
        name: "crash::panic",
        append: "app=hello crash=panic",
        exit: CRASH_EXIT,
        checks: &[
            Check::Has("!!! rexo: panic on core 0 at "),
            Check::Has(".rs:"),
            Check::Has(": crash test: the kernel panics on request"),
            Check::Has("registers as the panic handler found them"),
            Check::Has("rip="),
            Check::Has("rsp="),
            Check::Has("rflags="),
            Check::Has("rax="),
            Check::Has("r15="),
            Check::Has("cs=0x8 ss=0x10"),
            Check::Has("backtrace:"),
            Check::SymbolizedFrame,
            Check::Has("!!! rexo: halted"),
        ],
        ..BASE
    },
    // A panic whose message panics again as the report formats it: the crashing core
    // crashed inside its own report, which ends at once (no backtrace) with exit 35.
    Case {
        name: "crash::nested-panic",
        append: "app=hello crash=nested-panic",
        exit: CRASH_EXIT,
        checks: &[
            Check::Has("!!! rexo: panic on core 0 at "),
            Check::Has("!!! rexo: crash inside the crash report on core 0"),
            Check::Lacks("backtrace:"),
        ],
        ..BASE
    },
    Case {
        name: "crash::stack-overflow",
        append: "app=hello crash=stackoverflow",
        exit: CRASH_EXIT,
        checks: &[
            Check::Has("!!! rexo: crash on core 0: double fault (vector 8, error code 0x0)"),
            Check::Has("is a stack guard page: kernel stack overflow"),
            Check::Lacks("without reaching the stack guard page"),
            Check::Has("rip="),
            Check::SymbolizedFrame,
            Check::Has("!!! rexo: halted"),
        ],
        ..BASE
    },
    // A machine check, injected into core 0 through QEMU's monitor once the boot is done
    // (uncorrected: valid, UC, EN, PCC), reaches the kernel's vector 18 handler: with
    // CR4.MCE clear the CPU shuts down and QEMU resets the machine with no report.
    Case {
        name: "crash::machine-check",
        append: "app=monitor",
        qemu: &[Arg::Monitor {
            after: "rexo: ready",
            command: "mce 0 1 0xb200000000000000 0 0 0",
        }],
        exit: CRASH_EXIT,
        checks: &[
            Check::Has("!!! rexo: crash on core 0: machine check (vector 18, error code 0x0)"),
            Check::Has("rip="),
            Check::Has("backtrace:"),
            Check::Has("!!! rexo: halted"),
        ],
        ..BASE
    },
    Case {
        name: "crash::panic-on-another-core",
        cores: Cores::N(4),
        append: "app=hello crash=panic-other-core",
        exit: CRASH_EXIT,
        checks: &[
            Check::Has("!!! rexo: panic on core 3"),
            Check::Has("backtrace:"),
            Check::SymbolizedFrame,
            Check::Has("!!! rexo: halted"),
        ],
        ..BASE
    },
    // The monitor, driven through the serial console: every command, a typo, line editing
    // (a Backspace and the arrow keys recalling a line), an app `run` refuses (httpd never
    // ends), then power-off. With no network interface, `net` still shows its listing
    // before why it configured none.
    Case {
        name: "monitor::commands",
        cores: Cores::N(4),
        append: "app=monitor",
        input: "help\rcores\rmem\rcaps\rapps\rtime\rfrob\rmemx\x7f\rrun hello\r\x1b[A\x1b[A\rrun httpd\rnet\rping 10.0.2.2\rpoweroff\r",
        exit: Some(0),
        timeout_s: 30,
        checks: &[
            Check::Has("rexo> "),
            Check::Has("list the commands"),
            Check::Has("4 cores; one task on each answered (4 of 4)"),
            // `mem` answers three times: typed, typed as `memx` and a Backspace, and
            // recalled by two up-arrows (the kernel's boot line says "MiB usable" too,
            // never "MiB free").
            Check::Count(" MiB free", 3),
            Check::Lacks("unknown command 'memx"),
            // The monitor holds a capability over each of its 4 cores.
            Check::Has(": core 3..4 rights"),
            // `apps` pads each name to the longest (httpd-test-smoltcp's 18 characters).
            Check::Has("  hello              greets from every core"),
            Check::Has("  netqueues          frames out on every transmit queue"),
            Check::Has("s since boot"),
            Check::Has(" UTC (the CMOS clock)"),
            Check::Has("unknown command 'frob'"),
            Check::Has("hello: all 4 cores answered"),
            Check::Has("hello: done"),
            // httpd never ends: `run` refuses it, and the monitor goes on.
            Check::Has("run: httpd serves until the machine stops"),
            Check::Lacks("httpd: serving"),
            Check::Has("filters: none installed"),
            Check::Has("net: no network interface"),
            Check::Has("ping: no network interface"),
        ],
        ..BASE
    },
    // The kernel word `ip=` instead of DHCP: the monitor's `net` shows the fixed address
    // and router, and the router answers a ping from it.
    Case {
        name: "monitor::net-static-ip",
        machine: Machine::Q35,
        append: "app=monitor ip=10.0.2.16/24,10.0.2.2",
        qemu: &[Arg::UserNet {
            model: "virtio-net-pci",
            tcp: &[],
            udp: &[],
        }],
        input: "net\rping 10.0.2.2 1\rpoweroff\r",
        exit: Some(0),
        timeout_s: 60,
        checks: &[
            Check::Has("nic 0: address 10.0.2.16/24, router 10.0.2.2, fixed by ip= in"),
            Check::Has("PING 10.0.2.2 from 10.0.2.16 (nic 0)"),
            Check::Has("10.0.2.2: 1 sent, 1 answered, 0% lost"),
        ],
        ..BASE
    },
    // The DNS client: `ip=` names 10.0.2.2 (QEMU's host alias) as the DNS server, where
    // the case's own server answers from a table; names with one and two addresses, a
    // name it does not know, and a ping by name.
    Case {
        name: "monitor::dns",
        machine: Machine::Q35,
        append: "app=monitor ip=10.0.2.15/24,10.0.2.2,10.0.2.2",
        qemu: &[Arg::UserNet {
            model: "virtio-net-pci",
            tcp: &[],
            udp: &[],
        }],
        client: Some(crate::netclient::DNS_SERVER),
        input: "resolve rexo.test\rresolve Two.Rexo.Test\rresolve missing.rexo.test\rping rexo.test 1\rresolve bad_name\rpoweroff\r",
        exit: Some(0),
        timeout_s: 90,
        checks: &[
            Check::Has("rexo.test: 10.0.2.2 ("),
            Check::Has("Two.Rexo.Test: 10.0.2.7, 10.0.2.8 ("),
            Check::Has("resolve: missing.rexo.test: the DNS server has no IPv4 address for it"),
            Check::Has("rexo.test is 10.0.2.2"),
            Check::Has("10.0.2.2: 1 sent, 1 answered, 0% lost"),
            Check::Has("resolve: 'bad_name' is not a name"),
        ],
        ..BASE
    },
    // The monitor's `net` and `ping` on QEMU user networking: the interface configured by
    // DHCP, echo requests answered by the router, one to an address nobody has lost, and
    // a last `net` that finds the interface free again (each command gives it back).
    Case {
        name: "monitor::net-ping",
        machine: Machine::Q35,
        append: "app=monitor",
        qemu: &[Arg::UserNet {
            model: "virtio-net-pci",
            tcp: &[],
            udp: &[],
        }],
        input: "net\rping 10.0.2.2 3\rping 10.0.2.99 1\rping exa_mple.org\rnet\rpoweroff\r",
        exit: Some(0),
        timeout_s: 60,
        checks: &[
            Check::Has("nic 0 virtio-net at 00:"),
            Check::Has(", free"),
            Check::Has("nic 0: address 10.0.2.15/24, router 10.0.2.2, by DHCP in"),
            Check::Has("nic 0: received "),
            Check::Has("filters: none installed"),
            Check::Has("PING 10.0.2.2 from 10.0.2.15 (nic 0)"),
            Check::Has("bytes from 10.0.2.2: seq 2, time"),
            Check::Has("10.0.2.2: 3 sent, 3 answered, 0% lost; round trip min/mean/max"),
            Check::Has("seq 0: no answer within 1 s"),
            Check::Has("10.0.2.99: 1 sent, 0 answered, 100% lost"),
            Check::Has("ping: 'exa_mple.org' is not an IPv4 address or a name"),
            Check::Lacks("held by"),
        ],
        ..BASE
    },
    // Ctrl-C stops `ping` at its next look (here its first: everything is typed at
    // once), before the address nobody has could time out; what was typed after it
    // (`net`, `poweroff`) is kept for the command line.
    Case {
        name: "monitor::ping-ctrl-c",
        machine: Machine::Q35,
        append: "app=monitor",
        qemu: &[Arg::UserNet {
            model: "virtio-net-pci",
            tcp: &[],
            udp: &[],
        }],
        input: "ping 10.0.2.99 5\r\x03net\rpoweroff\r",
        exit: Some(0),
        timeout_s: 60,
        checks: &[
            Check::Has("PING 10.0.2.99 from 10.0.2.15 (nic 0)"),
            Check::Has("^C"),
            Check::Has("10.0.2.99: 1 sent, 0 answered, 100% lost"),
            Check::Lacks("no answer within 1 s"),
            Check::Has("nic 0: address 10.0.2.15/24"),
        ],
        ..BASE
    },
    // `cargo xtask run` without `--app`: the monitor on core 0 and httpd on core 1 share
    // one interface by packet filters (the kernel word `ip=`); httpd's status page is
    // served through the forwarded port while the monitor pings the router through the
    // same interface, binding its own filter beside httpd's, and `net` lists both.
    Case {
        name: "monitor::default-run",
        machine: Machine::Q35,
        append: crate::run::DEFAULT_CMDLINE_TWO_CORES,
        qemu: &[Arg::UserNet {
            model: "virtio-net-pci",
            tcp: &[80],
            udp: &[],
        }],
        input: "ping 10.0.2.2 2\rnet\r",
        timeout_s: 60,
        client: Some(crate::httpclient::DEFAULT_RUN),
        checks: &[
            Check::Has("manifest: 'monitor' as owner"),
            Check::Has("manifest: 'httpd' as owner"),
            Check::Has("httpd: serving http://10.0.2.15:80/"),
            Check::Has("PING 10.0.2.2 from 10.0.2.15 (nic 0)"),
            Check::Has("10.0.2.2: 2 sent, 2 answered, 0% lost"),
            Check::Has("nic 0: shared by filters at 10.0.2.15/24"),
            Check::Has("nic 0: bound httpd"),
            Check::Lacks("FAILED"),
            Check::Lacks("panicked"),
        ],
        ..BASE
    },
    // Bad input: clear messages, warnings, and never a hang.
    Case {
        name: "badinput::unknown-key",
        append: "app=hello frobnicate=1",
        exit: Some(35),
        checks: &[Check::Has(
            "rexo: error: command line: unknown key in `frobnicate=1`; known keys: ",
        )],
        ..BASE
    },
    Case {
        name: "badinput::bad-ip",
        append: "app=hello ip=10.0.2.15/33",
        exit: Some(35),
        checks: &[Check::Has(
            "bad value in `ip=10.0.2.15/33`: the prefix is not 1 to 32 bits; expected ADDRESS/PREFIX[,ROUTER[,DNS]]",
        )],
        ..BASE
    },
    Case {
        name: "badinput::unknown-app",
        append: "app=nope",
        exit: Some(35),
        // Each name is padded to the longest (httpd-test-smoltcp's 18 characters): the
        // list had 8, and longer names pushed their descriptions out of line.
        checks: &[
            Check::Has("no app called 'nope'"),
            Check::Has("  hello              greets from every core"),
            Check::Has("  netqueues          frames out on every transmit queue"),
        ],
        ..BASE
    },
    Case {
        name: "badinput::bad-value",
        append: "log=loud",
        exit: Some(35),
        checks: &[Check::Has("log=loud")],
        ..BASE
    },
    Case {
        name: "badinput::acpi-off",
        machine_props: &["acpi=off"],
        checks: &[
            Check::Warn("acpi: no RSDP found: no ACPI tables, running on the boot core only"),
            ready_cores(Cores::N(1)),
        ],
        ..BASE
    },
    Case {
        name: "badinput::acpi-bad-checksum",
        machine: Machine::Q35,
        qemu: &[Arg::BadChecksumTable],
        checks: &[Check::Warn(BAD_TABLE_SIG), ready(2, 256)],
        ..BASE
    },
    Case {
        name: "badinput::too-many-cores",
        cores: Cores::AboveMax,
        timeout_s: 90,
        checks: &[
            Check::Warn("smp: {max+1} cores present, Rexo supports {max}: using {max}"),
            ready_cores(Cores::Max),
        ],
        ..BASE
    },
    // A core that stops between its index (its arrival ticket) and its sign of life: after
    // the 2 s time-out the boot runs the cores before it and stops the one after it, so
    // that indices 0..N are N running cores (with a gap, the task for the missing index
    // never ran and the test hung). Both stopped cores then take an NMI and halt again
    // (it gave a crash report that ended the machine).
    Case {
        name: "badinput::core-stalls-while-starting",
        cores: Cores::N(4),
        append: "smp.stall=2 test=tests::every_core_",
        timeout_s: 60,
        exit: Some(33),
        checks: &[
            ready_cores(Cores::N(2)),
            Check::Has("did not start within 2000000 us"),
            Check::Has("smp: core 3 stopped, behind core 2 that never started"),
            Check::Has("test tests::every_core_runs_a_task_with_its_own_core_data ... ok"),
            Check::Has("tests: 2 cores outside the running ones took an NMI and halted"),
            Check::Lacks("FAILED"),
        ],
        ..BASE
    },
    // A crash while a core stopped starting (`smp.stall=`, halted in `ap_entry`): the crash
    // report's NMI reaches that core too, which must take it on the kernel's IDT and halt,
    // not triple-fault and reset the machine in the middle of the report.
    Case {
        name: "badinput::crash-beside-a-stalled-core",
        cores: Cores::N(3),
        append: "smp.stall=2 app=hello crash=panic",
        timeout_s: 60,
        exit: CRASH_EXIT,
        checks: &[
            ready_cores(Cores::N(2)),
            Check::Has("did not start within 2000000 us"),
            Check::Has("backtrace:"),
            Check::Has("!!! rexo: halted"),
        ],
        ..BASE
    },
    // A core the kernel did not start (one past `cores=`) sent a start-up IPI, as a stray
    // one would: it must park in the AP trampoline (its ticket has no stack), not triple-
    // fault and reset the machine, and take an NMI there (a crash report's) on the
    // trampoline's park IDT.
    Case {
        name: "badinput::stray-core",
        cores: Cores::N(3),
        append: "cores=2 test=tests::a_core_past_the_plan_parks_in_the_trampoline",
        exit: Some(33),
        checks: &[
            ready_cores(Cores::N(2)),
            Check::Has("the parked core took an NMI and stayed parked"),
            Check::Has("test tests::a_core_past_the_plan_parks_in_the_trampoline ... ok"),
            Check::Lacks("no core past the plan to start"),
            Check::Lacks("FAILED"),
        ],
        ..BASE
    },
    // An app whose `Display` code logs: its text is formatted before the console lock is
    // taken, so the inner line comes whole before the outer one (formatted under the lock,
    // it would land inside the outer line), and a line past 512 bytes is cut.
    Case {
        name: "badinput::nested-log-line",
        append: "test=tests::an_app_that_logs_from_its_display_code_does_not_hang_the_console",
        exit: Some(33),
        checks: &[
            Check::Logged(&[
                "nested-logger: the inner line",
                "nested-logger: the outer line",
                "nested-logger: a long line, cut* [...]",
            ]),
            Check::Has(
                "test tests::an_app_that_logs_from_its_display_code_does_not_hang_the_console ... ok",
            ),
            Check::Lacks("FAILED"),
        ],
        ..BASE
    },
    Case {
        name: "badinput::tiny-memory",
        // Room for the kernel image (loaded at 2 MiB), not for the kernel's needs.
        mem_mib: 6,
        exit: Some(35),
        // rexo_memmap::MIN_USABLE_MIB, which the kernel checks, is 8.
        checks: &[Check::Has(
            "rexo: error: Rexo needs at least 8 MiB of usable RAM; this machine has ",
        )],
        ..BASE
    },
    // BareMetal binary compatibility: programs from apps/baremetal-tests, built by
    // xtask/src/baremetal.rs into target/baremetal/, handed over as the boot module.
    Case {
        name: "baremetal::test-microvm",
        append: "app=baremetal",
        qemu_args: &["-initrd", "target/baremetal/test.bin"],
        timeout_s: 30,
        exit: Some(0),
        checks: &[
            Check::Has("baremetal-test: cores=0000000000000002"),
            // b_output sends bytes unchanged (a character split across two calls arrives
            // whole) and a buffer over 1 MiB whole (1 MiB of zeros, then this line).
            Check::Has("baremetal-test: split UTF-8 \u{1F600}"),
            Check::Has("baremetal-test: output over 1 MiB"),
            // No PCI network interface on microvm: 0x30 answers 0.
            Check::Has("baremetal-test: mac=0000000000000000"),
            // b_net_tx names an unmapped frame buffer, not the missing device, and a
            // frame too long for BareMetal as such, not as an unmapped buffer.
            Check::Warn("b_net_tx: frame buffer not mapped, nothing sent"),
            Check::Warn("b_net_tx: a 2097152-byte frame is longer than BareMetal's 1522"),
            // b_output names an unmapped text rather than printing nothing unseen.
            Check::Warn("b_output: 16 bytes at 0x0: 0 printed, not mapped"),
            // A b_system function Rexo does not provide is named, once, BareMetal's
            // name with it where it has one; b_output stays the kernel's after 0x52.
            Check::Warn("b_system function 0x99 is not provided: RAX = all ones"),
            Check::Warn("b_system function 0x52 (BareMetal's STDOUT_SET"),
            Check::Count("b_system function 0x99", 1),
            Check::Has("baremetal-test: b_output after 0x52"),
            Check::Has("42 41 52 45 4D 45 54 41 4C 2D 44 55 4D 50 21 21"),
            Check::Has("baremetal-test: rax=0123456789ABCDEF"),
            Check::Has("baremetal-test: ok"),
            Check::Has("the app returned rax=0x0"),
        ],
        ..BASE
    },
    Case {
        name: "baremetal::test-q35-4",
        machine: Machine::Q35,
        cores: Cores::N(4),
        append: "app=baremetal",
        qemu_args: &["-initrd", "target/baremetal/test.bin"],
        timeout_s: 30,
        exit: Some(0),
        checks: &[
            Check::Has("baremetal-test: cores=0000000000000004"),
            // q35's default e1000e, 52:54:00:12:34:56, its first byte the most significant.
            Check::Has("baremetal-test: mac=0000525400123456"),
            // An ARP request to QEMU's user network, its answer read where b_net_rx left
            // it (RDI).
            Check::Has("baremetal-test: arp ok"),
            Check::Has("baremetal-test: pci ok"),
            // q35's LPC bridge (ICH9, 8086:2918) read by bus << 24 | devfn << 16 | register.
            Check::Has("baremetal-test: pci 00:1f.0=0000000029188086"),
            Check::Has("baremetal-test: ok"),
            Check::Has("the app returned rax=0x0"),
        ],
        ..BASE
    },
    // b_input gives Enter and Backspace as BareMetal's keyboard codes (0x1C, 0x0E): a
    // line typed on the serial console ends (4 keys: a, b, Backspace, Enter), its CR LF
    // one Enter (the LF passed over: it is no empty second line). The second line is read
    // with hlt before each b_input, which a timer interrupt ends, and jz on the ZF b_input
    // leaves (3 keys: x, y, Enter).
    Case {
        name: "baremetal::input",
        append: "app=baremetal",
        qemu_args: &["-initrd", "target/baremetal/input.bin"],
        input: "ab\x7f\r\nxy\r",
        timeout_s: 30,
        exit: Some(0),
        checks: &[
            Check::Has("baremetal-input: keys=0000000000000004 backspaces=0000000000000001"),
            Check::Has("baremetal-input: keys=0000000000000003 backspaces=0000000000000000"),
        ],
        ..BASE
    },
    Case {
        name: "baremetal::poweroff",
        append: "app=baremetal",
        qemu_args: &["-initrd", "target/baremetal/poweroff.bin"],
        exit: Some(0),
        checks: &[Check::Has("baremetal-exit: calling b_system")],
        ..BASE
    },
    Case {
        name: "baremetal::reboot",
        append: "app=baremetal",
        qemu_args: &["-initrd", "target/baremetal/reboot.bin"],
        exit: Some(0),
        checks: &[Check::Has("baremetal-exit: calling b_system")],
        ..BASE
    },
    // QEMU hands over no module at all for an empty -initrd file (the kernel test
    // baremetal::tests::refuses_what_is_not_a_flat_binary covers an empty module).
    Case {
        name: "badinput::baremetal-empty",
        append: "app=baremetal",
        qemu_args: &["-initrd", "target/baremetal/empty.bin"],
        exit: Some(35),
        checks: &[Check::Has(
            "app 'baremetal' failed: cannot run the BareMetal program: needs a boot module",
        )],
        ..BASE
    },
    Case {
        name: "badinput::baremetal-too-large",
        mem_mib: 96,
        append: "app=baremetal",
        qemu_args: &["-initrd", "target/baremetal/too-large.bin"],
        exit: Some(35),
        checks: &[Check::Has(
            "app 'baremetal' failed: cannot run the BareMetal program: the boot module is too large",
        )],
        ..BASE
    },
    Case {
        name: "badinput::baremetal-elf",
        append: "app=baremetal",
        qemu_args: &["-initrd", "target/x86_64-unknown-none/release/rexo"],
        exit: Some(35),
        checks: &[Check::Has(
            "app 'baremetal' failed: cannot run the BareMetal program: not a flat binary: ELF",
        )],
        ..BASE
    },
    Case {
        name: "badinput::baremetal-no-module",
        append: "app=baremetal",
        exit: Some(35),
        checks: &[Check::Has(
            "app 'baremetal' failed: cannot run the BareMetal program: needs a boot module",
        )],
        ..BASE
    },
    // The C ABI: apps written in C against api/c/rexo.h, compiled by image/build.rs.
    Case {
        name: "capi::hello",
        append: "app=c-hello",
        exit: Some(0),
        checks: &[
            Check::Has("hello from C"),
            Check::Has("c-hello: a C app on the Rexo kernel API"),
        ],
        ..BASE
    },
    // A C app on every core; one core's task outgrows its stack (a 160 KiB frame) and ends
    // alone, caught by the guard page that -fstack-clash-protection makes it touch.
    Case {
        name: "capi::cores",
        cores: Cores::N(4),
        append: "app=c-cores",
        timeout_s: 30,
        exit: Some(0),
        checks: &[
            ready(4, 256),
            Check::Has("c-cores: cores=4 counter=4"),
            Check::Has("the app overflowed its stack"),
            Check::Has("c-cores: a task whose frame outgrew its stack ended alone"),
            Check::Has("c-cores: ok"),
        ],
        ..BASE
    },
    // Core and timer capabilities from C: the app lists its core handles, arms its core's
    // timer and sleeps until it fires, returns it, gives its cores back, and checks the
    // codes of bad handles, deadlines and arguments.
    Case {
        name: "capi::timers",
        append: "app=c-timers",
        timeout_s: 30,
        exit: Some(0),
        checks: &[
            Check::Has("c-timers: the wall clock reads "),
            Check::Has("c-timers: 2 core capabilities"),
            Check::Has("c-timers: timer armed, fired, returned"),
            Check::Has("c-timers: cores given back"),
            Check::Has("c-timers: ok"),
            Check::Lacks("FAILED"),
        ],
        ..BASE
    },
    // Two runs of c-timers at once, one core each: a C app's globals are one copy shared by
    // every run of its image, so each run keeps its core handles on its own stack.
    Case {
        name: "capi::timers-two-runs",
        append: "apps=c-timers:0:4M,c-timers:1:4M",
        timeout_s: 30,
        exit: Some(0),
        checks: &[
            Check::Count("c-timers: 1 core capabilities", 2),
            Check::Count("c-timers: ok", 2),
            Check::Has("manifest: every app returned"),
            Check::Lacks("FAILED"),
        ],
        ..BASE
    },
    // c-timers started by the monitor's `run`: a run another app starts uses its caller's
    // cores and holds no core capabilities of its own (rexo_core_caps gives 0), so the app
    // skips its core-handle checks and still checks the timer and the clocks.
    Case {
        name: "capi::timers-from-the-monitor",
        append: "app=monitor",
        input: "run c-timers\rpoweroff\r",
        timeout_s: 30,
        exit: Some(0),
        checks: &[
            Check::Has("c-timers: no core capabilities of its own (a run another app started)"),
            Check::Has("c-timers: timer armed, fired, returned"),
            Check::Has("c-timers: ok"),
            Check::Has("c-timers: done"),
            Check::Lacks("FAILED"),
        ],
        ..BASE
    },
    // Devices and memory views from C: a virtio-blk disk and a virtio-net interface whose
    // frames come back to it; the app checks what it reads and receives, and every bad
    // argument's code.
    Case {
        name: "capi::devices",
        machine: Machine::Q35,
        append: "app=c-devices ip=10.0.2.15/24",
        qemu: &[
            Arg::ScratchDisk("virtio-blk-pci"),
            Arg::LoopNic("virtio-net-pci"),
        ],
        timeout_s: 60,
        exit: Some(0),
        checks: &[
            Check::Has("c-devices: device block 0 virtio-blk"),
            Check::Has("c-devices: device net 0 virtio-net"),
            Check::Has("wrote, flushed and read back 64 blocks"),
            Check::Has("sent and received a frame to itself, opened whole"),
            Check::Has("bound to udp dport 7777, sent and received a frame to itself"),
            Check::Has("c-devices: mapped 8192 bytes, wrote through the view"),
            Check::Has("c-devices: ok"),
            Check::Lacks("FAILED"),
        ],
        ..BASE
    },
    // The same on the 82574 (e1000e), whose RSS puts the bound UDP frame (from 10.0.2.15
    // to itself: the Toeplitz hash's low bits pick table entry 85) on receive queue 1:
    // rexo_net_receive must read every queue, not only queue 0.
    Case {
        name: "capi::devices-e1000e",
        machine: Machine::Q35,
        append: "app=c-devices ip=10.0.2.15/24",
        qemu: &[Arg::ScratchDisk("virtio-blk-pci"), Arg::LoopNic("e1000e")],
        timeout_s: 60,
        exit: Some(0),
        checks: &[
            Check::Has("c-devices: device net 0 e1000"),
            Check::Has("bound to udp dport 7777, sent and received a frame to itself"),
            Check::Has("c-devices: ok"),
            Check::Lacks("FAILED"),
        ],
        ..BASE
    },
    // The monitor's pci, load and exec (the case names that mention baremetal get the
    // BareMetal test programs built).
    Case {
        name: "monitor::pci",
        machine: Machine::Q35,
        append: "app=monitor",
        input: "pci\rpoweroff\r",
        exit: Some(0),
        timeout_s: 30,
        checks: &[
            Check::Has("00:00.0 8086:29c0 class 06.00.00"),
            Check::Has("00:1f.0 8086:2918 class 06.01.00"),
            Check::Has("00:1f.2 8086:2922 class 01.06.01 bar4 io 0x"),
        ],
        ..BASE
    },
    Case {
        // BareMetal programs from a BMFS disk (made by `cargo xtask disk`'s code) on NVMe:
        // the monitor lists it, loads and runs the storage-call program, which writes and
        // reads a sector through b_nvs_write/b_nvs_read; `pci` shows the driver bound; a
        // file the host put there is shown, one is deleted in Rexo and is gone when the
        // host reads the image afterwards; a copy named with a space (in double quotes) is
        // made and shown too. The image's 6 blocks start full (a program or the notes in
        // each): input.app is deleted too, to make room for the copies.
        name: "baremetal::bmfs-disk-monitor",
        machine: Machine::Q35,
        append: "app=monitor",
        qemu: &[Arg::BmfsDisk("nvme,serial=bmfs")],
        input: "ls\rload storage.app\rexec\rload nope.app\rdevices\rpci\rcat notes.txt\rrm poweroff.app\rrm input.app\rcp notes.txt copy.txt\rcat copy.txt\rcp notes.txt \"my notes.txt\"\rcat \"my notes.txt\"\rcp notes.txt copy.txt\rcp nope.txt x.txt\rdf\rfsck\rpoweroff\r",
        exit: Some(0),
        timeout_s: 30,
        checks: &[
            Check::Has("storage.app"),
            Check::Has("blocks free"),
            Check::Has("load: "),
            Check::Has("baremetal-storage: sector 3840 written and read back byte-exact"),
            Check::Has("baremetal-storage: a read past the end of the disk did nothing"),
            Check::Has("exec: returned rax=0x5107"),
            Check::Has("load: no file 'nope.app'"),
            Check::Has("nvme: 16 MiB"),
            Check::Has("class 01.08.02 bar0 mem64"),
            Check::Has("driver nvme"),
            Check::Has("put here by the host tool"),
            Check::Has("rm: poweroff.app deleted"),
            Check::Has("rm: input.app deleted"),
            Check::Has("cp: notes.txt copied to copy.txt (39 bytes)"),
            Check::Has("cp: notes.txt copied to my notes.txt (39 bytes)"),
            Check::Count("put here by the host tool", 3),
            Check::Has("cp: 'copy.txt' exists already"),
            Check::Has("cp: no file 'nope.txt'"),
            Check::Has("blocks of 2 MiB:"),
            Check::Has("fsck: the BMFS directory is sound"),
            Check::Lacks("FAILED"),
        ],
        ..BASE
    },
    // The Rexo file system both ways, on each disk controller: made on the host, read,
    // changed and checked in Rexo through the monitor's `fs`, then mounted and checked
    // on the host again.
    // A disk that grew after its format: its table is at the end of its first half, and
    // its locator says so. The monitor finds that table (the disk is not taken for a raw
    // one), grows it to the disk's end and allocates past the old end; afterwards the
    // host finds the last listing's table at the image's end, and a locator naming its
    // size.
    Case {
        name: "storage::xn-grown-virtio-blk",
        machine: Machine::Q35,
        append: "app=monitor",
        qemu: &[Arg::GrownXnDisk("virtio-blk-pci")],
        input: "extents 0\rextents 0 grow\rextents 0 grow\rextents 0 alloc 10000\rextents 0\rpoweroff\r",
        exit: Some(0),
        timeout_s: 60,
        checks: &[
            Check::Count("disk 0: 1 extent(s)", 2),
            Check::Count("sectors 0+64 monitor read-write", 4),
            Check::Has("disk 0: extents: the extent table already spans the whole disk"),
            Check::Count("sectors 2048+10000 monitor read-write", 2),
            Check::Lacks("panicked"),
        ],
        ..BASE
    },
    Case {
        name: "storage::rexofs-virtio-blk",
        qemu: &[Arg::RexoFsDisk("virtio-blk-pci")],
        ..REXOFS_MONITOR
    },
    // The same on a virtio-blk disk of 4 KiB logical blocks, which QEMU fails with
    // IOERR for any request not on them: the disk's sectors are its blk_size (the Rexo
    // file system's requests fall on 4 KiB anyway; the driver reported 512-byte
    // sectors, on which any other request failed).
    Case {
        name: "storage::rexofs-virtio-blk-4k",
        qemu: &[Arg::RexoFsDisk(
            "virtio-blk-pci,logical_block_size=4096,physical_block_size=4096",
        )],
        checks: rexofs_monitor_checks!(Check::Has(
            "virtio-blk: 16 MiB (4096 sectors of 4096 bytes)"
        )),
        ..REXOFS_MONITOR
    },
    Case {
        name: "storage::rexofs-nvme",
        qemu: &[Arg::RexoFsDisk("nvme,serial=rexofs")],
        ..REXOFS_MONITOR
    },
    Case {
        name: "storage::rexofs-ahci",
        qemu: &[Arg::RexoFsDisk("ide-hd,bus=ide.0")],
        ..REXOFS_MONITOR
    },
    // A partitioned disk: the monitor finds BMFS in partition 1 and the Rexo file
    // system in partition 2; what it writes there is read back on the host.
    Case {
        name: "storage::partitioned",
        machine: Machine::Q35,
        append: "app=monitor",
        qemu: &[Arg::PartitionedDisk("virtio-blk-pci")],
        input: "ls\rcat notes.txt\rfs cat /docs/hello.txt\rfs write /written.txt written in Rexo\rfs fsck\rpoweroff\r",
        exit: Some(0),
        timeout_s: 60,
        checks: &[
            Check::Has("notes.txt"),
            Check::Has("put here by the host tool"),
            Check::Has("hello from the host tool"),
            Check::Has("/written.txt: 16 bytes written"),
            Check::Has("the Rexo file system is consistent: 2 directories, 2 files"),
            Check::Lacks("panicked"),
        ],
        ..BASE
    },
    // Protected disk blocks on a fresh NVMe disk: the monitor formats it for XN,
    // allocates two extents, shares part of the first with hello, frees the second and
    // lists the table; an extent that does not exist is refused. Afterwards the host
    // reads the image's table with `libs/xn` and finds exactly the last listing: the
    // table a reboot would find.
    Case {
        name: "storage::xn-nvme",
        machine: Machine::Q35,
        append: "app=monitor",
        qemu: &[Arg::XnDisk("nvme,serial=xn")],
        input: "extents 0 format\rextents 0 alloc 64\rextents 0 alloc 8\rextents 0 share 0 8 hello\rextents 0 free 64\rextents 0 free 12345\rextents 0\rpoweroff\r",
        exit: Some(0),
        timeout_s: 60,
        checks: &[
            Check::Has("disk 0: 0 extent(s)"),
            Check::Has("disk 0: 1 extent(s)"),
            Check::Has("sectors 64+8 monitor read-write"),
            Check::Has("disk 0: 3 extent(s)"),
            Check::Has("disk 0: extents: no such extent"),
            // Alloc 8 (before the share), free 64 and the listing (after it) show 2
            // extents, the share in the last two.
            Check::Count("disk 0: 2 extent(s)", 3),
            Check::Count("sectors 0+64 monitor read-write", 5),
            Check::Count("sectors 0+8 hello read-only share", 3),
            Check::Lacks("panicked"),
        ],
        ..BASE
    },
    Case {
        // The monitor on a machine without PS/2 (i8042=off), typed at through a USB
        // keyboard on xHCI: `help`, Enter, then `pci`, Enter.
        name: "monitor::usb-keyboard",
        machine: Machine::Q35,
        machine_props: &["i8042=off"],
        append: "app=monitor",
        qemu: &[Arg::UsbKeyboard(&[
            "h", "e", "l", "p", "ret", "p", "c", "i", "ret",
        ])],
        timeout_s: 60,
        checks: &[
            Check::Has("xhci: port"),
            Check::Has("list the commands"),
            Check::Has("class 0c.03.30"),
            Check::Has("driver xhci"),
        ],
        ..BASE
    },
    Case {
        // The same, the controller empty at boot (listed 'no keyboard attached') and the
        // usb-kbd plugged in while the monitor runs: it is attached and types `help`.
        name: "monitor::usb-keyboard-hot-plugged",
        machine: Machine::Q35,
        machine_props: &["i8042=off"],
        append: "app=monitor",
        qemu: &[Arg::UsbKeyboardPlugged(&["h", "e", "l", "p", "ret"])],
        timeout_s: 60,
        checks: &[
            Check::Has("xhci: USB controller: no keyboard attached"),
            Check::Has("xhci: port"),
            Check::Has("list the commands"),
        ],
        ..BASE
    },
    Case {
        // A usb-tablet on a qemu-xhci controller (on its first USB 2 port, 5) is no boot keyboard: once its
        // descriptors were read its slot is disabled again (Disable Slot).
        name: "monitor::xhci-tablet-not-a-keyboard",
        machine: Machine::Q35,
        append: "app=monitor",
        qemu_args: &[
            "-device",
            "qemu-xhci,id=xhci",
            "-device",
            "usb-tablet,bus=xhci.0",
        ],
        timeout_s: 60,
        checks: &[
            Check::Has("is not a boot keyboard"),
            Check::Has("slot 1 given back (no boot keyboard)"),
            Check::Lacks("panicked"),
        ],
        ..BASE
    },
    Case {
        name: "monitor::load-exec-baremetal",
        append: "app=monitor",
        qemu_args: &["-initrd", "target/baremetal/test.bin"],
        // The test program calls b_input twice, each taking a byte if one is waiting:
        // the two empty lines are for them (one they do not take is an empty line the
        // monitor passes over), so `poweroff` reaches the monitor whole.
        input: "load\rexec\r\r\rpoweroff\r",
        exit: Some(0),
        timeout_s: 30,
        checks: &[
            Check::Has("load: "),
            Check::Has("bytes at 0xffff800000000000"),
            Check::Has("baremetal-test: ok"),
            Check::Has("exec: returned rax=0x0"),
        ],
        ..BASE
    },
    // Without a boot module the kernel's `baremetal` app cannot run: `run` answers why
    // and the monitor goes on (it stopped the machine, exit 35, before).
    Case {
        name: "badinput::monitor-run-baremetal-no-module",
        append: "app=monitor",
        input: "run baremetal\rtime\rpoweroff\r",
        exit: Some(0),
        checks: &[
            Check::Has("baremetal: cannot run the BareMetal program: needs a boot module"),
            Check::Has("s since boot"),
            Check::Lacks("rexo: error"),
        ],
        ..BASE
    },
    // The monitor's entry grants BareMetal code, so its `run` starts the kernel's
    // `baremetal` app (which other apps may not); the app loads through load_baremetal,
    // so the monitor's `exec` after it runs the module again, from the memory the first
    // run left (the test program then fails its lock counter's check: its RAX is not 0).
    Case {
        name: "monitor::run-baremetal",
        append: "app=monitor",
        qemu_args: &["-initrd", "target/baremetal/test.bin"],
        input: "run baremetal\r\r\rexec\r\r\rpoweroff\r",
        exit: Some(0),
        timeout_s: 30,
        checks: &[
            Check::Has("the app returned rax=0x0"),
            Check::Has("baremetal: done"),
            Check::Lacks("exec: nothing is loaded"),
            Check::Has("exec: returned rax="),
        ],
        ..BASE
    },
    Case {
        name: "badinput::monitor-exec-without-load",
        append: "app=monitor",
        input: "exec\rload\rexec\rload x.bin\rls\rpoweroff\r",
        exit: Some(0),
        checks: &[
            Check::Has("exec: nothing is loaded; `load` first"),
            Check::Has("load: needs a boot module"),
            Check::Has("load: no disk (`devices` lists them)"),
            Check::Has("ls: no disk"),
        ],
        ..BASE
    },
    // A disk whose device fails a write (QEMU's blkdebug injects EIO at sector 4096):
    // each driver turns the completion's error status into a clear error for that
    // request, diskcheck reports it, and the kernel ends the run as failed (exit 35, no
    // crash report).
    Case {
        name: "badinput::disk-error-nvme",
        qemu: &[Arg::Disk(Attach::Faulty("nvme,serial=faulty"))],
        checks: DISK_ERROR,
        ..FAULTY_DISK
    },
    // QEMU's virtio-blk merges adjacent writes into one request to the image and fails
    // every guest request of a merged one that reached the sector (CI saw 3904+64 fail),
    // so merging is off here: only the request that holds the sector fails.
    Case {
        name: "badinput::disk-error-virtio-blk",
        qemu: &[Arg::Disk(Attach::Faulty(
            "virtio-blk-pci,request-merging=off",
        ))],
        checks: DISK_ERROR,
        ..FAULTY_DISK
    },
    // On AHCI with NCQ the driver fails only the queued command the device refused:
    // QEMU does not answer READ LOG EXT, so it retries the commands in flight one at a
    // time, and the write at sector 4096 fails again, alone (or it fails at once when it
    // was the only one in flight: which happens depends on completion order, so the
    // recovery itself is shown by rexo-ahci's host tests).
    Case {
        name: "badinput::disk-error-ahci",
        qemu: &[Arg::Disk(Attach::Faulty("ide-hd,bus=ide.0"))],
        checks: DISK_ERROR,
        ..FAULTY_DISK
    },
    // `bench=api` (`cargo xtask bench api`): the kernel prints every figure and exits 33.
    // The suite's noise app (`cargo xtask bench noise`): it asks for the host's
    // go-ahead on the serial console, measures on every core, and reports each core.
    Case {
        name: "bench::noise-runs",
        append: "app=noise",
        input: "g\n",
        timeout_s: 120,
        exit: Some(0),
        checks: &[
            Check::Has("noise ready"),
            Check::Has("noise measured"),
            Check::Has("noise core=0 quanta=200000"),
            Check::Has("noise core=1 quanta=200000"),
            Check::Lacks("FAILED"),
        ],
        ..BASE
    },
    Case {
        name: "bench::api-runs",
        append: "bench=api",
        timeout_s: 120,
        exit: Some(33),
        checks: &[
            ready(2, 256),
            Check::Has("bench start tsc_hz="),
            Check::Has("bench plain-call rounds="),
            Check::Has("bench api-call rounds="),
            Check::Has("bench frame-2m rounds="),
            Check::Has("bench roundtrip-polling rounds="),
            Check::Has("bench roundtrip-halted rounds="),
            Check::Has("bench revoke rounds="),
            Check::Has("bench done"),
        ],
        ..BASE
    },
    // The boot manifest: several apps side by side, each on its own cores with a quota.
    Case {
        name: "manifest::two-apps",
        cores: Cores::N(4),
        append: "apps=hello:0-1:8M,hello:2-3:8M",
        timeout_s: 30,
        exit: Some(0),
        checks: &[
            ready(4, 256),
            Check::Has("hello: all 2 cores answered in"),
            Check::Has(" us: cores 0,1"),
            Check::Has(" us: cores 2,3"),
            Check::Has("manifest: every app returned"),
        ],
        ..BASE
    },
    // The memory and time library OS (libos/mem) in memdemo, with an 8 MiB quota.
    Case {
        name: "memlibos::memdemo",
        append: "apps=memdemo:0:8M",
        timeout_s: 60,
        exit: Some(0),
        checks: &[
            Check::Has("memdemo: 67 allocations across 3 arenas (6144 KiB)"),
            Check::Has("memdemo: read back 67 allocations byte-exact"),
            Check::Has("memdemo: reallocated 8 blocks, their bytes kept"),
            Check::Has("memdemo: freed 2 blocks of 1280 KiB: 2 arenas given back, 1 held"),
            Check::Has("memdemo: double free refused: the handle's allocation was freed"),
            Check::Has(
                "memdemo: another heap's handle refused: the handle belongs to another heap",
            ),
            Check::Has("memdemo: 0 bytes refused: an allocation of 0 bytes"),
            Check::Has(
                "memdemo: 2 GiB refused: 2147483648 bytes is more than one allocation may have",
            ),
            Check::Has(
                "more MiB: the app's memory quota is used up; the 65 earlier allocations intact",
            ),
            Check::Has("memdemo: holding 65 allocations in 2 arenas (6144 KiB)"),
            Check::Has("memdemo: no revocation request pending"),
            Check::Has("memdemo: done: every allocation freed, the last arena"),
            Check::Has("manifest: every app returned"),
            Check::Lacks("FAILED"),
        ],
        ..BASE
    },
    // memdemo-revocable under the kernel test that asks for one of its arenas back: it
    // answers by moving its blocks, and is not ended.
    Case {
        name: "memlibos::revocation",
        append: "test=memlibos",
        timeout_s: 90,
        exit: Some(33),
        checks: &[
            Check::Has("memdemo: holding 65 allocations in 2 arenas (6144 KiB)"),
            Check::Has(
                "memdemo: revocation of arena 0 (2048 KiB) answered: 64 allocations moved, 0 lost",
            ),
            Check::Has("memdemo: 65 allocations read back byte-exact after the revocation"),
            Check::Has(
                "test caps::tests::memlibos::memdemo_answers_a_revocation_request_and_runs_on ... ok",
            ),
            Check::Lacks("FAILED"),
            Check::Lacks("revocation deadline passed"),
        ],
        ..BASE
    },
    // An app that panics in its own code inside a device call (a frame's fill, run with the
    // device locked) ends once the call has unlocked the device, which serves the next app.
    Case {
        name: "badinput::app-panic-inside-a-device-call",
        append: "test=an_app_that_panics_inside_a_device_call",
        machine: Machine::Q35,
        qemu: &[Arg::LoopNic("virtio-net-pci")],
        timeout_s: 60,
        exit: Some(33),
        checks: &[
            Check::Has("an app panicked on core 0"),
            Check::Has("an app's bug while filling a frame"),
            Check::Has(
                "tests: an app that panicked inside a device call ended; the device served the next",
            ),
            Check::Lacks("device-panicker: the call returned"),
            Check::Lacks("FAILED"),
        ],
        ..BASE
    },
    // An app that took the kernel heap down to the kernel's reserve splits its network
    // interface: the registry's allocations with the device locked are the kernel's (a
    // kernel section), so the split is served and the device serves the next app. And an
    // app that took the heap growth its quota allows is refused more in a send's fill.
    Case {
        name: "badinput::no-heap-left-inside-a-device-call",
        append: "test=an_apps_device_call_with_no_heap_left",
        machine: Machine::Q35,
        qemu: &[Arg::LoopNic("virtio-net-pci")],
        timeout_s: 60,
        exit: Some(33),
        checks: &[
            Check::Has(
                "tests: an app with no heap left split its interface; the device served the next",
            ),
            Check::Has("tests: an app's fill in a device call was held to its quota"),
            Check::Lacks("FAILED"),
        ],
        ..BASE
    },
    // An app that ignores a revocation request and spins without calling the kernel:
    // the timer takes its memory at the deadline, its next touch ends it with a report
    // naming it, and the kernel and the app beside it go on.
    Case {
        name: "badinput::revocation-ignored-by-a-spinner",
        append: "test=a_spinning_app",
        timeout_s: 60,
        exit: Some(33),
        checks: &[
            Check::Has("caps: revocation deadline passed: took memory"),
            Check::Has("app 'spinner' touched revoked region memory"),
            Check::Has(
                "test caps::tests::timer::a_spinning_app_that_never_calls_the_kernel_loses_its_memory_at_the_deadline ... ok",
            ),
            Check::Lacks("FAILED"),
        ],
        ..BASE
    },
    Case {
        name: "badinput::manifest-overlap",
        cores: Cores::N(4),
        append: "apps=hello:0-1:8M,hello:1-2:8M",
        exit: Some(35),
        checks: &[Check::Has(
            "bad manifest entry `hello:1-2:8M` in `apps=hello:0-1:8M,hello:1-2:8M`: its cores overlap",
        )],
        ..BASE
    },
    Case {
        name: "badinput::manifest-too-many-cores",
        append: "apps=hello:0:8M,hello:1-2:8M",
        exit: Some(35),
        checks: &[Check::Has(
            "bad manifest entry `hello:1-2:8M` in `apps=hello:0:8M,hello:1-2:8M`: it names a core past the 2 running cores",
        )],
        ..BASE
    },
    Case {
        name: "badinput::manifest-unknown-app",
        append: "apps=hello:0:8M,nope:1:8M",
        exit: Some(35),
        checks: &[Check::Has(
            "manifest entry `nope:1:8M`: no app called 'nope'",
        )],
        ..BASE
    },
    // rexo-pci through ECAM on q35: sized BARs (a 64-bit one on NVMe) and MSI-X, from
    // the monitor's `pci` lines.
    Case {
        name: "monitor::pci-devices",
        machine: Machine::Q35,
        append: "app=monitor",
        qemu_args: &[
            "-device",
            "virtio-net-pci",
            "-device",
            "nvme,serial=x,drive=d",
            "-drive",
            "if=none,id=d,driver=null-co",
        ],
        input: "pci\rpoweroff\r",
        exit: Some(0),
        timeout_s: 30,
        checks: &[
            Check::Has("00:03.0 1af4:1000 class 02.00.00 bar0 io 0x"),
            Check::Has(" size 0x20 bar1 mem32 0x"),
            Check::Has(" size 0x1000 bar4 mem64 0x"),
            Check::Has(" size 0x4000 prefetchable msix 4 table bar1+0x0 pba bar1+0x800"),
            Check::Has("00:04.0 1b36:0010 class 01.08.02 bar0 mem64 0x"),
            Check::Has(" size 0x4000 pcie msix 65 table bar0+0x2000 pba bar0+0x3000"),
        ],
        ..BASE
    },
    // The same walk through the legacy ports: `-machine pc` has no MCFG table.
    Case {
        name: "monitor::pci-ports",
        machine: Machine::Pc,
        append: "app=monitor",
        input: "pci\rpoweroff\r",
        exit: Some(0),
        timeout_s: 30,
        checks: &[
            Check::Has("00:01.1 8086:7010 class 01.01.80 bar4 io 0x"),
            Check::Has("00:03.0 8086:100e class 02.00.00 bar0 mem32 0xfebc0000 size 0x20000"),
        ],
        ..BASE
    },
    // Drivers (`drivers::`): `netcheck` against the network peer on every NIC variant,
    // `diskcheck` over fresh images on every disk controller, the images checked after.
    Case {
        name: "drivers::virtio-net-transitional",
        qemu: &[Arg::Nic("virtio-net-pci")],
        ..WAKING_NET
    },
    Case {
        name: "drivers::virtio-net-modern",
        qemu: &[Arg::Nic("virtio-net-pci,disable-legacy=on")],
        ..WAKING_NET
    },
    Case {
        name: "drivers::virtio-net-legacy",
        qemu: &[Arg::Nic("virtio-net-pci,disable-modern=on")],
        ..WAKING_NET
    },
    // Legacy without ANY_LAYOUT: the header in its own descriptor, so a gathered frame's
    // chain is header, segment 0, then one descriptor per further segment.
    Case {
        name: "drivers::virtio-net-legacy-no-any-layout",
        qemu: &[Arg::Nic("virtio-net-pci,disable-modern=on,any_layout=off")],
        ..WAKING_NET
    },
    // The 8254x and the RTL8139 have no MSI: their INTx line (level-triggered, IRQ 10
    // or 11 as SeaBIOS routed it, through the IO-APIC) wakes the core.
    Case {
        name: "drivers::e1000",
        qemu: &[Arg::Nic("e1000")],
        ..WAKING_NET
    },
    Case {
        name: "drivers::e1000-pc",
        machine: Machine::Pc,
        qemu: &[Arg::Nic("e1000")],
        ..WAKING_NET
    },
    Case {
        name: "drivers::e1000e",
        qemu: &[Arg::Nic("e1000e")],
        ..WAKING_NET
    },
    Case {
        name: "drivers::rtl8139",
        qemu: &[Arg::Nic("rtl8139")],
        ..WAKING_NET
    },
    // Without ACPI tables there is no known IO-APIC to route the line through: the
    // driver says so and netcheck polls instead of sleeping.
    Case {
        name: "drivers::rtl8139-no-acpi",
        machine: Machine::Pc,
        machine_props: &["acpi=off"],
        qemu: &[Arg::Nic("rtl8139")],
        exit: None, // no ACPI, no power-off: the kernel halts

        checks: &[
            Check::Has(
                "rtl8139: no wake-ups: the device lacks an IO-APIC (the machine has no ACPI tables)",
            ),
            Check::Has("polling between frames: the device lacks an IO-APIC"),
            Check::Has("received 2000 frames byte-exact, echoed 2000"),
            Check::Has("netcheck: done, 1 interface(s)"),
            Check::Lacks("times between frames"),
            Check::Lacks("FAILED"),
        ],
        ..NET
    },
    Case {
        name: "drivers::two-nics",
        qemu: &[Arg::Nic("virtio-net-pci"), Arg::Nic("e1000")],
        timeout_s: 180,
        checks: &[
            Check::Count("sent 2000 frames of 60-1514 bytes", 2),
            Check::Count("10-byte frame refused", 2),
            Check::Count(", 1000 of them gathered from 2-5 segments", 2),
            Check::Count("gathered frame refused", 4),
            Check::Count("received 2000 frames byte-exact, echoed 2000", 2),
            Check::Has("netcheck: done, 2 interface(s)"),
            Check::Lacks("FAILED"),
        ],
        ..NET
    },
    // virtio-blk's request queue 0 and NVMe's I/O completion queue 1 signal through
    // MSI-X entries 0 and 1: the core sleeps during reads (throttled, so they last
    // milliseconds) and each completion's message wakes it.
    Case {
        name: "drivers::virtio-blk-transitional",
        qemu: &[Arg::Disk(Attach::Throttled("virtio-blk-pci"))],
        ..WAKING_DISK
    },
    Case {
        name: "drivers::virtio-blk-modern",
        qemu: &[Arg::Disk(Attach::Throttled(
            "virtio-blk-pci,disable-legacy=on",
        ))],
        ..WAKING_DISK
    },
    Case {
        name: "drivers::virtio-blk-legacy",
        qemu: &[Arg::Disk(Attach::Throttled(
            "virtio-blk-pci,disable-modern=on",
        ))],
        ..WAKING_DISK
    },
    Case {
        name: "drivers::nvme",
        qemu: &[Arg::Disk(Attach::Throttled("nvme,serial=rexo0"))],
        ..WAKING_DISK
    },
    // The q35's built-in AHCI controller (00:1f.2), port 0. ICH9's AHCI has MSI and
    // no MSI-X: its one message wakes the core as above.
    Case {
        name: "drivers::ahci",
        qemu: &[Arg::Disk(Attach::Throttled("ide-hd,bus=ide.0"))],
        ..WAKING_DISK
    },
    // The PIIX IDE controller of `-machine pc`, primary master: no MSI, its channel's
    // ISA IRQ 14 (edge-triggered, through the IO-APIC) wakes the core.
    Case {
        name: "drivers::ata-piix",
        machine: Machine::Pc,
        qemu: &[Arg::Disk(Attach::LegacyIde)],
        ..WAKING_DISK
    },
    Case {
        name: "drivers::two-disks",
        // Throttled: unthrottled, QEMU sometimes completes a virtio-blk read before the
        // guest's next look, and diskcheck fails for want of a nap.
        qemu: &[
            Arg::Disk(Attach::Throttled("nvme,serial=rexo0")),
            Arg::Disk(Attach::Throttled("virtio-blk-pci")),
        ],
        timeout_s: 180,
        checks: &[
            Check::Count(DISK_WROTE, 2),
            Check::Count(DISK_READ_BACK, 2),
            Check::Count("read past the end refused", 2),
            Check::Count(": flushed", 2),
            Check::Count(": slept ", 2),
            Check::Has("diskcheck: done, 2 disk(s)"),
            Check::Has(DISK_TOLD),
            Check::Has(" disk 1: told of the power-off"),
            Check::Lacks(DISK_NOT_TOLD),
            Check::Lacks("FAILED"),
        ],
        ..DISK
    },
    // Killed (SIGKILL) the moment the flush completed: the image must already hold
    // every sector, and QEMU's trace must show the controller flushed namespace 1 (QEMU
    // writes to the host's page cache, which SIGKILL does not lose, so the image alone
    // would pass without a flush).
    Case {
        name: "drivers::nvme-kill-after-flush",
        qemu_args: &["-nic", "none", "-trace", "pci_nvme_flush_ns"],
        qemu: &[
            Arg::Disk(Attach::Device("nvme,serial=rexo0")),
            Arg::KillAfterFlush,
        ],
        exit: None,
        checks: &[
            Check::Has(DISK_READ_BACK),
            Check::Has("read past the end refused"),
            Check::Has("diskcheck: disk 0: flushed"),
            Check::QemuSaid("pci_nvme_flush_ns nsid 0x1"),
            Check::Lacks("FAILED"),
        ],
        ..DISK
    },
    // The memcached-compatible cache (`kv::`): a host client (xtask/src/kvtests.rs)
    // through QEMU user networking, then `shutdown`, and the app returns.
    // httpd through QEMU user networking: every answer of the test client
    // (xtask/src/httpclient.rs), then its shutdown hook; on e1000 the server polls (no
    // MSI-X), on virtio-net it sleeps between requests.
    // netdemo: DHCP, ping, TCP and UDP echo over the TCP/IP library OS; the client
    // (xtask/src/echoclient.rs) makes the app's 500 connections, the last one 1 MiB.
    NETDEMO,
    // The same on the 82574 (e1000e), whose RSS puts about half the client's TCP flows
    // on receive queue 1: the stack must poll both queues (with queue 0 alone the
    // client's first echo times out).
    Case {
        name: "net::netdemo-e1000e",
        qemu: &[Arg::UserNet {
            model: "e1000e",
            tcp: &[crate::echoclient::PORT],
            udp: &[crate::echoclient::PORT],
        }],
        ..NETDEMO
    },
    // virtio-net multi-queue: two queue pairs on a multi-queue tap in a namespace made
    // for the case (xtask/src/queuepeer.rs). Frames out on both transmit queues arrive
    // at the tap byte-exact; the host's 16 UDP flows come in on both receive queues
    // (the tap picks by flow hash; `netqueues` fails if a queue gets none); then the
    // core sleeps until receive queue 1's MSI-X message wakes it for 20 more.
    Case {
        name: "net::virtio-mq",
        machine: Machine::Q35,
        append: "app=netqueues",
        qemu: &[Arg::TapQueues(VIRTIO_NET_TWO_PAIRS)],
        timeout_s: 120,
        exit: Some(0),
        checks: &VIRTIO_MQ_CHECKS,
        ..BASE
    },
    // The same through the legacy interface of a transitional device.
    Case {
        name: "net::virtio-mq-legacy",
        machine: Machine::Q35,
        append: "app=netqueues",
        qemu: &[Arg::TapQueues(
            "virtio-net-pci,mq=on,vectors=6,disable-modern=on",
        )],
        timeout_s: 120,
        exit: Some(0),
        checks: &VIRTIO_MQ_CHECKS,
        ..BASE
    },
    // The same on the 82574 (e1000e): QEMU's model picks each flow's receive queue by
    // RSS (a Toeplitz hash over the IPv4 addresses for UDP: the host sends each flow
    // from its own address); receive queue 1 signals MSI-X entry 1 (IVAR).
    Case {
        name: "net::e1000e-mq",
        machine: Machine::Q35,
        append: "app=netqueues",
        qemu: &[Arg::TapQueues("e1000e")],
        timeout_s: 120,
        exit: Some(0),
        checks: &E1000E_MQ_CHECKS,
        ..BASE
    },
    Case {
        name: "net::httpd",
        append: "app=httpd-test",
        client: Some(crate::httpclient::HTTPD),
        ..HTTPD
    },
    // The same on smoltcp's TCP (httpd serves on our own, `rexo-tcp`, by default).
    Case {
        name: "net::httpd-smoltcp",
        append: "app=httpd-test-smoltcp",
        client: Some(crate::httpclient::HTTPD),
        checks: SMOLTCP_CHECKS,
        ..HTTPD
    },
    // httpd serves the files of a BMFS disk beside its built-in ones, a disk file
    // replacing the built-in file of the same name.
    Case {
        name: "net::httpd-disk",
        append: "app=httpd-test",
        qemu: &[
            Arg::UserNet {
                model: "virtio-net-pci",
                tcp: &[80],
                udp: &[],
            },
            Arg::SiteDisk("virtio-blk-pci"),
        ],
        client: Some(crate::httpclient::HTTPD_DISK),
        checks: &[
            Check::Has("httpd: /about.html from disk replaces the built-in one"),
            Check::Has("files prepared in"),
            Check::Has(" ms, 3 of them from disk"),
            Check::Has("httpd: done"),
            Check::Lacks("FAILED"),
        ],
        ..HTTPD
    },
    // The same from the Rexo file system, directories walked.
    Case {
        name: "net::httpd-rexofs",
        append: "app=httpd-test",
        qemu: &[
            Arg::UserNet {
                model: "virtio-net-pci",
                tcp: &[80],
                udp: &[],
            },
            Arg::RexoFsSiteDisk("nvme,serial=site"),
        ],
        client: Some(crate::httpclient::HTTPD_REXOFS),
        checks: &[
            Check::Has("httpd: /about.html from disk replaces the built-in one"),
            Check::Has(" ms, 4 of them from disk"),
            Check::Has("httpd: done"),
            Check::Lacks("FAILED"),
        ],
        ..HTTPD
    },
    // A disk the host tool made boots Rexo (GRUB from the MBR under SeaBIOS, from the
    // EFI system partition under OVMF) and httpd serves the site in its Rexo file system.
    Case {
        name: "boot::disk-seabios-httpd",
        boot: Boot::Disk {
            device: "virtio-blk-pci",
            uefi: false,
        },
        machine: Machine::Pc,
        client: Some(crate::httpclient::HTTPD_REXOFS),
        checks: DISK_BOOT_CHECKS,
        ..HTTPD
    },
    Case {
        name: "boot::disk-ovmf-httpd",
        boot: Boot::Disk {
            device: "nvme,serial=boot",
            uefi: true,
        },
        timeout_s: 240,
        client: Some(crate::httpclient::HTTPD_REXOFS),
        checks: DISK_BOOT_CHECKS,
        ..HTTPD
    },
    // A damaged file system is served read-only, what reads of it.
    Case {
        name: "badinput::httpd-rexofs-damaged",
        append: "app=httpd-test",
        qemu: &[
            Arg::UserNet {
                model: "virtio-net-pci",
                tcp: &[80],
                udp: &[],
            },
            Arg::DamagedRexoFsSiteDisk("nvme,serial=site"),
        ],
        client: Some(crate::httpclient::HTTPD_REXOFS),
        checks: &[
            Check::Has(
                "the Rexo file system is mounted read-only (corrupt block 65: bitmap block checksum mismatch): serving what reads",
            ),
            Check::Has(" ms, 4 of them from disk"),
            Check::Has("httpd: done"),
            Check::Lacks("FAILED"),
        ],
        ..HTTPD
    },
    Case {
        name: "net::httpd-e1000",
        append: "app=httpd-test",
        qemu: &[Arg::UserNet {
            model: "e1000",
            tcp: &[80],
            udp: &[],
        }],
        client: Some(crate::httpclient::HTTPD),
        ..HTTPD
    },
    // The MIT exokernel's packet filters: with `ip=` the kernel owns the address and
    // httpd and kv bind to their ports on one interface; every kv and httpd check passes
    // through it, the kernel answers QEMU's ARP requests (when QEMU asks), and each app's counters and
    // the kernel's are logged as the bindings end. kv sizes its cache by its quota: 64 MiB
    // give it 16 MiB, room for the protocol client's values. httpd-test's 32 MiB hold its
    // heap's growth (an app's heap growth counts against its quota), the 10 MiB generated
    // page and all.
    Case {
        name: "net::shared-nic",
        mem_mib: 512,
        append: "ip=10.0.2.15/24,10.0.2.2 apps=httpd-test:0:32M,kv:1:64M",
        qemu: &[Arg::UserNet {
            model: "virtio-net-pci",
            tcp: &[80, crate::kvtests::PORT],
            udp: &[crate::kvtests::PORT],
        }],
        client: Some(crate::kvtests::SHARED),
        checks: &[
            Check::Has("fixed by ip="),
            Check::Has("httpd: serving http://10.0.2.15:80/"),
            Check::Has("kv: serving memcached on 10.0.2.15/24"),
            Check::Has(
                "net: unbound kv (12:2=0x800 & 14:1=0x45 & 20:2/0x1fff=0x0 & 23:1=0x6 & 36:2=0x2bcb | ",
            ),
            Check::Has(
                "net: unbound httpd-test (12:2=0x800 & 14:1=0x45 & 20:2/0x1fff=0x0 & 23:1=0x6 & 36:2=0x50): received ",
            ),
            // QEMU learns the guest's MAC address from the first ARP it sees: its own
            // request, which the kernel answers, or an app's request for the gateway,
            // whose reply the kernel gives the apps. Which comes first is a race (a loaded
            // host once gave "answered 0 ARP requests ... gave 1 ARP replies"), so the
            // counts are not checked here; the registry's host test
            // the_kernel_answers_arp_and_ping_and_shares_arp_replies checks the answers.
            Check::Has("net: sharing ended: the kernel answered "),
            Check::Count(", refused 0", 2),
            Check::Has("httpd: done"),
            Check::Has("kv: shutdown after"),
            Check::Has("manifest: every app returned"),
            Check::Lacks("FAILED"),
            Check::Lacks("panicked"),
        ],
        ..HTTPD
    },
    // Two apps asking for the same traffic: whichever binds second is refused with the
    // first one named, and ends alone; the first serves every httpd check.
    Case {
        name: "badinput::filter-overlap",
        append: "ip=10.0.2.15/24,10.0.2.2 apps=httpd-test:0:32M,httpd-test:1:32M",
        checks: &[
            Check::Has(
                "httpd: FAILED: network interface: the filter overlaps one of the app httpd-test: some frame would match both",
            ),
            Check::Count("httpd: serving http://10.0.2.15:80/", 1),
            Check::Has("httpd: done"),
            Check::Has("manifest: 1 of 2 apps failed"),
        ],
        // The refused app's failure is the run's.
        exit: Some(35),
        client: Some(crate::httpclient::HTTPD),
        ..HTTPD
    },
    // TCP segmentation offload on rexo-tcp over a tap (which offers virtio-net
    // HOST_TSO4): 32 connections at once fetch 100 KiB, 1 MiB and 10 MiB files
    // byte-exact while the NIC's buffers for large frames run out; the status page must
    // then show large segments cut by the NIC and no frame dropped
    // (xtask/src/httpclient.rs), and the closing log that super-segments went out.
    Case {
        name: "net::httpd-tso",
        append: "app=httpd-test ip=10.0.2.15/24,10.0.2.2",
        checks: &[
            Check::Has("httpd: serving http://10.0.2.15:80/"),
            Check::Has(" with rexo-tcp, test hook"),
            Check::Has("super-segments cut by the NIC"),
            Check::Lacks(" 0 super-segments cut by the NIC"),
            Check::Has("httpd: done"),
            Check::Lacks("FAILED"),
            Check::Lacks("panicked"),
        ],
        ..HTTPD_TSO
    },
    // Path MTU Discovery on rexo-tcp: the client sits behind a router whose route to it
    // takes 1,400-byte datagrams (a tunnel), announcing an MSS of 1460; the router
    // refuses httpd's full segments with ICMP "fragmentation needed", httpd lowers the
    // connection's MSS and the 100 KiB and 1 MiB answers arrive byte-exact
    // (xtask/src/httpclient.rs), and the closing log counts the lowering.
    Case {
        name: "net::httpd-narrow-path",
        append: "app=httpd-test ip=10.0.2.15/24,10.0.2.2",
        qemu: &[Arg::TapNarrowPath("virtio-net-pci")],
        client: Some(crate::httpclient::HTTPD_NARROW_PATH),
        checks: &[
            Check::Has("httpd: serving http://10.0.2.15:80/"),
            Check::Has(" with rexo-tcp, test hook"),
            Check::Has(" lowered an MSS"),
            Check::Lacks("ICMP: 0 lowered an MSS"),
            Check::Has("httpd: done"),
            Check::Lacks("FAILED"),
            Check::Lacks("panicked"),
        ],
        ..HTTPD_TSO
    },
    // The same on smoltcp's TCP (the stack raises the peer's MSS for smoltcp and the
    // NIC cuts its large segments: libos/net/src/tso.rs).
    Case {
        name: "net::httpd-smoltcp-tso",
        append: "app=httpd-test-smoltcp ip=10.0.2.15/24,10.0.2.2",
        checks: SMOLTCP_CHECKS,
        ..HTTPD_TSO
    },
    // httpd on both cores: virtio-net with two queue pairs on a multi-queue tap, a stack
    // per pair on its own core over one shared site. 16 connections from their own
    // ports download files byte-exact (the tap spreads them over its queues by hash);
    // the status page must count every answer, summed over the cores, with both
    // cores' shares non-zero (xtask/src/httpclient.rs), and each core must log what it
    // served.
    Case {
        name: "net::httpd-per-core",
        append: "app=httpd-test ip=10.0.2.15/24,10.0.2.2",
        qemu: &[Arg::TapPairs(VIRTIO_NET_TWO_PAIRS)],
        client: Some(crate::httpclient::HTTPD_PER_CORE),
        checks: &[
            Check::Has("httpd: serving http://10.0.2.15:80/"),
            Check::Has("2 of 2 core(s) serve, a stack per queue pair"),
            Check::Has("httpd: core 0 served "),
            Check::Has("httpd: core 1 served "),
            Check::Lacks("served 0 answers"),
            Check::Has("httpd: done"),
            Check::Lacks("FAILED"),
            Check::Lacks("panicked"),
        ],
        timeout_s: 300,
        ..HTTPD
    },
    // A SYN flood: 100,000 SYNs from spoofed addresses while an established connection
    // keeps asking; every SYN is answered (a reset past the backlog), the connection is
    // served throughout, stale handshakes give their slots back, and a new connection
    // is served after the flood.
    Case {
        name: "badinput::syn-flood",
        machine: Machine::Q35,
        append: "app=httpd-test ip=10.0.2.15/24,10.0.2.2",
        qemu: &[Arg::SynFlood("virtio-net-pci")],
        timeout_s: 240,
        exit: Some(0),
        checks: &[
            Check::Has("httpd: serving http://10.0.2.15:80/"),
            Check::Has(" with rexo-tcp, test hook"),
            Check::Has("stale handshakes dropped"),
            Check::Lacks(FLOOD_DROPPED_NONE),
            Check::Has("httpd: done"),
            Check::Lacks("FAILED"),
            Check::Lacks("panicked"),
        ],
        ..BASE
    },
    // The same on smoltcp's TCP.
    Case {
        name: "badinput::syn-flood-smoltcp",
        machine: Machine::Q35,
        append: "app=httpd-test-smoltcp ip=10.0.2.15/24,10.0.2.2",
        qemu: &[Arg::SynFlood("virtio-net-pci")],
        timeout_s: 240,
        exit: Some(0),
        checks: &[
            Check::Has("httpd: serving http://10.0.2.15:80/"),
            Check::Has(" with smoltcp, test hook"),
            Check::Has("stale handshakes dropped"),
            Check::Lacks(FLOOD_DROPPED_NONE),
            Check::Has("httpd: done"),
            Check::Lacks("FAILED"),
            Check::Lacks("panicked"),
        ],
        ..BASE
    },
    Case {
        name: "kv::protocol",
        client: Some(crate::kvtests::PROTOCOL),
        ..KV
    },
    Case {
        name: "kv::bad-input",
        client: Some(crate::kvtests::BAD_INPUT),
        ..KV
    },
    Case {
        name: "kv::eviction",
        append: "app=kv-small",
        client: Some(crate::kvtests::EVICTION),
        ..KV
    },
    Case {
        name: "kv::load",
        client: Some(crate::kvtests::LOAD),
        ..KV
    },
    // Real clients, installed by `deps` (libmemcached-tools from Debian, pymemcache from
    // PyPI); skipped, saying why, only where they cannot be installed.
    Case {
        name: "kv::memcapable",
        client: Some(crate::kvtests::MEMCAPABLE),
        ..KV
    },
    Case {
        name: "kv::memcaslap",
        client: Some(crate::kvtests::MEMCASLAP),
        ..KV
    },
    Case {
        name: "kv::pymemcache",
        client: Some(crate::kvtests::PYMEMCACHE),
        ..KV
    },
    KV_PER_CORE,
    // The same on the 82574 (e1000e) on a two-queue tap: RSS hashes TCP flows by
    // addresses and ports, UDP ones by addresses only (all the client's land on one
    // queue), so both cores serve unless all 16 TCP flows hash to that queue too (2^-16).
    Case {
        name: "kv::per-core-e1000e",
        qemu: &[Arg::TapPairs("e1000e")],
        ..KV_PER_CORE
    },
];

/// A `storage::rexofs-` case: the monitor's `fs` commands on a Rexo file system image
/// made on the host (set `name` and the disk's `qemu`); the host checks it afterwards.
const REXOFS_MONITOR: Case = Case {
    machine: Machine::Q35,
    append: "app=monitor",
    input: "fs ls /\rfs cat /docs/hello.txt\rfs mkdir /new\rfs cp /docs/hello.txt /new/copy.txt\rfs write /new/written.txt written in Rexo\rfs rm /big.bin\rfs rm /docs\rfs cat /nope\rfs ls /new\rfs df\rfs fsck\rpoweroff\r",
    exit: Some(0),
    timeout_s: 60,
    checks: rexofs_monitor_checks!(),
    ..BASE
};

/// A `netcheck` case on q35 with one NIC (set `qemu`).
const NET: Case = Case {
    machine: Machine::Q35,
    append: "app=netcheck",
    timeout_s: 120,
    exit: Some(0),
    checks: &[
        Check::Has("sent 2000 frames of 60-1514 bytes"),
        Check::Has(", 1000 of them gathered from 2-5 segments"),
        Check::Count("-byte frame refused", 2),
        Check::Count("gathered frame refused", 2),
        Check::Has("received 2000 frames byte-exact, echoed 2000"),
        Check::Has("netcheck: done, 1 interface(s)"),
        Check::Lacks("FAILED"),
    ],
    ..BASE
};

/// What httpd's counter line says when its stack gave up no half-open connection, which
/// a flood of 100,000 spoofed SYNs must make it do (rexo-tcp evicts or expires them,
/// smoltcp recycles its stale listening sockets).
const FLOOD_DROPPED_NONE: &str = "; 0 stale handshakes dropped";

/// A `diskcheck` run on one disk whose device fails a write ([`Attach::Faulty`]): the
/// app fails, so the kernel ends the run as failed (QEMU exit status 35).
const FAULTY_DISK: Case = Case {
    machine: Machine::Q35,
    append: "app=diskcheck",
    qemu_args: &["-nic", "none"],
    timeout_s: 60,
    exit: Some(35),
    ..BASE
};

/// What a failed write shows: the error of the request that holds
/// [`FAULTY_SECTOR`](crate::diskimage::FAULTY_SECTOR) (diskcheck writes 64 sectors a
/// request, and 64 divides 4096) with the device's status, the check ending with a
/// failure, and the kernel saying the app failed, then ending the run as failed (exit 35)
/// without a crash report.
const DISK_ERROR: &[Check] = &[
    Check::Has("diskcheck: disk 0: FAILED: sectors 4096+64: "),
    Check::Has(" failed with status "),
    Check::Has("diskcheck: done, 1 disk(s), FAILED"),
    Check::Has("app 'diskcheck' failed: the app failed with code 1"),
    Check::Lacks("!!! rexo"),
];

/// An `httpd` case: q35 with a virtio-net NIC on user networking, TCP 80 forwarded; the
/// app must return (QEMU powers off) after the client's `/__shutdown`.
/// What the `boot::disk-*` cases check: GRUB started the kernel with the image's
/// command line, and httpd served the site from the booted disk.
const DISK_BOOT_CHECKS: &[Check] = &[
    Check::Has("(Multiboot2), command line 'app=httpd-test'"),
    Check::Has(" ms, 4 of them from disk"),
    Check::Has("httpd: done"),
    Check::Lacks("FAILED"),
];

/// virtio-net with two queue pairs: `mq=on`, and six MSI-X vectors (one for each of
/// the four queues, the configuration changes and the control queue).
pub const VIRTIO_NET_TWO_PAIRS: &str = "virtio-net-pci,mq=on,vectors=6";

const HTTPD: Case = Case {
    machine: Machine::Q35,
    append: "app=httpd-test",
    qemu: &[Arg::UserNet {
        model: "virtio-net-pci",
        tcp: &[80],
        udp: &[],
    }],
    timeout_s: 180,
    exit: Some(0),
    checks: &[
        Check::Has("httpd: serving http://10.0.2.15:80/"),
        Check::Has(" with rexo-tcp, test hook"),
        Check::Has(", 0 DHCP leases lost, 0 refused"),
        Check::Has("httpd: done"),
        Check::Lacks("FAILED"),
        Check::Lacks("panicked"),
    ],
    ..BASE
};

/// What an `httpd-test-smoltcp` case checks: [`HTTPD`]'s checks, on smoltcp.
const SMOLTCP_CHECKS: &[Check] = &[
    Check::Has("httpd: serving http://10.0.2.15:80/"),
    Check::Has(" with smoltcp, test hook"),
    Check::Has("httpd: done"),
    Check::Lacks("FAILED"),
    Check::Lacks("panicked"),
];

/// An httpd case over a tap whose virtio-net offers segmentation offload, driven by
/// [`HTTPD_TSO`](crate::httpclient::HTTPD_TSO).
const HTTPD_TSO: Case = Case {
    qemu: &[Arg::Tap("virtio-net-pci")],
    client: Some(crate::httpclient::HTTPD_TSO),
    timeout_s: 300,
    ..HTTPD
};

/// `kv::per-core`: kv on both cores, virtio-net with two queue pairs on a multi-queue
/// tap, a stack per pair on its own core over one sharded cache. Many flows from their
/// own ports (xtask/src/kvtests.rs), which the tap spreads over the queues by hash: the
/// chance that all 32 land on one queue is 2^-31. Both cores must have served requests.
const KV_PER_CORE: Case = Case {
    name: "kv::per-core",
    append: "app=kv ip=10.0.2.15/24,10.0.2.2",
    qemu: &[Arg::TapPairs(VIRTIO_NET_TWO_PAIRS)],
    client: Some(crate::kvtests::PER_CORE),
    checks: &[
        Check::Has("2 of 2 core(s) serve, a stack per queue pair"),
        Check::Has("kv: core 0 served "),
        Check::Has("kv: core 1 served "),
        Check::Lacks("served 0 requests"),
        Check::Has("kv: shutdown after"),
        Check::Lacks("FAILED"),
        Check::Lacks("panicked"),
    ],
    ..KV
};

/// A `kv` case: q35 with a virtio-net NIC on user networking, TCP and UDP 11211
/// forwarded; the app must return (QEMU powers off) after the client's `shutdown`.
const KV: Case = Case {
    machine: Machine::Q35,
    mem_mib: 512,
    append: "app=kv",
    qemu: &[Arg::UserNet {
        model: "virtio-net-pci",
        tcp: &[crate::kvtests::PORT],
        udp: &[crate::kvtests::PORT],
    }],
    timeout_s: 120,
    exit: Some(0),
    checks: &[
        Check::Has("kv: serving memcached on"),
        Check::Has("kv: shutdown after"),
        Check::Has(", 0 DHCP leases lost, 0 refused"),
        Check::Lacks("FAILED"),
        Check::Lacks("panicked"),
    ],
    ..BASE
};

/// A case of a NIC that can wake a core (MSI-X: virtio-net, e1000e; INTx: e1000,
/// rtl8139): [`NET`], and the core slept between the peer's frames, woken by the
/// device's interrupt (netcheck fails if the naps ran their full length).
const WAKING_NET: Case = Case {
    checks: &[
        Check::Has("sent 2000 frames of 60-1514 bytes"),
        Check::Has(", 1000 of them gathered from 2-5 segments"),
        Check::Count("-byte frame refused", 2),
        Check::Count("gathered frame refused", 2),
        Check::Has("received 2000 frames byte-exact, echoed 2000"),
        Check::Has("times between frames"),
        Check::Has("netcheck: done, 1 interface(s)"),
        Check::Lacks("FAILED"),
    ],
    ..NET
};

/// `diskcheck`'s line for a whole [`DISK_BYTES`] disk written.
const DISK_WROTE: &str = "wrote 16384 sectors in";
/// `diskcheck`'s line for a whole [`DISK_BYTES`] disk read back.
const DISK_READ_BACK: &str = "read back 16384 sectors byte-exact";
/// The kernel's line for disk 0 told of the power-off after `diskcheck` returned
/// (docs/drivers.md, "Power-off": NVMe's CSTS.SHST complete, an ATA disk's FLUSH CACHE
/// and STANDBY IMMEDIATE done, virtio-blk's FLUSH done).
const DISK_TOLD: &str = " disk 0: told of the power-off";
/// The kernel's warning for a disk not told of the power-off.
const DISK_NOT_TOLD: &str = "not told of the power-off";

/// What the `power::reboot-flushes-*` cases check: the disk told of the reboot, its
/// cache flushed (QEMU's `ide_exec_cmd` trace, FLUSH CACHE EXT) and no STANDBY
/// IMMEDIATE sent.
const REBOOT_FLUSHES: &[Check] = &[
    Check::Has(" disk 0: told of the reboot"),
    Check::QemuSaid("cmd 0xea"),
    Check::QemuNeverSaid("cmd 0xe0"),
    Check::Lacks("not told of the"),
];

/// A [`DISK`] case whose disk can wake a core (MSI-X, MSI, or IDE's IRQ 14; attach it
/// [`Attach::Throttled`] or [`Attach::LegacyIde`]): diskcheck slept during reads, woken
/// by each completion's interrupt (it fails if no nap happened or the naps ran their
/// full length).
const WAKING_DISK: Case = Case {
    checks: &[
        Check::Has("completions can wake a core through "),
        Check::Has(DISK_WROTE),
        Check::Has(DISK_READ_BACK),
        Check::Has("read past the end refused"),
        Check::Has("diskcheck: disk 0: flushed"),
        Check::Has("diskcheck: disk 0: slept "),
        Check::Has("diskcheck: disk 0: interrupt binding: vector "),
        Check::Has("diskcheck: disk 0: interrupt binding returned: arming refused"),
        Check::Has("diskcheck: done, 1 disk(s)"),
        Check::Has(DISK_TOLD),
        Check::Lacks(DISK_NOT_TOLD),
        Check::Lacks("FAILED"),
    ],
    ..DISK
};

/// A `diskcheck` case on q35 with one disk (set `qemu`); no NIC (QEMU's default one
/// would only add a device the case does not use).
const DISK: Case = Case {
    machine: Machine::Q35,
    append: "app=diskcheck",
    qemu_args: &["-nic", "none"],
    timeout_s: 120,
    exit: Some(0),
    checks: &[
        Check::Has(DISK_WROTE),
        Check::Has(DISK_READ_BACK),
        Check::Has("read past the end refused"),
        Check::Has("diskcheck: disk 0: flushed"),
        Check::Has("diskcheck: done, 1 disk(s)"),
        Check::Has(DISK_TOLD),
        Check::Lacks(DISK_NOT_TOLD),
        Check::Lacks("FAILED"),
    ],
    ..BASE
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_grouped() {
        for (i, case) in CASES.iter().enumerate() {
            assert!(case.name.contains("::"), "{}", case.name);
            assert!(
                CASES[i + 1..].iter().all(|other| other.name != case.name),
                "duplicate {}",
                case.name
            );
            assert!(!case.checks.is_empty(), "{} checks nothing", case.name);
        }
    }

    #[test]
    fn disk_lines_match_the_image_size() {
        let sectors = DISK_BYTES / crate::diskimage::SECTOR as u64;
        assert_eq!(DISK_WROTE, format!("wrote {sectors} sectors in"));
        assert_eq!(
            DISK_READ_BACK,
            format!("read back {sectors} sectors byte-exact")
        );
    }

    #[test]
    fn driver_cases_have_their_devices() {
        for case in CASES.iter().filter(|c| c.name.starts_with("drivers::")) {
            let nics = case
                .qemu
                .iter()
                .filter(|a| matches!(a, Arg::Nic(_)))
                .count();
            let disks = case
                .qemu
                .iter()
                .filter(|a| matches!(a, Arg::Disk(_)))
                .count();
            assert!(nics + disks > 0, "{}", case.name);
            let app = if nics > 0 {
                "app=netcheck"
            } else {
                "app=diskcheck"
            };
            assert_eq!(case.append, app, "{}", case.name);
            assert!(
                case.checks.contains(&Check::Lacks("FAILED")),
                "{}",
                case.name
            );
            if case.qemu.contains(&Arg::KillAfterFlush) {
                assert_eq!(case.exit, None, "{}", case.name);
            }
        }
    }

    #[test]
    fn client_cases_forward_ports() {
        for case in CASES.iter().filter(|c| c.client.is_some()) {
            assert!(
                // A tap's namespace, but TapQueues' host end is the queue peer, no client.
                case.qemu.iter().any(|a| matches!(a, Arg::UserNet { .. })
                    || a.on_tap() && !matches!(a, Arg::TapQueues(_))),
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn queue_cases_match_the_peer() {
        use rexo_devcheck::pattern::{DATAGRAMS, FLOWS, QUEUE_FRAMES, WAKE_DATAGRAMS};
        let queues = crate::queuepeer::QUEUES;
        for case in CASES.iter().filter(|c| c.append == "app=netqueues") {
            assert!(
                case.qemu.iter().any(|a| matches!(a, Arg::TapQueues(_))),
                "{}",
                case.name
            );
            let lines = [
                format!("{queues} queue pair(s) ("),
                format!("sent {QUEUE_FRAMES} frames on each of {queues} transmit queues"),
                format!("received {DATAGRAMS} datagrams of {FLOWS} flows byte-exact: queue 0 "),
                format!("times waiting for {WAKE_DATAGRAMS} datagrams on receive queue 1"),
            ];
            for line in lines {
                assert!(
                    case.checks
                        .iter()
                        .any(|c| matches!(c, Check::Has(text) if text.starts_with(&line))),
                    "{}: {line}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn iso_cases_use_machines_with_a_cdrom() {
        for case in CASES.iter().filter(|c| c.boot != Boot::Pvh) {
            assert_ne!(case.machine, Machine::Microvm, "{}", case.name);
        }
    }
}
