//! The two virtio PCI transports: modern (virtio 1.x, registers in memory BARs named by
//! vendor-specific capabilities, spec section 4.1.4) and legacy (the transitional
//! devices' I/O BAR 0, spec section 4.1.4.8), behind one [`Transport`].

use rexo_api::DeviceError;
use rexo_devio::{DeviceFunction, Mmio, MsixTable, Platform, PortWindow};
use rexo_pci::BarSlot;

use crate::queue::{Doorbell, Virtqueue};

/// PCI vendor ID of virtio devices (Red Hat, Inc.).
pub const VENDOR: u16 = 0x1AF4;

/// Whether PCI function `function` is a virtio device with the transitional or the
/// modern-only device ID of one kind (spec 4.1.2: `transitional`, then 0x1040 + the
/// device type).
pub fn is_device(function: &rexo_pci::Function, transitional: u16, modern: u16) -> bool {
    let header = &function.header;
    header.vendor() == VENDOR && [transitional, modern].contains(&header.device_id())
}

/// The function's MSI-X table, switched on with every entry masked before the transport
/// is read: on a legacy device it moves the device configuration (spec 4.1.4.8). `None`
/// when there is none, logged as `"{driver} ADDRESS: {without}: why"`.
pub fn msix_first(function: &mut DeviceFunction, driver: &str, without: &str) -> Option<MsixTable> {
    function
        .msix()
        .inspect_err(|error| log::info!("{driver} {}: {without}: {error}", function.address()))
        .ok()
}

/// Device status bit: the guest noticed the device (spec 2.1).
pub const STATUS_ACKNOWLEDGE: u8 = 1;
/// Device status bit: the guest has a driver for it.
pub const STATUS_DRIVER: u8 = 2;
/// Device status bit: the driver is set up and ready.
pub const STATUS_DRIVER_OK: u8 = 4;
/// Device status bit: feature negotiation is complete (modern only).
pub const STATUS_FEATURES_OK: u8 = 8;
/// Device status bit: the device hit an error and needs a reset.
pub const STATUS_NEEDS_RESET: u8 = 64;
/// Device status bit: the driver gave up on the device.
pub const STATUS_FAILED: u8 = 128;

/// Feature bit: the device follows virtio 1.x (spec 6); required on the modern transport.
pub const F_VERSION_1: u64 = 1 << 32;

/// Feature bit: the device's memory accesses go through the platform's address
/// translation (spec 6.1; an IOMMU, when the platform has one). Accepted whenever
/// offered: the kernel turns no IOMMU on, so the physical addresses the driver gives are
/// the bus addresses the device must use.
const F_ACCESS_PLATFORM: u64 = 1 << 33;
/// Feature bit: the device needs the barriers a hardware device needs (spec 6.1).
/// Accepted whenever offered: [`rexo_devio::barrier`] is a full fence (`mfence`).
const F_ORDER_PLATFORM: u64 = 1 << 36;
/// What a hardware virtio device offers and may refuse FEATURES_OK without (spec 6.1:
/// the driver SHOULD accept both): accepted on the modern transport when offered.
const F_PLATFORM: u64 = F_ACCESS_PLATFORM | F_ORDER_PLATFORM;

/// Capability ID of a vendor-specific capability (PCI 3.0, 6.7).
const CAP_VENDOR: u8 = 0x09;
/// `cfg_type` of the common configuration structure (spec 4.1.4).
const CFG_COMMON: u8 = 1;
/// `cfg_type` of the notification structure.
const CFG_NOTIFY: u8 = 2;
/// `cfg_type` of the device-specific configuration structure.
const CFG_DEVICE: u8 = 4;
/// Bytes of a `virtio_pci_cap` (spec 4.1.4).
const CAP_LEN: u8 = 16;
/// Bytes of a `virtio_pci_notify_cap`: a `virtio_pci_cap` and `notify_off_multiplier`
/// after it (spec 4.1.4.4).
const NOTIFY_CAP_LEN: u8 = CAP_LEN + 4;
/// The most capability entries that fit after the 64-byte header (192 bytes / 4).
const MAX_CAPABILITIES: usize = 48;

// The common configuration structure (spec 4.1.4.3), offsets in its window.
/// Selects which 32 bits `DEVICE_FEATURE` shows.
const COMMON_DEVICE_FEATURE_SELECT: usize = 0x00;
/// 32 bits of the device's features.
const COMMON_DEVICE_FEATURE: usize = 0x04;
/// Selects which 32 bits `DRIVER_FEATURE` takes.
const COMMON_DRIVER_FEATURE_SELECT: usize = 0x08;
/// 32 bits of the driver's accepted features.
const COMMON_DRIVER_FEATURE: usize = 0x0C;
/// The device status byte.
const COMMON_DEVICE_STATUS: usize = 0x14;
/// Bumped by the device whenever its configuration changes.
const COMMON_CONFIG_GENERATION: usize = 0x15;
/// Selects the queue the `QUEUE_*` registers show.
const COMMON_QUEUE_SELECT: usize = 0x16;
/// The selected queue's size (its maximum on reset; 0: no such queue).
const COMMON_QUEUE_SIZE: usize = 0x18;
/// 1: the selected queue is in use.
const COMMON_QUEUE_ENABLE: usize = 0x1C;
/// The selected queue's MSI-X table entry (`NO_VECTOR`: none).
const COMMON_QUEUE_MSIX_VECTOR: usize = 0x1A;
/// The selected queue's doorbell, in `notify_off_multiplier` units.
const COMMON_QUEUE_NOTIFY_OFF: usize = 0x1E;
/// The selected queue's descriptor table address (64-bit).
const COMMON_QUEUE_DESC: usize = 0x20;
/// The selected queue's available ring address (64-bit).
const COMMON_QUEUE_DRIVER: usize = 0x28;
/// The selected queue's used ring address (64-bit).
const COMMON_QUEUE_DEVICE: usize = 0x30;
/// Bytes of the common configuration structure.
const COMMON_LEN: usize = 0x38;

