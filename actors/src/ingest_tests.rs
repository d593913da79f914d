//! Admission and backpressure in the IngestActor, with a real StoreActor on
//! a real file behind it: the store's thread is held so that records stay
//! pending exactly as long as the test says.

use std::sync::Arc;

use actix::prelude::*;

use super::{Accepted, IngestActor, IngestBatch, IngestError, IngestSettings};
use crate::records::{Batch, LlmCall, Source};
use crate::stats::Stats;
use crate::test_support::{event, event_names, quiet, refuse_poison, StoreThread, TestDb};

fn ingest(store: &StoreThread, max_pending_records: u64) -> Addr<IngestActor> {
    IngestActor::new(
        IngestSettings {
            agent_id: "test-agent".into(),
            max_text_bytes: 8,
            max_pending_records,
            openclaw_metric_prefix: crate::llm_view::DEFAULT_METRIC_PREFIX.into(),
        },
        store.addr.clone().recipient(),
        Arc::clone(&store.stats),
        quiet(),
    )
    .start()
}

fn events(names: &[&str]) -> IngestBatch {
    IngestBatch {
        batch: Batch::Events(names.iter().map(|n| event(n)).collect()),
        source: Source::Native,
    }
}

/// The IngestActor's answer to a sent batch, awaited to its commit.
async fn answered(
    sent: actix::dev::Request<IngestActor, IngestBatch>,
) -> Result<Accepted, IngestError> {
    sent.await.expect("ingest answered").await
}

fn pending(stats: &Stats) -> u64 {
    stats.snapshot().store_pending
}

#[actix_rt::test]
async fn past_the_bound_a_batch_is_refused_until_the_store_catches_up() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |_| {});
    let ingest = ingest(&store, 2);
    let hold = store.hold();
    // Two records reach the store and wait there.
    let held = ingest.send(events(&["a", "b"]));
    // One more is past the bound of two: refused at once, saying by how much.
    let refused = answered(ingest.send(events(&["c"]))).await;
    assert_eq!(
        refused,
        Err(IngestError::Backpressure {
            pending: 2,
            limit: 2
        })
    );
    assert_eq!(pending(&store.stats), 2, "the refused record was not added");
    hold.release();
    let accepted = answered(held).await.expect("stored");
    assert_eq!(accepted.ids, vec![1, 2]);
    assert_eq!(pending(&store.stats), 0, "released once committed");
    // The store caught up: admitted again.
    let again = answered(ingest.send(events(&["c"]))).await.expect("stored");
    assert_eq!(again.ids, vec![3]);
    assert_eq!(event_names(&db), vec!["a", "b", "c"]);
    let stats = store.stats.snapshot();
    assert_eq!(stats.accepted_requests, 2);
    assert_eq!(stats.accepted_records_total(), 3);
}

#[actix_rt::test]
async fn within_the_bound_batches_are_admitted_while_others_wait() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |_| {});
    let ingest = ingest(&store, 3);
    let hold = store.hold();
    let first = ingest.send(events(&["a"]));
    let second = ingest.send(events(&["b", "c"]));
    let third = ingest.send(events(&["d"]));
    // The third arrives with three pending: one past the bound.
    assert_eq!(
        answered(third).await,
        Err(IngestError::Backpressure {
            pending: 3,
            limit: 3
        })
    );
    assert_eq!(pending(&store.stats), 3);
    hold.release();
    assert_eq!(answered(first).await.expect("stored").ids, vec![1]);
    assert_eq!(answered(second).await.expect("stored").ids, vec![2, 3]);
    assert_eq!(pending(&store.stats), 0);
}

