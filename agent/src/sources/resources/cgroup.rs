//! A container's cgroup: where its files are, and what they say.
//!
//! The cgroup of a container's process is read from `/proc/<pid>/cgroup` and looked up under
//! the cgroup mount (`/sys/fs/cgroup`, or the host's mounted elsewhere):
//!
//! - **cgroup v2** (one unified hierarchy: `cgroup.controllers` at the mount's root):
//!   `cpu.stat`, `cpu.max`, `memory.current`, `memory.max`, `memory.stat`, `memory.events`,
//!   `io.stat`, `pids.current`, `pids.max` in the container's directory
//!   (Documentation/admin-guide/cgroup-v2.rst).
//! - **cgroup v1** (one hierarchy per controller, `/sys/fs/cgroup/<controller>`; the
//!   "hybrid" layout, with v2 mounted at `unified/`, counts as v1 because the controllers
//!   live in the v1 hierarchies): `cpuacct.usage`; `cpu.stat`, `cpu.cfs_quota_us`,
//!   `cpu.cfs_period_us`; `memory.usage_in_bytes`, `memory.limit_in_bytes`, `memory.stat`,
//!   `memory.oom_control`; `blkio.throttle.io_service_bytes`/`io_serviced` (the
//!   `_recursive` files when present); `pids.current`, `pids.max`
//!   (Documentation/admin-guide/cgroup-v1/*.rst, Documentation/scheduler/sched-bwc.rst).
//!   A controller hierarchy is found at `<root>/<controllers as listed>` (`cpu,cpuacct`),
//!   else at `<root>/<controller>` (systemd's `cpu` and `cpuacct` links, or separate mounts).
//!
//! Every parser takes text and never fails: a line or value it cannot read is skipped and
//! counted in [`CgroupSample::skipped`], and the figure it would have given is left absent.
//! The working set is computed as kubelet and cAdvisor do: usage minus inactive file pages.
//!
//! **cgroup namespaces.** A process outside the agent's cgroup namespace shows a path that
//! climbs out of it (`/../../pod-b/ctr`). The part above the agent's namespace root is not
//! visible from inside, so it is searched for once per number of `..` steps: the first
//! directory under the mount that holds the rest of the path gives the prefix, which every
//! later path with as many steps reuses ([`NamespacePrefixes`]). A path that cannot be
//! placed is searched for again only after a minute.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Most bytes read from one cgroup file; the kernel's files are far smaller, so only a
/// hostile or broken file is cut (what is cut is not parsed).
pub const MAX_FILE_BYTES: u64 = 256 * 1024;

/// v1 reports "no limit" as the largest page-aligned counter (9223372036854771712); any
/// value from here on is taken for no limit.
const UNLIMITED_FROM: u64 = 1 << 62;

/// Directories visited at most when searching for a namespace prefix, so a huge or looping
/// tree costs a bounded walk.
const MAX_SEARCH_DIRS: usize = 20_000;

/// Which cgroup layout the node has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One unified hierarchy.
    V2,
    /// Per-controller hierarchies (legacy or hybrid).
    V1,
}

impl Layout {
    /// The layout of the cgroup mount at `root`.
    pub fn detect(root: &Path) -> Layout {
        if root.join("cgroup.controllers").exists() {
            Layout::V2
        } else {
            Layout::V1
        }
    }

    /// The `collector` value of events read with this layout.
    pub fn name(self) -> &'static str {
        match self {
            Layout::V2 => "cgroup_v2",
            Layout::V1 => "cgroup_v1",
        }
    }
}

/// Where one container's cgroup files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupPaths {
    /// The unified directory.
    V2(PathBuf),
    /// One directory per controller, where the controller is mounted.
    V1 {
        /// `cpu` (CFS quota and throttling).
        cpu: Option<PathBuf>,
        /// `cpuacct` (CPU time).
        cpuacct: Option<PathBuf>,
        /// `memory`.
        memory: Option<PathBuf>,
        /// `blkio`.
        blkio: Option<PathBuf>,
        /// `pids`.
        pids: Option<PathBuf>,
    },
}

/// Why a container's cgroup could not be located.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// `/proc/<pid>/cgroup` could not be read (usually: the process is gone).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file names no hierarchy this layout uses.
    #[error("{0} names no usable cgroup")]
    NoCgroup(PathBuf),
    /// The path climbs out of the agent's cgroup namespace and no directory under the mount
    /// matches the rest of it.
    #[error(
        "cgroup path {0} is outside the agent's cgroup namespace and was not found under the mount"
    )]
    OutsideNamespace(String),
}

/// One line of `/proc/<pid>/cgroup`: the controllers of a hierarchy (empty for v2) and the
/// path in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership<'a> {
    /// `cpu,cpuacct`, `memory`, `name=systemd`, or empty for the unified hierarchy.
    pub controllers: &'a str,
    /// The cgroup's path, as seen from the reader's cgroup namespace.
    pub path: &'a str,
}

