//! USB device framework (USB 2.0 chapter 9) and HID class (HID 1.11) requests and
//! descriptors the driver needs to find and start a boot keyboard.

/// Descriptor type: device.
pub const DESCRIPTOR_DEVICE: u8 = 1;
/// Descriptor type: configuration.
pub const DESCRIPTOR_CONFIGURATION: u8 = 2;
/// Descriptor type: interface.
const DESCRIPTOR_INTERFACE: u8 = 4;
/// Descriptor type: endpoint.
const DESCRIPTOR_ENDPOINT: u8 = 5;
/// Bytes of a device descriptor.
pub const DEVICE_DESCRIPTOR_LEN: u16 = 18;
/// Bytes of a configuration descriptor's header (wTotalLength is at 2).
pub const CONFIGURATION_HEADER_LEN: u16 = 9;

/// Interface class HID, subclass boot interface, protocol keyboard (HID 1.11 4.2, 4.3).
const BOOT_KEYBOARD: (u8, u8, u8) = (3, 1, 1);

/// Port speed IDs of the default protocol speed ID mapping (xHCI 7.2.2.1.1).
pub mod speed {
    /// Full speed, 12 Mb/s.
    pub const FULL: u8 = 1;
    /// Low speed, 1.5 Mb/s.
    pub const LOW: u8 = 2;
    /// High speed, 480 Mb/s.
    pub const HIGH: u8 = 3;
}

/// GET_DESCRIPTOR of `kind` (index 0), `len` bytes.
pub fn get_descriptor(kind: u8, len: u16) -> [u8; 8] {
    setup(0x80, 6, u16::from(kind) << 8, 0, len)
}

/// SET_CONFIGURATION to `value`.
pub fn set_configuration(value: u8) -> [u8; 8] {
    setup(0x00, 9, u16::from(value), 0, 0)
}

/// CLEAR_FEATURE(ENDPOINT_HALT) of endpoint `address` (after a stall).
pub fn clear_halt(address: u8) -> [u8; 8] {
    setup(0x02, 1, 0, u16::from(address), 0)
}

/// HID SET_PROTOCOL(boot) for `interface` (HID 1.11 7.2.6).
pub fn set_boot_protocol(interface: u8) -> [u8; 8] {
    setup(0x21, 0x0B, 0, u16::from(interface), 0)
}

/// HID SET_IDLE(0) for `interface`: report only on change (HID 1.11 7.2.4).
pub fn set_idle(interface: u8) -> [u8; 8] {
    setup(0x21, 0x0A, 0, u16::from(interface), 0)
}

/// A setup packet (USB 2.0 9.3).
fn setup(request_type: u8, request: u8, value: u16, index: u16, len: u16) -> [u8; 8] {
    let [v0, v1] = value.to_le_bytes();
    let [i0, i1] = index.to_le_bytes();
    let [l0, l1] = len.to_le_bytes();
    [request_type, request, v0, v1, i0, i1, l0, l1]
}

/// Endpoint 0's max packet size before the device descriptor is read (xHCI 4.3.3):
/// 8 for low and full speed (full-speed devices may say more in bMaxPacketSize0),
/// 64 for high speed, 512 for SuperSpeed and faster.
pub fn default_max_packet(speed: u8) -> u16 {
    match speed {
        self::speed::FULL | self::speed::LOW => 8,
        self::speed::HIGH => 64,
        _ => 512,
    }
}

/// The endpoint context's Interval (2^n x 125 us) for an interrupt endpoint's
/// `b_interval` (xHCI 6.2.3.6): frames of 1 ms at low and full speed, an exponent
/// 2^(b-1) microframes at high speed and faster.
pub fn interrupt_interval(speed: u8, b_interval: u8) -> u8 {
    match speed {
        self::speed::FULL | self::speed::LOW => {
            // floor(log2(frames x 8)), within the 3..=10 the spec allows (1..=128 ms).
            let microframes = u32::from(b_interval.max(1)) * 8;
            (31 - microframes.leading_zeros()).clamp(3, 10) as u8
        }
        _ => b_interval.clamp(1, 16) - 1,
    }
}

/// What a configuration descriptor says of its boot keyboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootKeyboard {
    /// bConfigurationValue, for SET_CONFIGURATION.
    pub configuration: u8,
    /// bInterfaceNumber.
    pub interface: u8,
    /// The interrupt IN endpoint's address (bit 7 set).
    pub endpoint: u8,
    /// Its wMaxPacketSize (bits 10:0).
    pub max_packet: u16,
    /// Its bInterval.
    pub interval: u8,
}

impl BootKeyboard {
    /// The endpoint's device context index: endpoint number x 2 + 1 for IN (xHCI 4.5.1).
    pub fn dci(&self) -> u8 {
        (self.endpoint & 0xF) * 2 + 1
    }
}

/// The wTotalLength of a configuration descriptor's header.
pub fn total_length(header: &[u8]) -> Option<u16> {
    (header.len() >= 4 && header[1] == DESCRIPTOR_CONFIGURATION)
        .then(|| u16::from_le_bytes([header[2], header[3]]))
}

