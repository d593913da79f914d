//! The owner's view at size: `/v1/llm/summary` grouped by model and day over
//! 1,000,000 `llm_calls` rows spread over 30 days, and `/v1/status` and
//! `/metrics` at that size, on the release daemon. The baseline, measured in
//! the same run, is the same grouping done by SQLite straight over
//! `llm_calls` (what the summary would cost without its hourly rollup).
//!
//! `cargo bench --bench summary` (add `-- quick` for 200,000 rows). Prints
//! medians of 15 requests each.

mod common;

use std::time::{Duration, Instant};

use common::{median, Daemon};
use openclaw_trace_actors::prices::PriceTable;
use openclaw_trace_actors::records::{Batch, LlmCall, Source, Stamp};
use openclaw_trace_actors::rollup::Pricing;
use openclaw_trace_actors::{schema, store};

const MODELS: [(&str, &str); 8] = [
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-opus-4-1"),
    ("openai", "gpt-5"),
    ("openai", "gpt-4o-mini"),
    ("google", "gemini-2.5-pro"),
    ("google", "gemini-2.5-flash"),
    ("xai", "grok-4"),
];

fn call(i: usize, now_ns: i64, span_ns: i64) -> LlmCall {
    let r = fastrand::u64(..);
    let (provider, model) = MODELS[(r % 8) as usize];
    LlmCall {
        time_ns: Some(now_ns - (fastrand::u64(..) % span_ns as u64) as i64),
        trace_id: Some(format!("{i:032x}")),
        session_id: Some(format!("telegram:{}", fastrand::u32(..300))),
        provider: provider.into(),
        model: model.into(),
        prompt_tokens: Some(fastrand::i64(100..20_000)),
        completion_tokens: Some(fastrand::i64(10..2_000)),
        cache_read_tokens: Some(fastrand::i64(0..50_000)),
        cache_write_tokens: Some(fastrand::i64(0..5_000)),
        cost_usd: (r % 2 == 0).then(|| fastrand::f64() * 0.1),
        latency_ms: Some(200.0 + fastrand::f64() * fastrand::f64() * 30_000.0),
        status: if r % 50 == 0 { "error" } else { "ok" }.into(),
        channel: Some(["telegram", "slack", "web"][(r % 3) as usize].into()),
        ..LlmCall::default()
    }
}