#[actix_rt::test]
async fn a_lone_batch_larger_than_the_bound_is_admitted() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |_| {});
    let ingest = ingest(&store, 2);
    let accepted = answered(ingest.send(events(&["a", "b", "c", "d", "e"])))
        .await
        .expect("a lone batch is never refused, however large");
    assert_eq!(accepted.ids, vec![1, 2, 3, 4, 5]);
    assert_eq!(pending(&store.stats), 0);
    // But one larger than the bound is refused while anything else waits.
    let hold = store.hold();
    let waiting = ingest.send(events(&["f"]));
    let big = answered(ingest.send(events(&["g", "h", "i"]))).await;
    assert_eq!(
        big,
        Err(IngestError::Backpressure {
            pending: 1,
            limit: 2
        })
    );
    hold.release();
    assert_eq!(answered(waiting).await.expect("stored").ids, vec![6]);
}

#[actix_rt::test]
async fn a_failed_commit_releases_its_pending_records() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |conn| refuse_poison(conn, "events", "name"));
    let ingest = ingest(&store, 2);
    let failed = answered(ingest.send(events(&["ok", "poison"]))).await;
    assert!(
        matches!(failed, Err(IngestError::Store(_))),
        "the store's error: {failed:?}"
    );
    assert_eq!(pending(&store.stats), 0, "the refused batch holds nothing");
    assert_eq!(store.stats.snapshot().accepted_requests, 0);
    let next = answered(ingest.send(events(&["a", "b"])))
        .await
        .expect("admitted: nothing is pending");
    assert_eq!(next.ids.len(), 2);
    assert_eq!(event_names(&db), vec!["a", "b"]);
}

#[actix_rt::test]
async fn calls_get_a_trace_id_and_long_text_is_cut_and_named() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |_| {});
    let ingest = ingest(&store, 100);
    let call = |trace_id: Option<&str>, input: &str| LlmCall {
        provider: "p".into(),
        model: "m".into(),
        status: "ok".into(),
        trace_id: trace_id.map(str::to_string),
        input_text: Some(input.into()),
        ..LlmCall::default()
    };
    let accepted = answered(ingest.send(IngestBatch {
        batch: Batch::LlmCalls(vec![call(Some("given"), "short"), call(None, "123456789")]),
        source: Source::Native,
    }))
    .await
    .expect("stored");
    assert_eq!(accepted.ids, vec![1, 2]);
    assert_eq!(accepted.trace_ids[0], "given", "a given trace id is kept");
    assert_eq!(accepted.trace_ids[1].len(), 36, "a UUID is assigned");
    let rows: Vec<(String, String, Option<String>)> = db
        .read()
        .prepare("SELECT trace_id, input_text, truncated FROM llm_calls ORDER BY id")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows[0], ("given".into(), "short".into(), None));
    assert_eq!(
        rows[1].0, accepted.trace_ids[1],
        "the id returned is the id stored"
    );
    assert_eq!(rows[1].1, "12345678", "cut at 8 bytes");
    assert!(
        rows[1]
            .2
            .as_deref()
            .is_some_and(|t| t.contains("input_text")),
        "{:?}",
        rows[1].2
    );
}

#[actix_rt::test]
async fn a_caller_that_goes_away_leaves_its_records_pending_until_their_commit() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |_| {});
    let ingest = ingest(&store, 100);
    let hold = store.hold();
    let committing = ingest
        .send(events(&["a", "b"]))
        .await
        .expect("ingest answered");
    // The HTTP request goes away (its client hung up) before the commit.
    drop(committing);
    assert_eq!(
        pending(&store.stats),
        2,
        "records still queued at the store count against the bound"
    );
    hold.release();
    // The store answers in order: once a later batch is answered, the first
    // was committed, counted and released.
    let next = answered(ingest.send(events(&["c"]))).await.expect("stored");
    assert_eq!(next.ids, vec![3]);
    assert_eq!(pending(&store.stats), 0);
    assert_eq!(event_names(&db), vec!["a", "b", "c"]);
    let stats = store.stats.snapshot();
    assert_eq!(stats.accepted_requests, 2, "committed, so accepted");
    assert_eq!(stats.accepted_records_total(), 3);
}
