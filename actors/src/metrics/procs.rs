//! The process table, read from `/proc` with one file a process.
//!
//! The sampler needs, of each process, its name, state, CPU time, resident
//! memory and start time (all in `/proc/PID/stat`), and the command line of
//! the few it might take for the agent. sysinfo reads three files a process
//! (`status`, `stat` and `statm`, each also `fstat`-ed), plus `cmdline` on
//! every scan for each kernel thread (whose command line is empty), about 22
//! system calls a process; this reads `stat` alone (3 calls), and a command
//! line once per process. On a host with 110 processes that was most of the
//! idle CPU of the sidecar.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};

/// `PF_KTHREAD` in the flags of `/proc/PID/stat`: a kernel thread, which has
/// no command line.
const PF_KTHREAD: u64 = 0x0020_0000;

/// One process as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatLine<'a> {
    /// Its pid.
    pub pid: u32,
    /// `comm`: the executable's name, at most 15 bytes.
    pub name: &'a [u8],
    /// The state letter (`R`, `S`, `Z`...).
    pub state: u8,
    /// The kernel's flags for it.
    pub flags: u64,
    /// User and system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// When it started, in clock ticks after boot.
    pub start_ticks: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

/// Parses `/proc/PID/stat`. The name is in parentheses and may itself hold
/// spaces and parentheses, so it ends at the last `)`.
pub fn parse_stat(text: &[u8]) -> Option<StatLine<'_>> {
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let pid = std::str::from_utf8(&text[..open])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let name = &text[open + 1..close];
    // Fields after the name, counted from 3 as proc(5) does.
    let mut fields = text[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let mut field = |n: usize| -> Option<&[u8]> { fields.nth(n) };
    let state = *field(0)?.first()?; // 3
    let flags = number(field(5)?)?; // 9
    let utime = number(field(4)?)?; // 14
    let stime = number(field(0)?)?; // 15
    let start_ticks = number(field(6)?)?; // 22
    let rss_pages = number(field(1)?)?; // 24
    Some(StatLine {
        pid,
        name,
        state,
        flags,
        cpu_ticks: utime.saturating_add(stime),
        start_ticks,
        rss_pages,
    })
}

fn number(field: &[u8]) -> Option<u64> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// A process as the last scan saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    /// Its pid.
    pub pid: u32,
    /// Its name (`comm`).
    pub name: String,
    /// Exited, never reaped by its parent.
    pub zombie: bool,
    /// CPU time over the interval before the scan as a share of all cores;
    /// 0 on the first scan that sees it.
    pub cpu_utilization: f64,
    /// Resident memory.
    pub rss_bytes: u64,
    /// Seconds after boot when it started.
    pub start_seconds: u64,
    /// Its command line (empty for a kernel thread or a zombie).
    pub cmd: Vec<String>,
    /// What tells a new process with a reused pid from the old one.
    start_ticks: u64,
    /// CPU time at the scan, in clock ticks.
    cpu_ticks: u64,
}

/// Scans `/proc`; keeps each process from one scan to the next, for its CPU
/// time and its command line.
#[derive(Debug)]
pub struct ProcessScan {
    processes: HashMap<u32, Process>,
    buf: Vec<u8>,
    ticks_per_second: u64,
    page_size: u64,
}

impl Default for ProcessScan {
    fn default() -> Self {
        ProcessScan::new()
    }
}

impl ProcessScan {
    /// A scanner that has seen nothing yet.
    pub fn new() -> ProcessScan {
        ProcessScan {
            processes: HashMap::new(),
            buf: Vec::with_capacity(512),
            ticks_per_second: rustix::param::clock_ticks_per_second().max(1),
            page_size: rustix::param::page_size() as u64,
        }
    }

