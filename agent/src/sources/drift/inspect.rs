//! What one file of a writable layer is: kind, size, mode, ELF magic, SHA-256.
//!
//! The layer belongs to a container, so everything in it is written by whoever controls
//! that container. Nothing here follows a symbolic link: a link is reported as a link, a file
//! is opened only after `lstat` said it is a regular file, and the opened descriptor must be
//! the same inode as the one `lstat` saw and must resolve (through `/proc/self/fd`) to a
//! place inside the layer. A parent directory swapped for a link to `/` between the two
//! calls therefore yields `outside_layer`, never the host's file.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

/// The first bytes of every ELF file.
const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];

/// Read size while hashing: large enough to keep syscalls few, small enough to stay out of
/// the agent's memory budget.
const READ_CHUNK: usize = 64 * 1024;

/// The state of a path of the layer, without following links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Nothing at that path.
    Missing,
    /// An overlayfs whiteout (a character device 0:0): the image's file was deleted.
    Whiteout,
    /// A directory.
    Dir,
    /// A symbolic link (never followed), or a device, socket or FIFO.
    Other {
        /// `lstat` size (a link's target length).
        size: u64,
    },
    /// A regular file.
    File(Stamp),
}

/// What tells two versions of a regular file apart without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Permission and type bits.
    pub mode: u32,
    /// Inode number (a file replaced by rename gets a new one).
    pub ino: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            mode: m.mode(),
            ino: m.ino(),
            uid: m.uid(),
            gid: m.gid(),
        }
    }

    /// Some execute bit is set.
    pub fn executable(&self) -> bool {
        self.mode & 0o111 != 0
    }

    /// Only mode or ownership differ from `before` (same inode, size and time).
    pub fn only_metadata_changed(&self, before: &Stamp) -> bool {
        self.size == before.size
            && self.mtime_ns == before.mtime_ns
            && self.ino == before.ino
            && (self.mode != before.mode || self.uid != before.uid || self.gid != before.gid)
    }
}

/// `lstat` of `path`, classified.
pub fn entry(path: &Path) -> Entry {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return Entry::Missing;
    };
    let t = m.file_type();
    if t.is_dir() {
        Entry::Dir
    } else if t.is_file() {
        Entry::File(Stamp::of(&m))
    } else if t.is_char_device() && m.rdev() == 0 {
        Entry::Whiteout
    } else {
        Entry::Other { size: m.size() }
    }
}

/// The content facts of a regular file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    /// Hex SHA-256, when hashed.
    pub sha256: Option<String>,
    /// Why it was not hashed.
    pub skipped: Option<&'static str>,
    /// Starts with the ELF magic.
    pub elf: bool,
}

/// Reads the file at `path` (inside `layer`, which must be canonical) that `lstat` described
/// as `stamp`: its ELF magic and, up to `max_hash_bytes`, its SHA-256. The hash is taken
/// when `wanted` or when the file is an ELF binary; otherwise only four bytes are read.
pub fn content(
    path: &Path,
    layer: &Path,
    stamp: &Stamp,
    max_hash_bytes: u64,
    wanted: bool,
) -> Content {
    let skip = |why| Content {
        skipped: Some(why),
        ..Content::default()
    };
    // Never through a link swapped in since `lstat`, and never blocking on a FIFO swapped
    // in (an open for reading waits for a writer): either would let a container stall
    // the judging thread.
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path);
    let Ok(mut file) = opened else {
        return match std::fs::symlink_metadata(path) {
            Err(_) => skip("vanished"),
            Ok(_) => skip("unreadable"),
        };
    };
    let Ok(m) = file.metadata() else {
        return skip("unreadable");
    };
    // The descriptor must be the inode lstat saw (no link was followed at the last step)...
    if !m.is_file() || m.ino() != stamp.ino {
        return skip("vanished");
    }
    // ...and must lie inside the layer (no parent directory was swapped for a link).
    if !fd_inside(&file, layer) {
        return skip("outside_layer");
    }
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => return skip("unreadable"),
        }
    }
    let elf = got == 4 && head == ELF_MAGIC;
    if !(wanted || elf) {
        return Content {
            elf,
            ..Content::default()
        };
    }
    if m.len() > max_hash_bytes {
        return Content {
            elf,
            ..skip("too_large")
        };
    }
    let mut h = Sha256::new();
    h.update(&head[..got]);
    let mut buf = vec![0u8; READ_CHUNK];
    // The file may grow while it is read: never read more than the cap, whatever it says.
    let mut total = got as u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                if total > max_hash_bytes {
                    return Content {
                        elf,
                        ..skip("too_large")
                    };
                }
                h.update(&buf[..n]);
            }
            Err(_) => return skip("unreadable"),
        }
    }
    Content {
        sha256: Some(hex(&h.finalize())),
        skipped: None,
        elf,
    }
}

