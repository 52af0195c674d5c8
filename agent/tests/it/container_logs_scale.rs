//! The 1,000-file test: a node with 1,000 container log files, one of them noisy, read by
//! the container-log source with 64 descriptors and 200 inotify watches. Checked against
//! what the kernel says the process holds (`/proc/self/fd`, `/proc/self/fdinfo`), not only
//! against the source's own counters: descriptors and watches stay within the limits,
//! idle files are closed, the limits show in the metrics and the logs, every line of every
//! file arrives exactly once and in order, and the noisy file does not hold up the others.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_agent::config::{PipelineConfig, StartAt};
use vigil_agent::metrics::Metrics;
use vigil_agent::sources::container_logs::{ContainerLogsConfig, ContainerLogsSource};
use vigil_core::detect::RuleSet;
use vigil_core::event::Event;

const FILES: usize = 1000;
const MAX_OPEN_FILES: usize = 64;
const MAX_WATCHED_DIRS: usize = 200;
const QUIET_LINES: usize = 3;
/// About 3 MB: two hundred read budgets.
const NOISY_LINES: usize = 20_000;
const NOISY: usize = 500;

/// Descriptors this process holds on files under `root`. The other tests of this binary
/// run on other threads, so only descriptors pointing under `root` count.
fn descriptors_under(root: &Path) -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| fs::read_link(e.path()).is_ok_and(|target| target.starts_with(root)))
        .count()
}

/// The inode numbers of the directories under `root`, `root` included.
fn dir_inodes(root: &Path, out: &mut HashSet<u64>) {
    out.insert(fs::metadata(root).unwrap().ino());
    for entry in fs::read_dir(root).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            dir_inodes(&entry.path(), out);
        }
    }
}

/// inotify watches this process holds on directories under `root`, as the kernel lists
/// them (`inotify wd:<n> ino:<hex> ...` lines of every inotify descriptor's fdinfo).
fn watches_under(root: &Path) -> usize {
    let mut ours = HashSet::new();
    dir_inodes(root, &mut ours);
    let mut count = 0;
    for entry in fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if !fs::read_link(entry.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:inotify") {
            continue;
        }
        let info = Path::new("/proc/self/fdinfo").join(entry.file_name());
        let Ok(text) = fs::read_to_string(info) else {
            continue;
        };
        count += text
            .lines()
            .filter(|l| l.starts_with("inotify "))
            .filter_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("ino:")))
            .filter(|ino| u64::from_str_radix(ino, 16).is_ok_and(|ino| ours.contains(&ino)))
            .count();
    }
    count
}

fn line(file: usize, n: usize) -> String {
    // Distinct nanoseconds: no two files share a first line.
    format!(
        "2024-05-02T10:15:30.{:09}Z stdout F f{file} l{n} {}\n",
        file * 100_000 + n,
        "GET /api/v1/items?page=2 HTTP/1.1 200 512 Mozilla/5.0 (X11; Linux x86_64) ".repeat(2)
    )
}

fn message(file: usize, n: usize) -> String {
    line(file, n)
        .strip_suffix('\n')
        .and_then(|l| l.split_once(" F "))
        .map(|(_, m)| m.to_owned())
        .unwrap()
}

fn append(path: &Path, text: &str) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A log writer collecting what the source logs on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Reader {
    src: ContainerLogsSource,
    root: PathBuf,
    /// Every message, in delivery order.
    got: Vec<String>,
    max_descriptors: usize,
}

impl Reader {
    /// Reads (acking every batch) until `want` messages came in all, checking the
    /// descriptors held after every batch.
    fn read_until(&mut self, want: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let checkpointer = self.src.checkpointer();
        while self.got.len() < want {
            assert!(
                Instant::now() < deadline,
                "{} of {want} messages",
                self.got.len()
            );
            if let Some((events, position)) = self.src.read_events(Duration::from_millis(50)) {
                self.got.extend(events.iter().map(text));
                for (file, end) in position {
                    checkpointer.ack(file, end);
                }
            }
            let held = descriptors_under(&self.root);
            self.max_descriptors = self.max_descriptors.max(held);
            assert!(held <= MAX_OPEN_FILES, "{held} descriptors held");
            assert!(self.src.stats().open_files <= MAX_OPEN_FILES);
        }
    }
}

fn text(e: &Event) -> String {
    e.log.as_ref().unwrap().message.clone().unwrap()
}

