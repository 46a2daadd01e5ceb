//! Open files: a handle keeps a file's size and extent map, so that reading it again
//! costs neither the path lookup nor the extent chain, and its blocks go from the disk
//! straight into the caller's buffer.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::FileSystem;
use crate::disk::BlockStore;
use crate::error::FsError;
use crate::format::Extent;
use crate::path::{join, parse};

/// Numbers the mounts of this program, so that a handle knows the one it came from.
static MOUNTS: AtomicU64 = AtomicU64::new(1);

/// A fresh mount number.
pub(crate) fn next_mount() -> u64 {
    MOUNTS.fetch_add(1, Ordering::Relaxed)
}

/// An open file ([`FileSystem::open`]), read with [`FileSystem::read_at`].
///
/// A handle names its path on the mount that opened it. It keeps the file's size and
/// extents as they were when it last looked; any change to the file system since (to
/// this file or another) makes the next read look the path up again, so a read always
/// sees the current file: a changed or truncated file as it is now, a removed one
/// `NotFound`.
#[derive(Clone, Debug)]
pub struct File {
    /// The path, normalised.
    path: String,
    /// The mount it belongs to.
    mount: u64,
    /// The mount's change count when `size` and `extents` were read.
    version: u64,
    /// The file's size then.
    size: u64,
    /// Its extents then.
    extents: Vec<Extent>,
}

impl File {
    /// The path the handle reads.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl<D: BlockStore> FileSystem<D> {
    /// Opens the file `path` for reading with [`FileSystem::read_at`].
    pub fn open(&mut self, path: &str) -> Result<File, FsError> {
        self.usable()?;
        let names = parse(path)?;
        let found = self.lookup_file(&names)?;
        let (extents, _) = self.load_extents(&found.inode)?;
        Ok(File {
            path: join(&names),
            mount: self.mount,
            version: self.version,
            size: found.inode.size,
            extents,
        })
    }

    /// [`FileSystem::read`] through a handle: from byte `offset` of `file` into `buf`,
    /// returning the bytes read (fewer at the end of the file). Unless the file system
    /// changed since the handle last looked (then it looks the path up again), no
    /// metadata is read; a large file's whole blocks go from the disk into `buf`
    /// without passing through the cache. A handle from another mount is refused.
    pub fn read_at(
        &mut self,
        file: &mut File,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, FsError> {
        self.refresh(file)?;
        self.read_mapped(file.size, &file.extents, offset, buf)
    }

    /// [`read_at`](Self::read_at) without a buffer of the caller's: up to `len` bytes
    /// from `offset` are handed to `take(at, bytes)` where they are (`at` counted from
    /// `offset`), in pieces in any order that together cover what was read. A large
    /// file's whole blocks come in the device's own buffers, so nothing is copied
    /// between the disk and the app. Returns the bytes read (fewer at the end of the
    /// file).
    pub fn read_at_in_place(
        &mut self,
        file: &mut File,
        offset: u64,
        len: usize,
        take: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<usize, FsError> {
        self.refresh(file)?;
        self.read_mapped_in_place(file.size, &file.extents, offset, len, take)
    }

    /// Checks that `file` is this mount's and brings its extents up to date if the file
    /// system changed since it last looked.
    fn refresh(&mut self, file: &mut File) -> Result<(), FsError> {
        self.usable()?;
        if file.mount != self.mount {
            return Err(FsError::OtherMount(file.path.clone()));
        }
        if file.version != self.version {
            let names = parse(&file.path)?;
            let found = self.lookup_file(&names)?;
            file.extents = self.load_extents(&found.inode)?.0;
            file.size = found.inode.size;
            file.version = self.version;
        }
        Ok(())
    }
}
