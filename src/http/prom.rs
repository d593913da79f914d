//! `GET /metrics`: the Prometheus text exposition (format 0.0.4) of the
//! sidecar's own counters and of the latest host sample.
//!
//! The `prometheus` crate renders the text. Values are copied from the
//! counters and the sample into a registry built for each scrape: scrapes are
//! rare (every 15-60 s), and the daemon's state stays in one place.

use actix_web::{web, HttpResponse};
use openclaw_trace_actors::engine::Engine;
use openclaw_trace_actors::metrics::{
    CgroupSample, CpuSample, DiskIoSample, FilesystemSample, HostSample, MemorySample,
    NetworkSample,
};
use openclaw_trace_actors::push::PushStatus;
use openclaw_trace_actors::query;
use openclaw_trace_actors::stats::StatsSnapshot;
use prometheus::{Encoder, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

use super::AppState;

/// Builds families into one registry.
struct Families(Registry);

impl Families {
    fn gauge(&self, name: &str, help: &str, labels: &[&str], samples: &[(Vec<&str>, f64)]) {
        let Ok(family) = GaugeVec::new(Opts::new(format!("openclaw_trace_{name}"), help), labels)
        else {
            return;
        };
        for (values, v) in samples {
            family.with_label_values(values).set(*v);
        }
        let _ = self.0.register(Box::new(family));
    }

    fn counter(&self, name: &str, help: &str, labels: &[&str], samples: &[(Vec<&str>, u64)]) {
        let Ok(family) =
            IntCounterVec::new(Opts::new(format!("openclaw_trace_{name}"), help), labels)
        else {
            return;
        };
        for (values, v) in samples {
            family.with_label_values(values).inc_by(*v);
        }
        let _ = self.0.register(Box::new(family));
    }
}

/// `GET /metrics`.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let f = Families(Registry::new());
    let engine = &state.engine;
    let s = engine.stats.snapshot();

    f.gauge(
        "uptime_seconds",
        "Seconds since the daemon started.",
        &[],
        &[(vec![], s.uptime_seconds as f64)],
    );
    ingest_families(&f, &s);
    rotation_families(&f, &s, &engine.rotation_settings);
    http_families(&f, &state);
    store_families(&f, &s, engine);
    // A stat can block (a slow or stuck volume): not on an HTTP worker.
    let path = engine.db_path.clone();
    let files = web::block(move || query::file_sizes(&path))
        .await
        .unwrap_or_default();
    f.gauge(
        "database_size_bytes",
        "Size of the database's files.",
        &["file"],
        &[
            (vec!["main"], files.db_bytes as f64),
            (vec!["wal"], files.wal_bytes as f64),
        ],
    );
    if let Some((_, view)) = &engine.push {
        push_families(&f, &view.get());
    }
    if let Some(host) = engine.host.get() {
        host_families(&f, &host);
    }

    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&f.0.gather(), &mut body) {
        Ok(()) => HttpResponse::Ok()
            .content_type(format!("{}; charset=utf-8", encoder.format_type()))
            .body(body),
        Err(e) => HttpResponse::InternalServerError().body(format!("encoding metrics: {e}")),
    }
}

