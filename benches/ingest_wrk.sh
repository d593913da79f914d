#!/usr/bin/env bash
# Native 1-record ingest: `wrk -t1 -c16` posts one LLM-call record
# (benches/wrk/llm_call.lua) per request to `POST /v1/traces` of the release
# daemon, and in the same run to the do-nothing baseline (an actix-web
# server with two HTTP workers on a machine of two cores or more, where the
# daemon has one, that decodes the same JSON with the daemon's decoder and
# stores nothing: `baseline serve`, benches/baseline.rs). Each gets WARMUP seconds of load first (default 3,
# not measured), then INGEST_SECONDS (default 15); req/s counts 2xx answers
# only, p50/p99 from wrk --latency.
#
#   benches/ingest_wrk.sh            # or: benches/run.sh ingest
#
# Then, where /dev/shm is a tmpfs with 1 GiB free, the same daemon with its
# database there (INGEST_TMPFS=0 skips it): the daemon's own cost without the
# disk's flushes, reported beside the goal's figure, never as it.
#
# Prints the markdown section; raw results in $BENCH_OUT/ingest/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

seconds=${INGEST_SECONDS:-15}
warmup=${WARMUP:-3}
conns=${INGEST_CONNS:-16}
out=$BENCH_OUT/ingest
mkdir -p "$out"
bench_build
bench_tmpdir; dir=$BENCH_TMP
script=$ROOT/benches/wrk/llm_call.lua

load() { # name url
  bench_wrk "$out/$1.warmup" -t1 -c"$conns" -d"${warmup}s" --latency -s "$script" "$2"
  bench_wrk "$out/$1" -t1 -c"$conns" -d"${seconds}s" --latency -s "$script" "$2"
}

note "1-record ingest, do-nothing baseline: wrk -t1 -c$conns -d${seconds}s"
bench_spawn "$BASELINE_BIN" serve >"$dir/baseline.log" 2>&1
base=$SPAWNED
for _ in $(seq 600); do grep -q '^listening ' "$dir/baseline.log" && break; kill -0 "$base" || die "baseline exited"; sleep 0.05; done
base_addr=$(awk '/^listening / { print $2; exit }' "$dir/baseline.log")
[[ -n $base_addr ]] || die "the baseline server did not listen"
load baseline "http://$base_addr/v1/traces"
base_hwm=$(proc_kib "$base" VmHWM)
bench_stop "$base"

note "1-record ingest, daemon: wrk -t1 -c$conns -d${seconds}s"
bench_start_daemon "$dir"
load daemon "http://$ADDR/v1/traces"
hwm=$(proc_kib "$DAEMON_PID" VmHWM)
status=$(curl -sf "http://$ADDR/v1/status")
bench_stop "$DAEMON_PID"
[[ $STOPPED_STATUS == 0 ]] || { tail -n 20 "$dir/daemon.log" >&2; die "the daemon exited $STOPPED_STATUS after SIGTERM"; }

# The database on tmpfs: fsync returns at once there.
rm -f "$out/tmpfs.json"
shm_free=$(df -k --output=avail /dev/shm 2>/dev/null | awk 'NR == 2 { print $1 + 0 }' || true)
shm_free=${shm_free:-0}
if [[ ${INGEST_TMPFS:-1} == 1 && $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs ]] && ((shm_free > 1048576)); then
  note "1-record ingest, daemon with its database on tmpfs: wrk -t1 -c$conns -d${seconds}s"
  shm=$(mktemp -d /dev/shm/openclaw-bench.XXXXXX)
  _bench_dirs+=("$shm")
  bench_start_daemon "$shm"
  load tmpfs "http://$ADDR/v1/traces"
  bench_stop "$DAEMON_PID"
  [[ $STOPPED_STATUS == 0 ]] || { tail -n 20 "$shm/daemon.log" >&2; die "the daemon on tmpfs exited $STOPPED_STATUS after SIGTERM"; }
fi

jq -n --argjson hwm "$hwm" --argjson bhwm "$base_hwm" --argjson status "$status" \
  '{peak_rss_kib: $hwm, baseline_peak_rss_kib: $bhwm, rows: $status.tables.llm_calls.rows, rejected: $status.ingest.rejected}' \
  >"$out/daemon.extra.json"
jq -n --argjson s "$seconds" --argjson w "$warmup" --argjson c "$conns" \
  '{seconds: $s, warmup: $w, conns: $c}' >"$out/params.json"
python3 "$ROOT/benches/report.py" section ingest "$BENCH_OUT"