// The legacy I/O BAR 0 (spec 4.1.4.8), offsets in the port window.
/// The device's features (the low 32 only: legacy has no more).
const LEGACY_DEVICE_FEATURES: u16 = 0x00;
/// The driver's accepted features.
const LEGACY_DRIVER_FEATURES: u16 = 0x04;
/// The selected queue's page frame number (address / 4096).
const LEGACY_QUEUE_PFN: u16 = 0x08;
/// The selected queue's size (fixed by the device; 0: no such queue).
const LEGACY_QUEUE_SIZE: u16 = 0x0C;
/// Selects the queue the `QUEUE_*` registers show.
const LEGACY_QUEUE_SELECT: u16 = 0x0E;
/// Writing a queue number here notifies that queue.
const LEGACY_QUEUE_NOTIFY: u16 = 0x10;
/// The device status byte.
const LEGACY_DEVICE_STATUS: u16 = 0x12;
/// The selected queue's MSI-X table entry, when MSI-X is on.
const LEGACY_QUEUE_VECTOR: u16 = 0x16;
/// The device configuration when MSI-X is off...
const LEGACY_CONFIG: u16 = 0x14;
/// ... and when it is on (two vector registers come first).
const LEGACY_CONFIG_MSIX: u16 = 0x18;
/// The page size the legacy queue PFN counts in.
const LEGACY_PAGE_SHIFT: u32 = 12;
/// The MSI-X capability's enable bit, in its first dword (message control bit 15).
const MSIX_ENABLE: u32 = 1 << 31;

/// Reads of the device configuration before a changing one is taken as it stands.
const CONFIG_READ_TRIES: usize = 16;
/// How long a reset may take before the device is declared dead.
const RESET_TIMEOUT_MS: u64 = 1_000;

/// One `virtio_pci_cap` (spec 4.1.4): where a configuration structure lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VendorCap {
    /// Which structure (`CFG_*`).
    pub cfg_type: u8,
    /// The BAR holding it.
    pub bar: u8,
    /// Its offset in the BAR.
    pub offset: u32,
    /// Its length in bytes.
    pub length: u32,
}

impl VendorCap {
    /// Decodes a capability from its first four dwords (`words[0]` at the capability's
    /// offset): `cap_vndr, cap_next, cap_len, cfg_type`, then `bar, id, padding`, then
    /// `offset`, then `length`. `None` when it is not a virtio structure one can use
    /// (shorter than a `virtio_pci_cap`, or a notification capability shorter than its
    /// 20 bytes, whose `notify_off_multiplier` would be read from past its end; a BAR
    /// number past 5: reserved, spec 4.1.4; or a common or device configuration offset
    /// not 4-byte aligned, or a notification one not 2-byte aligned, as 4.1.4.3.1,
    /// 4.1.4.6.1 and 4.1.4.4.1 require: their registers would be misaligned).
    pub fn decode(words: [u32; 4]) -> Option<Self> {
        let cap_len = (words[0] >> 16) as u8;
        let cfg_type = (words[0] >> 24) as u8;
        let bar = words[1] as u8;
        let offset = words[2];
        let (alignment, min_len) = match cfg_type {
            CFG_COMMON | CFG_DEVICE => (4, CAP_LEN),
            CFG_NOTIFY => (2, NOTIFY_CAP_LEN),
            _ => (1, CAP_LEN),
        };
        (cap_len >= min_len && bar <= 5 && offset.is_multiple_of(alignment)).then_some(Self {
            cfg_type,
            bar,
            offset,
            length: words[3],
        })
    }
}

/// Whether `multiplier` is a usable `notify_off_multiplier`: 0 or an even power of two
/// (spec 4.1.4.4), so that every queue's doorbell is 2-byte aligned for its 16-bit write.
pub fn notify_multiplier_valid(multiplier: u32) -> bool {
    multiplier == 0 || multiplier.is_power_of_two() && multiplier >= 2
}

/// The offset of the doorbell of a queue whose `queue_notify_off` is `notify_off` in a
/// notification area of `len` bytes with `notify_off_multiplier` `multiplier` (spec
/// 4.1.4.4); `None` when its 16-bit register is not inside the area. Its alignment comes
/// from the multiplier, checked once by [`notify_multiplier_valid`].
pub fn doorbell_offset(notify_off: u16, multiplier: u32, len: usize) -> Option<usize> {
    let at = usize::from(notify_off).checked_mul(usize::try_from(multiplier).ok()?)?;
    config_holds(len, at, 2).then_some(at)
}

/// Whether a window of `len` bytes holds the `width` bytes at `offset`.
pub fn config_holds(len: usize, offset: usize, width: usize) -> bool {
    offset.checked_add(width).is_some_and(|end| end <= len)
}

