//! Typing on a USB keyboard from the host: QEMU's human monitor on a Unix socket takes
//! `sendkey KEY` lines and delivers them to the most recently added keyboard (the
//! `usb-kbd` of [`crate::testcases::Arg::UsbKeyboard`], or the one
//! [`crate::testcases::Arg::UsbKeyboardPlugged`] plugs in with `device_add`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
const PLUG: &str = "device_add usb-kbd,bus=xhci.0,id=plugged\n";

/// QEMU's human monitor prompt: shown once on connecting and again after each command
/// ran.
const PROMPT: &[u8] = b"(qemu)";

/// How long [`plug`] waits for the prompt after `device_add` before giving up.
const PLUG_TIMEOUT: Duration = Duration::from_secs(10);

/// The gap between two keys: the keyboard's endpoint is polled every 8 ms, and each key
/// is a press and a release report.
const GAP: Duration = Duration::from_millis(150);

/// QEMU's arguments for a `qemu-xhci` controller, with a `usb-kbd` on it when
/// `connected` (else nothing), and a human monitor on a socket in `scratch` (its path
/// is the second value).
pub fn qemu_args(scratch: &Path, connected: bool) -> Result<(Vec<String>, PathBuf)> {
    let socket = scratch.join("monitor.sock");
    let monitor = format!("unix:{},server,nowait", crate::qemu::option_path(&socket)?);
    let keyboard: &[&str] = if connected {
        &["-device", "usb-kbd,bus=xhci.0"]
    } else {
        &[]
    };
    let args = ["-device", "qemu-xhci,id=xhci"]
        .iter()
        .chain(keyboard)
        .chain(&["-monitor"])
        .map(|a| a.to_string())
        .chain([monitor])
        .collect();
    Ok((args, socket))
}

/// Plugs a `usb-kbd` into the controller of [`qemu_args`] through the monitor at
/// `socket` (`device_add`), while the guest runs, and closes the connection once QEMU
/// shows its prompt again (the command ran), at most [`PLUG_TIMEOUT`] later: the
/// monitor takes one connection at a time, and [`type_keys`]' would wait behind it.
pub fn plug(socket: &Path) -> Result<()> {
    let mut monitor = UnixStream::connect(socket)
        .map_err(|e| format!("QEMU's monitor at {}: {e}", socket.display()))?;
    monitor
        .write_all(PLUG.as_bytes())
        .map_err(|e| format!("device_add: {e}"))?;
    let deadline = Instant::now() + PLUG_TIMEOUT;
    let mut shown = Vec::new();
    // The prompt on connecting, then the one after the command.
    while shown.windows(PROMPT.len()).filter(|w| *w == PROMPT).count() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "device_add: no prompt from QEMU in {PLUG_TIMEOUT:?}"
            ));
        }
        monitor
            .set_read_timeout(Some(left))
            .map_err(|e| format!("device_add: {e}"))?;
        let mut chunk = [0; 256];
        match monitor.read(&mut chunk) {
            Ok(0) => return Err("device_add: QEMU's monitor closed the connection".into()),
            Ok(read) => shown.extend_from_slice(&chunk[..read]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("device_add: no prompt from QEMU: {e}")),
        }
    }
    Ok(())
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

    /// A monitor that shows its prompt, takes the command and shows the prompt again
    /// only after a while: [`plug`] returns once that prompt came, having sent
    /// `device_add`, and the monitor sees its connection closed then.
    #[test]
    fn plugging_ends_at_the_prompt_after_the_command() {
        let scratch = std::env::temp_dir().join(format!("rexo-plug-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).unwrap();
        let socket = scratch.join("monitor.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let qemu = std::thread::spawn(move || {
            let (mut connection, _) = listener.accept().unwrap();
            connection
                .write_all(b"QEMU 7.2.0 monitor\r\n(qemu) ")
                .unwrap();
            let mut command = vec![0; PLUG.len()];
            connection.read_exact(&mut command).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            let ran = Instant::now();
            connection.write_all(b"device_add ...\r\n(qemu) ").unwrap();
            let mut rest = Vec::new();
            connection.read_to_end(&mut rest).unwrap();
            (command, ran.elapsed(), rest)
        });
        let started = Instant::now();
        plug(&socket).unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "waited for the prompt"
        );
        let (command, closed_after, rest) = qemu.join().unwrap();
        assert_eq!(command, PLUG.as_bytes());
        assert!(
            closed_after < Duration::from_millis(150),
            "{closed_after:?}"
        );
        assert!(rest.is_empty());
        std::fs::remove_dir_all(&scratch).unwrap();
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
