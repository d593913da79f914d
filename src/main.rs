//! The `openclaw-trace` binary: reads its configuration, installs logging and
//! signal handling, and runs the daemon until SIGTERM or SIGINT; or runs a
//! command of the command line (`status`, `report`: [`openclaw_trace::cli`]).

use std::process::ExitCode;
use std::time::Duration;

use openclaw_trace::{config, logging, run, Config, Listeners};
use slog::{crit, info, warn, Logger};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

/// The whole shutdown must end inside Fly's default `kill_timeout` of 5 s.
const SHUTDOWN_DEADLINE: Duration = Duration::from_millis(4500);

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("--help" | "-h") => {
            print!("{}", config::help_text());
            return ExitCode::SUCCESS;
        }
        Some("--version" | "-V") => {
            println!("openclaw-trace {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(_) => {
            let args: Vec<String> = std::env::args().skip(1).collect();
            return openclaw_trace::cli::run(&args);
        }
        None => {}
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("openclaw-trace: {e}");
            return ExitCode::from(2);
        }
    };
    let (log, guard) = logging::init(config.log_level);
    let code = serve(config, &log);
    drop(log);
    drop(guard); // flushes the async log drain
    code
}

fn serve(config: Config, log: &Logger) -> ExitCode {
    let listeners = match Listeners::bind(&config, log) {
        Ok(l) => l,
        Err(e) => {
            crit!(log, "cannot listen"; "addr" => config.listen_addr.to_string(), "error" => e.to_string());
            return ExitCode::FAILURE;
        }
    };
    let system = actix_rt::System::new();
    let result = system.block_on(async {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        actix_rt::spawn(watch_signals(log.clone(), stop_tx));
        run(config, listeners, log.clone(), async move {
            let _ = stop_rx.await;
        })
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crit!(log, "openclaw-trace stopped with an error"; "error" => e.to_string());
            ExitCode::FAILURE
        }
    }
}

/// First SIGTERM or SIGINT: graceful shutdown, with a watchdog that ends the
/// process if it overruns its deadline. Second signal: exit at once.
async fn watch_signals(log: Logger, stop: oneshot::Sender<()>) {
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            crit!(log, "cannot install signal handlers"; "error" => e.to_string());
            return;
        }
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(log, "shutting down"; "signal" => name);
    let _ = stop.send(());
    let watchdog_log = log.clone();
    std::thread::spawn(move || {
        std::thread::sleep(SHUTDOWN_DEADLINE);
        crit!(watchdog_log, "shutdown overran its deadline; exiting now";
            "deadline_ms" => SHUTDOWN_DEADLINE.as_millis() as u64);
        std::process::exit(1);
    });
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    warn!(log, "second signal; exiting at once"; "signal" => name);
    std::process::exit(130);
}
