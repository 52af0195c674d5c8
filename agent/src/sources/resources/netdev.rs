//! A container's network namespace, read through its process: `/proc/<pid>/net/dev`
//! (traffic per interface) and `/proc/<pid>/net/sockstat`, `sockstat6` (TCP sockets).
//!
//! These files describe the network namespace of the process that is read, so they work for
//! every runtime and need no runtime API, only the host's PID namespace. `lo` is left out of
//! the traffic figures: loopback traffic never leaves the namespace (a sidecar talking to its
//! application), and egress is what the spike detection is about.
//!
//! The parsers take text and never fail: a line they cannot read is skipped and counted.

use std::path::Path;

/// Traffic summed over a namespace's interfaces other than `lo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetDev {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Outgoing packets dropped.
    pub tx_dropped: u64,
    /// Interfaces counted.
    pub interfaces: u32,
}

/// Parses `/proc/net/dev`: two header lines, then `NAME: 8 receive and 8 transmit
/// counters` per interface (`bytes packets errs drop fifo frame compressed multicast`,
/// `bytes packets errs drop fifo colls carrier compressed`). Returns the sums and the
/// number of lines skipped as malformed.
pub fn parse_net_dev(text: &str) -> (NetDev, u64) {
    let mut d = NetDev::default();
    let mut skipped = 0;
    for line in text.lines() {
        let Some((name, counters)) = line.split_once(':') else {
            // The two header lines have no colon; neither has an empty line. Anything else
            // without one is not an interface line.
            if !(line.contains('|') || line.trim().is_empty()) {
                skipped += 1;
            }
            continue;
        };
        let name = name.trim();
        let mut values = [0u64; 16];
        let mut n = 0;
        let mut bad = false;
        for field in counters.split_ascii_whitespace() {
            match (values.get_mut(n), field.parse::<u64>()) {
                (Some(slot), Ok(v)) => *slot = v,
                _ => bad = true,
            }
            n += 1;
        }
        if bad || n != 16 || name.is_empty() {
            skipped += 1;
            continue;
        }
        if name == "lo" {
            continue;
        }
        let add = |a: &mut u64, v: u64| *a = a.saturating_add(v);
        add(&mut d.rx_bytes, values[0]);
        add(&mut d.rx_packets, values[1]);
        add(&mut d.rx_errors, values[2]);
        add(&mut d.rx_dropped, values[3]);
        add(&mut d.tx_bytes, values[8]);
        add(&mut d.tx_packets, values[9]);
        add(&mut d.tx_errors, values[10]);
        add(&mut d.tx_dropped, values[11]);
        d.interfaces = d.interfaces.saturating_add(1);
    }
    (d, skipped)
}

/// Parses `/proc/net/sockstat` (`TCP: inuse N orphan N tw N alloc N mem N`) and
/// `sockstat6` (`TCP6: inuse N`): the TCP sockets of the namespace, `inuse` (every hashed
/// socket: established, opening, closing, listening) plus `tw` (TIME_WAIT). Returns the
/// count, if a TCP line was found, and the lines skipped as malformed.
///
/// Both counters are kept per network namespace by the kernel, so reading them costs the
/// same whatever the number of sockets; `/proc/net/tcp`, which lists sockets one by one,
/// walks the kernel's whole connection hash table on every read (about 10 ms on a machine
/// with 24 GiB of memory) and would make each collection cost seconds.
pub fn parse_sockstat(text: &str) -> (Option<u64>, u64) {
    let mut total: Option<u64> = None;
    let mut skipped = 0;
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            if !line.trim().is_empty() {
                skipped += 1;
            }
            continue;
        };
        if proto != "TCP" && proto != "TCP6" {
            continue;
        }
        let f: Vec<&str> = rest.split_ascii_whitespace().collect();
        if !f.len().is_multiple_of(2) {
            skipped += 1;
            continue;
        }
        let mut sum = 0u64;
        let mut ok = true;
        for pair in f.chunks(2) {
            if let ["inuse" | "tw", value] = pair {
                match value.parse::<u64>() {
                    Ok(v) => sum = sum.saturating_add(v),
                    Err(_) => ok = false,
                }
            }
        }
        if ok {
            total = Some(total.unwrap_or(0).saturating_add(sum));
        } else {
            skipped += 1;
        }
    }
    (total, skipped)
}

/// The TCP sockets of the namespace of process `pid` (IPv4 and IPv6, see
/// [`parse_sockstat`]), and the lines skipped; `None` when neither file could be read.
pub fn read_tcp(proc_root: &Path, pid: u32) -> Option<(u64, u64)> {
    let dir = proc_root.join(pid.to_string()).join("net");
    let mut total: Option<u64> = None;
    let mut skipped = 0;
    for name in ["sockstat", "sockstat6"] {
        // A kernel without IPv6 has no sockstat6.
        let Ok(text) = super::cgroup::read_capped(&dir.join(name)) else {
            continue;
        };
        let (n, s) = parse_sockstat(&text);
        skipped += s;
        if let Some(n) = n {
            total = Some(total.unwrap_or(0).saturating_add(n));
        }
    }
    total.map(|t| (t, skipped))
}

