//! One collection: every container's cgroup and network figures, rates over the interval
//! since its previous sample, and the judgement of its signals.
//!
//! The collector keeps, per container, where its cgroup files are (looked up once from
//! `/proc/<pid>/cgroup`), its previous counters and its judgement state (baselines, how long
//! a condition has held). A container absent from a round is forgotten, so memory follows the
//! containers that exist. Counters that go backwards (a restarted container reusing its id)
//! restart the rates instead of giving negative ones.
//!
//! Network figures belong to a network namespace, which the containers of a pod share: each
//! namespace is read once, and reported by one container of it (the pod's sandbox if it is
//! listed, else the container with the lowest id); the others name that container in
//! `network_shared_with`. A container in the node's own network namespace reports none.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use vigil_core::event::{
    BlockIoUsage, CpuUsage, MemoryUsage, NetworkUsage, PidsUsage, ResourceUsage,
};

use super::cgroup::{self, CgroupPaths, Layout, NamespacePrefixes};
use super::discover::ContainerInfo;
use super::netdev::{self, NetDev, NetNs};
use super::signals::{Judge, Observed, ThresholdTable};

/// Counts of what one collection could not read, for the agent's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skips {
    /// Malformed lines and values in cgroup files and `/proc/<pid>/cgroup`.
    pub cgroup_lines: u64,
    /// Malformed lines in `/proc/<pid>/net/dev`.
    pub netdev_lines: u64,
    /// Malformed lines in `/proc/<pid>/net/sockstat*`.
    pub sockstat_lines: u64,
    /// Containers whose process or cgroup was gone (exited since it was listed).
    pub gone: u64,
    /// Containers whose cgroup could not be placed (outside the agent's cgroup namespace
    /// and not found under the mount).
    pub unlocated: u64,
}

/// What one collection gives.
#[derive(Debug, Default)]
pub struct Collected {
    /// The containers' figures.
    pub sampled: Vec<Sampled>,
    /// What could not be read.
    pub skips: Skips,
    /// Containers whose listed process is gone: a container restarted with a new process,
    /// or one that stopped. Discovery should look them up again.
    pub stale: Vec<String>,
}

/// One container's figures from one collection.
#[derive(Debug, Clone)]
pub struct Sampled {
    /// The container.
    pub info: ContainerInfo,
    /// Its figures and anomalies.
    pub usage: ResourceUsage,
}

#[derive(Debug, Clone, Copy)]
struct Counters {
    at: Instant,
    cpu_ns: Option<u64>,
    periods: Option<u64>,
    throttled: Option<u64>,
    oom_kills: Option<u64>,
    net: Option<NetDev>,
}

struct Tracked {
    pid: u32,
    paths: CgroupPaths,
    prev: Option<Counters>,
    judge: Judge,
}

/// Where to read, decided at start.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// The host's `/proc`.
    pub proc_root: PathBuf,
    /// The host's cgroup mount.
    pub cgroup_root: PathBuf,
    /// Count TCP sockets (`/proc/<pid>/net/sockstat`, `sockstat6`).
    pub count_connections: bool,
}

/// The collector's state across collections.
pub struct Collector {
    cfg: CollectorConfig,
    layout: Layout,
    thresholds: ThresholdTable,
    host_netns: Option<u64>,
    node_cpus: Option<f64>,
    prefixes: NamespacePrefixes,
    tracked: HashMap<String, Tracked>,
    started: Instant,
}

impl Collector {
    /// A collector reading under `cfg`'s roots.
    pub fn new(cfg: CollectorConfig, thresholds: ThresholdTable) -> Self {
        let layout = Layout::detect(&cfg.cgroup_root);
        // The node's own network namespace is init's; a container in it uses the node's
        // network, whose traffic is not the container's.
        let host_netns = match netdev::netns_of(&cfg.proc_root, 1) {
            NetNs::Id(ns) => Some(ns),
            _ => None,
        };
        let node_cpus = super::discover::node_cpus(&cfg.proc_root);
        Collector {
            cfg,
            layout,
            thresholds,
            host_netns,
            node_cpus,
            prefixes: NamespacePrefixes::default(),
            tracked: HashMap::new(),
            started: Instant::now(),
        }
    }

    /// Puts `thresholds` in force from the next collection. Judgement state (baselines, how
    /// long a condition has held) is kept: a new threshold changes what is judged, not what
    /// has been learned.
    pub fn set_thresholds(&mut self, thresholds: ThresholdTable) {
        self.thresholds = thresholds;
    }