/// Parses `/proc/<pid>/cgroup` (`ID:CONTROLLERS:PATH` per line); malformed lines are
/// skipped and counted.
pub fn parse_proc_cgroup(text: &str) -> (Vec<Membership<'_>>, u64) {
    let mut out = Vec::new();
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(controllers), Some(path))
                if id.parse::<u32>().is_ok() && path.starts_with('/') =>
            {
                out.push(Membership { controllers, path });
            }
            _ => skipped += 1,
        }
    }
    (out, skipped)
}

/// How long a path whose prefix search failed is not searched for again: a container that
/// cannot be placed would otherwise cost a walk of the tree at every collection.
const SEARCH_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// Failed searches remembered at most (all forgotten when full).
const MAX_FAILED_SEARCHES: usize = 4096;

/// Remembers, per number of leading `..` steps, the directory (relative to the mount) that
/// stands for them, and the paths recently searched for in vain; see the module
/// documentation.
#[derive(Debug, Default)]
pub struct NamespacePrefixes {
    found: HashMap<(PathBuf, usize), PathBuf>,
    failed: HashMap<(PathBuf, usize, PathBuf), std::time::Instant>,
    searches: usize,
}

impl NamespacePrefixes {
    /// The directory of `path` under the hierarchy mounted at `mount`, resolving leading
    /// `..` steps; `None` when the path cannot be placed.
    pub fn resolve(&mut self, mount: &Path, path: &str) -> Option<PathBuf> {
        let parts: Vec<&str> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let ups = parts.iter().take_while(|p| **p == "..").count();
        let rest = &parts[ups..];
        // A `..` after a name, or one left over, is not something the kernel writes.
        if rest.contains(&"..") {
            return None;
        }
        let tail: PathBuf = rest.iter().collect();
        if ups == 0 {
            return Some(mount.join(tail));
        }
        let key = (mount.to_path_buf(), ups);
        if let Some(prefix) = self.found.get(&key) {
            let dir = mount.join(prefix).join(&tail);
            if dir.is_dir() {
                return Some(dir);
            }
        }
        if tail.as_os_str().is_empty() {
            return None;
        }
        let failed_key = (mount.to_path_buf(), ups, tail.clone());
        if self
            .failed
            .get(&failed_key)
            .is_some_and(|at| at.elapsed() < SEARCH_RETRY)
        {
            return None;
        }
        self.searches += 1;
        let Some(prefix) = search_prefix(mount, &tail) else {
            if self.failed.len() >= MAX_FAILED_SEARCHES {
                self.failed.clear();
            }
            self.failed.insert(failed_key, std::time::Instant::now());
            return None;
        };
        self.failed.remove(&failed_key);
        let dir = mount.join(&prefix).join(&tail);
        self.found.insert(key, prefix);
        Some(dir)
    }
}

/// The shallowest directory under `mount` that contains `tail`, breadth first and bounded.
fn search_prefix(mount: &Path, tail: &Path) -> Option<PathBuf> {
    let mut queue = std::collections::VecDeque::from([PathBuf::new()]);
    let mut visited = 0;
    while let Some(rel) = queue.pop_front() {
        if mount.join(&rel).join(tail).is_dir() {
            return Some(rel);
        }
        visited += 1;
        if visited >= MAX_SEARCH_DIRS {
            return None;
        }
        let Ok(entries) = std::fs::read_dir(mount.join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            // Symbolic links are not followed: a loop would never end.
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                queue.push_back(rel.join(e.file_name()));
            }
        }
    }
    None
}

/// Finds the cgroup directories of process `pid`.
pub fn locate(
    proc_root: &Path,
    cgroup_root: &Path,
    layout: Layout,
    pid: u32,
    prefixes: &mut NamespacePrefixes,
) -> Result<(CgroupPaths, u64), LocateError> {
    let file = proc_root.join(pid.to_string()).join("cgroup");
    let text = read_capped(&file).map_err(|source| LocateError::Read {
        path: file.clone(),
        source,
    })?;
    let (members, skipped) = parse_proc_cgroup(&text);
    match layout {
        Layout::V2 => {
            let m = members
                .iter()
                .find(|m| m.controllers.is_empty())
                .ok_or_else(|| LocateError::NoCgroup(file.clone()))?;
            let dir = prefixes
                .resolve(cgroup_root, m.path)
                .ok_or_else(|| LocateError::OutsideNamespace(m.path.to_owned()))?;
            Ok((CgroupPaths::V2(dir), skipped))
        }
        Layout::V1 => {
            let mut find = |controller: &str| -> Result<Option<PathBuf>, LocateError> {
                let Some(m) = members
                    .iter()
                    .find(|m| m.controllers.split(',').any(|c| c == controller))
                else {
                    return Ok(None);
                };
                let mount = [m.controllers, controller]
                    .iter()
                    .map(|name| cgroup_root.join(name))
                    .find(|p| p.is_dir());
                let Some(mount) = mount else { return Ok(None) };
                prefixes
                    .resolve(&mount, m.path)
                    .map(Some)
                    .ok_or_else(|| LocateError::OutsideNamespace(m.path.to_owned()))
            };
            let paths = CgroupPaths::V1 {
                cpu: find("cpu")?,
                cpuacct: find("cpuacct")?,
                memory: find("memory")?,
                blkio: find("blkio")?,
                pids: find("pids")?,
            };
            if paths
                == (CgroupPaths::V1 {
                    cpu: None,
                    cpuacct: None,
                    memory: None,
                    blkio: None,
                    pids: None,
                })
            {
                return Err(LocateError::NoCgroup(file));
            }
            Ok((paths, skipped))
        }
    }
}