/// A configuration field that `negotiated` feature promises, read by `read` (only when
/// negotiated): `None` without the feature, refused ([`DeviceError::Unsupported`], `what`)
/// when the configuration window lacks it, not taken as the feature missing.
pub fn promised<T>(
    negotiated: bool,
    read: impl FnOnce() -> Option<T>,
    what: &'static str,
) -> Result<Option<T>, DeviceError> {
    match negotiated {
        true => read().map(Some).ok_or(DeviceError::Unsupported(what)),
        false => Ok(None),
    }
}

/// Where the device configuration starts in a legacy I/O BAR 0 of `bar_len` ports with
/// MSI-X on (`msix`) or off, and how many of its bytes the BAR holds: (offset, length).
/// [`DeviceError::BadBar`] when the BAR ends before the configuration starts: a register
/// of the legacy header (spec 4.1.4.8: 20 bytes, 24 with the two MSI-X vector registers)
/// would lie outside the port window, whose every access is bounds-checked.
pub fn legacy_layout(bar_len: u16, msix: bool) -> Result<(u16, u16), DeviceError> {
    let config = if msix {
        LEGACY_CONFIG_MSIX
    } else {
        LEGACY_CONFIG
    };
    match bar_len.checked_sub(config) {
        Some(config_len) => Ok((config, config_len)),
        None => Err(DeviceError::BadBar {
            index: 0,
            why: "too small for the legacy virtio header (20 bytes, 24 with MSI-X)",
        }),
    }
}

/// The virtio structures a function's capability list names (the first usable one of
/// each type, as spec 4.1.4.1 asks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ModernCaps {
    /// The common configuration.
    common: Option<VendorCap>,
    /// The notification area and its `notify_off_multiplier`.
    notify: Option<(VendorCap, u32)>,
    /// The device-specific configuration.
    device: Option<VendorCap>,
}

/// Walks the capability list in configuration space (bounded, pointers into the header
/// refused) collecting the virtio structures.
fn find_caps(function: &DeviceFunction) -> Result<ModernCaps, DeviceError> {
    let mut caps = ModernCaps::default();
    // Status register bit 4: a capability list exists.
    if function.config_read(0x04)? & (1 << 20) == 0 {
        return Ok(caps);
    }
    let mut next = (function.config_read(0x34)? & 0xFC) as u16;
    for _ in 0..MAX_CAPABILITIES {
        if next < 0x40 {
            break;
        }
        let first = function.config_read(next)?;
        if first as u8 == CAP_VENDOR {
            let words = [
                first,
                function.config_read(next + 4)?,
                function.config_read(next + 8)?,
                function.config_read(next + 12)?,
            ];
            match VendorCap::decode(words) {
                Some(cap) if cap.cfg_type == CFG_COMMON && caps.common.is_none() => {
                    caps.common = Some(cap)
                }
                Some(cap) if cap.cfg_type == CFG_NOTIFY && caps.notify.is_none() => {
                    let multiplier = function.config_read(next + 16)?;
                    caps.notify = Some((cap, multiplier));
                }
                Some(cap) if cap.cfg_type == CFG_DEVICE && caps.device.is_none() => {
                    caps.device = Some(cap)
                }
                _ => {}
            }
        }
        next = ((first >> 8) & 0xFC) as u16;
    }
    Ok(caps)
}

/// The modern transport's register windows.
#[derive(Clone, Debug)]
pub struct Modern {
    /// The common configuration structure.
    common: Mmio,
    /// The notification area.
    notify: Mmio,
    /// Bytes between consecutive `queue_notify_off` values.
    notify_multiplier: u32,
    /// The device-specific configuration.
    device: Mmio,
}

/// How the driver reaches one virtio device.
#[derive(Clone, Debug)]
pub enum Transport {
    /// virtio 1.x through memory BARs.
    Modern(Modern),
    /// The legacy interface of a transitional device, through I/O BAR 0.
    Legacy {
        /// BAR 0.
        ports: PortWindow,
        /// Where the device configuration starts (depends on MSI-X being on).
        config: u16,
        /// Bytes of device configuration after it (to the end of the BAR).
        config_len: u16,
    },
}

/// The window `cap` names, from its BAR.
fn cap_window(function: &mut DeviceFunction, cap: VendorCap) -> Result<Mmio, DeviceError> {
    let bar = function.mmio(usize::from(cap.bar))?;
    bar.window(cap.offset as usize, cap.length as usize)
        .ok_or(DeviceError::BadBar {
            index: cap.bar,
            why: "a virtio structure lies past its end",
        })
}

/// Whether MSI-X is on (it moves the legacy device configuration).
fn msix_enabled(function: &DeviceFunction) -> Result<bool, DeviceError> {
    match function.function().capabilities.msix {
        Some(msix) => Ok(function.config_read(msix.offset)? & MSIX_ENABLE != 0),
        None => Ok(false),
    }
}

impl Transport {
    /// Finds the transport of `function` (turning its decoding and DMA on): modern when
    /// the capabilities name common, notify and device structures, else (or when those
    /// windows are unusable, e.g. a BAR the kernel cannot map) legacy through I/O BAR 0
    /// for a transitional device (IDs 0x1000..=0x103F).
    pub fn new(function: &mut DeviceFunction) -> Result<Self, DeviceError> {
        function.enable()?;
        let caps = find_caps(function)?;
        let transitional = (0x1000..=0x103F).contains(&function.function().header.device_id());
        match Self::modern(function, caps) {
            Some(Ok(modern)) => return Ok(modern),
            Some(Err(error)) if !transitional => return Err(error),
            Some(Err(error)) => log::warn!(
                "virtio {}: the modern interface is unusable ({error}); using the legacy one",
                function.address()
            ),
            None if !transitional => {
                return Err(DeviceError::Unsupported(
                    "the virtio 1.x capabilities (common, notify, device)",
                ));
            }
            None => {}
        }
        Self::legacy(function)
    }

