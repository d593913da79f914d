#!/usr/bin/env bash
# OTLP protobuf ingest, sustained: wrk posts 100-span requests
# (benches/wrk/otlp_spans.lua, a random trace id per request) to
# `POST /v1/traces` of the release daemon for OTLP_SECONDS (default 60) on
# one growing file, once per connection count in OTLP_CONNS (default
# "4 16"), each on a fresh database. Every OTLP_WINDOW seconds (default 5)
# the spans stored (`openclaw_trace_table_rows{table="spans"}` from
# /metrics), the RSS and the file size are sampled: the curve is spans/s in
# each window against the rows in the file. wrk gives p50/p99; peak RSS is
# VmHWM. Then the baseline, in the same run: the same span rows inserted
# straight into a fresh file of the daemon's schema with the store's own
# statements (`baseline sqlite-spans`, benches/baseline.rs) up to the most
# rows the daemon reached. And the ceiling without a store: the same load on
# a handler that only decodes the protobuf (`baseline serve`), 10 s.
#
#   benches/otlp_sustained.sh            # or: benches/run.sh otlp
#   OTLP_SECONDS=20 OTLP_CONNS=16 benches/otlp_sustained.sh   # quicker
#
# Prints the markdown section; raw results in $BENCH_OUT/otlp/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SECONDS_=${OTLP_SECONDS:-60}
WINDOW=${OTLP_WINDOW:-5}
CONNS=${OTLP_CONNS:-4 16}
out=$BENCH_OUT/otlp
mkdir -p "$out"
bench_build
bench_tmpdir; tmp=$BENCH_TMP

"$BASELINE_BIN" otlp-body "$tmp/otlp.bin" >"$out/body.txt"
note "OTLP body: $(cat "$out/body.txt")"

spans_rows() {
  curl -sf --max-time 10 "http://$1/metrics" |
    awk '/^openclaw_trace_table_rows\{table="spans"\}/ { print $2; found = 1 } END { if (!found) print "NA" }'
}

# One line per sample: unix time, spans rows, VmRSS kB, VmHWM kB, db + WAL bytes.
sampler() {
  local addr=$1 pid=$2 db=$3 nap=
  trap '[[ -n $nap ]] && kill "$nap" 2>/dev/null; exit 0' TERM
  while kill -0 "$pid" 2>/dev/null; do
    local t rows rss hwm bytes
    t=$(date +%s.%N)
    rows=$(spans_rows "$addr" || echo NA)
    rss=$(proc_kib "$pid" VmRSS 2>/dev/null || echo NA)
    hwm=$(proc_kib "$pid" VmHWM 2>/dev/null || echo NA)
    bytes=$(( $(stat -c %s "$db" 2>/dev/null || echo 0) + $(stat -c %s "$db-wal" 2>/dev/null || echo 0) ))
    echo "$t $rows $rss $hwm $bytes"
    sleep "$WINDOW" & nap=$!
    wait "$nap" || true
  done
}

# The ceiling without a store: HTTP and the daemon's protobuf decoding only
# (`baseline serve`), at the most connections, DECODE_SECONDS (default 10).
decode_c=$(tr ' ' '\n' <<<"$CONNS" | sort -n | tail -n1)
note "OTLP decode-only handler: wrk -t1 -c$decode_c -d${DECODE_SECONDS:-10}s"
bench_spawn "$BASELINE_BIN" serve >"$tmp/serve.log" 2>&1
serve=$SPAWNED
for _ in $(seq 600); do grep -q '^listening ' "$tmp/serve.log" && break; kill -0 "$serve" || die "baseline exited"; sleep 0.05; done
serve_addr=$(awk '/^listening / { print $2; exit }' "$tmp/serve.log")
[[ -n $serve_addr ]] || die "the baseline server did not listen"
OTLP_BODY=$tmp/otlp.bin bench_wrk "$out/decode" -t1 -c"$decode_c" -d"${DECODE_SECONDS:-10}s" --latency \
  -s "$ROOT/benches/wrk/otlp_spans.lua" "http://$serve_addr/v1/traces"
[[ $(jq .non_2xx "$out/decode.json") == 0 ]] || die "the decode-only handler refused the OTLP body"
bench_stop "$serve"

max_rows=0
for c in $CONNS; do
  note "OTLP sustained: wrk -t1 -c$c -d${SECONDS_}s, 100 spans a request"
  mkdir -p "$tmp/c$c"
  # A bound far above what a minute writes: the file grows the whole run.
  bench_start_daemon "$tmp/c$c" TRACE_DB_MAX_BYTES=64GiB
  addr=$ADDR pid=$DAEMON_PID
  bench_spawn sampler "$addr" "$pid" "$tmp/c$c/trace.db" >"$out/c$c.samples"
  sampler_pid=$SPAWNED
  OTLP_BODY=$tmp/otlp.bin bench_wrk "$out/c$c" -t1 -c"$c" -d"${SECONDS_}s" --latency --timeout 30s \
    -s "$ROOT/benches/wrk/otlp_spans.lua" "http://$addr/v1/traces"
  bench_stop "$sampler_pid"
  t=$(date +%s.%N)
  echo "$t $(spans_rows "$addr") $(proc_kib "$pid" VmRSS) $(proc_kib "$pid" VmHWM) $(( $(stat -c %s "$tmp/c$c/trace.db") + $(stat -c %s "$tmp/c$c/trace.db-wal" 2>/dev/null || echo 0) ))" >>"$out/c$c.samples"
  curl -sf "http://$addr/v1/status" >"$out/c$c.status.json"
  bench_stop "$pid"
  echo "$STOPPED_STATUS" >"$out/c$c.exit"
  [[ $STOPPED_STATUS == 0 ]] || { tail -n 20 "$tmp/c$c/daemon.log" >&2; die "the daemon exited $STOPPED_STATUS after SIGTERM"; }
  # Rows the rotation deleted (the volume limit, on a disk that was nearly
  # full) would make the curve a measure of the rotation, not of ingest.
  deleted=$(jq '[.rotation.deleted[][]] | add' "$out/c$c.status.json")
  [[ $deleted == 0 ]] || die "the rotation deleted $deleted rows during the run (volume $(df -h --output=pcent "$tmp" | tail -n1) full?); free some disk and run again"
  rows=$(jq '.tables.spans.rows' "$out/c$c.status.json")
  (( rows > max_rows )) && max_rows=$rows
  rm -rf "$tmp/c$c"
done

# The baseline up to as many rows as the daemon reached (at least 500,000).
(( max_rows < 500000 )) && max_rows=500000
note "raw SQLite: the same span rows, the daemon's schema and statements, up to $max_rows rows"
WINDOW_ROWS=${WINDOW_ROWS:-$(( (max_rows / 10 + 99) / 100 * 100 ))} TMPDIR=$tmp \
  bench_run "$BASELINE_BIN" sqlite-spans "$max_rows" >"$out/raw.jsonl"

echo "{\"seconds\": $SECONDS_, \"window\": $WINDOW, \"conns\": \"$CONNS\", \"decode_conns\": $decode_c}" >"$out/params.json"
python3 "$ROOT/benches/report.py" section otlp "$BENCH_OUT"
