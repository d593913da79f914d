use super::*;

/// The assistant message of COMPAT.md 3c, as the real gateway wrote it.
const ASSISTANT: &str = r#"{"type":"message","id":"5e73","parentId":"2162","timestamp":"2026-11-29T11:42:47.668Z","message":{"role":"assistant","content":[{"type":"text","text":"Hello from mock model."}],"api":"openai-completions","provider":"mock","model":"mock-model","usage":{"input":42,"output":7,"cacheRead":0,"cacheWrite":0,"totalTokens":49,"cost":{"input":0.000042,"output":0.000014,"cacheRead":0,"cacheWrite":0,"total":0.000056}},"stopReason":"stop","timestamp":1795952567546,"responseId":"chatcmpl-mock1","__openclaw":{"runId":"e1e06c50"}}}"#;

/// An event of about 2.5 kB and the same compressed by libzstd at level 1
/// with a checksum (`zstd -1 --check`), as OpenClaw compresses large events.
const BIG_EVENT: &[u8] = include_bytes!("../testdata/assistant-event.json");
const BIG_EVENT_ZSTD: &[u8] = include_bytes!("../testdata/assistant-event.json.zst");

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("test JSON")
}

#[test]
fn an_assistant_message_is_one_call_with_openclaw_cost() {
    let call = call_from_event(&parse(ASSISTANT), "sess-1", "main", 4).expect("a call");
    assert_eq!(call.provider, "mock");
    assert_eq!(call.model, "mock-model");
    assert_eq!(call.prompt_tokens, Some(42));
    assert_eq!(call.completion_tokens, Some(7));
    assert_eq!(call.cache_read_tokens, Some(0));
    assert_eq!(call.cache_write_tokens, Some(0));
    assert_eq!(call.total_tokens, Some(49));
    assert_eq!(call.cost_usd, Some(0.000056));
    assert_eq!(call.status, "ok");
    assert_eq!(call.error_type, None);
    assert_eq!(call.session_id.as_deref(), Some("sess-1"));
    assert_eq!(call.origin, LlmOrigin::Transcript);
    // Started at the message's own time, ended when it was appended.
    assert_eq!(call.time_ns, Some(1_795_952_567_546_000_000));
    assert_eq!(call.latency_ms, Some(122.0));
    let meta = call.metadata.expect("metadata");
    assert_eq!(meta["run_id"], "e1e06c50");
    assert_eq!(meta["response_id"], "chatcmpl-mock1");
    assert_eq!(meta["api"], "openai-completions");
    assert_eq!(meta["stop_reason"], "stop");
    assert_eq!(meta["openclaw_agent"], "main");
    assert_eq!(meta["transcript_seq"], 4);
}

#[test]
fn a_failed_call_is_an_error_row() {
    let mut event = parse(ASSISTANT);
    event["message"]["stopReason"] = Value::from("error");
    event["message"]["errorMessage"] = Value::from("502 Bad Gateway");
    let call = call_from_event(&event, "s", "main", 1).expect("a call");
    assert_eq!(call.status, "error");
    assert_eq!(call.error_type.as_deref(), Some("error"));
    assert_eq!(
        call.metadata.expect("metadata")["error_message"],
        "502 Bad Gateway"
    );

    event["message"]["stopReason"] = Value::from("aborted");
    let call = call_from_event(&event, "s", "main", 1).expect("a call");
    assert_eq!(call.status, "aborted");
}

#[test]
fn other_events_are_not_calls() {
    let user = r#"{"type":"message","message":{"role":"user","content":"hi","timestamp":1}}"#;
    assert_eq!(call_from_event(&parse(user), "s", "a", 1), None);
    let mut no_usage = parse(ASSISTANT);
    no_usage["message"]
        .as_object_mut()
        .expect("object")
        .remove("usage");
    assert_eq!(call_from_event(&no_usage, "s", "a", 1), None);
    let session = r#"{"type":"session","id":"x","timestamp":"2026-11-29T11:00:00Z"}"#;
    assert_eq!(call_from_event(&parse(session), "s", "a", 1), None);
}

#[test]
fn token_counts_out_of_range_are_left_out() {
    let mut event = parse(ASSISTANT);
    event["message"]["usage"]["input"] = Value::from(-5);
    event["message"]["usage"]["output"] = Value::from(MAX_TOKENS + 1);
    let call = call_from_event(&event, "s", "a", 1).expect("a call");
    assert_eq!(call.prompt_tokens, None);
    assert_eq!(call.completion_tokens, None);
    assert_eq!(call.total_tokens, Some(49));
}

