//! The command line for the person on the machine: `openclaw-trace status`
//! and `openclaw-trace report`.
//!
//! Both ask the running daemon (`TRACE_LISTEN_ADDR`, with
//! `TRACE_INGEST_TOKEN` as the bearer token) over its own API, or, with
//! `--db PATH`, read the database file directly without writing it, through
//! the same queries the API runs.
//!
//! - [`client`]: GETs to the daemon, with a timeout.
//! - [`dbfile`]: the file opened strictly read-only.
//! - [`status`], [`report`]: the two commands.
//! - [`table`]: aligned tables and number formats.

pub mod client;
pub mod dbfile;
pub mod report;
pub mod status;
pub mod table;

use std::collections::HashMap;
use std::process::ExitCode;

use crate::Config;

/// How a command ends; the codes are documented in each `--help` and the
/// README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; for `status`, the daemon is healthy.
    Ok,
    /// 1: the daemon is unhealthy or has a critical warning, or the answer
    /// could not be had (the daemon answered an error; the file cannot be read).
    Trouble,
    /// 2: a bad flag or value (also a bad `TRACE_*` variable).
    Usage,
    /// 3: the daemon cannot be reached (connection refused, no answer within 5 s).
    Unreachable,
    /// 4: the daemon refused the token (401): `TRACE_INGEST_TOKEN` is unset or wrong.
    Unauthorized,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Trouble => 1,
            Exit::Usage => 2,
            Exit::Unreachable => 3,
            Exit::Unauthorized => 4,
        }
    }
}

/// The exit codes, as every `--help` lists them.
const EXIT_CODES: &str = "\
Exit codes:
  0  done (status: the daemon is healthy)
  1  status: the daemon answers but is unhealthy (/health is 503, e.g. its disk is
     full) or has a critical warning (records refused for want of space, or
     rotation deleted rows that were never pushed); any command: the daemon
     answered an error, or the database file cannot be read
  2  usage: an unknown flag, a bad value, a bad TRACE_* variable
  3  the daemon cannot be reached (connection refused, no answer within 5 s)
  4  the daemon refused the token (401): set TRACE_INGEST_TOKEN to its token
";

/// A command that could not do what was asked: why, and the exit code.
#[derive(Debug)]
pub struct CliError {
    /// The exit code it ends with.
    pub exit: Exit,
    /// One line for stderr.
    pub message: String,
}

impl CliError {
    /// Ends with `exit`, printing `message`.
    pub fn new(exit: Exit, message: impl Into<String>) -> CliError {
        CliError {
            exit,
            message: message.into(),
        }
    }

    fn usage(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Usage, message)
    }
}

/// Runs the subcommand `args[0]` with the rest of `args`; anything else is
/// a usage error.
pub fn run(args: &[String]) -> ExitCode {
    let (name, rest) = match args.split_first() {
        Some((name, rest)) => (name.as_str(), rest),
        None => ("", args),
    };
    let result = match name {
        "status" => status::run(rest),
        "report" => report::run(rest),
        other => {
            eprintln!(
                "openclaw-trace: unknown argument {other:?}; the commands are status and report, \
                 and the daemon is configured by environment variables: see --help"
            );
            return ExitCode::from(Exit::Usage.code());
        }
    };
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            eprintln!("openclaw-trace {name}: {}", e.message);
            ExitCode::from(e.exit.code())
        }
    }
}

/// Flags as given: values by name, and switches.
#[derive(Debug, Default)]
pub struct Flags {
    /// `--name value` or `--name=value`.
    values: HashMap<&'static str, String>,
    /// `--name`.
    switches: Vec<&'static str>,
}

impl Flags {
    /// Reads `args` against the flags a command takes (names without `--`):
    /// an unknown flag, a flag given twice, a missing value or a stray
    /// argument is a usage error naming it. `-h` is `--help`.
    pub fn parse(
        args: &[String],
        command: &str,
        with_value: &[&'static str],
        switches: &[&'static str],
    ) -> Result<Flags, CliError> {
        let mut flags = Flags::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let arg = if arg == "-h" { "--help" } else { arg.as_str() };
            let Some(flag) = arg.strip_prefix("--") else {
                return Err(CliError::usage(format!(
                    "unexpected argument {arg:?}; see openclaw-trace {command} --help"
                )));
            };
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (flag, None),
            };
            if let Some(&known) = with_value.iter().find(|n| **n == name) {
                let value = match inline {
                    Some(v) => v.to_string(),
                    None => args
                        .next()
                        .cloned()
                        .ok_or_else(|| CliError::usage(format!("--{name} needs a value")))?,
                };
                if flags.values.insert(known, value).is_some() {
                    return Err(CliError::usage(format!("--{name} is given twice")));
                }
            } else if let Some(&known) = switches.iter().find(|n| **n == name) {
                if inline.is_some() {
                    return Err(CliError::usage(format!("--{name} takes no value")));
                }
                if flags.switches.contains(&known) {
                    return Err(CliError::usage(format!("--{name} is given twice")));
                }
                flags.switches.push(known);
            } else {
                return Err(CliError::usage(format!(
                    "unknown flag --{name}; see openclaw-trace {command} --help"
                )));
            }
        }
        Ok(flags)
    }

    /// The value of `--name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether `--name` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.switches.contains(&name)
    }
}

/// `TRACE_LISTEN_ADDR`'s default, as `--help` shows it (from the one table
/// of variables in `config`).
fn listen_addr_default() -> &'static str {
    crate::config::VARIABLES
        .iter()
        .find(|(name, _, _)| *name == "TRACE_LISTEN_ADDR")
        .map_or("", |(_, default, _)| default)
}

/// Writes `text` to stdout. A reader that went away (`| head`) is not an
/// error; any other failed write is.
fn output(text: &str) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::new(
            Exit::Trouble,
            format!("cannot write to stdout: {e}"),
        )),
    }
}

/// The configuration from the environment, as the daemon reads it; a bad
/// variable is a usage error.
fn config() -> Result<Config, CliError> {
    Config::from_env().map_err(|e| CliError::usage(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Flags, CliError> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Flags::parse(&args, "report", &["since", "db"], &["json", "help"])
    }

    #[test]
    fn flags_take_values_both_ways() {
        let f = parse(&["--since", "7d", "--db=/tmp/x.db", "--json"]).expect("valid");
        assert_eq!(f.value("since"), Some("7d"));
        assert_eq!(f.value("db"), Some("/tmp/x.db"));
        assert!(f.switch("json"));
        assert!(parse(&["-h"]).expect("valid").switch("help"));
    }

    #[test]
    fn bad_flags_are_usage_errors_naming_the_flag() {
        for (args, names) in [
            (&["--color"][..], "--color"),
            (&["--since"][..], "--since"),
            (&["--json=yes"][..], "--json"),
            (&["--json", "--json"][..], "--json"),
            (&["extra"][..], "extra"),
        ] {
            let e = parse(args).expect_err("refused");
            assert_eq!(e.exit, Exit::Usage);
            assert!(e.message.contains(names), "{args:?}: {}", e.message);
        }
    }
}
