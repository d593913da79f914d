//! The MetricsActor: samples the host and the agent process every
//! `TRACE_METRICS_INTERVAL`, stores the sample as metric points (source
//! `host`, OpenTelemetry host-metrics names) and keeps the latest one for
//! `/metrics` and `/v1/status`.
//!
//! `sysinfo` reads CPU, memory, swap, load, network interfaces and
//! processes; [`probes`] reads what it lacks (`/proc/diskstats`,
//! `/proc/net/tcp`, cgroup v2 files, `statvfs` for inodes). A probe that fails
//! is logged once per kind and left out; sampling goes on.
//!
//! The actor runs on its own arbiter: a sample takes milliseconds of blocking
//! reads, which must not hold up HTTP or the store.

pub mod names;
pub mod points;
pub mod probes;
pub mod procs;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;
use slog::{info, warn, Logger};
use sysinfo::{Networks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::records::{Batch, EventRecord, JsonObject, Source, Stamp};
use crate::stats::{ActorName, Stats};
use crate::store::AppendRecords;
use crate::supervise::contain;
use crate::time::now_ns;

use probes::{CgroupReading, DiskCounters, FsUsage};
use procs::{Process, ProcessScan};

/// Settings of the sampler.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    /// Time between samples (`TRACE_METRICS_INTERVAL`).
    pub interval: Duration,
    /// The directory holding the database: its filesystem is watched.
    pub db_dir: PathBuf,
    /// Text the agent's command line contains (`TRACE_AGENT_PROCESS`); `None`
    /// looks for `openclaw`, then `node`.
    pub agent_process: Option<String>,
    /// Stamped on stored points.
    pub agent_id: String,
}

/// CPU use, 0-1 of all cores.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CpuSample {
    /// All cores together.
    pub utilization: f64,
    /// Each core.
    pub per_core: Vec<f64>,
}

/// Memory of the host.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct MemorySample {
    /// Physical memory.
    pub total_bytes: u64,
    /// In use (total less available).
    pub used_bytes: u64,
    /// Available to new work without swapping.
    pub available_bytes: u64,
    /// used / total.
    pub utilization: f64,
    /// Swap space.
    pub swap_total_bytes: u64,
    /// Swap in use.
    pub swap_used_bytes: u64,
}

/// The cgroup (container) limits and use, when the sidecar runs in one.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct CgroupSample {
    /// Memory limit, when set.
    pub memory_limit_bytes: Option<u64>,
    /// Memory in use by the cgroup.
    pub memory_usage_bytes: Option<u64>,
    /// usage / limit, when both are known.
    pub memory_utilization: Option<f64>,
    /// CPU quota in cores, when set.
    pub cpu_limit_cores: Option<f64>,
    /// CPU used over the interval as a share of the quota (or of all cores
    /// when there is none).
    pub cpu_utilization: Option<f64>,
}

/// One watched filesystem.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FilesystemSample {
    /// The path it was read at (`/`, the database's directory).
    pub mountpoint: String,
    /// Space and inodes.
    #[serde(flatten)]
    pub usage: FsUsage,
    /// used / (used + available): what `df` shows.
    pub utilization: f64,
}

/// Block I/O per second over the interval.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct DiskIoSample {
    /// Bytes read per second.
    pub read_bytes_per_second: f64,
    /// Bytes written per second.
    pub write_bytes_per_second: f64,
    /// Reads per second.
    pub reads_per_second: f64,
    /// Writes per second.
    pub writes_per_second: f64,
}

/// One network interface, per second over the interval.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NetworkSample {
    /// Interface name.
    pub device: String,
    /// Bytes received per second.
    pub receive_bytes_per_second: f64,
    /// Bytes sent per second.
    pub transmit_bytes_per_second: f64,
    /// Packets received per second.
    pub receive_packets_per_second: f64,
    /// Packets sent per second.
    pub transmit_packets_per_second: f64,
    /// Receive errors per second.
    pub receive_errors_per_second: f64,
    /// Transmit errors per second.
    pub transmit_errors_per_second: f64,
}

