//! The IngestActor: between the HTTP handlers and the store.
//!
//! Each HTTP worker thread runs its own ([`crate::engine::IngestStarter`]),
//! so a request reaches it without crossing threads; the store's answer
//! comes back to that thread.
//!
//! It admits a batch only while the store is not too far behind
//! (backpressure instead of memory growth), completes every record (trace id,
//! agent id, receive time), cuts long text fields and hands the batch to the
//! store with the request's [`Admitted`](crate::stats::Admitted) share, which the store counts as
//! accepted and releases as it answers. Refusals are counted where they
//! become HTTP answers, so each is counted exactly once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use actix::prelude::*;
use slog::{warn, Logger};

use crate::llm_view;
use crate::records::{truncate_text, Batch, Source, Stamp};
use crate::stats::{ActorName, Stats};
use crate::store::{AppendAndAnswer, AppendRecords, StoreError};
use crate::supervise::{contain, Panicked};
use crate::time::now_ns;

/// Why a batch was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The store has too many records waiting; retry later.
    #[error("the store is {pending} records behind (limit {limit}); retry later")]
    Backpressure {
        /// Records waiting for their commit.
        pending: u64,
        /// `TRACE_MAX_PENDING_RECORDS`.
        limit: u64,
    },
    /// The store refused or lost the batch.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ingest actor crashed on this batch.
    #[error(transparent)]
    Panicked(#[from] Panicked),
    /// The store actor's mailbox is closed (it is gone for good).
    #[error("the store is not running")]
    StoreGone,
}

/// What was stored for an accepted batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Row ids in the batch's table, in record order (rows derived from the
    /// batch, such as LLM calls read from spans, are not listed).
    pub ids: Vec<i64>,
    /// For LLM calls: the trace id of each record, given or assigned.
    pub trace_ids: Vec<String>,
}

/// Store this batch (all of it or none of it). Answered at once with a
/// [`Committing`], which resolves after the commit.
#[derive(Message)]
#[rtype(result = "Committing")]
pub struct IngestBatch {
    /// The decoded records.
    pub batch: Batch,
    /// Which wire format they came in.
    pub source: Source,
}

/// A batch on its way to its commit: resolves to what was stored, or why
/// nothing was.
///
/// The caller awaits the store's answer itself, on its own thread: no
/// future waits inside the IngestActor, and the store answers on a channel
/// of the caller's rather than through a future of its own, so a request
/// costs one cross-thread answer and no actor-side futures (on 1-record
/// requests, actix's futures and answers were about 8% of the store
/// thread's samples; see the benchmark history).
#[derive(MessageResponse)]
pub struct Committing(Pin<Box<dyn Future<Output = Result<Accepted, IngestError>> + Send>>);

impl Committing {
    /// A batch refused before it reached the store.
    fn refused(why: IngestError) -> Self {
        Committing(Box::pin(std::future::ready(Err(why))))
    }
}

impl Future for Committing {
    type Output = Result<Accepted, IngestError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

/// Settings of the ingest stage.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Stamped on every record (`TRACE_AGENT_ID`).
    pub agent_id: String,
    /// Text fields are cut to this many bytes (`TRACE_MAX_TEXT_BYTES`).
    pub max_text_bytes: usize,
    /// Records allowed to wait for the store before ingest answers 503
    /// (`TRACE_MAX_PENDING_RECORDS`).
    pub max_pending_records: u64,
    /// What OpenClaw's metric names start with
    /// (`TRACE_OPENCLAW_METRIC_PREFIX`), stamped on every batch.
    pub openclaw_metric_prefix: Arc<str>,
}

/// Admission, enrichment and counting of incoming records.
pub struct IngestActor {
    /// Fixed settings.
    settings: IngestSettings,
    /// Where admitted batches go.
    store: Recipient<AppendAndAnswer>,
    /// Shared counters (also the pending-record gauge used for admission).
    stats: Arc<Stats>,
    /// Where this actor logs.
    log: Logger,
    /// A fault armed by a test, run on the next batch.
    #[cfg(feature = "fault-injection")]
    fault: Option<crate::fault::FaultKind>,
}

