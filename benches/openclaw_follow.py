#!/usr/bin/env python3
"""How fast the release daemon follows OpenClaw's files, and how far behind.

Run by benches/openclaw_follow.sh (which builds the daemon); prints one JSON
object. Parts:

- tail: a gateway log of LOG_MB megabytes of lines shaped like OpenClaw's
  logger's, there before the daemon starts: lines/s from start until every
  line is committed (the daemon's own count in /v1/status), VmHWM, and, as
  the baseline in the same run, Python's json.loads over the same lines.
- transcript: a transcript database of CALLS assistant messages: calls/s.
- lag: a writer appends RATE lines/s to a log and RATE/10 assistant messages
  per second to a transcript for SECONDS, stamped with the time they are
  written, at the default 5 s poll. Reported: each row's delay (when the
  daemon stored it less when it was written: median, p99, max), the status'
  lag_ms samples (the last commit's time less the newest stored item's own
  time, every 0.5 s), and the daemon's CPU time over the window.
"""

import datetime
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BIN = os.environ["DAEMON_BIN"]
LOG_MB = int(os.environ.get("LOG_MB", "100"))
CALLS = int(os.environ.get("CALLS", "100000"))
RATE = int(os.environ.get("RATE", "200"))
SECONDS = int(os.environ.get("SECONDS_STEADY", "60"))


def log_line(i, now=None):
    t = now or datetime.datetime(2026, 11, 29, 12, 18, 15, 964000).astimezone()
    return json.dumps({
        "0": "{\"subsystem\":\"gateway/channels/telegram\"}",
        "1": {"provider": "openai", "model": "gpt-5.4", "durationMs": 800 + i % 1000},
        "2": f"model call {i} done",
        "_meta": {"runtime": "node", "runtimeVersion": "24.16.0", "hostname": "vm",
                  "date": t.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                  "logLevelId": 3, "logLevelName": "ERROR" if i % 100 == 0 else "INFO",
                  "name": "{\"subsystem\":\"gateway/channels/telegram\"}",
                  "parentNames": ["openclaw"]},
        "time": t.isoformat(timespec="milliseconds"),
        "hostname": "vm", "message": f"model call {i} done",
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7",
    }, separators=(",", ":"))


def assistant(i, now_ms=None):
    # Calls a second apart when not stamped now, as a busy agent's are.
    at_ms = now_ms or 1795952567796 + 1000 * i
    started = at_ms - 250
    ended = datetime.datetime.fromtimestamp(at_ms / 1000, datetime.timezone.utc)
    return json.dumps({
        "type": "message", "id": f"ev-{i}", "parentId": f"ev-{i - 1}",
        "timestamp": ended.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "message": {"role": "assistant", "content": [{"type": "text", "text": f"reply {i}"}],
                    "api": "openai-completions", "provider": "openai", "model": "gpt-5.4",
                    "usage": {"input": 1000 + i % 50, "output": 20, "cacheRead": 0, "cacheWrite": 0,
                              "totalTokens": 1020 + i % 50,
                              "cost": {"input": 0.001, "output": 0.0001, "cacheRead": 0,
                                       "cacheWrite": 0, "total": 0.0011}},
                    "stopReason": "stop", "timestamp": started,
                    "responseId": f"chatcmpl-{i}", "__openclaw": {"runId": f"run-{i}"}},
    }, separators=(",", ":"))


def agent_db(state):
    d = os.path.join(state, "agents", "main", "agent")
    os.makedirs(d, exist_ok=True)
    conn = sqlite3.connect(os.path.join(d, "openclaw-agent.sqlite"), isolation_level=None,
                           check_same_thread=False)
    conn.executescript("""
        PRAGMA journal_mode = WAL;
        CREATE TABLE session_windows (session_id TEXT NOT NULL PRIMARY KEY, channel TEXT) STRICT;
        CREATE TABLE transcript_events (
          session_id TEXT NOT NULL, seq INTEGER NOT NULL, event_json TEXT,
          created_at INTEGER NOT NULL, event_zstd BLOB, event_utf8_bytes INTEGER,
          navigation_json TEXT, PRIMARY KEY (session_id, seq)) STRICT;
        PRAGMA user_version = 23;
    """)
    return conn