#[test]
fn a_thousand_files_within_descriptor_and_watch_limits_every_line_once_and_fairly() {
    let dir = tempfile::tempdir().unwrap();
    // Canonical, to compare with the targets of the descriptors.
    let root = fs::canonicalize(dir.path()).unwrap().join("logs");
    let mut paths = Vec::new();
    for f in 0..FILES {
        let d = root.join(format!("pods/ns{}_pod{f}_uid-{f}/app", f % 20));
        fs::create_dir_all(&d).unwrap();
        let p = d.join("0.log");
        let lines = if f == NOISY { NOISY_LINES } else { QUIET_LINES };
        append(&p, &(0..lines).map(|n| line(f, n)).collect::<String>());
        paths.push(p);
    }
    fs::create_dir_all(root.join("containers")).unwrap();
    fs::create_dir_all(root.join("docker")).unwrap();
    let cfg = ContainerLogsConfig {
        pods_dir: root.join("pods"),
        containers_dir: root.join("containers"),
        docker_dir: root.join("docker"),
        start_at: StartAt::Beginning,
        max_open_files: MAX_OPEN_FILES,
        max_watched_dirs: MAX_WATCHED_DIRS,
        idle_close_secs: 1,
        read_budget_bytes: 16 * 1024,
        poll_interval_ms: 50,
        rescan_interval_ms: 200,
        ..ContainerLogsConfig::default()
    };
    let metrics = Arc::new(Metrics::default());
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let src = ContainerLogsSource::new(
        &cfg,
        &PipelineConfig::default(),
        None,
        Some("node-1".into()),
        &dir.path().join("state"),
        Arc::new(RuleSet::from_documents(&[]).unwrap()),
        Arc::clone(&metrics),
        false,
    )
    .unwrap();
    let mut r = Reader {
        src,
        root: root.clone(),
        got: Vec::new(),
        max_descriptors: 0,
    };

    let total = (FILES - 1) * QUIET_LINES + NOISY_LINES;
    r.read_until(total);
    let watches = watches_under(&root);
    assert!(
        watches > 0 && watches <= MAX_WATCHED_DIRS,
        "{watches} inotify watches"
    );
    let stats = r.src.stats();
    assert_eq!(stats.paths, FILES);
    assert!(stats.polled_dirs > 0, "{stats:?}");

    // Every line of every file, once, in file order.
    let mut by_file: HashMap<usize, Vec<usize>> = HashMap::new();
    for m in &r.got {
        let (f, rest) = m[1..].split_once(" l").unwrap();
        let n = rest.split_once(' ').unwrap().0;
        by_file
            .entry(f.parse().unwrap())
            .or_default()
            .push(n.parse().unwrap());
    }
    assert_eq!(by_file.len(), FILES);
    for (f, ns) in &by_file {
        let lines = if *f == NOISY {
            NOISY_LINES
        } else {
            QUIET_LINES
        };
        assert_eq!(*ns, (0..lines).collect::<Vec<_>>(), "file {f}");
    }
    assert_eq!(r.got.len(), total, "no line twice");

    // Fairness: the quiet files were all read while most of the noisy file was still
    // waiting, although it had its descriptor from early on.
    let last_quiet = r
        .got
        .iter()
        .rposition(|m| !m.starts_with(&format!("f{NOISY} ")))
        .unwrap();
    let noisy_before = r.got[..last_quiet]
        .iter()
        .filter(|m| m.starts_with(&format!("f{NOISY} ")))
        .count();
    assert!(
        noisy_before < NOISY_LINES / 2,
        "{noisy_before} noisy lines came before the last quiet one"
    );

    // Idle files are closed: with nothing to read, no descriptor stays open.
    let deadline = Instant::now() + Duration::from_secs(30);
    while r.src.stats().open_files > 0 {
        assert!(Instant::now() < deadline, "still open: {:?}", r.src.stats());
        let _ = r.src.read_events(Duration::from_millis(100));
    }
    assert_eq!(descriptors_under(&root), 0);
    assert_eq!(r.src.stats().parked_files, FILES);

    // Every file, closed or not, is read again when it grows, within the limits.
    for (f, p) in paths.iter().enumerate() {
        append(p, &line(f, 1_000_000));
    }
    r.read_until(total + FILES);
    let mut again: Vec<&String> = r.got[total..].iter().collect();
    again.sort();
    again.dedup();
    assert_eq!(again.len(), FILES);
    assert!(again.contains(&&message(7, 1_000_000)));

    // The limits are in the metrics and in the logs.
    let _ = r.src.read_events(Duration::from_millis(250));
    let text = metrics.render();
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing"))
            .parse()
            .unwrap()
    };
    assert!(value("vigil_container_log_open_files_limited_total") > 0);
    assert!(value("vigil_container_log_polled_dirs") > 0);
    assert!(value("vigil_container_log_watched_dirs") <= MAX_WATCHED_DIRS as u64);
    assert_eq!(value("vigil_container_log_files"), FILES as u64);
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("max_open_files reached"), "{logged}");
    assert!(logged.contains("the others are polled"), "{logged}");
    assert!(
        r.max_descriptors > MAX_OPEN_FILES / 2,
        "the limit was reached"
    );
}
