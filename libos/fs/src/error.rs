//! Why an operation, a mount or a check failed.

use alloc::format;
use alloc::string::String;
use core::fmt;

/// Why the file system refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsError {
    /// The block store failed (its message). After a failed write or flush the file
    /// system stops: every later call returns this error until the disk is mounted again.
    Disk(String),
    /// Block 0 does not hold a Rexo file system (no superblock magic).
    NotFormatted,
    /// The disk is too small to format (its blocks).
    TooSmall(u64),
    /// On-disk data is damaged: the block where it was found and what is wrong.
    Corrupt {
        /// The block holding the damage.
        block: u64,
        /// What is wrong, naming the path involved when there is one.
        what: String,
    },
    /// No file or directory at this path.
    NotFound(String),
    /// Something already exists at this path.
    Exists(String),
    /// A directory was needed but this path is a file.
    NotADirectory(String),
    /// A file was needed but this path is a directory.
    IsADirectory(String),
    /// The directory is not empty.
    NotEmpty(String),
    /// A name in this path is longer than 255 bytes.
    NameTooLong(String),
    /// The path is not absolute, or a name in it is `.`, `..` or holds a NUL.
    InvalidName(String),
    /// The root directory cannot be removed, renamed or replaced.
    Root,
    /// A directory cannot be moved inside itself.
    IntoItself {
        /// The directory being moved.
        from: String,
        /// The destination inside it.
        to: String,
    },
    /// No free block is left.
    NoSpace,
    /// The write or truncate would make the file larger than [`crate::MAX_FILE_SIZE`].
    FileTooLarge(String),
    /// The operation needs a journal transaction of more blocks than the journal holds.
    TooLarge {
        /// Journal blocks the transaction needs.
        needed: u64,
        /// Journal blocks available to one transaction.
        capacity: u64,
    },
    /// A file handle (of this path) was opened on another mount.
    OtherMount(String),
    /// The app cannot get the memory this needs (a check or repair of a large disk
    /// needs one bit per disk block, a journal replay the images of a transaction,
    /// [`crate::FileSystem::read_all`] the whole file, [`crate::FileSystem::write`]
    /// the new images of a piece's blocks, the blocks it reads to change and its
    /// commit's journal blocks; nothing is committed then, and the mount goes on):
    /// what for, and how many bytes.
    NoMemory {
        /// What the memory was for.
        what: String,
        /// Bytes needed.
        bytes: u64,
    },
    /// The file system is mounted read-only ([`crate::FileSystem::mount_read_only`]):
    /// why: what its check found, or the failed write of its journal home.
    ReadOnly(String),
}

impl FsError {
    /// A corruption report for `block`.
    pub(crate) fn corrupt(block: u64, what: impl Into<String>) -> Self {
        Self::Corrupt {
            block,
            what: what.into(),
        }
    }

    /// The same error, with a corruption report saying which path it was found under.
    pub(crate) fn under(self, path: &str) -> Self {
        match self {
            Self::Corrupt { block, what } => Self::Corrupt {
                block,
                what: format!("{path}: {what}"),
            },
            other => other,
        }
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disk(message) => write!(f, "disk error: {message}"),
            Self::NotFormatted => write!(f, "block 0 holds no Rexo file system"),
            Self::TooSmall(blocks) => write!(f, "a disk of {blocks} blocks is too small"),
            Self::Corrupt { block, what } => write!(f, "corrupt block {block}: {what}"),
            Self::NotFound(path) => write!(f, "{path}: not found"),
            Self::Exists(path) => write!(f, "{path}: already exists"),
            Self::NotADirectory(path) => write!(f, "{path}: not a directory"),
            Self::IsADirectory(path) => write!(f, "{path}: is a directory"),
            Self::NotEmpty(path) => write!(f, "{path}: directory not empty"),
            Self::NameTooLong(path) => write!(f, "{path}: a name is longer than 255 bytes"),
            Self::InvalidName(path) => write!(
                f,
                "{path:?}: not an absolute path of names without NUL, `.` or `..`"
            ),
            Self::Root => write!(
                f,
                "the root directory cannot be removed, renamed or replaced"
            ),
            Self::IntoItself { from, to } => {
                write!(f, "cannot move directory {from} inside itself ({to})")
            }
            Self::NoSpace => write!(f, "no free block left"),
            Self::FileTooLarge(path) => write!(f, "{path}: file would be too large"),
            Self::TooLarge { needed, capacity } => write!(
                f,
                "operation needs {needed} journal blocks, the journal holds {capacity}"
            ),
            Self::OtherMount(path) => {
                write!(f, "{path}: the handle was opened on another mount")
            }
            Self::NoMemory { what, bytes } => {
                write!(
                    f,
                    "{what} needs {bytes} bytes of memory, more than the app can get"
                )
            }
            Self::ReadOnly(why) => write!(f, "mounted read-only ({why}): nothing is written"),
        }
    }
}
