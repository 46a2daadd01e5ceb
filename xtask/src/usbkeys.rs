//! Typing on a USB keyboard from the host: QEMU's human monitor on a Unix socket takes
//! `sendkey KEY` lines and delivers them to the most recently added keyboard (the
//! `usb-kbd` of [`crate::testcases::Arg::UsbKeyboard`], or the one
//! [`crate::testcases::Arg::UsbKeyboardPlugged`] plugs in with `device_add`).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Result;

/// The serial line that says the USB keyboard is attached: `rexo-xhci`'s `port N:
/// keyboard VENDOR:PRODUCT` with the IDs of QEMU's `usb-kbd`, logged once its report
/// endpoint is configured. The driver attaches it only after the connect debounce,
/// 100 ms after its probe (the registry's binding line, `xhci: USB controller: no
/// keyboard attached yet (a device is connecting)`): keys typed before its port reset
/// would be lost, the reset emptying the `usb-kbd`'s queue.
pub const BOUND: &str = ": keyboard 0627:0001";

/// The serial line, at its end, that says the registry bound an xHCI controller with
/// nothing connected: the line `rexo-xhci`'s device is listed with at its binding.
pub const EMPTY: &str = "xhci: USB controller: no keyboard attached";

/// The monitor command that plugs a `usb-kbd` into the controller.
const PLUG: &str = "device_add usb-kbd,bus=xhci.0,id=plugged";

/// The gap between two keys: the keyboard's endpoint is polled every 8 ms, and each key
/// is a press and a release report.
const GAP: Duration = Duration::from_millis(150);

/// QEMU's arguments for a `qemu-xhci` controller, with a `usb-kbd` on it when
/// `connected` (else nothing), and a human monitor on a socket in `scratch` (its path
/// is the second value).
pub fn qemu_args(scratch: &Path, connected: bool) -> Result<(Vec<String>, PathBuf)> {
    let (monitor, socket) = crate::hmp::qemu_args(scratch)?;
    let keyboard: &[&str] = if connected {
        &["-device", "usb-kbd,bus=xhci.0"]
    } else {
        &[]
    };
    let args = ["-device", "qemu-xhci,id=xhci"]
        .iter()
        .chain(keyboard)
        .map(|a| a.to_string())
        .chain(monitor)
        .collect();
    Ok((args, socket))
}

/// Plugs a `usb-kbd` into the controller of [`qemu_args`] through the monitor at
/// `socket` (`device_add`), while the guest runs, and closes the connection once the
/// command ran ([`crate::hmp::run`]): [`type_keys`]' connection would wait behind it.
pub fn plug(socket: &Path) -> Result<()> {
    crate::hmp::run(socket, PLUG)
}

/// Types `keys` (QEMU key names: `h`, `ret`, `shift-a`) through the monitor at `socket`.
pub fn type_keys(socket: &Path, keys: &[&str]) -> Result<()> {
    let mut monitor = UnixStream::connect(socket)
        .map_err(|e| format!("QEMU's monitor at {}: {e}", socket.display()))?;
    for key in keys {
        monitor
            .write_all(format!("sendkey {key}\n").as_bytes())
            .map_err(|e| format!("sendkey {key}: {e}"))?;
        std::thread::sleep(GAP);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keyboard_and_its_monitor_are_attached() {
        let (args, socket) = qemu_args(Path::new("/tmp/case"), true).unwrap();
        assert_eq!(socket, Path::new("/tmp/case/monitor.sock"));
        assert!(
            args.windows(2)
                .any(|w| w == ["-device", "usb-kbd,bus=xhci.0"])
        );
        assert_eq!(
            args.last().map(String::as_str),
            Some("unix:/tmp/case/monitor.sock,server,nowait")
        );
        let (args, _) = qemu_args(Path::new("/tmp/a,b"), true).unwrap();
        assert_eq!(
            args.last().map(String::as_str),
            Some("unix:/tmp/a,,b/monitor.sock,server,nowait")
        );
    }

    #[test]
    fn a_controller_to_plug_into_starts_with_nothing_connected() {
        let (args, socket) = qemu_args(Path::new("/tmp/case"), false).unwrap();
        assert_eq!(
            args,
            [
                "-device",
                "qemu-xhci,id=xhci",
                "-monitor",
                "unix:/tmp/case/monitor.sock,server,nowait"
            ]
        );
        assert_eq!(socket, Path::new("/tmp/case/monitor.sock"));
    }
}
