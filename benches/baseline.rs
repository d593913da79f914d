//! The baselines that `benches/run.sh` measures in the same run as the
//! release daemon, built with the same release profile
//! (`cargo build --release --bench baseline`):
//!
//! - `serve`: an actix-web server with two HTTP workers on a machine of
//!   two cores or more (the daemon has one), whose `POST /v1/traces`
//!   decodes the native JSON body with the daemon's own decoder (`wire::native::decode`, the same limits) and stores nothing,
//!   answering 202; an `application/x-protobuf` body is decoded as OTLP
//!   spans (`wire::otlp::decode_signal`) and answered 200, empty. Prints
//!   `listening 127.0.0.1:PORT` once bound.
//! - `otlp-body PATH`: writes one protobuf `ExportTraceServiceRequest` of
//!   100 OpenClaw-like spans whose trace id is the 16-byte marker
//!   [`MARKER`] (100 times); `benches/wrk/otlp_spans.lua` replaces it with a
//!   random trace id in every request.
//! - `sqlite-spans ROWS`: inserts span rows into a fresh file of the daemon's
//!   schema (`schema::open_writer`) with the store's own statements
//!   (`store::insert_batch`), 100-span batches decoded from the same bodies
//!   (each with a random trace id, decoding not timed), with the store's
//!   WAL settings at the default bound (`store::set_wal_limits`), committing every
//!   `COMMIT_ROWS` rows (default 10,000), until the file holds ROWS rows.
//!   Prints one JSON line per `WINDOW_ROWS` rows (default 250,000) with the
//!   rate in that window, then a summary line. `SEQUENTIAL_TRACE_IDS=1`
//!   numbers the traces instead of drawing them at random.
//!
//! `cargo bench --bench baseline` with no mode (what `cargo bench` does)
//! prints this usage and exits.

mod common;

use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use common::otlp::{base_ns, request, SPANS_PER_REQUEST, SPAN_STEP_NS};
use openclaw_trace::wire::limits::Limits;
use openclaw_trace::wire::native::{self, Kind};
use openclaw_trace::wire::otlp::{decode_signal, Encoding};
use openclaw_trace_actors::metrics::probes::fs_usage;
use openclaw_trace_actors::records::{Source, Stamp};
use openclaw_trace_actors::rotate::RotationSettings;
use openclaw_trace_actors::stats::Signal;
use openclaw_trace_actors::{schema, store};

/// The placeholder trace id in the body `otlp-body` writes.
const MARKER: &[u8; 16] = b"TRACEIDPLACEHOLD";

fn usage() -> ! {
    eprintln!(
        "usage: baseline serve | baseline otlp-body PATH | baseline sqlite-spans ROWS\n\
         (run by benches/run.sh; see the top of benches/baseline.rs)"
    );
    std::process::exit(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve"] => serve().expect("serve"),
        ["otlp-body", path] => otlp_body(path),
        ["sqlite-spans", rows] => sqlite_spans(rows.parse().expect("ROWS: a number")),
        _ => usage(),
    }
}

/// Two HTTP workers on a machine with two cores or more: the daemon's count
/// when issue 10 set this bar. The daemon now runs one (`src/lib.rs`); the
/// baseline keeps two, so the bar does not drop with it.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

async fn traces(req: actix_web::HttpRequest, body: web::Bytes) -> HttpResponse {
    let protobuf = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/x-protobuf"));
    if protobuf {
        // OTLP: decoded as the daemon decodes it, answered with an empty
        // ExportTraceServiceResponse (no partial success).
        return match decode_signal(Signal::Spans, Encoding::Protobuf, &body, &Limits::default()) {
            Ok(decoded) if !decoded.batch.is_empty() => HttpResponse::Ok()
                .content_type("application/x-protobuf")
                .finish(),
            Ok(_) => HttpResponse::BadRequest().body("no spans"),
            Err(e) => HttpResponse::BadRequest().body(e.to_string()),
        };
    }
    match native::decode(Kind::LlmCall, &body, &Limits::default()) {
        Ok(batch) => {
            HttpResponse::Accepted().json(serde_json::json!({ "accepted": batch.len(), "ids": [] }))
        }
        Err(e) => HttpResponse::BadRequest().body(e.to_string()),
    }
}

fn serve() -> std::io::Result<()> {
    actix_rt::System::new().block_on(async {
        let server = HttpServer::new(|| {
            App::new()
                .app_data(web::PayloadConfig::new(4 << 20))
                .route("/v1/traces", web::post().to(traces))
        })
        .workers(workers())
        .disable_signals()
        .bind("127.0.0.1:0")?;
        let addr = server.addrs()[0];
        println!("listening {addr}");
        server.run().await
    })
}

/// Start times of the body file's spans: placeholders the wrk script
/// finds (through `<body>.times`) and overwrites with rising times.
const TIME_MARK: u64 = 0x5449_4D45_0000_0000;

