//! The PushActor's state machine, driven through `PushNow` against a real
//! HTTP peer on a loopback port, with a real StoreActor and read pool over
//! a real file: the cursor moves only after a 2xx, a failing batch ends the
//! tick, a refused batch is halved until the record at fault stands alone
//! and is dead-lettered; and the backoff between attempts.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::Value;

use super::policy::{PushFormat, RetryPolicy, MAX_ATTEMPTS};
use super::{PushActor, PushNow, PushSettings, PushView};
use crate::schema;
use crate::test_support::{append, quiet, StoreThread, TestDb};

/// One request the peer got.
#[derive(Debug, Clone)]
struct Got {
    /// `Idempotency-Key`.
    key: String,
    /// The decompressed body.
    body: Value,
    /// What it was answered.
    status: u16,
}

impl Got {
    fn names(&self) -> Vec<String> {
        self.body["events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .filter_map(|e| e["data"]["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The peer's answer to a request: status, extra headers, delay.
type Answer = (u16, Vec<(&'static str, String)>, Duration);
type Script = Box<dyn FnMut(&Got) -> Answer + Send>;

/// A plain HTTP/1.1 peer on a thread: one request per connection, answered
/// as the script says, everything it got kept.
struct Peer {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Peer {
    fn start(mut script: Script) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/ingest", listener.local_addr().expect("addr"));
        let got = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&got);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let Some(mut request) = read_request(&mut stream) else {
                    continue;
                };
                let (status, headers, delay) = script(&request);
                request.status = status;
                kept.lock().expect("lock").push(request);
                std::thread::sleep(delay);
                let mut head = format!(
                    "HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n"
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
            }
        });
        Peer { url, got }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().expect("lock").clone()
    }

    fn keys(&self) -> Vec<String> {
        self.got().into_iter().map(|g| g.key).collect()
    }
}

/// Reads one request: its head, then `Content-Length` bytes of gzip body.
fn read_request(stream: &mut std::net::TcpStream) -> Option<Got> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut headers = HashMap::new();
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut gz = vec![0; len];
    reader.read_exact(&mut gz).ok()?;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .ok()?;
    Some(Got {
        key: headers.get("idempotency-key").cloned().unwrap_or_default(),
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        status: 0,
    })
}

fn ok() -> Answer {
    (200, Vec::new(), Duration::ZERO)
}

fn settings(endpoint: &str, max_batch_rows: usize) -> PushSettings {
    PushSettings {
        endpoint: endpoint.to_string(),
        interval: Duration::from_secs(3600),
        api_key: None,
        format: PushFormat::Native,
        max_batch_bytes: 1 << 20,
        max_batch_rows,
        timeout: Duration::from_secs(30),
        max_retry_wait: Duration::from_secs(1),
        backoff: (Duration::from_millis(1), Duration::from_millis(5)),
        agent_id: "test-agent".into(),
    }
}

/// A store over a fresh file holding one event per name, and a pusher on
/// a thread of its own pushing to `endpoint`.
struct Rig {
    push: Addr<PushActor>,
    _push_thread: Arbiter,
    view: PushView,
    store: StoreThread,
    db: TestDb,
}

impl Rig {
    async fn start(endpoint: &str, max_batch_rows: usize, names: &[&str]) -> Rig {
        let db = TestDb::new();
        let store = StoreThread::start(&db.path, |_| {});
        store.commit(append(names)).await;
        let pool = schema::read_pool(&db.path).expect("read pool");
        let view = PushView::default();
        let arbiter = Arbiter::new();
        let push = {
            let settings = settings(endpoint, max_batch_rows);
            let (mark, dead) = (
                store.addr.clone().recipient(),
                store.addr.clone().recipient(),
            );
            let (view, stats) = (view.clone(), Arc::clone(&store.stats));
            PushActor::start_in_arbiter(&arbiter.handle(), move |_| {
                PushActor::new(settings, pool, mark, dead, view, stats, quiet())
            })
        };
        Rig {
            push,
            _push_thread: arbiter,
            view,
            store,
            db,
        }
    }

    /// One push, to its end.
    async fn push(&self) {
        self.push
            .send(PushNow { deadline: None })
            .await
            .expect("the pusher answered");
    }

