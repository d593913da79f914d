//! A host sample as metric points, named as the OpenTelemetry host-metrics
//! receiver names them (COMPAT.md section 6) so a pushed stream lands in
//! existing dashboards. Rates (disk, network) are stored as gauges per
//! second (`By/s`, `{packets}/s`), utilizations as ratios 0-1.

use serde_json::Value;

use super::{
    names, CgroupSample, CpuSample, DiskIoSample, FilesystemSample, HostSample, MemorySample,
    NetworkSample,
};
use crate::records::{JsonObject, MetricKind, MetricPoint};

/// Collects points that share a timestamp.
struct Points {
    time_ns: i64,
    out: Vec<MetricPoint>,
}

impl Points {
    fn add(&mut self, name: &str, unit: &str, value: f64, attrs: &[(&str, &str)]) {
        let attributes: JsonObject = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        self.out.push(MetricPoint {
            time_ns: Some(self.time_ns),
            start_time_ns: None,
            name: name.into(),
            value: Some(value).filter(|v| v.is_finite()),
            unit: Some(unit.into()),
            kind: MetricKind::Gauge,
            temporality: None,
            monotonic: None,
            data: None,
            attributes: (!attributes.is_empty()).then_some(attributes),
            origin: None,
        });
    }
}

/// Every point of `sample`.
pub fn points(sample: &HostSample) -> Vec<MetricPoint> {
    let mut p = Points {
        time_ns: sample.time_ns,
        out: Vec::with_capacity(64),
    };
    if let Some(cpu) = &sample.cpu {
        cpu_points(&mut p, cpu);
    }
    if let Some([one, five, fifteen]) = sample.load_average {
        p.add(names::SYSTEM_CPU_LOAD_AVERAGE_1M, "{thread}", one, &[]);
        p.add(names::SYSTEM_CPU_LOAD_AVERAGE_5M, "{thread}", five, &[]);
        p.add(names::SYSTEM_CPU_LOAD_AVERAGE_15M, "{thread}", fifteen, &[]);
    }
    memory_points(&mut p, &sample.memory);
    if let Some(c) = &sample.cgroup {
        cgroup_points(&mut p, c);
    }
    for fs in &sample.filesystems {
        filesystem_points(&mut p, fs);
    }
    if let Some(io) = &sample.disk_io {
        disk_io_points(&mut p, io);
    }
    for n in &sample.network {
        network_points(&mut p, n);
    }
    process_points(&mut p, sample);
    p.out
}

/// CPU busy over all cores and per core.
fn cpu_points(p: &mut Points, cpu: &CpuSample) {
    p.add(names::SYSTEM_CPU_UTILIZATION, "1", cpu.utilization, &[]);
    for (i, core) in cpu.per_core.iter().enumerate() {
        p.add(
            names::SYSTEM_CPU_UTILIZATION,
            "1",
            *core,
            &[("cpu", &format!("cpu{i}"))],
        );
    }
}

/// Physical memory and swap.
fn memory_points(p: &mut Points, m: &MemorySample) {
    p.add(names::SYSTEM_MEMORY_LIMIT, "By", m.total_bytes as f64, &[]);
    p.add(
        names::SYSTEM_MEMORY_USAGE,
        "By",
        m.used_bytes as f64,
        &[("state", "used")],
    );
    p.add(
        names::SYSTEM_MEMORY_USAGE,
        "By",
        m.available_bytes as f64,
        &[("state", "available")],
    );
    p.add(
        names::SYSTEM_MEMORY_UTILIZATION,
        "1",
        m.utilization,
        &[("state", "used")],
    );
    p.add(
        names::SYSTEM_PAGING_USAGE,
        "By",
        m.swap_used_bytes as f64,
        &[("state", "used")],
    );
    p.add(
        names::SYSTEM_PAGING_USAGE,
        "By",
        m.swap_total_bytes.saturating_sub(m.swap_used_bytes) as f64,
        &[("state", "free")],
    );
}

/// The container's (cgroup's) memory and CPU against its limits, where set.
fn cgroup_points(p: &mut Points, c: &CgroupSample) {
    let opt = |p: &mut Points, name: &str, unit: &str, v: Option<f64>| {
        if let Some(v) = v {
            p.add(name, unit, v, &[]);
        }
    };
    opt(
        p,
        names::CONTAINER_MEMORY_LIMIT,
        "By",
        c.memory_limit_bytes.map(|v| v as f64),
    );
    opt(
        p,
        names::CONTAINER_MEMORY_USAGE,
        "By",
        c.memory_usage_bytes.map(|v| v as f64),
    );
    opt(
        p,
        names::CONTAINER_MEMORY_UTILIZATION,
        "1",
        c.memory_utilization,
    );
    opt(p, names::CONTAINER_CPU_LIMIT, "{cpu}", c.cpu_limit_cores);
    opt(p, names::CONTAINER_CPU_UTILIZATION, "1", c.cpu_utilization);
}