    /// The thresholds in force.
    pub fn thresholds(&self) -> &ThresholdTable {
        &self.thresholds
    }

    /// The cgroup layout found.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Containers tracked now.
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// Reads every container of `containers` once.
    pub fn collect(&mut self, containers: &[ContainerInfo]) -> Collected {
        let mut out = Collected::default();
        let listed: HashSet<&str> = containers.iter().map(|c| c.id.as_str()).collect();
        self.tracked.retain(|id, _| listed.contains(id.as_str()));

        let netns: Vec<NetNs> = containers
            .iter()
            .map(|c| netdev::netns_of(&self.cfg.proc_root, c.pid))
            .collect();
        // Which container reports each network namespace.
        let mut owner: HashMap<u64, usize> = HashMap::new();
        for (i, ns) in netns.iter().enumerate() {
            let NetNs::Id(ns) = *ns else { continue };
            if Some(ns) == self.host_netns {
                continue;
            }
            owner
                .entry(ns)
                .and_modify(|o| {
                    let (a, b) = (&containers[*o], &containers[i]);
                    if (b.sandbox, std::cmp::Reverse(&b.id)) > (a.sandbox, std::cmp::Reverse(&a.id))
                    {
                        *o = i;
                    }
                })
                .or_insert(i);
        }

        out.sampled.reserve(containers.len());
        for (i, info) in containers.iter().enumerate() {
            let (host_network, shared_with) = match netns[i] {
                NetNs::Gone => {
                    // The listed process exited: the container stopped, or restarted with
                    // another process that discovery has not seen yet.
                    self.tracked.remove(&info.id);
                    out.skips.gone += 1;
                    out.stale.push(info.id.clone());
                    continue;
                }
                // Without the namespace, every container reports what its process sees.
                NetNs::Unknown => (false, None),
                NetNs::Id(ns) => (
                    Some(ns) == self.host_netns,
                    owner
                        .get(&ns)
                        .filter(|o| **o != i)
                        .map(|o| containers[*o].id.clone()),
                ),
            };
            let read_net = !host_network && shared_with.is_none();
            match self.sample(info, read_net, &mut out.skips) {
                Some(usage) => out.sampled.push(Sampled {
                    info: info.clone(),
                    usage: ResourceUsage {
                        host_network,
                        network_shared_with: shared_with,
                        ..usage
                    },
                }),
                None => out.stale.push(info.id.clone()),
            }
        }
        out
    }

