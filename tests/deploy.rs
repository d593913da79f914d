//! The deploy files: `scripts/start-with-openclaw.sh` run with a stand-in
//! gateway (`tests/fixtures/stand-in-gateway.sh`) and the real daemon as the
//! sidecar; `fly.toml` read as TOML and checked against the daemon's own
//! configuration; and the `Dockerfile`'s commands run outside a container,
//! since no container engine here can pull its base images.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, get_url};
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const DAEMON: &str = env!("CARGO_BIN_EXE_openclaw-trace");

/// The start script running a stand-in gateway and the real daemon, with
/// every line both print (stdout and stderr) collected.
struct Started {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// The threads reading stdout and stderr; each ends at its stream's end.
    readers: Vec<std::thread::JoinHandle<()>>,
    /// The database and the gateway's exit file.
    dir: tempfile::TempDir,
}

impl Started {
    /// Runs the script from the repository with the stand-in gateway as its
    /// arguments and `env` on top of the sidecar's test settings.
    fn run(env: &[(&str, &str)]) -> Started {
        let gateway = Path::new(ROOT).join("tests/fixtures/stand-in-gateway.sh");
        let gateway = gateway.to_str().expect("a UTF-8 path");
        Started::run_with(&[gateway], env)
    }

    /// Runs the script from the repository with `args` and `env`.
    fn run_with(args: &[&str], env: &[(&str, &str)]) -> Started {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(Path::new(ROOT).join("scripts/start-with-openclaw.sh"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("OPENCLAW_TRACE_BIN", DAEMON)
            .env("GATEWAY_EXIT_FILE", dir.path().join("exit-now"))
            .env("TRACE_DB_PATH", dir.path().join("trace.db"))
            .env("TRACE_LISTEN_ADDR", "127.0.0.1:0")
            .env("TRACE_OTLP_LISTEN_ADDR", "off")
            .env("TRACE_AGENT_ID", "test-agent")
            .env("TRACE_DB_ROTATE_DAYS", "0")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Started as a supervisor starts it, with SIGINT and SIGQUIT at
        // their defaults: a test run from a background job of a
        // non-interactive shell (`cargo test &`) has them ignored, a child
        // inherits that, and the script, which cannot pass on a signal it
        // was started ignoring, would then never see the SIGINT sent below.
        // SAFETY: between fork and exec only `signal`, which is
        // async-signal-safe, is called.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                for signal in [libc::SIGINT, libc::SIGQUIT] {
                    if libc::signal(signal, libc::SIG_DFL) == libc::SIG_ERR {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("run the start script");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        let readers = [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err) as Box<dyn std::io::Read + Send>,
        ]
        .into_iter()
        .map(|stream| {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().expect("lines").push(line);
                }
            })
        })
        .collect();
        Started {
            child,
            lines,
            readers,
            dir,
        }
    }

    /// The JSON lines printed so far by `service` (`openclaw-trace` or
    /// `start-with-openclaw`) with `msg`.
    fn logged(&self, service: &str, msg: &str) -> Vec<Value> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["service"] == service && v["msg"] == msg)
            .collect()
    }

    /// Waits until `service` has logged `msg` `n` times; returns those lines.
    fn wait_logged(&self, service: &str, msg: &str, n: usize) -> Vec<Value> {
        eventually(&format!("{n} x {service}: {msg:?}"), || {
            self.logged(service, msg).len() >= n
        });
        self.logged(service, msg)
    }

    /// Whether a plain (not JSON) line equal to `text` was printed.
    fn printed(&self, text: &str) -> bool {
        self.lines.lock().expect("lines").iter().any(|l| l == text)
    }

    /// `http://ADDR` of the sidecar's `n`th start (1 = the first).
    fn sidecar_base(&self, n: usize) -> String {
        let listening = self.wait_logged("openclaw-trace", "listening", n);
        format!(
            "http://{}",
            listening[n - 1]["addr"].as_str().expect("addr")
        )
    }

    /// The pid the script logged for the sidecar it started last.
    fn sidecar_pid(&self) -> i32 {
        let restarted = self.logged("start-with-openclaw", "openclaw-trace restarted");
        let line = match restarted.last() {
            Some(line) => line.clone(),
            None => self.wait_logged(
                "start-with-openclaw",
                "started the gateway and openclaw-trace",
                1,
            )[0]
            .clone(),
        };
        line["sidecar_pid"].as_i64().expect("sidecar_pid") as i32
    }

    /// The gateway's pid, from the script's first line.
    fn gateway_pid(&self) -> i32 {
        self.wait_logged(
            "start-with-openclaw",
            "started the gateway and openclaw-trace",
            1,
        )[0]["gateway_pid"]
            .as_i64()
            .expect("gateway_pid") as i32
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Waits for the script to exit, then for its output to end so that
    /// every line it printed is in `lines` (a hang guard of a minute each).
    fn wait_exit(&mut self) -> ExitStatus {
        let status = self.wait_child();
        self.wait_output_end();
        status
    }

    /// Waits for the script's process to exit (a hang guard of a minute).
    fn wait_child(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the script did not exit; lines: {:#?}",
                self.lines.lock().expect("lines")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until both reader threads have reached the end of their
    /// stream: the script and every process that shares its stdout and
    /// stderr have closed them.
    fn wait_output_end(&self) {
        eventually(
            "the script's output to end (no process it started still holding it)",
            || self.readers.iter().all(|r| r.is_finished()),
        );
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal(libc::SIGTERM);
            let _ = self.wait_child();
        }
    }
}

/// Whether process `pid` exists.
fn alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn a_killed_sidecar_is_restarted_and_serves_again_while_the_gateway_runs() {
    let mut s = Started::run(&[]);
    let first = s.sidecar_base(1);
    let gateway = s.gateway_pid();
    let posted = common::post_url(
        &format!("{first}/v1/events"),
        br#"{"name":"before.the.kill"}"#,
        &[("Content-Type", "application/json")],
    );
    assert_eq!(posted.status, 202, "{}", posted.body);

    let killed = s.sidecar_pid();
    // SAFETY: kill(2) on the sidecar the script started for this test.
    unsafe {
        libc::kill(killed, libc::SIGKILL);
    }
    let exited = s.wait_logged(
        "start-with-openclaw",
        "openclaw-trace exited; restarting it",
        1,
    );
    assert_eq!(exited[0]["status"], 137, "killed by SIGKILL: {}", exited[0]);
    assert_eq!(exited[0]["restart_in_s"], 1);
    let restarted = s.wait_logged("start-with-openclaw", "openclaw-trace restarted", 1);
    assert_eq!(restarted[0]["restarts"], 1);
    assert_ne!(s.sidecar_pid(), killed);

    let second = s.sidecar_base(2);
    let health = get_url(&format!("{second}/health"));
    assert_eq!(health.status, 200, "{}", health.body);
    let status = get_url(&format!("{second}/v1/status")).json();
    assert_eq!(
        status["tables"]["events"]["rows"].as_u64().map(|n| n >= 1),
        Some(true),
        "the event committed before the kill is still there: {}",
        status["tables"]
    );
    assert!(alive(gateway), "the gateway was left alone");
    assert!(!s.printed("gateway got TERM") && !s.printed("gateway got INT"));

    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit().code(), Some(42));
}