/// A process, briefly.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProcessBrief {
    /// Its pid.
    pub pid: u32,
    /// Its name.
    pub name: String,
    /// CPU over the interval, 0-1 of all cores.
    pub cpu_utilization: f64,
    /// Resident memory.
    pub rss_bytes: u64,
}

/// Processes on the host.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ProcessesSample {
    /// How many.
    pub count: u64,
    /// Zombies: exited, never reaped by their parent.
    pub zombies: Vec<ProcessBrief>,
    /// The five using the most CPU.
    pub top_cpu: Vec<ProcessBrief>,
    /// The five using the most memory.
    pub top_rss: Vec<ProcessBrief>,
}

/// The agent process.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentSample {
    /// Its pid.
    pub pid: u32,
    /// Its name.
    pub name: String,
    /// CPU over the interval, 0-1 of all cores.
    pub cpu_utilization: f64,
    /// Resident memory.
    pub rss_bytes: u64,
    /// Threads.
    pub threads: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Seconds since it started.
    pub uptime_seconds: u64,
}

/// Everything one sample read.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct HostSample {
    /// When, unix ns.
    pub time_ns: i64,
    /// CPU; `None` on the first sample, which has no baseline.
    pub cpu: Option<CpuSample>,
    /// Load averages over 1, 5 and 15 minutes.
    pub load_average: Option<[f64; 3]>,
    /// Memory.
    pub memory: MemorySample,
    /// Container limits, inside a cgroup v2.
    pub cgroup: Option<CgroupSample>,
    /// `/` and the database's filesystem.
    pub filesystems: Vec<FilesystemSample>,
    /// Block I/O; `None` on the first sample.
    pub disk_io: Option<DiskIoSample>,
    /// Network interfaces; rates, so empty on the first sample.
    pub network: Vec<NetworkSample>,
    /// TCP connections by state.
    pub tcp_connections: std::collections::BTreeMap<&'static str, u64>,
    /// Processes.
    pub processes: ProcessesSample,
    /// The agent process, when found.
    pub agent: Option<AgentSample>,
    /// Times the agent's pid changed since the sidecar started.
    pub agent_restarts: u64,
    /// The sidecar itself.
    pub sidecar: Option<ProcessBrief>,
}

impl HostSample {
    /// Conditions an owner should look at.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for fs in &self.filesystems {
            if fs.utilization > 0.8 {
                out.push(format!(
                    "volume {} is {:.0}% full",
                    fs.mountpoint,
                    fs.utilization * 100.0
                ));
            }
        }
        if !self.processes.zombies.is_empty() {
            let names: Vec<String> = self
                .processes
                .zombies
                .iter()
                .map(|z| format!("{} ({})", z.name, z.pid))
                .collect();
            out.push(format!(
                "{} zombie processes: {}",
                names.len(),
                names.join(", ")
            ));
        }
        let memory = self
            .cgroup
            .and_then(|c| c.memory_utilization)
            .unwrap_or(self.memory.utilization);
        if memory > 0.9 {
            out.push(format!("memory is {:.0}% used", memory * 100.0));
        }
        if self.agent.is_none() {
            out.push("agent process not found".into());
        }
        out
    }
}

/// The latest sample, shared with the HTTP handlers.
#[derive(Debug, Clone, Default)]
pub struct LatestSample(Arc<RwLock<Option<Arc<HostSample>>>>);

