//! Test harness: the real `openclaw-trace` binary on port 0 with a
//! temporary database file, a plain HTTP client, and a separate SQLite
//! connection to check what was committed.

#![allow(dead_code)] // each test file uses a different part of the harness

pub mod fixtures;
pub mod openclaw;
pub mod receiver;
pub mod tmpfs;
pub mod webdriver;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long to wait for the daemon to start or stop before failing the test
/// (a hang guard, not a performance bound).
const PATIENCE: Duration = Duration::from_secs(30);

/// A running daemon.
pub struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The SQLite file.
    pub db_path: PathBuf,
    /// Log lines (JSON) printed so far.
    pub logs: Arc<Mutex<Vec<String>>>,
    /// Extra variables, kept for a restart.
    env: Vec<(String, String)>,
    /// Holds the temporary directory until the last daemon on it is gone.
    dir: Arc<tempfile::TempDir>,
}

impl Daemon {
    /// Starts the daemon with a fresh database and extra `env` variables.
    pub fn start(env: &[(&str, &str)]) -> Daemon {
        Daemon::start_configured(None, env, |_| {})
    }

    /// Starts the daemon on the database file `db_path` (a directory the
    /// test owns, such as a mounted tmpfs).
    pub fn start_at(db_path: &Path, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_configured(Some(db_path), env, |_| {})
    }

