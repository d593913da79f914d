//! A watchdog on every connection, for the stalls actix-http leaves open.
//!
//! actix answers a first request head that is late (`client_request_timeout`)
//! and closes idle kept-alive connections, and `read_body` bounds an ingest
//! body. Two stalls remain, each able to hold a connection, and so a slot
//! under the connection cap, for as long as the client stays silent:
//!
//! - a later request head on a kept-alive connection that stops half-way
//!   (actix's head timer covers only the first request);
//! - a chunked body that a handler answered without reading to the end
//!   (a refusal, a timeout, `/health` with a body): actix drains it with no
//!   deadline, even after `Connection: close`.
//!
//! So each connection gets a [`ConnWatch`]: while no handler runs on it, it
//! may stay for keep-alive plus the request timeout (a kept-alive client has
//! that long to send its next request), or for the linger time once its last
//! answer said `Connection: close`; then the watchdog shuts its socket down.
//! To do so it holds a duplicate of the socket's descriptor: two descriptors
//! per connection, which the connection cap accounts for.
//!
//! And at the cap a worker stops accepting, so a flood of stalled sockets
//! would keep `/health` waiting in the listen backlog until their timeouts.
//! Each worker therefore keeps a list of its connections: when a new one
//! brings it near its cap, the oldest connection with no handler running is
//! shut down to make room (an attacker's stalled sockets go first, as they
//! are the oldest idle ones), so new clients are always accepted.
//!
//! Each worker also counts its connections (watched or not) to set its
//! timer slack ([`openclaw_trace_actors::slack`]): while a connection is
//! open the worker's timers keep the default, so the timeouts and linger
//! that actix-http computes from its cached clock, and tokio's blocking
//! threads the worker spawns, stay precise; once the last connection is
//! gone the worker takes [`WatchLimits::idle_timer_slack`], unless the
//! server is stopping ([`stopping`]), whose drain polls its deadline on the
//! worker's timers.

use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use openclaw_trace_actors::slack;

/// How long a connection may stay without a handler running on it.
#[derive(Debug, Clone, Copy)]
pub struct WatchLimits {
    /// After an answer that keeps the connection: keep-alive plus the time a
    /// request may take to arrive.
    pub idle: Duration,
    /// After an answer that closes the connection: the linger time, and a
    /// little more so actix closes first when it can.
    pub closing: Duration,
    /// Connections a worker keeps before a new one makes it shut its oldest
    /// idle one: a little under its `max_connections`.
    pub evict_at: usize,
    /// The worker's timer slack while it has no connection open.
    pub idle_timer_slack: Duration,
}

thread_local! {
    /// This worker's connections (workers are threads; connections never
    /// move between them).
    static OPEN: RefCell<Vec<Weak<ConnWatch>>> = const { RefCell::new(Vec::new()) };
}

thread_local! {
    /// This worker's open connections.
    static LIVE: Cell<usize> = const { Cell::new(0) };
}

/// Idle connections shut down to make room near the cap, over all workers.
static EVICTED: AtomicU64 = AtomicU64::new(0);

/// Set once the server is stopping: from then on the workers keep the
/// default timer slack.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// The server is stopping: its drain's deadline must fire on time, so no
/// worker relaxes its timers again. Call before stopping the server.
pub fn stopping() {
    STOPPING.store(true, Ordering::Relaxed);
}

/// Puts `slack` in place on the calling worker if it has no connection
/// open and the server is not stopping.
pub fn relax_if_idle(slack: Duration) {
    let idle = LIVE.try_with(|live| live.get() == 0).unwrap_or(false);
    if idle && !STOPPING.load(Ordering::Relaxed) {
        slack::set(slack);
    }
}

/// Counts one open connection on its worker, from `on_connect` until the
/// connection is dropped: the first puts the default timer slack in place,
/// the last the idle one.
struct Live {
    idle_timer_slack: Duration,
}

impl Live {
    fn new(idle_timer_slack: Duration) -> Self {
        LIVE.with(|live| {
            if live.get() == 0 {
                slack::set(Duration::ZERO);
            }
            live.set(live.get() + 1);
        });
        Live { idle_timer_slack }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(1)));
        relax_if_idle(self.idle_timer_slack);
    }
}

/// Idle connections shut down so far to make room for new ones.
pub fn evicted_connections() -> u64 {
    EVICTED.load(Ordering::Relaxed)
}