impl LatestSample {
    /// The latest sample, if one was taken.
    pub fn get(&self) -> Option<Arc<HostSample>> {
        self.0
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn set(&self, sample: HostSample) {
        let sample = Some(Arc::new(sample));
        match self.0.write() {
            Ok(mut g) => *g = sample,
            Err(p) => *p.into_inner() = sample,
        }
    }
}

/// Take a sample now (also what the timer sends).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Sample;

/// What the sampler remembers between samples.
struct Sampler {
    system: System,
    networks: Option<Networks>,
    processes: ProcessScan,
    last: Option<(Instant, DiskCounters, Option<CgroupReading>)>,
    agent_pid: Option<u32>,
    agent_restarts: u64,
    /// Probe kinds whose failure was logged already.
    failed: HashSet<&'static str>,
}

/// The host sampler actor.
pub struct MetricsActor {
    settings: MetricsSettings,
    store: Recipient<AppendRecords>,
    latest: LatestSample,
    stats: Arc<Stats>,
    log: Logger,
    /// `None` until started (and after a restart, rebuilt).
    sampler: Option<Sampler>,
    #[cfg(feature = "fault-injection")]
    fault: Option<crate::fault::FaultKind>,
}

impl MetricsActor {
    /// A sampler that stores through `store` and publishes to `latest`.
    pub fn new(
        settings: MetricsSettings,
        store: Recipient<AppendRecords>,
        latest: LatestSample,
        stats: Arc<Stats>,
        log: Logger,
    ) -> Self {
        MetricsActor {
            settings,
            store,
            latest,
            stats,
            log,
            sampler: None,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }

    fn sample(&mut self, ctx: &mut Context<Self>) {
        #[cfg(feature = "fault-injection")]
        let fault = self.fault.take();
        let (settings, log) = (&self.settings, &self.log);
        if self.sampler.is_none() {
            match Sampler::new() {
                Ok(s) => self.sampler = Some(s),
                Err(e) => {
                    warn!(log, "sysinfo could not start; retrying at the next sample"; "error" => e.to_string());
                    return;
                }
            }
        }
        let Some(sampler) = self.sampler.as_mut() else {
            return;
        };
        let taken = contain(ActorName::Metrics, &self.stats, log, ctx, || {
            #[cfg(feature = "fault-injection")]
            if let Some(fault) = fault {
                fault.strike();
            }
            sampler.take(settings, log)
        });
        let Ok((sample, restarted)) = taken else {
            return;
        };
        let mut batches = vec![Batch::MetricPoints(points::points(&sample))];
        if let Some((old, new)) = restarted {
            warn!(self.log, "agent process restarted"; "old_pid" => old, "new_pid" => new);
            let mut attributes = JsonObject::new();
            attributes.insert("old_pid".into(), old.into());
            attributes.insert("new_pid".into(), new.into());
            batches.push(Batch::Events(vec![EventRecord {
                time_ns: Some(sample.time_ns),
                name: "agent.restarted".into(),
                severity: "warning".into(),
                attributes: Some(attributes),
                ..EventRecord::default()
            }]));
        }
        self.latest.set(sample);
        give_back_free_memory();
        let stamp = Stamp {
            agent_id: self.settings.agent_id.clone(),
            received_ns: now_ns(),
            source: Source::Host,
            openclaw_metric_prefix: crate::llm_view::DEFAULT_METRIC_PREFIX.into(),
        };
        let (log, stats) = (self.log.clone(), Arc::clone(&self.stats));
        self.store
            .send(AppendRecords {
                position: None,
                batches: Arc::new(batches),
                stamp,
            })
            .into_actor(self)
            .map(move |result, _, _| {
                let why = match result {
                    Ok(Ok(_)) => return,
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                // Counted as dropped; the log line is at debug while the
                // disk is full, where the store already said so once.
                stats.host_sample_dropped();
                if stats.disk_full() {
                    slog::debug!(log, "host sample not stored"; "error" => why);
                } else {
                    warn!(log, "host sample not stored"; "error" => why);
                }
            })
            .spawn(ctx);
    }
}

impl Actor for MetricsActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(self.log, "sampling the host"; "interval_ms" => self.settings.interval.as_millis() as u64);
        // A first sample now sets the baselines that rates need.
        ctx.notify(Sample);
        ctx.run_interval(self.settings.interval, |_, ctx| ctx.notify(Sample));
    }
}

impl Supervised for MetricsActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.stats.restarted(ActorName::Metrics);
        warn!(self.log, "metrics actor restarting");
        self.sampler = None;
    }
}

impl Handler<Sample> for MetricsActor {
    type Result = ();

