//! The StoreActor's group commit, driven through its messages on a real
//! SQLite file: the store's thread is held while appends queue up, so what
//! shares a commit is decided by the test, not by timing.

use futures_util::future::join_all;

use super::{Close, DeadLetter, MarkPushed, Ping, StoreError};
use crate::records::Table;
use crate::test_support::{
    append, event_names, refuse_poison, rotation_settings, StoreThread, TestDb,
};

fn commits(store: &StoreThread) -> u64 {
    store.stats.snapshot().store_commits
}

fn cursor(db: &TestDb, table: Table) -> i64 {
    db.read()
        .query_row(
            "SELECT last_pushed_id FROM push_cursors WHERE table_name = ?1",
            [table.name()],
            |r| r.get(0),
        )
        .expect("cursor")
}

fn unpushed(store: &StoreThread, table: Table) -> u64 {
    store
        .stats
        .rows
        .tables()
        .into_iter()
        .find(|t| t.table == table.name())
        .expect("table counts")
        .unpushed
}

#[actix_rt::test]
async fn appends_that_queue_while_the_store_is_busy_share_one_commit() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |_| {});
    let before = commits(&store);
    let hold = store.hold();
    // Ten appends (within the mailbox's 16), all waiting for the store.
    let names: Vec<String> = (0..10).map(|i| format!("e{i}")).collect();
    let replies: Vec<_> = names
        .iter()
        .map(|n| store.addr.send(append(&[n.as_str()])))
        .collect();
    hold.release();
    let mut ids = Vec::new();
    for reply in join_all(replies).await {
        let per_batch = reply.expect("the store answered").expect("committed");
        assert_eq!(per_batch.len(), 1, "one batch, one id list");
        ids.extend(per_batch[0].iter().copied());
    }
    assert_eq!(ids, (1..=10).collect::<Vec<i64>>(), "ids in arrival order");
    assert_eq!(commits(&store) - before, 1, "one transaction for all ten");
    assert_eq!(event_names(&db), names, "every row committed, in order");
}

#[actix_rt::test]
async fn an_append_sent_alone_is_committed_alone_and_answered_after_its_commit() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |_| {});
    for i in 1..=3 {
        let ids = store.commit(append(&["solo"])).await;
        assert_eq!(ids, vec![vec![i]]);
        // Answered only once committed: a separate connection sees it.
        assert_eq!(event_names(&db).len(), i as usize);
        assert_eq!(commits(&store), i as u64);
    }
}

#[actix_rt::test]
async fn a_failing_append_fails_alone_and_whole_and_its_group_still_commits() {
    let db = TestDb::new();
    // A real SQLite failure for one record: a trigger refuses it.
    let store = StoreThread::start(&db.path, |conn| refuse_poison(conn, "events", "name"));
    let before = commits(&store);
    let hold = store.hold();
    let first = store.addr.send(append(&["a1", "a2"]));
    let poisoned = store.addr.send(append(&["b1", "poison", "b3"]));
    let last = store.addr.send(append(&["c1"]));
    hold.release();
    let (first, poisoned, last) = (
        first.await.expect("answered"),
        poisoned.await.expect("answered"),
        last.await.expect("answered"),
    );
    assert_eq!(first, Ok(vec![vec![1, 2]]));
    match poisoned {
        Err(StoreError::Write(message)) => assert!(message.contains("poisoned"), "{message}"),
        other => panic!("the poisoned append fails with the database's error: {other:?}"),
    }
    // b1 was rolled back with its batch: ids go on after the rollback.
    let last = last.expect("the append after the failure commits");
    assert_eq!(last.len(), 1);
    assert_eq!(
        event_names(&db),
        vec!["a1", "a2", "c1"],
        "b1 and b3 are not stored"
    );
    assert_eq!(commits(&store) - before, 1, "still one transaction");
    let events = store
        .stats
        .rows
        .tables()
        .into_iter()
        .find(|t| t.table == "events")
        .expect("events");
    assert_eq!(events.rows, 3, "the row counts follow what was committed");
}

