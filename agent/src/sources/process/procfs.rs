//! What `/proc/<pid>` tells of a process: command line, executable, working directory,
//! identities, parent, PID namespace depth and cgroup.
//!
//! Every file is read with a cap and parsed without trusting it: a process controls its own
//! command line (and may rewrite it), and any file can vanish half-way when the process
//! ends. A fact that cannot be read is left absent; [`ProcInfo::missing`] says how many
//! were, so the caller can count partial reads. Nothing here panics on any input.

use std::io::Read as _;
use std::path::Path;

/// Most bytes read from `/proc/<pid>/status` or `/proc/<pid>/cgroup` (both are a few
/// hundred bytes to a few KiB); what lies beyond is not parsed.
const MAX_SMALL_FILE: usize = 64 * 1024;

/// Most arguments kept; the rest of a longer command line is dropped (the joined
/// `command_line` is cut at the byte cap anyway).
pub const MAX_ARGS: usize = 256;

/// Facts of `/proc/<pid>/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// `Name`: the kernel's `comm`.
    pub name: Option<String>,
    /// `PPid`.
    pub ppid: Option<u32>,
    /// `Uid`: real, effective.
    pub uid: Option<(u32, u32)>,
    /// `Gid`: real, effective.
    pub gid: Option<(u32, u32)>,
    /// `NSpid`: the process id in each PID namespace it belongs to, outermost first.
    pub nspid: Vec<u32>,
    /// Lines that did not parse.
    pub malformed: u64,
}

/// Parses `/proc/<pid>/status`. Unknown keys are ignored; a known key with a value that
/// does not parse is counted and left out.
pub fn parse_status(text: &str) -> Status {
    let mut s = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let ok = match key {
            // A process names itself (prctl, the executed file's name); whatever control
            // characters survive the kernel's escaping are stripped so logs stay readable.
            "Name" => {
                s.name = Some(value.chars().filter(|c| !c.is_control()).collect());
                true
            }
            "PPid" => {
                s.ppid = value.parse().ok();
                s.ppid.is_some()
            }
            "Uid" => {
                s.uid = pair(value);
                s.uid.is_some()
            }
            "Gid" => {
                s.gid = pair(value);
                s.gid.is_some()
            }
            "NSpid" => {
                let ids: Result<Vec<u32>, _> = value.split_whitespace().map(str::parse).collect();
                s.nspid = ids.unwrap_or_default();
                !s.nspid.is_empty()
            }
            _ => true,
        };
        if !ok {
            s.malformed += 1;
        }
    }
    s
}

fn pair(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split_whitespace().map(str::parse::<u32>);
    match (it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b))) => Some((a, b)),
        _ => None,
    }
}

/// Splits `/proc/<pid>/cmdline` (NUL-separated, often NUL-terminated) into arguments,
/// invalid UTF-8 replaced, at most [`MAX_ARGS`]. A process that rewrote its title with
/// spaces instead of NULs gives one argument, as `ps` shows it.
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|b| *b == 0)
        .take(MAX_ARGS)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The arguments joined by spaces, cut at `max_bytes` (on a character boundary).