    fn sample(
        &mut self,
        info: &ContainerInfo,
        read_net: bool,
        skips: &mut Skips,
    ) -> Option<ResourceUsage> {
        let proc_root = self.cfg.proc_root.clone();
        let tracked = match self.tracked.get_mut(&info.id) {
            Some(t) if t.pid == info.pid => t,
            _ => {
                let located = cgroup::locate(
                    &proc_root,
                    &self.cfg.cgroup_root,
                    self.layout,
                    info.pid,
                    &mut self.prefixes,
                );
                let (paths, skipped) = match located {
                    Ok(p) => p,
                    Err(cgroup::LocateError::Read { .. }) => {
                        skips.gone += 1;
                        return None;
                    }
                    Err(e) => {
                        tracing::debug!(container = %info.id, error = %e, "resources: cgroup not found");
                        skips.unlocated += 1;
                        return None;
                    }
                };
                skips.cgroup_lines += skipped;
                self.tracked.insert(
                    info.id.clone(),
                    Tracked {
                        pid: info.pid,
                        paths,
                        prev: None,
                        judge: Judge::default(),
                    },
                );
                self.tracked.get_mut(&info.id)?
            }
        };
        let at = Instant::now();
        let cg = cgroup::read_sample(&tracked.paths);
        skips.cgroup_lines += cg.skipped;
        if cg.cpu_usage_ns.is_none() && cg.memory_usage.is_none() && cg.unreadable > 0 {
            // The cgroup went away with the container.
            self.tracked.remove(&info.id);
            skips.gone += 1;
            return None;
        }
        let net = if read_net {
            read_netdev(&proc_root, info.pid, skips)
        } else {
            None
        };
        let tcp = if read_net && self.cfg.count_connections {
            netdev::read_tcp(&proc_root, info.pid).map(|(n, skipped)| {
                skips.sockstat_lines += skipped;
                n
            })
        } else {
            None
        };

        let now = Counters {
            at,
            cpu_ns: cg.cpu_usage_ns,
            periods: cg.cpu_periods,
            throttled: cg.cpu_throttled_periods,
            oom_kills: cg.oom_kills,
            net,
        };
        let prev = tracked.prev.replace(now);
        let dt = prev
            .map(|p| at.duration_since(p.at).as_secs_f64())
            .filter(|d| *d > 0.0);
        let delta = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) if a >= b => Some(a - b),
            _ => None,
        };
        let rate = |a: Option<u64>, b: Option<u64>| Some(delta(a, b)? as f64 / dt?);
        let p = prev.as_ref();
        let cpu_cores = rate(cg.cpu_usage_ns, p.and_then(|p| p.cpu_ns)).map(|r| r / 1e9);
        let throttled_ratio = match (
            delta(cg.cpu_periods, p.and_then(|p| p.periods)),
            delta(cg.cpu_throttled_periods, p.and_then(|p| p.throttled)),
        ) {
            (Some(periods), Some(thr)) if periods > 0 => {
                Some((thr as f64 / periods as f64).min(1.0))
            }
            (Some(0), _) => Some(0.0),
            _ => None,
        };
        let oom_kills = delta(cg.oom_kills, p.and_then(|p| p.oom_kills));
        let prev_net = p.and_then(|p| p.net);
        let rx_rate = net.and_then(|n| rate(Some(n.rx_bytes), prev_net.map(|p| p.rx_bytes)));
        let tx_rate = net.and_then(|n| rate(Some(n.tx_bytes), prev_net.map(|p| p.tx_bytes)));
        let limit_ratio = match (cg.memory_working_set, cg.memory_limit) {
            (Some(ws), Some(l)) if l > 0 => Some(ws as f64 / l as f64),
            _ => None,
        };

        let thresholds = self.thresholds.for_namespace(info.namespace());
        let observed = Observed {
            dt_secs: dt,
            memory_limit_ratio: limit_ratio,
            oom_kills,
            cpu_cores,
            cpu_capacity: cg.cpu_limit_cores.or(self.node_cpus),
            throttled_ratio: throttled_ratio.filter(|_| cg.cpu_limit_cores.is_some()),
            tx_bytes_per_sec: tx_rate,
            tcp_connections: tcp,
        };
        let clock = at.duration_since(self.started).as_secs_f64();
        let (anomalies, baselines) = tracked.judge.judge(&observed, thresholds, clock);

        Some(ResourceUsage {
            collector: self.layout.name().to_owned(),
            interval_secs: dt,
            cpu: cg.cpu_usage_ns.map(|ns| CpuUsage {
                usage_seconds_total: ns as f64 / 1e9,
                usage_cores: cpu_cores,
                limit_cores: cg.cpu_limit_cores,
                periods_total: cg.cpu_periods,
                throttled_periods_total: cg.cpu_throttled_periods,
                throttled_seconds_total: cg.cpu_throttled_ns.map(|n| n as f64 / 1e9),
                throttled_ratio,
            }),
            memory: cg.memory_usage.map(|usage| MemoryUsage {
                usage_bytes: usage,
                working_set_bytes: cg.memory_working_set,
                anon_bytes: cg.memory_anon,
                file_bytes: cg.memory_file,
                limit_bytes: cg.memory_limit,
                limit_ratio,
                oom_kills_total: cg.oom_kills,
                oom_kills,
            }),
            network: net.map(|n| NetworkUsage {
                source: "proc_net_dev".to_owned(),
                rx_bytes_total: n.rx_bytes,
                tx_bytes_total: n.tx_bytes,
                rx_packets_total: n.rx_packets,
                tx_packets_total: n.tx_packets,
                rx_errors_total: n.rx_errors,
                tx_errors_total: n.tx_errors,
                rx_dropped_total: n.rx_dropped,
                tx_dropped_total: n.tx_dropped,
                rx_bytes_per_sec: rx_rate,
                tx_bytes_per_sec: tx_rate,
                tx_baseline_bytes_per_sec: baselines.tx_bytes_per_sec,
                tcp_connections: tcp,
                tcp_connections_baseline: tcp.and(baselines.tcp_connections),
            }),
            network_shared_with: None,
            host_network: false,
            block_io: cg.block_io.map(|io| BlockIoUsage {
                read_bytes_total: io.read_bytes,
                write_bytes_total: io.write_bytes,
                read_ops_total: io.read_ops,
                write_ops_total: io.write_ops,
            }),
            pids: cg.pids_current.map(|current| PidsUsage {
                current,
                limit: cg.pids_limit,
            }),
            anomalies,
        })
    }
}

