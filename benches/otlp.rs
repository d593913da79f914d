//! OTLP span ingest: spans/s stored through the real daemon with 100-span
//! protobuf requests over several connections, next to inserting the same
//! span rows straight into SQLite in one transaction, measured in the same
//! run; and the daemon's peak RSS during the load.
//!
//! `cargo bench --bench otlp` (add `-- quick` for a short run).
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

use common::otlp::{base_ns, request, SPANS_PER_REQUEST};
use common::{blast, median, Daemon};
use openclaw_trace::wire::limits::Limits;
use openclaw_trace::wire::otlp::{decode_signal, Encoding};
use openclaw_trace_actors::records::{Source, Stamp};
use openclaw_trace_actors::stats::Signal;
use openclaw_trace_actors::{schema, store};

const CONNECTIONS: [usize; 2] = [4, 16];

/// Inserts the spans of `bodies` with the store's statements in one
/// transaction (decoding done beforehand, not timed); returns spans/s.
fn baseline(bodies: &[Vec<u8>]) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut conn = schema::open_writer(&dir.path().join("b.db")).expect("open");
    let stamp = Stamp {
        agent_id: "bench".into(),
        received_ns: 1,
        source: Source::Otlp,
        openclaw_metric_prefix: openclaw_trace_actors::llm_view::DEFAULT_METRIC_PREFIX.into(),
    };
    let batches: Vec<_> = bodies
        .iter()
        .map(|b| {
            decode_signal(Signal::Spans, Encoding::Protobuf, b, &Limits::default())
                .expect("decode")
                .batch
        })
        .collect();
    let spans: usize = batches.iter().map(|b| b.len()).sum();
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
    spans as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    println!("note: the daemon rates below are limited by this bench's own HTTP client; benches/run.sh measures the daemon with wrk");
    let quick = std::env::args().any(|a| a == "quick");
    let (runs, requests) = if quick { (3, 200) } else { (5, 1000) };
    let base = base_ns();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..requests)
            .map(|n| request(n, (n as u128 + 1).to_be_bytes(), base))
            .collect(),
    );
    let spans = requests * SPANS_PER_REQUEST;
    println!("{spans} spans in {requests} protobuf requests of {SPANS_PER_REQUEST} (~{} bytes each); median of {runs} runs, interleaved", bodies[0].len());
    println!("| client connections | baseline: straight into SQLite, one transaction (spans/s) | through the daemon (spans/s) | daemon / baseline | daemon peak RSS (median) |");
    println!("| --- | --- | --- | --- | --- |");
    for connections in CONNECTIONS {
        let (mut base, mut daemon, mut rss) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            base.push(baseline(&bodies));
            let d = Daemon::start();
            let elapsed = blast(
                &format!("{}/v1/traces", d.base),
                "application/x-protobuf",
                Arc::clone(&bodies),
                connections,
                200,
            );
            daemon.push(spans as f64 / elapsed.as_secs_f64());
            rss.push(d.peak_rss_kib() as f64);
        }
        let (b, d) = (median(base), median(daemon));
        println!(
            "| {connections} | {b:.0} | {d:.0} | {:.3} | {:.1} MiB |",
            d / b,
            median(rss) / 1024.0
        );
    }
}
