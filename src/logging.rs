//! JSON-lines logging on stdout: slog-json → level filter → a queue to the
//! `log` thread, plus a bridge so the `log` records of actix and other crates
//! come out as JSON too, and a panic hook that logs panics as JSON before they
//! unwind.
//!
//! Logging never stops the daemon and never makes a request wait, whatever
//! stdout does:
//!
//! - a record crosses to the `log` thread through a bounded queue without
//!   waiting; when stdout takes lines more slowly than they come (a reader
//!   that stopped reading), the queue fills and further records are dropped
//!   and counted (`queue_full`);
//! - the `log` thread formats each record into one line and writes it whole
//!   and unbuffered to stdout; a write that fails (a full volume, a closed
//!   pipe, an I/O error) drops that line and is counted (`write_failed`), and
//!   the next line is tried afresh, so logging resumes as soon as writes
//!   succeed. The first line written after a loss, `log lines dropped`, says
//!   how many were lost and why.
//!
//! The stock chain stopped for good at the first failed write instead:
//! `slog_json::Json` returned the error, `.fuse()` turned it into a panic, and
//! slog-async's worker caught the panic and exited; every later record then
//! failed to enter the queue and was dropped unseen.
//!
//! actix-http reports every connection a client breaks (an unparsable head, a
//! request that never finishes, a reset) as `stream error: …` at error level.
//! Anyone who can reach the port can cause those, so they are logged at debug
//! (see [`CLIENT_CAUSED`]); the server's own errors keep their level.
//!
//! [`dropped_log_lines`] and [`dropped_log_lines_by_reason`] are on `/metrics`
//! and `/v1/status`.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use slog::{o, Drain, Level, Logger, Never, OwnedKVList, Record, RecordStatic};
use strum::VariantArray;

/// The `service` key on every line.
const SERVICE: &str = "openclaw-trace";

/// Records waiting for the `log` thread; past this many, records are dropped.
/// slog-async's queue is an array allocated and written whole at start, 104
/// bytes a slot: 4096 slots took 428 kB of the idle RSS, 1024 took 107 kB,
/// 256 take 27 kB. The `log` thread writes a line in microseconds, so at
/// `info` the queue fills only while stdout does not take lines, and then
/// any size fills.
const QUEUE_LEN: usize = 256;

/// The queue at `debug` and `trace`, where a line or more a request comes in
/// bursts as large as the requests in flight.
const VERBOSE_QUEUE_LEN: usize = 1024;

/// How long the exit waits for the queued lines to be written: a stuck stdout
/// must not hold the shutdown past its deadline (`main.rs`).
const FLUSH_DEADLINE: Duration = Duration::from_millis(500);

/// A line buffer that grew past this (a huge record) is given back after use.
const LINE_CAPACITY: usize = 16 * 1024;

/// Why a log line was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::VariantArray, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum DropReason {
    /// The queue to the `log` thread was full: stdout takes lines more slowly
    /// than they come.
    QueueFull,
    /// Writing the line to stdout failed: a full volume, a closed pipe, an I/O
    /// error.
    WriteFailed,
    /// The record could not be formatted as JSON (a value failed or panicked).
    FormatFailed,
}

impl DropReason {
    /// The label on `/metrics` and the key in `/v1/status`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    fn count(self) {
        DROPPED[self as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Log lines lost since start, per [`DropReason`]; process-wide, as stdout is.
static DROPPED: [AtomicU64; REASONS] = [const { AtomicU64::new(0) }; REASONS];

/// How many reasons there are.
const REASONS: usize = DropReason::VARIANTS.len();

fn dropped_counts() -> [u64; REASONS] {
    DROPPED.each_ref().map(|n| n.load(Ordering::Relaxed))
}

/// Log lines lost since start, whatever the reason.
pub fn dropped_log_lines() -> u64 {
    dropped_counts().iter().sum()
}

/// Log lines lost since start, per reason: `queue_full`, `write_failed`,
/// `format_failed`.
pub fn dropped_log_lines_by_reason() -> [(&'static str, u64); REASONS] {
    let counts = dropped_counts();
    std::array::from_fn(|i| (DropReason::VARIANTS[i].as_str(), counts[i]))
}

/// Keeps the `log` thread and the global logger alive; dropping it writes what
/// is still queued, waiting at most [`FLUSH_DEADLINE`].
pub struct LogGuard {
    /// Keeps the `slog-scope` logger that the `log` bridge writes to.
    _global: slog_scope::GlobalLoggerGuard,
    /// Ends the `log` thread once the queue is written; taken on drop.
    queue: Option<slog_async::AsyncGuard>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let Some(queue) = self.queue.take() else {
            return;
        };
        // Dropping the guard joins the `log` thread, which may be stuck in a
        // write to a stdout nobody reads: join on a thread of its own and give
        // up after the deadline. (Should the thread not start, the closure is
        // dropped here and the join happens inline.)
        let (done, finished) = mpsc::channel();
        let joining = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                drop(queue);
                let _ = done.send(());
            });
        if joining.is_ok() {
            let _ = finished.recv_timeout(FLUSH_DEADLINE);
        }
    }
}

