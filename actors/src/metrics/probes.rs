//! What `sysinfo` does not read: `/proc` and cgroup v2 files, and
//! `statvfs` for inodes. Each probe returns an `io::Result` so the sampler can
//! log a failing probe once and go on without it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Cumulative block-device counters, summed over whole disks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskCounters {
    /// Reads completed.
    pub reads: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Writes completed.
    pub writes: u64,
    /// Bytes written.
    pub write_bytes: u64,
}

/// Whole disks (not partitions, loop or RAM devices, nor device-mapper
/// volumes that would count their disks' I/O twice).
fn whole_disks() -> io::Result<Vec<String>> {
    let mut disks = Vec::new();
    for entry in fs::read_dir("/sys/block")? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let virtual_dev = ["loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd"]
            .iter()
            .any(|p| name.starts_with(p));
        if !virtual_dev {
            disks.push(name);
        }
    }
    Ok(disks)
}

/// Sums `/proc/diskstats` over whole disks.
pub fn disk_counters() -> io::Result<DiskCounters> {
    let disks = whole_disks()?;
    let text = fs::read_to_string("/proc/diskstats")?;
    let mut total = DiskCounters::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || !disks.iter().any(|d| d == f[2]) {
            continue;
        }
        let n = |i: usize| f[i].parse::<u64>().unwrap_or(0);
        // Fields: reads completed (3), sectors read (5), writes completed (7),
        // sectors written (9); a sector here is always 512 bytes.
        total.reads += n(3);
        total.read_bytes += n(5) * 512;
        total.writes += n(7);
        total.write_bytes += n(9) * 512;
    }
    Ok(total)
}

/// TCP connection states, as `/proc/net/tcp{,6}` number them.
const TCP_STATES: [&str; 11] = [
    "established",
    "syn_sent",
    "syn_recv",
    "fin_wait1",
    "fin_wait2",
    "time_wait",
    "close",
    "close_wait",
    "last_ack",
    "listen",
    "closing",
];

/// Counts TCP connections (IPv4 and IPv6) by state: from the kernel's socket
/// diagnostics over netlink, or where that is not allowed, from
/// `/proc/net/tcp{,6}`.
///
/// The text files cost the kernel a formatted line per socket and a walk of
/// the whole connection table per file: with 5,000 sockets (a busy test
/// machine) reading them took 6 ms of CPU a sample, most of a sample's cost;
/// netlink answers with a small binary record per socket.
pub fn tcp_states() -> io::Result<BTreeMap<&'static str, u64>> {
    match sock_diag::tcp_states() {
        Ok(counts) => Ok(counts),
        Err(_) => tcp_states_from_proc(),
    }
}

/// Adds one socket in kernel TCP state `state` to `counts`.
fn count_state(counts: &mut BTreeMap<&'static str, u64>, state: u8) {
    if let Some(name) = TCP_STATES.get(usize::from(state).wrapping_sub(1)) {
        *counts.entry(*name).or_insert(0) += 1;
    }
}

/// TCP sockets by state through `NETLINK_SOCK_DIAG` (`inet_diag`).
///
/// One request in `inet_diag`'s older form (`TCPDIAG_GETSOCK`), whose dump
/// the kernel runs with the family unspecified, so IPv4 and IPv6 sockets
/// come in one walk of its connection table. `SOCK_DIAG_BY_FAMILY` needs a
/// request per family, and each walks every bucket of the table, empty or
/// not: on this 24 GiB test machine the two took 1,113 µs of CPU a sample
/// and the one 587 µs (a Python loop of 200 samples each), for the same
/// counts. The walk was 44% of the sampler's CPU (`perf`, 1 s interval).
mod sock_diag {
    use std::collections::BTreeMap;
    use std::io;

    use rustix::net::netlink::{SocketAddrNetlink, SOCK_DIAG};
    use rustix::net::{
        recv, sendto, socket_with, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType,
    };

    const NLMSG_HEADER: usize = 16;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_DUMP: u16 = 0x300;
    /// The request, and the type of each answer.
    const TCPDIAG_GETSOCK: u16 = 18;
    /// `inet_diag_req`: family (0: both), source and destination prefix
    /// lengths, extensions, a 48-byte `inet_diag_sockid` left zero, states
    /// and `dbs`.
    const REQUEST_LEN: usize = 60;
    /// Where `idiag_states` is in the request.
    const STATES_AT: usize = NLMSG_HEADER + 4 + 48;