#[test]
fn compressed_events_decode_to_their_json() {
    let text = event_text(
        None,
        Some(BIG_EVENT_ZSTD.to_vec()),
        Some(BIG_EVENT.len() as i64),
    )
    .expect("decodes");
    assert_eq!(text.as_bytes(), BIG_EVENT);
    let call = call_from_event(&parse(&text), "s", "a", 1).expect("a call");
    assert_eq!(call.total_tokens, Some(1750));
    assert_eq!(call.cost_usd, Some(0.002));

    // The size OpenClaw recorded must match.
    let wrong = event_text(None, Some(BIG_EVENT_ZSTD.to_vec()), Some(10));
    assert!(wrong
        .expect_err("too short")
        .contains("event_utf8_bytes says 10"));
    let garbage = event_text(None, Some(vec![1, 2, 3, 4, 5]), Some(5));
    assert!(garbage.expect_err("not zstd").contains("not a zstd frame"));
    let missing = event_text(None, Some(BIG_EVENT_ZSTD.to_vec()), None);
    assert!(missing.expect_err("no size").contains("event_utf8_bytes"));
    let neither = event_text(None, None, None);
    assert!(neither.is_err());
}

/// A transcript database shaped like OpenClaw's agent schema 23 (the
/// columns the follower reads).
fn agent_db(dir: &Path, version: i64) -> (PathBuf, Connection) {
    let path = dir.join("openclaw-agent.sqlite");
    let conn = Connection::open(&path).expect("open");
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE session_windows (session_id TEXT PRIMARY KEY, channel TEXT);
         CREATE TABLE transcript_events (
           session_id TEXT NOT NULL, seq INTEGER NOT NULL, event_json TEXT,
           created_at INTEGER NOT NULL, event_zstd BLOB, event_utf8_bytes INTEGER,
           navigation_json TEXT, PRIMARY KEY (session_id, seq)) STRICT;
         PRAGMA user_version = {version};"
    ))
    .expect("schema");
    (path, conn)
}

fn assistant(tokens: i64) -> String {
    let mut event = parse(ASSISTANT);
    event["message"]["usage"]["input"] = Value::from(tokens);
    event.to_string()
}

fn followed(path: PathBuf) -> Followed {
    Followed {
        agent: "main".into(),
        path,
        conn: None,
        opened: None,
        rescan_until: None,
        cursor: 0,
        at_cursor: None,
        channels: HashMap::new(),
    }
}

/// Reads like the actor does, taking each chunk as committed; returns the
/// calls read (before those already held are dropped).
fn read_all(db: &mut Followed) -> Vec<LlmCall> {
    let mut calls = Vec::new();
    loop {
        match read_chunk(db).expect("read") {
            Outcome::Chunk {
                chunk, at_cursor, ..
            } => {
                db.cursor = chunk.position.offset;
                db.at_cursor = at_cursor;
                for b in chunk.batches {
                    if let Batch::LlmCalls(c) = b {
                        calls.extend(c);
                    }
                }
            }
            Outcome::CaughtUp => return calls,
            Outcome::Skipped(why) => panic!("skipped: {why}"),
        }
    }
}

#[test]
fn follows_a_database_in_chunks_and_skips_what_it_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, conn) = agent_db(dir.path(), 23);
    conn.execute("INSERT INTO session_windows VALUES ('a', 'telegram')", [])
        .expect("insert");
    let n = CHUNK_ROWS as i64 * 2 + 10;
    for seq in 0..n {
        conn.execute(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at)
             VALUES ('a', ?1, ?2, 0)",
            rusqlite::params![seq, assistant(seq)],
        )
        .expect("insert");
    }
    // One compressed event too.
    conn.execute(
        "INSERT INTO transcript_events (session_id, seq, event_zstd, event_utf8_bytes, created_at)
         VALUES ('b', 0, ?1, ?2, 0)",
        rusqlite::params![BIG_EVENT_ZSTD, BIG_EVENT.len() as i64],
    )
    .expect("insert");
    let mut db = followed(path);
    let calls = read_all(&mut db);
    assert_eq!(calls.len() as i64, n + 1);
    let inputs: Vec<i64> = calls[..n as usize]
        .iter()
        .map(|c| c.prompt_tokens.expect("tokens"))
        .collect();
    assert_eq!(inputs, (0..n).collect::<Vec<_>>());
    assert_eq!(calls[0].channel.as_deref(), Some("telegram"));
    assert_eq!(calls[n as usize].total_tokens, Some(1750));

    // Nothing new: nothing read again.
    assert!(read_all(&mut db).is_empty());
    conn.execute(
        "INSERT INTO transcript_events (session_id, seq, event_json, created_at)
         VALUES ('a', ?1, ?2, 0)",
        rusqlite::params![n, assistant(n)],
    )
    .expect("insert");
    let more = read_all(&mut db);
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].prompt_tokens, Some(n));
}

/// The daemon's own file, holding `calls` as the store wrote them.
fn stored(calls: &[LlmCall]) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut conn = crate::schema::open_writer(&dir.path().join("trace.db")).expect("open");
    let tx = conn.transaction().expect("begin");
    let stamp = crate::records::Stamp {
        agent_id: "a".into(),
        received_ns: 0,
        source: Source::OpenClawTranscript,
        openclaw_metric_prefix: std::sync::Arc::from(""),
    };
    crate::store::insert_batch(
        &tx,
        &Batch::LlmCalls(calls.to_vec()),
        &stamp,
        &crate::rollup::Pricing::none(),
        &mut crate::rollup::Delta::default(),
    )
    .expect("insert");
    tx.commit().expect("commit");
    (dir, conn)
}