fn time_get(agent: &ureq::Agent, url: &str, runs: usize) -> (f64, usize) {
    let mut ms = Vec::with_capacity(runs);
    let mut bytes = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let body = agent
            .get(url)
            .call()
            .expect("get")
            .into_body()
            .read_to_string()
            .expect("body");
        ms.push(start.elapsed().as_secs_f64() * 1e3);
        bytes = body.len();
    }
    (median(ms), bytes)
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let rows = if quick { 200_000 } else { 1_000_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("summary.db");
    let now_ns = openclaw_trace_actors::time::now_ns();
    let span_ns = 30 * 86_400_000_000_000i64;
    let fill = Instant::now();
    {
        let mut conn = schema::open_writer(&db).expect("open");
        let stamp = Stamp {
            agent_id: "bench".into(),
            received_ns: now_ns,
            source: Source::Native,
            openclaw_metric_prefix: openclaw_trace_actors::llm_view::DEFAULT_METRIC_PREFIX.into(),
        };
        // Priced as the daemon prices, and marked so: the daemon finds the
        // file current and has nothing to re-price.
        let pricing = Pricing::from(std::sync::Arc::new(PriceTable::builtin()));
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('prices_fingerprint', ?1)",
            [&pricing.fingerprint],
        )
        .expect("fingerprint");
        for chunk in 0..rows / 100_000 {
            let tx = conn.transaction().expect("tx");
            let mut rollup = openclaw_trace_actors::rollup::Delta::default();
            for b in 0..100 {
                let batch = Batch::LlmCalls(
                    (0..1000)
                        .map(|i| call(chunk * 100_000 + b * 1000 + i, now_ns, span_ns))
                        .collect(),
                );
                store::insert_batch(&tx, &batch, &stamp, &pricing, &mut rollup).expect("insert");
            }
            rollup.apply(&tx).expect("rollup");
            tx.commit().expect("commit");
        }
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .expect("checkpoint");
    }
    let fill_s = fill.elapsed().as_secs_f64();
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    println!(
        "filled {rows} llm_calls rows in {fill_s:.1} s through the store's insert (rollup kept as it goes); file {:.0} MB",
        size as f64 / 1e6
    );

    // The baseline: SQLite grouping the calls themselves.
    let conn = common_open(&db);
    let mut base = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM (SELECT model, time_ns / 86400000000000 AS day, count(*),
                    sum(prompt_tokens), sum(completion_tokens), sum(cache_read_tokens),
                    sum(cache_write_tokens), sum(cost_usd), sum(status <> 'ok')
                 FROM llm_calls WHERE time_ns >= ?1 GROUP BY 1, 2)",
                [now_ns - span_ns],
                |r| r.get(0),
            )
            .expect("baseline");
        assert!(n > 0);
        base.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let base = median(base);
    // What `/v1/status` did before it kept counts: count every table.
    let mut counted = Vec::new();
    let mut conn = conn;
    for _ in 0..3 {
        let start = Instant::now();
        let tables = openclaw_trace_actors::query::count_rows(&mut conn).expect("count");
        assert_eq!(tables[0].rows as usize, rows);
        counted.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let counted = median(counted);
    drop(conn);

    // The daemon's first start on this file prices it and builds the rollup.
    let start = Instant::now();
    let d = Daemon::start_on(
        dir,
        &db,
        &[
            // Nothing may go while measuring: the rows span 30 days.
            ("TRACE_DB_MAX_BYTES", "4GiB"),
            ("TRACE_DB_ROTATE_DAYS", "0"),
            ("TRACE_DISK_MAX_PERCENT", "100"),
        ],
    );
    let first_start_s = start.elapsed().as_secs_f64();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let runs = 15;
    let q = |path: &str| format!("{}{path}", d.base);
    let (by_model_day, bytes) = time_get(
        &agent,
        &q("/v1/llm/summary?since=30d&group_by=model,day"),
        runs,
    );
    let (by_session, _) = time_get(
        &agent,
        &q("/v1/llm/summary?since=30d&group_by=session&limit=1000"),
        runs,
    );
    let (day, _) = time_get(
        &agent,
        &q("/v1/llm/summary?since=24h&group_by=hour,model"),
        runs,
    );
    let (calls, _) = time_get(&agent, &q("/v1/llm/calls?since=30d&limit=50"), runs);
    let (status, _) = time_get(&agent, &q("/v1/status"), runs);
    let (metrics, _) = time_get(&agent, &q("/metrics"), runs);
    println!("start on the file (row counts taken once): {first_start_s:.2} s");
    println!("SQLite GROUP BY model, day over llm_calls (baseline): {base:.1} ms");
    println!(
        "/v1/llm/summary 30d by model,day: {by_model_day:.1} ms median ({bytes} bytes), ratio to baseline {:.3}",
        by_model_day / base
    );
    println!("/v1/llm/summary 30d by session (300 groups): {by_session:.1} ms");
    println!("/v1/llm/summary 24h by hour,model: {day:.1} ms");
    println!("/v1/llm/calls 30d, 50 rows: {calls:.1} ms");
    println!("/v1/status: {status:.2} ms (counting the tables, as it did before: {counted:.1} ms)");
    println!("/metrics: {metrics:.2} ms");
    println!("daemon peak RSS: {} KiB", d.peak_rss_kib());
    let status: serde_json::Value = serde_json::from_str(
        &agent
            .get(q("/v1/status"))
            .call()
            .expect("status")
            .into_body()
            .read_to_string()
            .expect("body"),
    )
    .expect("status json");
    assert_eq!(
        status["tables"]["llm_calls"]["rows"], rows,
        "every row still held after the measurements"
    );
}

fn common_open(db: &std::path::Path) -> openclaw_trace_actors::rusqlite::Connection {
    openclaw_trace_actors::rusqlite::Connection::open_with_flags(
        db,
        openclaw_trace_actors::rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open")
}