/// The network namespace of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetNs {
    /// The inode in `/proc/<pid>/ns/net`'s link (`net:[4026531993]`).
    Id(u64),
    /// The link cannot be read: the kernel allows it only to readers that may ptrace the
    /// process (`CAP_SYS_PTRACE` for another user's or another namespace's process).
    Unknown,
    /// The process is gone.
    Gone,
}

/// The network namespace of process `pid`.
pub fn netns_of(proc_root: &Path, pid: u32) -> NetNs {
    let link = match std::fs::read_link(proc_root.join(pid.to_string()).join("ns/net")) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return NetNs::Gone,
        Err(_) => return NetNs::Unknown,
    };
    link.to_str()
        .and_then(|s| s.strip_prefix("net:["))
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.parse().ok())
        .map_or(NetNs::Unknown, NetNs::Id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As a container with a veth on a bridge reports it (this kernel).
    const REAL: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     500       5    0    0    0     0          0         0      500       5    0    0    0     0       0          0
  eth0: 1048576    800    1    2    0     0          0         0  2097152    1600    3    4    0     0       0          0
  eth1:100 1 0 0 0 0 0 0 200 2 0 0 0 0 0 0
";

    #[test]
    fn sums_every_interface_but_loopback() {
        let (d, skipped) = parse_net_dev(REAL);
        assert_eq!(skipped, 0);
        assert_eq!(
            d,
            NetDev {
                rx_bytes: 1_048_676,
                rx_packets: 801,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 2_097_352,
                tx_packets: 1602,
                tx_errors: 3,
                tx_dropped: 4,
                interfaces: 2,
            }
        );
    }

    #[test]
    fn hostile_net_dev_text_is_skipped_and_counted() {
        let text = "Inter-|   Receive\n face |bytes\n\
            eth0: 1 2 3\n\
            eth1: a b c d e f g h i j k l m n o p\n\
            : 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
            eth2: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n\
            eth3: 18446744073709551615 0 0 0 0 0 0 0 18446744073709551615 0 0 0 0 0 0 0\n\
            eth4: 1 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n\
            \u{0}\u{1}binary\n\
            eth5: -1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        let (d, skipped) = parse_net_dev(text);
        assert_eq!(skipped, 6);
        assert_eq!(d.interfaces, 2);
        assert_eq!(d.rx_bytes, u64::MAX, "sums saturate");
        // Truncated mid-line: the cut line is skipped, the ones before count.
        let cut = &REAL[..REAL.find("2097152").unwrap()];
        let (d, skipped) = parse_net_dev(cut);
        assert_eq!((d.interfaces, skipped), (0, 1));
        assert_eq!(parse_net_dev(""), (NetDev::default(), 0));
    }

    const SOCKSTAT: &str = "sockets: used 294
TCP: inuse 4 orphan 0 tw 300 alloc 4 mem 0
UDP: inuse 0 mem 0
UDPLITE: inuse 0
RAW: inuse 0
FRAG: inuse 0 memory 0
";

    #[test]
    fn sockets_in_use_and_in_time_wait() {
        assert_eq!(parse_sockstat(SOCKSTAT), (Some(304), 0));
        assert_eq!(
            parse_sockstat("TCP6: inuse 2\nUDP6: inuse 0\n"),
            (Some(2), 0)
        );
        assert_eq!(parse_sockstat("UDP: inuse 1 mem 0\n"), (None, 0));
    }

    #[test]
    fn hostile_sockstat_text_is_skipped_and_counted() {
        let text = "TCP: inuse x orphan 0 tw 1\nTCP: inuse\ngarbage\n\u{0}\u{1}\nTCP: inuse 18446744073709551615 tw 5\n";
        let (n, skipped) = parse_sockstat(text);
        assert_eq!(n, Some(u64::MAX), "sums saturate");
        assert_eq!(skipped, 4);
        assert_eq!(parse_sockstat(""), (None, 0));
    }

    #[test]
    fn namespaces_and_sockets_of_a_process() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("7");
        std::fs::create_dir_all(p.join("ns")).unwrap();
        std::fs::create_dir_all(p.join("net")).unwrap();
        std::os::unix::fs::symlink("net:[4026532001]", p.join("ns/net")).unwrap();
        std::fs::write(p.join("net/sockstat"), SOCKSTAT).unwrap();
        assert_eq!(netns_of(t.path(), 7), NetNs::Id(4_026_532_001));
        assert_eq!(netns_of(t.path(), 8), NetNs::Gone);
        assert_eq!(read_tcp(t.path(), 7), Some((304, 0)));
        assert_eq!(read_tcp(t.path(), 8), None);
        std::fs::remove_file(p.join("ns/net")).unwrap();
        std::os::unix::fs::symlink("mnt:[1]", p.join("ns/net")).unwrap();
        assert_eq!(netns_of(t.path(), 7), NetNs::Unknown);
    }
}
