//! What the benchmarks share: a release daemon on a fresh database, a load
//! of prepared bodies sent over keep-alive connections, medians.

#![allow(dead_code)] // each benchmark uses a different part

pub mod otlp;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A daemon started for one measurement.
pub struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts the benchmark-built daemon on port 0 with an empty database.
    pub fn start() -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("bench.db");
        Daemon::start_on(dir, &db, &[])
    }

    /// Starts the daemon on the file `db` in `dir` (kept until the daemon
    /// is dropped), with extra `env`.
    pub fn start_on(dir: tempfile::TempDir, db: &std::path::Path, env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_openclaw-trace"))
            .env("TRACE_LISTEN_ADDR", "127.0.0.1:0")
            .env("TRACE_DB_PATH", db)
            .env("TRACE_LOG_LEVEL", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn daemon");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines.next().expect("daemon exited").expect("read");
            let v: serde_json::Value = serde_json::from_str(&line).expect("json log");
            if v["msg"] == "listening" {
                break v["addr"].as_str().expect("addr").to_string();
            }
        };
        thread::spawn(move || for _ in lines {});
        Daemon {
            child,
            base: format!("http://{addr}"),
            _dir: dir,
        }
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// POSTs every body to `url` over `connections` keep-alive connections,
/// expecting `status` for each; returns the elapsed time.
pub fn blast(
    url: &str,
    content_type: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    connections: usize,
    status: u16,
) -> Duration {
    let start = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|w| {
            let (bodies, url, content_type) = (
                Arc::clone(&bodies),
                url.to_string(),
                content_type.to_string(),
            );
            thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(120)))
                    .build()
                    .into();
                for body in bodies.iter().skip(w).step_by(connections) {
                    let r = agent
                        .post(&url)
                        .header("Content-Type", &content_type)
                        .send(body.as_slice())
                        .expect("request");
                    assert_eq!(r.status(), status);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    start.elapsed()
}

/// The median of `xs`.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    xs[xs.len() / 2]
}

/// The LLM call the benchmarks store: the same fields as their JSON bodies.
pub fn llm_call(i: usize) -> openclaw_trace_actors::records::LlmCall {
    let serde_json::Value::Object(metadata) = serde_json::json!({"channel": "telegram"}) else {
        unreachable!("an object literal")
    };
    openclaw_trace_actors::records::LlmCall {
        provider: "anthropic".into(),
        model: "claude-sonnet-4".into(),
        input_text: Some(format!(
            "Summarise message {i} of the inbox for the owner, briefly."
        )),
        output_text: Some(format!("Message {i}: a short summary of what it says.")),
        prompt_tokens: Some(1200),
        completion_tokens: Some(80),
        total_tokens: Some(1280),
        cost_usd: Some(0.0048),
        latency_ms: Some(2140.5),
        status: "ok".into(),
        session_id: Some("telegram:42".into()),
        trace_id: Some(format!("00000000-0000-4000-8000-{i:012}")),
        metadata: Some(metadata),
        ..openclaw_trace_actors::records::LlmCall::default()
    }
}