/// The first boot keyboard interface (alternate setting 0) of the configuration
/// descriptor set `config`, with its interrupt IN endpoint (numbered 1 to 15); `None`
/// when there is none or the descriptors are malformed.
pub fn find_boot_keyboard(config: &[u8]) -> Option<BootKeyboard> {
    if config.len() < usize::from(CONFIGURATION_HEADER_LEN) || config[1] != DESCRIPTOR_CONFIGURATION
    {
        return None;
    }
    let configuration = config[5];
    let mut interface = None;
    let mut at = 0;
    while at + 2 <= config.len() {
        let len = usize::from(config[at]);
        // A zero length would loop forever, a long one reads past the set.
        let descriptor = config.get(at..at.checked_add(len)?).filter(|_| len >= 2)?;
        match descriptor[1] {
            DESCRIPTOR_INTERFACE if len >= 9 => {
                let class = (descriptor[5], descriptor[6], descriptor[7]);
                interface = (class == BOOT_KEYBOARD && descriptor[3] == 0).then_some(descriptor[2]);
            }
            DESCRIPTOR_ENDPOINT if len >= 7 => {
                // Endpoint number 0 is the default control pipe's, whose device context
                // index the report endpoint would then take.
                let numbered = descriptor[2] & 0xF != 0;
                let interrupt_in =
                    descriptor[2] & 0x80 != 0 && numbered && descriptor[3] & 0x3 == 3;
                if let Some(number) = interface.filter(|_| interrupt_in) {
                    return Some(BootKeyboard {
                        configuration,
                        interface: number,
                        endpoint: descriptor[2],
                        max_packet: u16::from_le_bytes([descriptor[4], descriptor[5]]) & 0x7FF,
                        interval: descriptor[6],
                    });
                }
            }
            _ => {}
        }
        at += len;
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// QEMU's usb-kbd configuration: one HID boot keyboard interface, its HID
    /// descriptor, endpoint 0x81 (8 bytes, every 10 ms).
    pub(crate) const QEMU_KEYBOARD: [u8; 34] = [
        9, 2, 34, 0, 1, 1, 0, 0xA0, 50, //
        9, 4, 0, 0, 1, 3, 1, 1, 0, //
        9, 0x21, 0x11, 1, 0, 1, 0x22, 63, 0, //
        7, 5, 0x81, 3, 8, 0, 10,
    ];

    #[test]
    fn setup_packets_are_little_endian() {
        assert_eq!(get_descriptor(1, 18), [0x80, 6, 0, 1, 0, 0, 18, 0]);
        assert_eq!(set_configuration(1), [0, 9, 1, 0, 0, 0, 0, 0]);
        assert_eq!(set_boot_protocol(2), [0x21, 0x0B, 0, 0, 2, 0, 0, 0]);
        assert_eq!(set_idle(0), [0x21, 0x0A, 0, 0, 0, 0, 0, 0]);
        assert_eq!(clear_halt(0x81), [2, 1, 0, 0, 0x81, 0, 0, 0]);
    }

    #[test]
    fn the_boot_keyboard_and_its_endpoint_are_found() {
        assert_eq!(total_length(&QEMU_KEYBOARD), Some(34));
        let keyboard = find_boot_keyboard(&QEMU_KEYBOARD).unwrap();
        assert_eq!(
            keyboard,
            BootKeyboard {
                configuration: 1,
                interface: 0,
                endpoint: 0x81,
                max_packet: 8,
                interval: 10
            }
        );
        assert_eq!(keyboard.dci(), 3);
    }

    #[test]
    fn mice_and_malformed_sets_are_not_keyboards() {
        let mut mouse = QEMU_KEYBOARD;
        mouse[16] = 2;
        assert_eq!(find_boot_keyboard(&mouse), None);
        let mut zero_length = QEMU_KEYBOARD;
        zero_length[9] = 0;
        assert_eq!(find_boot_keyboard(&zero_length), None);
        assert_eq!(find_boot_keyboard(&QEMU_KEYBOARD[..30]), None, "cut short");
        assert_eq!(find_boot_keyboard(&[]), None);
    }

    #[test]
    fn an_endpoint_numbered_0_is_no_report_endpoint() {
        // Address 0x80: IN, number 0, whose device context index (1) is endpoint 0's.
        let mut endpoint_zero = QEMU_KEYBOARD;
        endpoint_zero[29] = 0x80;
        assert_eq!(find_boot_keyboard(&endpoint_zero), None);
    }

    #[test]
    fn intervals_follow_the_speed() {
        assert_eq!(
            interrupt_interval(speed::FULL, 10),
            6,
            "80 microframes -> 2^6"
        );
        assert_eq!(interrupt_interval(speed::LOW, 1), 3);
        assert_eq!(interrupt_interval(speed::FULL, 255), 10);
        assert_eq!(interrupt_interval(speed::HIGH, 4), 3);
        assert_eq!(interrupt_interval(speed::HIGH, 0), 0);
        assert_eq!(default_max_packet(speed::HIGH), 64);
        assert_eq!(default_max_packet(4), 512);
    }
}
