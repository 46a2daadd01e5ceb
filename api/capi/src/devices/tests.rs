//! The C layouts of device records and filters, and the error codes of kernel and device
//! errors as rexo.h gives them.
use super::*;
use alloc::string::String;
use alloc::vec::Vec;
use rexo_api::testing::MemoryDisk;
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
    assert_eq!(device_code(DeviceError::Reset), REXO_EIO);
    assert_eq!(device_code(DeviceError::DependencyFailed), REXO_EIO);
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
    let max = rexo_pktfilter::MAX_FRAME_TESTS;
    assert_eq!(
        error_code(rexo_api::ApiError::TooManyFilterTests { max }),
        crate::REXO_ENOMEM,
        "the interface's filters at their limit, as rexo.h says"
    );
    let max = rexo_api::MAX_BINDING_FILTERS;
    assert_eq!(
        error_code(rexo_api::ApiError::TooManyFilters { max }),
        crate::REXO_EINVAL
    );
    assert_eq!(
        error_code(rexo_api::ApiError::NoFilters),
        crate::REXO_EINVAL
    );
    let max = rexo_pktfilter::MAX_ATOMS;
    assert_eq!(
        error_code(rexo_api::ApiError::TooManyAtoms { max }),
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

/// Every code the C ABI answers with, by its name in `rexo.h`.
const CODES: [(&str, c_int); 13] = [
    ("REXO_OK", crate::REXO_OK),
    ("REXO_EINVAL", crate::REXO_EINVAL),
    ("REXO_EFAULT", crate::REXO_EFAULT),
    ("REXO_EBADF", crate::REXO_EBADF),
    ("REXO_ERANGE", crate::REXO_ERANGE),
    ("REXO_ENOMEM", crate::REXO_ENOMEM),
    ("REXO_EBUSY", crate::REXO_EBUSY),
    ("REXO_EPERM", crate::REXO_EPERM),
    ("REXO_ENOAPP", crate::REXO_ENOAPP),
    ("REXO_ENODEV", crate::REXO_ENODEV),
    ("REXO_EIO", crate::REXO_EIO),
    ("REXO_EMSGSIZE", crate::REXO_EMSGSIZE),
    ("REXO_ETIME", crate::REXO_ETIME),
];

#[test]
fn the_error_codes_of_rexo_h_are_the_rust_constants() {
    for (name, code) in CODES {
        assert_eq!(rexo_h_define(name), Some(i64::from(code)), "{name}");
    }
    // rexo.h defines no code the Rust side lacks.
    for line in include_str!("../../../c/rexo.h").lines() {
        let Some(name) = line
            .strip_prefix("#define ")
            .and_then(|rest| rest.split_whitespace().next())
        else {
            continue;
        };
        if name.starts_with("REXO_E") || name == "REXO_OK" {
            assert!(CODES.iter().any(|&(known, _)| known == name), "{name}");
        }
    }
}

/// The comment above `#define NAME` in `rexo.h`, its lines joined by spaces.
fn rexo_h_comment(name: &str) -> String {
    let lines: Vec<&str> = include_str!("../../../c/rexo.h").lines().collect();
    let define = lines
        .iter()
        .position(|line| line.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("rexo.h defines {name}"));
    let start = lines[..define]
        .iter()
        .rposition(|line| line.starts_with("/*"))
        .expect("a comment above it");
    let words = lines[start..define].iter().map(|line| {
        let line = line.trim_start_matches("/*").trim_start_matches(" *");
        line.trim_end_matches("*/").trim()
    });
    words.collect::<Vec<_>>().join(" ")
}

#[test]
fn a_revoked_capability_is_eperm_and_a_buffer_in_memory_taken_by_force_efault() {
    use rexo_api::{ApiError, CapError};
    let revoked = Err(ApiError::Refused(CapError::Revoked));
    assert_eq!(crate::copy_status(revoked, || false), REXO_EPERM);
    // The kernel answers Revoked, too, for a buffer taken by force after c_bytes checked it.
    assert_eq!(crate::copy_status(revoked, || true), crate::REXO_EFAULT);
    assert_eq!(crate::copy_status(Ok(()), || true), REXO_OK);
    assert_eq!(device_code(DeviceError::Revoked), REXO_EPERM);
    // As rexo.h says.
    assert!(rexo_h_comment("REXO_EPERM").contains("a capability revoked"));
    assert!(rexo_h_comment("REXO_EFAULT").contains("in memory the kernel took back by force"));
}

#[test]
fn the_limits_of_rexo_h_are_the_kernels() {
    assert_eq!(
        rexo_h_define("REXO_MAX_NET_BINDINGS"),
        i64::try_from(rexo_api::MAX_INTERFACE_BINDINGS).ok()
    );
    assert_eq!(
        rexo_h_define("REXO_MAX_APP_NET_BINDINGS"),
        i64::try_from(rexo_api::MAX_APP_BINDINGS).ok()
    );
    assert_eq!(
        rexo_h_define("REXO_MAX_NET_ATOMS"),
        i64::try_from(MAX_ATOMS).ok()
    );
    assert_eq!(
        rexo_h_define("REXO_ENOMEM"),
        Some(i64::from(crate::REXO_ENOMEM)),
        "the code past either limit"
    );
    // The app's capability-entry limit is only in REXO_ENOMEM's comment.
    let enomem = rexo_h_comment("REXO_ENOMEM");
    let entries = alloc::format!("the app's limit of {})", rexo_api::MAX_APP_ENTRIES);
    assert!(enomem.contains(&entries), "{enomem}");
    // So is the most field tests a frame may cost the filters of a shared interface.
    let tests = alloc::format!("more than {} field tests", rexo_pktfilter::MAX_FRAME_TESTS);
    assert!(enomem.contains(&tests), "{enomem}");
}

/// Eight 512-byte blocks of `fill` in memory, requests of up to 2 blocks, whose reads
/// hand over `extra` bytes more (or fewer, negative) than asked, and its writes a buffer
/// as many bytes longer or shorter.
fn memory_disk(fill: u8, extra: isize) -> MemoryDisk {
    let mut disk = MemoryDisk::new(alloc::vec![fill; 8 * 512]);
    disk.max_sectors = 2;
    disk.read_skew = extra;
    disk.write_skew = extra;
    disk
}

#[test]
fn blocks_go_to_and_from_a_disk_that_hands_over_the_lengths_asked() {
    let mut disk = memory_disk(0, 0);
    let data: Vec<u8> = (0..3 * 512).map(|i| i as u8).collect();
    assert_eq!(write_blocks(&mut disk, 1, 3, &data), Ok(REXO_OK));
    let mut buffer = alloc::vec![0xEE; 3 * 512];
    assert_eq!(read_blocks(&mut disk, 1, 3, &mut buffer), Ok(REXO_OK));
    assert_eq!(buffer, data);
}

#[test]
fn a_read_of_another_length_than_asked_is_an_io_error_and_copies_nothing() {
    for extra in [-1, 1, 512] {
        let mut disk = memory_disk(0xAB, extra);
        let mut buffer = alloc::vec![0xEE; 2 * 512];
        assert_eq!(
            read_blocks(&mut disk, 0, 2, &mut buffer),
            Err(REXO_EIO),
            "{extra} bytes off"
        );
        assert!(buffer.iter().all(|&b| b == 0xEE), "{extra} bytes off");
    }
}

#[test]
fn a_write_buffer_of_another_length_than_asked_is_an_io_error_and_is_withdrawn() {
    for extra in [-1, 1, 512] {
        let mut disk = memory_disk(0xAB, extra);
        disk.stale_write_bytes = Some(0xDD);
        let data = alloc::vec![0x11; 2 * 512];
        assert_eq!(
            write_blocks(&mut disk, 0, 2, &data),
            Err(REXO_EIO),
            "{extra} bytes off"
        );
        assert!(disk.data().iter().all(|&b| b == 0xAB), "{extra} bytes off");
        assert_eq!(
            disk.request_sizes(),
            [],
            "{extra} bytes off: nothing queued"
        );
    }
}

#[test]
fn more_atoms_than_a_filter_takes_are_refused_before_any_is_read() {
    // Not even looked at: neither the RAM check (a host may not be registered here) nor
    // the atoms behind the (dangling) pointer.
    let atoms = core::ptr::dangling::<c_void>();
    for count in [MAX_ATOMS + 1, usize::MAX / ATOM, usize::MAX] {
        assert_eq!(
            rexo_net_bind(0, atoms, count),
            i64::from(REXO_EINVAL),
            "{count}"
        );
    }
}

/// A transmit whose buffer is `skew` bytes longer (or shorter, negative) than asked,
/// keeping the frames `fill` lets go in `sent`.
fn skewed_transmit(
    skew: isize,
    sent: &mut Vec<Vec<u8>>,
) -> impl FnOnce(Fill<'_>) -> Result<(), DeviceError> + '_ {
    move |fill| {
        let mut buffer = alloc::vec![0u8; 60usize.saturating_add_signed(skew)];
        if !fill(&mut buffer) {
            return Err(DeviceError::Withdrawn);
        }
        sent.push(buffer);
        Ok(())
    }
}

#[test]
fn a_transmit_buffer_of_another_length_than_the_frame_is_an_io_error_and_sends_nothing() {
    let frame = alloc::vec![0x42; 60];
    for skew in [-1, 1, 100] {
        let mut sent = Vec::new();
        let transmit = skewed_transmit(skew, &mut sent);
        assert_eq!(
            send_copy(&frame, 1514, transmit),
            Err(REXO_EIO),
            "{skew} bytes off"
        );
        assert!(sent.is_empty(), "{skew} bytes off: withdrawn");
    }
    let mut sent = Vec::new();
    assert_eq!(
        send_copy(&frame, 1514, skewed_transmit(0, &mut sent)),
        Ok(REXO_OK)
    );
    assert_eq!(sent, [frame]);
}

#[test]
fn a_block_count_of_zero_is_refused_before_the_handle_is_looked_up() {
    // No app runs here (and a host may not be registered): a lookup would not answer
    // REXO_EINVAL.
    let (read, written) = (core::ptr::null_mut(), core::ptr::null());
    assert_eq!(rexo_block_read(12345, 0, 0, read, 0), REXO_EINVAL);
    assert_eq!(rexo_block_write(12345, 0, 0, written, 0), REXO_EINVAL);
}

/// A network interface whose receive queues hold the frames given, handed one call at a
/// time as a device hands them.
struct QueuedFrames(Vec<alloc::collections::VecDeque<Vec<u8>>>);

impl NetDevice for QueuedFrames {
    fn info(&self) -> rexo_api::NetInfo {
        rexo_api::NetInfo {
            mac: [2, 0, 0, 0, 0, 1],
            max_frame: 1514,
            queues: self.0.len(),
            link_up: true,
            checksum_offload: false,
            tcp_segmentation: None,
            receive_steering: None,
            pair: None,
        }
    }
    fn receive(
        &mut self,
        queue: usize,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, DeviceError> {
        let frames = self
            .0
            .get_mut(queue)
            .ok_or(DeviceError::NoSuchQueue(queue))?;
        let mut handed = 0;
        while handed < budget {
            let Some(frame) = frames.pop_front() else {
                break;
            };
            deliver(&frame);
            handed += 1;
        }
        Ok(handed)
    }
    fn send_segments(
        &mut self,
        _: usize,
        _: &[usize],
        _: bool,
        _: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> Result<(), DeviceError> {
        Ok(())
    }
    fn transmit_pending(&mut self, _: usize) -> Result<usize, DeviceError> {
        Ok(0)
    }
    fn wake_on_receive(&mut self, _: usize, _: Option<usize>) -> Result<(), DeviceError> {
        Err(DeviceError::Unsupported("waking"))
    }
}

/// An interface of `queues`, each holding its frames: a 60-byte frame per byte given,
/// filled with it.
fn queued_frames(queues: &[&[u8]]) -> Interface {
    let frames = queues.iter().map(|marks| {
        let frames = marks.iter().map(|&mark| alloc::vec![mark; 60]);
        frames.collect()
    });
    Interface::new(Box::new(QueuedFrames(frames.collect())))
}

/// The frames `rexo_net_receive` copies from `interface` until it answers 0, each by the
/// byte filling it.
fn receive_all(interface: &mut Interface) -> Vec<u8> {
    let mut buffer = alloc::vec![0u8; 1514];
    let mut marks = Vec::new();
    loop {
        match interface.receive_copy(&mut buffer) {
            Ok(0) => return marks,
            Ok(len) => {
                assert_eq!(len, 60);
                marks.push(buffer[0]);
            }
            Err(code) => panic!("receive: {code}"),
        }
    }
}

#[test]
fn a_frame_on_a_receive_queue_other_than_0_is_received() {
    // The 82574 (RSS) and a multi-queue tap put a flow's frames on queue 1.
    let mut interface = queued_frames(&[&[], &[1]]);
    assert_eq!(receive_all(&mut interface), [1]);
}

#[test]
fn every_receive_queue_is_served_in_turn_and_none_starves() {
    let mut interface = queued_frames(&[&[10, 11, 12], &[20, 21], &[30]]);
    assert_eq!(receive_all(&mut interface), [10, 20, 30, 11, 21, 12]);
    // The turn goes on from the queue after the last that gave a frame.
    let mut interface = queued_frames(&[&[10, 11], &[20]]);
    let mut buffer = alloc::vec![0u8; 1514];
    assert_eq!(interface.receive_copy(&mut buffer), Ok(60));
    assert_eq!(buffer[0], 10);
    assert_eq!(receive_all(&mut interface), [20, 11]);
}

#[test]
fn a_receive_buffer_under_the_largest_frame_is_refused_and_takes_nothing() {
    let mut interface = queued_frames(&[&[1], &[2]]);
    let mut short = alloc::vec![0u8; 1513];
    assert_eq!(interface.receive_copy(&mut short), Err(REXO_EINVAL));
    assert_eq!(receive_all(&mut interface), [1, 2]);
}