    pub(super) fn tcp_states() -> io::Result<BTreeMap<&'static str, u64>> {
        let mut counts = BTreeMap::new();
        let mut buf = vec![0u8; 32 * 1024];
        dump(&mut buf, |socket| {
            super::count_state(&mut counts, socket.state)
        })?;
        Ok(counts)
    }

    /// What each socket's `inet_diag_msg` says that is used here.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) struct Socket {
        /// `AF_INET` or `AF_INET6`.
        pub family: u8,
        /// The kernel's TCP state, as `/proc/net/tcp` numbers it.
        pub state: u8,
        /// The local port.
        pub port: u16,
    }

    /// Calls `each` for every TCP socket of either family.
    pub(super) fn dump(buf: &mut [u8], mut each: impl FnMut(Socket)) -> io::Result<()> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(SOCK_DIAG),
        )?;
        let len = NLMSG_HEADER + REQUEST_LEN;
        let mut request = [0u8; NLMSG_HEADER + REQUEST_LEN];
        request[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        request[4..6].copy_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
        request[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        // The sequence number.
        request[8..12].copy_from_slice(&1u32.to_ne_bytes());
        // Every state.
        request[STATES_AT..STATES_AT + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        sendto(
            &fd,
            &request,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )?;
        loop {
            let (_, received) = recv(&fd, &mut *buf, RecvFlags::empty())?;
            let mut at = 0;
            let chunk = &buf[..received.min(buf.len())];
            while at + NLMSG_HEADER <= chunk.len() {
                let word = |i: usize| {
                    u32::from_ne_bytes([chunk[i], chunk[i + 1], chunk[i + 2], chunk[i + 3]])
                };
                let msg_len = word(at) as usize;
                let msg_type = u16::from_ne_bytes([chunk[at + 4], chunk[at + 5]]);
                if msg_len < NLMSG_HEADER || at + msg_len > chunk.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bad netlink message",
                    ));
                }
                match msg_type {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let code = chunk
                            .get(at + NLMSG_HEADER..at + NLMSG_HEADER + 4)
                            .map(|e| i32::from_ne_bytes([e[0], e[1], e[2], e[3]]))
                            .unwrap_or(0);
                        return Err(io::Error::from_raw_os_error(code.saturating_neg()));
                    }
                    // `inet_diag_msg`: family, state, timer, retransmits,
                    // then the local port in network order.
                    TCPDIAG_GETSOCK => {
                        if let Some(m) = chunk.get(at + NLMSG_HEADER..at + NLMSG_HEADER + 6) {
                            each(Socket {
                                family: m[0],
                                state: m[1],
                                port: u16::from_be_bytes([m[4], m[5]]),
                            });
                        }
                    }
                    _ => {}
                }
                // Messages are aligned to 4 bytes.
                at += (msg_len + 3) & !3;
            }
            if received == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "netlink closed",
                ));
            }
        }
    }
}

/// Counts TCP connections (IPv4 and IPv6) by state from `/proc/net/tcp{,6}`.
fn tcp_states_from_proc() -> io::Result<BTreeMap<&'static str, u64>> {
    let mut counts = BTreeMap::new();
    for (file, required) in [("/proc/net/tcp", true), ("/proc/net/tcp6", false)] {
        let text = match fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in text.lines().skip(1) {
            let state = line
                .split_whitespace()
                .nth(3)
                .and_then(|s| u8::from_str_radix(s, 16).ok());
            if let Some(state) = state {
                count_state(&mut counts, state);
            }
        }
    }
    Ok(counts)
}

/// Limits and usage of the cgroup (v2) this process runs in.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CgroupReading {
    /// `memory.max`, when limited.
    pub memory_limit: Option<u64>,
    /// `memory.current`.
    pub memory_usage: Option<u64>,
    /// `cpu.max` as cores (quota / period), when limited.
    pub cpu_limit_cores: Option<f64>,
    /// `cpu.stat` `usage_usec`: CPU time used by the cgroup.
    pub cpu_usage_usec: Option<u64>,
}