    /// The modern transport, when the capabilities name its structures.
    fn modern(
        function: &mut DeviceFunction,
        caps: ModernCaps,
    ) -> Option<Result<Self, DeviceError>> {
        let (Some(common), Some((notify, notify_multiplier)), Some(device)) =
            (caps.common, caps.notify, caps.device)
        else {
            return None;
        };
        let mut windows = || {
            let common = cap_window(function, common)?;
            if common.len() < COMMON_LEN {
                return Err(DeviceError::Unsupported(
                    "a whole common configuration structure",
                ));
            }
            if !notify_multiplier_valid(notify_multiplier) {
                return Err(DeviceError::Unsupported(
                    "a notify_off_multiplier of 0 or an even power of two",
                ));
            }
            Ok(Self::Modern(Modern {
                common,
                notify: cap_window(function, notify)?,
                notify_multiplier,
                device: cap_window(function, device)?,
            }))
        };
        Some(windows())
    }

    /// The legacy transport of a transitional device; [`DeviceError::BadBar`] when its
    /// I/O BAR 0 is too small for the legacy header ([`legacy_layout`]).
    fn legacy(function: &DeviceFunction) -> Result<Self, DeviceError> {
        let ports = function.ports(0)?;
        let bar_len = match function.function().bars[0] {
            BarSlot::Bar(bar) => u16::try_from(bar.size).unwrap_or(u16::MAX),
            _ => 0,
        };
        let (config, config_len) = legacy_layout(bar_len, msix_enabled(function)?)?;
        Ok(Self::Legacy {
            ports,
            config,
            config_len,
        })
    }

    /// Whether this is the modern transport.
    pub fn is_modern(&self) -> bool {
        matches!(self, Self::Modern(_))
    }

    /// The device status byte.
    fn status(&self) -> u8 {
        match self {
            Self::Modern(m) => m.common.read8(COMMON_DEVICE_STATUS),
            Self::Legacy { ports, .. } => ports.read8(LEGACY_DEVICE_STATUS),
        }
    }

    /// Writes the device status byte.
    fn write_status(&self, status: u8) {
        match self {
            Self::Modern(m) => m.common.write8(COMMON_DEVICE_STATUS, status),
            Self::Legacy { ports, .. } => ports.write8(LEGACY_DEVICE_STATUS, status),
        }
    }

    /// Adds `bits` to the device status.
    fn add_status(&self, bits: u8) {
        self.write_status(self.status() | bits);
    }

    /// Resets the device (status 0) and waits until it reads back 0 (spec 4.1.4.3.2),
    /// so it no longer touches any memory it was given.
    pub fn reset(&self, platform: &dyn Platform) -> Result<(), DeviceError> {
        self.write_status(0);
        rexo_devio::wait_until(platform, "the device reset", RESET_TIMEOUT_MS, || {
            self.status() == 0
        })
    }

    /// The features the device offers.
    fn device_features(&self) -> u64 {
        match self {
            Self::Modern(m) => {
                let mut features = 0;
                for half in 0..2 {
                    m.common.write32(COMMON_DEVICE_FEATURE_SELECT, half);
                    features |= u64::from(m.common.read32(COMMON_DEVICE_FEATURE)) << (32 * half);
                }
                features
            }
            Self::Legacy { ports, .. } => u64::from(ports.read32(LEGACY_DEVICE_FEATURES)),
        }
    }

    /// Tells the device which features the driver accepts.
    fn write_driver_features(&self, features: u64) {
        match self {
            Self::Modern(m) => {
                for half in 0..2 {
                    m.common.write32(COMMON_DRIVER_FEATURE_SELECT, half);
                    m.common
                        .write32(COMMON_DRIVER_FEATURE, (features >> (32 * half)) as u32);
                }
            }
            Self::Legacy { ports, .. } => ports.write32(LEGACY_DRIVER_FEATURES, features as u32),
        }
    }

    /// Resets the device and negotiates features (spec 3.1.1 steps 1 to 6): of those
    /// the device offers, takes the `wanted` ones, refusing a device without every
    /// `required` one (VERSION_1 is added on the modern transport, where
    /// VIRTIO_F_ACCESS_PLATFORM and VIRTIO_F_ORDER_PLATFORM are taken too when offered:
    /// a hardware device may refuse FEATURES_OK without them). Returns the
    /// negotiated set. The caller then sets up its queues and calls
    /// [`driver_ok`](Self::driver_ok), or [`fail`](Self::fail) on an error.
    pub fn negotiate(
        &self,
        platform: &dyn Platform,
        wanted: u64,
        required: u64,
    ) -> Result<u64, DeviceError> {
        self.negotiate_with(platform, |_| wanted, required)
    }

