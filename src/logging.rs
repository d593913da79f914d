//! JSON-lines logging on stdout: slog-json → level filter → slog-async, plus
//! a bridge so the `log` records of actix and other crates come out as JSON
//! too, and a panic hook that logs panics as JSON before they unwind.

use slog::{o, Drain, Logger};

/// Keeps the async drain and the global logger alive; dropping it flushes
/// what is still queued.
pub struct LogGuard {
    _global: slog_scope::GlobalLoggerGuard,
    _async: slog_async::AsyncGuard,
}

/// Builds the root logger at `level` and installs the `log` bridge and the
/// panic hook.
pub fn init(level: slog::Level) -> (Logger, LogGuard) {
    let json = slog_json::Json::new(std::io::stdout())
        .add_default_keys()
        .build()
        .fuse();
    let (async_drain, async_guard) = slog_async::Async::new(json)
        .chan_size(4096)
        .overflow_strategy(slog_async::OverflowStrategy::DropAndReport)
        .thread_name("log".into())
        .build_with_guard();
    let drain = async_drain.filter_level(level).fuse();
    let log = Logger::root(drain, o!("service" => "openclaw-trace"));

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
            _async: async_guard,
        },
    )
}

fn to_log_level(level: slog::Level) -> log::Level {
    match level {
        slog::Level::Critical | slog::Level::Error => log::Level::Error,
        slog::Level::Warning => log::Level::Warn,
        slog::Level::Info => log::Level::Info,
        slog::Level::Debug => log::Level::Debug,
        slog::Level::Trace => log::Level::Trace,
    }
}