#[actix_rt::test]
async fn close_commits_what_came_before_it_and_refuses_what_comes_after() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |_| {});
    let hold = store.hold();
    let before = store.addr.send(append(&["before"]));
    let close = store.addr.send(Close);
    let after = store.addr.send(append(&["after"]));
    let ping = store.addr.send(Ping);
    hold.release();
    assert_eq!(before.await.expect("answered"), Ok(vec![vec![1]]));
    assert_eq!(close.await.expect("answered"), Ok(()));
    assert_eq!(after.await.expect("answered"), Err(StoreError::Closed));
    assert_eq!(
        ping.await.expect("answered"),
        Err(StoreError::Closed),
        "a closed store is not healthy"
    );
    assert_eq!(event_names(&db), vec!["before"]);
    // Checkpointed into the main file: the WAL is empty or gone.
    let wal = std::fs::metadata(crate::schema::sibling(&db.path, "-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(wal, 0, "the WAL was checkpointed and truncated");
}

#[actix_rt::test]
async fn the_push_cursor_only_moves_forward_and_counts_the_rows_it_passes() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |_| {});
    store.commit(append(&["e1", "e2", "e3", "e4", "e5"])).await;
    assert_eq!(cursor(&db, Table::Events), 0);
    assert_eq!(unpushed(&store, Table::Events), 5);
    let mark = |up_to| MarkPushed {
        table: Table::Events,
        up_to,
    };
    store
        .addr
        .send(mark(3))
        .await
        .expect("answered")
        .expect("marked");
    assert_eq!(cursor(&db, Table::Events), 3);
    assert_eq!(unpushed(&store, Table::Events), 2);
    // An older acknowledgement (a retried batch answered late) changes nothing.
    store
        .addr
        .send(mark(1))
        .await
        .expect("answered")
        .expect("marked");
    assert_eq!(cursor(&db, Table::Events), 3, "never moves back");
    assert_eq!(unpushed(&store, Table::Events), 2);
    // Other tables keep their own cursor.
    assert_eq!(cursor(&db, Table::LlmCalls), 0);
    store
        .addr
        .send(mark(5))
        .await
        .expect("answered")
        .expect("marked");
    assert_eq!(cursor(&db, Table::Events), 5);
    assert_eq!(unpushed(&store, Table::Events), 0);
}

#[actix_rt::test]
async fn a_cursor_move_waits_for_the_appends_before_it() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |_| {});
    let hold = store.hold();
    let appended = store.addr.send(append(&["e1", "e2"]));
    let marked = store.addr.send(MarkPushed {
        table: Table::Events,
        up_to: 2,
    });
    hold.release();
    appended.await.expect("answered").expect("committed");
    marked.await.expect("answered").expect("marked");
    assert_eq!(cursor(&db, Table::Events), 2);
    assert_eq!(
        unpushed(&store, Table::Events),
        0,
        "the rows were committed before the cursor passed them"
    );
}

#[actix_rt::test]
async fn a_dead_letter_is_kept_and_the_cursor_moves_past_it() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |_| {});
    store.commit(append(&["e1", "poison", "e3"])).await;
    store
        .addr
        .send(MarkPushed {
            table: Table::Events,
            up_to: 1,
        })
        .await
        .expect("answered")
        .expect("marked");
    store
        .addr
        .send(DeadLetter {
            table: Table::Events,
            row_id: 2,
            last_row_id: 2,
            status: 400,
            message: "HTTP 400: bad record".into(),
        })
        .await
        .expect("answered")
        .expect("dead-lettered");
    assert_eq!(cursor(&db, Table::Events), 2);
    assert_eq!(unpushed(&store, Table::Events), 1, "e3 still to push");
    assert_eq!(store.stats.rows.dead_letters(), 1);
    let (table, row_id, last_row_id, status, message): (String, i64, i64, i64, String) = db
        .read()
        .query_row(
            "SELECT table_name, row_id, last_row_id, status, message FROM dead_letters",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .expect("one dead letter");
    assert_eq!(
        (
            table.as_str(),
            row_id,
            last_row_id,
            status,
            message.as_str()
        ),
        ("events", 2, 2, 400, "HTTP 400: bad record")
    );
    // The row itself stays in its table.
    assert_eq!(event_names(&db), vec!["e1", "poison", "e3"]);
}