fn read_netdev(proc_root: &Path, pid: u32, skips: &mut Skips) -> Option<NetDev> {
    let text = cgroup::read_capped(&proc_root.join(pid.to_string()).join("net/dev")).ok()?;
    let (d, skipped) = netdev::parse_net_dev(&text);
    skips.netdev_lines += skipped;
    Some(d)
}

/// Builds a synthetic node for tests and the benchmark: `n` containers under
/// `root/proc` and `root/cgroup` (v1 or v2 layout), each with its process's cgroup, network
/// and socket files, and a [`ContainerInfo`] for each.
#[doc(hidden)]
pub fn synthetic_node(
    root: &Path,
    n: usize,
    layout: Layout,
) -> std::io::Result<Vec<ContainerInfo>> {
    let proc_root = root.join("proc");
    let cg = root.join("cgroup");
    std::fs::create_dir_all(proc_root.join("1/ns"))?;
    let _ = std::os::unix::fs::symlink("net:[4026531840]", proc_root.join("1/ns/net"));
    std::fs::write(
        proc_root.join("stat"),
        "cpu  1 1 1\ncpu0 1 1 1\ncpu1 1 1 1\n",
    )?;
    if layout == Layout::V2 {
        std::fs::create_dir_all(&cg)?;
        std::fs::write(cg.join("cgroup.controllers"), "cpu memory io pids\n")?;
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{i:064x}");
        let pid = 1000 + i as u32;
        let rel = format!("kubepods/pod{i}/{id}");
        let p = proc_root.join(pid.to_string());
        std::fs::create_dir_all(p.join("ns"))?;
        std::fs::create_dir_all(p.join("net"))?;
        let _ =
            std::os::unix::fs::symlink(format!("net:[{}]", 4_026_532_000 + i), p.join("ns/net"));
        std::fs::write(
            p.join("net/sockstat"),
            "sockets: used 30\nTCP: inuse 12 orphan 0 tw 8 alloc 20 mem 1\nUDP: inuse 0 mem 0\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n",
        )?;
        std::fs::write(
            p.join("net/sockstat6"),
            "TCP6: inuse 0\nUDP6: inuse 0\nUDPLITE6: inuse 0\nRAW6: inuse 0\nFRAG6: inuse 0 memory 0\n",
        )?;
        std::fs::write(
            p.join("net/dev"),
            format!(
                "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  eth0: {} 8000 0 0 0 0 0 0 {} 9000 0 0 0 0 0 0\n",
                10_000_000 + i,
                20_000_000 + i
            ),
        )?;
        match layout {
            Layout::V2 => {
                std::fs::write(p.join("cgroup"), format!("0::/{rel}\n"))?;
                let d = cg.join(&rel);
                std::fs::create_dir_all(&d)?;
                for (f, t) in [
                    (
                        "cpu.stat",
                        "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 40\nnr_throttled 10\nthrottled_usec 750000\nnr_bursts 0\nburst_usec 0\n",
                    ),
                    ("cpu.max", "150000 100000\n"),
                    ("memory.current", "104857600\n"),
                    ("memory.max", "209715200\n"),
                    ("memory.stat", V2_MEMORY_STAT),
                    (
                        "memory.events",
                        "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
                    ),
                    (
                        "io.stat",
                        "8:0 rbytes=1000 wbytes=2000 rios=10 wios=20 dbytes=0 dios=0\n",
                    ),
                    ("pids.current", "7\n"),
                    ("pids.max", "100\n"),
                ] {
                    std::fs::write(d.join(f), t)?;
                }
            }
            Layout::V1 => {
                std::fs::write(
                    p.join("cgroup"),
                    format!(
                        "9:name=systemd:/{rel}\n8:pids:/{rel}\n7:blkio:/{rel}\n4:memory:/{rel}\n2:cpuacct:/{rel}\n1:cpu:/{rel}\n0::/{rel}\n"
                    ),
                )?;
                for (ctrl, files) in [
                    (
                        "cpuacct",
                        &[
                            ("cpuacct.usage", "34931765\n"),
                            ("cpuacct.stat", "user 2\nsystem 1\n"),
                        ][..],
                    ),
                    (
                        "cpu",
                        &[
                            (
                                "cpu.stat",
                                "nr_periods 30\nnr_throttled 12\nthrottled_time 1500000000\nnr_bursts 0\nburst_time 0\n",
                            ),
                            ("cpu.cfs_quota_us", "50000\n"),
                            ("cpu.cfs_period_us", "100000\n"),
                        ][..],
                    ),
                    (
                        "memory",
                        &[
                            ("memory.usage_in_bytes", "835584\n"),
                            ("memory.limit_in_bytes", "67108864\n"),
                            ("memory.stat", V1_MEMORY_STAT),
                            (
                                "memory.oom_control",
                                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
                            ),
                        ][..],
                    ),
                    (
                        "blkio",
                        &[
                            (
                                "blkio.throttle.io_service_bytes_recursive",
                                "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n",
                            ),
                            (
                                "blkio.throttle.io_serviced_recursive",
                                "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
                            ),
                        ][..],
                    ),
                    (
                        "pids",
                        &[("pids.current", "3\n"), ("pids.max", "max\n")][..],
                    ),
                ] {
                    let d = cg.join(ctrl).join(&rel);
                    std::fs::create_dir_all(&d)?;
                    for (f, t) in files {
                        std::fs::write(d.join(f), t)?;
                    }
                }
            }
        }
        out.push(ContainerInfo {
            id,
            runtime: "containerd",
            pid,
            name: Some(format!("app-{i}")),
            image: Some("registry.example/app:1".into()),
            pod: Some(vigil_core::event::PodRef {
                namespace: Some(format!("ns-{}", i % 10)),
                name: Some(format!("pod-{i}")),
                uid: None,
            }),
            sandbox: false,
        });
    }
    Ok(out)
}

