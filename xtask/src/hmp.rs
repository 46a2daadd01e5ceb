//! QEMU's human monitor on a Unix socket in a case's scratch folder: the harness sends
//! it commands while the guest runs (`device_add` for [`crate::usbkeys`], `mce` for
//! [`crate::testcases::Arg::Monitor`]).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Result;

/// QEMU's human monitor prompt: shown once on connecting and again after each command
/// ran.
const PROMPT: &[u8] = b"(qemu)";

/// How long [`run`] waits for the prompt after its command before giving up.
const TIMEOUT: Duration = Duration::from_secs(10);

/// QEMU's arguments for a human monitor on a socket in `scratch` (its path is the
/// second value).
pub fn qemu_args(scratch: &Path) -> Result<([String; 2], PathBuf)> {
    let socket = scratch.join("monitor.sock");
    let monitor = format!("unix:{},server,nowait", crate::qemu::option_path(&socket)?);
    Ok((["-monitor".into(), monitor], socket))
}

/// Sends `command` (one line, without its newline) to the monitor at `socket` and closes
/// the connection once QEMU shows its prompt again (the command ran), at most
/// [`TIMEOUT`] later: the monitor takes one connection at a time.
pub fn run(socket: &Path, command: &str) -> Result<()> {
    let name = command.split(' ').next().unwrap_or_default();
    let mut monitor = UnixStream::connect(socket)
        .map_err(|e| format!("QEMU's monitor at {}: {e}", socket.display()))?;
    monitor
        .write_all(format!("{command}\n").as_bytes())
        .map_err(|e| format!("{name}: {e}"))?;
    let deadline = Instant::now() + TIMEOUT;
    let mut shown = Vec::new();
    // The prompt on connecting, then the one after the command.
    while shown.windows(PROMPT.len()).filter(|w| *w == PROMPT).count() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{name}: no prompt from QEMU in {TIMEOUT:?}"));
        }
        monitor
            .set_read_timeout(Some(left))
            .map_err(|e| format!("{name}: {e}"))?;
        let mut chunk = [0; 256];
        match monitor.read(&mut chunk) {
            Ok(0) => return Err(format!("{name}: QEMU's monitor closed the connection")),
            Ok(read) => shown.extend_from_slice(&chunk[..read]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{name}: no prompt from QEMU: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monitor_is_on_a_socket_in_the_scratch_folder() {
        let (args, socket) = qemu_args(Path::new("/tmp/a,b")).unwrap();
        assert_eq!(socket, Path::new("/tmp/a,b/monitor.sock"));
        assert_eq!(
            args,
            ["-monitor", "unix:/tmp/a,,b/monitor.sock,server,nowait"]
        );
    }

    /// A monitor that shows its prompt, takes the command and shows the prompt again
    /// only after a while: [`run`] returns once that prompt came, having sent the
    /// command, and the monitor sees its connection closed then.
    #[test]
    fn a_command_ends_at_the_prompt_after_it() {
        let scratch = std::env::temp_dir().join(format!("rexo-hmp-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).unwrap();
        let socket = scratch.join("monitor.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        const COMMAND: &str = "device_add usb-kbd,bus=xhci.0,id=plugged";
        let qemu = std::thread::spawn(move || {
            let (mut connection, _) = listener.accept().unwrap();
            connection
                .write_all(b"QEMU 7.2.0 monitor\r\n(qemu) ")
                .unwrap();
            let mut command = vec![0; COMMAND.len() + 1];
            connection.read_exact(&mut command).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            let ran = Instant::now();
            connection.write_all(b"device_add ...\r\n(qemu) ").unwrap();
            let mut rest = Vec::new();
            connection.read_to_end(&mut rest).unwrap();
            (command, ran.elapsed(), rest)
        });
        let started = Instant::now();
        run(&socket, COMMAND).unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "waited for the prompt"
        );
        let (command, closed_after, rest) = qemu.join().unwrap();
        assert_eq!(command, format!("{COMMAND}\n").as_bytes());
        assert!(
            closed_after < Duration::from_millis(150),
            "{closed_after:?}"
        );
        assert!(rest.is_empty());
        std::fs::remove_dir_all(&scratch).unwrap();
    }
}