/// Adds `watch` to this worker's list; when the worker is near its cap,
/// shuts down its oldest connection with no handler running.
fn register(watch: &Rc<ConnWatch>, evict_at: usize) {
    OPEN.with(|open| {
        let mut open = open.borrow_mut();
        open.retain(|w| w.strong_count() > 0);
        if open.len() + 1 >= evict_at {
            let oldest = open
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|w| w.busy.get() == 0 && !w.evicted.get())
                .min_by_key(|w| w.since.get());
            if let Some(oldest) = oldest {
                oldest.evicted.set(true);
                // Errors mean the socket is already shut or gone.
                let _ = rustix::net::shutdown(&oldest.socket, rustix::net::Shutdown::Both);
                EVICTED.fetch_add(1, Ordering::Relaxed);
            }
        }
        open.push(Rc::downgrade(watch));
    });
}

/// One connection's state, shared by its requests (through the connection's
/// extensions) and its watchdog task.
#[derive(Debug)]
pub struct ConnWatch {
    /// A duplicate of the connection's descriptor, to shut the socket down.
    socket: OwnedFd,
    /// Handlers running on the connection now.
    busy: Cell<u32>,
    /// When the connection was accepted or its last handler answered.
    since: Cell<Instant>,
    /// Whether the last answer closes the connection.
    closing: Cell<bool>,
    /// Shut down to make room; no longer counted as a candidate.
    evicted: Cell<bool>,
    /// The watchdog, ended with the connection so that no timer of a
    /// closed connection wakes the worker.
    watchdog: RefCell<Option<actix_web::rt::task::JoinHandle<()>>>,
}

impl Drop for ConnWatch {
    fn drop(&mut self) {
        if let Some(watchdog) = self.watchdog.get_mut().take() {
            watchdog.abort();
        }
    }
}

/// Marks a handler as running until dropped, so a handler that is cancelled
/// (its client went away) still counts as done.
struct Busy(Rc<ConnWatch>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.set(self.0.busy.get().saturating_sub(1));
        self.0.since.set(Instant::now());
    }
}

/// `HttpServer::on_connect`: gives the connection a [`ConnWatch`] and starts
/// its watchdog. A connection whose descriptor cannot be duplicated (the
/// process is out of descriptors) goes unwatched rather than refused.
pub fn on_connect(
    limits: WatchLimits,
) -> impl Fn(&dyn std::any::Any, &mut actix_web::dev::Extensions) + Send + Sync + 'static {
    move |conn, extensions| {
        // Counted whether or not it can be watched.
        extensions.insert(Live::new(limits.idle_timer_slack));
        let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        // Close-on-exec, like every descriptor std opens.
        let Ok(socket) = rustix::io::fcntl_dupfd_cloexec(tcp, 0) else {
            return;
        };
        let watch = Rc::new(ConnWatch {
            socket,
            busy: Cell::new(0),
            since: Cell::new(Instant::now()),
            closing: Cell::new(false),
            evicted: Cell::new(false),
            watchdog: RefCell::new(None),
        });
        register(&watch, limits.evict_at);
        let dog = actix_web::rt::spawn(watchdog(Rc::downgrade(&watch), limits));
        *watch.watchdog.borrow_mut() = Some(dog);
        extensions.insert(watch);
    }
}

/// Middleware (`middleware::from_fn`): counts the handler as running on its
/// connection, and notes whether its answer closes the connection.
pub async fn mark_busy(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let busy = req.conn_data::<Rc<ConnWatch>>().map(|watch| {
        watch.busy.set(watch.busy.get() + 1);
        Busy(Rc::clone(watch))
    });
    let res = next.call(req).await?;
    if let Some(Busy(watch)) = &busy {
        let head = res.response().head();
        watch
            .closing
            .set(head.connection_type() == ConnectionType::Close);
    }
    Ok(res)
}

/// Sleeps until the connection may be due, and shuts its socket down when it
/// is; ends when the connection is gone (the weak reference is dead).
async fn watchdog(conn: Weak<ConnWatch>, limits: WatchLimits) {
    loop {
        let Some(watch) = conn.upgrade() else {
            return;
        };
        let wake = if watch.busy.get() > 0 {
            // Handlers are bounded by their own timers; look again soon, so
            // an answer that closes the connection is followed within the
            // linger time.
            Instant::now() + limits.closing
        } else {
            let allowed = if watch.closing.get() {
                limits.closing
            } else {
                limits.idle
            };
            let due = watch.since.get() + allowed;
            if due <= Instant::now() {
                // Errors mean the socket is already shut or gone: done either way.
                let _ = rustix::net::shutdown(&watch.socket, rustix::net::Shutdown::Both);
                return;
            }
            due
        };
        drop(watch);
        actix_web::rt::time::sleep_until(wake.into()).await;
    }
}
