//! The kernel's process connector (`cn_proc`): fork, exec and exit of every process of the
//! node, as they happen, over a netlink socket (`NETLINK_CONNECTOR`).
//!
//! The wire format (include/uapi/linux/netlink.h, connector.h, cn_proc.h), host byte order:
//!
//! ```text
//! nlmsghdr   len u32, type u16, flags u16, seq u32, pid u32                 16 bytes
//! cn_msg     idx u32, val u32, seq u32, ack u32, len u16, flags u16         20 bytes
//! proc_event what u32, cpu u32, timestamp_ns u64, then by `what`:
//!            fork   parent_pid, parent_tgid, child_pid, child_tgid         (u32 each)
//!            exec   process_pid, process_tgid
//!            exit   process_pid, process_tgid, exit_code, exit_signal, parent_pid, parent_tgid
//!            none   err (the answer to a subscription)
//! ```
//!
//! Parsing works on byte slices with bounds checks only: a datagram that is short, claims
//! more bytes than it has, or is not a process event is counted and skipped, never trusted.
//! The socket is rustix's safe wrapper, so this file holds no `unsafe`.
//!
//! The kernel answers a subscription (`PROC_CN_MCAST_LISTEN`) only from the initial user and
//! PID namespaces and with `CAP_NET_ADMIN` (drivers/connector/cn_proc.c): elsewhere it stays
//! silent, which [`Connector::subscribe`] tells from the missing acknowledgement. The
//! connector's kernel socket exists only in the initial network namespace, so from any
//! other the subscription is refused (`ECONNREFUSED`). The agent needs `hostPID`,
//! `hostNetwork` and that capability, or falls back to scanning `/proc`.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType, netlink, sockopt};

/// The connector's index and value of the process events (`CN_IDX_PROC`, `CN_VAL_PROC`);
/// the index is also the multicast group to join.
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
/// `NLMSG_DONE`: the type the connector gives every message.
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
const CN_MSG_LEN: usize = 20;
/// `what`, `cpu`, `timestamp_ns`.
const PROC_EVENT_HDRLEN: usize = 16;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_CN_MCAST_IGNORE: u32 = 2;

const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 0x0000_0001;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// Largest datagram read at once. The kernel sends one event per datagram (under 100
/// bytes); a larger buffer only lets a batch of several messages through whole.
pub const RECV_BUFFER: usize = 8192;

/// One process event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcEvent {
    /// The answer to a subscription: `err` 0 is success (an errno otherwise).
    Ack {
        /// The `seq` of the request answered.
        seq: u32,
        /// The request's `ack` plus one.
        ack: u32,
        /// 0 or an errno.
        err: u32,
    },
    /// A task was created: a process (`child_pid == child_tgid`) or a thread.
    Fork {
        /// The creating process.
        parent_tgid: u32,
        /// The new task.
        child_pid: u32,
        /// Its process.
        child_tgid: u32,
    },
    /// A process replaced its program (`execve`).
    Exec {
        /// The task.
        pid: u32,
        /// Its process.
        tgid: u32,
    },
    /// A task ended.
    Exit {
        /// The task.
        pid: u32,
        /// Its process.
        tgid: u32,
        /// The exit status, as `wait` reports it.
        exit_code: u32,
    },
    /// Another kind (uid, gid, sid, comm, ptrace, coredump changes), by `what`.
    Other(u32),
}

/// An event with the kernel's timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed {
    /// `CLOCK_MONOTONIC` nanoseconds, as the kernel stamped it.
    pub timestamp_ns: u64,
    /// What happened.
    pub event: ProcEvent,
}

/// Why (part of) a datagram was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Shorter than a netlink header, or a header claiming more bytes than there are.
    #[error("truncated netlink message")]
    Netlink,
    /// A connector message too short for its header or its claimed payload.
    #[error("truncated connector message")]
    ConnectorMessage,
    /// A connector message for another connector (not the process events).
    #[error("connector message for another index")]
    OtherConnector,
    /// A process event too short for its kind.
    #[error("truncated process event")]
    ProcEvent,
}