/// Block device I/O, summed over devices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockIo {
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read operations.
    pub read_ops: u64,
    /// Write operations.
    pub write_ops: u64,
}

/// The figures of one read of a container's cgroup files; absent where a file was missing
/// or unreadable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupSample {
    /// CPU time used, nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// CFS periods elapsed.
    pub cpu_periods: Option<u64>,
    /// CFS periods throttled.
    pub cpu_throttled_periods: Option<u64>,
    /// Time throttled, nanoseconds.
    pub cpu_throttled_ns: Option<u64>,
    /// The CFS quota, in cores.
    pub cpu_limit_cores: Option<f64>,
    /// Memory charged, bytes.
    pub memory_usage: Option<u64>,
    /// Usage minus inactive file pages.
    pub memory_working_set: Option<u64>,
    /// Anonymous memory.
    pub memory_anon: Option<u64>,
    /// Page cache.
    pub memory_file: Option<u64>,
    /// Memory limit.
    pub memory_limit: Option<u64>,
    /// OOM kills since the cgroup was made.
    pub oom_kills: Option<u64>,
    /// Block I/O.
    pub block_io: Option<BlockIo>,
    /// Tasks now.
    pub pids_current: Option<u64>,
    /// Task limit.
    pub pids_limit: Option<u64>,
    /// Lines and values that could not be read, and files cut at [`MAX_FILE_BYTES`].
    pub skipped: u64,
    /// Files that were expected and could not be opened (other than being absent because
    /// the kernel lacks the feature); a container whose cgroup vanished counts here.
    pub unreadable: u64,
}

/// Reads at most [`MAX_FILE_BYTES`] of a file as text (invalid UTF-8 replaced, which the
/// parsers then skip as malformed).
pub fn read_capped(path: &Path) -> std::io::Result<String> {
    read_capped_flag(path).map(|(s, _)| s)
}

/// Like [`read_capped`], and whether the file was cut.
fn read_capped_flag(path: &Path) -> std::io::Result<(String, bool)> {
    let mut f = std::fs::File::open(path)?;
    // Read in small chunks: `read_to_end` on a `Take` reserves the whole cap up front, a
    // quarter of a megabyte per file, which for twenty files per container made the
    // allocator, not the reading, the cost of a collection.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while buf.len() as u64 <= MAX_FILE_BYTES {
        match f.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let cut = buf.len() as u64 > MAX_FILE_BYTES;
    if cut {
        buf.truncate(MAX_FILE_BYTES as usize);
        // Only whole lines are parsed.
        let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        buf.truncate(end);
    }
    let text = String::from_utf8(buf)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Ok((text, cut))
}

/// `key value` lines (`cpu.stat`, `memory.stat`, `memory.events`, `memory.oom_control`).
pub fn parse_flat_keyed(text: &str) -> (HashMap<&str, u64>, u64) {
    let mut out = HashMap::new();
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_ascii_whitespace();
        match (it.next(), it.next().map(str::parse::<u64>), it.next()) {
            (Some(k), Some(Ok(v)), None) => {
                out.insert(k, v);
            }
            _ => skipped += 1,
        }
    }
    (out, skipped)
}

/// A file holding one number, or `max` (v2) for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Single {
    /// A number.
    Value(u64),
    /// `max`, or v1's "unlimited" value.
    Max,
    /// Anything else.
    Malformed,
}

/// Parses a one-number file.
pub fn parse_single(text: &str) -> Single {
    let t = text.trim();
    if t == "max" {
        return Single::Max;
    }
    match t.parse::<u64>() {
        Ok(v) if v >= UNLIMITED_FROM => Single::Max,
        Ok(v) => Single::Value(v),
        Err(_) => Single::Malformed,
    }
}