/// The cgroup v2 directory of this process, if it is in one.
fn cgroup_dir() -> io::Result<Option<PathBuf>> {
    let text = fs::read_to_string("/proc/self/cgroup")?;
    // cgroup v2 has a single line "0::/path".
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| Path::new("/sys/fs/cgroup").join(p.trim_start_matches('/')))
        .filter(|d| d.join("cgroup.controllers").exists()))
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Reads the cgroup's limits and usage; `None` outside a cgroup v2.
pub fn cgroup() -> io::Result<Option<CgroupReading>> {
    let Some(dir) = cgroup_dir()? else {
        return Ok(None);
    };
    let memory_limit = read_trimmed(&dir.join("memory.max")).and_then(|v| v.parse().ok());
    let memory_usage = read_trimmed(&dir.join("memory.current")).and_then(|v| v.parse().ok());
    let cpu_limit_cores = read_trimmed(&dir.join("cpu.max")).and_then(|v| {
        let mut parts = v.split_whitespace();
        let quota: f64 = parts.next()?.parse().ok()?; // "max" does not parse: no limit
        let period: f64 = parts.next()?.parse().ok()?;
        (period > 0.0).then(|| quota / period)
    });
    let cpu_usage_usec = read_trimmed(&dir.join("cpu.stat")).and_then(|v| {
        v.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|n| n.trim().parse().ok())
    });
    Ok(Some(CgroupReading {
        memory_limit,
        memory_usage,
        cpu_limit_cores,
        cpu_usage_usec,
    }))
}

/// Space and inodes of the filesystem holding a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FsUsage {
    /// Bytes in the filesystem.
    pub total_bytes: u64,
    /// Bytes in use.
    pub used_bytes: u64,
    /// Bytes an unprivileged process can still write.
    pub available_bytes: u64,
    /// Inodes in the filesystem.
    pub inodes_total: u64,
    /// Inodes in use.
    pub inodes_used: u64,
}

impl FsUsage {
    /// What the volume holds for an unprivileged process: the bytes in use
    /// plus those still available (blocks reserved for root left out). The
    /// volume's percent rules and the reserve file are measured against it.
    pub fn capacity_bytes(&self) -> u64 {
        self.used_bytes + self.available_bytes
    }
}

/// `statvfs(path)`.
pub fn fs_usage(path: &Path) -> io::Result<FsUsage> {
    let s = rustix::fs::statvfs(path)?;
    let frsize = s.f_frsize;
    Ok(FsUsage {
        total_bytes: s.f_blocks * frsize,
        used_bytes: s.f_blocks.saturating_sub(s.f_bfree) * frsize,
        available_bytes: s.f_bavail * frsize,
        inodes_total: s.f_files,
        inodes_used: s.f_files.saturating_sub(s.f_ffree),
    })
}

/// Threads of a process (`Threads:` in `/proc/PID/status`).
pub fn threads(pid: u32) -> io::Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Threads line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_read_this_machine() {
        let own = std::process::id();
        assert!(threads(own).expect("threads") >= 1);
        // Open descriptors are sysinfo's (the sampler reads them there).
        let mut system = sysinfo::System::new().expect("sysinfo");
        let pid = sysinfo::Pid::from_u32(own);
        system.refresh_processes(sysinfo::ProcessesToUpdate::Some(&[pid]), true);
        let fds = system.process(pid).and_then(|p| p.open_files());
        assert!(fds.expect("fds") >= 3, "stdin, stdout, stderr at least");
        let root = fs_usage(Path::new("/")).expect("statvfs /");
        assert!(root.total_bytes > 0 && root.used_bytes <= root.total_bytes);
        assert!(root.inodes_total == 0 || root.inodes_used <= root.inodes_total);
        tcp_states().expect("tcp states");
        // Both ways of counting see the same sockets (give or take those
        // opened or closed in between): this test's own listener at least.
        let _listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let by_netlink = sock_diag::tcp_states().expect("netlink sock_diag");
        let by_proc = tcp_states_from_proc().expect("/proc/net/tcp");
        assert!(by_netlink.get("listen") >= Some(&1), "{by_netlink:?}");
        assert!(by_proc.get("listen") >= Some(&1), "{by_proc:?}");
    }

    #[test]
    fn one_netlink_dump_sees_both_families() {
        const LISTEN: u8 = 10;
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").expect("listen on IPv4");
        // A machine without IPv6 cannot show it; the IPv4 half still holds.
        let v6 = std::net::TcpListener::bind("[::1]:0")
            .inspect_err(|e| eprintln!("no IPv6 listener ({e}): checking IPv4 only"))
            .ok();
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        sock_diag::dump(&mut buf, |socket| seen.push(socket)).expect("netlink sock_diag");
        let port = |l: &std::net::TcpListener| l.local_addr().expect("addr").port();
        let ours = |family: rustix::net::AddressFamily, port: u16| sock_diag::Socket {
            family: family.as_raw() as u8,
            state: LISTEN,
            port,
        };
        assert!(
            seen.contains(&ours(rustix::net::AddressFamily::INET, port(&v4))),
            "{seen:?}"
        );
        if let Some(v6) = &v6 {
            assert!(
                seen.contains(&ours(rustix::net::AddressFamily::INET6, port(v6))),
                "{seen:?}"
            );
        }
    }
}