    /// [`negotiate`](Self::negotiate) with the wanted features chosen by `choose` from
    /// those the device offers (for features that are only of use, or only allowed,
    /// together).
    pub fn negotiate_with(
        &self,
        platform: &dyn Platform,
        choose: impl FnOnce(u64) -> u64,
        required: u64,
    ) -> Result<u64, DeviceError> {
        self.reset(platform)?;
        self.add_status(STATUS_ACKNOWLEDGE);
        self.add_status(STATUS_DRIVER);
        let offered = self.device_features();
        let wanted = choose(offered);
        let (wanted, required) = if self.is_modern() {
            (wanted | F_VERSION_1 | F_PLATFORM, required | F_VERSION_1)
        } else {
            (wanted & 0xFFFF_FFFF, required)
        };
        let accepted = match select_features(offered, wanted, required) {
            Ok(accepted) => accepted,
            Err(missing) => {
                self.fail();
                return Err(DeviceError::Unsupported(missing));
            }
        };
        self.write_driver_features(accepted);
        if self.is_modern() {
            self.add_status(STATUS_FEATURES_OK);
            if self.status() & STATUS_FEATURES_OK == 0 {
                self.fail();
                return Err(DeviceError::Unsupported(
                    "the features offered (FEATURES_OK did not stick)",
                ));
            }
        }
        Ok(accepted)
    }

    /// Says the driver is ready: the device may use its queues.
    pub fn driver_ok(&self) {
        self.add_status(STATUS_DRIVER_OK);
    }

    /// Whether the device says it hit an error and needs a reset (spec 2.1.1: it may
    /// stop processing requests until then).
    pub fn needs_reset(&self) -> bool {
        self.status() & STATUS_NEEDS_RESET != 0
    }

    /// Says the driver gave up on the device.
    pub fn fail(&self) {
        self.add_status(STATUS_FAILED);
    }

    /// Selects queue `index` and reads its size (modern: the maximum; legacy: the size).
    fn select_queue(&self, index: u16) -> u16 {
        match self {
            Self::Modern(m) => {
                m.common.write16(COMMON_QUEUE_SELECT, index);
                m.common.read16(COMMON_QUEUE_SIZE)
            }
            Self::Legacy { ports, .. } => {
                ports.write16(LEGACY_QUEUE_SELECT, index);
                ports.read16(LEGACY_QUEUE_SIZE)
            }
        }
    }

    /// Allocates queue `index` with at most `wanted` entries (a power of two; the legacy
    /// transport's size is the device's). The device learns of it at
    /// [`enable_queue`](Self::enable_queue).
    pub fn allocate_queue(
        &self,
        function: &DeviceFunction,
        index: u16,
        wanted: u16,
    ) -> Result<Virtqueue, DeviceError> {
        let device_size = self.select_queue(index);
        let size = queue_size(device_size, wanted, self.is_modern()).ok_or(
            DeviceError::Unsupported("a queue of a usable size (power of two)"),
        )?;
        let doorbell = match self {
            Self::Modern(m) => {
                let off = m.common.read16(COMMON_QUEUE_NOTIFY_OFF);
                let at = doorbell_offset(off, m.notify_multiplier, m.notify.len()).ok_or(
                    DeviceError::Unsupported("a queue doorbell inside the notification area"),
                )?;
                Doorbell::Mmio {
                    window: m.notify.clone(),
                    at,
                    queue: index,
                }
            }
            Self::Legacy { ports, .. } => Doorbell::Port {
                ports: *ports,
                at: LEGACY_QUEUE_NOTIFY,
                queue: index,
            },
        };
        Virtqueue::new(function.platform(), index, size, doorbell)
    }

    /// Makes `queue` new again for a device that was reset (spec 3.1.1: a reset device
    /// forgets its queues; this is the setup's step 7 again): checks the device still
    /// takes its size, empties its rings and has it signal through MSI-X entry `entry`
    /// again, if it had one. The caller writes its descriptors and gives it back with
    /// [`enable_queue`](Self::enable_queue).
    pub fn renew_queue(
        &self,
        queue: &mut Virtqueue,
        entry: Option<u16>,
    ) -> Result<(), DeviceError> {
        let device_size = self.select_queue(queue.index());
        if queue_size(device_size, queue.size(), self.is_modern()) != Some(queue.size()) {
            return Err(DeviceError::Unsupported(
                "the same queue size after a reset as before",
            ));
        }
        queue.restart();
        match entry {
            Some(entry) => self.queue_vector(queue.index(), entry),
            None => Ok(()),
        }
    }

    /// Has queue `index` signal through MSI-X table entry `entry` (before the queue is
    /// turned on, spec 4.1.5.1.3); the device reads back `NO_VECTOR` when it cannot.
    pub fn queue_vector(&self, index: u16, entry: u16) -> Result<(), DeviceError> {
        let taken = match self {
            Self::Modern(m) => {
                m.common.write16(COMMON_QUEUE_SELECT, index);
                m.common.write16(COMMON_QUEUE_MSIX_VECTOR, entry);
                m.common.read16(COMMON_QUEUE_MSIX_VECTOR)
            }
            Self::Legacy { ports, .. } => {
                ports.write16(LEGACY_QUEUE_SELECT, index);
                ports.write16(LEGACY_QUEUE_VECTOR, entry);
                ports.read16(LEGACY_QUEUE_VECTOR)
            }
        };
        if taken == entry {
            Ok(())
        } else {
            Err(DeviceError::Unsupported("an MSI-X vector for the queue"))
        }
    }

