//! The push wire bytes, pinned: rows of every table, with every column set
//! and with the optional ones left NULL, are read and encoded in both formats
//! and under tight byte and row limits, and each uncompressed body (with its
//! batch id and row range) is compared with `wire_golden.txt`.
//!
//! A change that alters what is sent fails here. When the change is meant,
//! regenerate the file with `OPENCLAW_UPDATE_GOLDEN=1 cargo test -p
//! openclaw-trace-actors wire_bytes` and review its diff.

use std::fmt::Write as _;
use std::io::Read as _;
use std::time::Duration;

use super::policy::PushFormat;
use super::{build_batch, PushSettings};
use crate::metrics::names;
use crate::records::Table;
use crate::schema::{open_writer, read_pool};

const GOLDEN: &str = "src/push/wire_golden.txt";

/// Rows of every table, written as the store writes them.
const ROWS: &str = r#"
INSERT INTO llm_calls (time_ns, received_ns, agent_id, source, trace_id, span_id, session_id,
    provider, model, input_text, output_text, prompt_tokens, completion_tokens, total_tokens,
    cache_read_tokens, cache_write_tokens, cost_usd, latency_ms, status, error_type, channel,
    metadata, truncated, cost_source)
VALUES
 (1700000000123456789, 1700000000200000000, 'agent-1', 'otlp_span',
  '4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', 'sess-9', 'anthropic',
  'claude-sonnet-4-5', 'hello "quoted" é', 'world', 750, 45, 945, 100, 50, 0.0123, 812.5, 'ok',
  NULL, 'telegram', '{"b":[1,2.5,"x"],"a":{"nested":true}}', 'input_text,output_text',
  'reported'),
 (1700000001000000000, 1700000001000000001, 'agent-1', 'native', 'trace-2', NULL, NULL,
  'openai', 'gpt-4o', NULL, NULL, NULL, 3, NULL, NULL, NULL, NULL, NULL, 'error',
  'RateLimit', NULL, NULL, NULL, 'unknown'),
 (1700000002000000000, 1700000002000000000, 'agent-1', 'otlp_metric', 'trace-3', NULL, NULL,
  'anthropic', 'claude-haiku', NULL, NULL, 10, 0, 10, NULL, 7, 0.0, NULL, 'ok', NULL, NULL,
  '{}', NULL, 'estimated');

INSERT INTO errors (time_ns, received_ns, agent_id, source, trace_id, session_id, error_type,
    message, stack_trace, severity, metadata, truncated)
VALUES
 (1700000003000000000, 1700000003000000005, 'agent-1', 'native',
  '4bf92f3577b34da6a3ce929d0e0e4736', 'sess-1', 'TimeoutError', 'took too long',
  'at f (a.js:1)', 'critical', '{"attempt":3}', 'message'),
 (1700000004000000000, 1700000004000000000, 'agent-1', 'native', NULL, NULL, 'E', 'm', NULL,
  'warning', NULL, NULL);

INSERT INTO events (time_ns, received_ns, agent_id, source, name, severity, body, trace_id,
    span_id, attributes, severity_number, service_name, resource, scope_name, scope_version)