/// The appends parked behind a hold are not lost if more arrive than the
/// mailbox holds at once: they are all committed, in order.
#[actix_rt::test]
async fn more_appends_than_the_mailbox_holds_are_all_committed_in_order() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |_| {});
    let hold = store.hold();
    let names: Vec<String> = (0..40).map(|i| format!("e{i}")).collect();
    let replies: Vec<_> = names
        .iter()
        .map(|n| store.addr.send(append(&[n.as_str()])))
        .collect();
    hold.release();
    for (i, reply) in join_all(replies).await.into_iter().enumerate() {
        assert_eq!(
            reply.expect("answered").expect("committed"),
            vec![vec![i as i64 + 1]]
        );
    }
    assert_eq!(event_names(&db), names);
    assert!(
        commits(&store) < 40,
        "appends that waited shared commits: {}",
        commits(&store)
    );
}

fn wal_pragmas(conn: &rusqlite::Connection) -> (i64, i64) {
    let read = |name: &str| {
        conn.pragma_query_value(None, name, |r| r.get(0))
            .expect("pragma")
    };
    (read("wal_autocheckpoint"), read("journal_size_limit"))
}

#[test]
fn the_wal_is_checkpointed_at_half_the_reserve_the_volume_allows() {
    let db = TestDb::new();
    let conn = crate::schema::open_writer(&db.path).expect("open");
    // Only the bound counts: the volume's size is given.
    let default = rotation_settings(512 << 20);

    // The default bound on a large volume: a 32 MiB reserve, 16 MiB of
    // 2 KiB pages (schema::PAGE_SIZE).
    assert_eq!(super::set_wal_limits(&conn, &default, 8 << 30), 8192);
    assert_eq!(wal_pragmas(&conn), (8192, (512 << 20) / 10));

    // A 16 MiB volume holds a 1 MiB reserve: 512 KiB.
    assert_eq!(super::set_wal_limits(&conn, &default, 16 << 20), 256);

    // A volume whose size is unknown is taken for a small one (a 64 KiB
    // reserve: 32 KiB is 16 pages), and the threshold never goes below 32
    // pages.
    assert_eq!(super::set_wal_limits(&conn, &default, 0), 32);
    assert_eq!(wal_pragmas(&conn).0, 32);

    // A small bound: a 256 KiB reserve, and the WAL cut back to 1 MiB.
    assert_eq!(
        super::set_wal_limits(&conn, &rotation_settings(2 << 20), 8 << 30),
        64
    );
    assert_eq!(wal_pragmas(&conn), (64, 1 << 20));

    // A file an earlier build made keeps its 4 KiB pages: 16 MiB is 4,096
    // of them.
    let old = TestDb::new();
    old.create_with_4_kib_pages();
    let conn = crate::schema::open_writer(&old.path).expect("open the old file");
    assert_eq!(super::set_wal_limits(&conn, &default, 8 << 30), 4096);
    assert_eq!(wal_pragmas(&conn), (4096, (512 << 20) / 10));
}

/// A span of trace `trace` named `id` that started at `start_ns`.
fn span(trace: &str, id: &str, start_ns: i64) -> crate::records::SpanRecord {
    crate::records::SpanRecord {
        trace_id: trace.to_string(),
        span_id: id.to_string(),
        name: format!("op {id}"),
        start_ns,
        end_ns: start_ns + 1_000,
        ..Default::default()
    }
}

/// An append of one batch of spans.
fn append_spans(spans: Vec<crate::records::SpanRecord>) -> super::AppendRecords {
    super::AppendRecords {
        position: None,
        batches: std::sync::Arc::new(vec![crate::records::Batch::Spans(spans)]),
        stamp: crate::test_support::stamp(),
    }
}

/// The span ids `GET /v1/traces/{id}` shows for `trace`, sorted, with the
/// count it gives; none when nothing of the trace is held.
fn trace_spans(db: &TestDb, trace: &str) -> (Vec<String>, usize) {
    fn walk(nodes: &[crate::report::lists::SpanNode], out: &mut Vec<String>) {
        for n in nodes {
            out.push(n.span_id.clone());
            walk(&n.children, out);
        }
    }
    match crate::report::lists::trace(&db.read(), trace) {
        Ok(t) => {
            let mut ids = Vec::new();
            walk(&t.spans, &mut ids);
            ids.sort();
            (ids, t.span_count)
        }
        Err(crate::report::ReportError::NotFound(_)) => (Vec::new(), 0),
        Err(e) => panic!("trace {trace}: {e}"),
    }
}