    /// Starts the daemon like [`Daemon::start`], with its file descriptor
    /// limit (soft and hard) set to `nofile`.
    pub fn start_with_fd_limit(env: &[(&str, &str)], nofile: u64) -> Daemon {
        Daemon::start_configured(None, env, |cmd| {
            let limit = libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            };
            // SAFETY: setrlimit(2) is async-signal-safe and touches no memory
            // of the parent; the closure runs in the child before exec.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        })
    }

    /// Starts the daemon like [`Daemon::start`], with its umask set to
    /// `mask` (so a test can show the modes it creates files with).
    pub fn start_with_umask(env: &[(&str, &str)], mask: u32) -> Daemon {
        Daemon::start_configured(None, env, |cmd| {
            // SAFETY: umask(2) is async-signal-safe and touches no memory of
            // the parent; the closure runs in the child before exec.
            unsafe {
                cmd.pre_exec(move || {
                    libc::umask(mask as libc::mode_t);
                    Ok(())
                });
            }
        })
    }

    /// Starts the daemon on `db_path` (a fresh temporary file when `None`)
    /// with `env`, letting `configure` adjust its command.
    pub fn start_configured(
        db_path: Option<&Path>,
        env: &[(&str, &str)],
        configure: impl FnOnce(&mut Command),
    ) -> Daemon {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let db_path = db_path.map_or_else(|| dir.path().join("trace.db"), Path::to_path_buf);
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Daemon::spawn_with(dir, db_path, env, configure)
    }

    fn spawn(dir: Arc<tempfile::TempDir>, db_path: PathBuf, env: Vec<(String, String)>) -> Daemon {
        Daemon::spawn_with(dir, db_path, env, |_| {})
    }

    fn spawn_with(
        dir: Arc<tempfile::TempDir>,
        db_path: PathBuf,
        env: Vec<(String, String)>,
        configure: impl FnOnce(&mut Command),
    ) -> Daemon {
        let mut cmd = daemon_command(&db_path);
        cmd.stdout(Stdio::piped());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        configure(&mut cmd);
        let mut child = cmd.spawn().expect("spawn openclaw-trace");
        let stdout = child.stdout.take().expect("stdout is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if v["msg"] == "listening" {
                            let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_string());
                        }
                    }
                    logs.lock().expect("log lock").push(line);
                }
            });
        }
        let addr = rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            panic!(
                "daemon did not start; logs: {:?}",
                logs.lock().expect("log lock")
            )
        });
        let daemon = Daemon {
            child,
            base: format!("http://{addr}"),
            db_path,
            logs,
            env,
            dir,
        };
        // The host sampler commits its first sample right after start; wait
        // for it so a fault a test arms in the store hits the test's request.
        daemon.wait_first_sample();
        daemon
    }

    /// Waits until the first host sample is committed (a hang guard of a
    /// minute, not a performance bound: a busy machine may take seconds).
    fn wait_first_sample(&self) {
        let start = Instant::now();
        loop {
            let status = self.status();
            if status["tables"]["metric_points"]["rows"].as_u64() > Some(0) {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE * 2,
                "the first host sample was not stored within {:?}: {status}",
                PATIENCE * 2
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `http://ADDR` of an extra listener (`otlp` or `health`) as
    /// `/v1/status` reports it; fails the test when it is not listening.
    pub fn extra_base(&self, role: &str) -> String {
        let status = self.status();
        let listener = &status["listeners"][role];
        assert_eq!(listener["state"], "listening", "{role}: {listener}");
        format!("http://{}", listener["addr"].as_str().expect("addr"))
    }

    /// The daemon's process id (to read its `/proc` entries).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` without waiting.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Sends `signal` and waits for the process to exit.
    pub fn stop_with(
        mut self,
        signal: i32,
    ) -> (
        ExitStatus,
        Arc<tempfile::TempDir>,
        PathBuf,
        Vec<(String, String)>,
    ) {
        self.signal(signal);
        let status = self.wait_exit();
        let dir = Arc::clone(&self.dir);
        let env = std::mem::take(&mut self.env);
        (status, dir, self.db_path.clone(), env)
    }

    /// Stops with SIGTERM and starts again on the same database.
    pub fn restart(self) -> Daemon {
        let (status, dir, db_path, env) = self.stop_with(libc::SIGTERM);
        assert!(
            status.success(),
            "clean exit before restart, got {status:?}"
        );
        Daemon::spawn(dir, db_path, env)
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(start.elapsed() < PATIENCE, "daemon did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// POSTs `body` as JSON to `path`.
    pub fn post_json(&self, path: &str, body: &str) -> Reply {
        self.post(
            path,
            body.as_bytes(),
            &[("Content-Type", "application/json")],
        )
    }

    /// POSTs `body` with `headers`.
    pub fn post(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Reply {
        let mut req = agent().post(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Reply::from(req.send(body).expect("request"))
    }

    /// POSTs `body` with chunked transfer encoding (no Content-Length).
    pub fn post_chunked(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Reply {
        let mut req = agent().post(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut reader: &[u8] = body;
        Reply::from(
            req.send(ureq::SendBody::from_reader(&mut reader))
                .expect("request"),
        )
    }

    /// GETs `path`.
    pub fn get(&self, path: &str) -> Reply {
        Reply::from(
            agent()
                .get(format!("{}{path}", self.base))
                .call()
                .expect("request"),
        )
    }

    /// GETs `path` with `headers`.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = agent().get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Reply::from(req.call().expect("request"))
    }

    /// `/v1/status` as JSON.
    pub fn status(&self) -> Value {
        let reply = self.get("/v1/status");
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    /// A new read-only connection to the database, separate from the daemon's.
    pub fn db(&self) -> rusqlite::Connection {
        open_db(&self.db_path)
    }

    /// Rows in `table` that came from clients, read through a separate
    /// connection: the daemon's own host samples (source `host`, in
    /// `metric_points` and `events`) are left out.
    pub fn count(&self, table: &str) -> i64 {
        let own = match table {
            "metric_points" | "events" => " WHERE source != 'host'",
            _ => "",
        };
        self.db()
            .query_row(&format!("SELECT count(*) FROM {table}{own}"), [], |r| {
                r.get(0)
            })
            .expect("count")
    }

    /// The first column of every row `sql` returns, as text.
    pub fn strings(&self, sql: &str) -> Vec<String> {
        self.db()
            .prepare(sql)
            .expect(sql)
            .query_map([], |r| r.get(0))
            .expect(sql)
            .collect::<Result<_, _>>()
            .expect(sql)
    }

    /// Waits until `/v1/status` satisfies `done`, and returns that status
    /// (a hang guard of a minute, not a performance bound).
    pub fn wait_status(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let status = self.status();
            if done(&status) {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "waited too long for {what}: {status}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the store holds `records` appended records not yet
    /// committed (`store.pending_records`), such as requests held by a
    /// `hold` fault.
    pub fn wait_pending(&self, records: u64) -> Value {
        self.wait_status(&format!("{records} records pending in the store"), |s| {
            s["store"]["pending_records"].as_u64() == Some(records)
        })
    }

    /// Arms a `hold` fault in `actor`: its thread blocks at its next piece of
    /// work until [`Daemon::release`] (or, as a hang guard, a minute).
    pub fn hold(&self, actor: &str) {
        let r = self.post(&format!("/_test/fault/{actor}/hold"), b"", &[]);
        assert_eq!(r.status, 200, "arming a hold in {actor}: {}", r.body);
    }

    /// Ends every hold.
    pub fn release(&self) {
        let r = self.post("/_test/fault/store/release", b"", &[]);
        assert_eq!(r.status, 200, "releasing the holds: {}", r.body);
    }

    /// Waits until a log line with `msg` has been printed (a hang guard of a
    /// minute).
    pub fn wait_logged(&self, msg: &str) {
        eventually(&format!("a log line {msg:?}"), || self.logged(msg));
    }

    /// Log lines containing `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.log_lines(text).len()
    }

    /// The log lines containing `text`, for a failure's message.
    pub fn log_lines(&self, text: &str) -> Vec<String> {
        self.logs
            .lock()
            .expect("log lock")
            .iter()
            .filter(|l| l.contains(text))
            .cloned()
            .collect()
    }

    /// Whether a log line with `msg` has been printed.
    pub fn logged(&self, msg: &str) -> bool {
        self.logs
            .lock()
            .expect("log lock")
            .iter()
            .any(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["msg"] == msg))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `ready` until it holds; fails naming `what` after a minute (a hang
/// guard for a busy machine, not a performance bound).
pub fn eventually(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited a minute for {what}; it never came"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Where [`Daemon::start_with_stdout`] points the daemon's stdout.
pub enum StdoutTo {
    /// This file, created or truncated.
    File(PathBuf),
    /// A pipe, handed to the test once the daemon is listening: dropped, it is
    /// a closed stdout; held unread, a stuck one.
    Pipe,
}

impl Daemon {
    /// Starts the daemon with a fresh database and its stdout where `to`
    /// says, for tests of logging itself; [`Daemon::logs`] stays empty. Also
    /// returns the read end of the pipe for [`StdoutTo::Pipe`].
    pub fn start_with_stdout(
        env: &[(&str, &str)],
        to: StdoutTo,
    ) -> (Daemon, Option<std::process::ChildStdout>) {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let db_path = dir.path().join("trace.db");
        let mut cmd = daemon_command(&db_path);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let file = match to {
            StdoutTo::File(path) => {
                cmd.stdout(std::fs::File::create(&path).expect("create the stdout file"));
                Some(path)
            }
            StdoutTo::Pipe => {
                cmd.stdout(Stdio::piped());
                None
            }
        };
        // Owned by a `Daemon` at once, so a failed start still kills it.
        let mut daemon = Daemon {
            child: cmd.spawn().expect("spawn openclaw-trace"),
            base: String::new(),
            db_path,
            logs: Arc::new(Mutex::new(Vec::new())),
            env: Vec::new(),
            dir,
        };
        let (addr, pipe) = match file {
            Some(path) => {
                let start = Instant::now();
                loop {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    if let Some(addr) = text.lines().find_map(listening_addr) {
                        break (addr, None);
                    }
                    assert!(start.elapsed() < PATIENCE, "daemon did not start: {text}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            None => {
                let stdout = daemon.child.stdout.take().expect("stdout is piped");
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stdout);
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if let Some(addr) = listening_addr(&line) {
                            let _ = tx.send((addr, reader.into_inner()));
                            return;
                        }
                        line.clear();
                    }
                });
                let (addr, pipe) = rx.recv_timeout(PATIENCE).expect("daemon did not start");
                (addr, Some(pipe))
            }
        };
        daemon.base = format!("http://{addr}");
        daemon.wait_first_sample();
        (daemon, pipe)
    }
}

/// The address in a `listening` log line.
fn listening_addr(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    (v["msg"] == "listening").then(|| v["addr"].as_str().unwrap_or_default().to_string())
}

/// The daemon's command: a clean environment, port 0 (for the OTLP port as
/// well: the default 4318 would be shared by tests running in parallel), the
/// test's database, debug logs on stdout, age rotation off (fixtures carry
/// fixed timestamps, some a year old) and the volume rule off (the tests
/// share the machine's volume, whose fill is not theirs: on a machine whose
/// disk was over 90% the volume rule deleted most of a test's rows) unless
/// a test turns them on.
fn daemon_command(db_path: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_openclaw-trace"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TRACE_LISTEN_ADDR", "127.0.0.1:0")
        .env("TRACE_OTLP_LISTEN_ADDR", "127.0.0.1:0")
        .env("TRACE_DB_PATH", db_path)
        .env("TRACE_AGENT_ID", "test-agent")
        .env("TRACE_LOG_LEVEL", "debug")
        .env("TRACE_DB_ROTATE_DAYS", "0")
        .env("TRACE_DISK_MAX_PERCENT", "100")
        // OpenClaw's files on this machine are not the test's: the tests
        // that follow them name their own.
        .env("TRACE_OPENCLAW_STATE_DIR", "off")
        .env("TRACE_OPENCLAW_LOG", "off")
        .stderr(Stdio::inherit());
    cmd
}

/// `google.rpc.Status`, as an OTLP client decodes a failure.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// The gRPC status code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What went wrong.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// An OTLP/HTTP traces request holding `spans` under one resource and scope.
pub fn traces_request(spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    use prost::Message as _;
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}

/// Borrows owned `(name, value)` pairs as the `&[(&str, &str)]` that
/// [`Daemon::start`] and its kin take.
pub fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Opens `path` read-only (the WAL is read too).
pub fn open_db(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open db")
}

/// POSTs `body` with `headers` to a full `url` (another port of the daemon).
pub fn post_url(url: &str, body: &[u8], headers: &[(&str, &str)]) -> Reply {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Reply::from(req.send(body).expect("request"))
}

/// GETs a full `url`.
pub fn get_url(url: &str) -> Reply {
    Reply::from(agent().get(url).call().expect("request"))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PATIENCE))
        .build()
        .into()
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-case.
    pub headers: HashMap<String, String>,
    /// Body text (lossy for binary bodies; see `body_bytes`).
    pub body: String,
    /// Body bytes.
    raw: Vec<u8>,
}

impl Reply {
    /// The body as sent.
    pub fn body_bytes(&self) -> Vec<u8> {
        self.raw.clone()
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl From<ureq::http::Response<ureq::Body>> for Reply {
    fn from(mut r: ureq::http::Response<ureq::Body>) -> Self {
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let mut raw = Vec::new();
        r.body_mut()
            .as_reader()
            .read_to_end(&mut raw)
            .expect("read body");
        Reply {
            status: r.status().as_u16(),
            headers,
            body: String::from_utf8_lossy(&raw).into_owned(),
            raw,
        }
    }
}
