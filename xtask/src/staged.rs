//! Files built beside the file they replace and renamed over it once complete, so that a
//! command failing half-way (a bad argument found late, a full disk, a tool that fails)
//! leaves the old file as it was and no half-made one; and the folders of intermediate
//! files such a build uses, removed however it ends.

use crate::Result;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// A file being built at `DESTINATION.SUFFIX`; [`Staged::commit`] renames it over the
/// destination, and dropped without that it is removed.
pub struct Staged {
    /// Where it is built.
    path: PathBuf,
    /// The file it replaces (a symbolic link's target: the link is kept).
    destination: PathBuf,
    /// The open file.
    file: File,
    /// The destination when there is one, open and locked against other processes (a
    /// QEMU: [`crate::imagelock`]) until the new file replaces it.
    _held: Option<File>,
    /// Whether it was renamed into place (nothing left to remove).
    committed: bool,
}

impl Staged {
    /// Starts replacing `destination` (or making it, if there is none): an empty file
    /// `DESTINATION.SUFFIX` beside it, replacing one a killed run left there. A
    /// destination that exists must be a regular file this user may write and no other
    /// process holds (a QEMU using it as a disk: [`crate::imagelock`]), which is then
    /// locked until it is replaced; the new file takes its permissions.
    pub fn create(destination: &Path, suffix: &str) -> Result<Self> {
        let name = destination.display();
        let existing = std::fs::canonicalize(destination).ok();
        let mut held = None;
        if let Some(target) = &existing {
            let meta = std::fs::metadata(target).map_err(|e| format!("{name}: {e}"))?;
            if !meta.is_file() {
                return Err(format!(
                    "{name} exists and is not a regular file; give the path of an image file"
                ));
            }
            // Opened for writing, not truncated: refused as the old file would have been.
            let old = OpenOptions::new()
                .write(true)
                .open(target)
                .map_err(|e| format!("{name}: {e}"))?;
            crate::imagelock::hold(&old, destination)?;
            held = Some(old);
        }
        let destination = existing.unwrap_or_else(|| destination.to_path_buf());
        let file_name = destination
            .file_name()
            .ok_or_else(|| format!("{name} names no file"))?;
        let mut staged_name = file_name.to_os_string();
        staged_name.push(format!(".{suffix}"));
        let path = destination.with_file_name(staged_name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let staged = Self {
            path,
            destination,
            file,
            _held: held,
            committed: false,
        };
        if let Ok(meta) = std::fs::metadata(&staged.destination) {
            staged
                .file
                .set_permissions(meta.permissions())
                .map_err(|e| format!("{}: {e}", staged.path.display()))?;
        }
        Ok(staged)
    }

    /// Refuses to make a new image at `destination` over a file that holds anything,
    /// unless `force` (the tools' `--force`): `disk create README.md 64M` replaced the
    /// source file. A path with nothing there, or an empty file, is made freely.
    pub fn may_replace(destination: &Path, force: bool) -> Result<()> {
        match std::fs::metadata(destination) {
            Ok(meta) if meta.len() > 0 && !force => Err(format!(
                "{} is there already ({} bytes); give --force to replace it, or choose \
                 another path",
                destination.display(),
                meta.len()
            )),
            _ => Ok(()),
        }
    }

    /// [`Staged::create`] for a new image of `bytes` bytes, made that long (sparse: its
    /// holes take no room yet). A size past what the host's file system holding it
    /// could ever store (its whole size: such an image could never be filled, and the
    /// guest would meet write errors where it saw free room) is refused before the
    /// image is made; one past the largest file the host's file system allows fails as
    /// the file is made, and leaves nothing either.
    pub fn create_sized(destination: &Path, suffix: &str, bytes: u64) -> Result<Self> {
        let name = destination.display();
        let staged = Self::create(destination, suffix)?;
        let host = rustix::fs::fstatvfs(&staged.file).map_err(|e| format!("{name}: {e}"))?;
        let host_bytes = host.f_blocks.saturating_mul(host.f_frsize);
        if bytes > host_bytes {
            return Err(format!(
                "{name}: {bytes} bytes are more than the host's file system holding the \
                 image could ever store ({host_bytes} bytes in all); nothing was written"
            ));
        }
        staged
            .file
            .set_len(bytes)
            .map_err(|e| format!("{name}: making a file of {bytes} bytes: {e}"))?;
        Ok(staged)
    }

    /// Where the file is built.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file being built, open for reading and writing.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// A second handle on the file being built.
    pub fn handle(&self) -> Result<File> {
        self.file
            .try_clone()
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// Renames the finished file over its destination (removing it if that fails).
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.path, &self.destination).map_err(|e| {
            format!(
                "renaming {} to {}: {e}",
                self.path.display(),
                self.destination.display()
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A folder of intermediate files (a GRUB tool's input and output), made empty beside
/// what is being built and removed with everything in it when dropped, so that no path
/// out of the build (a tool that fails, an error of the build's own) leaves it behind.
pub struct WorkTree {
    /// The folder.
    path: PathBuf,
}

impl WorkTree {
    /// Makes the empty folder `path`, first removing one a killed run left there.
    pub fn create(path: PathBuf) -> Result<Self> {
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        }
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Self { path })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_staged_file_replaces_its_destination_only_when_committed() {
        let base = std::env::temp_dir().join(format!("rexo-staged-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let image = base.join("disk.img");
        std::fs::write(&image, b"old").unwrap();
        let building = base.join("disk.img.creating");

        let mut dropped = Staged::create(&image, "creating").unwrap();
        dropped.file.write_all(b"half").unwrap();
        assert!(building.exists());
        drop(dropped);
        assert!(!building.exists(), "dropped: removed");
        assert_eq!(std::fs::read(&image).unwrap(), b"old");

        // Through a symbolic link: the file it names is replaced, the link kept.
        let link = base.join("link.img");
        std::os::unix::fs::symlink(&image, &link).unwrap();
        let staged = Staged::create(&link, "creating").unwrap();
        staged.handle().unwrap().write_all(b"new").unwrap();
        staged.commit().unwrap();
        assert_eq!(std::fs::read(&image).unwrap(), b"new");
        assert!(link.symlink_metadata().unwrap().is_symlink());
        assert!(!building.exists());

        let err = Staged::create(&base, "creating").map(|_| ()).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// The refusal of a size past the host's file system reads as one sentence (a string
    /// continuation without its `\` once put a run of spaces in it) and leaves nothing.
    #[test]
    fn a_size_past_the_host_file_system_is_refused_in_one_sentence() {
        let base = std::env::temp_dir().join(format!("rexo-staged-size-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let image = base.join("huge.img");
        let err = Staged::create_sized(&image, "creating", u64::MAX)
            .map(|_| ())
            .unwrap_err();
        assert!(
            err.contains("file system holding the image could ever store"),
            "{err}"
        );
        assert!(!image.exists() && !base.join("huge.img.creating").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_work_tree_starts_empty_and_is_removed_when_dropped() {
        let base = std::env::temp_dir().join(format!("rexo-work-tree-{}", std::process::id()));
        let path = base.join("disk.boot-tree");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("left"), b"by a killed run").unwrap();
        let tree = WorkTree::create(path.clone()).unwrap();
        assert_eq!(std::fs::read_dir(tree.path()).unwrap().count(), 0);
        std::fs::create_dir_all(path.join("boot/grub")).unwrap();
        std::fs::write(path.join("boot/grub/grub.cfg"), b"cfg").unwrap();
        drop(tree);
        assert!(!path.exists(), "the tree was left");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