    /// The processes the last scan saw, in no order.
    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        self.processes.values()
    }

    /// Reads every process now. `elapsed` is the time since the last scan,
    /// `None` on the first (every CPU share is then 0); `cores` divides CPU
    /// time.
    pub fn scan(&mut self, elapsed: Option<f64>, cores: usize) -> io::Result<()> {
        let capacity = elapsed
            .filter(|s| *s > 0.0)
            .map(|s| s * self.ticks_per_second as f64 * cores.max(1) as f64);
        let mut now = HashMap::with_capacity(self.processes.len() + 8);
        for entry in fs::read_dir("/proc")? {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // A process may end between the listing and the read.
            if read_into(&format!("/proc/{pid}/stat"), &mut self.buf).is_err() {
                continue;
            }
            let Some(stat) = parse_stat(&self.buf) else {
                continue;
            };
            let before = self
                .processes
                .remove(&pid)
                .filter(|p| p.start_ticks == stat.start_ticks);
            let cpu_utilization = match (&before, capacity) {
                (Some(before), Some(capacity)) => {
                    let used = stat.cpu_ticks.saturating_sub(before.cpu_ticks) as f64;
                    (used / capacity).min(1.0)
                }
                _ => 0.0,
            };
            let kernel = stat.flags & PF_KTHREAD != 0;
            let name = String::from_utf8_lossy(stat.name);
            let mut process = before.unwrap_or_else(|| Process {
                pid,
                name: String::new(),
                zombie: false,
                cpu_utilization: 0.0,
                rss_bytes: 0,
                start_seconds: stat.start_ticks / self.ticks_per_second,
                cmd: Vec::new(),
                start_ticks: stat.start_ticks,
                cpu_ticks: 0,
            });
            if process.name != name {
                process.name = name.into_owned();
            }
            process.zombie = stat.state == b'Z';
            process.cpu_utilization = cpu_utilization;
            process.rss_bytes = stat.rss_pages.saturating_mul(self.page_size);
            process.cpu_ticks = stat.cpu_ticks;
            // A command line is read once; again only while it is empty (as
            // sysinfo did), but never for a kernel thread, which has none.
            if process.cmd.is_empty() && !kernel {
                process.cmd = read_cmdline(pid, &mut self.buf);
            }
            now.insert(pid, process);
        }
        // Processes not seen this time are gone.
        self.processes = now;
        Ok(())
    }
}

/// Reads a whole small file into `buf` with plain reads (no `fstat` to size
/// it first, as `fs::read` does).
fn read_into(path: &str, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    let mut file = File::open(path)?;
    let mut chunk = [0u8; 1024];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The arguments of a process; empty when it has none or is gone.
fn read_cmdline(pid: u32, buf: &mut Vec<u8>) -> Vec<String> {
    if read_into(&format!("/proc/{pid}/cmdline"), buf).is_err() {
        return Vec::new();
    }
    buf.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Seconds since boot (`/proc/uptime`).
pub fn uptime_seconds() -> io::Result<u64> {
    let text = fs::read_to_string("/proc/uptime")?;
    text.split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .map(|s| s as u64)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no uptime"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_odd_names() {
        let line = b"4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
            7 3 0 0 20 0 1 0 12345 1000000 250 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0\n";
        let stat = parse_stat(line).expect("parses");
        assert_eq!(stat.pid, 4242);
        assert_eq!(stat.name, b"a (b) c");
        assert_eq!(stat.state, b'S');
        assert_eq!(stat.flags, 4_194_560);
        assert_eq!(stat.cpu_ticks, 10);
        assert_eq!(stat.start_ticks, 12_345);
        assert_eq!(stat.rss_pages, 250);
        assert_eq!(parse_stat(b"12 (x"), None);
        assert_eq!(parse_stat(b"12 (x) S 1"), None);
    }

    #[test]
    fn a_scan_finds_this_process_and_its_command_line() {
        let mut scan = ProcessScan::new();
        let own = std::process::id();
        scan.scan(None, 2).expect("scan");
        let me = |scan: &ProcessScan| {
            scan.processes()
                .find(|p| p.pid == own)
                .cloned()
                .expect("this process")
        };
        let first = me(&scan);
        assert!(first.rss_bytes > 0);
        assert_eq!(first.cpu_utilization, 0.0, "no baseline yet");
        assert!(!first.zombie);
        assert!(!first.cmd.is_empty(), "a test binary has a command line");
        // Burn a little CPU, then the second scan sees it.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i ^ (x >> 3));
        }
        std::hint::black_box(x);
        scan.scan(Some(1.0), 1).expect("scan");
        let second = me(&scan);
        assert!((0.0..=1.0).contains(&second.cpu_utilization));
        assert!(second.cpu_ticks >= first.cpu_ticks);
        assert!(uptime_seconds().expect("uptime") >= second.start_seconds);
        // Kernel threads are listed, without a command line.
        assert!(scan.processes().count() > 1);
    }
}