/// Builds the root logger at `level` and installs the `log` bridge and the
/// panic hook.
pub fn init(level: Level) -> (Logger, LogGuard) {
    let (queue, queue_guard) = slog_async::AsyncCore::custom(StdoutLines::new())
        .chan_size(if matches!(level, Level::Debug | Level::Trace) {
            VERBOSE_QUEUE_LEN
        } else {
            QUEUE_LEN
        })
        .thread_name("log".into())
        .build_with_guard();
    let log = Logger::root(Front { level, queue }, o!("service" => SERVICE));

    let global = slog_scope::set_global_logger(log.clone());
    // Only fails when another logger is already installed (a second init in
    // one process, as in tests); the first one keeps working.
    let _ = slog_stdlog::init_with_level(to_log_level(level));

    let panic_log = log.clone();
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = openclaw_trace_actors::supervise::panic_message(info.payload());
        slog::crit!(panic_log, "panic"; "message" => message, "location" => location,
            "thread" => std::thread::current().name().unwrap_or("unnamed").to_string());
    }));

    (
        log,
        LogGuard {
            _global: global,
            queue: Some(queue_guard),
        },
    )
}

fn to_log_level(level: Level) -> log::Level {
    match level {
        Level::Critical | Level::Error => log::Level::Error,
        Level::Warning => log::Level::Warn,
        Level::Info => log::Level::Info,
        Level::Debug => log::Level::Debug,
        Level::Trace => log::Level::Trace,
    }
}

/// Where actix-http's HTTP/1 connection dispatcher logs (its `tracing` events
/// reach us as `log` records with the module as target).
const ACTIX_H1_DISPATCHER: &str = "actix_http::h1::dispatcher";

/// What that dispatcher logs at error level when the client, not the server,
/// broke the connection: `stream error: {DispatchError}` for a head that does
/// not parse (answered 400 or 431), a request that did not arrive in time
/// (408), an I/O error on the socket (a reset), a shutdown that timed out or a
/// body the handler refused without reading; `write zero` when the peer stops
/// taking bytes. Taken from actix-http 3's `h1/dispatcher.rs` and the
/// `DispatchError` messages in `error.rs`. `service error`, `body error`,
/// `upgrade error` and `internal error` are the server's own and keep their
/// level.
const CLIENT_CAUSED: [&str; 6] = [
    "stream error: request parse error: ",
    "stream error: request did not complete within the specified timeout",
    "stream error: I/O error: ",
    "stream error: connection shutdown timeout",
    "stream error: handler dropped payload before reading EOF",
    "write zero; closing",
];

/// The level `record` is logged at: debug for a connection a client broke
/// (see [`CLIENT_CAUSED`]), else its own.
fn effective_level(record: &Record) -> Level {
    if record.tag() == ACTIX_H1_DISPATCHER && record.level().is_at_least(Level::Warning) {
        let message = record.msg().to_string();
        if CLIENT_CAUSED.iter().any(|p| message.starts_with(p)) {
            return Level::Debug;
        }
    }
    record.level()
}

/// The root drain, on the caller's thread: settles a record's level, filters,
/// and queues the record for the `log` thread without waiting.
struct Front {
    /// Least severe level written.
    level: Level,
    /// The queue to the `log` thread; non-blocking, so a full queue is an
    /// error, never a wait.
    queue: slog_async::AsyncCore,
}

impl Drain for Front {
    type Ok = ();
    type Err = Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), Never> {
        let level = effective_level(record);
        if !level.is_at_least(self.level) {
            return Ok(());
        }
        let queued = if level == record.level() {
            self.queue.log(record, values)
        } else {
            let demoted = RecordStatic {
                location: record.location(),
                tag: record.tag(),
                level,
            };
            self.queue
                .log(&Record::new(&demoted, record.msg(), record.kv()), values)
        };
        // `Full`: slog-async also reports a dead `log` thread so, which cannot
        // happen as `StdoutLines` never panics out; `Fatal` needs a blocking
        // queue.
        if queued.is_err() {
            DropReason::QueueFull.count();
        }
        Ok(())
    }
}

/// The bytes of the line being formatted, shared by the JSON formatter, which
/// writes them, and [`StdoutLines`], which sends them on.
#[derive(Clone, Default)]
struct LineBuffer(Arc<Mutex<Vec<u8>>>);

