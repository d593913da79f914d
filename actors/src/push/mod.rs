//! The PushActor: sends stored rows to the remote API in batches, on a timer
//! and once at shutdown, and moves each table's push cursor only after a 2xx.
//!
//! Per table, in id order: read unpushed rows through the read pool (on a
//! blocking thread, one row at a time into the batch, so a backlog never sits
//! in memory), build a batch within the byte and row limits, gzip it, send it
//! with an idempotency key that is the same on every retry of that batch, and
//! on a 2xx tell the StoreActor to move the cursor. A batch that keeps
//! failing ends the tick; its rows wait for the next one. Never two pushes at
//! once; ingest never waits on a push.

mod native;
mod otlp;
pub mod policy;
#[cfg(test)]
mod wire_tests;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use awc::http::header;
use bytes::Bytes;
use serde::Serialize;
use slog::{error, info, warn, Logger};
use tokio::sync::oneshot;

use crate::query;
use crate::records::Table;
use crate::schema::ReadPool;
use crate::stats::{ActorName, Stats};
use crate::store::{DeadLetter, MarkPushed};
use crate::stored::StoredRow;
use crate::supervise::panic_message;
use crate::time::now_ns;
use policy::{parse_retry_after, PushFormat, RetryPolicy, SendOutcome, Verdict, MAX_ATTEMPTS};

/// Settings of the pusher.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// Where batches go (`TRACE_PUSH_ENDPOINT`).
    pub endpoint: String,
    /// Time between pushes (`TRACE_PUSH_INTERVAL`).
    pub interval: Duration,
    /// Sent as a bearer token (`TRACE_PUSH_API_KEY`).
    pub api_key: Option<String>,
    /// Batch encoding (`TRACE_PUSH_FORMAT`).
    pub format: PushFormat,
    /// Largest uncompressed batch (`TRACE_PUSH_MAX_BATCH_BYTES`).
    pub max_batch_bytes: usize,
    /// Most rows in a batch.
    pub max_batch_rows: usize,
    /// Time allowed for one send (`TRACE_PUSH_TIMEOUT`).
    pub timeout: Duration,
    /// Longest `Retry-After` waited out within a tick; a longer one ends it.
    pub max_retry_wait: Duration,
    /// First and largest backoff between attempts.
    pub backoff: (Duration, Duration),
    /// Sent with every batch.
    pub agent_id: String,
}

/// The last failure, as status shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PushFailure {
    /// The HTTP status, when the remote answered.
    pub status: Option<u16>,
    /// What went wrong.
    pub message: String,
}

/// What the pusher has done, for `/v1/status` and `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushStatus {
    /// A push is running now.
    pub in_progress: bool,
    /// When the last send was tried, unix ns.
    pub last_attempt_ns: Option<i64>,
    /// When the last batch was delivered, unix ns.
    pub last_success_ns: Option<i64>,
    /// The last failure.
    pub last_error: Option<PushFailure>,
    /// Sends failed since the last delivery.
    pub consecutive_failures: u64,
    /// Batches delivered.
    pub batches_pushed: u64,
    /// Rows delivered.
    pub rows_pushed: u64,
    /// Compressed bytes delivered.
    pub bytes_pushed: u64,
    /// Sends retried.
    pub retries: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
}

/// The pusher's status, shared with the HTTP handlers.
#[derive(Debug, Clone, Default)]
pub struct PushView(Arc<Mutex<PushStatus>>);