/// v2 `cpu.max` (`QUOTA PERIOD`, quota `max` for none) in cores; `Err` when malformed.
pub(crate) fn parse_cpu_max(text: &str) -> Result<Option<f64>, ()> {
    let mut it = text.split_ascii_whitespace();
    match (it.next(), it.next().map(str::parse::<u64>), it.next()) {
        (Some("max"), Some(Ok(_)) | None, None) => Ok(None),
        (Some(q), Some(Ok(period)), None) if period > 0 => q
            .parse::<u64>()
            .map(|q| Some(q as f64 / period as f64))
            .map_err(|_| ()),
        _ => Err(()),
    }
}

/// v1 CFS quota and period in cores (`-1` quota for none); `Err` when malformed.
pub(crate) fn parse_cfs_quota(quota: &str, period: &str) -> Result<Option<f64>, ()> {
    let q: i64 = quota.trim().parse().map_err(|_| ())?;
    let p: u64 = period.trim().parse().map_err(|_| ())?;
    if q < 0 {
        return Ok(None);
    }
    if p == 0 {
        return Err(());
    }
    Ok(Some(q as f64 / p as f64))
}

/// v1 `blkio.throttle.io_service_bytes` or `io_serviced` (`MAJ:MIN Op N` lines, and
/// `Total N`): the `Read` and `Write` sums.
pub fn parse_blkio(text: &str) -> ((u64, u64), u64) {
    let (mut read, mut write, mut skipped) = (0u64, 0u64, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        match f.as_slice() {
            ["Total", n] if n.parse::<u64>().is_ok() => {}
            [dev, op, n] if dev.contains(':') => match (*op, n.parse::<u64>()) {
                ("Read", Ok(v)) => read = read.saturating_add(v),
                ("Write", Ok(v)) => write = write.saturating_add(v),
                (_, Ok(_)) => {}
                (_, Err(_)) => skipped += 1,
            },
            _ => skipped += 1,
        }
    }
    ((read, write), skipped)
}

/// v2 `io.stat` (`MAJ:MIN rbytes=N wbytes=N rios=N wios=N ...` lines), summed.
pub fn parse_io_stat(text: &str) -> (BlockIo, u64) {
    let mut io = BlockIo::default();
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.split_ascii_whitespace();
        if !f.next().is_some_and(|dev| dev.contains(':')) {
            skipped += 1;
            continue;
        }
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                skipped += 1;
                continue;
            };
            let Ok(v) = v.parse::<u64>() else {
                skipped += 1;
                continue;
            };
            let slot = match k {
                "rbytes" => &mut io.read_bytes,
                "wbytes" => &mut io.write_bytes,
                "rios" => &mut io.read_ops,
                "wios" => &mut io.write_ops,
                _ => continue,
            };
            *slot = slot.saturating_add(v);
        }
    }
    (io, skipped)
}

/// Reads a container's cgroup files.
pub fn read_sample(paths: &CgroupPaths) -> CgroupSample {
    let mut s = CgroupSample::default();
    match paths {
        CgroupPaths::V2(dir) => read_v2(dir, &mut s),
        CgroupPaths::V1 {
            cpu,
            cpuacct,
            memory,
            blkio,
            pids,
        } => {
            if let Some(d) = cpuacct {
                read_v1_cpuacct(d, &mut s);
            }
            if let Some(d) = cpu {
                read_v1_cpu(d, &mut s);
            }
            if let Some(d) = memory {
                read_v1_memory(d, &mut s);
            }
            if let Some(d) = blkio {
                read_v1_blkio(d, &mut s);
            }
            if let Some(d) = pids {
                read_pids(d, &mut s);
            }
        }
    }
    s
}

/// Reads a file the layout promises; a missing one counts as unreadable.
fn file(dir: &Path, name: &str, s: &mut CgroupSample) -> Option<String> {
    optional_file(dir, name, s).or_else(|| {
        s.unreadable += 1;
        None
    })
}

/// Reads a file that only some kernels or configurations have; absence is not counted.
fn optional_file(dir: &Path, name: &str, s: &mut CgroupSample) -> Option<String> {
    match read_capped_flag(&dir.join(name)) {
        Ok((text, cut)) => {
            s.skipped += u64::from(cut);
            Some(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(_) => {
            s.unreadable += 1;
            None
        }
    }
}

fn single(text: Option<String>, s: &mut CgroupSample) -> Option<Single> {
    let v = parse_single(&text?);
    if v == Single::Malformed {
        s.skipped += 1;
        return None;
    }
    Some(v)
}

fn value(v: Option<Single>) -> Option<u64> {
    match v {
        Some(Single::Value(v)) => Some(v),
        _ => None,
    }
}

fn limit(v: Option<Single>) -> Option<u64> {
    value(v)
}

fn flat<'a>(text: &'a Option<String>, s: &mut CgroupSample) -> HashMap<&'a str, u64> {
    match text {
        Some(t) => {
            let (m, skipped) = parse_flat_keyed(t);
            s.skipped += skipped;
            m
        }
        None => HashMap::new(),
    }
}