    fn handle(&mut self, _: Sample, ctx: &mut Context<Self>) {
        self.sample(ctx);
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<crate::fault::InjectFault> for MetricsActor {
    type Result = ();

    fn handle(&mut self, msg: crate::fault::InjectFault, _ctx: &mut Context<Self>) {
        self.fault = Some(msg.0);
    }
}

/// Returns the allocator's free pages to the system. A sample allocates and
/// frees a few hundred kB (sysinfo's reads, the points); glibc keeps freed
/// memory inside its heap, where it stays in the RSS until reused. Called
/// once a sample: walking the free lists of a small idle heap is cheap.
fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory, under glibc's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The sidecar's own process name, never taken for the agent.
const SIDECAR_NAME: &str = "openclaw-trace";

impl Sampler {
    fn new() -> Result<Sampler, sysinfo::Error> {
        Ok(Sampler {
            system: System::new()?,
            networks: Networks::new_with_refreshed_list().ok(),
            processes: ProcessScan::new(),
            last: None,
            agent_pid: None,
            agent_restarts: 0,
            failed: HashSet::new(),
        })
    }

    /// Logs the first failure of each probe kind; `None` when it failed.
    fn probe<T, E: std::fmt::Display>(
        &mut self,
        log: &Logger,
        kind: &'static str,
        r: Result<T, E>,
    ) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                if self.failed.insert(kind) {
                    warn!(log, "host probe failed; leaving it out"; "probe" => kind, "error" => e.to_string());
                }
                None
            }
        }
    }

    /// Takes a sample; also says when the agent's pid changed (old, new).
    fn take(
        &mut self,
        settings: &MetricsSettings,
        log: &Logger,
    ) -> (HostSample, Option<(u32, u32)>) {
        let now = Instant::now();
        // Seconds since the last sample: `None` on the first, which sets the
        // baselines that rates need.
        let elapsed = self
            .last
            .as_ref()
            .map(|(t, ..)| now.duration_since(*t).as_secs_f64());
        self.refresh_system();
        let cores = self.system.cpus().len().max(1);

        let cpu = elapsed.map(|_| self.cpu_sample());
        let load = System::load_average();
        let load_average = self
            .probe(log, "load_average", load)
            .map(|l| [l.one, l.five, l.fifteen]);
        let memory = self.memory_sample();
        let cgroup_reading = probes::cgroup();
        let cgroup_reading = self.probe(log, "cgroup", cgroup_reading).flatten();
        let previous_cgroup = self.last.as_ref().and_then(|(_, _, c)| *c);
        let cgroup =
            cgroup_reading.map(|c| cgroup_sample(&c, previous_cgroup.as_ref(), elapsed, cores));
        let filesystems = self.filesystems(settings, log);
        let disks = probes::disk_counters();
        let disks = self.probe(log, "diskstats", disks);
        let previous_disks = self.last.as_ref().map(|(_, d, _)| d);
        let disk_io = disk_io_rates(disks.as_ref(), previous_disks, elapsed);
        let network = self.network_rates(elapsed);
        let tcp = probes::tcp_states();
        let tcp_connections = self.probe(log, "tcp", tcp).unwrap_or_default();

        let scan = self.processes.scan(elapsed, cores);
        let processes = match self.probe(log, "processes", scan) {
            Some(()) => {
                let all: Vec<&Process> = self.processes.processes().collect();
                processes_sample(&all)
            }
            None => ProcessesSample::default(),
        };
        let own_pid = std::process::id();
        let all: Vec<&Process> = self.processes.processes().collect();
        let sidecar = all.iter().find(|p| p.pid == own_pid).map(|p| brief(p));
        let agent = find_agent(&all, settings.agent_process.as_deref(), own_pid)
            .map(|p| agent_sample(&mut self.system, p));
        let restarted = self.note_agent(agent.as_ref());

        self.last = Some((now, disks.unwrap_or_default(), cgroup_reading));
        let sample = HostSample {
            time_ns: now_ns(),
            cpu,
            load_average,
            memory,
            cgroup,
            filesystems,
            disk_io,
            network,
            tcp_connections,
            processes,
            agent,
            agent_restarts: self.agent_restarts,
            sidecar,
        };
        (sample, restarted)
    }

    /// Refreshes what sysinfo reads: CPU times and memory. Processes are
    /// read by [`ProcessScan`], with one file each.
    fn refresh_system(&mut self) {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
    }

    /// CPU use since the last refresh, of all cores and of each.
    fn cpu_sample(&self) -> CpuSample {
        CpuSample {
            utilization: f64::from(self.system.global_cpu_usage()) / 100.0,
            per_core: self
                .system
                .cpus()
                .iter()
                .map(|c| f64::from(c.usage()) / 100.0)
                .collect(),
        }
    }

    /// Memory and swap of the host.
    fn memory_sample(&self) -> MemorySample {
        let total = self.system.total_memory();
        let available = self.system.available_memory();
        let used = total.saturating_sub(available);
        MemorySample {
            total_bytes: total,
            used_bytes: used,
            available_bytes: available,
            utilization: if total > 0 {
                used as f64 / total as f64
            } else {
                0.0
            },
            swap_total_bytes: self.system.total_swap(),
            swap_used_bytes: self.system.used_swap(),
        }
    }

    /// Space and inodes of `/` and of the database's directory (once when
    /// they are the same path).
    fn filesystems(&mut self, settings: &MetricsSettings, log: &Logger) -> Vec<FilesystemSample> {
        let mut filesystems: Vec<FilesystemSample> = Vec::new();
        for path in [PathBuf::from("/"), settings.db_dir.clone()] {
            let label = path.display().to_string();
            if filesystems.iter().any(|f| f.mountpoint == label) {
                continue;
            }
            let usage = probes::fs_usage(&path);
            if let Some(usage) = self.probe(log, "filesystem", usage) {
                let denominator = usage.capacity_bytes().max(1) as f64;
                filesystems.push(FilesystemSample {
                    mountpoint: label,
                    utilization: usage.used_bytes as f64 / denominator,
                    usage,
                });
            }
        }
        filesystems
    }

    /// Each interface's traffic per second since the last refresh, by name;
    /// empty on the first sample.
    fn network_rates(&mut self, elapsed: Option<f64>) -> Vec<NetworkSample> {
        let Some(networks) = self.networks.as_mut() else {
            return Vec::new();
        };
        networks.refresh(true);
        let Some(secs) = elapsed.filter(|s| *s > 0.0) else {
            return Vec::new();
        };
        let mut network: Vec<NetworkSample> = networks
            .iter()
            .map(|(name, data)| NetworkSample {
                device: name.to_string_lossy().into_owned(),
                receive_bytes_per_second: data.received() as f64 / secs,
                transmit_bytes_per_second: data.transmitted() as f64 / secs,
                receive_packets_per_second: data.packets_received() as f64 / secs,
                transmit_packets_per_second: data.packets_transmitted() as f64 / secs,
                receive_errors_per_second: data.errors_on_received() as f64 / secs,
                transmit_errors_per_second: data.errors_on_transmitted() as f64 / secs,
            })
            .collect();
        network.sort_by(|a, b| a.device.cmp(&b.device));
        network
    }

    /// Remembers the agent's pid; says (old, new) when it changed.
    fn note_agent(&mut self, agent: Option<&AgentSample>) -> Option<(u32, u32)> {
        let new = agent?.pid;
        let old = self.agent_pid.replace(new);
        match old {
            Some(old) if old != new => {
                self.agent_restarts += 1;
                Some((old, new))
            }
            _ => None,
        }
    }
}

