//! The MetricsActor against this machine: sane values, a zombie the test
//! makes, an agent process the test starts and restarts, the interval, and
//! `/metrics` read by a real Prometheus parser.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::fixtures::exporters;
use common::{eventually, Daemon};
use serde_json::Value;

/// Polls `/v1/status` until `ready` holds (a hang guard, not a time bound).
fn status_when(d: &Daemon, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let status = d.status();
        if ready(&status) {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("gave up waiting for {what}: {}", d.status());
}

/// A system binary under a name of our choosing (a symlink: the kernel names
/// a process after the path it was started by), so the process is
/// recognisable in `/proc`. A copy would risk ETXTBSY when another test
/// thread forks while the copy is still open.
fn named_binary(dir: &Path, system_binary: &str, name: &str) -> PathBuf {
    let source = ["/bin", "/usr/bin"]
        .iter()
        .map(|d| Path::new(d).join(system_binary))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{system_binary} not found"));
    let target = dir.join(name);
    std::os::unix::fs::symlink(source, &target).expect("symlink binary");
    target
}

fn meminfo_total_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemTotal");
    kib * 1024
}

#[test]
fn host_values_are_sane_and_stored() {
    let d = Daemon::start(&[("TRACE_METRICS_INTERVAL", "1s")]);
    // The second sample has CPU (the first has no baseline).
    let status = status_when(&d, "a second sample", |s| {
        !s["host"]["cpu_utilization"].is_null()
    });
    let host = &status["host"];
    assert_eq!(
        host["memory"]["total_bytes"].as_u64(),
        Some(meminfo_total_bytes())
    );
    let utilization = host["memory"]["utilization"].as_f64().expect("utilization");
    assert!((0.0..=1.0).contains(&utilization), "{utilization}");
    let cpu = host["cpu_utilization"].as_f64().expect("cpu");
    assert!((0.0..=1.0).contains(&cpu), "{cpu}");
    let db_dir = std::fs::canonicalize(d.db_path.parent().expect("dir")).expect("canonical");
    let fs = host["filesystems"]
        .as_array()
        .expect("filesystems")
        .iter()
        .find(|f| f["mountpoint"] == db_dir.display().to_string())
        .unwrap_or_else(|| panic!("the database's filesystem is watched: {host}"));
    assert!(fs["total_bytes"].as_u64().expect("total") > 0);
    assert!(host["processes"]["count"].as_u64().expect("count") > 1);
    assert_eq!(host["sidecar"]["name"], "openclaw-trace");
    assert!(host["sidecar"]["rss_bytes"].as_u64().expect("rss") > 0);

    // Stored as metric points under the OpenTelemetry names.
    let names: Vec<String> =
        d.strings("SELECT DISTINCT name FROM metric_points WHERE source = 'host' ORDER BY name");
    for expected in [
        "system.cpu.utilization",
        "system.cpu.load_average.1m",
        "system.memory.usage",
        "system.memory.utilization",
        "system.filesystem.usage",
        "system.processes.count",
        "process.memory.usage",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} stored; got {names:?}"
        );
    }
    let stored_total: f64 = d
        .db()
        .query_row(
            "SELECT value FROM metric_points WHERE name = 'system.memory.limit' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("memory limit point");
    assert_eq!(stored_total as u64, meminfo_total_bytes());
}

#[test]
fn a_zombie_is_counted_and_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("oclz{}", std::process::id() % 100_000);
    // Started and never waited for: once it exits it is our zombie.
    let mut zombie = Command::new(named_binary(dir.path(), "true", &name))
        .spawn()
        .expect("spawn");
    let pid = zombie.id();
    let d = Daemon::start(&[("TRACE_METRICS_INTERVAL", "1s")]);
    let status = status_when(&d, "the zombie", |s| {
        s["host"]["processes"]["zombies"]
            .as_array()
            .is_some_and(|z| z.iter().any(|p| p["pid"] == pid))
    });
    let entry = status["host"]["processes"]["zombies"]
        .as_array()
        .and_then(|z| z.iter().find(|p| p["pid"] == pid).cloned())
        .expect("listed");
    assert_eq!(entry["name"], name.as_str());
    let warnings = status["warnings"].as_array().expect("warnings");
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.contains("zombie") && w.contains(&name))),
        "{warnings:?}"
    );
    let _ = zombie.wait();
}

fn spawn_agent(binary: &Path) -> Child {
    Command::new(binary)
        .arg("300")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn agent")
}

