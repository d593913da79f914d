//! The real OpenClaw gateway (tests/common/openclaw.rs) against the mock
//! model: what `openclaw agent --json`, the transcript database and the file
//! log hold after a few turns, checked call by call against what the mock
//! reported.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::openclaw::{MockModel, OpenClaw, Reply, Turn, TurnUsage, Usage, AGENT_SCHEMA_VERSION};
use common::{env_refs, eventually, open_db, Daemon};
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

/// One `llm_calls` row the sidecar read from the transcript.
#[derive(Debug, PartialEq)]
struct SidecarCall {
    response_id: String,
    run_id: String,
    session_id: String,
    input: u64,
    output: u64,
    total: u64,
    cost_micro_usd: u64,
    status: String,
}

fn sidecar_calls(d: &Daemon) -> Vec<SidecarCall> {
    let db = d.db();
    let mut stmt = db
        .prepare(
            "SELECT json_extract(metadata, '$.response_id'), json_extract(metadata, '$.run_id'),
                session_id, prompt_tokens, completion_tokens, total_tokens, cost_usd, status,
                cost_source, provider, model
             FROM llm_calls WHERE source = 'openclaw_transcript' ORDER BY id",
        )
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            assert_eq!(r.get::<_, String>(8)?, "reported", "OpenClaw's own cost");
            assert_eq!(r.get::<_, String>(9)?, "mock");
            assert_eq!(r.get::<_, String>(10)?, "mock-model");
            Ok(SidecarCall {
                response_id: r.get(0)?,
                run_id: r.get(1)?,
                session_id: r.get(2)?,
                input: r.get::<_, i64>(3)? as u64,
                output: r.get::<_, i64>(4)? as u64,
                total: r.get::<_, i64>(5)? as u64,
                cost_micro_usd: micro_usd(r.get(6)?),
                status: r.get(7)?,
            })
        })
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

/// Lines in the gateway's log files now.
fn log_line_count(gateway: &OpenClaw) -> usize {
    gateway
        .log_files()
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
                .unwrap_or(0)
        })
        .sum()
}

fn sidecar_log_events(d: &Daemon) -> (usize, usize) {
    d.db()
        .query_row(
            "SELECT count(*), count(DISTINCT body || time_ns) FROM events
             WHERE source = 'openclaw_log'",
            [],
            |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize)),
        )
        .expect("count events")
}

