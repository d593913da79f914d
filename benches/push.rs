//! Draining a push backlog: time and peak RSS for the release daemon to push
//! a backlog of stored rows (1,000,000 by default) to a local receiver that
//! accepts everything, next to the time to write that backlog into SQLite in
//! one transaction, measured in the same run.
//!
//! `cargo bench --bench push` (`-- quick` for 200,000 rows; `-- otlp` for the
//! OTLP push format, where each LLM call is a log record).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use common::llm_call;
use openclaw_trace_actors::records::{Batch, Source, Stamp};
use openclaw_trace_actors::{schema, store};

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    events: AtomicU64,
    bytes: AtomicU64,
}

fn count(haystack: &[u8], needle: &[u8]) -> u64 {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count() as u64
}

async fn receive(
    req: actix_web::HttpRequest,
    body: web::Bytes,
    seen: web::Data<Seen>,
) -> HttpResponse {
    use prost::Message;
    let mut raw = Vec::new();
    if flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut raw)
        .is_err()
    {
        return HttpResponse::BadRequest().finish();
    }
    let records = if req.path() == "/v1/logs" {
        let Ok(request) =
            opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::decode(
                raw.as_slice(),
            )
        else {
            return HttpResponse::BadRequest().finish();
        };
        request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len() as u64)
            .sum()
    } else {
        count(&raw, br#""type":"llm_trace""#)
    };
    seen.requests.fetch_add(1, Ordering::Relaxed);
    seen.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    seen.events.fetch_add(records, Ordering::Relaxed);
    HttpResponse::Ok().finish()
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let format = if std::env::args().any(|a| a == "otlp") {
        "otlp"
    } else {
        "native"
    };
    let rows: usize = if quick { 200_000 } else { 1_000_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("backlog.db");

    // The backlog, written straight into SQLite in one transaction.
    let stamp = Stamp {
        agent_id: "bench".into(),
        received_ns: 1_764_324_000_000_000_000,
        source: Source::Native,
        openclaw_metric_prefix: openclaw_trace_actors::llm_view::DEFAULT_METRIC_PREFIX.into(),
    };
    let started = Instant::now();
    {
        let mut conn = schema::open_writer(&db).expect("open");
        let pricing = openclaw_trace_actors::rollup::Pricing::none();
        let mut rollup = openclaw_trace_actors::rollup::Delta::default();
        let tx = conn.transaction().expect("tx");
        for chunk in 0..rows / 1000 {
            let calls = (0..1000).map(|i| llm_call(chunk * 1000 + i)).collect();
            store::insert_batch(&tx, &Batch::LlmCalls(calls), &stamp, &pricing, &mut rollup)
                .expect("insert");
        }
        rollup.apply(&tx).expect("rollup");
        tx.commit().expect("commit");
    }
    let write_s = started.elapsed().as_secs_f64();

    // The receiver, in this process.
    let seen = web::Data::new(Seen::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let url = if format == "otlp" {
        base
    } else {
        format!("{base}/ingest")
    };
    {
        let seen = seen.clone();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                HttpServer::new(move || {
                    App::new()
                        .app_data(seen.clone())
                        .app_data(web::PayloadConfig::new(64 << 20))
                        .default_service(web::to(receive))
                })
                .workers(1)
                .listen(listener)
                .expect("listen")
                .run()
                .await
                .expect("receiver");
            })
        });
    }

    let mut child = Command::new(env!("CARGO_BIN_EXE_openclaw-trace"))
        .env("TRACE_LISTEN_ADDR", "127.0.0.1:0")
        .env("TRACE_DB_PATH", &db)
        .env("TRACE_METRICS_INTERVAL", "1h")
        .env("TRACE_PUSH_ENDPOINT", &url)
        .env("TRACE_PUSH_INTERVAL", "100ms")
        .env("TRACE_PUSH_FORMAT", format)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn daemon");
    let pid = child.id();
    let status_of = |key: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    };
    let started = Instant::now();
    while seen.events.load(Ordering::Relaxed) < rows as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "drain did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let drain_s = started.elapsed().as_secs_f64();
    let peak_kib = status_of("VmHWM:");
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    println!("push format: {format}");
    println!(
        "| rows | write into SQLite, one transaction | drain to the receiver | rows/s pushed | batches | compressed bytes | daemon peak RSS |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {rows} | {write_s:.2} s | {drain_s:.2} s | {:.0} | {} | {} | {:.1} MiB |",
        rows as f64 / drain_s,
        seen.requests.load(Ordering::Relaxed),
        seen.bytes.load(Ordering::Relaxed),
        peak_kib as f64 / 1024.0
    );
}
