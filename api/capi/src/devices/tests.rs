//! The C layouts of device records and filters, and the error codes of device errors.
use super::*;
use alloc::string::String;
use rexo_pci::Address;

fn disk(holder: Option<&'static str>, about: &str) -> DeviceInfo {
    DeviceInfo {
        index: 1,
        kind: DeviceKind::Block,
        address: Address {
            segment: 0,
            bus: 0,
            device: 4,
            function: 0,
        },
        driver: "virtio-blk",
        about: String::from(about),
        holder,
        interrupts: alloc::vec::Vec::new(),
    }
}

#[test]
fn a_device_record_has_the_layout_of_struct_rexo_device() {
    let entry = encode_device(&disk(Some("c-devices"), "64 MiB"));
    assert_eq!(
        u32::from_ne_bytes(entry[0..4].try_into().unwrap()),
        2,
        "block"
    );
    assert_eq!(u32::from_ne_bytes(entry[4..8].try_into().unwrap()), 1);
    assert_eq!(
        &entry[8..14],
        &[0, 0, 0, 4, 0, 1],
        "segment, bus, device, function, held"
    );
    assert_eq!(&entry[16..27], b"virtio-blk\0");
    assert_eq!(&entry[32..39], b"64 MiB\0");
    // A long description is cut short and still ends in NUL.
    let long: String = core::iter::repeat_n('x', 200).collect();
    let entry = encode_device(&disk(None, &long));
    assert_eq!(entry[13], 0, "not held");
    assert_eq!(entry[DEVICE_ENTRY - 1], 0);
    assert!(entry[32..DEVICE_ENTRY - 1].iter().all(|&b| b == b'x'));
}

fn atom(offset: u16, width: u8, reserved: u8, mask: u32, value: u32) -> [u8; ATOM] {
    let mut out = [0u8; ATOM];
    out[0..2].copy_from_slice(&offset.to_ne_bytes());
    out[2] = width;
    out[3] = reserved;
    out[4..8].copy_from_slice(&mask.to_ne_bytes());
    out[8..12].copy_from_slice(&value.to_ne_bytes());
    out
}

#[test]
fn atoms_from_c_make_a_filter_and_bad_ones_are_refused() {
    let ethertype = atom(12, 2, 0, 0xFFFF, 0x88B5);
    let filter = decode_filter(&ethertype).expect("one atom");
    let mut frame = [0u8; 60];
    frame[12..14].copy_from_slice(&[0x88, 0xB5]);
    assert!(filter.matches(&frame));
    frame[13] = 0xB6;
    assert!(!filter.matches(&frame));
    assert_eq!(decode_filter(&[]).err(), Some(REXO_EINVAL), "no atoms");
    for bad in [
        atom(12, 3, 0, 0xFF, 1),       // width 3
        atom(12, 2, 0, 0xFF, 0x100),   // value outside the mask
        atom(12, 2, 1, 0xFFFF, 0x800), // reserved byte set
        atom(12, 1, 0, 0x1FF, 1),      // mask wider than the field
    ] {
        assert_eq!(decode_filter(&bad).err(), Some(REXO_EINVAL), "{bad:?}");
    }
    let contradiction = [atom(12, 2, 0, 0xFFFF, 1), atom(12, 2, 0, 0xFFFF, 2)].concat();
    assert_eq!(decode_filter(&contradiction).err(), Some(REXO_EINVAL));
}

#[test]
fn device_errors_have_the_codes_rexo_h_gives() {
    let range = DeviceError::OutOfRange {
        lba: 10,
        sectors: 2,
        capacity: 11,
    };
    assert_eq!(device_code(range), REXO_ERANGE);
    assert_eq!(
        device_code(DeviceError::TooLong {
            len: 1515,
            max: 1514
        }),
        REXO_EMSGSIZE
    );
    assert_eq!(device_code(DeviceError::TooShort { len: 3 }), REXO_EMSGSIZE);
    assert_eq!(device_code(DeviceError::QueueFull), REXO_EBUSY);
    assert_eq!(device_code(DeviceError::Revoked), REXO_EPERM);
    assert_eq!(device_code(DeviceError::Unbound), REXO_EPERM);
    let timeout = DeviceError::Timeout {
        what: "read",
        ms: 5,
    };
    assert_eq!(device_code(timeout), REXO_EIO);
    assert_eq!(
        error_code(rexo_api::ApiError::NoSuchDevice),
        crate::REXO_ENODEV
    );
    assert_eq!(error_code(rexo_api::ApiError::Device(range)), REXO_ERANGE);
    let max = rexo_api::MAX_INTERFACE_BINDINGS;
    assert_eq!(
        error_code(rexo_api::ApiError::TooManyBindings { max }),
        crate::REXO_ENOMEM,
        "a full binding table, as rexo.h says"
    );
    let max = rexo_api::MAX_BINDING_FILTERS;
    assert_eq!(
        error_code(rexo_api::ApiError::TooManyFilters { max }),
        crate::REXO_EINVAL
    );
}

/// The value `rexo.h` gives macro `name` (`#define NAME 64` or `#define NAME (-5)`).
fn rexo_h_define(name: &str) -> Option<i64> {
    include_str!("../../../c/rexo.h").lines().find_map(|line| {
        let mut words = line.strip_prefix("#define ")?.split_whitespace();
        if words.next()? != name {
            return None;
        }
        let value = words.next()?;
        value
            .strip_prefix('(')
            .and_then(|v| v.strip_suffix(')'))
            .unwrap_or(value)
            .parse()
            .ok()
    })
}

#[test]
fn the_binding_limits_of_rexo_h_are_the_kernels() {
    assert_eq!(
        rexo_h_define("REXO_MAX_NET_BINDINGS"),
        i64::try_from(rexo_api::MAX_INTERFACE_BINDINGS).ok()
    );
    assert_eq!(
        rexo_h_define("REXO_MAX_APP_NET_BINDINGS"),
        i64::try_from(rexo_api::MAX_APP_BINDINGS).ok()
    );
    assert_eq!(
        rexo_h_define("REXO_ENOMEM"),
        Some(i64::from(crate::REXO_ENOMEM)),
        "the code past either limit"
    );
    let max = rexo_api::MAX_APP_BINDINGS;
    assert_eq!(
        error_code(rexo_api::ApiError::TooManyBindings { max }),
        crate::REXO_ENOMEM,
        "an app's full share, as rexo.h says"
    );
}