/// `(label, count)` pairs as one-label samples.
fn pairs(v: &[(&'static str, u64)]) -> Vec<(Vec<&'static str>, u64)> {
    v.iter().map(|(k, n)| (vec![*k], *n)).collect()
}

/// Requests and records accepted and refused, native and OTLP.
fn ingest_families(f: &Families, s: &StatsSnapshot) {
    f.counter(
        "ingest_requests_accepted_total",
        "Ingest requests whose records were all committed.",
        &[],
        &[(vec![], s.accepted_requests)],
    );
    f.counter(
        "ingest_records_accepted_total",
        "Records committed, per table.",
        &["table"],
        &pairs(&s.accepted_records),
    );
    f.counter(
        "ingest_requests_rejected_total",
        "Ingest requests refused, per reason.",
        &["reason"],
        &pairs(&s.rejected),
    );
    let mut received = Vec::new();
    let mut stored = Vec::new();
    let mut rejected = Vec::new();
    for o in &s.otlp {
        received.push((vec![o.signal], o.received));
        stored.push((vec![o.signal], o.stored));
        rejected.extend(
            o.rejected
                .iter()
                .map(|(reason, n)| (vec![o.signal, *reason], *n)),
        );
    }
    f.counter(
        "otlp_items_received_total",
        "OTLP items in decodable requests, per signal.",
        &["signal"],
        &received,
    );
    f.counter(
        "otlp_items_stored_total",
        "OTLP items committed, per signal.",
        &["signal"],
        &stored,
    );
    f.counter(
        "otlp_items_rejected_total",
        "OTLP items left out, per signal and reason.",
        &["signal", "reason"],
        &rejected,
    );
}

/// The request bytes held and the connections evicted.
fn http_families(f: &Families, state: &AppState) {
    f.gauge(
        "http_inflight_body_bytes",
        "Request bytes held now by requests not yet answered (read, then decompressed).",
        &[],
        &[(vec![], state.body_budget.in_flight() as f64)],
    );
    f.gauge(
        "http_inflight_body_bytes_max",
        "TRACE_MAX_INFLIGHT_BODY_BYTES: past it, ingest answers 503.",
        &[],
        &[(vec![], state.body_budget.limit() as f64)],
    );
    f.counter(
        "http_connections_evicted_total",
        "Idle connections shut down near the connection cap to make room for new ones.",
        &[],
        &[(vec![], super::conn_watch::evicted_connections())],
    );
}

/// The store's commits and backlog, the actors' restarts and panics, the
/// log lines lost, and the rows per table.
fn store_families(f: &Families, s: &StatsSnapshot, engine: &Engine) {
    f.counter(
        "store_commits_total",
        "Transactions the store committed.",
        &[],
        &[(vec![], s.store_commits)],
    );
    f.gauge(
        "store_pending_records",
        "Records waiting for their commit.",
        &[],
        &[(vec![], s.store_pending as f64)],
    );
    f.counter(
        "actor_restarts_total",
        "Supervisor restarts, per actor.",
        &["actor"],
        &pairs(&s.restarts),
    );
    f.counter(
        "actor_panics_total",
        "Panics caught in actor handlers, per actor.",
        &["actor"],
        &pairs(&s.panics),
    );
    f.counter(
        "log_lines_dropped_total",
        "Log lines lost, per reason: queue_full (stdout too slow), write_failed (stdout full or closed), format_failed.",
        &["reason"],
        &pairs(&crate::logging::dropped_log_lines_by_reason()),
    );
    let tables = engine.stats.rows.tables();
    let rows: Vec<_> = tables
        .iter()
        .map(|t| (vec![t.table], t.rows as f64))
        .collect();
    let unpushed: Vec<_> = tables
        .iter()
        .map(|t| (vec![t.table], t.unpushed as f64))
        .collect();
    f.gauge("table_rows", "Rows stored, per table.", &["table"], &rows);
    f.gauge(
        "table_unpushed_rows",
        "Rows not yet pushed, per table.",
        &["table"],
        &unpushed,
    );
}

/// What the push delivered, retried and gave up.
fn push_families(f: &Families, p: &PushStatus) {
    let one = |v: u64| [(vec![], v)];
    f.counter(
        "push_batches_total",
        "Batches the remote accepted.",
        &[],
        &one(p.batches_pushed),
    );
    f.counter(
        "push_rows_total",
        "Rows the remote accepted.",
        &[],
        &one(p.rows_pushed),
    );
    f.counter(
        "push_bytes_total",
        "Compressed bytes the remote accepted.",
        &[],
        &one(p.bytes_pushed),
    );
    f.counter("push_retries_total", "Sends retried.", &[], &one(p.retries));
    f.counter(
        "push_dead_lettered_total",
        "Records the remote refused for good.",
        &[],
        &one(p.dead_lettered),
    );
    f.gauge(
        "push_consecutive_failures",
        "Failed sends since the last delivery.",
        &[],
        &[(vec![], p.consecutive_failures as f64)],
    );
    if let Some(ns) = p.last_success_ns {
        f.gauge(
            "push_last_success_timestamp_seconds",
            "When a batch was last delivered.",
            &[],
            &[(vec![], ns as f64 / 1e9)],
        );
    }
}

/// The latest host sample as gauges (and the agent restarts as a counter).
fn host_families(f: &Families, h: &HostSample) {
    if let Some(cpu) = &h.cpu {
        cpu_families(f, cpu);
    }
    if let Some(load) = h.load_average {
        load_families(f, load);
    }
    memory_families(f, &h.memory);
    if let Some(c) = &h.cgroup {
        cgroup_families(f, c);
    }
    filesystem_families(f, &h.filesystems);
    if let Some(io) = &h.disk_io {
        disk_io_families(f, io);
    }
    network_families(f, &h.network);
    process_count_families(f, h);
    agent_families(f, h);
}

/// CPU busy, over all cores and per core.
fn cpu_families(f: &Families, cpu: &CpuSample) {
    let names: Vec<String> = (0..cpu.per_core.len()).map(|i| format!("cpu{i}")).collect();
    let mut samples = vec![(vec!["all"], cpu.utilization)];
    samples.extend(
        names
            .iter()
            .zip(&cpu.per_core)
            .map(|(n, v)| (vec![n.as_str()], *v)),
    );
    f.gauge(
        "host_cpu_utilization_ratio",
        "CPU busy over the last interval, 0-1.",
        &["cpu"],
        &samples,
    );
}

/// The 1, 5 and 15 minute load averages.
fn load_families(f: &Families, load: [f64; 3]) {
    let [one, five, fifteen] = load;
    f.gauge(
        "host_load_average",
        "Load average.",
        &["window"],
        &[
            (vec!["1m"], one),
            (vec!["5m"], five),
            (vec!["15m"], fifteen),
        ],
    );
}

/// Physical memory and swap.
fn memory_families(f: &Families, m: &MemorySample) {
    f.gauge(
        "host_memory_bytes",
        "Physical memory.",
        &["state"],
        &[
            (vec!["total"], m.total_bytes as f64),
            (vec!["used"], m.used_bytes as f64),
            (vec!["available"], m.available_bytes as f64),
        ],
    );
    f.gauge(
        "host_memory_utilization_ratio",
        "Memory used, 0-1.",
        &[],
        &[(vec![], m.utilization)],
    );
    f.gauge(
        "host_swap_bytes",
        "Swap space.",
        &["state"],
        &[
            (vec!["total"], m.swap_total_bytes as f64),
            (vec!["used"], m.swap_used_bytes as f64),
        ],
    );
}

/// The container's (cgroup's) memory and CPU against its limits, where set.
fn cgroup_families(f: &Families, c: &CgroupSample) {
    let one = |name: &str, help: &str, v: Option<f64>| {
        if let Some(v) = v {
            f.gauge(name, help, &[], &[(vec![], v)]);
        }
    };
    one(
        "container_memory_limit_bytes",
        "The cgroup's memory limit.",
        c.memory_limit_bytes.map(|v| v as f64),
    );
    one(
        "container_memory_usage_bytes",
        "The cgroup's memory use.",
        c.memory_usage_bytes.map(|v| v as f64),
    );
    one(
        "container_memory_utilization_ratio",
        "The cgroup's memory use over its limit.",
        c.memory_utilization,
    );
    one(
        "container_cpu_limit_cores",
        "The cgroup's CPU quota in cores.",
        c.cpu_limit_cores,
    );
    one(
        "container_cpu_utilization_ratio",
        "The cgroup's CPU use over its quota.",
        c.cpu_utilization,
    );
}

/// Space and inodes per watched filesystem.
fn filesystem_families(f: &Families, filesystems: &[FilesystemSample]) {
    let mut bytes = Vec::new();
    let mut ratio = Vec::new();
    let mut inodes = Vec::new();
    for fs in filesystems {
        let mp = fs.mountpoint.as_str();
        bytes.push((vec![mp, "used"], fs.usage.used_bytes as f64));
        bytes.push((vec![mp, "available"], fs.usage.available_bytes as f64));
        bytes.push((vec![mp, "total"], fs.usage.total_bytes as f64));
        ratio.push((vec![mp], fs.utilization));
        inodes.push((vec![mp, "used"], fs.usage.inodes_used as f64));
        inodes.push((vec![mp, "total"], fs.usage.inodes_total as f64));
    }
    f.gauge(
        "host_filesystem_bytes",
        "Filesystem space.",
        &["mountpoint", "state"],
        &bytes,
    );
    f.gauge(
        "host_filesystem_utilization_ratio",
        "Filesystem space used, 0-1.",
        &["mountpoint"],
        &ratio,
    );
    f.gauge(
        "host_filesystem_inodes",
        "Filesystem inodes.",
        &["mountpoint", "state"],
        &inodes,
    );
}

/// Block device throughput and operations.
fn disk_io_families(f: &Families, io: &DiskIoSample) {
    f.gauge(
        "host_disk_io_bytes_per_second",
        "Block device throughput.",
        &["direction"],
        &[
            (vec!["read"], io.read_bytes_per_second),
            (vec!["write"], io.write_bytes_per_second),
        ],
    );
    f.gauge(
        "host_disk_operations_per_second",
        "Block device operations.",
        &["direction"],
        &[
            (vec!["read"], io.reads_per_second),
            (vec!["write"], io.writes_per_second),
        ],
    );
}

/// Throughput, packets and errors per network device.
fn network_families(f: &Families, network: &[NetworkSample]) {
    let (mut io, mut packets, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for n in network {
        let d = n.device.as_str();
        io.push((vec![d, "receive"], n.receive_bytes_per_second));
        io.push((vec![d, "transmit"], n.transmit_bytes_per_second));
        packets.push((vec![d, "receive"], n.receive_packets_per_second));
        packets.push((vec![d, "transmit"], n.transmit_packets_per_second));
        errors.push((vec![d, "receive"], n.receive_errors_per_second));
        errors.push((vec![d, "transmit"], n.transmit_errors_per_second));
    }
    let net = ["device", "direction"];
    f.gauge(
        "host_network_io_bytes_per_second",
        "Network throughput.",
        &net,
        &io,
    );
    f.gauge(
        "host_network_packets_per_second",
        "Network packets.",
        &net,
        &packets,
    );
    f.gauge(
        "host_network_errors_per_second",
        "Network errors.",
        &net,
        &errors,
    );
}

/// TCP connections by state, and processes (all and zombies).
fn process_count_families(f: &Families, h: &HostSample) {
    let tcp: Vec<_> = h
        .tcp_connections
        .iter()
        .map(|(s, n)| (vec![*s], *n as f64))
        .collect();
    f.gauge(
        "host_tcp_connections",
        "TCP connections by state.",
        &["state"],
        &tcp,
    );
    f.gauge(
        "host_processes",
        "Processes.",
        &["status"],
        &[
            (vec!["all"], h.processes.count as f64),
            (vec!["zombie"], h.processes.zombies.len() as f64),
        ],
    );
}

/// The agent's and the sidecar's own process, and whether the agent is up.
fn agent_families(f: &Families, h: &HostSample) {
    let (mut cpu, mut rss, mut threads, mut fds, mut uptime) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if let Some(a) = &h.agent {
        cpu.push((vec!["agent"], a.cpu_utilization));
        rss.push((vec!["agent"], a.rss_bytes as f64));
        threads.extend(a.threads.map(|t| (vec!["agent"], t as f64)));
        fds.extend(a.open_fds.map(|n| (vec!["agent"], n as f64)));
        uptime.push((vec!["agent"], a.uptime_seconds as f64));
    }
    if let Some(s) = &h.sidecar {
        cpu.push((vec!["sidecar"], s.cpu_utilization));
        rss.push((vec!["sidecar"], s.rss_bytes as f64));
    }
    let who = ["process"];
    f.gauge(
        "process_cpu_utilization_ratio",
        "CPU over the last interval, 0-1 of all cores.",
        &who,
        &cpu,
    );
    f.gauge(
        "process_resident_memory_bytes",
        "Resident memory.",
        &who,
        &rss,
    );
    f.gauge("process_threads", "Threads.", &who, &threads);
    f.gauge("process_open_fds", "Open file descriptors.", &who, &fds);
    f.gauge(
        "process_uptime_seconds",
        "Seconds since the process started.",
        &who,
        &uptime,
    );
    f.gauge(
        "agent_up",
        "1 when the agent process was found.",
        &[],
        &[(vec![], f64::from(u8::from(h.agent.is_some())))],
    );
    f.counter(
        "agent_restarts_total",
        "Agent process restarts seen (pid changes).",
        &[],
        &[(vec![], h.agent_restarts)],
    );
}

/// The disk bound: rotation runs, rows deleted and dropped per reason and
/// table, the disk-full state, and dropped host samples.
fn rotation_families(
    f: &Families,
    s: &StatsSnapshot,
    bounds: &openclaw_trace_actors::rotate::RotationSettings,
) {
    let r = &s.rotation;
    let per = |list: &[(&'static str, &'static str, u64)]| -> Vec<(Vec<&'static str>, u64)> {
        list.iter()
            .map(|(reason, table, n)| (vec![*reason, *table], *n))
            .collect()
    };
    f.counter(
        "rotation_runs_total",
        "Rotations finished.",
        &[],
        &[(vec![], r.runs)],
    );
    f.gauge(
        "rotation_last_run_timestamp_seconds",
        "When the last rotation ended (unix seconds; 0 before the first).",
        &[],
        &[(vec![], r.last_end_ns.unwrap_or(0) as f64 / 1e9)],
    );
    f.gauge(
        "rotation_last_duration_seconds",
        "How long the last rotation took.",
        &[],
        &[(vec![], r.last_duration_ms / 1000.0)],
    );
    f.counter(
        "rotation_deleted_rows_total",
        "Rows rotation deleted, per reason (age, size, volume) and table.",
        &["reason", "table"],
        &per(&r.deleted),
    );
    f.counter(
        "rotation_dropped_rows_total",
        "Rows rotation deleted before they were pushed, per reason and table.",
        &["reason", "table"],
        &per(&r.dropped),
    );
    f.gauge(
        "database_max_bytes",
        "Bound of the database file plus its WAL (TRACE_DB_MAX_BYTES).",
        &[],
        &[(vec![], bounds.max_db_bytes as f64)],
    );
    f.gauge(
        "database_disk_full",
        "1 while database writes fail for want of space, else 0.",
        &[],
        &[(vec![], if s.disk_full { 1.0 } else { 0.0 })],
    );
    f.counter(
        "database_disk_full_episodes_total",
        "Times database writes started failing for want of space.",
        &[],
        &[(vec![], s.disk_full_episodes)],
    );
    f.counter(
        "host_samples_dropped_total",
        "Host samples the store could not take.",
        &[],
        &[(vec![], s.host_samples_dropped)],
    );
}