#[test]
fn the_agent_process_is_found_and_its_restart_noticed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("ocl-agent-{}", std::process::id());
    let binary = named_binary(dir.path(), "sleep", &name);
    let mut agent = spawn_agent(&binary);
    let first = agent.id();
    let d = Daemon::start(&[
        ("TRACE_METRICS_INTERVAL", "1s"),
        ("TRACE_AGENT_PROCESS", &name),
    ]);
    let status = status_when(&d, "the agent", |s| s["host"]["agent"]["pid"] == first);
    let a = &status["host"]["agent"];
    assert!(a["rss_bytes"].as_u64().expect("rss") > 0);
    assert_eq!(a["threads"], 1, "sleep has one thread");
    assert!(a["open_fds"].as_u64().is_some());
    assert!(a["uptime_seconds"].as_u64().is_some());

    let _ = agent.kill();
    let _ = agent.wait();
    status_when(&d, "the missing agent", |s| {
        s["warnings"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w == "agent process not found"))
    });
    let mut agent = spawn_agent(&binary);
    let second = agent.id();
    let status = status_when(&d, "the restarted agent", |s| {
        s["host"]["agent"]["pid"] == second
    });
    assert_eq!(status["host"]["agent_restarts"], 1);
    // The status shows the sample at once; its event is committed after.
    let restart_event = || {
        d.db()
            .query_row(
                "SELECT name, attributes FROM events WHERE source = 'host'",
                [],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .ok()
    };
    eventually("the restart event committed", || restart_event().is_some());
    let (event, attrs) = restart_event().expect("a restart event");
    assert_eq!(event, "agent.restarted");
    let attrs: Value = serde_json::from_str(&attrs).expect("json");
    assert_eq!(
        (attrs["old_pid"].as_u64(), attrs["new_pid"].as_u64()),
        (Some(first.into()), Some(second.into()))
    );
    let _ = agent.kill();
    let _ = agent.wait();
}

fn samples(d: &Daemon) -> i64 {
    d.db()
        .query_row(
            "SELECT count(DISTINCT time_ns) FROM metric_points WHERE name = 'system.memory.limit'",
            [],
            |r| r.get(0),
        )
        .expect("count")
}

#[test]
fn the_interval_is_honoured() {
    let hourly = Daemon::start(&[("TRACE_METRICS_INTERVAL", "1h")]);
    let every_second = Daemon::start(&[("TRACE_METRICS_INTERVAL", "1s")]);
    for _ in 0..600 {
        if samples(&every_second) >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(samples(&every_second) >= 4);
    // The hourly daemon, started first, has still taken only its first sample.
    assert_eq!(samples(&hourly), 1);
}

#[test]
fn a_metrics_actor_crash_is_restarted_and_sampling_goes_on() {
    let d = Daemon::start(&[("TRACE_METRICS_INTERVAL", "1s")]);
    assert_eq!(d.post("/_test/fault/metrics/panic", b"", &[]).status, 200);
    let status = status_when(&d, "the restart", |s| {
        s["actors"]["metrics"]["restarts"] == 1
    });
    assert_eq!(status["actors"]["metrics"]["panics"], 1);
    let before = samples(&d);
    for _ in 0..600 {
        if samples(&d) > before {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(samples(&d) > before, "sampling resumed after the restart");
}

#[test]
fn metrics_endpoint_parses_as_prometheus_text() {
    let d = Daemon::start(&[("TRACE_METRICS_INTERVAL", "1s")]);
    assert_eq!(d.post_json("/v1/events", r#"{"name":"x"}"#).status, 202);
    status_when(&d, "a second sample", |s| {
        !s["host"]["cpu_utilization"].is_null()
    });
    let reply = d.get("/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(reply.body.ends_with('\n'));
    // prometheus_client's own parser of the 0.0.4 text format.
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = {"type": f.type, "help": f.documentation,
                   "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(out))
"#;
    let mut child = Command::new(&exporters().python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        reply.body.as_bytes(),
    )
    .expect("write");
    let out = child.wait_with_output().expect("parse");
    assert!(
        out.status.success(),
        "the parser refused the text:\n{}",
        reply.body
    );
    let families: Value = serde_json::from_slice(&out.stdout).expect("json");
    let family = |name: &str| {
        families
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing: {}", reply.body))
    };
    // Counters are typed as counters (the parser strips `_total`).
    let accepted = family("openclaw_trace_ingest_records_accepted");
    assert_eq!(accepted["type"], "counter");
    let events = accepted["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .find(|s| s[1]["table"] == "events")
        .expect("events sample");
    assert_eq!(events[0], "openclaw_trace_ingest_records_accepted_total");
    assert_eq!(events[2], 1.0);
    let memory = family("openclaw_trace_host_memory_bytes");
    assert_eq!(memory["type"], "gauge");
    let total = memory["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .find(|s| s[1]["state"] == "total")
        .expect("total");
    assert_eq!(
        total[2].as_f64().map(|v| v as u64),
        Some(meminfo_total_bytes())
    );
    for (name, f) in families.as_object().expect("families") {
        assert!(name.starts_with("openclaw_trace_"), "{name}");
        assert!(
            !f["help"].as_str().unwrap_or_default().is_empty(),
            "{name} has HELP"
        );
    }
    assert_eq!(family("openclaw_trace_store_commits")["type"], "counter");
    assert_eq!(family("openclaw_trace_agent_up")["type"], "gauge");
}