fn inputs(calls: &[LlmCall]) -> Vec<i64> {
    calls
        .iter()
        .map(|c| c.prompt_tokens.expect("tokens"))
        .collect()
}

#[test]
fn a_rewound_tail_is_read_again_and_only_its_new_calls_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, conn) = agent_db(dir.path(), 23);
    let add = |session: &str, seq: i64, tokens: i64, created: i64| {
        let mut event = parse(&assistant(tokens));
        event["id"] = Value::from(format!("ev-{session}-{seq}-{created}"));
        event["message"]["timestamp"] = Value::from(1_795_952_567_000 + created);
        conn.execute(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![session, seq, event.to_string(), created],
        )
        .expect("insert");
    };
    for seq in 0..5 {
        add("s", seq, seq, seq);
    }
    let mut db = followed(path);
    let first = read_all(&mut db);
    assert_eq!(inputs(&first), [0, 1, 2, 3, 4]);
    let (_held, ours) = stored(&first);
    // OpenClaw rewinds the session's tail and writes new events at the
    // same seqs; SQLite gives them the freed rowids.
    conn.execute("DELETE FROM transcript_events WHERE seq >= 2", [])
        .expect("delete");
    for seq in 2..6 {
        add("s", seq, 100 + seq, 1000 + seq);
    }
    let mut again = read_all(&mut db);
    assert_eq!(
        inputs(&again),
        [0, 1, 102, 103, 104, 105],
        "read from the start"
    );
    assert_eq!(drop_stored(&ours, &mut again).expect("check"), 2);
    assert_eq!(inputs(&again), [102, 103, 104, 105]);
    // Caught up: nothing more.
    assert!(read_all(&mut db).is_empty());
}

#[test]
fn an_unknown_schema_version_is_skipped_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, conn) = agent_db(dir.path(), 24);
    conn.execute(
        "INSERT INTO transcript_events (session_id, seq, event_json, created_at)
         VALUES ('a', 0, ?1, 0)",
        [assistant(1)],
    )
    .expect("insert");
    let mut db = followed(path);
    match read_chunk(&mut db).expect("read") {
        Outcome::Skipped(why) => {
            assert!(why.contains("schema version 24"), "{why}");
            assert!(why.contains("[23]"), "{why}");
        }
        _ => panic!("a file of an unknown schema version must be skipped"),
    }
}

#[test]
fn rows_that_do_not_decode_are_counted_and_passed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, conn) = agent_db(dir.path(), 23);
    conn.execute(
        "INSERT INTO transcript_events (session_id, seq, event_json, created_at)
         VALUES ('a', 0, '{not json', 0)",
        [],
    )
    .expect("insert");
    conn.execute(
        "INSERT INTO transcript_events (session_id, seq, event_zstd, event_utf8_bytes, created_at)
         VALUES ('a', 1, x'0102030405', 5, 0)",
        [],
    )
    .expect("insert");
    conn.execute(
        "INSERT INTO transcript_events (session_id, seq, event_json, created_at)
         VALUES ('a', 2, ?1, 0)",
        [assistant(7)],
    )
    .expect("insert");
    let mut db = followed(path);
    match read_chunk(&mut db).expect("read") {
        Outcome::Chunk { chunk, .. } => {
            assert_eq!(chunk.position.read, 3);
            assert_eq!(chunk.position.failed, 2);
            assert_eq!(chunk.position.offset, 3);
            match &chunk.batches[0] {
                Batch::LlmCalls(calls) => assert_eq!(calls.len(), 1),
                other => panic!("unexpected batch {other:?}"),
            }
        }
        _ => panic!("expected a chunk"),
    }
}

#[test]
fn finds_every_agents_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    for agent in ["main", "work"] {
        let d = dir.path().join("agents").join(agent).join("agent");
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("openclaw-agent.sqlite"), b"").expect("write");
    }
    std::fs::create_dir_all(dir.path().join("agents/empty/agent")).expect("mkdir");
    let found = find_databases(dir.path()).expect("found");
    let agents: Vec<&str> = found.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(agents, ["main", "work"]);
    assert!(find_databases(&dir.path().join("missing")).is_err());
}

#[test]
fn a_database_replaced_at_its_path_is_opened_anew() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, conn) = agent_db(dir.path(), 23);
    for seq in 0..3 {
        conn.execute(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at)
             VALUES ('a', ?1, ?2, ?1)",
            rusqlite::params![seq, assistant(seq)],
        )
        .expect("insert");
    }
    let mut db = followed(path.clone());
    assert_eq!(inputs(&read_all(&mut db)), [0, 1, 2]);
    // The agent is made again: a new file at the same path.
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let (_, conn) = agent_db(dir.path(), 23);
    for seq in 0..5 {
        conn.execute(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at)
             VALUES ('b', ?1, ?2, 100 + ?1)",
            rusqlite::params![seq, assistant(10 + seq)],
        )
        .expect("insert");
    }
    assert_eq!(inputs(&read_all(&mut db)), [10, 11, 12, 13, 14]);
}