    /// The MSI-X entry queue `index` signals through: entry `entry` when `msix` has it
    /// and the device takes it ([`queue_vector`](Self::queue_vector)), else `None`,
    /// logged naming `device` (the queue is then polled only).
    pub fn queue_entry(
        &self,
        msix: Option<&MsixTable>,
        index: u16,
        entry: u16,
        device: &str,
    ) -> Option<u16> {
        if msix.is_none_or(|table| entry >= table.size()) {
            return None;
        }
        match self.queue_vector(index, entry) {
            Ok(()) => Some(entry),
            Err(error) => {
                log::info!("{device}: no wake-ups on queue {index}: {error}");
                None
            }
        }
    }

    /// Gives the device queue `queue`'s rings and turns it on.
    pub fn enable_queue(&self, queue: &Virtqueue) -> Result<(), DeviceError> {
        let (desc, driver, device) = queue.addresses();
        match self {
            Self::Modern(m) => {
                m.common.write16(COMMON_QUEUE_SELECT, queue.index());
                m.common.write16(COMMON_QUEUE_SIZE, queue.size());
                // 64-bit registers written as two halves, low first (spec 4.1.3.1).
                for (register, address) in [
                    (COMMON_QUEUE_DESC, desc),
                    (COMMON_QUEUE_DRIVER, driver),
                    (COMMON_QUEUE_DEVICE, device),
                ] {
                    m.common.write32(register, address as u32);
                    m.common.write32(register + 4, (address >> 32) as u32);
                }
                m.common.write16(COMMON_QUEUE_ENABLE, 1);
                Ok(())
            }
            Self::Legacy { ports, .. } => {
                let pfn = u32::try_from(desc >> LEGACY_PAGE_SHIFT)
                    .map_err(|_| DeviceError::Unsupported("queue memory below 16 TiB"))?;
                ports.write16(LEGACY_QUEUE_SELECT, queue.index());
                ports.write32(LEGACY_QUEUE_PFN, pfn);
                Ok(())
            }
        }
    }

    /// Reads the device configuration with `read` until the device's configuration
    /// generation says it did not change meanwhile (spec 2.5.1; legacy has no
    /// generation).
    fn consistent<T>(&self, read: impl Fn() -> T) -> T {
        match self {
            Self::Modern(m) => {
                let mut value = read();
                // A device that changes its configuration on every read would keep this
                // going: after a bounded number of tries the last read stands.
                for _ in 0..CONFIG_READ_TRIES {
                    let before = m.common.read8(COMMON_CONFIG_GENERATION);
                    value = read();
                    if m.common.read8(COMMON_CONFIG_GENERATION) == before {
                        break;
                    }
                }
                value
            }
            Self::Legacy { .. } => read(),
        }
    }

    /// Whether the device configuration holds the `width` bytes at `offset`.
    fn config_has(&self, offset: usize, width: usize) -> bool {
        config_holds(self.config_len(), offset, width)
    }

    /// The little-endian 16-bit field at `offset` of the device configuration; `None`
    /// when the configuration the device shows ends before it.
    pub fn config16(&self, offset: usize) -> Option<u16> {
        self.config_has(offset, 2).then(|| {
            self.consistent(|| match self {
                Self::Modern(m) => m.device.read16(offset),
                Self::Legacy { ports, config, .. } => ports.read16(config + offset as u16),
            })
        })
    }

    /// The little-endian 32-bit field at `offset` of the device configuration; `None`
    /// when the configuration ends before it.
    pub fn config32(&self, offset: usize) -> Option<u32> {
        self.config_has(offset, 4)
            .then(|| self.consistent(|| self.raw_config32(offset)))
    }

    /// The little-endian 64-bit field at `offset` (read as two halves, kept consistent);
    /// `None` when the configuration ends before it.
    pub fn config64(&self, offset: usize) -> Option<u64> {
        self.config_has(offset, 8).then(|| {
            self.consistent(|| {
                u64::from(self.raw_config32(offset))
                    | (u64::from(self.raw_config32(offset + 4)) << 32)
            })
        })
    }

    /// One byte of the device configuration, without the generation check.
    fn raw_config8(&self, offset: usize) -> u8 {
        match self {
            Self::Modern(m) => m.device.read8(offset),
            Self::Legacy { ports, config, .. } => ports.read8(config + offset as u16),
        }
    }

    /// One dword of the device configuration, without the generation check.
    fn raw_config32(&self, offset: usize) -> u32 {
        match self {
            Self::Modern(m) => m.device.read32(offset),
            Self::Legacy { ports, config, .. } => ports.read32(config + offset as u16),
        }
    }

    /// Bytes of device configuration the transport shows: fields past it are absent.
    pub fn config_len(&self) -> usize {
        match self {
            Self::Modern(m) => m.device.len(),
            Self::Legacy { config_len, .. } => usize::from(*config_len),
        }
    }

    /// The `N` bytes at `offset` of the device configuration; `None` when the
    /// configuration ends before their end.
    pub fn config_bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        self.config_has(offset, N)
            .then(|| self.consistent(|| core::array::from_fn(|i| self.raw_config8(offset + i))))
    }
}

/// The features to accept: the `wanted` ones `offered`, or the name of a `required` one
/// missing.
pub fn select_features(offered: u64, wanted: u64, required: u64) -> Result<u64, &'static str> {
    let missing = required & !offered;
    if missing == 0 {
        Ok(offered & wanted)
    } else if missing & F_VERSION_1 != 0 {
        Err("VIRTIO_F_VERSION_1")
    } else {
        Err("a required feature")
    }
}