fn working_set(usage: Option<u64>, inactive_file: Option<u64>) -> Option<u64> {
    usage.map(|u| u.saturating_sub(inactive_file.unwrap_or(0)))
}

fn read_v2(dir: &Path, s: &mut CgroupSample) {
    let cpu_stat = file(dir, "cpu.stat", s);
    let cpu = flat(&cpu_stat, s);
    s.cpu_usage_ns = cpu.get("usage_usec").map(|u| u.saturating_mul(1000));
    s.cpu_periods = cpu.get("nr_periods").copied();
    s.cpu_throttled_periods = cpu.get("nr_throttled").copied();
    s.cpu_throttled_ns = cpu.get("throttled_usec").map(|u| u.saturating_mul(1000));
    // The root cgroup and a cgroup without the cpu controller enabled have no cpu.max.
    if let Some(t) = optional_file(dir, "cpu.max", s) {
        match parse_cpu_max(&t) {
            Ok(l) => s.cpu_limit_cores = l,
            Err(()) => s.skipped += 1,
        }
    }
    let current = file(dir, "memory.current", s);
    s.memory_usage = value(single(current, s));
    let max = optional_file(dir, "memory.max", s);
    s.memory_limit = limit(single(max, s));
    let stat_text = file(dir, "memory.stat", s);
    let stat = flat(&stat_text, s);
    s.memory_anon = stat.get("anon").copied();
    s.memory_file = stat.get("file").copied();
    s.memory_working_set = working_set(s.memory_usage, stat.get("inactive_file").copied());
    let events_text = optional_file(dir, "memory.events", s);
    s.oom_kills = flat(&events_text, s).get("oom_kill").copied();
    if let Some(t) = optional_file(dir, "io.stat", s) {
        let (io, skipped) = parse_io_stat(&t);
        s.skipped += skipped;
        s.block_io = Some(io);
    }
    read_pids(dir, s);
}

fn read_v1_cpuacct(dir: &Path, s: &mut CgroupSample) {
    let usage = file(dir, "cpuacct.usage", s);
    s.cpu_usage_ns = value(single(usage, s));
}

fn read_v1_cpu(dir: &Path, s: &mut CgroupSample) {
    let stat_text = optional_file(dir, "cpu.stat", s);
    let stat = flat(&stat_text, s);
    s.cpu_periods = stat.get("nr_periods").copied();
    s.cpu_throttled_periods = stat.get("nr_throttled").copied();
    s.cpu_throttled_ns = stat.get("throttled_time").copied();
    if let (Some(q), Some(p)) = (
        optional_file(dir, "cpu.cfs_quota_us", s),
        optional_file(dir, "cpu.cfs_period_us", s),
    ) {
        match parse_cfs_quota(&q, &p) {
            Ok(l) => s.cpu_limit_cores = l,
            Err(()) => s.skipped += 1,
        }
    }
}

fn read_v1_memory(dir: &Path, s: &mut CgroupSample) {
    let usage = file(dir, "memory.usage_in_bytes", s);
    s.memory_usage = value(single(usage, s));
    let lim = file(dir, "memory.limit_in_bytes", s);
    s.memory_limit = limit(single(lim, s));
    let stat_text = file(dir, "memory.stat", s);
    let stat = flat(&stat_text, s);
    // The `total_` keys include descendant cgroups; a container with sub-cgroups needs them.
    let get = |k: &str| {
        stat.get(format!("total_{k}").as_str())
            .or_else(|| stat.get(k))
            .copied()
    };
    s.memory_anon = get("rss");
    s.memory_file = get("cache");
    s.memory_working_set = working_set(s.memory_usage, get("inactive_file"));
    // `oom_kill` exists from Linux 4.13 on.
    let oom_text = optional_file(dir, "memory.oom_control", s);
    s.oom_kills = flat(&oom_text, s).get("oom_kill").copied();
}

fn read_v1_blkio(dir: &Path, s: &mut CgroupSample) {
    let pick = |s: &mut CgroupSample, base: &str| {
        optional_file(dir, &format!("{base}_recursive"), s).or_else(|| optional_file(dir, base, s))
    };
    let bytes = pick(s, "blkio.throttle.io_service_bytes");
    let ops = pick(s, "blkio.throttle.io_serviced");
    if bytes.is_none() && ops.is_none() {
        return;
    }
    let mut io = BlockIo::default();
    if let Some(t) = bytes {
        let ((r, w), skipped) = parse_blkio(&t);
        s.skipped += skipped;
        (io.read_bytes, io.write_bytes) = (r, w);
    }
    if let Some(t) = ops {
        let ((r, w), skipped) = parse_blkio(&t);
        s.skipped += skipped;
        (io.read_ops, io.write_ops) = (r, w);
    }
    s.block_io = Some(io);
}

