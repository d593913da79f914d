//! Native ingest throughput: records/s through the real daemon (release
//! build, real HTTP on loopback, real SQLite file) at 1 and at 100 records
//! per request, next to inserting the same rows straight into SQLite in one
//! transaction with the store's own statements, measured in the same run.
//!
//! `cargo bench --bench ingest` (add `-- quick` for a short run). Prints
//! medians over several runs and the ratio to the baseline.
//!
//! The daemon's side is driven by the benchmarks' own blocking HTTP client
//! (`benches/common`), which is itself the bottleneck at one record per
//! request (it measured 6.7-10k requests/s where `wrk` drives the same
//! daemon at about 45k): its rates understate the daemon, and BENCHMARKS.md
//! no longer reports them. `benches/run.sh` measures HTTP ingest with `wrk`
//! (`ingest`, `otlp`); this bench stays for its raw-SQLite baseline and as
//! a quick check that ingest works end to end.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{blast, llm_call, median, Daemon};

use openclaw_trace_actors::records::{Batch, Source, Stamp};
use openclaw_trace_actors::{schema, store};

/// Client connection counts measured: few (an agent) and many (a burst).
const CONNECTIONS: [usize; 2] = [4, 16];

fn record_json(i: usize) -> String {
    format!(
        r#"{{"provider":"anthropic","model":"claude-sonnet-4","input_text":"Summarise message {i} of the inbox for the owner, briefly.","output_text":"Message {i}: a short summary of what it says.","prompt_tokens":1200,"completion_tokens":80,"total_tokens":1280,"cost_usd":0.0048,"latency_ms":2140.5,"session_id":"telegram:42","metadata":{{"channel":"telegram"}}}}"#
    )
}

/// Inserts `records` rows in one transaction, `per_batch` rows per insert
/// call; returns records/s.
fn baseline(records: usize, per_batch: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut conn = schema::open_writer(&dir.path().join("b.db")).expect("open");
    let stamp = Stamp {
        agent_id: "bench".into(),
        received_ns: 1,
        source: Source::Native,
        openclaw_metric_prefix: openclaw_trace_actors::llm_view::DEFAULT_METRIC_PREFIX.into(),
    };
    let batches: Vec<Batch> = (0..records / per_batch)
        .map(|b| {
            Batch::LlmCalls(
                (0..per_batch)
                    .map(|i| llm_call(b * per_batch + i))
                    .collect(),
            )
        })
        .collect();
    let start = Instant::now();
    let pricing = openclaw_trace_actors::rollup::Pricing::from(std::sync::Arc::new(
        openclaw_trace_actors::prices::PriceTable::builtin(),
    ));
    let mut rollup = openclaw_trace_actors::rollup::Delta::default();
    let tx = conn.transaction().expect("tx");
    for batch in &batches {
        store::insert_batch(&tx, batch, &stamp, &pricing, &mut rollup).expect("insert");
    }
    rollup.apply(&tx).expect("rollup");
    tx.commit().expect("commit");
    records as f64 / start.elapsed().as_secs_f64()
}

/// Sends `records` records through a fresh daemon, `per_request` per POST,
/// over `connections` keep-alive connections; returns records/s.
fn through_daemon(records: usize, per_request: usize, connections: usize) -> f64 {
    let daemon = Daemon::start();
    let bodies: Vec<Vec<u8>> = (0..records / per_request)
        .map(|r| {
            let items: Vec<String> = (0..per_request)
                .map(|i| record_json(r * per_request + i))
                .collect();
            if per_request == 1 {
                items.concat().into_bytes()
            } else {
                format!("[{}]", items.join(",")).into_bytes()
            }
        })
        .collect();
    let url = format!("{}/v1/traces", daemon.base);
    let elapsed = blast(&url, "application/json", Arc::new(bodies), connections, 202);
    records as f64 / elapsed.as_secs_f64()
}

fn main() {
    println!("note: the daemon rates below are limited by this bench's own HTTP client; benches/run.sh measures the daemon with wrk");
    let quick = std::env::args().any(|a| a == "quick");
    let runs = if quick { 3 } else { 5 };
    println!("median records/s over {runs} runs, interleaved");
    println!("| records per request | client connections | records | baseline: straight into SQLite, one transaction | through the daemon | daemon / baseline |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (per_request, records) in [
        (1usize, if quick { 5_000 } else { 20_000 }),
        (100, if quick { 50_000 } else { 200_000 }),
    ] {
        for connections in CONNECTIONS {
            let mut base = Vec::new();
            let mut daemon = Vec::new();
            // Interleave so noise from the shared machine hits both alike.
            for _ in 0..runs {
                base.push(baseline(records, per_request));
                daemon.push(through_daemon(records, per_request, connections));
            }
            let (b, d) = (median(base), median(daemon));
            println!(
                "| {per_request} | {connections} | {records} | {b:.0} | {d:.0} | {:.3} |",
                d / b
            );
        }
    }
}