/// The queue size to use: the device's on legacy (it cannot change), else the largest
/// power of two up to both the device's maximum and `wanted`; `None` when the queue does
/// not exist (size 0) or a legacy size is not a power of two.
pub fn queue_size(device: u16, wanted: u16, modern: bool) -> Option<u16> {
    if device == 0 || !device.is_power_of_two() && !modern {
        return None;
    }
    if !modern {
        return Some(device);
    }
    let limit = device.min(wanted.max(1));
    Some(1 << (15 - limit.leading_zeros()))
}

#[cfg(test)]
impl Transport {
    /// A legacy device over host ports whose status always reads 1 (ACKNOWLEDGE): one
    /// that never confirms a reset.
    pub(crate) fn never_resetting() -> Self {
        let ports = rexo_devio::host::FakePorts::new(LEGACY_CONFIG);
        ports.answer8(LEGACY_DEVICE_STATUS, 1);
        Self::Legacy {
            ports: ports.window(),
            config: LEGACY_CONFIG,
            config_len: 0,
        }
    }
}

/// A modern virtio device whose registers are plain host memory, played by a host test:
/// registers read back what was written (so a reset completes at once, and every queue
/// shows the size last written).
#[cfg(test)]
pub(crate) struct HostDevice {
    /// The common configuration structure.
    common: Mmio,
    /// The device-specific configuration.
    config: Mmio,
}

#[cfg(test)]
impl HostDevice {
    /// A device offering VIRTIO_F_VERSION_1 and nothing else, with queues of `queue_size`
    /// entries, and its modern transport.
    pub(crate) fn modern(queue_size: u16) -> (Self, Transport) {
        let registers = rexo_devio::host::registers;
        let device = Self {
            common: registers(COMMON_LEN),
            config: registers(64),
        };
        device.offer(true);
        device.common.write16(COMMON_QUEUE_SIZE, queue_size);
        let transport = Transport::Modern(Modern {
            common: device.common.clone(),
            notify: registers(4),
            notify_multiplier: 0,
            device: device.config.clone(),
        });
        (device, transport)
    }

    /// Offers VIRTIO_F_VERSION_1 (both halves of the feature register read the same
    /// word, bit 0 of the high one being VERSION_1), or nothing.
    pub(crate) fn offer(&self, version_1: bool) {
        self.offer_word(u32::from(version_1));
    }

    /// Offers `word` in both halves of the feature register (they read the same word:
    /// bit `n` offers features `n` and `32 + n`).
    pub(crate) fn offer_word(&self, word: u32) {
        self.common.write32(COMMON_DEVICE_FEATURE, word);
    }

    /// The high half of the features the driver accepted: the last half it wrote (the
    /// register is plain memory).
    pub(crate) fn accepted_high(&self) -> u32 {
        self.common.read32(COMMON_DRIVER_FEATURE)
    }

    /// The device status byte.
    pub(crate) fn status(&self) -> u8 {
        self.common.read8(COMMON_DEVICE_STATUS)
    }

    /// Sets the device status byte.
    pub(crate) fn set_status(&self, status: u8) {
        self.common.write8(COMMON_DEVICE_STATUS, status);
    }

