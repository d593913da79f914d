//! A real HTTP receiver for push tests: an actix-web server on a loopback
//! port, answering each batch as the test's script says and keeping what it
//! received.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// Headers, names lower-case.
    pub headers: HashMap<String, String>,
    /// The request path.
    pub path: String,
    /// The query string, without the `?` (empty when there is none).
    pub query: String,
    /// The decompressed body.
    pub raw: Vec<u8>,
    /// The decompressed body as JSON (null when it is not JSON).
    pub body: Value,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    /// The events in the envelope.
    pub fn events(&self) -> Vec<Value> {
        self.body["events"].as_array().cloned().unwrap_or_default()
    }
}

/// How to answer: (status, extra headers, delay before answering).
pub type Answer = (u16, Vec<(String, String)>, Duration);

/// Decides the answer to request number `n` (from 0) with this body.
pub type Script = Box<dyn FnMut(usize, &Value) -> Answer + Send>;

/// Answers 200 at once.
pub fn ok() -> Answer {
    (200, vec![], Duration::ZERO)
}

struct Shared {
    script: Mutex<Script>,
    received: Mutex<Vec<Received>>,
}

/// The running receiver.
pub struct Receiver {
    /// The URL to push to.
    pub url: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    /// Starts a receiver on a free port.
    pub fn start(script: Script) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        Receiver::start_on(listener, script)
    }

    /// Starts a receiver on `listener`.
    pub fn start_on(listener: std::net::TcpListener, script: Script) -> Receiver {
        let url = format!("http://{}/ingest", listener.local_addr().expect("addr"));
        let shared = Arc::new(Shared {
            script: Mutex::new(script),
            received: Mutex::new(Vec::new()),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let state = Arc::clone(&shared);
        std::thread::spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                let data = web::Data::from(state);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .default_service(web::to(receive))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(0)
                .listen(listener)
                .expect("listen")
                .run();
                let _ = tx.send(server.handle());
                let _ = server.await;
            });
        });
        let handle = rx.recv().expect("receiver started");
        Receiver {
            url,
            shared,
            handle,
        }
    }

    /// Replaces the script.
    pub fn script(&self, script: Script) {
        *self.shared.script.lock().expect("lock") = script;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }

    /// Stops the server (the port closes).
    pub fn stop(&self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || actix_rt::System::new().block_on(handle.stop(false)))
            .join()
            .expect("stop");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let raw = if headers.get("content-encoding").map(String::as_str) == Some("gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .map(|_| out)
            .unwrap_or_default()
    } else {
        body.to_vec()
    };
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let (status, extra, delay) = {
        let n = shared.received.lock().expect("lock").len();
        (shared.script.lock().expect("lock"))(n, &body)
    };
    shared.received.lock().expect("lock").push(Received {
        at: Instant::now(),
        headers,
        path: req.path().to_string(),
        query: req.query_string().to_string(),
        raw,
        body,
        status,
    });
    if !delay.is_zero() {
        actix_rt::time::sleep(delay).await;
    }
    let mut response =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"));
    for (k, v) in extra {
        response.insert_header((k, v));
    }
    response.body(format!("answered {status}"))
}
