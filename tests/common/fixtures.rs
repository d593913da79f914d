//! The real OpenTelemetry exporters (and prometheus_client's parser) the
//! tests drive: installed on first use, again only when the pins change.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The fixture scripts and pinned package lists.
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The interpreters with the exporters installed.
pub struct Exporters {
    /// The venv's python, with the OpenTelemetry SDK and prometheus_client.
    pub python: PathBuf,
    /// node, with the OpenTelemetry JS SDK in tests/fixtures/node_modules.
    pub node: PathBuf,
}

/// Runs `cmd`, failing the test with its output unless it succeeds.
pub fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What an emitter script (`emit.py`, `emit.mjs`) printed last, as JSON;
/// fails the test, with its output, unless it succeeded.
pub fn emitted(out: std::process::Output, what: &str) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("emitter output is not JSON ({e}): {stdout}"))
}

/// Installs the exporters once per test run (again only when the pinned
/// versions change).
pub fn exporters() -> &'static Exporters {
    static EXPORTERS: OnceLock<Exporters> = OnceLock::new();
    EXPORTERS.get_or_init(|| {
        let fixtures = Path::new(FIXTURES);
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("otel-venv");
        let requirements =
            std::fs::read_to_string(fixtures.join("requirements.txt")).expect("requirements.txt");
        let marker = venv.join("installed-requirements.txt");
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(requirements.as_str()) {
            run(
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
                "python3 -m venv",
            );
            run(
                Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                    .arg(fixtures.join("requirements.txt")),
                "pip install",
            );
            std::fs::write(&marker, &requirements).expect("write marker");
        }
        let lock =
            std::fs::read_to_string(fixtures.join("package-lock.json")).expect("package-lock.json");
        let node_marker = fixtures.join("node_modules/.installed-lock.json");
        if std::fs::read_to_string(&node_marker).ok().as_deref() != Some(lock.as_str()) {
            run(
                Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(fixtures),
                "npm ci",
            );
            std::fs::write(&node_marker, &lock).expect("write marker");
        }
        Exporters {
            python: venv.join("bin/python"),
            node: PathBuf::from("node"),
        }
    })
}