#[test]
fn sigterm_and_sigint_reach_both_and_the_script_exits_with_the_gateways_status() {
    for (signal, name, gateway_status) in [(libc::SIGTERM, "TERM", 42), (libc::SIGINT, "INT", 43)] {
        let mut s = Started::run(&[]);
        s.sidecar_base(1);
        s.signal(signal);
        let status = s.wait_exit();
        assert_eq!(status.code(), Some(gateway_status), "SIG{name}");
        assert!(
            s.printed(&format!("gateway got {name}")),
            "SIG{name} reached the gateway"
        );
        let shutting = s.logged("openclaw-trace", "shutting down");
        assert_eq!(shutting.len(), 1, "SIG{name}: {shutting:?}");
        assert_eq!(shutting[0]["signal"], format!("SIG{name}"));
        assert_eq!(
            s.logged("openclaw-trace", "shutdown complete").len(),
            1,
            "SIG{name}"
        );
        assert!(
            s.logged("start-with-openclaw", "openclaw-trace restarted")
                .is_empty(),
            "a sidecar stopping on a signal is not restarted"
        );
    }
}

#[test]
fn when_the_gateway_exits_the_sidecar_is_stopped_and_the_gateways_status_passed_on() {
    let mut s = Started::run(&[]);
    s.sidecar_base(1);
    std::fs::write(s.dir.path().join("exit-now"), "7").expect("tell the gateway to exit");
    assert_eq!(s.wait_exit().code(), Some(7));
    assert!(s.printed("gateway exiting with 7"));
    let shutting = s.logged("openclaw-trace", "shutting down");
    assert_eq!(shutting.len(), 1, "{shutting:?}");
    assert_eq!(shutting[0]["signal"], "SIGTERM");
    assert_eq!(s.logged("openclaw-trace", "shutdown complete").len(), 1);
    let stopped = s.logged("start-with-openclaw", "openclaw-trace stopped");
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert_eq!(stopped[0]["status"], 0, "the sidecar's clean exit");
}