impl LineBuffer {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // Only the `log` thread uses it; a panic while formatting leaves the
        // buffer to be cleared, not poisoned.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Write for LineBuffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The `log` thread's drain: one record, one JSON line, one write; a line
/// that cannot be written is dropped and counted, never retried and never
/// fatal.
struct StdoutLines {
    /// Formats a record into `line`.
    json: slog_json::Json<LineBuffer>,
    /// The line `json` just formatted.
    line: LineBuffer,
    /// The daemon's own keys, for the `log lines dropped` line.
    root_values: OwnedKVList,
    /// Stdout and what the last writes left behind.
    out: RefCell<Output>,
}

impl StdoutLines {
    fn new() -> StdoutLines {
        let line = LineBuffer::default();
        StdoutLines {
            json: slog_json::Json::new(line.clone())
                .add_default_keys()
                .build(),
            line,
            root_values: o!("service" => SERVICE).into(),
            out: RefCell::new(Output {
                file: io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .ok()
                    .map(File::from),
                torn: false,
                reported: [0; REASONS],
            }),
        }
    }

    /// Formats one line with `format` and writes it; why it was lost if it
    /// was.
    fn emit(
        &self,
        out: &mut Output,
        format: impl FnOnce(&slog_json::Json<LineBuffer>) -> io::Result<()>,
    ) -> Result<(), DropReason> {
        let formatted = catch_unwind(AssertUnwindSafe(|| format(&self.json)));
        let mut line = self.line.lock();
        let result = match formatted {
            Ok(Ok(())) if out.write_line(&mut line) => Ok(()),
            Ok(Ok(())) => Err(DropReason::WriteFailed),
            Ok(Err(_)) | Err(_) => Err(DropReason::FormatFailed),
        };
        line.clear();
        line.shrink_to(LINE_CAPACITY);
        result
    }

    /// Writes a `log lines dropped` line if lines were lost since the last
    /// one.
    fn report_losses(&self, out: &mut Output) {
        let totals = dropped_counts();
        let lost: [u64; REASONS] =
            std::array::from_fn(|i| totals[i].saturating_sub(out.reported[i]));
        if lost == [0; REASONS] {
            return;
        }
        let [queue_full, write_failed, format_failed] = lost;
        let reported = self.emit(out, |json| {
            json.log(
                &slog::record!(
                    Level::Warning,
                    "",
                    &format_args!("log lines dropped"),
                    slog::b!("queue_full" => queue_full, "write_failed" => write_failed,
                        "format_failed" => format_failed)
                ),
                &self.root_values,
            )
        });
        // A report that could not be written is not a loss of its own: its
        // counts go into the next one.
        if reported.is_ok() {
            out.reported = totals;
        }
    }
}

impl Drain for StdoutLines {
    type Ok = ();
    type Err = Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), Never> {
        let mut out = self.out.borrow_mut();
        self.report_losses(&mut out);
        if let Err(reason) = self.emit(&mut out, |json| json.log(record, values)) {
            reason.count();
        }
        Ok(())
    }
}

/// Stdout as the `log` thread writes it.
struct Output {
    /// fd 1, duplicated at start so that writes bypass std's buffered
    /// `Stdout`: a line is written whole or dropped, never kept in a buffer to
    /// come out later. `None` if stdout was closed at start (then fd 1 may
    /// later be some other file, which must not get log lines).
    file: Option<File>,
    /// The last write stopped inside a line: the next line starts with a
    /// newline, so the fragment stays on a line of its own.
    torn: bool,
    /// The [`DROPPED`] counts already reported in a `log lines dropped` line.
    reported: [u64; REASONS],
}

impl Output {
    /// Writes `line` whole; false if the write failed and the line is lost.
    fn write_line(&mut self, line: &mut Vec<u8>) -> bool {
        let Some(file) = self.file.as_mut() else {
            return false;
        };
        if self.torn {
            line.insert(0, b'\n');
        }
        let mut written = 0;
        let whole = loop {
            if written == line.len() {
                break true;
            }
            match file.write(&line[written..]) {
                Ok(0) => break false,
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        if written > 0 {
            self.torn = line[written - 1] != b'\n';
        }
        whole
    }
}

#[cfg(test)]
mod tests {
    /// The labels `/metrics` and `/v1/status` show, in this order.
    #[test]
    fn drop_reasons_keep_their_labels() {
        let labels: Vec<_> = super::dropped_log_lines_by_reason()
            .into_iter()
            .map(|(label, _)| label)
            .collect();
        assert_eq!(labels, ["queue_full", "write_failed", "format_failed"]);
    }
}