/// The `span_traces` keys, as (first id, last id, trace id).
fn trace_keys(db: &TestDb) -> Vec<(i64, i64, String)> {
    db.read()
        .prepare("SELECT first_id, last_id, trace_id FROM span_traces ORDER BY first_id")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A trace key, as [`trace_keys`] lists it.
fn key(first: i64, last: i64, trace: &str) -> (i64, i64, String) {
    (first, last, trace.to_string())
}

/// Stores each batch of spans as an append of its own, in order.
async fn store_spans(store: &StoreThread, batches: Vec<Vec<crate::records::SpanRecord>>) {
    for batch in batches {
        store.commit(append_spans(batch)).await;
    }
}

/// Rotation by age: deletes up to ten spans that started before `cutoff_ns`.
async fn delete_spans_before(store: &StoreThread, cutoff_ns: i64) -> super::Deleted {
    store
        .addr
        .send(super::DeleteOlderThan {
            target: crate::rotate::Target::Data(Table::Spans),
            cutoff_ns,
            limit: 10,
        })
        .await
        .expect("answered")
        .expect("deleted")
}

/// Rotation by size: deletes the `limit` oldest rows.
async fn delete_oldest(store: &StoreThread, limit: usize) -> super::Deleted {
    store
        .addr
        .send(super::DeleteOldest {
            pushed_only: false,
            limit,
        })
        .await
        .expect("answered")
        .expect("deleted")
}

#[actix_rt::test]
async fn a_trace_is_found_through_one_key_per_batch_and_its_keys_go_with_its_spans() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |_| {});
    let t = 1_764_324_000_000_000_000;
    // Two traces interleaved in one batch, a third alone; then more of "a".
    store_spans(
        &store,
        vec![
            vec![
                span("a", "a1", t),
                span("b", "b1", t + 1),
                span("a", "a2", t + 2),
                span("c", "c1", t + 3),
                span("b", "b2", t + 4),
            ],
            vec![span("a", "a3", t + 5)],
        ],
    )
    .await;
    assert_eq!(
        trace_keys(&db),
        vec![
            key(1, 3, "a"),
            key(2, 5, "b"),
            key(4, 4, "c"),
            key(6, 6, "a"),
        ],
        "one key per trace and batch, from its first span to its last"
    );
    assert_eq!(trace_spans(&db, "a"), (strings(&["a1", "a2", "a3"]), 3));
    assert_eq!(trace_spans(&db, "b"), (strings(&["b1", "b2"]), 2));
    assert_eq!(trace_spans(&db, "c"), (strings(&["c1"]), 1));
    // The file holds no per-span index on trace ids any more.
    let indexes: i64 = db
        .read()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'spans'
                AND sql LIKE '%trace_id%'",
            [],
            |r| r.get(0),
        )
        .expect("indexes");
    assert_eq!(indexes, 0);

    // Rotation takes the oldest three spans: the keys whose spans are all
    // gone go with them; the others still find what is left.
    let deleted = delete_oldest(&store, 3).await;
    assert_eq!(
        (deleted.target, deleted.rows),
        (crate::rotate::Target::Data(Table::Spans), 3)
    );
    assert_eq!(
        trace_keys(&db),
        vec![key(2, 5, "b"), key(4, 4, "c"), key(6, 6, "a")]
    );
    assert_eq!(trace_spans(&db, "a"), (strings(&["a3"]), 1));
    assert_eq!(trace_spans(&db, "b"), (strings(&["b2"]), 1));

    // And when no span is left, no key is.
    delete_oldest(&store, 10).await;
    assert_eq!(trace_keys(&db), vec![]);
    assert_eq!(trace_spans(&db, "a"), (vec![], 0));
}