#[test]
fn a_sidecar_that_keeps_dying_is_restarted_with_a_doubling_capped_delay() {
    // A bad variable makes the daemon exit with status 2 at once, every time.
    let mut s = Started::run(&[
        ("TRACE_LOG_LEVEL", "loud"),
        ("OPENCLAW_TRACE_RESTART_DELAY", "1"),
        ("OPENCLAW_TRACE_RESTART_MAX_DELAY", "3"),
    ]);
    let exits = s.wait_logged(
        "start-with-openclaw",
        "openclaw-trace exited; restarting it",
        5,
    );
    let delays: Vec<i64> = exits
        .iter()
        .take(5)
        .map(|e| e["restart_in_s"].as_i64().expect("delay"))
        .collect();
    assert_eq!(delays, [1, 2, 3, 3, 3], "doubling, capped at 3");
    assert!(exits.iter().all(|e| e["status"] == 2), "{exits:?}");
    assert!(alive(s.gateway_pid()), "the gateway is never touched");
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit().code(), Some(42));
    assert!(s.printed("gateway got TERM"));
}

#[test]
fn the_sidecar_takes_the_gateway_for_the_agent_not_the_script() {
    let gateway = Path::new(ROOT).join("tests/fixtures/stand-in-gateway.sh");
    let gateway = gateway.to_str().expect("a UTF-8 path");
    let s = Started::run_with(
        &[],
        &[
            ("OPENCLAW_TRACE_GATEWAY_COMMAND", gateway),
            ("TRACE_AGENT_PROCESS", "stand-in-gateway"),
            ("TRACE_METRICS_INTERVAL", "1s"),
        ],
    );
    let base = s.sidecar_base(1);
    let gateway_pid = s.gateway_pid();
    let script_pid = s.child.id();
    eventually("the sidecar to sample the gateway as the agent", || {
        let status = get_url(&format!("{base}/v1/status")).json();
        let agent = status["host"]["agent"]["pid"].as_i64();
        assert_ne!(
            agent,
            Some(i64::from(script_pid)),
            "the script is not the agent"
        );
        agent == Some(i64::from(gateway_pid))
    });
}

/// The names that look like `TRACE_` variables in `text`.
fn trace_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("TRACE_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let before = rest[..at].chars().next_back();
        // `TRACE_*` speaks of them all; `OPENCLAW_TRACE_BIN` is the script's.
        if end > "TRACE_".len() && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// The variables the daemon knows, from its own `--help`.
fn known_variables() -> BTreeSet<String> {
    let out = Command::new(DAEMON).arg("--help").output().expect("--help");
    assert!(out.status.success());
    let known = trace_names(&String::from_utf8_lossy(&out.stdout));
    assert!(known.contains("TRACE_LISTEN_ADDR"), "{known:?}");
    known
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_trace_variable_in_the_deploy_files_is_one_the_daemon_knows() {
    let known = known_variables();
    for file in ["fly.toml", "Dockerfile", "scripts/start-with-openclaw.sh"] {
        let unknown: Vec<_> = trace_names(&read(file))
            .difference(&known)
            .cloned()
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} names variables the daemon does not know: {unknown:?}"
        );
    }
    assert!(trace_names(&read("fly.toml")).len() >= 5);
    // Caught by the check: a misspelt name.
    assert!(!trace_names("TRACE_LISTEN_ADRR=1").is_subset(&known));
}