impl PushView {
    /// A copy of the status now.
    pub fn get(&self) -> PushStatus {
        self.0
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn update(&self, f: impl FnOnce(&mut PushStatus)) {
        match self.0.lock() {
            Ok(mut s) => f(&mut s),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}

/// Push now, within `deadline` when given; answered when that push (or the
/// one already running) has ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PushNow {
    /// Stop sending at this instant (the shutdown push).
    pub deadline: Option<Instant>,
}

/// The pusher actor.
pub struct PushActor {
    settings: Rc<PushSettings>,
    pool: ReadPool,
    mark: Recipient<MarkPushed>,
    dead_letter: Recipient<DeadLetter>,
    view: PushView,
    /// Shared counters (panics and restarts).
    stats: Arc<Stats>,
    log: Logger,
    /// A fault armed by a test, struck in the next push.
    #[cfg(feature = "fault-injection")]
    fault: Option<crate::fault::FaultKind>,
    /// Built on start (it belongs to this arbiter's thread).
    client: Option<awc::Client>,
    /// A push is running.
    running: bool,
    /// The running push stops sending at this instant.
    deadline: Rc<Cell<Option<Instant>>>,
    /// Told when the running push ends.
    waiters: Vec<oneshot::Sender<()>>,
}

impl PushActor {
    /// A pusher reading from `pool` and moving cursors through the store.
    pub fn new(
        settings: PushSettings,
        pool: ReadPool,
        mark: Recipient<MarkPushed>,
        dead_letter: Recipient<DeadLetter>,
        view: PushView,
        stats: Arc<Stats>,
        log: Logger,
    ) -> Self {
        PushActor {
            settings: Rc::new(settings),
            pool,
            mark,
            dead_letter,
            view,
            stats,
            log,
            #[cfg(feature = "fault-injection")]
            fault: None,
            client: None,
            running: false,
            deadline: Rc::new(Cell::new(None)),
            waiters: Vec::new(),
        }
    }

    /// Starts a push unless one is running.
    fn start(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            return;
        }
        let Some(client) = self.client.clone() else {
            return;
        };
        self.running = true;
        self.view.update(|s| s.in_progress = true);
        let run = PushRun {
            settings: Rc::clone(&self.settings),
            policy: RetryPolicy::new(
                self.settings.format,
                self.settings.backoff.0,
                self.settings.backoff.1,
            ),
            pool: self.pool.clone(),
            mark: self.mark.clone(),
            dead_letter: self.dead_letter.clone(),
            view: self.view.clone(),
            log: self.log.clone(),
            client,
            deadline: Rc::clone(&self.deadline),
        };
        #[cfg(feature = "fault-injection")]
        let fault = self.fault.take();
        let work = async move {
            #[cfg(feature = "fault-injection")]
            if let Some(fault) = fault {
                fault.strike();
            }
            run.all().await
        };
        // A panic inside the push would unwind through the arbiter and leave
        // the actor gone (actix does not restart on panic): catch it, count
        // it, and stop the context so the supervisor restarts the actor.
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(work))
            .into_actor(self)
            .map(|caught, act, ctx| {
                act.running = false;
                act.deadline.set(None);
                act.view.update(|s| s.in_progress = false);
                for w in act.waiters.drain(..) {
                    let _ = w.send(());
                }
                if let Err(payload) = caught {
                    act.stats.panicked(ActorName::Push);
                    error!(act.log, "actor panicked; restarting it";
                        "actor" => ActorName::Push.as_str(),
                        "panic" => panic_message(payload.as_ref()));
                    ctx.stop();
                }
            })
            .spawn(ctx);
    }
}

impl Actor for PushActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let client = awc::Client::builder()
            .timeout(self.settings.timeout)
            .disable_redirects()
            .add_default_header((
                header::USER_AGENT,
                concat!("openclaw-trace/", env!("CARGO_PKG_VERSION")),
            ))
            .finish();
        self.client = Some(client);
        info!(self.log, "pushing"; "endpoint" => mask_endpoint(&self.settings.endpoint),
            "interval_ms" => self.settings.interval.as_millis() as u64,
            "format" => format!("{:?}", self.settings.format));
        ctx.run_interval(self.settings.interval, |act, ctx| act.start(ctx));
    }
}

impl Supervised for PushActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.stats.restarted(ActorName::Push);
        warn!(self.log, "push actor restarting");
        self.running = false;
        self.view.update(|s| s.in_progress = false);
    }
}