fn read_pids(dir: &Path, s: &mut CgroupSample) {
    let current = optional_file(dir, "pids.current", s);
    s.pids_current = value(single(current, s));
    let max = optional_file(dir, "pids.max", s);
    s.pids_limit = limit(single(max, s));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        std::fs::create_dir_all(dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    /// The files of a Docker container on this kernel's v1 layout (values taken from a
    /// real `docker run --memory 64m --cpus 0.5`).
    pub(crate) fn v1_fixture(root: &Path, rel: &str) {
        write(
            &root.join("cpuacct").join(rel),
            &[
                ("cpuacct.usage", "34931765\n"),
                ("cpuacct.stat", "user 2\nsystem 1\n"),
            ],
        );
        write(
            &root.join("cpu").join(rel),
            &[
                (
                    "cpu.stat",
                    "nr_periods 30\nnr_throttled 12\nthrottled_time 1500000000\nnr_bursts 0\nburst_time 0\n",
                ),
                ("cpu.cfs_quota_us", "50000\n"),
                ("cpu.cfs_period_us", "100000\n"),
            ],
        );
        write(
            &root.join("memory").join(rel),
            &[
                ("memory.usage_in_bytes", "835584\n"),
                ("memory.limit_in_bytes", "67108864\n"),
                (
                    "memory.stat",
                    "cache 348160\nrss 53248\ninactive_file 100\ntotal_cache 348160\ntotal_rss 53248\ntotal_inactive_file 4096\nhierarchical_memory_limit 67108864\n",
                ),
                (
                    "memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
                ),
            ],
        );
        write(
            &root.join("blkio").join(rel),
            &[
                (
                    "blkio.throttle.io_service_bytes",
                    "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 12288\n8:16 Read 1\nTotal 12289\n",
                ),
                (
                    "blkio.throttle.io_serviced",
                    "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
                ),
            ],
        );
        write(
            &root.join("pids").join(rel),
            &[("pids.current", "3\n"), ("pids.max", "max\n")],
        );
    }

    pub(crate) fn v2_fixture(dir: &Path) {
        write(
            dir,
            &[
                (
                    "cpu.stat",
                    "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 40\nnr_throttled 10\nthrottled_usec 750000\n",
                ),
                ("cpu.max", "150000 100000\n"),
                ("memory.current", "104857600\n"),
                ("memory.max", "209715200\n"),
                (
                    "memory.stat",
                    "anon 83886080\nfile 20971520\nkernel 1024\ninactive_file 10485760\nactive_file 10485760\n",
                ),
                (
                    "memory.events",
                    "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n",
                ),
                (
                    "io.stat",
                    "8:0 rbytes=1000 wbytes=2000 rios=10 wios=20 dbytes=0 dios=0\n259:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n",
                ),
                ("pids.current", "7\n"),
                ("pids.max", "100\n"),
            ],
        );
    }

    #[test]
    fn proc_cgroup_lines_of_both_layouts() {
        let text = "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n0::/docker/abc\ngarbage\n7:x\n:y:/z\n";
        let (m, skipped) = parse_proc_cgroup(text);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].controllers, "cpu,cpuacct");
        assert_eq!(
            m[3],
            Membership {
                controllers: "",
                path: "/docker/abc"
            }
        );
        assert_eq!(skipped, 3);
    }

    #[test]
    fn v1_files_give_every_figure() {
        let t = tempfile::tempdir().unwrap();
        let rel = "docker/abc";
        v1_fixture(t.path(), rel);
        let proc_root = t.path().join("proc");
        write(
            &proc_root.join("42"),
            &[(
                "cgroup",
                "9:name=systemd:/docker/abc\n8:pids:/docker/abc\n7:blkio:/docker/abc\n4:memory:/docker/abc\n2:cpuacct:/docker/abc\n1:cpu:/docker/abc\n0::/docker/abc\n",
            )],
        );
        let (paths, skipped) = locate(
            &proc_root,
            t.path(),
            Layout::detect(t.path()),
            42,
            &mut NamespacePrefixes::default(),
        )
        .unwrap();
        assert_eq!(skipped, 0);
        let s = read_sample(&paths);
        assert_eq!(s.cpu_usage_ns, Some(34_931_765));
        assert_eq!(s.cpu_limit_cores, Some(0.5));
        assert_eq!(
            (s.cpu_periods, s.cpu_throttled_periods, s.cpu_throttled_ns),
            (Some(30), Some(12), Some(1_500_000_000))
        );
        assert_eq!(s.memory_usage, Some(835_584));
        assert_eq!(
            s.memory_working_set,
            Some(835_584 - 4096),
            "total_ keys win"
        );
        assert_eq!(s.memory_limit, Some(67_108_864));
        assert_eq!(
            (s.memory_anon, s.memory_file),
            (Some(53_248), Some(348_160))
        );
        assert_eq!(s.oom_kills, Some(2));
        assert_eq!(
            s.block_io,
            Some(BlockIo {
                read_bytes: 4097,
                write_bytes: 8192,
                read_ops: 1,
                write_ops: 2
            })
        );
        assert_eq!((s.pids_current, s.pids_limit), (Some(3), None));
        assert_eq!((s.skipped, s.unreadable), (0, 0));
    }

    #[test]
    fn co_mounted_v1_controllers_are_found_by_their_joint_name() {
        let t = tempfile::tempdir().unwrap();
        write(
            &t.path().join("cpu,cpuacct/kubepods/pod1/c1"),
            &[
                ("cpuacct.usage", "5\n"),
                ("cpu.cfs_quota_us", "-1\n"),
                ("cpu.cfs_period_us", "100000\n"),
            ],
        );
        write(
            &t.path().join("proc/7"),
            &[("cgroup", "3:cpu,cpuacct:/kubepods/pod1/c1\n")],
        );
        let (paths, _) = locate(
            &t.path().join("proc"),
            t.path(),
            Layout::V1,
            7,
            &mut NamespacePrefixes::default(),
        )
        .unwrap();
        let s = read_sample(&paths);
        assert_eq!(s.cpu_usage_ns, Some(5));
        assert_eq!(s.cpu_limit_cores, None, "quota -1 is no limit");
        assert_eq!(s.memory_usage, None);
    }

    #[test]
    fn v2_files_give_every_figure() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), &[("cgroup.controllers", "cpu memory io pids\n")]);
        let dir = t.path().join("system.slice/docker-abc.scope");
        v2_fixture(&dir);
        write(
            &t.path().join("proc/9"),
            &[("cgroup", "0::/system.slice/docker-abc.scope\n")],
        );
        assert_eq!(Layout::detect(t.path()), Layout::V2);
        let (paths, _) = locate(
            &t.path().join("proc"),
            t.path(),
            Layout::V2,
            9,
            &mut NamespacePrefixes::default(),
        )
        .unwrap();
        assert_eq!(paths, CgroupPaths::V2(dir));
        let s = read_sample(&paths);
        assert_eq!(s.cpu_usage_ns, Some(2_500_000_000));
        assert_eq!(s.cpu_limit_cores, Some(1.5));
        assert_eq!(
            (s.cpu_periods, s.cpu_throttled_periods, s.cpu_throttled_ns),
            (Some(40), Some(10), Some(750_000_000))
        );
        assert_eq!(s.memory_usage, Some(104_857_600));
        assert_eq!(s.memory_working_set, Some(104_857_600 - 10_485_760));
        assert_eq!(s.memory_limit, Some(209_715_200));
        assert_eq!(s.oom_kills, Some(1));
        assert_eq!(
            s.block_io,
            Some(BlockIo {
                read_bytes: 1001,
                write_bytes: 2002,
                read_ops: 13,
                write_ops: 24
            })
        );
        assert_eq!((s.pids_current, s.pids_limit), (Some(7), Some(100)));
        assert_eq!((s.skipped, s.unreadable), (0, 0));
    }

    #[test]
    fn limits_spelled_max_or_v1_unlimited_are_absent() {
        assert_eq!(parse_single("max\n"), Single::Max);
        assert_eq!(parse_single("9223372036854771712\n"), Single::Max);
        assert_eq!(parse_single("12"), Single::Value(12));
        assert_eq!(parse_single("-1"), Single::Malformed);
        assert_eq!(parse_cpu_max("max 100000\n"), Ok(None));
        assert_eq!(parse_cpu_max("max\n"), Ok(None));
        assert_eq!(parse_cpu_max("50000 100000"), Ok(Some(0.5)));
        assert_eq!(parse_cpu_max("50000 0"), Err(()));
        assert_eq!(parse_cpu_max("x y"), Err(()));
        assert_eq!(parse_cpu_max(""), Err(()));
        assert_eq!(parse_cfs_quota("-1", "100000"), Ok(None));
        assert_eq!(parse_cfs_quota("200000", "100000"), Ok(Some(2.0)));
        assert_eq!(parse_cfs_quota("1", "0"), Err(()));
        assert_eq!(parse_cfs_quota("", "100000"), Err(()));
    }

    #[test]
    fn hostile_files_are_skipped_and_counted_never_panicking() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), &[("cgroup.controllers", "")]);
        let dir = t.path().join("c");
        let long = "x".repeat(MAX_FILE_BYTES as usize + 10);
        write(
            &dir,
            &[
                (
                    "cpu.stat",
                    "usage_usec\nnr_periods -4\nnr_throttled 99999999999999999999999\nusage_usec 10 extra\n\u{0}\u{1}\n",
                ),
                ("cpu.max", "1 2 3\n"),
                ("memory.current", "twelve\n"),
                ("memory.max", ""),
                ("memory.stat", &long),
                ("memory.events", "oom_kill 18446744073709551615\n"),
                (
                    "io.stat",
                    "8:0 rbytes=18446744073709551615 wbytes=x rios\nnot-a-device rbytes=1\n8:1 rbytes=5\n",
                ),
                ("pids.current", "\u{FFFD}"),
            ],
        );
        let s = read_sample(&CgroupPaths::V2(dir));
        assert_eq!(s.cpu_usage_ns, None);
        assert_eq!(s.cpu_limit_cores, None);
        assert_eq!(s.memory_usage, None);
        assert_eq!(s.memory_limit, None);
        assert_eq!(s.oom_kills, Some(u64::MAX));
        let io = s.block_io.unwrap();
        assert_eq!(io.read_bytes, u64::MAX, "sums saturate");
        assert_eq!(s.pids_current, None);
        // cpu.stat: 4 bad lines; cpu.max 1; memory.current 1; memory.max 1; memory.stat
        // cut 1 + its one (cut away) line; io.stat: wbytes=x, rios, not-a-device; pids 1.
        assert!(s.skipped >= 11, "{s:?}");
        assert_eq!(s.unreadable, 0);

        // Binary garbage and empty files everywhere in v1.
        let v1 = tempfile::tempdir().unwrap();
        for (ctrl, names) in [
            ("cpuacct", &["cpuacct.usage"][..]),
            (
                "cpu",
                &["cpu.stat", "cpu.cfs_quota_us", "cpu.cfs_period_us"][..],
            ),
            (
                "memory",
                &[
                    "memory.usage_in_bytes",
                    "memory.limit_in_bytes",
                    "memory.stat",
                    "memory.oom_control",
                ][..],
            ),
            (
                "blkio",
                &[
                    "blkio.throttle.io_service_bytes",
                    "blkio.throttle.io_serviced",
                ][..],
            ),
            ("pids", &["pids.current", "pids.max"][..]),
        ] {
            let d = v1.path().join(ctrl).join("x");
            std::fs::create_dir_all(&d).unwrap();
            for n in names {
                std::fs::write(d.join(n), [0xff, 0xfe, b'\n', b':', b' ', 0]).unwrap();
            }
        }
        let j = |c: &str| Some(v1.path().join(c).join("x"));
        let s = read_sample(&CgroupPaths::V1 {
            cpu: j("cpu"),
            cpuacct: j("cpuacct"),
            memory: j("memory"),
            blkio: j("blkio"),
            pids: j("pids"),
        });
        assert_eq!(s.cpu_usage_ns, None);
        assert_eq!(s.memory_usage, None);
        assert!(s.skipped >= 10, "{s:?}");
    }

    #[test]
    fn a_vanished_cgroup_counts_as_unreadable() {
        let t = tempfile::tempdir().unwrap();
        let s = read_sample(&CgroupPaths::V2(t.path().join("gone")));
        assert!(s.unreadable >= 3, "{s:?}");
        assert_eq!(s.cpu_usage_ns, None);
        let err = locate(
            &t.path().join("proc"),
            t.path(),
            Layout::V2,
            1,
            &mut NamespacePrefixes::default(),
        )
        .unwrap_err();
        assert!(matches!(err, LocateError::Read { .. }), "{err}");
    }

    #[test]
    fn paths_outside_the_agents_namespace_are_found_once_and_reused() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        for d in [
            "kubepods/burstable/pod-a/agent",
            "kubepods/burstable/pod-b/c1",
            "kubepods/burstable/pod-c/c2",
            "system.slice",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let mut p = NamespacePrefixes::default();
        assert_eq!(
            p.resolve(root, "/../../pod-b/c1"),
            Some(root.join("kubepods/burstable/pod-b/c1"))
        );
        assert_eq!(
            p.resolve(root, "/../../pod-c/c2"),
            Some(root.join("kubepods/burstable/pod-c/c2"))
        );
        assert_eq!(p.resolve(root, "/kubepods"), Some(root.join("kubepods")));
        assert_eq!(p.resolve(root, "/../../pod-z/none"), None);
        // A path that cannot be placed is not searched for again at the next collection.
        let searches = p.searches;
        assert_eq!(p.resolve(root, "/../../pod-z/none"), None);
        assert_eq!(p.searches, searches);
        assert_eq!(
            p.resolve(root, "/a/../../etc"),
            None,
            "no climbing after a name"
        );
        // An ancestor of the agent's namespace root (a pod-level cgroup).
        assert_eq!(
            p.resolve(root, "/../.."),
            Some(root.join("kubepods/burstable"))
        );
        assert_eq!(NamespacePrefixes::default().resolve(root, "/../.."), None);
    }
}