class Daemon:
    def __init__(self, workdir, env):
        self.log = open(os.path.join(workdir, "daemon.log"), "w")
        e = {"PATH": os.environ.get("PATH", ""), "TRACE_LISTEN_ADDR": "127.0.0.1:0",
             "TRACE_DB_PATH": os.path.join(workdir, "trace.db"), "TRACE_LOG_LEVEL": "info",
             "TRACE_OPENCLAW_STATE_DIR": "off", "TRACE_OPENCLAW_LOG": "off",
             "TRACE_DB_ROTATE_DAYS": "0"}
        e.update(env)
        self.started = time.monotonic()
        self.proc = subprocess.Popen([BIN], env=e, stdout=self.log, stderr=subprocess.STDOUT)
        self.addr = None
        path = os.path.join(workdir, "daemon.log")
        for _ in range(600):
            with open(path) as f:
                for line in f:
                    try:
                        v = json.loads(line)
                    except ValueError:
                        continue
                    if v.get("msg") == "listening":
                        self.addr = v["addr"]
            if self.addr:
                break
            time.sleep(0.05)
        assert self.addr, "the daemon did not listen"

    def status(self):
        with urllib.request.urlopen(f"http://{self.addr}/v1/status", timeout=10) as r:
            return json.load(r)

    def source(self, kind):
        sources = self.status()["openclaw"][kind]["sources"]
        return next(iter(sources.values()), None)

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def hwm_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def until(pred, what, limit=1800):
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > limit:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.05)
    return time.monotonic()


def tail_part(tmp):
    path = os.path.join(tmp, "logs", "openclaw-2026-11-29.log")
    os.makedirs(os.path.dirname(path))
    lines = 0
    with open(path, "w") as f:
        size = 0
        while size < LOG_MB << 20:
            line = log_line(lines) + "\n"
            f.write(line)
            size += len(line)
            lines += 1
    # The baseline: Python's own JSON parser over the same lines.
    t0 = time.monotonic()
    with open(path) as f:
        for line in f:
            json.loads(line)
    base = time.monotonic() - t0
    d = Daemon(tmp, {"TRACE_OPENCLAW_LOG": os.path.dirname(path), "TRACE_OPENCLAW_POLL": "100ms"})
    done = until(lambda: (d.source("gateway_log") or {}).get("rows_read") == lines, "the log read")
    took = done - d.started
    hwm = d.hwm_kib()
    d.stop()
    return {"file_bytes": os.path.getsize(path), "lines": lines, "seconds": round(took, 2),
            "lines_per_s": round(lines / took), "vmhwm_kib": hwm,
            "baseline_python_json_loads_lines_per_s": round(lines / base),
            "ratio_to_baseline": round((lines / took) / (lines / base), 2)}


