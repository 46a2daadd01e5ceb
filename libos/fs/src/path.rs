//! Paths: `/`-separated, absolute; empty names (from `//` or a trailing `/`) are
//! skipped, so `/a//b/` is `/a/b`.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::FsError;
use crate::format::{MAX_NAME, valid_name};

/// The names along `path`, root first; the root itself has none.
pub(crate) fn parse(path: &str) -> Result<Vec<&str>, FsError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(FsError::InvalidName(path.into()));
    };
    let mut names = Vec::new();
    for name in rest.split('/').filter(|name| !name.is_empty()) {
        if name.len() > MAX_NAME {
            return Err(FsError::NameTooLong(path.into()));
        }
        if !valid_name(name) {
            return Err(FsError::InvalidName(path.into()));
        }
        names.push(name);
    }
    Ok(names)
}

/// The path of `names` in its plain form (`/` for none).
pub(crate) fn join(names: &[&str]) -> String {
    if names.is_empty() {
        return String::from("/");
    }
    let mut path = String::new();
    for name in names {
        path.push('/');
        path.push_str(name);
    }
    path
}

/// The path of `child` inside the directory at `parent`.
pub(crate) fn child(parent: &str, name: &str) -> String {
    let mut path = String::from(parent);
    if !path.ends_with('/') {
        path.push('/');
    }
    path.push_str(name);
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_strictly() {
        assert_eq!(parse("/").unwrap(), Vec::<&str>::new());
        assert_eq!(parse("/a//b/").unwrap(), ["a", "b"]);
        assert_eq!(join(&["a", "b"]), "/a/b");
        assert_eq!(join(&[]), "/");
        assert_eq!(child("/", "x"), "/x");
        assert_eq!(child("/a", "x"), "/a/x");
        for bad in ["", "a", "/a/./b", "/..", "/a\0"] {
            assert_eq!(parse(bad), Err(FsError::InvalidName(bad.into())), "{bad:?}");
        }
        let long = alloc::format!("/{}", "n".repeat(256));
        assert_eq!(parse(&long), Err(FsError::NameTooLong(long.clone())));
        let longest = alloc::format!("/{}", "n".repeat(255));
        assert_eq!(parse(&longest).unwrap().len(), 1);
    }
}