impl Handler<PushNow> for PushActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: PushNow, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(deadline) = msg.deadline {
            let sooner = self.deadline.get().map_or(deadline, |d| d.min(deadline));
            self.deadline.set(Some(sooner));
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        self.start(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<crate::fault::InjectFault> for PushActor {
    type Result = ();

    /// Arms the fault and pushes at once, so it strikes now.
    fn handle(&mut self, msg: crate::fault::InjectFault, ctx: &mut Context<Self>) {
        self.fault = Some(msg.0);
        self.start(ctx);
    }
}

/// The endpoint as logs and status show it: no query string (the Go
/// sidecar's endpoints carried a token there).
pub fn mask_endpoint(endpoint: &str) -> String {
    match endpoint.split_once('?') {
        Some((base, _)) => format!("{base}?***"),
        None => endpoint.to_string(),
    }
}

/// A batch ready to send.
struct Built {
    /// Where it goes.
    url: String,
    /// Its `Content-Type`.
    content_type: &'static str,
    batch_id: String,
    body: Bytes,
    first_id: i64,
    last_id: i64,
    rows: usize,
    /// Records in the batch (a host sample is one record over many rows).
    records: usize,
}

/// About how many bytes a row takes once encoded: its text, and a few bytes
/// for each other value, over its columns as JSON. Cheaper than encoding it
/// twice.
fn approx_size(row: &StoredRow) -> usize {
    use serde_json::Value;
    fn size(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len() + 2,
            Value::Array(a) => a.iter().map(size).sum::<usize>() + 2,
            Value::Object(o) => o.iter().map(|(k, v)| k.len() + size(v)).sum::<usize>() + 2,
            _ => 8,
        }
    }
    row.to_json().iter().map(|(k, v)| k.len() + size(v)).sum()
}

/// Most rows in one OTLP batch.
const OTLP_MAX_ROWS: usize = 2_000;

/// Reads and encodes the next batch of `table` (blocking).
fn build_batch(
    pool: &ReadPool,
    table: Table,
    settings: &PushSettings,
    max_rows: usize,
) -> Result<Option<Built>, query::QueryError> {
    let cursor = query::push_cursor(pool, table)?;
    let agent_id = settings.agent_id.as_str();
    let (url, content_type, done) = match settings.format {
        PushFormat::Native => {
            let mut batch = native::NativeBatch::new(table, agent_id, settings.max_batch_bytes);
            let mut seen = 0usize;
            // Read a little past the row limit so a host sample is never cut.
            query::scan_unpushed(pool, table, cursor, max_rows + 256, |row| {
                seen += 1;
                batch.offer(row, seen <= max_rows)
            })?;
            let Some(done) = batch.finish() else {
                return Ok(None);
            };
            (settings.endpoint.clone(), "application/json", done)
        }
        PushFormat::Otlp => {
            let mut rows = Vec::new();
            let (mut bytes, mut first, mut last) = (0usize, None, 0);
            // Rows are held as read and then as OTLP messages before
            // encoding: fewer per batch keeps that within the sidecar's
            // memory budget.
            query::scan_unpushed(pool, table, cursor, max_rows.min(OTLP_MAX_ROWS), |row| {
                let id = row.id();
                let size = approx_size(&row);
                if !rows.is_empty() && bytes + size > settings.max_batch_bytes {
                    return false;
                }
                bytes += size;
                first.get_or_insert(id);
                last = id;
                rows.push(row);
                true
            })?;
            let Some(first) = first else {
                return Ok(None);
            };
            let done = native::Finished {
                batch_id: format!("{agent_id}:{}:{first}-{last}", table.name()),
                body: otlp::encode(table, &rows, agent_id),
                first_id: first,
                last_id: last,
                rows: rows.len(),
                events: rows.len(),
            };
            let base = settings.endpoint.trim_end_matches('/');
            (
                format!("{base}{}", otlp::path_of(table)),
                "application/x-protobuf",
                done,
            )
        }
    };
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(done.body.len() / 4),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut gz, &done.body)
        .map_err(|e| query::QueryError::Encode(e.to_string()))?;
    let body = gz
        .finish()
        .map_err(|e| query::QueryError::Encode(e.to_string()))?;
    Ok(Some(Built {
        url,
        content_type,
        batch_id: done.batch_id,
        body: Bytes::from(body),
        first_id: done.first_id,
        last_id: done.last_id,
        rows: done.rows,
        records: done.events,
    }))
}

