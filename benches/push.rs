//! Draining a push backlog: time and peak RSS for the release daemon to push
//! a backlog of stored rows (1,000,000 by default) to a local receiver that
//! accepts everything, next to the time to write that backlog into SQLite in
//! one transaction, measured in the same run.
//!
//! `cargo bench --bench push` (`-- quick` for 200,000 rows).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use openclaw_trace_actors::records::{Batch, LlmCall, Source, Stamp};
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

async fn receive(body: web::Bytes, seen: web::Data<Seen>) -> HttpResponse {
    let mut json = Vec::new();
    if flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut json)
        .is_err()
    {
        return HttpResponse::BadRequest().finish();
    }
    seen.requests.fetch_add(1, Ordering::Relaxed);
    seen.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    seen.events
        .fetch_add(count(&json, br#""type":"llm_trace""#), Ordering::Relaxed);
    HttpResponse::Ok().finish()
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let rows: usize = if quick { 200_000 } else { 1_000_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("backlog.db");

    // The backlog, written straight into SQLite in one transaction.
    let stamp = Stamp {
        agent_id: "bench".into(),
        received_ns: 1_764_324_000_000_000_000,
        source: Source::Native,
    };
    let started = Instant::now();
    {
        let mut conn = schema::open_writer(&db).expect("open");
        let tx = conn.transaction().expect("tx");
        for chunk in 0..rows / 1000 {
            let calls = (0..1000)
                .map(|i| {
                    let n = chunk * 1000 + i;
                    LlmCall {
                        provider: "anthropic".into(),
                        model: "claude-sonnet-4".into(),
                        trace_id: Some(format!("00000000-0000-4000-8000-{n:012}")),
                        input_text: Some(format!("Summarise message {n} of the inbox, briefly.")),
                        output_text: Some(format!("Message {n}: a short summary.")),
                        prompt_tokens: Some(1200),
                        completion_tokens: Some(80),
                        total_tokens: Some(1280),
                        cost_usd: Some(0.0048),
                        latency_ms: Some(2140.5),
                        status: "ok".into(),
                        ..LlmCall::default()
                    }
                })
                .collect();
            store::insert_batch(&tx, &Batch::LlmCalls(calls), &stamp).expect("insert");
        }
        tx.commit().expect("commit");
    }
    let write_s = started.elapsed().as_secs_f64();

    // The receiver, in this process.
    let seen = web::Data::new(Seen::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/ingest", listener.local_addr().expect("addr"));
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