/// Space and inodes of one watched filesystem.
fn filesystem_points(p: &mut Points, fs: &FilesystemSample) {
    let mp = fs.mountpoint.as_str();
    let u = &fs.usage;
    p.add(
        names::SYSTEM_FILESYSTEM_USAGE,
        "By",
        u.used_bytes as f64,
        &[("mountpoint", mp), ("state", "used")],
    );
    p.add(
        names::SYSTEM_FILESYSTEM_USAGE,
        "By",
        u.available_bytes as f64,
        &[("mountpoint", mp), ("state", "free")],
    );
    p.add(
        names::SYSTEM_FILESYSTEM_UTILIZATION,
        "1",
        fs.utilization,
        &[("mountpoint", mp)],
    );
    p.add(
        names::SYSTEM_FILESYSTEM_INODES_USAGE,
        "{inode}",
        u.inodes_used as f64,
        &[("mountpoint", mp), ("state", "used")],
    );
    p.add(
        names::SYSTEM_FILESYSTEM_INODES_USAGE,
        "{inode}",
        u.inodes_total.saturating_sub(u.inodes_used) as f64,
        &[("mountpoint", mp), ("state", "free")],
    );
}

/// Block device throughput and operations.
fn disk_io_points(p: &mut Points, io: &DiskIoSample) {
    p.add(
        names::SYSTEM_DISK_IO,
        "By/s",
        io.read_bytes_per_second,
        &[("direction", "read")],
    );
    p.add(
        names::SYSTEM_DISK_IO,
        "By/s",
        io.write_bytes_per_second,
        &[("direction", "write")],
    );
    p.add(
        names::SYSTEM_DISK_OPERATIONS,
        "{operation}/s",
        io.reads_per_second,
        &[("direction", "read")],
    );
    p.add(
        names::SYSTEM_DISK_OPERATIONS,
        "{operation}/s",
        io.writes_per_second,
        &[("direction", "write")],
    );
}

/// Throughput, packets and errors of one network device.
fn network_points(p: &mut Points, n: &NetworkSample) {
    let d = n.device.as_str();
    p.add(
        names::SYSTEM_NETWORK_IO,
        "By/s",
        n.receive_bytes_per_second,
        &[("device", d), ("direction", "receive")],
    );
    p.add(
        names::SYSTEM_NETWORK_IO,
        "By/s",
        n.transmit_bytes_per_second,
        &[("device", d), ("direction", "transmit")],
    );
    p.add(
        names::SYSTEM_NETWORK_PACKETS,
        "{packet}/s",
        n.receive_packets_per_second,
        &[("device", d), ("direction", "receive")],
    );
    p.add(
        names::SYSTEM_NETWORK_PACKETS,
        "{packet}/s",
        n.transmit_packets_per_second,
        &[("device", d), ("direction", "transmit")],
    );
    p.add(
        names::SYSTEM_NETWORK_ERRORS,
        "{error}/s",
        n.receive_errors_per_second,
        &[("device", d), ("direction", "receive")],
    );
    p.add(
        names::SYSTEM_NETWORK_ERRORS,
        "{error}/s",
        n.transmit_errors_per_second,
        &[("device", d), ("direction", "transmit")],
    );
}

/// TCP connections by state, processes (all and zombies), and the agent's
/// and the sidecar's own process.
fn process_points(p: &mut Points, sample: &HostSample) {
    for (state, count) in &sample.tcp_connections {
        p.add(
            names::SYSTEM_NETWORK_CONNECTIONS,
            "{connection}",
            *count as f64,
            &[("protocol", "tcp"), ("state", state)],
        );
    }
    let procs = &sample.processes;
    p.add(
        names::SYSTEM_PROCESSES_COUNT,
        "{process}",
        procs.count as f64,
        &[("status", "all")],
    );
    p.add(
        names::SYSTEM_PROCESSES_COUNT,
        "{process}",
        procs.zombies.len() as f64,
        &[("status", "zombies")],
    );
    if let Some(a) = &sample.agent {
        let who = [("process", "agent")];
        p.add(names::PROCESS_CPU_UTILIZATION, "1", a.cpu_utilization, &who);
        p.add(names::PROCESS_MEMORY_USAGE, "By", a.rss_bytes as f64, &who);
        if let Some(t) = a.threads {
            p.add(names::PROCESS_THREADS, "{thread}", t as f64, &who);
        }
        if let Some(f) = a.open_fds {
            p.add(names::PROCESS_OPEN_FDS, "{count}", f as f64, &who);
        }
        p.add(names::PROCESS_UPTIME, "s", a.uptime_seconds as f64, &who);
    }
    p.add(
        names::PROCESS_RESTARTS,
        "{restart}",
        sample.agent_restarts as f64,
        &[("process", "agent")],
    );
    if let Some(s) = &sample.sidecar {
        let who = [("process", "sidecar")];
        p.add(names::PROCESS_CPU_UTILIZATION, "1", s.cpu_utilization, &who);
        p.add(names::PROCESS_MEMORY_USAGE, "By", s.rss_bytes as f64, &who);
    }
}