#[test]
fn fly_toml_parses_and_its_settings_are_valid_for_the_daemon() {
    let fly: toml::Table = read("fly.toml").parse().expect("fly.toml is TOML");
    assert_eq!(fly["kill_signal"].as_str(), Some("SIGINT"));
    assert_eq!(fly["kill_timeout"].as_integer(), Some(5));
    assert_eq!(fly["mounts"]["destination"].as_str(), Some("/data"));

    let env: BTreeMap<String, String> = fly["env"]
        .as_table()
        .expect("[env]")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string values").to_string()))
        .collect();
    assert_eq!(env["OPENCLAW_STATE_DIR"], "/data");
    // The daemon's own parsing accepts every value.
    let vars = env.clone().into_iter().collect();
    let data = tempfile::tempdir().expect("tempdir");
    let config = openclaw_trace::Config::from_map(&vars, data.path())
        .unwrap_or_else(|e| panic!("fly.toml's [env] is refused: {e}"));
    assert!(config.db_on_data_volume(), "the database is on the volume");
    assert!(
        config
            .otlp_listen_addr
            .is_some_and(|a| a.ip().is_loopback() && a.port() == 4318),
        "OTLP at OpenClaw's documented port, inside the machine"
    );

    // The health check reaches the sidecar: its port serves /health on
    // every address (Fly connects to the machine's own, not its loopback),
    // and is no public service of the app.
    let check = &fly["checks"]["openclaw_trace"];
    let port = check["port"].as_integer().expect("check port");
    let serving_health = [Some(config.listen_addr), config.health_listen_addr]
        .into_iter()
        .flatten()
        .find(|a| i64::from(a.port()) == port)
        .expect("the check's port is a port of the sidecar that serves /health");
    assert!(serving_health.ip().is_unspecified(), "{serving_health}");
    assert_ne!(
        fly["http_service"]["internal_port"].as_integer(),
        Some(port),
        "the sidecar's port is not public"
    );
    assert_eq!(check["path"].as_str(), Some("/health"));
    assert_eq!(check["type"].as_str(), Some("http"));

    // The process runs the start script the Dockerfile installs, with the
    // gateway command of OpenClaw's Fly guide in the script's variable, so
    // that only the gateway's command line has the agent pattern.
    let script = fly["processes"]["app"].as_str().expect("[processes] app");
    assert_eq!(script, "/usr/local/bin/start-with-openclaw.sh");
    let gateway = &env["OPENCLAW_TRACE_GATEWAY_COMMAND"];
    assert!(
        gateway.starts_with("node dist/index.js gateway"),
        "{gateway}"
    );
    assert!(gateway.contains("--port 3000"), "{gateway}");
    let pattern = config
        .agent_process
        .as_deref()
        .expect("TRACE_AGENT_PROCESS");
    assert!(
        gateway.contains(pattern) && !script.contains(pattern),
        "{pattern}"
    );
    assert_eq!(
        fly["http_service"]["internal_port"].as_integer(),
        Some(3000)
    );
    let copies = dockerfile().final_copies();
    assert!(copies.iter().any(|(_, dest)| dest == script), "{copies:?}");
}

/// The Dockerfile, by instruction.
struct Dockerfile {
    /// `ARG` defaults.
    args: BTreeMap<String, String>,
    /// Per stage: its `FROM` and its instructions after it.
    stages: Vec<(String, Vec<(String, String)>)>,
}

fn dockerfile() -> Dockerfile {
    let mut args = BTreeMap::new();
    let mut stages: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in read("Dockerfile").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (op, rest) = line.split_once(' ').expect("INSTRUCTION ARGUMENTS");
        match op {
            "ARG" if stages.is_empty() => {
                let (k, v) = rest.split_once('=').expect("ARG NAME=DEFAULT");
                args.insert(k.to_string(), v.to_string());
            }
            "FROM" => stages.push((rest.to_string(), Vec::new())),
            _ => stages
                .last_mut()
                .expect("instructions follow a FROM")
                .1
                .push((op.to_string(), rest.to_string())),
        }
    }
    Dockerfile { args, stages }
}

impl Dockerfile {
    /// The final stage's `COPY` instructions: (source, destination).
    fn final_copies(&self) -> Vec<(String, String)> {
        let (_, steps) = self.stages.last().expect("a final stage");
        steps
            .iter()
            .filter(|(op, _)| op == "COPY")
            .map(|(_, rest)| {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let [.., src, dest] = words[..] else {
                    panic!("COPY SRC DEST: {rest}")
                };
                (src.to_string(), dest.to_string())
            })
            .collect()
    }
}