    fn cursor(&self) -> i64 {
        self.db
            .read()
            .query_row(
                "SELECT last_pushed_id FROM push_cursors WHERE table_name = 'events'",
                [],
                |r| r.get(0),
            )
            .expect("cursor")
    }
}

fn batch(first: i64, last: i64) -> String {
    format!("test-agent:events:{first}-{last}")
}

#[actix_rt::test]
async fn batches_are_cut_at_the_row_cap_and_the_cursor_follows_each_2xx() {
    let peer = Peer::start(Box::new(|_| ok()));
    let rig = Rig::start(&peer.url, 3, &["a", "b", "c", "d", "e", "f", "g"]).await;
    rig.push().await;
    assert_eq!(peer.keys(), vec![batch(1, 3), batch(4, 6), batch(7, 7)]);
    assert_eq!(
        peer.got()
            .iter()
            .map(|g| g.body["batch_id"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>(),
        peer.keys(),
        "the envelope names its batch"
    );
    assert_eq!(peer.got()[1].names(), vec!["d", "e", "f"]);
    assert_eq!(rig.cursor(), 7);
    let view = rig.view.get();
    assert_eq!(
        (view.batches_pushed, view.rows_pushed, view.retries),
        (3, 7, 0)
    );
    assert!(!view.in_progress);
    // Nothing left: the next push sends nothing.
    rig.push().await;
    assert_eq!(peer.got().len(), 3);
}

#[actix_rt::test]
async fn a_batch_that_keeps_failing_is_tried_five_times_and_ends_the_tick() {
    let failing = Arc::new(Mutex::new(true));
    let peer = Peer::start({
        let failing = Arc::clone(&failing);
        Box::new(move |got| {
            if *failing.lock().expect("lock") && got.names().contains(&"d".to_string()) {
                (503, Vec::new(), Duration::ZERO)
            } else {
                ok()
            }
        })
    });
    let rig = Rig::start(&peer.url, 3, &["a", "b", "c", "d", "e", "f", "g"]).await;
    rig.push().await;
    let mut expected = vec![batch(1, 3)];
    expected.extend(std::iter::repeat_n(batch(4, 6), MAX_ATTEMPTS));
    assert_eq!(peer.keys(), expected, "7-7 waits behind the failing batch");
    assert_eq!(rig.cursor(), 3, "only the delivered batch is marked");
    let view = rig.view.get();
    assert_eq!(view.retries, MAX_ATTEMPTS as u64 - 1);
    assert_eq!(view.consecutive_failures, MAX_ATTEMPTS as u64);
    assert_eq!(
        view.last_error.as_ref().and_then(|e| e.status),
        Some(503),
        "{view:?}"
    );
    // The remote recovers: the next push resumes at the cursor.
    *failing.lock().expect("lock") = false;
    rig.push().await;
    let keys = peer.keys();
    assert_eq!(keys[1 + MAX_ATTEMPTS..], [batch(4, 6), batch(7, 7)]);
    assert_eq!(rig.cursor(), 7);
    assert_eq!(rig.view.get().consecutive_failures, 0);
}

#[actix_rt::test]
async fn a_400_halves_the_batch_until_the_record_at_fault_stands_alone_and_is_dead_lettered() {
    let peer = Peer::start(Box::new(|got| {
        if got.names().contains(&"poison".to_string()) {
            (400, Vec::new(), Duration::ZERO)
        } else {
            ok()
        }
    }));
    let names = ["a", "b", "c", "d", "poison", "f", "g", "h"];
    let rig = Rig::start(&peer.url, 8, &names).await;
    rig.push().await;
    let got = peer.got();
    assert_eq!(
        got.iter()
            .map(|g| (g.key.clone(), g.status))
            .collect::<Vec<_>>(),
        vec![
            (batch(1, 8), 400),
            (batch(1, 4), 200),
            (batch(5, 8), 400),
            (batch(5, 6), 400),
            (batch(5, 5), 400),
            (batch(6, 6), 200),
            (batch(7, 7), 200),
            (batch(8, 8), 200),
        ]
    );
    assert_eq!(rig.cursor(), 8, "past the dead letter, to the end");
    let (row_id, status): (i64, i64) = rig
        .db
        .read()
        .query_row(
            "SELECT row_id, status FROM dead_letters WHERE table_name = 'events'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("one dead letter");
    assert_eq!((row_id, status), (5, 400));
    let view = rig.view.get();
    assert_eq!(view.dead_lettered, 1);
    assert_eq!(view.rows_pushed, 7, "every other row delivered once");
    assert_eq!(rig.store.stats.rows.dead_letters(), 1);
}

#[actix_rt::test]
async fn a_413_halves_the_batch_and_a_lone_record_too_large_is_dead_lettered() {
    let peer = Peer::start(Box::new(|got| {
        let names = got.names();
        if names.len() > 2 || names.contains(&"huge".to_string()) {
            (413, Vec::new(), Duration::ZERO)
        } else {
            ok()
        }
    }));
    let rig = Rig::start(&peer.url, 100, &["a", "b", "c", "d", "huge"]).await;
    rig.push().await;
    let got = peer.got();
    assert_eq!(
        got.iter()
            .map(|g| (g.key.clone(), g.status))
            .collect::<Vec<_>>(),
        vec![
            (batch(1, 5), 413),
            (batch(1, 2), 200),
            (batch(3, 4), 200),
            (batch(5, 5), 413),
        ]
    );
    assert_eq!(rig.cursor(), 5);
    let status: i64 = rig
        .db
        .read()
        .query_row(
            "SELECT status FROM dead_letters WHERE row_id = 5",
            [],
            |r| r.get(0),
        )
        .expect("the dead letter");
    assert_eq!(status, 413);
}

#[actix_rt::test]
async fn a_retry_after_longer_than_a_tick_allows_ends_the_tick_at_once() {
    let peer = Peer::start(Box::new(|_| {
        (429, vec![("Retry-After", "2".to_string())], Duration::ZERO)
    }));
    // The rig allows waits of at most 1 s within a tick.
    let rig = Rig::start(&peer.url, 10, &["a"]).await;
    rig.push().await;
    assert_eq!(peer.keys(), vec![batch(1, 1)], "one attempt");
    let view = rig.view.get();
    assert_eq!((view.retries, view.consecutive_failures), (0, 1));
    assert_eq!(rig.cursor(), 0);
}

#[actix_rt::test]
async fn a_push_past_its_deadline_sends_nothing_and_a_slow_answer_is_cut_at_it() {
    // Answers come 10 s late; the push below may take 2 s.
    let peer = Peer::start(Box::new(|_| (200, Vec::new(), Duration::from_secs(10))));
    let rig = Rig::start(&peer.url, 10, &["a", "b"]).await;
    rig.push
        .send(PushNow {
            deadline: Some(Instant::now()),
        })
        .await
        .expect("answered");
    assert!(peer.got().is_empty(), "nothing sent past the deadline");
    // An answer that comes after the deadline does not count: the rows
    // stay unpushed, and the batch is not sent again within the push.
    rig.push
        .send(PushNow {
            deadline: Some(Instant::now() + Duration::from_secs(2)),
        })
        .await
        .expect("answered");
    assert_eq!(peer.keys(), vec![batch(1, 2)]);
    assert_eq!(rig.cursor(), 0);
    let view = rig.view.get();
    let message = view.last_error.map(|e| e.message).unwrap_or_default();
    assert!(message.starts_with("no answer within"), "{message}");
}

#[test]
fn the_backoff_grows_exponentially_to_its_cap_with_full_jitter() {
    let min = Duration::from_millis(100);
    let policy = RetryPolicy::new(PushFormat::Native, min, Duration::from_millis(400));
    // The capped exponential delays: 100, 200, 400, then 400 ms.
    let caps = [100u64, 200, 400, 400].map(Duration::from_millis);
    let draws: Vec<Vec<Duration>> = (0..2000).map(|_| policy.backoff().collect()).collect();
    for d in &draws {
        assert_eq!(
            d.len(),
            MAX_ATTEMPTS - 1,
            "a wait between each two attempts"
        );
    }
    for (i, cap) in caps.iter().enumerate() {
        let waits: Vec<Duration> = draws.iter().map(|d| d[i]).collect();
        assert!(
            waits.iter().all(|w| w <= cap),
            "wait {i} within its cap {cap:?}"
        );
        // Full jitter: drawn over the whole range, from near zero to the cap.
        let (least, most) = (
            waits.iter().min().copied().unwrap_or_default(),
            waits.iter().max().copied().unwrap_or_default(),
        );
        assert!(least < cap.mul_f64(0.1), "wait {i}: least {least:?}");
        assert!(most > cap.mul_f64(0.9), "wait {i}: most {most:?}");
        let mean = waits.iter().sum::<Duration>() / waits.len() as u32;
        assert!(
            mean > cap.mul_f64(0.4) && mean < cap.mul_f64(0.6),
            "wait {i}: uniform, mean {mean:?} of {cap:?}"
        );
    }
    // Growth: each wait can be longer than any wait before it could be.
    for i in 1..3 {
        let most = draws.iter().map(|d| d[i]).max().unwrap_or_default();
        assert!(most > caps[i - 1], "wait {i} grew past {:?}", caps[i - 1]);
    }
    // Two sequences are not the same: the jitter is drawn each time.
    assert_ne!(draws[0], draws[1]);
    assert!(min <= caps[0]);
}