VALUES
 (1700000005000000000, 1700000005000000001, 'agent-1', 'otlp', 'log', 'WARN', 'body text',
  '4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', '{"k":"v","n":4,"f":1.5}', 13,
  'svc', '{"service.name":"svc","host.name":"h"}', 'my.scope', '1.2.3'),
 (1700000006000000000, 1700000006000000000, 'agent-1', 'native', 'deploy', 'info', NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (1700000007000000000, 1700000007000000000, 'agent-1', 'native', 'custom.thing', 'error',
  NULL, 'trace-e', NULL, '{}', NULL, NULL, NULL, NULL, NULL);

INSERT INTO spans (received_ns, agent_id, trace_id, span_id, parent_span_id, name, kind,
    start_ns, end_ns, status_code, status_message, service_name, resource, scope_name,
    scope_version, attributes, events, links)
VALUES
 (1700000008000000000, 'agent-1', '4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7',
  NULL, 'openclaw.model.usage', 2, 1700000007500000000, 1700000007900000000, 2, 'boom',
  'openclaw', '{"service.name":"openclaw"}', 'openclaw', '0.1',
  '{"gen_ai.usage.input_tokens":12,"x":[true,null]}',
  '[{"time_ns":1700000007600000000,"name":"ev","attributes":{"a":1}}]',
  '[{"trace_id":"5bf92f3577b34da6a3ce929d0e0e4736","span_id":"10f067aa0ba902b7","attributes":{}}]'),
 (1700000008000000001, 'agent-1', '4bf92f3577b34da6a3ce929d0e0e4736', '20f067aa0ba902b7',
  '00f067aa0ba902b7', 'child', 0, 1700000007600000000, 1700000007700000000, 0, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL),
 (1700000008000000002, 'agent-1', 'not-hex', 'short', NULL, 'odd ids', 1, -5, 3, 1, '', 'other',
  '{"service.name":"other"}', 'openclaw', '0.1', NULL, NULL, NULL);
"#;

/// A host sample: one row per series, all at `time_ns`.
fn host_sample(conn: &rusqlite::Connection, time_ns: i64, db_mount: &str) {
    let points: Vec<(&str, f64, Option<String>)> = vec![
        (names::SYSTEM_CPU_UTILIZATION, 0.25, None),
        (
            names::SYSTEM_MEMORY_USAGE,
            1000.0,
            Some(r#"{"state":"used"}"#.into()),
        ),
        (
            names::SYSTEM_MEMORY_USAGE,
            3000.0,
            Some(r#"{"state":"available"}"#.into()),
        ),
        (names::SYSTEM_MEMORY_LIMIT, 4096.0, None),
        (
            names::SYSTEM_FILESYSTEM_USAGE,
            10.0,
            Some(r#"{"mountpoint":"/","state":"used"}"#.into()),
        ),
        (
            names::SYSTEM_FILESYSTEM_USAGE,
            20.0,
            Some(r#"{"mountpoint":"/","state":"free"}"#.into()),
        ),
        (
            names::SYSTEM_FILESYSTEM_USAGE,
            30.5,
            Some(format!(r#"{{"mountpoint":"{db_mount}","state":"used"}}"#)),
        ),
        (
            names::SYSTEM_FILESYSTEM_USAGE,
            40.0,
            Some(format!(r#"{{"mountpoint":"{db_mount}","state":"free"}}"#)),
        ),
        (names::SYSTEM_CPU_LOAD_AVERAGE_1M, 0.5, Some("{}".into())),
    ];
    for (name, value, attributes) in points {
        conn.execute(
            "INSERT INTO metric_points (time_ns, received_ns, agent_id, source, name, kind, unit,
                value, attributes) VALUES (?1, ?1, 'agent-1', 'host', ?2, 'gauge', '1', ?3, ?4)",
            rusqlite::params![time_ns, name, value, attributes],
        )
        .expect("insert a host point");
    }
}

/// Metric points of every kind, between two host samples.
const POINTS: &str = r#"
INSERT INTO metric_points (time_ns, start_time_ns, received_ns, agent_id, source, name, kind,
    unit, value, temporality, is_monotonic, data, attributes, service_name, resource,
    scope_name, scope_version)
VALUES
 (1700000010000000000, NULL, 1700000010000000000, 'agent-1', 'native', 'queue.depth', 'gauge',
  NULL, 7.0, NULL, NULL, NULL, '{"queue":"a"}', NULL, NULL, NULL, NULL),
 (1700000010000000001, NULL, 1700000010000000001, 'agent-1', 'native', 'jobs', 'counter',
  'jobs', 2.0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (1700000011000000000, 1700000000000000000, 1700000011000000000, 'agent-1', 'otlp', 'requests',
  'sum', '1', 42.0, 2, 1, NULL, '{"route":"/x"}', 'svc', '{"service.name":"svc"}', 'sc', 'v1'),
 (1700000011000000000, 1700000000000000000, 1700000011000000000, 'agent-1', 'otlp', 'latency',
  'histogram', 'ms', 123.5, 1, NULL,
  '{"count":3,"sum":123.5,"bucket_counts":[1,1,1],"explicit_bounds":[10.0,100.0],"min":1.0,"max":100.5}',
  NULL, 'svc', '{"service.name":"svc"}', 'sc', 'v1'),
 (1700000011000000000, NULL, 1700000011000000000, 'agent-1', 'otlp', 'exp', 'exponential_histogram',
  NULL, 9.0, 2, NULL,
  '{"count":4,"sum":9.0,"scale":2,"zero_count":1,"positive":{"offset":-1,"bucket_counts":[1,2]},"negative":{"offset":0,"bucket_counts":[]},"zero_threshold":0.001}',
  NULL, 'svc', '{"service.name":"svc"}', 'sc2', NULL),
 (1700000011000000000, NULL, 1700000011000000000, 'agent-1', 'otlp', 'summ', 'summary',
  NULL, 50.0, NULL, NULL,
  '{"count":5,"sum":50.0,"quantile_values":[{"quantile":0.5,"value":9.0},{"quantile":0.99,"value":20.0}]}',
  '{"a":"b"}', NULL, NULL, NULL, NULL),
 (1700000011000000000, NULL, 1700000011000000000, 'agent-1', 'otlp', 'nothing', 'gauge',
  NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

fn settings(format: PushFormat, max_batch_bytes: usize) -> PushSettings {
    PushSettings {
        endpoint: "http://127.0.0.1:1/ingest".into(),
        interval: Duration::from_secs(60),
        api_key: None,
        format,
        max_batch_bytes,
        max_batch_rows: 1000,
        timeout: Duration::from_secs(1),
        max_retry_wait: Duration::from_secs(1),
        backoff: (Duration::from_millis(1), Duration::from_millis(2)),
        agent_id: "agent-1".into(),
    }
}

/// Every batch, under each limit, as text.
fn wire_bytes() -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wire.db");
    let conn = open_writer(&path).expect("open the database");
    conn.execute_batch(ROWS).expect("insert rows");
    host_sample(&conn, 1_700_000_009_000_000_000, "/data");
    conn.execute_batch(POINTS).expect("insert points");
    host_sample(&conn, 1_700_000_012_000_000_000, "/");
    let pool = read_pool(&path).expect("read pool");

    let mut out = String::new();
    for format in [PushFormat::Native, PushFormat::Otlp] {
        // Plenty of room; a byte budget that cuts batches; a row limit that
        // lands inside a host sample; the cursor past the first rows.
        for (max_bytes, max_rows, cursor) in [
            (1 << 20, 1000, 0),
            (1024, 1000, 0),
            (1 << 20, 2, 0),
            (1 << 20, 1000, 2),
        ] {
            for table in Table::ALL {
                conn.execute(
                    "UPDATE push_cursors SET last_pushed_id = ?1 WHERE table_name = ?2",
                    rusqlite::params![cursor, table.name()],
                )
                .expect("set the cursor");
                let settings = settings(format, max_bytes);
                let built = build_batch(&pool, table, &settings, max_rows).expect("build a batch");
                let _ = writeln!(
                    out,
                    "== {format:?} {} max_bytes={max_bytes} max_rows={max_rows} cursor={cursor}",
                    table.name()
                );
                let Some(built) = built else {
                    let _ = writeln!(out, "(nothing)");
                    continue;
                };
                let mut body = Vec::new();
                flate2::read::GzDecoder::new(&built.body[..])
                    .read_to_end(&mut body)
                    .expect("gunzip");
                let _ = writeln!(
                    out,
                    "{} {} {} rows={} records={} ids={}-{}",
                    built.url,
                    built.content_type,
                    built.batch_id,
                    built.rows,
                    built.records,
                    built.first_id,
                    built.last_id
                );
                match format {
                    PushFormat::Native => {
                        out.push_str(&String::from_utf8(body).expect("native bodies are UTF-8"))
                    }
                    PushFormat::Otlp => out.push_str(&hex::encode(body)),
                }
                out.push('\n');
            }
        }
    }
    out
}

#[test]
fn wire_bytes_are_what_they_were() {
    let got = wire_bytes();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("OPENCLAW_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).expect("write the golden file");
        return;
    }
    let want = std::fs::read_to_string(&path).expect("the golden file");
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "line {} of {GOLDEN} differs", i + 1);
    }
    assert_eq!(got.lines().count(), want.lines().count(), "line count");
}
