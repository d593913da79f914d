//! A real browser for tests: Debian's headless Chromium, driven by its
//! ChromeDriver over the W3C WebDriver protocol (a handful of JSON calls,
//! sent with `ureq`). Like the OTLP tests' exporters, the browser is set up
//! by the test itself when missing: the packages `chromium` and
//! `chromium-driver` from Debian, with apt-get (as root, or through sudo),
//! once per test run; where that fails the test fails saying what to install.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's ChromeDriver, the same version as [`CHROMIUM`].
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long to wait for the browser, or for something on the page, before
/// failing the test (a hang guard, not a performance bound).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Installs Debian's `chromium` and `chromium-driver` when either is
/// missing, once per test process; the caller checks the result.
fn install_chromium() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
            return;
        }
        eprintln!("installing chromium and chromium-driver from Debian's packages");
        // SAFETY: geteuid(2) has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let apt = |args: &[&str]| {
            let mut cmd = if root {
                Command::new("apt-get")
            } else {
                let mut c = Command::new("sudo");
                c.arg("-n").arg("apt-get");
                c
            };
            cmd.args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        let installed = apt(&["update", "-qq"])
            && apt(&["install", "-y", "-qq", "chromium", "chromium-driver"]);
        if !installed {
            eprintln!("apt-get could not install chromium and chromium-driver");
        }
    });
}

/// The key a WebDriver element reference is given under (W3C).
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running ChromeDriver with one browser session.
pub struct Browser {
    /// The driver process, killed on drop.
    driver: Child,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    /// The browser's fresh profile, removed on drop.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium with a fresh profile and a
    /// `width` × `height` window. Panics, saying what to install, when
    /// Chromium or ChromeDriver is missing.
    pub fn start(width: u32, height: u32) -> Browser {
        install_chromium();
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: this test drives Debian's headless Chromium; install it with \
                 `apt-get install chromium chromium-driver` (the test tried and could not) — package {package}"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let base = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while !get(&format!("{base}/status")).is_some_and(|v| v["value"]["ready"] == true) {
            assert!(start.elapsed() < PATIENCE, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-quic".into(),
            "--disable-extensions".into(),
            "--disable-crash-reporter".into(),
            "--disable-breakpad".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--hide-scrollbars".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut browser = Browser {
            driver,
            session: String::new(),
            _profile: profile,
        };
        let answer = call(
            "POST",
            &format!("{base}/session"),
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                "goog:loggingPrefs": {"browser": "ALL"},
            }}})),
        );
        let id = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"));
        browser.session = format!("{base}/session/{id}");
        browser.viewport(width, height, false);
        browser
    }

    /// One WebDriver command on this session.
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        call(method, &format!("{}{path}", self.session), body)
    }

    /// Navigates to `url` and waits for its load.
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// Makes the page's viewport exactly `width` × `height` CSS pixels (the
    /// window's size includes what headless Chromium keeps for its frame),
    /// as a phone's when `mobile`, through ChromeDriver's DevTools command.
    pub fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(
                json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                    "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile,
                }}),
            ),
        );
    }

    /// Runs `script` (a function body: `return ...`) with `args`.
    pub fn exec(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Waits until `script` returns something truthy, and returns it.
    pub fn wait_for(&self, what: &str, script: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.exec(script, json!([]));
            if !matches!(v, Value::Null | Value::Bool(false)) {
                return v;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "waited too long for {what}; the page's state: {}",
                self.exec("return JSON.stringify(window.__dashboard)", json!([]))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The first element matching `css`, as a WebDriver reference.
    pub fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    /// Clicks `element` as a user would.
    pub fn click(&self, element: &str) {
        self.cmd(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    /// Types `text` into `element`, key by key.
    pub fn type_into(&self, element: &str, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let v = self.cmd("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 text"))
            .expect("base64")
    }

    /// A PNG of the whole page, beyond the window's height.
    pub fn full_page_screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let v = self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": "Page.captureScreenshot", "params": {
                "format": "png", "captureBeyondViewport": true,
            }})),
        );
        base64::engine::general_purpose::STANDARD
            .decode(v["data"].as_str().expect("base64 text"))
            .expect("base64")
    }

    /// The browser's console and network log since the last call: entries
    /// with `level` (`SEVERE`, `WARNING`, `INFO`...), `source` and `message`.
    pub fn logs(&self) -> Vec<Value> {
        let v = self.cmd("POST", "/se/log", Some(json!({"type": "browser"})));
        v.as_array().cloned().unwrap_or_default()
    }

    /// Every request the page made, with the status it got:
    /// `[{"url", "status"}]` from the Resource Timing API.
    pub fn requests(&self) -> Vec<Value> {
        let v = self.exec(
            "return performance.getEntriesByType('resource')
                .map(e => ({url: e.name, status: e.responseStatus}))",
            json!([]),
        );
        v.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session quits Chromium; /shutdown then lets the
        // driver reap what is left before it exits. Killed only if it hangs.
        if let Some((base, _)) = self.session.split_once("/session/") {
            let _ = try_call("DELETE", &self.session, None);
            let _ = try_call("GET", &format!("{base}/shutdown"), None);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.driver.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A WebDriver call's `value`; panics with the driver's error.
fn call(method: &str, url: &str, body: Option<Value>) -> Value {
    match try_call(method, url, body) {
        Ok(v) => v,
        Err(e) => panic!("WebDriver {method} {url}: {e}"),
    }
}

fn try_call(method: &str, url: &str, body: Option<Value>) -> Result<Value, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PATIENCE))
        .build()
        .into();
    let response = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        (_, body) => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body.unwrap_or(json!({})).to_string()),
    };
    let mut response = response.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let mut text = String::new();
    response
        .body_mut()
        .as_reader()
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    if status >= 400 {
        return Err(format!("{status}: {}", v["value"]));
    }
    Ok(v["value"].clone())
}

/// GET `url` as JSON, `None` while nothing answers there.
fn get(url: &str) -> Option<Value> {
    let mut r = ureq::get(url).call().ok()?;
    let mut text = String::new();
    r.body_mut().as_reader().read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}
