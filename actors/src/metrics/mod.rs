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

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;
use slog::{info, warn, Logger};
use sysinfo::{
    Networks, Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind,
};

use crate::records::{Batch, EventRecord, JsonObject, Source, Stamp};
use crate::stats::{ActorName, Stats};
use crate::store::AppendRecords;
use crate::supervise::contain;
use crate::time::now_ns;

use probes::{CgroupReading, DiskCounters, FsUsage};

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
        let stamp = Stamp {
            agent_id: self.settings.agent_id.clone(),
            received_ns: now_ns(),
            source: Source::Host,
        };
        let (log, stats) = (self.log.clone(), Arc::clone(&self.stats));
        self.store
            .send(AppendRecords {
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

/// The sidecar's own process name, never taken for the agent.
const SIDECAR_NAME: &str = "openclaw-trace";

impl Sampler {
    fn new() -> Result<Sampler, sysinfo::Error> {
        Ok(Sampler {
            system: System::new()?,
            networks: Networks::new_with_refreshed_list().ok(),
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
        let elapsed = self
            .last
            .as_ref()
            .map(|(t, ..)| now.duration_since(*t).as_secs_f64());
        let cores = self.system.cpus().len().max(1);

        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .with_cmd(UpdateKind::OnlyIfNotSet)
                .without_tasks(),
        );
        let cores = self.system.cpus().len().max(cores);

        let cpu = elapsed.map(|_| CpuSample {
            utilization: f64::from(self.system.global_cpu_usage()) / 100.0,
            per_core: self
                .system
                .cpus()
                .iter()
                .map(|c| f64::from(c.usage()) / 100.0)
                .collect(),
        });
        let load = System::load_average();
        let load_average = self
            .probe(log, "load_average", load)
            .map(|l| [l.one, l.five, l.fifteen]);
        let total = self.system.total_memory();
        let available = self.system.available_memory();
        let memory = MemorySample {
            total_bytes: total,
            used_bytes: total.saturating_sub(available),
            available_bytes: available,
            utilization: if total > 0 {
                total.saturating_sub(available) as f64 / total as f64
            } else {
                0.0
            },
            swap_total_bytes: self.system.total_swap(),
            swap_used_bytes: self.system.used_swap(),
        };

        let cgroup_reading = probes::cgroup();
        let cgroup_reading = self.probe(log, "cgroup", cgroup_reading).flatten();
        let previous_cgroup = self.last.as_ref().and_then(|(_, _, c)| *c);
        let cgroup = cgroup_reading.map(|c| CgroupSample {
            memory_limit_bytes: c.memory_limit,
            memory_usage_bytes: c.memory_usage,
            memory_utilization: c
                .memory_limit
                .zip(c.memory_usage)
                .map(|(l, u)| u as f64 / l as f64),
            cpu_limit_cores: c.cpu_limit_cores,
            cpu_utilization: elapsed
                .zip(c.cpu_usage_usec)
                .zip(previous_cgroup.and_then(|p| p.cpu_usage_usec))
                .map(|((secs, now_us), before_us)| {
                    let used = now_us.saturating_sub(before_us) as f64 / 1e6;
                    used / secs / c.cpu_limit_cores.unwrap_or(cores as f64)
                }),
        });

        let mut filesystems = Vec::new();
        for path in [PathBuf::from("/"), settings.db_dir.clone()] {
            let label = path.display().to_string();
            if filesystems
                .iter()
                .any(|f: &FilesystemSample| f.mountpoint == label)
            {
                continue;
            }
            let usage = probes::fs_usage(&path);
            if let Some(usage) = self.probe(log, "filesystem", usage) {
                let denominator = (usage.used_bytes + usage.available_bytes).max(1) as f64;
                filesystems.push(FilesystemSample {
                    mountpoint: label,
                    utilization: usage.used_bytes as f64 / denominator,
                    usage,
                });
            }
        }

        let disks = probes::disk_counters();
        let disks = self.probe(log, "diskstats", disks);
        let disk_io = match (disks, &self.last, elapsed) {
            (Some(now_c), Some((_, before, _)), Some(secs)) if secs > 0.0 => Some(DiskIoSample {
                read_bytes_per_second: now_c.read_bytes.saturating_sub(before.read_bytes) as f64
                    / secs,
                write_bytes_per_second: now_c.write_bytes.saturating_sub(before.write_bytes) as f64
                    / secs,
                reads_per_second: now_c.reads.saturating_sub(before.reads) as f64 / secs,
                writes_per_second: now_c.writes.saturating_sub(before.writes) as f64 / secs,
            }),
            _ => None,
        };

        let mut network = Vec::new();
        if let Some(networks) = self.networks.as_mut() {
            networks.refresh(true);
            if let Some(secs) = elapsed.filter(|s| *s > 0.0) {
                for (name, data) in networks.iter() {
                    network.push(NetworkSample {
                        device: name.to_string_lossy().into_owned(),
                        receive_bytes_per_second: data.received() as f64 / secs,
                        transmit_bytes_per_second: data.transmitted() as f64 / secs,
                        receive_packets_per_second: data.packets_received() as f64 / secs,
                        transmit_packets_per_second: data.packets_transmitted() as f64 / secs,
                        receive_errors_per_second: data.errors_on_received() as f64 / secs,
                        transmit_errors_per_second: data.errors_on_transmitted() as f64 / secs,
                    });
                }
                network.sort_by(|a, b| a.device.cmp(&b.device));
            }
        }
        let tcp = probes::tcp_states();
        let tcp_connections = self.probe(log, "tcp", tcp).unwrap_or_default();

        // Processes. sysinfo's per-process CPU is a share of one core.
        let first = elapsed.is_none();
        let brief = |p: &sysinfo::Process| ProcessBrief {
            pid: p.pid().as_u32(),
            name: p.name().to_string_lossy().into_owned(),
            cpu_utilization: if first {
                0.0
            } else {
                f64::from(p.cpu_usage()) / 100.0 / cores as f64
            },
            rss_bytes: p.memory(),
        };
        let all: Vec<&sysinfo::Process> = self.system.processes().values().collect();
        let zombies = all
            .iter()
            .filter(|p| p.status() == ProcessStatus::Zombie)
            .map(|p| brief(p))
            .collect();
        let mut by_cpu: Vec<ProcessBrief> = all.iter().map(|p| brief(p)).collect();
        by_cpu.sort_by(|a, b| {
            b.cpu_utilization
                .total_cmp(&a.cpu_utilization)
                .then(a.pid.cmp(&b.pid))
        });
        let mut by_rss = by_cpu.clone();
        by_rss.sort_by(|a, b| b.rss_bytes.cmp(&a.rss_bytes).then(a.pid.cmp(&b.pid)));
        by_cpu.truncate(5);
        by_rss.truncate(5);
        let processes = ProcessesSample {
            count: all.len() as u64,
            zombies,
            top_cpu: by_cpu,
            top_rss: by_rss,
        };
        let own_pid = std::process::id();
        let sidecar = self.system.process(Pid::from_u32(own_pid)).map(brief);

        let agent_proc = find_agent(&all, settings.agent_process.as_deref(), own_pid);
        let agent = agent_proc.map(|p| {
            let pid = p.pid().as_u32();
            AgentSample {
                pid,
                name: p.name().to_string_lossy().into_owned(),
                cpu_utilization: brief(p).cpu_utilization,
                rss_bytes: p.memory(),
                threads: probes::threads(pid).ok(),
                open_fds: probes::open_fds(pid).ok(),
                uptime_seconds: p.run_time(),
            }
        });
        let restarted = match (self.agent_pid, agent.as_ref().map(|a| a.pid)) {
            (Some(old), Some(new)) if old != new => {
                self.agent_restarts += 1;
                Some((old, new))
            }
            _ => None,
        };
        if let Some(a) = &agent {
            self.agent_pid = Some(a.pid);
        }

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
}

/// The agent: the oldest process whose command line contains `pattern`, or
/// by default `openclaw` and then `node`; never a sidecar (this one or
/// another instance).
fn find_agent<'a>(
    all: &[&'a sysinfo::Process],
    pattern: Option<&str>,
    own_pid: u32,
) -> Option<&'a sysinfo::Process> {
    let matching = |needle: &str| {
        all.iter()
            .copied()
            .filter(|p| {
                p.pid().as_u32() != own_pid
                    && p.status() != ProcessStatus::Zombie
                    && p.name().to_string_lossy() != SIDECAR_NAME
                    && !p
                        .cmd()
                        .first()
                        .is_some_and(|a| a.to_string_lossy().ends_with(SIDECAR_NAME))
                    && (p.name().to_string_lossy().contains(needle)
                        || p.cmd().iter().any(|a| a.to_string_lossy().contains(needle)))
            })
            .min_by_key(|p| (p.start_time(), p.pid().as_u32()))
    };
    match pattern {
        Some(pattern) => matching(pattern),
        None => matching("openclaw").or_else(|| matching("node")),
    }
}