impl Malformed {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Malformed::Netlink => "netlink",
            Malformed::ConnectorMessage => "cn_msg",
            Malformed::OtherConnector => "other_connector",
            Malformed::ProcEvent => "proc_event",
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2)?.try_into().ok().map(u16::from_ne_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)?.try_into().ok().map(u32::from_ne_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)?.try_into().ok().map(u64::from_ne_bytes)
}

/// Parses one datagram (one or more netlink messages, each 4-byte aligned), appending the
/// events to `out` and the problems to `bad`. Messages other than `NLMSG_DONE` (noop,
/// error, overrun) carry no event and are passed over.
pub fn parse_datagram(buf: &[u8], out: &mut Vec<Timed>, bad: &mut Vec<Malformed>) {
    let mut rest = buf;
    while !rest.is_empty() {
        let (Some(len), Some(kind)) = (u32_at(rest, 0), u16_at(rest, 4)) else {
            bad.push(Malformed::Netlink);
            return;
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            bad.push(Malformed::Netlink);
            return;
        }
        if kind == NLMSG_DONE {
            match parse_cn_msg(&rest[NLMSG_HDRLEN..len]) {
                Ok(e) => out.push(e),
                Err(m) => bad.push(m),
            }
        }
        let aligned = len.div_ceil(4) * 4;
        rest = rest.get(aligned..).unwrap_or_default();
    }
}

/// One connector message carrying one process event.
fn parse_cn_msg(b: &[u8]) -> Result<Timed, Malformed> {
    let (Some(idx), Some(val), Some(seq), Some(ack), Some(len)) = (
        u32_at(b, 0),
        u32_at(b, 4),
        u32_at(b, 8),
        u32_at(b, 12),
        u16_at(b, 16),
    ) else {
        return Err(Malformed::ConnectorMessage);
    };
    if (idx, val) != (CN_IDX_PROC, CN_VAL_PROC) {
        return Err(Malformed::OtherConnector);
    }
    let data = b
        .get(CN_MSG_LEN..CN_MSG_LEN + usize::from(len))
        .ok_or(Malformed::ConnectorMessage)?;
    let (Some(what), Some(timestamp_ns)) = (u32_at(data, 0), u64_at(data, 8)) else {
        return Err(Malformed::ProcEvent);
    };
    let f = |i: usize| u32_at(data, PROC_EVENT_HDRLEN + 4 * i).ok_or(Malformed::ProcEvent);
    let event = match what {
        PROC_EVENT_NONE => ProcEvent::Ack {
            seq,
            ack,
            err: f(0)?,
        },
        PROC_EVENT_FORK => ProcEvent::Fork {
            parent_tgid: f(1)?,
            child_pid: f(2)?,
            child_tgid: f(3)?,
        },
        PROC_EVENT_EXEC => ProcEvent::Exec {
            pid: f(0)?,
            tgid: f(1)?,
        },
        PROC_EVENT_EXIT => ProcEvent::Exit {
            pid: f(0)?,
            tgid: f(1)?,
            exit_code: f(2)?,
        },
        other => ProcEvent::Other(other),
    };
    Ok(Timed {
        timestamp_ns,
        event,
    })
}

/// A subscription request: a netlink header, a connector header and the operation.
/// `nonce` goes in the connector's `ack` field, which the kernel answers with `nonce + 1`
/// (its answer's `seq` is the kernel's own event counter since Linux 6.x, not ours).
pub fn control_message(op: u32, nonce: u32) -> Vec<u8> {
    let total = NLMSG_HDRLEN + CN_MSG_LEN + 4;
    let mut m = Vec::with_capacity(total);
    m.extend_from_slice(&(total as u32).to_ne_bytes());
    m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    m.extend_from_slice(&0u16.to_ne_bytes()); // flags
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel fills the sender's in
    m.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    m.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&nonce.to_ne_bytes()); // ack
    m.extend_from_slice(&4u16.to_ne_bytes()); // payload length
    m.extend_from_slice(&0u16.to_ne_bytes()); // flags
    m.extend_from_slice(&op.to_ne_bytes());
    m
}

