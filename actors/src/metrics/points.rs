//! A host sample as metric points, named as the OpenTelemetry host-metrics
//! receiver names them (COMPAT.md section 6) so a pushed stream lands in
//! existing dashboards. Rates (disk, network) are stored as gauges per
//! second (`By/s`, `{packets}/s`), utilizations as ratios 0-1.

use serde_json::Value;

use super::HostSample;
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
        p.add("system.cpu.utilization", "1", cpu.utilization, &[]);
        for (i, core) in cpu.per_core.iter().enumerate() {
            p.add(
                "system.cpu.utilization",
                "1",
                *core,
                &[("cpu", &format!("cpu{i}"))],
            );
        }
    }
    if let Some([one, five, fifteen]) = sample.load_average {
        p.add("system.cpu.load_average.1m", "{thread}", one, &[]);
        p.add("system.cpu.load_average.5m", "{thread}", five, &[]);
        p.add("system.cpu.load_average.15m", "{thread}", fifteen, &[]);
    }
    let m = &sample.memory;
    p.add("system.memory.limit", "By", m.total_bytes as f64, &[]);
    p.add(
        "system.memory.usage",
        "By",
        m.used_bytes as f64,
        &[("state", "used")],
    );
    p.add(
        "system.memory.usage",
        "By",
        m.available_bytes as f64,
        &[("state", "available")],
    );
    p.add(
        "system.memory.utilization",
        "1",
        m.utilization,
        &[("state", "used")],
    );
    p.add(
        "system.paging.usage",
        "By",
        m.swap_used_bytes as f64,
        &[("state", "used")],
    );
    p.add(
        "system.paging.usage",
        "By",
        m.swap_total_bytes.saturating_sub(m.swap_used_bytes) as f64,
        &[("state", "free")],
    );
    if let Some(c) = &sample.cgroup {
        let opt = |p: &mut Points, name: &str, unit: &str, v: Option<f64>| {
            if let Some(v) = v {
                p.add(name, unit, v, &[]);
            }
        };
        opt(
            &mut p,
            "container.memory.limit",
            "By",
            c.memory_limit_bytes.map(|v| v as f64),
        );
        opt(
            &mut p,
            "container.memory.usage",
            "By",
            c.memory_usage_bytes.map(|v| v as f64),
        );
        opt(
            &mut p,
            "container.memory.utilization",
            "1",
            c.memory_utilization,
        );
        opt(&mut p, "container.cpu.limit", "{cpu}", c.cpu_limit_cores);
        opt(&mut p, "container.cpu.utilization", "1", c.cpu_utilization);
    }
    for fs in &sample.filesystems {
        let mp = fs.mountpoint.as_str();
        let u = &fs.usage;
        p.add(
            "system.filesystem.usage",
            "By",
            u.used_bytes as f64,
            &[("mountpoint", mp), ("state", "used")],
        );
        p.add(
            "system.filesystem.usage",
            "By",
            u.available_bytes as f64,
            &[("mountpoint", mp), ("state", "free")],
        );
        p.add(
            "system.filesystem.utilization",
            "1",
            fs.utilization,
            &[("mountpoint", mp)],
        );
        p.add(
            "system.filesystem.inodes.usage",
            "{inode}",
            u.inodes_used as f64,
            &[("mountpoint", mp), ("state", "used")],
        );
        p.add(
            "system.filesystem.inodes.usage",
            "{inode}",
            u.inodes_total.saturating_sub(u.inodes_used) as f64,
            &[("mountpoint", mp), ("state", "free")],
        );
    }
    if let Some(io) = &sample.disk_io {
        p.add(
            "system.disk.io",
            "By/s",
            io.read_bytes_per_second,
            &[("direction", "read")],
        );
        p.add(
            "system.disk.io",
            "By/s",
            io.write_bytes_per_second,
            &[("direction", "write")],
        );
        p.add(
            "system.disk.operations",
            "{operation}/s",
            io.reads_per_second,
            &[("direction", "read")],
        );
        p.add(
            "system.disk.operations",
            "{operation}/s",
            io.writes_per_second,
            &[("direction", "write")],
        );
    }
    for n in &sample.network {
        let d = n.device.as_str();
        p.add(
            "system.network.io",
            "By/s",
            n.receive_bytes_per_second,
            &[("device", d), ("direction", "receive")],
        );
        p.add(
            "system.network.io",
            "By/s",
            n.transmit_bytes_per_second,
            &[("device", d), ("direction", "transmit")],
        );
        p.add(
            "system.network.packets",
            "{packet}/s",
            n.receive_packets_per_second,
            &[("device", d), ("direction", "receive")],
        );
        p.add(
            "system.network.packets",
            "{packet}/s",
            n.transmit_packets_per_second,
            &[("device", d), ("direction", "transmit")],
        );
        p.add(
            "system.network.errors",
            "{error}/s",
            n.receive_errors_per_second,
            &[("device", d), ("direction", "receive")],
        );
        p.add(
            "system.network.errors",
            "{error}/s",
            n.transmit_errors_per_second,
            &[("device", d), ("direction", "transmit")],
        );
    }
    for (state, count) in &sample.tcp_connections {
        p.add(
            "system.network.connections",
            "{connection}",
            *count as f64,
            &[("protocol", "tcp"), ("state", state)],
        );
    }
    let procs = &sample.processes;
    p.add(
        "system.processes.count",
        "{process}",
        procs.count as f64,
        &[("status", "all")],
    );
    p.add(
        "system.processes.count",
        "{process}",
        procs.zombies.len() as f64,
        &[("status", "zombies")],
    );
    if let Some(a) = &sample.agent {
        let who = [("process", "agent")];
        p.add("process.cpu.utilization", "1", a.cpu_utilization, &who);
        p.add("process.memory.usage", "By", a.rss_bytes as f64, &who);
        if let Some(t) = a.threads {
            p.add("process.threads", "{thread}", t as f64, &who);
        }
        if let Some(f) = a.open_fds {
            p.add(
                "process.open_file_descriptor.count",
                "{count}",
                f as f64,
                &who,
            );
        }
        p.add("process.uptime", "s", a.uptime_seconds as f64, &who);
    }
    p.add(
        "process.restarts",
        "{restart}",
        sample.agent_restarts as f64,
        &[("process", "agent")],
    );
    if let Some(s) = &sample.sidecar {
        let who = [("process", "sidecar")];
        p.add("process.cpu.utilization", "1", s.cpu_utilization, &who);
        p.add("process.memory.usage", "By", s.rss_bytes as f64, &who);
    }
    p.out
}