impl IngestActor {
    /// An ingest stage that forwards to `store`.
    pub fn new(
        settings: IngestSettings,
        store: Recipient<AppendAndAnswer>,
        stats: Arc<Stats>,
        log: Logger,
    ) -> Self {
        IngestActor {
            settings,
            store,
            stats,
            log,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }
}

/// Assigns missing trace ids and cuts text fields longer than `max`
/// bytes; returns the LLM calls' trace ids. Every record that reaches the
/// store passes here (posted ones and those the followers read).
pub fn complete(batch: &mut Batch, max: usize) -> Vec<String> {
    let cut = |text: &mut Option<String>| text.as_mut().is_some_and(|t| truncate_text(t, max));
    match batch {
        Batch::LlmCalls(calls) => calls
            .iter_mut()
            .map(|call| {
                if cut(&mut call.input_text) {
                    call.truncated.push("input_text");
                }
                if cut(&mut call.output_text) {
                    call.truncated.push("output_text");
                }
                call.trace_id
                    .get_or_insert_with(|| uuid::Uuid::new_v4().to_string())
                    .clone()
            })
            .collect(),
        Batch::Errors(errors) => {
            for e in errors.iter_mut() {
                // Pushed errors carry a trace id the remote dedupes on.
                e.trace_id
                    .get_or_insert_with(|| uuid::Uuid::new_v4().to_string());
                if truncate_text(&mut e.message, max) {
                    e.truncated.push("message");
                }
                if cut(&mut e.stack_trace) {
                    e.truncated.push("stack_trace");
                }
            }
            Vec::new()
        }
        Batch::Events(events) => {
            for e in events.iter_mut() {
                cut(&mut e.body);
            }
            Vec::new()
        }
        Batch::MetricPoints(_) | Batch::Spans(_) => Vec::new(),
    }
}

impl Actor for IngestActor {
    type Context = Context<Self>;
}

impl Supervised for IngestActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.stats.restarted(ActorName::Ingest);
        warn!(self.log, "ingest actor restarting");
    }
}

impl Handler<IngestBatch> for IngestActor {
    type Result = Committing;

    fn handle(&mut self, msg: IngestBatch, ctx: &mut Context<Self>) -> Self::Result {
        let IngestBatch { mut batch, source } = msg;
        #[cfg(feature = "fault-injection")]
        let fault = self.fault.take();
        let trace_ids = match contain(ActorName::Ingest, &self.stats, &self.log, ctx, || {
            #[cfg(feature = "fault-injection")]
            if let Some(fault) = fault {
                fault.strike();
            }
            complete(&mut batch, self.settings.max_text_bytes)
        }) {
            Ok(ids) => ids,
            Err(panicked) => return Committing::refused(panicked.into()),
        };

        let records = batch.len() as u64;
        let limit = self.settings.max_pending_records;
        let (pending, admitted) = self.stats.admit(records);
        // A lone batch is always admitted, however large, so no request size
        // within the body limit can be refused forever.
        if pending > limit && pending > records {
            drop(admitted);
            return Committing::refused(IngestError::Backpressure {
                pending: pending - records,
                limit,
            });
        }

        let derived = llm_view::derived_calls(&batch);
        let batches: Arc<Vec<_>> = Arc::new(std::iter::once(batch).chain(derived).collect());
        // Kept until the answer: while the caller waits, the records are then
        // freed on its thread, off the writer's (a tenth of the writer's time
        // under load); a caller that has gone leaves them to the store.
        let records_kept = Arc::clone(&batches);
        let stamp = Stamp {
            agent_id: self.settings.agent_id.clone(),
            received_ns: now_ns(),
            source,
            openclaw_metric_prefix: Arc::clone(&self.settings.openclaw_metric_prefix),
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        // Queued whatever the mailbox holds (admission above is the bound).
        // The store counts and releases `admitted` as it answers, so a caller
        // that goes away does not take its records out of the gauge before
        // they are committed. A store gone for good (its mailbox closed)
        // drops the message, and with it both, here or once it stops.
        self.store.do_send(AppendAndAnswer {
            append: AppendRecords {
                batches,
                stamp,
                position: None,
            },
            answer,
            admitted,
        });
        Committing(Box::pin(async move {
            let result = answered.await;
            drop(records_kept);
            match result {
                Ok(Ok(mut ids)) => Ok(Accepted {
                    ids: ids.swap_remove(0),
                    trace_ids,
                }),
                Ok(Err(e)) => Err(e.into()),
                // The store dropped the append unanswered: its mailbox was
                // closed (it stopped for good), or it stopped at shutdown
                // with the append still queued. A contained crash answers.
                Err(_) => Err(IngestError::StoreGone),
            }
        }))
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<crate::fault::InjectFault> for IngestActor {
    type Result = ();

    fn handle(&mut self, msg: crate::fault::InjectFault, _ctx: &mut Context<Self>) {
        self.fault = Some(msg.0);
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod ingest_tests;
