#!/usr/bin/env bash
# The database file plus its WAL against TRACE_DB_MAX_BYTES during a long
# ingest: wrk posts 100-event batches for DURATION seconds while the size is
# sampled every 100 ms. Needs wrk (Debian package).
#
#   benches/size_bound.sh            # BOUND=64MiB DURATION=60 CONNS=4
set -euo pipefail
cd "$(dirname "$0")/.."
BOUND=${BOUND:-64MiB} DURATION=${DURATION:-60} CONNS=${CONNS:-4} PORT=${PORT:-19392}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 2; }
cargo build --release -q
WORK=$(mktemp -d); trap 'kill $pid 2>/dev/null || true; rm -rf "$WORK"' EXIT
DB=$WORK/size.db
TRACE_DB_PATH=$DB TRACE_DB_MAX_BYTES=$BOUND TRACE_LISTEN_ADDR=127.0.0.1:$PORT \
  TRACE_LOG_LEVEL=warning target/release/openclaw-trace >"$WORK/log" 2>&1 &
pid=$!
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.05; done
( while kill -0 $pid 2>/dev/null; do
    echo "$(( $(stat -c %s "$DB" 2>/dev/null || echo 0) + $(stat -c %s "$DB-wal" 2>/dev/null || echo 0) ))"
    sleep 0.1
  done ) >"$WORK/sizes" &
wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s benches/wrk/events100.lua "http://127.0.0.1:$PORT/v1/events" >"$WORK/wrk"
status=$(curl -s "http://127.0.0.1:$PORT/v1/status")
kill -TERM $pid; while kill -0 $pid 2>/dev/null; do sleep 0.05; done
python3 - "$WORK/sizes" "$WORK/wrk" "$status" <<'PY'
import json, re, sys
sizes = [int(l) for l in open(sys.argv[1]) if l.strip()]
wrk = open(sys.argv[2]).read()
s = json.loads(sys.argv[3])
bound = s["rotation"]["max_db_bytes"]
over = sum(1 for x in sizes if x > bound)
print(json.dumps({
  "bound_bytes": bound, "samples": len(sizes), "max_bytes": max(sizes),
  "max_over_bound": round(max(sizes) / bound, 3), "samples_over_bound": over,
  "final_bytes": sizes[-1], "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1)),
  "p99": re.search(r"^\s+99%\s+(\S+)", wrk, re.M).group(1),
  "rows_accepted": s["ingest"]["accepted_records"]["events"],
  "rows_kept": s["tables"]["events"]["rows"],
  "rows_deleted_size": s["rotation"]["deleted"]["size"]["events"],
  "rotations": s["rotation"]["runs"]}))
PY