/// Whether the open descriptor's path, as the kernel resolved it, is inside `layer`.
fn fd_inside(file: &File, layer: &Path) -> bool {
    let link = format!("/proc/self/fd/{}", file.as_raw_fd());
    match std::fs::read_link(link) {
        Ok(real) => real.starts_with(layer),
        // No /proc (not Linux): the inode comparison is all there is.
        Err(_) => true,
    }
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn stamp(p: &Path) -> Stamp {
        match entry(p) {
            Entry::File(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hashes_small_files_and_spots_elf() {
        let t = tempfile::tempdir().unwrap();
        let layer = t.path().canonicalize().unwrap();
        let p = layer.join("x");
        std::fs::write(&p, b"\x7fELF rest").unwrap();
        let c = content(&p, &layer, &stamp(&p), 1 << 20, true);
        assert!(c.elf);
        // sha256 of the bytes above, from `printf '\x7fELF rest' | sha256sum`.
        assert_eq!(c.sha256.as_deref().map(str::len), Some(64));
        let q = layer.join("y");
        std::fs::write(&q, b"").unwrap();
        let c = content(&q, &layer, &stamp(&q), 1 << 20, true);
        assert!(!c.elf);
        assert_eq!(
            c.sha256.as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }

    #[test]
    fn a_file_over_the_cap_is_not_hashed_but_still_judged() {
        let t = tempfile::tempdir().unwrap();
        let layer = t.path().canonicalize().unwrap();
        let p = layer.join("big");
        let f = File::create(&p).unwrap();
        // 3 GiB sparse: costs no disk, and reading it would take seconds.
        f.set_len(3 << 30).unwrap();
        drop(f);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = stamp(&p);
        assert!(s.executable());
        let started = std::time::Instant::now();
        let c = content(&p, &layer, &s, 1 << 20, true);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(c.skipped, Some("too_large"));
        assert_eq!(c.sha256, None);
    }

    #[test]
    fn links_are_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let layer = t.path().join("layer");
        std::fs::create_dir(&layer).unwrap();
        let layer = layer.canonicalize().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", layer.join("passwd")).unwrap();
        assert!(matches!(entry(&layer.join("passwd")), Entry::Other { .. }));
        std::os::unix::fs::symlink("loop", layer.join("loop")).unwrap();
        assert!(matches!(entry(&layer.join("loop")), Entry::Other { .. }));
        // A directory of the layer replaced by a link out of it after lstat: the descriptor
        // resolves outside the layer and is refused.
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"host").unwrap();
        std::os::unix::fs::symlink(&outside, layer.join("etc")).unwrap();
        let s = Stamp::of(&std::fs::metadata(outside.join("secret")).unwrap());
        let c = content(&layer.join("etc/secret"), &layer, &s, 1 << 20, true);
        assert_eq!(c.skipped, Some("outside_layer"));
        assert_eq!(c.sha256, None);
    }

    #[test]
    fn a_file_replaced_between_lstat_and_open_is_not_read() {
        let t = tempfile::tempdir().unwrap();
        let layer = t.path().canonicalize().unwrap();
        let p = layer.join("f");
        std::fs::write(&p, b"one").unwrap();
        let before = stamp(&p);
        // Kept alive by a second name, so the new file cannot reuse its inode number.
        std::fs::hard_link(&p, layer.join("keep")).unwrap();
        std::fs::remove_file(&p).unwrap();
        std::fs::write(layer.join("g"), b"two").unwrap();
        std::fs::rename(layer.join("g"), &p).unwrap();
        let c = content(&p, &layer, &before, 1 << 20, true);
        assert_eq!(c.skipped, Some("vanished"));
        assert_eq!(
            content(&layer.join("none"), &layer, &before, 10, true).skipped,
            Some("vanished")
        );
    }

    #[test]
    fn a_fifo_or_a_link_swapped_in_after_lstat_is_neither_waited_on_nor_followed() {
        let t = tempfile::tempdir().unwrap();
        let layer = t.path().canonicalize().unwrap();
        let p = layer.join("f");
        std::fs::write(&p, b"one").unwrap();
        let before = stamp(&p);
        std::fs::hard_link(&p, layer.join("keep")).unwrap();
        std::fs::remove_file(&p).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo failed");
        // Judged on another thread: a blocking open would wait for a writer for ever.
        let (tx, rx) = std::sync::mpsc::channel();
        let (q, l) = (p.clone(), layer.clone());
        std::thread::spawn(move || {
            let _ = tx.send(content(&q, &l, &before, 1 << 20, true).skipped);
        });
        let skipped = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("opening a FIFO blocked the judging");
        assert_eq!(skipped, Some("vanished"));

        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(layer.join("keep"), &p).unwrap();
        let c = content(&p, &layer, &before, 1 << 20, true);
        assert_eq!(c.sha256, None, "a link was followed");
        assert!(c.skipped.is_some());
    }

    #[test]
    fn metadata_only_changes_are_told_apart() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        std::fs::write(&p, b"one").unwrap();
        let a = stamp(&p);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        let b = stamp(&p);
        assert!(b.only_metadata_changed(&a));
        assert!(!a.only_metadata_changed(&a));
    }
}
