//! The fallback where the process connector cannot be used: `/proc` is listed every
//! `scan_interval_ms`, and a process not seen before (a new pid, a reused pid with another
//! start time, or a known pid whose `comm` changed: an exec without fork) is reported as an
//! exec.
//!
//! **Blind spot.** A process that starts and ends between two scans is never seen: with the
//! default 1 s interval that is most short commands (`id`, `cat /var/run/secrets/...`,
//! a reverse shell's first stage that `exec`s away), and an exec that keeps the same
//! `comm` (`sh` running `sh`) is not seen either. How much is missed is estimated from the
//! kernel's fork counter (`processes` in `/proc/stat`): tasks created since the last scan
//! minus the new processes found are counted in `vigil_process_scan_missed_total`. Threads
//! count as tasks too, so the figure is an upper bound. Processes already running when the
//! scan starts are taken as known and not reported, as the connector would not report them.
//!
//! Cost: one `readdir` of `/proc` and one read of `/proc/<pid>/stat` per process per scan.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::procfs::{self, Stat};
use super::{Observed, ProcessConfig, ProcessMetrics, observe};

/// The processes of one scan: pid → (start time, comm).
pub type Table = HashMap<u32, (u64, String)>;

/// Lists the processes under `proc_root` (numeric directories whose `stat` parses).
pub fn list(proc_root: &Path) -> Table {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // ended since the listing
        };
        if let Some(Stat {
            start_ticks, comm, ..
        }) = procfs::parse_stat(&text)
        {
            out.insert(pid, (start_ticks, comm));
        }
    }
    out
}

/// What changed between two scans: the pids to report, and how many of them are new
/// processes (rather than a known process that exec'd).
pub fn diff(before: &Table, now: &Table) -> (Vec<u32>, u64) {
    let mut report = Vec::new();
    let mut created = 0;
    for (pid, (start, comm)) in now {
        match before.get(pid) {
            Some((s, c)) if s == start && c == comm => {}
            Some((s, _)) if s == start => report.push(*pid),
            _ => {
                created += 1;
                report.push(*pid);
            }
        }
    }
    report.sort_unstable();
    (report, created)
}

/// The kernel's count of tasks created since boot (`processes` in `/proc/stat`).
pub fn forks(proc_root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(proc_root.join("stat")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("processes "))
        .and_then(|v| v.trim().parse().ok())
}

/// Scans until `halt`, sending new processes to `tx`.
pub fn run(
    cfg: &ProcessConfig,
    m: &ProcessMetrics,
    tx: &mpsc::Sender<Observed>,
    halt: &AtomicBool,
) {
    let interval = Duration::from_millis(cfg.scan_interval_ms);
    let mut known = list(&cfg.proc_root);
    let mut last_forks = forks(&cfg.proc_root);
    while !halt.load(Relaxed) {
        let next = Instant::now() + interval;
        while Instant::now() < next {
            if halt.load(Relaxed) {
                return;
            }
            std::thread::sleep(
                super::READ_TIMEOUT.min(next.saturating_duration_since(Instant::now())),
            );
        }
        let now = list(&cfg.proc_root);
        let (report, created) = diff(&known, &now);
        m.scans.fetch_add(1, Relaxed);
        let total = forks(&cfg.proc_root);
        if let (Some(a), Some(b)) = (last_forks, total) {
            m.scan_missed
                .fetch_add(b.saturating_sub(a).saturating_sub(created), Relaxed);
        }
        last_forks = total;
        known = now;
        let clock = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        for pid in report {
            m.kernel_event("exec");
            let ts = u64::try_from(clock).unwrap_or(0);
            if let Some(o) = observe(cfg, m, pid, ts)
                && tx.blocking_send(o).is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[(u32, u64, &str)]) -> Table {
        rows.iter()
            .map(|(p, s, c)| (*p, (*s, (*c).to_owned())))
            .collect()
    }

    #[test]
    fn new_reused_and_re_exec_processes_are_reported() {
        let before = table(&[(1, 10, "init"), (20, 50, "sh"), (30, 60, "sleep")]);
        let now = table(&[
            (1, 10, "init"),   // unchanged
            (20, 50, "curl"),  // exec without fork
            (30, 99, "sleep"), // pid reused by a new process
            (40, 100, "nc"),   // new
        ]);
        let (report, created) = diff(&before, &now);
        assert_eq!(report, [20, 30, 40]);
        assert_eq!(created, 2);
        assert_eq!(diff(&now, &now), (vec![], 0));
    }

    #[test]
    fn listing_and_fork_counter_read_a_fake_proc_and_skip_junk() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("12")).unwrap();
        std::fs::write(
            p.join("12/stat"),
            "12 (sh) S 1 12 12 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0",
        )
        .unwrap();
        std::fs::create_dir_all(p.join("13")).unwrap();
        std::fs::write(p.join("13/stat"), "garbage").unwrap();
        std::fs::create_dir_all(p.join("self")).unwrap();
        std::fs::create_dir_all(p.join("14")).unwrap(); // no stat: ended
        std::fs::write(
            p.join("stat"),
            "cpu 1 2 3\nprocesses 4242\nprocs_running 1\n",
        )
        .unwrap();
        assert_eq!(list(p), table(&[(12, 777, "sh")]));
        assert_eq!(forks(p), Some(4242));
        std::fs::write(p.join("stat"), "processes many\n").unwrap();
        assert_eq!(forks(p), None);
        assert!(list(&p.join("absent")).is_empty());
    }

    #[test]
    fn the_real_proc_lists_this_process() {
        let t = list(Path::new("/proc"));
        assert!(t.contains_key(&std::process::id()));
        assert!(forks(Path::new("/proc")).is_some_and(|n| n > 0));
    }
}