fn otlp_body(path: &str) {
    let body = request(0, *MARKER, TIME_MARK);
    let found = body.windows(MARKER.len()).filter(|w| w == MARKER).count();
    assert_eq!(
        found, SPANS_PER_REQUEST,
        "the marker is each span's trace id and nothing else"
    );
    // Where each span's start and end time sits (fixed64, little-endian).
    let at = |value: u64| {
        let bytes = value.to_le_bytes();
        let hits: Vec<usize> = (0..body.len() - 7)
            .filter(|&i| body[i..i + 8] == bytes)
            .collect();
        assert_eq!(hits.len(), 1, "time {value:#x} appears once in the body");
        hits[0]
    };
    let offsets: String = (1..=SPANS_PER_REQUEST as u64)
        .map(|id| {
            let start = TIME_MARK + id * SPAN_STEP_NS;
            format!("{} {}\n", at(start), at(start + 500_000_000))
        })
        .collect();
    std::fs::write(path, &body).expect("write the body");
    std::fs::write(format!("{path}.times"), offsets).expect("write the time offsets");
    println!("{} bytes, {SPANS_PER_REQUEST} spans", body.len());
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| v.parse().expect("a number"))
}

/// Peak resident memory of this process (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn sqlite_spans(rows: usize) {
    let commit_rows = env_or("COMMIT_ROWS", 10_000).max(SPANS_PER_REQUEST);
    let window_rows = env_or("WINDOW_ROWS", 250_000).max(commit_rows);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("raw.db");
    let mut conn = schema::open_writer(&db).expect("open");
    // The WAL checkpointed as the store's writer does it at the default
    // bound on this volume (the daemon's separate checkpointer is not here).
    let settings = RotationSettings {
        interval: Duration::from_secs(600),
        first_delay: Duration::from_secs(600),
        max_age: None,
        max_db_bytes: openclaw_trace::config::DEFAULT_MAX_DB_BYTES,
        disk_max_percent: 90.0,
        db_path: db.clone(),
        db_dir: dir.path().to_path_buf(),
        chunk_rows: 2000,
    };
    let capacity = fs_usage(dir.path()).map_or(0, |fs| fs.capacity_bytes());
    store::set_wal_limits(&conn, &settings, capacity);
    let stamp = Stamp {
        agent_id: "bench".into(),
        received_ns: 1,
        source: Source::Otlp,
        openclaw_metric_prefix: openclaw_trace_actors::llm_view::DEFAULT_METRIC_PREFIX.into(),
    };
    let pricing = openclaw_trace_actors::rollup::Pricing::from(std::sync::Arc::new(
        openclaw_trace_actors::prices::PriceTable::builtin(),
    ));
    let limits = Limits::default();
    // As the daemon gets them from wrk; SEQUENTIAL_TRACE_IDS=1 numbers the
    // traces instead (what `cargo bench --bench otlp` sends), to see what
    // the trace keys' inserts at random places cost.
    let sequential = std::env::var_os("SEQUENTIAL_TRACE_IDS").is_some();
    let base = base_ns();
    let batch = |n: usize| {
        let trace = if sequential {
            n as u128
        } else {
            fastrand::u128(..)
        };
        let body = request(n, trace.to_be_bytes(), base);
        decode_signal(Signal::Spans, Encoding::Protobuf, &body, &limits)
            .expect("decode")
            .batch
    };
    let (mut stored, mut n) = (0usize, 0usize);
    let (mut timed, mut window_timed, mut window_start) = (Duration::ZERO, Duration::ZERO, 0usize);
    let wall = Instant::now();
    while stored < rows {
        // Decoded before the clock starts: the baseline is SQLite's part.
        let batches: Vec<_> = (0..commit_rows / SPANS_PER_REQUEST)
            .map(|_| {
                n += 1;
                batch(n)
            })
            .collect();
        let start = Instant::now();
        let mut rollup = openclaw_trace_actors::rollup::Delta::default();
        let tx = conn.transaction().expect("tx");
        for b in &batches {
            stored += store::insert_batch(&tx, b, &stamp, &pricing, &mut rollup)
                .expect("insert")
                .ids
                .len();
        }
        rollup.apply(&tx).expect("rollup");
        tx.commit().expect("commit");
        let took = start.elapsed();
        timed += took;
        window_timed += took;
        if stored - window_start >= window_rows || stored >= rows {
            let file = |suffix: &str| {
                std::fs::metadata(format!("{}{suffix}", db.display())).map_or(0, |m| m.len())
            };
            println!(
                "{}",
                serde_json::json!({
                    "rows": stored,
                    "window_rows": stored - window_start,
                    "rows_per_s": (stored - window_start) as f64 / window_timed.as_secs_f64(),
                    "file_bytes": file("") + file("-wal"),
                })
            );
            window_start = stored;
            window_timed = Duration::ZERO;
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "summary": true,
            "rows": stored,
            "commit_rows": commit_rows,
            "rows_per_s": stored as f64 / timed.as_secs_f64(),
            "timed_s": timed.as_secs_f64(),
            "wall_s": wall.elapsed().as_secs_f64(),
            "peak_rss_kib": peak_rss_kib(),
        })
    );
}
