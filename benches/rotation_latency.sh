#!/usr/bin/env bash
# p50/p99 latency of 1-record ingest (wrk) while a rotation deletes ROWS old
# rows, against the same load on the same file with nothing to delete, in
# the same run. Needs wrk (Debian package) and python3.
#
#   benches/rotation_latency.sh            # ROWS=1000000 WINDOW=7 CONNS=4 RUNS=3
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ROWS=${ROWS:-1000000} WINDOW=${WINDOW:-7} CONNS=${CONNS:-4} RUNS=${RUNS:-3}
bench_need wrk wrk
bench_build
bench_tmpdir; WORK=$BENCH_TMP

start() { # db, rotate_days -> pid, ADDR
  bench_spawn env TRACE_DB_PATH="$1" TRACE_DB_ROTATE_DAYS="$2" TRACE_ROTATE_INTERVAL=1h \
    TRACE_LISTEN_ADDR=127.0.0.1:0 TRACE_LOG_LEVEL=info "$DAEMON_BIN" >"$1.log" 2>&1
  pid=$SPAWNED
  bench_wait_listening "$1.log" "$pid"
}

# A file with the schema, then ROWS events eight days old.
start "$WORK/seed.db" 0; bench_stop "$pid"
python3 - "$WORK/seed.db" "$ROWS" <<'PY'
import sqlite3, sys, time
db, rows = sys.argv[1], int(sys.argv[2])
old = time.time_ns() - 8 * 86400 * 10**9
c = sqlite3.connect(db)
c.executemany(
    "INSERT INTO events (time_ns, received_ns, agent_id, source, name, severity, attributes)"
    " VALUES (?, ?, 'bench', 'native', 'old', 'info', '{\"tool\":\"web_search\",\"ms\":412}')",
    ((old + i, old + i) for i in range(rows)))
c.commit(); c.execute("PRAGMA wal_checkpoint(TRUNCATE)"); c.close()
PY
echo "seeded $ROWS rows: $(stat -c %s "$WORK/seed.db") bytes"

measure() { # label, rotate_days
  cp "$WORK/seed.db" "$WORK/run.db"; rm -f "$WORK/run.db-wal" "$WORK/run.db-shm"
  start "$WORK/run.db" "$2"
  # The first rotation starts 5 s after start; measure from just before it.
  sleep 4.8
  local out; out=$(wrk -t1 -c"$CONNS" -d"${WINDOW}s" --latency -s benches/wrk/event.lua "http://$ADDR/v1/events")
  local status; status=$(curl -s "http://$ADDR/v1/status")
  bench_stop "$pid"
  python3 - "$1" "$out" "$status" "$WINDOW" <<'PY'
import json, re, sys
label, out, status, window = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[u]
lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
r = status["rotation"]
deleted = sum(r["deleted"]["age"].values())
print(json.dumps({"run": label, "p50_ms": ms(lat["50"]), "p99_ms": ms(lat["99"]), "req_per_s": float(rps),
  "non_2xx": int(non2xx.group(1)) if non2xx else 0, "rows_deleted": deleted,
  "rotation_ms": r["last_duration_ms"], "rotation_covers_window": r["last_duration_ms"] >= window * 1000 - 300}))
PY
}

for i in $(seq "$RUNS"); do
  measure baseline 0
  measure rotating 7
done
