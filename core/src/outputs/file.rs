//! JSON lines appended to a file, for a co-located log collector.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BoxFuture, Output, OutputError, encode_json_line};
use crate::event::Event;

/// When the file output calls fsync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// After every batch, before acknowledging it: a power loss loses nothing acknowledged.
    Batch,
    /// Never; the kernel writes back. A node crash (not a process crash) can lose the last
    /// seconds of acknowledged events.
    #[default]
    Never,
}

/// Settings of the file output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileOutputConfig {
    /// The file; created with its directory if missing, appended to otherwise. When the path
    /// is renamed or deleted (log rotation), the next batch goes to a new file at the path.
    pub path: PathBuf,
    /// When to fsync.
    #[serde(default)]
    pub fsync: FsyncPolicy,
}

/// Appends events as JSON lines.
#[derive(Debug)]
pub struct FileOutput {
    config: FileOutputConfig,
    file: File,
    inode: (u64, u64),
    buf: Vec<u8>,
}

impl FileOutput {
    /// Opens (or creates) the file.
    pub fn open(config: FileOutputConfig) -> Result<Self, OutputError> {
        let (file, inode) = open_append(&config.path)?;
        Ok(FileOutput {
            config,
            file,
            inode,
            buf: Vec::new(),
        })
    }

    /// Reopens the path when it no longer names the open file (rotated away).
    fn follow_rotation(&mut self) -> Result<(), OutputError> {
        let current = std::fs::metadata(&self.config.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if current != Some(self.inode) {
            let (file, inode) = open_append(&self.config.path)?;
            self.file = file;
            self.inode = inode;
        }
        Ok(())
    }
}

/// Opens the file for appending. A process killed in the middle of a write leaves a line
/// without its newline; the next line starts on a fresh line so that the fragment stays a
/// line of its own (a consumer skips it as malformed; its events were never acknowledged and
/// are written again) instead of corrupting the next event too.
fn open_append(path: &PathBuf) -> Result<(File, (u64, u64)), OutputError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?;
    let m = file.metadata()?;
    if m.len() > 0 {
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, m.len() - 1)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
    }
    Ok((file, (m.dev(), m.ino())))
}

impl Output for FileOutput {
    fn name(&self) -> &str {
        "file"
    }

    fn send<'a>(&'a mut self, events: &'a [Event]) -> BoxFuture<'a, Result<(), OutputError>> {
        Box::pin(async move {
            self.buf.clear();
            for e in events {
                encode_json_line(e, &mut self.buf)?;
            }
            self.follow_rotation()?;
            // One write of the whole batch: O_APPEND keeps it contiguous even if another
            // writer shares the file.
            self.file.write_all(&self.buf)?;
            if self.config.fsync == FsyncPolicy::Batch {
                self.file.sync_data()?;
            }
            Ok(())
        })
    }

    fn flush(&mut self) -> BoxFuture<'_, Result<(), OutputError>> {
        Box::pin(async move {
            self.file.sync_data()?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str) -> Event {
        Event {
            id: id.into(),
            action: "get".into(),
            ..Event::default()
        }
    }

    #[tokio::test]
    async fn appends_lines_and_follows_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/events.json");
        let mut out = FileOutput::open(FileOutputConfig {
            path: path.clone(),
            fsync: FsyncPolicy::Batch,
        })
        .unwrap();
        out.send(&[ev("a"), ev("b")]).await.unwrap();
        std::fs::rename(&path, dir.path().join("events.json.1")).unwrap();
        out.send(&[ev("c")]).await.unwrap();
        let ids = |p: &std::path::Path| -> Vec<String> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Event>(l).unwrap().id)
                .collect()
        };
        assert_eq!(ids(&dir.path().join("events.json.1")), ["a", "b"]);
        assert_eq!(ids(&path), ["c"]);
    }

    #[tokio::test]
    async fn a_torn_last_line_stays_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.json");
        std::fs::write(&path, b"{\"id\":\"a\"}\n{\"schema\":\"vigil.ev").unwrap();
        let mut out = FileOutput::open(FileOutputConfig {
            path: path.clone(),
            fsync: FsyncPolicy::Never,
        })
        .unwrap();
        out.send(&[ev("b")]).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], "{\"schema\":\"vigil.ev");
        assert_eq!(serde_json::from_str::<Event>(lines[2]).unwrap().id, "b");
    }

    #[tokio::test]
    async fn reports_unwritable_paths() {
        let err = FileOutput::open(FileOutputConfig {
            path: "/proc/version/x".into(),
            fsync: FsyncPolicy::Never,
        })
        .unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }
}