/// One push: every table until it is drained or a batch fails.
struct PushRun {
    settings: Rc<PushSettings>,
    policy: RetryPolicy,
    pool: ReadPool,
    mark: Recipient<MarkPushed>,
    dead_letter: Recipient<DeadLetter>,
    view: PushView,
    log: Logger,
    client: awc::Client,
    deadline: Rc<Cell<Option<Instant>>>,
}

/// How the attempts at one batch ended.
enum Ending {
    Delivered,
    Split,
    Refused { status: u16 },
    GaveUp,
}

impl PushRun {
    fn past_deadline(&self) -> bool {
        self.deadline.get().is_some_and(|d| Instant::now() >= d)
    }

    async fn all(self) {
        for table in Table::ALL {
            if !self.table(table).await {
                return;
            }
        }
    }

    /// Pushes one table; false when the tick should end.
    async fn table(&self, table: Table) -> bool {
        let mut max_rows = self.settings.max_batch_rows;
        loop {
            if self.past_deadline() {
                return false;
            }
            let (pool, settings) = (self.pool.clone(), PushSettings::clone(&self.settings));
            let built = actix_rt::task::spawn_blocking(move || {
                build_batch(&pool, table, &settings, max_rows)
            })
            .await;
            let built = match built {
                Ok(Ok(Some(b))) => b,
                Ok(Ok(None)) => return true,
                Ok(Err(e)) => {
                    error!(self.log, "building a batch to push failed (reading its rows or compressing them)"; "table" => table.name(), "error" => e.to_string());
                    return false;
                }
                Err(e) => {
                    error!(self.log, "the push reader crashed"; "error" => e.to_string());
                    return false;
                }
            };
            match self.deliver(&built).await {
                Ending::Delivered => {
                    if let Err(e) = self
                        .mark
                        .send(MarkPushed {
                            table,
                            up_to: built.last_id,
                        })
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()))
                    {
                        error!(self.log, "marking rows pushed failed"; "error" => e);
                        return false;
                    }
                    self.view.update(|s| {
                        s.last_success_ns = Some(now_ns());
                        s.consecutive_failures = 0;
                        s.batches_pushed += 1;
                        s.rows_pushed += built.rows as u64;
                        s.bytes_pushed += built.body.len() as u64;
                    });
                }
                // Too large, or a 400 that some record in the batch caused:
                // halve until the culprit stands alone, then dead-letter it.
                Ending::Split | Ending::Refused { status: 400 } if built.records > 1 => {
                    max_rows = (built.rows / 2).max(1);
                    info!(self.log, "batch refused as a whole; halving it"; "rows" => max_rows);
                }
                Ending::Split => {
                    if !self.poison(table, &built, 413).await {
                        return false;
                    }
                }
                Ending::Refused { status: 400 } => {
                    if !self.poison(table, &built, 400).await {
                        return false;
                    }
                }
                Ending::Refused { .. } | Ending::GaveUp => return false,
            }
        }
    }

    /// Dead-letters a one-record batch the remote refused.
    async fn poison(&self, table: Table, built: &Built, status: u16) -> bool {
        let message = self
            .view
            .get()
            .last_error
            .map(|e| e.message)
            .unwrap_or_default();
        warn!(self.log, "remote refused a record for good; dead-lettering it";
            "table" => table.name(), "row_id" => built.first_id, "status" => status);
        let sent = self
            .dead_letter
            .send(DeadLetter {
                table,
                row_id: built.first_id,
                last_row_id: built.last_id,
                status,
                message,
            })
            .await;
        match sent {
            Ok(Ok(())) => {
                self.view.update(|s| s.dead_lettered += 1);
                true
            }
            other => {
                error!(self.log, "dead-lettering failed"; "error" => format!("{other:?}"));
                false
            }
        }
    }

    /// Sends a batch until it is delivered or the policy says stop.
    async fn deliver(&self, built: &Built) -> Ending {
        let mut waits = self.policy.backoff();
        for attempt in 1..=MAX_ATTEMPTS {
            if self.past_deadline() {
                return Ending::GaveUp;
            }
            let (outcome, message) = self.send(built).await;
            self.view.update(|s| s.last_attempt_ns = Some(now_ns()));
            let verdict = self.policy.classify(&outcome);
            if verdict == Verdict::Delivered {
                return Ending::Delivered;
            }
            let status = match outcome {
                SendOutcome::Status { code, .. } => Some(code),
                _ => None,
            };
            self.view.update(|s| {
                s.consecutive_failures += 1;
                s.last_error = Some(PushFailure {
                    status,
                    message: message.clone(),
                });
            });
            match verdict {
                Verdict::Delivered => unreachable!("returned above"),
                Verdict::Split => return Ending::Split,
                Verdict::Refused { auth } => {
                    if auth {
                        error!(self.log, "the push endpoint refused our credentials; check TRACE_PUSH_API_KEY";
                            "status" => status, "message" => message);
                    } else {
                        warn!(self.log, "the push endpoint refused a batch"; "status" => status, "message" => message,
                            "batch_id" => &built.batch_id);
                    }
                    return Ending::Refused {
                        status: status.unwrap_or(0),
                    };
                }
                Verdict::Retry { after } => {
                    if attempt == MAX_ATTEMPTS {
                        break;
                    }
                    let wait = match after {
                        Some(after) if after > self.settings.max_retry_wait => {
                            info!(self.log, "remote asked to wait longer than a tick allows; resuming next tick";
                                "retry_after_s" => after.as_secs());
                            return Ending::GaveUp;
                        }
                        Some(after) => after,
                        None => waits.next().unwrap_or(self.settings.backoff.1),
                    };
                    if self
                        .deadline
                        .get()
                        .is_some_and(|d| Instant::now() + wait >= d)
                    {
                        return Ending::GaveUp;
                    }
                    self.view.update(|s| s.retries += 1);
                    actix_rt::time::sleep(wait).await;
                }
            }
        }
        warn!(self.log, "push gave up for this tick"; "batch_id" => &built.batch_id, "attempts" => MAX_ATTEMPTS);
        Ending::GaveUp
    }

    /// One POST of a batch.
    async fn send(&self, built: &Built) -> (SendOutcome, String) {
        let settings = &self.settings;
        let mut timeout = settings.timeout;
        if let Some(deadline) = self.deadline.get() {
            timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
        }
        let mut request = self
            .client
            .post(&built.url)
            .timeout(timeout)
            .insert_header((header::CONTENT_TYPE, built.content_type))
            .insert_header((header::CONTENT_ENCODING, "gzip"))
            .insert_header(("Idempotency-Key", built.batch_id.as_str()));
        if let Some(key) = &settings.api_key {
            request = request.insert_header((header::AUTHORIZATION, format!("Bearer {key}")));
        }
        match request.send_body(built.body.clone()).await {
            Ok(mut response) => {
                let code = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
                let text = response
                    .body()
                    .limit(4096)
                    .await
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                (
                    SendOutcome::Status { code, retry_after },
                    format!("HTTP {code}: {}", text.trim()),
                )
            }
            Err(awc::error::SendRequestError::Timeout) => (
                SendOutcome::Timeout,
                format!("no answer within {timeout:?}"),
            ),
            Err(e) => (SendOutcome::Network, e.to_string()),
        }
    }
}

#[cfg(test)]
#[path = "push_tests.rs"]
mod push_tests;