/// What build.rs asks of the release link: no symbols left, and the
/// relative relocations packed (`DT_RELR`) when the building machine's glibc
/// can load them (2.36 and later).
fn check_release_link(binary: &Path) {
    use object::{Object, ObjectSection};
    let bytes = std::fs::read(binary).expect("read the release binary");
    let elf = object::File::parse(&*bytes).expect("the release binary is an ELF file");
    assert!(
        elf.section_by_name(".symtab").is_none(),
        "the release binary is stripped"
    );
    // As build.rs tells it; no glibc (or no getconf), no packing asked.
    let glibc = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let version: Vec<u32> = glibc
        .trim()
        .strip_prefix("glibc ")
        .unwrap_or_default()
        .split('.')
        .filter_map(|n| n.parse().ok())
        .collect();
    if version.as_slice() >= [2, 36].as_slice() {
        let relr = elf.section_by_name(".relr.dyn").expect(".relr.dyn");
        let rela = elf.section_by_name(".rela.dyn").map_or(0, |s| s.size());
        assert!(
            relr.size() > 0 && rela < relr.size() * 4,
            "relative relocations packed: .relr.dyn {} bytes, .rela.dyn {rela}",
            relr.size()
        );
    }
}

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_dockerfiles_commands_run_outside_a_container() {
    let d = dockerfile();
    assert_eq!(d.stages.len(), 2, "a build stage and the final one");
    assert!(d.args["RUST_IMAGE"].starts_with("rust:"), "{:?}", d.args);
    assert!(
        d.args["RUST_IMAGE"].ends_with("-bookworm"),
        "OpenClaw's images are bookworm"
    );
    assert!(d.args["OPENCLAW_IMAGE"].starts_with("openclaw/openclaw:"));
    assert_eq!(d.stages[0].0, "${RUST_IMAGE} AS build");
    assert_eq!(d.stages[1].0, "${OPENCLAW_IMAGE}");

    // The build stage: WORKDIR, the whole context, and one command, run
    // here in the repository (a target directory of its own, kept between
    // runs).
    let build = &d.stages[0].1;
    let workdir = build
        .iter()
        .find(|(op, _)| op == "WORKDIR")
        .map(|(_, dir)| dir.clone())
        .expect("WORKDIR");
    assert!(build.contains(&("COPY".into(), ". .".into())));
    let runs: Vec<&String> = build
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, c)| c)
        .collect();
    assert_eq!(runs, ["cargo build --release --locked"]);
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("docker-build-target");
    let words: Vec<&str> = runs[0].split_whitespace().collect();
    run_ok(
        Command::new(words[0])
            .args(&words[1..])
            .current_dir(ROOT)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("OPENCLAW_TRACE_KEEP_SYMBOLS"),
        runs[0],
    );
    check_release_link(&target.join("release/openclaw-trace"));

    // The final stage's COPYs into an image root of our own: the built
    // binary (its path in the build stage mapped to the target directory
    // used here) and files of the context, which must exist and be
    // executable.
    let root = tempfile::tempdir().expect("tempdir");
    let built_prefix = format!("{workdir}/target/");
    for (src, dest) in d.final_copies() {
        let from: PathBuf = match src.strip_prefix(&built_prefix) {
            Some(rel) => target.join(rel),
            None => Path::new(ROOT).join(&src),
        };
        let meta = std::fs::metadata(&from).unwrap_or_else(|e| panic!("COPY {src}: {e}"));
        use std::os::unix::fs::PermissionsExt;
        assert!(
            meta.permissions().mode() & 0o111 != 0,
            "{src} is executable"
        );
        let to = root.path().join(dest.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().expect("a directory")).expect("mkdir");
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {src}: {e}"));
    }
    let installed = root.path().join("usr/local/bin/openclaw-trace");
    assert!(
        installed.is_file(),
        "the binary at /usr/local/bin/openclaw-trace"
    );

    // The final stage's RUN (exec form), against that image root.
    let image_runs: Vec<Vec<String>> = d.stages[1]
        .1
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, json)| serde_json::from_str(json).expect("RUN in exec form"))
        .collect();
    assert!(!image_runs.is_empty());
    for argv in image_runs {
        let program = root.path().join(argv[0].trim_start_matches('/'));
        let out = run_ok(Command::new(program).args(&argv[1..]), &argv.join(" "));
        assert_eq!(
            out.trim(),
            format!("openclaw-trace {}", env!("CARGO_PKG_VERSION"))
        );
    }

    // The installed script and binary work together (a stand-in gateway
    // that exits at once with 3: the script passes its status on).
    let script = root.path().join("usr/local/bin/start-with-openclaw.sh");
    let db = root.path().join("trace.db");
    let status = Command::new(&script)
        .args(["sh", "-c", "exit 3"])
        .env("OPENCLAW_TRACE_BIN", &installed)
        .env("TRACE_DB_PATH", &db)
        .env("TRACE_LISTEN_ADDR", "127.0.0.1:0")
        .env("TRACE_OTLP_LISTEN_ADDR", "off")
        .stdout(Stdio::null())
        .status()
        .expect("run the installed script");
    assert_eq!(status.code(), Some(3));
}