/// How many processes, the zombies, and the five using the most CPU and the
/// most memory. Only those few are described.
fn processes_sample(all: &[&Process]) -> ProcessesSample {
    let mut zombies: Vec<ProcessBrief> =
        all.iter().filter(|p| p.zombie).map(|p| brief(p)).collect();
    zombies.sort_by_key(|z| z.pid);
    let top_cpu = top(all, |a, b| {
        b.cpu_utilization
            .total_cmp(&a.cpu_utilization)
            .then(a.pid.cmp(&b.pid))
    });
    let top_rss = top(all, |a, b| {
        b.rss_bytes.cmp(&a.rss_bytes).then(a.pid.cmp(&b.pid))
    });
    ProcessesSample {
        count: all.len() as u64,
        zombies,
        top_cpu: top_cpu.into_iter().map(brief).collect(),
        top_rss: top_rss.into_iter().map(brief).collect(),
    }
}

/// The agent process, described; its open descriptors are sysinfo's, read
/// for this one process.
fn agent_sample(system: &mut System, p: &Process) -> AgentSample {
    let pid = Pid::from_u32(p.pid);
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing(),
    );
    AgentSample {
        pid: p.pid,
        name: p.name.clone(),
        cpu_utilization: p.cpu_utilization,
        rss_bytes: p.rss_bytes,
        threads: probes::threads(p.pid).ok(),
        open_fds: system
            .process(pid)
            .and_then(|p| p.open_files())
            .map(|n| n as u64),
        uptime_seconds: procs::uptime_seconds()
            .map(|up| up.saturating_sub(p.start_seconds))
            .unwrap_or(0),
    }
}

