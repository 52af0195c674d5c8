//! Small files replaced atomically and durably: checkpoints, keys, counters.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The temporary sibling `write_atomic` writes first.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replaces `path` with `bytes`: written to a temporary file in the same directory with
/// permissions `mode`, fsynced, renamed over `path`, then the directory fsynced. A crash
/// leaves either the old or the new content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_via(path, &temp_path(path), bytes, mode)
}

/// [`write_atomic`] through a hidden temporary (`.NAME.tmp`), for directories another program
/// reads every visible file of: the kubelet would start a static pod from a visible
/// `kube-apiserver.yaml.tmp`, and skips names that start with a dot.
pub fn write_atomic_hidden(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".tmp");
    write_atomic_via(path, &path.with_file_name(name), bytes, mode)
}

fn write_atomic_via(path: &Path, tmp: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(tmp, path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_hidden_variant_never_shows_a_visible_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kube-apiserver.yaml");
        write_atomic_hidden(&p, b"one", 0o600).unwrap();
        write_atomic_hidden(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["kube-apiserver.yaml".to_owned()]);
    }

    #[test]
    fn replaces_content_with_the_given_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("client.keys");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!temp_path(&p).exists());
    }
}