/// A full `memory.stat` of cgroup v1 as this kernel writes it (so the benchmark parses as
/// much text as a real node).
const V1_MEMORY_STAT: &str = "cache 348160\nrss 53248\nrss_huge 0\nshmem 0\nmapped_file 163840\ndirty 0\nwriteback 0\nworkingset_refault_anon 0\nworkingset_refault_file 85\nswap 0\nswapcached 0\npgpgin 851\npgpgout 753\npgfault 1047\npgmajfault 2\ninactive_anon 49152\nactive_anon 4096\ninactive_file 0\nactive_file 348160\nunevictable 0\nhierarchical_memory_limit 67108864\nhierarchical_memsw_limit 134217728\ntotal_cache 348160\ntotal_rss 53248\ntotal_rss_huge 0\ntotal_shmem 0\ntotal_mapped_file 163840\ntotal_dirty 0\ntotal_writeback 0\ntotal_workingset_refault_anon 0\ntotal_workingset_refault_file 85\ntotal_swap 0\ntotal_swapcached 0\ntotal_pgpgin 851\ntotal_pgpgout 753\ntotal_pgfault 1047\ntotal_pgmajfault 2\ntotal_inactive_anon 49152\ntotal_active_anon 4096\ntotal_inactive_file 0\ntotal_active_file 348160\ntotal_unevictable 0\n";

