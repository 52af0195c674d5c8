//! A directory a ConfigMap is mounted on, polled for changes.
//!
//! The kubelet updates a ConfigMap volume by writing a new hidden `..TIMESTAMP` directory and
//! swapping the `..data` link to it; the visible names are links through `..data`. Polling
//! what the visible names resolve to (inode, size, modification time) sees that swap, and also
//! plain directories edited in place, without depending on how inotify reports link swaps.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// What a visible name resolved to: name, device, inode, size, modification time (s, ns).
type Seen = (String, u64, u64, u64, i64, i64);

/// A mounted directory and what it looked like when last read.
#[derive(Debug)]
pub struct MountedDir {
    dir: PathBuf,
    seen: Option<Vec<Seen>>,
}

impl MountedDir {
    /// Watches `dir`; the first [`MountedDir::changed`] reports a change.
    pub fn new(dir: impl Into<PathBuf>) -> MountedDir {
        MountedDir {
            dir: dir.into(),
            seen: None,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory's visible files changed since the last call (always true the
    /// first time). A directory that cannot be read is an error and counts as unchanged.
    pub fn changed(&mut self) -> std::io::Result<bool> {
        let mut now = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            // Follows links: the data behind a name, not the link.
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            now.push((
                name,
                meta.dev(),
                meta.ino(),
                meta.len(),
                meta.mtime(),
                meta.mtime_nsec(),
            ));
        }
        now.sort();
        let changed = self.seen.as_ref() != Some(&now);
        self.seen = Some(now);
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::MountedDir;

    #[test]
    fn sees_a_kubelet_style_swap_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let v1 = root.join("..2026_01_01_00_00_00.1");
        std::fs::create_dir(&v1).unwrap();
        std::fs::write(v1.join("a.yaml"), "one").unwrap();
        std::os::unix::fs::symlink(&v1, root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/a.yaml", root.join("a.yaml")).unwrap();

        let mut watch = MountedDir::new(root);
        assert!(watch.changed().unwrap(), "the first look is a change");
        assert!(!watch.changed().unwrap());

        let v2 = root.join("..2026_01_01_00_01_00.2");
        std::fs::create_dir(&v2).unwrap();
        std::fs::write(v2.join("a.yaml"), "two").unwrap();
        std::os::unix::fs::symlink(&v2, root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        assert!(watch.changed().unwrap(), "the ..data swap is a change");
        assert!(!watch.changed().unwrap());

        std::fs::write(root.join("b.yaml"), "new key").unwrap();
        assert!(watch.changed().unwrap(), "a new file is a change");
        std::fs::remove_file(root.join("b.yaml")).unwrap();
        assert!(watch.changed().unwrap(), "a removed file is a change");
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let mut watch = MountedDir::new("/nonexistent/vigil/dir");
        assert!(watch.changed().is_err());
    }
}