    /// Sets the 16-bit field at `offset` of the device configuration.
    pub(crate) fn set_config16(&self, offset: usize, value: u16) {
        self.config.write16(offset, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_that_finishes_while_the_core_is_away_past_the_deadline_is_taken() {
        let platform = rexo_devio::host::HostPlatform::leaked();
        let (device, transport) = HostDevice::modern(8);
        let readings = core::sync::atomic::AtomicU32::new(0);
        platform.on_clock_reading(move || {
            match readings.fetch_add(1, core::sync::atomic::Ordering::Relaxed) {
                // The device has not taken the status 0 in when the wait begins...
                0 => device.set_status(1),
                // ...and has when the core comes back from far past the deadline.
                1 => {
                    platform.advance_clock(2 * RESET_TIMEOUT_MS * 1_000_000);
                    device.set_status(0);
                }
                _ => {}
            }
        });
        assert_eq!(transport.reset(platform), Ok(()));
    }

    #[test]
    fn a_promised_field_is_read_only_when_negotiated_and_must_be_there() {
        let read = |value| move || value;
        assert_eq!(promised::<u32>(false, || panic!("read"), "x"), Ok(None));
        assert_eq!(promised(true, read(Some(7)), "x"), Ok(Some(7)));
        assert_eq!(
            promised(true, read(None), "size_max"),
            Err(DeviceError::Unsupported("size_max"))
        );
    }

    #[test]
    fn capabilities_decode() {
        // cap_vndr 9, next 0x50, cap_len 16, cfg_type 1 (common); bar 4; offset; length.
        let cap = VendorCap::decode([0x0110_5009, 0x0000_0004, 0x0, 0x1000]).unwrap();
        assert_eq!(
            cap,
            VendorCap {
                cfg_type: CFG_COMMON,
                bar: 4,
                offset: 0,
                length: 0x1000
            }
        );
        // Too short, or a reserved BAR number.
        assert_eq!(VendorCap::decode([0x010C_5009, 4, 0, 0x1000]), None);
        assert_eq!(VendorCap::decode([0x0110_5009, 6, 0, 0x1000]), None);
        // Common (type 1) and device (type 4) structures 4-byte aligned, the notification
        // area (type 2) 2-byte aligned: else their registers would be misaligned.
        assert_eq!(VendorCap::decode([0x0110_5009, 4, 0x2002, 0x38]), None);
        assert_eq!(VendorCap::decode([0x0410_5009, 4, 0x3001, 0x10]), None);
        assert_eq!(VendorCap::decode([0x0214_5009, 4, 0x1001, 0x1000]), None);
        let notify = VendorCap::decode([0x0214_5009, 4, 0x1002, 0x1000]).unwrap();
        assert_eq!((notify.cfg_type, notify.offset), (CFG_NOTIFY, 0x1002));
        // A notification capability of 16 bytes has no notify_off_multiplier: the
        // dword after it is the next capability's, or past the list.
        assert_eq!(VendorCap::decode([0x0210_5009, 4, 0x1002, 0x1000]), None);
        assert_eq!(VendorCap::decode([0x0213_5009, 4, 0x1002, 0x1000]), None);
        // The ISR status (type 3) is a byte: any offset.
        assert!(VendorCap::decode([0x0310_5009, 4, 0x3001, 1]).is_some());
    }

    #[test]
    fn features_select_and_refuse() {
        let offered = F_VERSION_1 | 0b10_0001;
        assert_eq!(
            select_features(offered, F_VERSION_1 | 1 | 4, F_VERSION_1),
            Ok(F_VERSION_1 | 1)
        );
        assert_eq!(
            select_features(0b1, F_VERSION_1, F_VERSION_1),
            Err("VIRTIO_F_VERSION_1")
        );
        assert_eq!(select_features(0b1, 0b11, 0b10), Err("a required feature"));
    }

    /// A hardware virtio device offers VIRTIO_F_ACCESS_PLATFORM and
    /// VIRTIO_F_ORDER_PLATFORM and may refuse FEATURES_OK unless they are accepted (spec
    /// 6.1); they were never accepted, whatever was offered.
    #[test]
    fn the_platform_features_are_accepted_when_offered() {
        let platform = rexo_devio::host::HostPlatform::leaked();
        let (device, transport) = HostDevice::modern(8);
        // Bits 0, 1 and 4 of the high half: VERSION_1, ACCESS_PLATFORM, ORDER_PLATFORM.
        device.offer_word(0b1_0011);
        let accepted = transport.negotiate(platform, 0, 0).unwrap();
        assert_eq!(accepted, F_VERSION_1 | F_ACCESS_PLATFORM | F_ORDER_PLATFORM);
        // What the device is told, and checks before it lets FEATURES_OK stick.
        assert_eq!(device.accepted_high(), 0b1_0011);
        // Not offered, not taken.
        device.offer(true);
        assert_eq!(transport.negotiate(platform, 0, 0), Ok(F_VERSION_1));
        assert_eq!(device.accepted_high(), 1);
    }

    #[test]
    fn doorbells_are_aligned_and_inside_the_notification_area() {
        for multiplier in [0, 2, 4, 0x1000] {
            assert!(notify_multiplier_valid(multiplier), "{multiplier}");
        }
        for multiplier in [1, 3, 6, 0x1001] {
            assert!(!notify_multiplier_valid(multiplier), "{multiplier}");
        }
        assert_eq!(doorbell_offset(3, 4, 0x1000), Some(12));
        assert_eq!(doorbell_offset(7, 0, 2), Some(0));
        assert_eq!(doorbell_offset(0x3ff, 4, 0x1000), Some(0xffc));
        assert_eq!(doorbell_offset(0x400, 4, 0x1000), None);
        // The 16-bit register must fit whole.
        assert_eq!(doorbell_offset(0x3ff, 4, 0xffd), None);
        assert_eq!(doorbell_offset(u16::MAX, 1 << 31, 0x1000), None);
    }

    #[test]
    fn config_fields_must_lie_inside_the_window() {
        assert!(config_holds(8, 0, 8));
        assert!(config_holds(8, 6, 2));
        assert!(!config_holds(7, 6, 2));
        assert!(!config_holds(6, 0, 8));
        assert!(!config_holds(usize::MAX, usize::MAX, 1));
    }

    /// A transitional device whose I/O BAR 0 is smaller than the legacy header is
    /// refused: its registers past the BAR (the status at 0x12, the queue vector at 0x16
    /// with MSI-X) were reached all the same, and the port window's bounds check
    /// panicked the kernel at probe.
    #[test]
    fn a_legacy_bar_too_small_for_the_header_is_refused() {
        let too_small = Err(DeviceError::BadBar {
            index: 0,
            why: "too small for the legacy virtio header (20 bytes, 24 with MSI-X)",
        });
        for (bar_len, msix) in [(0, false), (16, false), (16, true), (20, true), (23, true)] {
            assert_eq!(legacy_layout(bar_len, msix), too_small, "{bar_len} {msix}");
        }
        assert_eq!(legacy_layout(20, false), Ok((LEGACY_CONFIG, 0)));
        assert_eq!(legacy_layout(24, true), Ok((LEGACY_CONFIG_MSIX, 0)));
        assert_eq!(legacy_layout(32, true), Ok((LEGACY_CONFIG_MSIX, 8)));
        assert_eq!(legacy_layout(64, false), Ok((LEGACY_CONFIG, 44)));
    }

    #[test]
    fn queue_sizes() {
        assert_eq!(queue_size(0, 256, true), None);
        assert_eq!(queue_size(1024, 256, true), Some(256));
        assert_eq!(queue_size(100, 256, true), Some(64));
        assert_eq!(queue_size(128, 256, false), Some(128));
        assert_eq!(queue_size(1024, 256, false), Some(1024));
        assert_eq!(queue_size(100, 256, false), None);
    }
}
