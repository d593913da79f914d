//! The real OpenClaw gateway (tests/common/openclaw.rs) against the mock
//! model: what `openclaw agent --json`, the transcript database and the file
//! log hold after a few turns, checked call by call against what the mock
//! reported.

mod common;

use common::open_db;
use common::openclaw::{MockModel, OpenClaw, Turn, TurnUsage, Usage, AGENT_SCHEMA_VERSION};
use serde_json::Value;

/// One assistant message event of the transcript.
struct AssistantEvent {
    seq: i64,
    event: Value,
}

/// The assistant message events of `session_id`, in `seq` order. Events of
/// 1 KiB and more may be stored zstd-compressed (`event_zstd`); this reads
/// only plain ones and fails if an assistant message was compressed.
fn assistant_events(db: &rusqlite::Connection, session_id: &str) -> Vec<AssistantEvent> {
    let compressed: i64 = db
        .query_row(
            "SELECT count(*) FROM transcript_events WHERE session_id = ?1 AND event_zstd IS NOT NULL
             AND json_extract(navigation_json, '$.model.message.role') = 'assistant'",
            [session_id],
            |r| r.get(0),
        )
        .expect("count compressed assistant events");
    assert_eq!(compressed, 0, "an assistant message was stored compressed");
    let mut stmt = db
        .prepare(
            "SELECT seq, event_json FROM transcript_events
             WHERE session_id = ?1 AND event_json IS NOT NULL ORDER BY seq",
        )
        .expect("prepare");
    let rows = stmt
        .query_map([session_id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .expect("query transcript_events");
    rows.map(|row| row.expect("row"))
        .map(|(seq, json)| AssistantEvent {
            seq,
            event: serde_json::from_str(&json).expect("event_json is JSON"),
        })
        .filter(|e| e.event["type"] == "message" && e.event["message"]["role"] == "assistant")
        .collect()
}

/// What OpenClaw should report for a call the mock answered with `usage`.
fn expected_usage(usage: Usage) -> TurnUsage {
    TurnUsage {
        input: usage.prompt_tokens,
        output: usage.completion_tokens,
        cache_read: 0,
        cache_write: 0,
        total: usage.total(),
    }
}

/// OpenClaw's cost in millionths of a dollar, rounded: with prices of 1 and
/// 2 USD per million tokens it is a whole number.
fn micro_usd(cost: f64) -> u64 {
    (cost * 1e6).round() as u64
}

#[test]
fn three_turns_match_the_model_calls_in_the_json_the_transcript_and_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mock = MockModel::start();
    let gateway = OpenClaw::start(dir.path(), &mock);

    let turns: Vec<Turn> = (1..=3)
        .map(|i| gateway.turn(&format!("Say hello, number {i}.")))
        .collect();

    let calls = mock.calls();
    assert_eq!(calls.len(), 3, "one model call per turn");
    for (turn, call) in turns.iter().zip(&calls) {
        let usage = call.usage.expect("a streamed answer has usage");
        assert_eq!(turn.status, "ok");
        assert_eq!(turn.stop_reason.as_deref(), Some("stop"));
        assert_eq!(
            turn.text,
            format!("Hello from mock model, call {}.", call.number)
        );
        assert_eq!(
            (turn.provider.as_str(), turn.model.as_str()),
            ("mock", "mock-model")
        );
        assert_eq!(turn.usage, expected_usage(usage), "turn {}", call.number);
        let cost = turn.cost_usd.expect("a priced model has a cost");
        assert_eq!(
            micro_usd(cost),
            usage.prompt_tokens + 2 * usage.completion_tokens
        );
        assert_eq!(micro_usd(cost), micro_usd(usage.cost_usd()));
        assert_eq!(call.request["stream"], true);
        assert_eq!(call.request["stream_options"]["include_usage"], true);
    }
    let session_id = &turns[0].session_id;
    assert!(
        turns.iter().all(|t| &t.session_id == session_id),
        "one session"
    );
    let mut run_ids: Vec<&str> = turns.iter().map(|t| t.run_id.as_str()).collect();
    run_ids.dedup();
    assert_eq!(run_ids.len(), 3, "a run id per turn");

    let db = open_db(&gateway.agent_db());
    let user_version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    let (meta_version, app_version): (i64, String) = db
        .query_row(
            "SELECT schema_version, app_version FROM schema_meta WHERE meta_key = 'primary'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("schema_meta");
    assert_eq!(
        (user_version, meta_version),
        (AGENT_SCHEMA_VERSION, AGENT_SCHEMA_VERSION)
    );
    assert_eq!(app_version, "2026.9.6");

    let events = assistant_events(&db, session_id);
    assert_eq!(events.len(), 3, "one assistant message per turn");
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    for ((event, call), turn) in events.iter().zip(&calls).zip(&turns) {
        let usage = call.usage.expect("usage");
        let message = &event.event["message"];
        let stored = &message["usage"];
        assert_eq!(
            (
                stored["input"].as_u64(),
                stored["output"].as_u64(),
                stored["cacheRead"].as_u64(),
                stored["cacheWrite"].as_u64(),
                stored["totalTokens"].as_u64(),
            ),
            (
                Some(usage.prompt_tokens),
                Some(usage.completion_tokens),
                Some(0),
                Some(0),
                Some(usage.total()),
            ),
            "seq {}: {}",
            event.seq,
            event.event
        );
        let cost = stored["cost"]["total"].as_f64().expect("cost.total");
        assert_eq!(
            micro_usd(cost),
            usage.prompt_tokens + 2 * usage.completion_tokens
        );
        assert_eq!(
            message["responseId"],
            format!("chatcmpl-mock{}", call.number)
        );
        assert_eq!(message["__openclaw"]["runId"], turn.run_id.as_str());
        assert_eq!(message["stopReason"], "stop");
        assert_eq!(
            (message["provider"].as_str(), message["model"].as_str()),
            (Some("mock"), Some("mock-model"))
        );
    }

    let lines = gateway.log_lines();
    assert!(
        lines.iter().any(|l| l["message"] == "gateway ready"),
        "no `gateway ready` in {} log lines",
        lines.len()
    );
    for turn in &turns {
        assert!(
            lines.iter().any(|l| l["message"]
                .as_str()
                .is_some_and(|m| m.contains(&turn.run_id))),
            "no log line names run {}",
            turn.run_id
        );
    }

    let status = gateway.stop();
    assert!(status.success(), "SIGTERM: clean exit, got {status}");
}