/// Why the connector cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The socket could not be made or bound (no `CONFIG_PROC_EVENTS`, no `CAP_NET_ADMIN`).
    #[error("cannot open the process connector socket: {0}")]
    Socket(std::io::Error),
    /// The subscription could not be sent (`ECONNREFUSED` outside the host's network
    /// namespace).
    #[error(
        "cannot subscribe to process events: {0} (the connector answers only in the host's network namespace: hostNetwork)"
    )]
    Send(std::io::Error),
    /// The kernel refused the subscription.
    #[error(
        "the kernel refused the process-event subscription (errno {0}; CAP_NET_ADMIN is needed)"
    )]
    Refused(u32),
    /// No answer: the agent is outside the initial PID or user namespace (no `hostPID`),
    /// where the kernel ignores subscriptions.
    #[error(
        "no answer to the process-event subscription within {0:?} (is the agent in the host's PID namespace?)"
    )]
    NoAnswer(Duration),
    /// Reading failed.
    #[error("reading process events: {0}")]
    Recv(std::io::Error),
}

/// What one read gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A datagram of this many bytes from the kernel is in the buffer.
    Data(usize),
    /// Nothing within the read timeout.
    Idle,
    /// The socket's receive buffer overflowed: the kernel dropped events (`ENOBUFS`).
    Overrun,
    /// A datagram from a sender other than the kernel, ignored.
    Foreign,
}

/// A subscribed connector socket. Dropping it unsubscribes and closes it.
#[derive(Debug)]
pub struct Connector {
    fd: OwnedFd,
    nonce: u32,
}

