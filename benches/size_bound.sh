#!/usr/bin/env bash
# The database file plus its WAL against TRACE_DB_MAX_BYTES during a long
# ingest: wrk posts 100-event batches for DURATION seconds while the size is
# sampled every 100 ms. Needs wrk (Debian package).
#
#   benches/size_bound.sh            # BOUND=64MiB DURATION=60 CONNS=4
#   SIGNAL=spans OTLP_TRACES=10 benches/size_bound.sh
#                                    # 100-span OTLP protobuf requests instead
#                                    # (benches/wrk/otlp_spans.lua), over
#                                    # OTLP_TRACES traces each (default 1)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
BOUND=${BOUND:-64MiB} DURATION=${DURATION:-60} CONNS=${CONNS:-4} SIGNAL=${SIGNAL:-events}
case $SIGNAL in events | spans) ;; *) die "SIGNAL: events or spans, not '$SIGNAL'" ;; esac
bench_need wrk wrk
bench_build
bench_tmpdir; WORK=$BENCH_TMP
DB=$WORK/size.db
bench_spawn env TRACE_DB_PATH="$DB" TRACE_DB_MAX_BYTES="$BOUND" TRACE_LISTEN_ADDR=127.0.0.1:0 \
  TRACE_LOG_LEVEL=info "$DAEMON_BIN" >"$WORK/log" 2>&1
pid=$SPAWNED
bench_wait_listening "$WORK/log" "$pid"
sizes() {
  while kill -0 "$pid" 2>/dev/null; do
    echo "$(( $(stat -c %s "$DB" 2>/dev/null || echo 0) + $(stat -c %s "$DB-wal" 2>/dev/null || echo 0) ))"
    sleep 0.1
  done
}
bench_spawn sizes >"$WORK/sizes"
if [[ $SIGNAL == spans ]]; then
  "$BASELINE_BIN" otlp-body "$WORK/otlp.bin" >/dev/null
  OTLP_BODY=$WORK/otlp.bin OTLP_TRACES=${OTLP_TRACES:-1} wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
    -s benches/wrk/otlp_spans.lua -H 'Content-Type: application/x-protobuf' "http://$ADDR/v1/traces" >"$WORK/wrk"
else
  wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s benches/wrk/events100.lua "http://$ADDR/v1/events" >"$WORK/wrk"
fi
status=$(curl -s "http://$ADDR/v1/status")
bench_stop "$pid"
python3 - "$WORK/sizes" "$WORK/wrk" "$status" "$SIGNAL" <<'PY'
import json, re, sys
sizes = [int(l) for l in open(sys.argv[1]) if l.strip()]
wrk = open(sys.argv[2]).read()
s = json.loads(sys.argv[3])
table = sys.argv[4]
bound = s["rotation"]["max_db_bytes"]
over = sum(1 for x in sizes if x > bound)
print(json.dumps({
  "bound_bytes": bound, "samples": len(sizes), "max_bytes": max(sizes),
  "max_over_bound": round(max(sizes) / bound, 3), "samples_over_bound": over,
  "final_bytes": sizes[-1], "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1)),
  "p99": re.search(r"^\s+99%\s+(\S+)", wrk, re.M).group(1),
  "rows_accepted": s["ingest"]["accepted_records"][table],
  "rows_kept": s["tables"][table]["rows"],
  "rows_deleted_size": s["rotation"]["deleted"]["size"][table],
  "rotations": s["rotation"]["runs"]}))
PY