/// The real gateway and the real sidecar side by side: every model call
/// OpenClaw made is one `llm_calls` row with OpenClaw's own tokens and
/// cost, matched call by call against the mock and turn by turn against
/// `openclaw agent --json`; the gateway's log lines are events; the sidecar
/// is killed (`kill -9`) and restarted (SIGTERM) mid-stream, and nothing is
/// stored twice or missed.
#[test]
fn the_sidecar_reads_every_call_and_log_line_of_the_real_gateway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mock = MockModel::start();
    let gateway = OpenClaw::start(dir.path(), &mock);
    let state = gateway.state_dir().display().to_string();
    let log = gateway.log_path().display().to_string();
    let env = [
        ("TRACE_OPENCLAW_STATE_DIR", state.as_str()),
        ("TRACE_OPENCLAW_LOG", log.as_str()),
        ("TRACE_OPENCLAW_POLL", "200ms"),
    ];
    let mut sidecar = Some(Daemon::start(&env));
    // The first sidecar's directory holds the database after its kill.
    let mut kept = Vec::new();

    // Six turns: plain replies, one long enough for OpenClaw to store it
    // zstd-compressed, and one with a tool call (two model calls).
    let mut turns = Vec::new();
    for i in 1..=6 {
        match i {
            3 => mock.push(Reply::Text(format!(
                "A long answer. {}",
                "All work and no play makes a long reply. ".repeat(60)
            ))),
            5 => {
                mock.push(Reply::ToolCall {
                    name: "ls".into(),
                    arguments: serde_json::json!({"path": "."}),
                });
            }
            _ => {}
        }
        turns.push(gateway.turn(&format!("Turn {i}.")));
        // The sidecar dies hard after turn 2 and restarts cleanly after 4.
        if i == 2 {
            let d = sidecar.take().expect("running");
            eventually("some calls read before the kill", || {
                !sidecar_calls(&d).is_empty()
            });
            let (status, dir, db_path, saved) = d.stop_with(libc::SIGKILL);
            assert!(!status.success());
            sidecar = Some(Daemon::start_at(&db_path, &env_refs(&saved)));
            kept.push(dir);
        }
        if i == 4 {
            sidecar = Some(sidecar.take().expect("running").restart());
        }
    }
    let d = sidecar.expect("running");
    let calls = mock.calls();
    let with_usage: Vec<_> = calls.iter().filter(|c| c.usage.is_some()).collect();
    assert_eq!(
        with_usage.len(),
        7,
        "six turns, one of them with a tool call"
    );
    eventually("every call read", || {
        sidecar_calls(&d).len() >= with_usage.len()
    });
    std::thread::sleep(Duration::from_millis(600));

    // The long reply was stored compressed by OpenClaw itself.
    let compressed: i64 = open_db(&gateway.agent_db())
        .query_row(
            "SELECT count(*) FROM transcript_events WHERE event_zstd IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count compressed");
    assert!(compressed >= 1, "no event was stored compressed");

    // Call by call against the mock: nothing twice, nothing missing.
    let stored = sidecar_calls(&d);
    assert_eq!(stored.len(), with_usage.len(), "{stored:#?}");
    let by_response: BTreeMap<&str, &SidecarCall> =
        stored.iter().map(|c| (c.response_id.as_str(), c)).collect();
    assert_eq!(by_response.len(), stored.len(), "a response stored twice");
    for call in &with_usage {
        let usage = call.usage.expect("usage");
        let row = by_response
            .get(format!("chatcmpl-mock{}", call.number).as_str())
            .unwrap_or_else(|| panic!("call {} is missing: {stored:#?}", call.number));
        assert_eq!(
            (row.input, row.output, row.total, row.status.as_str()),
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total(),
                "ok"
            ),
            "call {}",
            call.number
        );
        assert_eq!(row.cost_micro_usd, micro_usd(usage.cost_usd()));
    }
    // Turn by turn against OpenClaw's own --json.
    for turn in &turns {
        let rows: Vec<_> = stored.iter().filter(|c| c.run_id == turn.run_id).collect();
        assert!(!rows.is_empty(), "run {} has no call", turn.run_id);
        assert!(rows.iter().all(|c| c.session_id == turn.session_id));
        let sum = |f: fn(&SidecarCall) -> u64| rows.iter().map(|c| f(c)).sum::<u64>();
        assert_eq!(
            TurnUsage {
                input: sum(|c| c.input),
                output: sum(|c| c.output),
                cache_read: 0,
                cache_write: 0,
                total: sum(|c| c.total),
            },
            turn.usage,
            "run {}",
            turn.run_id
        );
        let cost = turn.cost_usd.expect("a priced model has a cost");
        assert_eq!(sum(|c| c.cost_micro_usd), micro_usd(cost));
    }

    // Every line of the gateway's log is an event, once.
    eventually("every log line read", || {
        sidecar_log_events(&d).0 >= log_line_count(&gateway)
    });
    let lines = log_line_count(&gateway);
    let (events, distinct) = sidecar_log_events(&d);
    assert_eq!(events, lines);
    assert_eq!(distinct, lines, "a log line stored twice");
    let ready: i64 = d
        .db()
        .query_row(
            "SELECT count(*) FROM events WHERE source = 'openclaw_log' AND body = 'gateway ready'",
            [],
            |r| r.get(0),
        )
        .expect("ready");
    assert!(ready >= 1);

    // The owner's summary counts OpenClaw's calls.
    let summary = d.get("/v1/llm/summary?since=1h").json();
    assert_eq!(summary["totals"]["calls"], with_usage.len(), "{summary}");
    let s = d.status();
    let source = s["openclaw"]["transcript"]["sources"]
        .as_object()
        .and_then(|m| m.values().next())
        .cloned()
        .expect("the agent's transcript in status");
    assert_eq!(source["behind"], 0, "{source}");
    assert_eq!(source["rows_failed"], 0, "{source}");
    assert!(source["lag_ms"].as_i64().is_some(), "{source}");
    assert!(gateway.stop().success());
}