pub fn join_args(args: &[String], max_bytes: usize) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(a);
        if out.len() >= max_bytes {
            break;
        }
    }
    if out.len() > max_bytes {
        let mut end = max_bytes;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// Reads at most `cap` bytes of a file.
fn read_capped(path: &Path, cap: usize) -> std::io::Result<Vec<u8>> {
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(cap as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

fn read_text(path: &Path) -> Option<String> {
    read_capped(path, MAX_SMALL_FILE)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn read_link(path: &Path) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Everything read of one process. All optional: the process may end at any moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcInfo {
    /// Its id, in the reader's PID namespace.
    pub pid: u32,
    /// The arguments (empty for a kernel thread, or a process already gone).
    pub args: Vec<String>,
    /// `/proc/<pid>/exe`.
    pub exe: Option<String>,
    /// `/proc/<pid>/cwd`.
    pub cwd: Option<String>,
    /// `/proc/<pid>/status`.
    pub status: Status,
    /// `/proc/<pid>/cgroup`, as text.
    pub cgroup: Option<String>,
    /// `/proc/<pid>/stat`.
    pub stat: Option<Stat>,
    /// How many of the files could not be read.
    pub missing: u32,
}

impl ProcInfo {
    /// The process is in a PID namespace below the reader's (a container, or a sandbox).
    pub fn nested_pid_namespace(&self) -> bool {
        self.status.nspid.len() > 1
    }

    /// The process is the first of its PID namespace (a container's entrypoint).
    pub fn namespace_init(&self) -> bool {
        self.nested_pid_namespace() && self.status.nspid.last() == Some(&1)
    }
}

/// Reads what `/proc/<pid>` tells of a process, `cmdline` cut at `max_cmdline` bytes.
pub fn read_process(proc_root: &Path, pid: u32, max_cmdline: usize) -> ProcInfo {
    let dir = proc_root.join(pid.to_string());
    let mut info = ProcInfo {
        pid,
        ..ProcInfo::default()
    };
    match read_capped(&dir.join("cmdline"), max_cmdline) {
        Ok(b) => info.args = parse_cmdline(&b),
        Err(_) => info.missing += 1,
    }
    match read_text(&dir.join("status")) {
        Some(t) => info.status = parse_status(&t),
        None => info.missing += 1,
    }
    info.exe = read_link(&dir.join("exe"));
    info.cwd = read_link(&dir.join("cwd"));
    info.cgroup = read_text(&dir.join("cgroup"));
    info.stat = read_text(&dir.join("stat")).and_then(|t| parse_stat(&t));
    info.missing += u32::from(info.exe.is_none())
        + u32::from(info.stat.is_none())
        + u32::from(info.cwd.is_none())
        + u32::from(info.cgroup.is_none());
    info
}

/// The few facts kept of a parent: its name, executable and command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParentInfo {
    /// `comm`.
    pub name: Option<String>,
    /// `/proc/<pid>/exe`.
    pub exe: Option<String>,
    /// The arguments.
    pub args: Vec<String>,
}

/// Reads a parent's name, executable and command line.
pub fn read_parent(proc_root: &Path, pid: u32, max_cmdline: usize) -> ParentInfo {
    let dir = proc_root.join(pid.to_string());
    ParentInfo {
        name: read_text(&dir.join("comm")).map(|n| {
            n.trim_end_matches('\n')
                .chars()
                .filter(|c| !c.is_control())
                .collect()
        }),
        exe: read_link(&dir.join("exe")),
        args: read_capped(&dir.join("cmdline"), max_cmdline)
            .map(|b| parse_cmdline(&b))
            .unwrap_or_default(),
    }
}

/// Facts of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    /// `comm`.
    pub comm: String,
    /// Start time, in clock ticks since boot: with the pid it tells one process from a
    /// later one that reuses the pid.
    pub start_ticks: u64,
    /// The controlling terminal's device number; 0 when there is none.
    pub tty_nr: u64,
}

/// Parses `/proc/<pid>/stat`. `comm` is in parentheses and may itself hold `)` and
/// spaces, so the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    // The fields after comm start at field 3 (state); tty_nr is field 7, start time 22.
    let mut fields = text.get(close + 1..)?.split_whitespace();
    let tty_nr: i64 = fields.nth(7 - 3)?.parse().ok()?;
    let start_ticks = fields.nth(22 - 7 - 1)?.parse().ok()?;
    Some(Stat {
        comm,
        start_ticks,
        tty_nr: u64::try_from(tty_nr).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tsh\nUmask:\t0022\nState:\tR (running)\nTgid:\t1185\nNgid:\t0\nPid:\t1185\nPPid:\t1157\nTracerPid:\t0\nUid:\t1000\t0\t0\t0\nGid:\t10\t20\t0\t0\nNStgid:\t1185\t1\nNSpid:\t1185\t1\n";

    #[test]
    fn status_gives_name_parent_ids_and_namespaces() {
        let s = parse_status(STATUS);
        assert_eq!(s.name.as_deref(), Some("sh"));
        assert_eq!(s.ppid, Some(1157));
        assert_eq!(s.uid, Some((1000, 0)));
        assert_eq!(s.gid, Some((10, 20)));
        assert_eq!(s.nspid, [1185, 1]);
        assert_eq!(s.malformed, 0);
    }

    #[test]
    fn hostile_or_truncated_status_is_counted_not_trusted() {
        let s = parse_status("Name:\tev\u{1b}[2Jil\nPPid:\tx\nUid:\t5\nNSpid:\t1 two\n\0\0garbage");
        assert_eq!(
            s.name.as_deref(),
            Some("ev[2Jil"),
            "control characters stripped"
        );
        assert_eq!((s.ppid, s.uid), (None, None));
        assert!(s.nspid.is_empty());
        assert_eq!(s.malformed, 3);
        for cut in 0..STATUS.len() {
            let _ = parse_status(&STATUS[..cut]);
        }
        assert_eq!(parse_status(""), Status::default());
    }

    #[test]
    fn cmdline_splits_on_nul_and_survives_garbage() {
        assert_eq!(parse_cmdline(b"sh\0-c\0echo hi\0"), ["sh", "-c", "echo hi"]);
        assert_eq!(
            parse_cmdline(b"nginx: worker process"),
            ["nginx: worker process"]
        );
        assert!(parse_cmdline(b"").is_empty());
        assert_eq!(parse_cmdline(b"a\xff\0b"), ["a\u{fffd}", "b"]);
        let many = "x\0".repeat(MAX_ARGS * 2);
        assert_eq!(parse_cmdline(many.as_bytes()).len(), MAX_ARGS);
        assert_eq!(parse_cmdline(b"\0\0"), ["", ""]);
    }

    #[test]
    fn joined_command_lines_are_cut_on_character_boundaries() {
        let args = vec!["échoé".to_owned(), "ü".repeat(100)];
        for cap in 0..60 {
            let j = join_args(&args, cap);
            assert!(j.len() <= cap, "{cap}: {j}");
        }
        assert_eq!(join_args(&["a".into(), "b".into()], 100), "a b");
    }

    #[test]
    fn stat_start_time_and_comm_survive_parentheses_in_the_name() {
        let line = "1185 (we ird) (x) S 1157 1185 1185 0 -1 4194560 120 0 0 0 0 0 0 0 20 0 1 0 123456 1433600 1 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                comm: "we ird) (x".to_owned(),
                start_ticks: 123_456,
                tty_nr: 0
            })
        );
        let tty = "7 (bash) S 1 7 7 34816 7 4194304 1 0 0 0 0 0 0 0 20 0 1 0 99 1 1";
        assert_eq!(
            parse_stat(tty).map(|s| (s.tty_nr, s.start_ticks)),
            Some((34816, 99))
        );
        assert_eq!(parse_stat("12 (sh"), None);
        assert_eq!(parse_stat("12 (sh) S 1"), None);
        for cut in 0..line.len() {
            let _ = parse_stat(&line[..cut]);
        }
    }

    #[test]
    fn a_missing_process_gives_an_empty_record_with_everything_counted_missing() {
        let dir = tempfile::tempdir().unwrap();
        let info = read_process(dir.path(), 42, 4096);
        assert_eq!(info.missing, 6);
        assert!(info.args.is_empty() && info.exe.is_none());
    }

    #[test]
    fn the_reader_reads_a_real_process() {
        let me = std::process::id();
        let info = read_process(Path::new("/proc"), me, 4096);
        assert_eq!(info.missing, 0, "{info:?}");
        assert!(!info.args.is_empty());
        assert!(info.status.ppid.is_some());
        assert!(info.cgroup.is_some_and(|c| c.contains("::")));
        let stat = info.stat.unwrap();
        assert!(stat.start_ticks > 0);
        assert_eq!(Some(stat.comm), info.status.name);
    }
}
