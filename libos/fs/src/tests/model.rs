//! A reference model of the file system: a map from paths to directories and sparse
//! files, with the same rules and the same errors, written independently of the
//! on-disk code.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::{FileImage, Node, Snapshot};
use crate::{BLOCK_SIZE, DirEntry, FileKind, FsError, MAX_FILE_SIZE};

const BLOCK: u64 = BLOCK_SIZE as u64;

/// The tree: names from the root to node. The root (no names) is always there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Model {
    nodes: BTreeMap<Vec<String>, Node>,
}

type Names = Vec<String>;

fn parse(path: &str) -> Result<Names, FsError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(FsError::InvalidName(path.into()));
    };
    let mut names = Vec::new();
    for name in rest.split('/').filter(|name| !name.is_empty()) {
        if name.len() > 255 {
            return Err(FsError::NameTooLong(path.into()));
        }
        if name == "." || name == ".." || name.contains('\0') {
            return Err(FsError::InvalidName(path.into()));
        }
        names.push(String::from(name));
    }
    Ok(names)
}

fn join(names: &[String]) -> String {
    if names.is_empty() {
        return "/".into();
    }
    names.iter().map(|name| alloc::format!("/{name}")).collect()
}

impl Model {
    pub(crate) fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(Vec::new(), Node::Directory);
        Self { nodes }
    }

    /// The node at `names`, with the errors a walk from the root gives.
    fn lookup(&self, names: &[String]) -> Result<&Node, FsError> {
        for depth in 0..names.len() {
            if self.nodes.get(&names[..depth]) != Some(&Node::Directory) {
                return Err(FsError::NotADirectory(join(&names[..depth])));
            }
            if !self.nodes.contains_key(&names[..=depth]) {
                return Err(FsError::NotFound(join(&names[..=depth])));
            }
        }
        Ok(&self.nodes[names])
    }

    fn lookup_directory(&self, names: &[String]) -> Result<(), FsError> {
        match self.lookup(names)? {
            Node::Directory => Ok(()),
            Node::File(_) => Err(FsError::NotADirectory(join(names))),
        }
    }

    fn lookup_file(&self, names: &[String]) -> Result<&FileImage, FsError> {
        match self.lookup(names)? {
            Node::File(file) => Ok(file),
            Node::Directory => Err(FsError::IsADirectory(join(names))),
        }
    }

    fn children(&self, names: &[String]) -> impl Iterator<Item = (&Names, &Node)> {
        self.nodes
            .iter()
            .filter(move |(key, _)| key.len() == names.len() + 1 && key.starts_with(names))
    }

    pub(crate) fn make(&mut self, path: &str, kind: FileKind) -> Result<(), FsError> {
        let names = parse(path)?;
        let Some((_, parent)) = names.split_last() else {
            return Err(FsError::Exists("/".into()));
        };
        self.lookup_directory(parent)?;
        if self.nodes.contains_key(&names) {
            return Err(FsError::Exists(join(&names)));
        }
        let node = match kind {
            FileKind::Directory => Node::Directory,
            FileKind::File => Node::File(FileImage::default()),
        };
        self.nodes.insert(names, node);
        Ok(())
    }

    pub(crate) fn write(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<(), FsError> {
        let names = parse(path)?;
        self.lookup_file(&names)?;
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&end| end <= MAX_FILE_SIZE)
            .ok_or_else(|| FsError::FileTooLarge(join(&names)))?;
        if data.is_empty() {
            return Ok(());
        }
        let Some(Node::File(file)) = self.nodes.get_mut(&names) else {
            unreachable!()
        };
        for (index, &byte) in data.iter().enumerate() {
            let at = offset + index as u64;
            let block = file
                .blocks
                .entry(at / BLOCK)
                .or_insert_with(|| alloc::vec![0; BLOCK_SIZE]);
            block[(at % BLOCK) as usize] = byte;
        }
        file.size = file.size.max(end);
        Ok(())
    }

    pub(crate) fn read(&self, path: &str, offset: u64, length: usize) -> Result<Vec<u8>, FsError> {
        let names = parse(path)?;
        let file = self.lookup_file(&names)?;
        let end = file.size.min(offset.saturating_add(length as u64));
        Ok((offset..end.max(offset))
            .map(|at| {
                file.blocks
                    .get(&(at / BLOCK))
                    .map_or(0, |block| block[(at % BLOCK) as usize])
            })
            .collect())
    }

    pub(crate) fn truncate(&mut self, path: &str, length: u64) -> Result<(), FsError> {
        let names = parse(path)?;
        self.lookup_file(&names)?;
        if length > MAX_FILE_SIZE {
            return Err(FsError::FileTooLarge(join(&names)));
        }
        let Some(Node::File(file)) = self.nodes.get_mut(&names) else {
            unreachable!()
        };
        if length < file.size {
            file.blocks
                .retain(|&index, _| index < length.div_ceil(BLOCK));
            if let Some(block) = file.blocks.get_mut(&(length / BLOCK)) {
                block[(length % BLOCK) as usize..].fill(0);
            }
        }
        file.size = length;
        Ok(())
    }

    pub(crate) fn remove(&mut self, path: &str, kind: FileKind) -> Result<(), FsError> {
        let names = parse(path)?;
        if names.is_empty() {
            return Err(FsError::Root);
        }
        match (kind, self.lookup(&names)?) {
            (FileKind::File, Node::Directory) => return Err(FsError::IsADirectory(join(&names))),
            (FileKind::Directory, Node::File(_)) => {
                return Err(FsError::NotADirectory(join(&names)));
            }
            (FileKind::Directory, Node::Directory) if self.children(&names).next().is_some() => {
                return Err(FsError::NotEmpty(join(&names)));
            }
            _ => {}
        }
        self.nodes.remove(&names);
        Ok(())
    }

    pub(crate) fn rename(&mut self, from: &str, to: &str) -> Result<(), FsError> {
        let source = parse(from)?;
        let target = parse(to)?;
        if source.is_empty() || target.is_empty() {
            return Err(FsError::Root);
        }
        let source_is_directory = *self.lookup(&source)? == Node::Directory;
        if source_is_directory && target.len() > source.len() && target.starts_with(&source) {
            return Err(FsError::IntoItself {
                from: join(&source),
                to: join(&target),
            });
        }
        self.lookup_directory(&target[..target.len() - 1])?;
        if source == target {
            return Ok(());
        }
        if let Some(existing) = self.nodes.get(&target) {
            match (source_is_directory, existing) {
                (false, Node::File(_)) => {}
                (true, Node::Directory) if self.children(&target).next().is_none() => {}
                (true, Node::Directory) => return Err(FsError::NotEmpty(join(&target))),
                (false, Node::Directory) => return Err(FsError::IsADirectory(join(&target))),
                (true, Node::File(_)) => return Err(FsError::NotADirectory(join(&target))),
            }
            self.nodes.remove(&target);
        }
        let moved: Vec<Names> = self
            .nodes
            .keys()
            .filter(|key| key.starts_with(&source))
            .cloned()
            .collect();
        for old in moved {
            let node = self.nodes.remove(&old).unwrap();
            let mut new = target.clone();
            new.extend_from_slice(&old[source.len()..]);
            self.nodes.insert(new, node);
        }
        Ok(())
    }

    /// Names, kinds and file sizes of a directory (directory sizes depend on packing,
    /// which the model does not know: they are left 0).
    pub(crate) fn list(&self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let names = parse(path)?;
        self.lookup_directory(&names)?;
        Ok(self
            .children(&names)
            .map(|(key, node)| DirEntry {
                name: key[names.len()].clone(),
                kind: match node {
                    Node::Directory => FileKind::Directory,
                    Node::File(_) => FileKind::File,
                },
                size: match node {
                    Node::Directory => 0,
                    Node::File(file) => file.size,
                },
            })
            .collect())
    }

    /// Kind, size (0 for directories) and mapped blocks (0 for directories).
    pub(crate) fn stat(&self, path: &str) -> Result<(FileKind, u64, u64), FsError> {
        let names = parse(path)?;
        Ok(match self.lookup(&names)? {
            Node::Directory => (FileKind::Directory, 0, 0),
            Node::File(file) => (FileKind::File, file.size, file.blocks.len() as u64),
        })
    }

    /// Existing paths, for picking operands.
    pub(crate) fn paths(&self) -> Vec<(String, FileKind)> {
        self.nodes
            .iter()
            .map(|(names, node)| {
                let kind = match node {
                    Node::Directory => FileKind::Directory,
                    Node::File(_) => FileKind::File,
                };
                (join(names), kind)
            })
            .collect()
    }

    /// The tree as a snapshot, comparable to the file system's.
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.nodes
            .iter()
            .map(|(names, node)| (join(names), node.clone()))
            .collect()
    }
}