/// The cgroup's limits and use; its CPU use is a rate over the interval, so
/// `None` without a previous reading.
fn cgroup_sample(
    reading: &CgroupReading,
    previous: Option<&CgroupReading>,
    elapsed: Option<f64>,
    cores: usize,
) -> CgroupSample {
    CgroupSample {
        memory_limit_bytes: reading.memory_limit,
        memory_usage_bytes: reading.memory_usage,
        memory_utilization: reading
            .memory_limit
            .zip(reading.memory_usage)
            .map(|(l, u)| u as f64 / l as f64),
        cpu_limit_cores: reading.cpu_limit_cores,
        cpu_utilization: elapsed
            .zip(reading.cpu_usage_usec)
            .zip(previous.and_then(|p| p.cpu_usage_usec))
            .map(|((secs, now_us), before_us)| {
                let used = now_us.saturating_sub(before_us) as f64 / 1e6;
                used / secs / reading.cpu_limit_cores.unwrap_or(cores as f64)
            }),
    }
}

/// Block I/O per second between two readings of the counters.
fn disk_io_rates(
    now: Option<&DiskCounters>,
    before: Option<&DiskCounters>,
    elapsed: Option<f64>,
) -> Option<DiskIoSample> {
    let (now, before, secs) = (now?, before?, elapsed.filter(|s| *s > 0.0)?);
    let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
    Some(DiskIoSample {
        read_bytes_per_second: rate(now.read_bytes, before.read_bytes),
        write_bytes_per_second: rate(now.write_bytes, before.write_bytes),
        reads_per_second: rate(now.reads, before.reads),
        writes_per_second: rate(now.writes, before.writes),
    })
}

/// A process, briefly.
fn brief(p: &Process) -> ProcessBrief {
    ProcessBrief {
        pid: p.pid,
        name: p.name.clone(),
        cpu_utilization: p.cpu_utilization,
        rss_bytes: p.rss_bytes,
    }
}

/// How many processes the top lists keep.
const TOP: usize = 5;

/// The first [`TOP`] of `all` in `order`.
fn top<'a>(
    all: &[&'a Process],
    order: impl Fn(&Process, &Process) -> std::cmp::Ordering,
) -> Vec<&'a Process> {
    let mut sorted = all.to_vec();
    if sorted.len() > TOP {
        sorted.select_nth_unstable_by(TOP - 1, |a, b| order(a, b));
        sorted.truncate(TOP);
    }
    sorted.sort_by(|a, b| order(a, b));
    sorted
}

/// The agent: the oldest process whose command line contains `pattern`, or
/// by default `openclaw` and then `node`; never a sidecar (this one or
/// another instance).
fn find_agent<'a>(all: &[&'a Process], pattern: Option<&str>, own_pid: u32) -> Option<&'a Process> {
    let matching = |needle: &str| {
        all.iter()
            .copied()
            .filter(|p| {
                p.pid != own_pid
                    && !p.zombie
                    && p.name != SIDECAR_NAME
                    && !p.cmd.first().is_some_and(|a| a.ends_with(SIDECAR_NAME))
                    && (p.name.contains(needle) || p.cmd.iter().any(|a| a.contains(needle)))
            })
            .min_by_key(|p| (p.start_seconds, p.pid))
    };
    match pattern {
        Some(pattern) => matching(pattern),
        None => matching("openclaw").or_else(|| matching("node")),
    }
}