impl Connector {
    /// Opens a socket, joins the process-event group, and asks for a receive buffer of
    /// `recv_buffer` bytes (beyond `net.core.rmem_max` when `CAP_NET_ADMIN` allows);
    /// reads give up after `read_timeout` so the reader can notice a stop.
    pub fn open(recv_buffer: usize, read_timeout: Duration) -> Result<Connector, ConnectorError> {
        let io = |e: Errno| ConnectorError::Socket(e.into());
        let fd = rustix::net::socket(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            Some(netlink::CONNECTOR),
        )
        .map_err(io)?;
        // Port 0: the kernel picks a free one, so several sockets (tests, a restart) coexist.
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, CN_IDX_PROC)).map_err(io)?;
        if sockopt::set_socket_recv_buffer_size_force(&fd, recv_buffer).is_err() {
            // Without CAP_NET_ADMIN the ordinary option is capped at rmem_max.
            let _ = sockopt::set_socket_recv_buffer_size(&fd, recv_buffer);
        }
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, Some(read_timeout)).map_err(io)?;
        // The kernel multicasts every listener's acknowledgement to all listeners; a nonce
        // made of the process id and the socket's port tells this socket's own apart.
        let port = rustix::net::getsockname(&fd)
            .ok()
            .and_then(|a| SocketAddrNetlink::try_from(a).ok())
            .map_or(0, |a| a.pid());
        let nonce = std::process::id().rotate_left(16) ^ port ^ 0x5649_474c;
        Ok(Connector { fd, nonce })
    }

    /// Subscribes and waits up to `wait` for the kernel's acknowledgement. Events that
    /// arrive meanwhile are dropped (the source starts after this returns).
    pub fn subscribe(&mut self, wait: Duration) -> Result<(), ConnectorError> {
        self.nonce = self.nonce.wrapping_add(2);
        let msg = control_message(PROC_CN_MCAST_LISTEN, self.nonce);
        rustix::net::send(&self.fd, &msg, SendFlags::empty())
            .map_err(|e| ConnectorError::Send(e.into()))?;
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; RECV_BUFFER];
        let (mut events, mut bad) = (Vec::new(), Vec::new());
        while Instant::now() < deadline {
            match self.recv(&mut buf)? {
                Received::Data(n) => {
                    events.clear();
                    parse_datagram(&buf[..n], &mut events, &mut bad);
                    for e in &events {
                        if let ProcEvent::Ack { ack, err, .. } = e.event
                            && ack == self.nonce.wrapping_add(1)
                        {
                            return match err {
                                0 => Ok(()),
                                err => Err(ConnectorError::Refused(err)),
                            };
                        }
                    }
                }
                Received::Idle | Received::Overrun | Received::Foreign => {}
            }
        }
        Err(ConnectorError::NoAnswer(wait))
    }

    /// Reads one datagram into `buf`.
    pub fn recv(&self, buf: &mut [u8]) -> Result<Received, ConnectorError> {
        match rustix::net::recvfrom(&self.fd, &mut *buf, RecvFlags::empty()) {
            Ok((n, _, from)) => {
                // Only the kernel (port 0) speaks for the connector; anything else is a
                // process trying to inject events.
                let from_kernel = from
                    .and_then(|a| SocketAddrNetlink::try_from(a).ok())
                    .is_some_and(|a| a.pid() == 0);
                Ok(if from_kernel {
                    Received::Data(n.min(buf.len()))
                } else {
                    Received::Foreign
                })
            }
            Err(Errno::AGAIN | Errno::INTR) => Ok(Received::Idle),
            Err(Errno::NOBUFS) => Ok(Received::Overrun),
            Err(e) => Err(ConnectorError::Recv(e.into())),
        }
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        // Best effort: the kernel counts listeners and sends nothing once none is left.
        let msg = control_message(PROC_CN_MCAST_IGNORE, self.nonce.wrapping_add(2));
        let _ = rustix::net::send(&self.fd, &msg, SendFlags::empty());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A datagram as the kernel builds it: one message with one event.
    pub(crate) fn datagram(what: u32, ts: u64, fields: &[u32]) -> Vec<u8> {
        let mut data = Vec::new();
        data.extend_from_slice(&what.to_ne_bytes());
        data.extend_from_slice(&0u32.to_ne_bytes());
        data.extend_from_slice(&ts.to_ne_bytes());
        for f in fields {
            data.extend_from_slice(&f.to_ne_bytes());
        }
        // The kernel sends the union's full size (24 bytes for exit).
        data.resize(PROC_EVENT_HDRLEN + 24, 0);
        let mut m = Vec::new();
        let total = NLMSG_HDRLEN + CN_MSG_LEN + data.len();
        m.extend_from_slice(&(total as u32).to_ne_bytes());
        m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        m.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        m.extend_from_slice(&7u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&(data.len() as u16).to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&data);
        m
    }

    fn parse(b: &[u8]) -> (Vec<Timed>, Vec<Malformed>) {
        let (mut out, mut bad) = (Vec::new(), Vec::new());
        parse_datagram(b, &mut out, &mut bad);
        (out, bad)
    }

    #[test]
    fn fork_exec_exit_and_ack_are_decoded() {
        let (out, bad) = parse(&datagram(PROC_EVENT_FORK, 5, &[10, 10, 11, 11]));
        assert!(bad.is_empty());
        assert_eq!(
            out[0],
            Timed {
                timestamp_ns: 5,
                event: ProcEvent::Fork {
                    parent_tgid: 10,
                    child_pid: 11,
                    child_tgid: 11
                }
            }
        );
        let (out, _) = parse(&datagram(PROC_EVENT_EXEC, 6, &[11, 11]));
        assert_eq!(out[0].event, ProcEvent::Exec { pid: 11, tgid: 11 });
        let (out, _) = parse(&datagram(PROC_EVENT_EXIT, 7, &[11, 11, 256, 17, 10, 10]));
        assert_eq!(
            out[0].event,
            ProcEvent::Exit {
                pid: 11,
                tgid: 11,
                exit_code: 256
            }
        );
        let (out, _) = parse(&datagram(PROC_EVENT_NONE, 0, &[1]));
        assert_eq!(
            out[0].event,
            ProcEvent::Ack {
                seq: 7,
                ack: 0,
                err: 1
            }
        );
        let (out, _) = parse(&datagram(0x200, 0, &[1, 1]));
        assert_eq!(out[0].event, ProcEvent::Other(0x200));
    }

    #[test]
    fn several_messages_in_one_datagram_are_all_read() {
        let mut b = datagram(PROC_EVENT_EXEC, 1, &[3, 3]);
        b.extend(datagram(PROC_EVENT_EXEC, 2, &[4, 4]));
        let (out, bad) = parse(&b);
        assert!(bad.is_empty());
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].event, ProcEvent::Exec { pid: 4, tgid: 4 });
    }

    #[test]
    fn every_truncation_is_counted_and_nothing_panics() {
        let full = datagram(PROC_EVENT_EXIT, 9, &[1, 1, 0, 0, 0, 0]);
        for cut in 0..full.len() {
            let (out, bad) = parse(&full[..cut]);
            assert!(out.is_empty(), "cut at {cut}: {out:?}");
            if cut > 0 {
                assert_eq!(bad.len(), 1, "cut at {cut}");
            }
        }
    }

    #[test]
    fn lying_lengths_other_connectors_and_short_payloads_are_refused() {
        // A header claiming more than the datagram holds.
        let mut b = datagram(PROC_EVENT_EXEC, 1, &[3, 3]);
        b[0..4].copy_from_slice(&10_000u32.to_ne_bytes());
        assert_eq!(parse(&b).1, [Malformed::Netlink]);
        // A header claiming less than itself (would loop forever if trusted).
        b[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(parse(&b).1, [Malformed::Netlink]);
        // Another connector (e.g. CN_IDX_CIFS).
        let mut b = datagram(PROC_EVENT_EXEC, 1, &[3, 3]);
        b[16..20].copy_from_slice(&2u32.to_ne_bytes());
        assert_eq!(parse(&b).1, [Malformed::OtherConnector]);
        // A cn_msg whose payload length exceeds the message.
        let mut b = datagram(PROC_EVENT_EXEC, 1, &[3, 3]);
        b[32..34].copy_from_slice(&u16::MAX.to_ne_bytes());
        assert_eq!(parse(&b).1, [Malformed::ConnectorMessage]);
        // A payload that claims to be an exit but is only as long as the header.
        let mut b = datagram(PROC_EVENT_EXIT, 1, &[3, 3]);
        b[32..34].copy_from_slice(&(PROC_EVENT_HDRLEN as u16 + 4).to_ne_bytes());
        assert_eq!(parse(&b).1, [Malformed::ProcEvent]);
        // Non-DONE messages (an overrun notice, say) carry nothing and are passed over.
        let mut b = datagram(PROC_EVENT_EXEC, 1, &[3, 3]);
        b[4..6].copy_from_slice(&4u16.to_ne_bytes());
        assert_eq!(parse(&b), (vec![], vec![]));
    }

    #[test]
    fn control_messages_have_the_layout_the_kernel_reads() {
        let m = control_message(PROC_CN_MCAST_LISTEN, 42);
        assert_eq!(m.len(), 40);
        assert_eq!(u32_at(&m, 0), Some(40));
        assert_eq!(u16_at(&m, 4), Some(NLMSG_DONE));
        assert_eq!(u32_at(&m, 16), Some(CN_IDX_PROC));
        assert_eq!(u32_at(&m, 28), Some(42));
        assert_eq!(u16_at(&m, 32), Some(4));
        assert_eq!(u32_at(&m, 36), Some(PROC_CN_MCAST_LISTEN));
    }

    /// Against the running kernel (root, initial namespaces: these machines and a
    /// `hostPID` pod with `CAP_NET_ADMIN`): the subscription is acknowledged, and a program
    /// started afterwards is reported as a fork and an exec of its pid.
    #[test]
    fn the_kernel_reports_a_child_started_after_subscribing() {
        let mut c = Connector::open(1 << 20, Duration::from_millis(200))
            .expect("the process connector needs root (CAP_NET_ADMIN) in the host's namespaces");
        c.subscribe(Duration::from_secs(2)).unwrap();
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let mut buf = vec![0u8; RECV_BUFFER];
        let (mut seen_fork, mut seen_exec) = (false, false);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !(seen_fork && seen_exec) {
            if let Received::Data(n) = c.recv(&mut buf).unwrap() {
                let (out, bad) = parse(&buf[..n]);
                assert!(bad.is_empty(), "{bad:?}");
                for e in out {
                    match e.event {
                        ProcEvent::Fork { child_tgid, .. } if child_tgid == pid => seen_fork = true,
                        ProcEvent::Exec { tgid, .. } if tgid == pid => seen_exec = true,
                        _ => {}
                    }
                }
            }
        }
        assert!(
            seen_fork && seen_exec,
            "fork {seen_fork}, exec {seen_exec} of {pid}"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = parse(&b);
        }
    }
}
