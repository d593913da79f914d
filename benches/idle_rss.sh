#!/usr/bin/env bash
# Idle footprint of the release daemon: RSS after it has sat idle for
# IDLE_SECONDS (default 60), and the stripped binary's size.
# Usage: benches/idle_rss.sh   (builds the release binary first, in
# CARGO_TARGET_DIR when set). BASELINE_BIN=path runs that binary beside it,
# in the same run, and reports it too.
set -euo pipefail
cd "$(dirname "$0")/.."
# Only the daemon (benches/run.sh builds the baselines too).
cargo build --release --quiet --bin openclaw-trace
bin=${CARGO_TARGET_DIR:-target}/release/openclaw-trace
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"' EXIT
TRACE_LISTEN_ADDR=127.0.0.1:0 TRACE_DB_PATH="$dir/idle.db" "$bin" >"$dir/log" &
pid=$!
pids+=("$pid")
if [ -n "${BASELINE_BIN:-}" ]; then
  TRACE_LISTEN_ADDR=127.0.0.1:0 TRACE_DB_PATH="$dir/baseline.db" "$BASELINE_BIN" >"$dir/baseline.log" &
  base=$!
  pids+=("$base")
fi
sleep "${IDLE_SECONDS:-60}"
echo "binary: $(stat -c %s "$bin") bytes ($(file -b "$bin" | grep -o 'stripped\|not stripped'))"
grep -E 'VmRSS|VmHWM|RssAnon|RssFile|Threads' "/proc/$pid/status"
if [ -n "${BASELINE_BIN:-}" ]; then
  echo "baseline $BASELINE_BIN: $(stat -c %s "$BASELINE_BIN") bytes"
  grep -E 'VmRSS|VmHWM|RssAnon|RssFile|Threads' "/proc/$base/status" | sed 's/^/baseline /'
  kill -TERM "$base"
  wait "$base" || true
fi
kill -TERM "$pid"
wait "$pid" && echo "exit: 0 after SIGTERM"
