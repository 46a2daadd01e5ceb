//! The lock the host's image tools (`cargo xtask disk`, `cargo xtask fs`) hold on an
//! image while they work on it, so that a tool and a QEMU never use one image at once.
//!
//! QEMU 7.2 locks a raw image it opens (`block/file-posix.c`) with open file
//! description (OFD) `fcntl` locks on single bytes: a shared lock on byte 100 + P for
//! each permission P it takes (0 consistent read, 1 write, 2 write unchanged, 3 resize)
//! and on byte 200 + P for each one it does not share with others, after testing those
//! bytes for another's lock. A tool takes an exclusive `fcntl` lock on the whole file,
//! which covers all of those bytes: taken while a QEMU has the image open it is refused,
//! and a QEMU started while a tool holds it fails ("Failed to lock byte 100"). rustix
//! offers that lock as the process's (`F_SETLK`), not an OFD one; the two kinds
//! conflict with each other across processes, so QEMU's locks are met either way. Being
//! the process's, it keeps no two users inside one process apart, and closing any
//! descriptor of the image in the process ends it: a tool works through the descriptor
//! that holds it.

use std::fs::File;
use std::path::Path;

use rustix::fs::{FlockOperation, fcntl_lock};
use rustix::io::Errno;

use crate::Result;

/// Locks the image `file` (opened for writing, from `path`) against other processes
/// until the process closes it, or refuses, naming why, when another process holds it
/// or a lock on part of it (a running QEMU, another tool).
pub fn hold(file: &File, path: &Path) -> Result<()> {
    match fcntl_lock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(Errno::AGAIN | Errno::ACCESS) => Err(format!(
            "{}: another process has the image open (a QEMU running with it, or another \
             `cargo xtask disk` or `fs`); stop it and try again (nothing was done)",
            path.display()
        )),
        Err(e) => Err(format!("{}: cannot lock the image: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    /// A QEMU (paused, no firmware run) with an image as a writable virtio disk: it holds
    /// QEMU's locks on the image until it is dropped (killed then, a failing test too).
    struct Qemu(Child);

    impl Qemu {
        fn with(image: &Path) -> Self {
            let drive = format!(
                "file={},format=raw,if=none,id=d",
                crate::qemu::option_path(image).unwrap()
            );
            let child = Command::new("qemu-system-x86_64")
                .args(["-M", "microvm", "-S", "-display", "none", "-nodefaults"])
                .args(["-drive", &drive, "-device", "virtio-blk-device,drive=d"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("qemu-system-x86_64");
            Self(child)
        }

        /// Whether QEMU refused to run, ending by itself within 20 s with an error, and
        /// what it said.
        fn refused(mut self) -> (bool, String) {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if let Some(status) = self.0.try_wait().unwrap() {
                    let mut said = String::new();
                    if let Some(mut stderr) = self.0.stderr.take() {
                        std::io::Read::read_to_string(&mut stderr, &mut said).unwrap();
                    }
                    return (!status.success(), said);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (false, "still running after 20 s".into())
        }
    }

    impl Drop for Qemu {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// What `try_tool` answers once QEMU has locked the image (it is asked again until
    /// it fails, for 20 s).
    fn refusal_once_locked(try_tool: &dyn Fn() -> Result<()>) -> String {
        let start = Instant::now();
        loop {
            match try_tool() {
                Err(e) => return e,
                Ok(()) if start.elapsed() > Duration::from_secs(20) => {
                    panic!("the tool never saw QEMU's lock")
                }
                Ok(()) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Every `disk` and `fs` command refuses an image a QEMU has open, changing nothing,
    /// and a QEMU refuses an image a tool holds; each works again once the other is gone.
    /// Both tools wrote to an image QEMU was writing to before.
    #[test]
    fn a_tool_and_a_qemu_never_hold_one_image_at_once() {
        let dir = std::env::temp_dir().join(format!("rexo-image-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let host_file = dir.join("host.txt");
        std::fs::write(&host_file, b"from the host").unwrap();
        let s = |path: &Path| path.to_str().unwrap().to_string();
        let (bmfs, rexofs) = (dir.join("bmfs.img"), dir.join("rexofs.img"));
        crate::disk::image_of_site(&bmfs).unwrap();
        crate::fsimage::image_of_site(&rexofs).unwrap();
        let bmfs_before = std::fs::read(&bmfs).unwrap();
        let rexofs_before = std::fs::read(&rexofs).unwrap();

        let disk =
            |words: &[&str]| crate::disk::command(words.iter().map(|w| w.to_string()).collect());
        let fs = |words: &[&str]| {
            let argv: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            crate::fsimage::command(&argv)
        };
        let qemu = Qemu::with(&bmfs);
        let first = refusal_once_locked(&|| disk(&["check", &s(&bmfs)]));
        let put = disk(&["put", &s(&bmfs), &s(&host_file)]);
        let create = disk(&["create", &s(&bmfs), "8M", "--force"]);
        drop(qemu);
        for refusal in [Err(first), put, create] {
            let err = refusal.unwrap_err();
            assert!(err.contains("another process has the image open"), "{err}");
        }
        assert!(
            std::fs::read(&bmfs).unwrap() == bmfs_before,
            "the BMFS image changed"
        );
        assert!(!dir.join("bmfs.img.creating").exists());
        disk(&["check", &s(&bmfs)]).unwrap();

        let qemu = Qemu::with(&rexofs);
        let first = refusal_once_locked(&|| fs(&[&s(&rexofs), "check"]));
        let refusals = [
            Err(first),
            fs(&[&s(&rexofs), "put", &s(&host_file), "/host.txt"]),
            fs(&[&s(&rexofs), "repair"]),
            fs(&[&s(&rexofs), "create", "8M", "--force"]),
        ];
        drop(qemu);
        for refusal in refusals {
            let err = refusal.unwrap_err();
            assert!(err.contains("another process has the image open"), "{err}");
        }
        assert!(
            std::fs::read(&rexofs).unwrap() == rexofs_before,
            "the image changed"
        );
        fs(&[&s(&rexofs), "check"]).unwrap();

        // The other way round: a QEMU started while a tool holds the image fails.
        let held = crate::fsimage::mount(&rexofs).unwrap();
        let (refused, said) = Qemu::with(&rexofs).refused();
        drop(held);
        assert!(refused, "QEMU ran with an image a tool held: {said}");
        assert!(said.contains("Failed to lock byte"), "{said}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
