//! The engine of openclaw-trace: the actors that admit, store and
//! sample, push and rotate the data an AI agent's sidecar keeps.
//!
//! Actors talk only through typed messages and each runs under an actix
//! `Supervisor`; a panic in a handler is caught, counted and turned into a
//! restart ([`supervise`]).
//!
//! # Layout
//!
//! - [`engine`]: starts the actors under supervisors and stops them in order.
//! - [`ingest`]: the IngestActor: admission (backpressure), enrichment, counting.
//! - [`store`]: the StoreActor: the single SQLite writer, group commit.
//! - [`checkpoint`]: WAL checkpoints off the store's thread.
//! - [`schema`]: pragmas, the schema and its migrations, the read pool.
//! - [`metrics`]: the MetricsActor: host, agent and sidecar samples.
//! - [`push`]: the PushActor: batches to the remote API, retry policy.
//! - [`rotate`]: the RotationActor: age, size and volume bounds, a full disk healed.
//! - [`follow`]: the FollowActor, which runs a follower of OpenClaw's own
//!   files: on a timer, a bounded chunk at a time, each committed with the
//!   follower's position; and what `/v1/status` shows of them.
//! - [`transcript`]: the transcript follower: LLM calls read from OpenClaw's transcripts.
//! - [`gateway_log`]: the gateway log follower: OpenClaw's gateway log, tailed.
//! - [`llm_view`]: token usage and cost read out of OTLP spans and metrics.
//! - [`prices`]: model prices (LiteLLM's, built in, plus overrides) to estimate cost.
//! - [`query`]: read-side queries (status counts, file sizes, rows to push).
//! - [`rollup`]: the hourly and per-session sums of LLM calls, kept by the store.
//! - [`report`]: the owner's queries: summary, lists, traces, host series.
//! - [`records`]: the record types every stage passes along.
//! - [`stored`]: rows read back typed per table, for the two push encoders.
//! - [`stats`]: the shared counters behind `/v1/status`.
//! - [`supervise`]: panic containment for actor handlers.
//! - [`time`]: the clock, as unix nanoseconds.
//! - [`fault`]: faults tests inject (compiled in only for tests).

pub use rusqlite;

pub mod checkpoint;
pub mod engine;
pub mod fault;
pub mod follow;
pub mod gateway_log;
pub mod ingest;
pub mod llm_view;
pub mod metrics;
pub mod prices;
pub mod push;
pub mod query;
pub mod records;
pub mod report;
pub mod rollup;
pub mod rotate;
pub mod schema;
pub mod slack;
pub mod stats;
pub mod store;
pub mod stored;
pub mod supervise;
#[cfg(test)]
mod test_support;
pub mod time;
pub mod transcript;

pub use engine::{Engine, EngineConfig, FaultError};
