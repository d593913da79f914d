//! The owner's view: the queries behind `/v1/llm/summary`, `/v1/llm/calls`,
//! `/v1/errors`, `/v1/events`, `/v1/traces/{id}` and `/v1/host`
//! (docs/API.md), and behind the `report` command; and what the file alone
//! says for `status --db` ([`file_status`]).
//!
//! Each query takes parameters as the query string gives them (name, value
//! pairs), checks every one (a [`BadParameter`] names it), and runs on a
//! plain read connection, so the HTTP API (over the read pool) and the CLI's
//! `--db` mode (over a read-only file) give the same answers. They block:
//! call them from a blocking thread. Answers are typed and bounded.

pub mod file_status;
pub mod lists;
pub mod summary;

use std::collections::HashSet;

use serde::Serialize;

use crate::time::{parse_instant, rfc3339_ms, DAY_NS};

pub use crate::query::QueryError;

/// A parameter that cannot be used, named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{parameter}: {message}")]
pub struct BadParameter {
    /// The parameter's name.
    pub parameter: String,
    /// Why it cannot be used.
    pub message: String,
}

impl BadParameter {
    /// `parameter` is bad because `message`.
    pub fn new(parameter: &str, message: impl Into<String>) -> Self {
        BadParameter {
            parameter: parameter.to_string(),
            message: message.into(),
        }
    }
}

/// A failed query: the caller's parameters, or the database.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A parameter was bad: a 400.
    #[error(transparent)]
    Bad(#[from] BadParameter),
    /// The trace or other thing asked for is not held: a 404.
    #[error("{0}")]
    NotFound(String),
    /// The database failed: a 503.
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl From<rusqlite::Error> for ReportError {
    fn from(e: rusqlite::Error) -> Self {
        ReportError::Query(QueryError::Sqlite(e))
    }
}

/// A query's parameters, checked against the names it knows.
#[derive(Debug)]
pub struct Params<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Params<'a> {
    /// Refuses names not in `known` and names given twice.
    pub fn new(pairs: &'a [(String, String)], known: &[&str]) -> Result<Self, BadParameter> {
        let mut seen = HashSet::new();
        for (name, _) in pairs {
            if !known.contains(&name.as_str()) {
                return Err(BadParameter::new(
                    name,
                    format!(
                        "unknown parameter; this endpoint takes {}",
                        known.join(", ")
                    ),
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(BadParameter::new(name, "given more than once"));
            }
        }
        Ok(Params {
            pairs: pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        })
    }

    /// The value of `name`; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(k, v)| *k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
    }

    /// `since` (default 24 h back) and `until` (default now), checked.
    pub fn window(&self, now_ns: i64) -> Result<Window, BadParameter> {
        let since = match self.get("since") {
            Some(v) => parse_instant(v, now_ns).map_err(|m| BadParameter::new("since", m))?,
            None => now_ns - DAY_NS,
        };
        let until = match self.get("until") {
            Some(v) => parse_instant(v, now_ns).map_err(|m| BadParameter::new("until", m))?,
            None => now_ns,
        };
        if since >= until {
            return Err(BadParameter::new(
                "since",
                format!(
                    "must be before until ({} is not before {})",
                    rfc3339_ms(since),
                    rfc3339_ms(until)
                ),
            ));
        }
        Ok(Window {
            since_ns: since,
            until_ns: until,
        })
    }

    /// `name` as a count from 1 to `max`, `default` when absent.
    pub fn limit(&self, name: &str, default: usize, max: usize) -> Result<usize, BadParameter> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(BadParameter::new(
                    name,
                    format!("{v:?} is not a whole number from 1 to {max}"),
                )),
            },
        }
    }

    /// `name` as `true` or `false`, false when absent.
    pub fn flag(&self, name: &str) -> Result<bool, BadParameter> {
        match self.get(name) {
            None | Some("false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(v) => Err(BadParameter::new(
                name,
                format!("{v:?} is not true or false"),
            )),
        }
    }

    /// `name` as free text of at most 256 bytes.
    pub fn text(&self, name: &str) -> Result<Option<String>, BadParameter> {
        match self.get(name) {
            Some(v) if v.len() > 256 => Err(BadParameter::new(name, "is longer than 256 bytes")),
            other => Ok(other.map(str::to_string)),
        }
    }
}

/// A half-open time window, `[since, until)`, unix ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The first instant in.
    pub since_ns: i64,
    /// The first instant out.
    pub until_ns: i64,
}

/// The `source` values an LLM row can have, in the order the summary
/// prefers them.
pub const LLM_SOURCES: &[&str] = &["openclaw_transcript", "native", "otlp_span", "otlp_metric"];

/// Reads `source` for the LLM endpoints.
pub fn llm_source(params: &Params<'_>) -> Result<Option<String>, BadParameter> {
    match params.get("source") {
        None => Ok(None),
        Some(s) if LLM_SOURCES.contains(&s) => Ok(Some(s.to_string())),
        Some(s) => Err(BadParameter::new(
            "source",
            format!("{s:?} is not one of {}", LLM_SOURCES.join(", ")),
        )),
    }
}