/// A full `memory.stat` of cgroup v2 (Linux 6.x keys).
const V2_MEMORY_STAT: &str = "anon 83886080\nfile 20971520\nkernel 1048576\nkernel_stack 65536\npagetables 262144\nsec_pagetables 0\npercpu 1024\nsock 0\nvmalloc 0\nshmem 0\nzswap 0\nzswapped 0\nfile_mapped 4194304\nfile_dirty 0\nfile_writeback 0\nswapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\ninactive_anon 83886080\nactive_anon 0\ninactive_file 10485760\nactive_file 10485760\nunevictable 0\nslab_reclaimable 262144\nslab_unreclaimable 131072\nslab 393216\nworkingset_refault_anon 0\nworkingset_refault_file 0\nworkingset_activate_anon 0\nworkingset_activate_file 0\nworkingset_restore_anon 0\nworkingset_restore_file 0\nworkingset_nodereclaim 0\npgscan 0\npgsteal 0\npgscan_kswapd 0\npgscan_direct 0\npgsteal_kswapd 0\npgsteal_direct 0\npgfault 12345\npgmajfault 12\npgrefill 0\npgactivate 0\npgdeactivate 0\npglazyfree 0\npglazyfreed 0\nzswpin 0\nzswpout 0\nthp_fault_alloc 0\nthp_collapse_alloc 0\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::resources::signals::ThresholdSettings;

    fn collector(root: &Path) -> Collector {
        Collector::new(
            CollectorConfig {
                proc_root: root.join("proc"),
                cgroup_root: root.join("cgroup"),
                count_connections: true,
            },
            ThresholdTable::new(&ThresholdSettings::default(), &Default::default()),
        )
    }

    #[test]
    fn both_layouts_give_the_same_kind_of_figures() {
        for layout in [Layout::V1, Layout::V2] {
            let t = tempfile::tempdir().unwrap();
            let containers = synthetic_node(t.path(), 3, layout).unwrap();
            let mut c = collector(t.path());
            assert_eq!(c.layout(), layout);
            let Collected {
                sampled: first,
                skips,
                ..
            } = c.collect(&containers);
            assert_eq!(skips, Skips::default());
            assert_eq!(first.len(), 3);
            let u = &first[0].usage;
            assert_eq!(u.collector, layout.name());
            assert!(u.interval_secs.is_none() && u.anomalies.is_empty());
            assert!(
                u.cpu.as_ref().unwrap().usage_cores.is_none(),
                "no rate on the first sample"
            );
            let n = u.network.as_ref().unwrap();
            assert_eq!(
                (n.rx_bytes_total, n.tx_bytes_total),
                (10_000_000, 20_000_000)
            );
            assert_eq!(n.tcp_connections, Some(20), "12 in use and 8 in TIME_WAIT");
            assert!(u.block_io.is_some() && u.pids.is_some());

            // The cgroup of container 0 grows by 0.5 s of CPU; the next sample has rates.
            let Collected {
                sampled: second, ..
            } = c.collect(&containers);
            let cpu = second[0].usage.cpu.as_ref().unwrap();
            assert_eq!(cpu.usage_cores, Some(0.0));
            assert!(second[0].usage.interval_secs.is_some());
            assert_eq!(c.tracked(), 3);
            let Collected { sampled: third, .. } = c.collect(&containers[1..]);
            assert_eq!(third.len(), 2);
            assert_eq!(c.tracked(), 2, "a container no longer listed is forgotten");
        }
    }

    #[test]
    fn a_pods_network_is_reported_once_and_the_nodes_never() {
        let t = tempfile::tempdir().unwrap();
        let mut containers = synthetic_node(t.path(), 3, Layout::V2).unwrap();
        let proc_root = t.path().join("proc");
        // Container 2 joins container 1's namespace; container 0 uses the node's.
        for (pid, ns) in [(1000, "net:[4026531840]"), (1002, "net:[4026532001]")] {
            let link = proc_root.join(format!("{pid}/ns/net"));
            std::fs::remove_file(&link).unwrap();
            std::os::unix::fs::symlink(ns, &link).unwrap();
        }
        containers[2].sandbox = true;
        let mut c = collector(t.path());
        let Collected { sampled: s, .. } = c.collect(&containers);
        assert!(s[0].usage.host_network && s[0].usage.network.is_none());
        assert_eq!(
            s[1].usage.network_shared_with.as_deref(),
            Some(containers[2].id.as_str()),
            "the sandbox reports the pod's traffic"
        );
        assert!(s[1].usage.network.is_none());
        assert!(s[2].usage.network.is_some());
    }

    #[test]
    fn vanished_containers_are_counted_not_reported() {
        let t = tempfile::tempdir().unwrap();
        let containers = synthetic_node(t.path(), 2, Layout::V1).unwrap();
        let mut c = collector(t.path());
        let _ = c.collect(&containers);
        for ctrl in ["cpu", "cpuacct", "memory", "blkio", "pids"] {
            std::fs::remove_dir_all(t.path().join("cgroup").join(ctrl).join("kubepods/pod1"))
                .unwrap();
        }
        std::fs::remove_dir_all(t.path().join("proc/1001")).unwrap();
        let Collected {
            sampled: s, skips, ..
        } = c.collect(&containers);
        assert_eq!(s.len(), 1);
        assert_eq!(skips.gone, 1);
        // And a process that was never there.
        let mut ghost = containers[0].clone();
        ghost.id = "ghost".into();
        ghost.pid = 99_999;
        let Collected {
            sampled: s, skips, ..
        } = c.collect(&[ghost]);
        assert!(s.is_empty());
        assert_eq!(skips.gone, 1);
    }
}