#[actix_rt::test]
async fn a_trace_is_read_once_when_rotation_gave_out_its_span_ids_again() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |_| {});
    let t = 1_764_324_000_000_000_000;
    // Ids 5 and 6 started early (an agent's clock, a late export).
    store_spans(
        &store,
        vec![
            vec![span("a", "s1", t), span("a", "s2", t + 1)],
            vec![
                span("a", "s3", t + 2),
                span("a", "s4", t + 3),
                span("a", "early5", t - 100),
                span("a", "early6", t - 99),
            ],
        ],
    )
    .await;
    // Rotation by age deletes the newest ids, 5 and 6: their batch's key
    // stays (ids 3 and 4 are left), and SQLite gives ids 5 and 6 out again.
    let deleted = delete_spans_before(&store, t - 50).await;
    assert_eq!(deleted.rows, 2);
    assert_eq!(
        trace_spans(&db, "a"),
        (strings(&["s1", "s2", "s3", "s4"]), 4)
    );
    store_spans(
        &store,
        vec![vec![
            span("a", "s5", t + 4),
            span("a", "s6", t + 5),
            span("a", "s7", t + 6),
        ]],
    )
    .await;
    assert_eq!(
        trace_keys(&db),
        vec![key(1, 2, "a"), key(3, 6, "a"), key(5, 7, "a")],
        "two keys name ids 5 and 6"
    );
    assert_eq!(
        trace_spans(&db, "a"),
        (strings(&["s1", "s2", "s3", "s4", "s5", "s6", "s7"]), 7),
        "every span once"
    );

    // No span left, no key left.
    delete_spans_before(&store, t + 10).await;
    assert_eq!(trace_keys(&db), vec![]);
    assert_eq!(trace_spans(&db, "a"), (vec![], 0));
}

#[actix_rt::test]
async fn a_span_that_stays_keeps_no_key_of_the_spans_deleted_around_it() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |_| {});
    let t = 1_764_324_000_000_000_000;
    // The oldest id holds a span dated decades ahead (an agent's clock):
    // rotation by age never takes it, while it takes all that follows.
    store_spans(
        &store,
        vec![
            vec![span("x", "future", t + 2_000_000_000_000_000_000)],
            vec![span("a", "a1", t), span("b", "b1", t + 1)],
            vec![span("a", "a2", t + 2)],
        ],
    )
    .await;
    assert_eq!(trace_keys(&db).len(), 4);
    let deleted = delete_spans_before(&store, t + 10).await;
    assert_eq!(deleted.rows, 3);
    assert_eq!(
        trace_keys(&db),
        vec![key(1, 1, "x")],
        "the deleted spans' keys went with them"
    );
    assert_eq!(trace_spans(&db, "x"), (strings(&["future"]), 1));
}

#[actix_rt::test]
async fn an_append_refused_in_a_group_commit_leaves_no_trace_key() {
    let db = TestDb::new();
    let store = StoreThread::start(&db.path, |conn| refuse_poison(conn, "spans", "span_id"));
    let t = 1_764_324_000_000_000_000;
    let before = commits(&store);
    let hold = store.hold();
    let first = store.addr.send(append_spans(vec![span("a", "a1", t)]));
    // Its first batch's keys are written before its second batch fails.
    let poisoned = store.addr.send(super::AppendRecords {
        position: None,
        batches: std::sync::Arc::new(vec![
            crate::records::Batch::Spans(vec![span("b", "b1", t), span("b", "b2", t)]),
            crate::records::Batch::Spans(vec![span("b", "poison", t)]),
        ]),
        stamp: crate::test_support::stamp(),
    });
    let last = store
        .addr
        .send(append_spans(vec![span("c", "c1", t), span("a", "a2", t)]));
    hold.release();
    assert_eq!(first.await.expect("answered"), Ok(vec![vec![1]]));
    assert!(
        matches!(poisoned.await.expect("answered"), Err(StoreError::Write(m)) if m.contains("poisoned"))
    );
    assert_eq!(last.await.expect("answered"), Ok(vec![vec![2, 3]]));
    assert_eq!(commits(&store) - before, 1, "one transaction");
    assert_eq!(
        trace_keys(&db),
        vec![key(1, 1, "a"), key(2, 2, "c"), key(3, 3, "a")],
        "the refused append's keys were rolled back with its spans"
    );
    assert_eq!(trace_spans(&db, "a"), (strings(&["a1", "a2"]), 2));
    assert_eq!(trace_spans(&db, "b"), (vec![], 0));
}