/// `scripts/start-with-openclaw.sh` runs the real gateway and the sidecar
/// as one process tree, as on a Fly machine: the sidecar finds the
/// transcripts through OpenClaw's own `OPENCLAW_STATE_DIR` (no
/// `TRACE_OPENCLAW_STATE_DIR`), is restarted after `kill -9` without a
/// call lost or repeated, and SIGTERM to the script stops both, the script
/// exiting with the gateway's status.
#[test]
fn the_start_script_runs_the_real_gateway_and_the_sidecar_side_by_side() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mock = MockModel::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let db = dir.path().join("trace.db");
    let log_dir = dir.path().join("logs");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/start-with-openclaw.sh");
    let env = [
        (
            "OPENCLAW_TRACE_BIN",
            env!("CARGO_BIN_EXE_openclaw-trace").to_string(),
        ),
        ("TRACE_LISTEN_ADDR", format!("127.0.0.1:{port}")),
        ("TRACE_DB_PATH", db.display().to_string()),
        ("TRACE_OTLP_LISTEN_ADDR", "off".to_string()),
        ("TRACE_OPENCLAW_LOG", log_dir.display().to_string()),
        ("TRACE_OPENCLAW_POLL", "200ms".to_string()),
        ("TRACE_AGENT_ID", "fly-machine".to_string()),
    ];
    let gateway = OpenClaw::start_under(dir.path(), &mock, &script, &env);
    let calls = || -> i64 {
        if !db.exists() {
            return 0;
        }
        open_db(&db)
            .query_row(
                "SELECT count(*) FROM llm_calls WHERE source = 'openclaw_transcript'",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0)
    };
    let first = gateway.turn("Turn 1.");
    eventually("the first call read by the sidecar", || calls() == 1);

    // The sidecar killed: the script starts it again.
    let stdout = || std::fs::read_to_string(dir.path().join("gateway.stdout")).unwrap_or_default();
    let started: Value = stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["msg"] == "started the gateway and openclaw-trace")
        .expect("the script's start line");
    let sidecar = started["sidecar_pid"].as_i64().expect("sidecar_pid") as i32;
    // SAFETY: kill(2) on a process of this test's tree.
    unsafe { libc::kill(sidecar, libc::SIGKILL) };
    eventually("the sidecar restarted", || {
        stdout().contains("openclaw-trace restarted")
    });
    let second = gateway.turn("Turn 2.");
    eventually("both calls read", || calls() >= 2);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(calls(), 2, "each call once");
    let runs: Vec<String> = open_db(&db)
        .prepare(
            "SELECT json_extract(metadata, '$.run_id') FROM llm_calls
             WHERE source = 'openclaw_transcript' ORDER BY time_ns",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("run ids");
    assert_eq!(runs, [first.run_id.clone(), second.run_id.clone()]);

    // SIGTERM to the script (Fly's kill_signal goes to the process): both
    // stop and the script exits with the gateway's status.
    let status = gateway.stop();
    assert!(status.success(), "{status}: {}", stdout());
    let out = stdout();
    assert!(
        out.contains("passing the signal on to the gateway and openclaw-trace"),
        "{out}"
    );
    assert!(out.contains("shutdown complete"), "{out}");
}