def transcript_part(tmp):
    state = os.path.join(tmp, "state")
    conn = agent_db(state)
    conn.execute("BEGIN")
    for i in range(CALLS):
        conn.execute("INSERT INTO transcript_events (session_id, seq, event_json, created_at) "
                     "VALUES (?, ?, ?, 0)", (f"s{i % 20}", 2 * (i // 20), '{"type":"message","message":{"role":"user","content":"hi"}}'))
        conn.execute("INSERT INTO transcript_events (session_id, seq, event_json, created_at) "
                     "VALUES (?, ?, ?, 0)", (f"s{i % 20}", 2 * (i // 20) + 1, assistant(i)))
    conn.execute("COMMIT")
    conn.close()
    d = Daemon(tmp, {"TRACE_OPENCLAW_STATE_DIR": state, "TRACE_OPENCLAW_POLL": "100ms"})
    done = until(lambda: (d.source("transcript") or {}).get("stored") == CALLS, "the transcript read")
    took = done - d.started
    hwm = d.hwm_kib()
    d.stop()
    return {"events": 2 * CALLS, "calls": CALLS, "seconds": round(took, 2),
            "calls_per_s": round(CALLS / took), "events_per_s": round(2 * CALLS / took),
            "vmhwm_kib": hwm}


def lag_part(tmp):
    logdir = os.path.join(tmp, "steady-logs")
    os.makedirs(logdir)
    logpath = os.path.join(logdir, "openclaw-2026-11-29.log")
    state = os.path.join(tmp, "steady-state")
    conn = agent_db(state)
    d = Daemon(tmp, {"TRACE_OPENCLAW_LOG": logdir, "TRACE_OPENCLAW_STATE_DIR": state})
    stop = threading.Event()

    def writer():
        i = 0
        start = time.monotonic()
        with open(logpath, "a", buffering=1) as f:
            while not stop.is_set():
                due = start + i / RATE
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                f.write(log_line(i, datetime.datetime.now().astimezone()) + "\n")
                if i % 10 == 0:
                    conn.execute("INSERT INTO transcript_events (session_id, seq, event_json, created_at) "
                                 "VALUES ('s', ?, ?, ?)", (i // 10, assistant(i // 10, int(time.time() * 1000)),
                                                          int(time.time() * 1000)))
                i += 1

    t = threading.Thread(target=writer)
    t.start()
    log_lags, tr_lags, behind = [], [], []
    end = time.monotonic() + SECONDS
    time.sleep(6)  # past the first look
    cpu0, t0 = d.cpu_seconds(), time.monotonic()
    while time.monotonic() < end:
        s = d.status()["openclaw"]
        for kind, out in (("gateway_log", log_lags), ("transcript", tr_lags)):
            src = next(iter(s[kind]["sources"].values()), None)
            if src and src.get("lag_ms") is not None:
                out.append(src["lag_ms"])
                if kind == "gateway_log":
                    behind.append(src["behind"])
        time.sleep(0.5)
    cpu = (d.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    stop.set()
    t.join()
    d.stop()
    # Each row's own delay: when the daemon stored it (received_ns, taken
    # just before the commit) less when it was written (the line's time;
    # the assistant message's append, its start plus its latency).
    db = sqlite3.connect(os.path.join(tmp, "trace.db"))
    delays = {
        "gateway_log": [r[0] / 1e6 for r in db.execute(
            "SELECT received_ns - time_ns FROM events WHERE source = 'openclaw_log'")],
        "transcript": [r[0] / 1e6 for r in db.execute(
            "SELECT received_ns - (time_ns + CAST(latency_ms * 1e6 AS INTEGER)) FROM llm_calls "
            "WHERE source = 'openclaw_transcript'")],
    }
    db.close()

    def spread(xs):
        xs = sorted(xs)
        if not xs:
            return None
        return {"rows": len(xs), "median_ms": round(statistics.median(xs)),
                "p99_ms": round(xs[int(0.99 * (len(xs) - 1))]), "max_ms": round(xs[-1])}

    def summary(xs):
        return {"samples": len(xs), "median_ms": statistics.median(xs) if xs else None,
                "max_ms": max(xs) if xs else None}
    return {"rate_lines_per_s": RATE, "rate_calls_per_s": RATE / 10, "seconds": SECONDS,
            "poll": "5s (default)",
            "row_delay": {k: spread(v) for k, v in delays.items()},
            "gateway_log_lag": summary(log_lags),
            "transcript_lag": summary(tr_lags),
            "gateway_log_behind_bytes_median": statistics.median(behind) if behind else None,
            "daemon_cpu_percent_of_a_core": round(100 * cpu, 2)}


def main():
    parts = sys.argv[1:] or ["tail", "transcript", "lag"]
    out = {"load_at_start": open("/proc/loadavg").read().split()[:3]}
    for part in parts:
        with tempfile.TemporaryDirectory() as tmp:
            out[part] = {"tail": tail_part, "transcript": transcript_part, "lag": lag_part}[part](tmp)
            print(json.dumps({part: out[part]}), file=sys.stderr)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
